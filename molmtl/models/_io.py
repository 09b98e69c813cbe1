"""Saving and loading a model in a run directory, without pickling code.

``model.pt`` holds only the state dict (tensors), loaded with ``torch.load(weights_only=True)``.
Everything needed to rebuild the model is JSON in ``config.json``, next to the SHA-256 of
``model.pt`` so a truncated or swapped weights file is caught before it is read.
"""

from __future__ import annotations

import json
import os
import reprlib
from pathlib import Path
from typing import Any

import torch

from molmtl._version import __version__
from molmtl.featurizers import FeaturizerSpecError, from_spec
from molmtl.models._model import MultiTaskModel, build_model
from molmtl.rundir import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    RunDir,
    RunDirError,
    atomic_torch_save,
    atomic_write_text,
    settings_checksums,
    sha256_of,
)

#: version of the run-directory layout; bumped when a reader of an older layout would misread it.
FORMAT_VERSION = 1


def save_model(run_dir: str | os.PathLike, model: MultiTaskModel, metadata: dict[str, Any]) -> Path:
    """Write ``model.pt`` and ``config.json`` into ``run_dir`` (created if needed).

    ``config.json`` is ``metadata`` (e.g. ``featurizer``, ``targets``, ``train``) plus
    ``format_version``, ``molmtl_version``, ``model`` (the build config with ``node_dim``,
    ``edge_dim``, ``n_tasks``), ``weights`` (file name and SHA-256) and ``settings_sha256``
    (a checksum per section that matters, so that edits are caught when the run is read). Both
    files are written atomically, weights first, so a reader never sees a checksum of other
    weights.

    Returns:
        The path of ``config.json``.
    """
    if not model.config:
        raise ValueError("save_model needs a model made by build_model (its config rebuilds it)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    weights_path = run_dir / WEIGHTS_FILE
    atomic_torch_save(state, weights_path)
    config = {
        **metadata,
        "format_version": FORMAT_VERSION,
        "molmtl_version": __version__,
        "model": model.config,
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(weights_path)},
    }
    # of the JSON as read back, so that what a reader computes is what was recorded
    config["settings_sha256"] = settings_checksums(json.loads(json.dumps(config)))
    config_path = run_dir / CONFIG_FILE
    atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=False) + "\n")
    return config_path


def load_model(
    run_dir: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[MultiTaskModel, dict[str, Any]]:
    """Load the model of a run directory, in eval mode, on ``device`` (default CPU).

    Checks, in order: the directory and ``config.json`` exist and parse, the format version is
    one this code reads, ``model.pt``'s SHA-256 matches the recorded one, the stored featurizer
    spec is the one this code produces, and the weights fit the described model.

    Raises:
        RunDirError: saying which check failed and what to do.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    _check_featurizer(config)
    model_config = dict(config["model"])
    try:
        dims = {key: model_config.pop(key) for key in ("node_dim", "edge_dim", "n_tasks")}
        if dims["n_tasks"] != len(config["targets"]):
            raise ValueError(f"n_tasks {dims['n_tasks']!r} but {len(config['targets'])} targets")
        model = build_model(model_config, **dims)
    except (KeyError, ValueError, TypeError) as error:
        raise RunDirError(f"{run_dir / CONFIG_FILE}: invalid 'model' section: {error}") from error
    weights_path = run_dir / config["weights"]["file"]
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling failure means the file is not ours
        raise RunDirError(f"{weights_path}: not a tensor-only weights file ({error})") from error
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise RunDirError(
            f"{weights_path}: weights do not fit the model described in {CONFIG_FILE}: {error}"
        ) from error
    model.eval()
    return model.to(device or "cpu"), config


def read_config(run_dir: Path) -> dict[str, Any]:
    """Read and check ``config.json`` and the weights checksum of a run directory."""
    config = RunDir(run_dir).read_config()
    config_path = run_dir / CONFIG_FILE
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise RunDirError(
            f"{config_path}: format_version {reprlib.repr(version)} is not supported by molmtl {__version__} "
            f"(reads version {FORMAT_VERSION}); use the molmtl version that wrote it "
            f"({config.get('molmtl_version', 'unknown')})"
        )
    for key, kind in (("model", dict), ("weights", dict), ("featurizer", dict), ("targets", list)):
        if key not in config:
            raise RunDirError(f"{config_path} lacks the {key!r} section")
        if not isinstance(config[key], kind):
            raise RunDirError(f"{config_path}: {key!r} must be a JSON {kind.__name__}")
    _check_targets(config_path, config["targets"])
    weights = config["weights"]
    if not isinstance(weights, dict) or not isinstance(weights.get("file"), str):
        raise RunDirError(f"{config_path}: 'weights' must give the weights 'file' and 'sha256'")
    weights_path = run_dir / weights["file"]
    if Path(weights["file"]).name != weights["file"]:
        raise RunDirError(
            f"{config_path}: weights file must lie in the run directory, got {weights['file']!r}"
        )
    if not weights_path.is_file():
        raise RunDirError(f"{weights_path} is missing")
    actual = sha256_of(weights_path)
    if actual != weights.get("sha256"):
        raise RunDirError(
            f"{weights_path} does not match the checksum in {CONFIG_FILE} "
            f"(expected {weights.get('sha256')}, got {actual}): the file was modified or truncated"
        )
    return config


def _check_targets(config_path: Path, targets: list[Any]) -> None:
    """The ``targets`` section: records with a unique ``name`` and, if given, numeric scales."""
    names = [t.get("name") if isinstance(t, dict) else None for t in targets]
    if not names or not all(isinstance(name, str) and name for name in names):
        raise RunDirError(f"{config_path}: 'targets' must be a non-empty list of {{'name': ...}}")
    if len(set(names)) != len(names):
        raise RunDirError(f"{config_path}: 'targets' names a target twice: {names}")
    for target in targets:
        for key in ("factor", "report_scale"):
            value = target.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RunDirError(
                    f"{config_path}: target {target['name']!r} {key} must be a number"
                )


def _check_featurizer(config: dict[str, Any]) -> None:
    try:
        from_spec(config["featurizer"])
    except (FeaturizerSpecError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunDirError(
            f"the model was trained with a featurizer this molmtl does not reproduce: {error}"
        ) from error
