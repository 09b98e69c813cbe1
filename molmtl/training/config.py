"""TrainConfig: every knob of a training run, validated, loadable from TOML/YAML and presets.

A config is built in layers, later ones winning: the dataclass defaults, a preset
(``molmtl/presets/<name>.toml``), a config file, then explicit overrides (CLI flags)::

    config = TrainConfig.load(preset="qm9-quick", path=None, overrides={"epochs": 3})
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from molmtl.balancing import available as available_balancers
from molmtl.nn import available_encoders
from molmtl.registry import Registry
from molmtl.rundir import RunDir, RunDirError

#: ``TrainConfig.split`` → function of (SMILES, config) giving the split (imported on use)
SPLITS: Registry = Registry("split")
SPLITS.register("benchmark", "molmtl.training._data:benchmark_split")
SPLITS.register("random", "molmtl.training._data:random_split")
SPLITS.register("scaffold", "molmtl.training._data:scaffold_split")
DATASETS = ("qm9", "csv")
PRECISIONS = ("fp32", "bf16")
#: a config file larger than this, or whose YAML aliases expand to more values, is refused
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 10_000
#: the largest seed torch's generators take
MAX_SEED = 2**64 - 1


class ConfigError(ValueError):
    """A config value is invalid; the message names the field and what would be valid."""


@dataclass
class TrainConfig:
    """Settings of one training run. Units of ``reference_maes`` are the reported ones (e.g. meV).

    Data:
        dataset: ``"qm9"`` or ``"csv"``.
        data: path of the QM9 data (file or folder; None = default lookup) or of the CSV.
        smiles_column: SMILES column of a CSV dataset.
        targets: target names (QM9: default the 11 benchmark targets; CSV: required columns).
        featurizer: featurizer name (``"2d"`` or ``"3d"``).
        n_molecules: train on a seeded random subset of this many molecules (None = all).
        split: ``"benchmark"`` (QM9's 110,831/10,000/10,000), ``"random"`` or ``"scaffold"``.
        split_fractions: train/val/test fractions for the random and scaffold splits.
        cache_dir: where featurized graphs are cached (None = the data layer's default).
    Model:
        model: the :func:`molmtl.models.build_model` config (``encoder`` and its options).
    Optimization:
        balancer, balancer_options: a name from :func:`molmtl.balancing.available` and its options.
        epochs, batch_size, lr, weight_decay: Adam training.
        lr_factor, lr_patience, min_lr: ReduceLROnPlateau on the validation score.
        eval_batch_size: molecules per forward pass when evaluating.
        reference_maes: single-task MAE per target (reported units); when given, the validation
            score is Δm% against them, else the mean MAE normalized by the training std.
        gradient_probe: after every epoch, log the norm of each task's shared gradient of its
            plain (standardized MSE) loss on this many fixed training molecules, the same
            measure for every balancer (``probe_grad_norm/<task>`` in metrics.csv; 0 = off).
            It is not counted in the epoch's seconds and does not change training.
    Runtime:
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        precision: ``"fp32"`` or ``"bf16"`` (autocast for the forward pass).
        compile: wrap the model in ``torch.compile``.
        seed: seeds the split, the initialisation and the shuffling.
        out: run directory.
        progress: show a progress bar (None = only when stderr is a terminal).
    """

    dataset: str = "qm9"
    data: str | None = None
    smiles_column: str = "smiles"
    targets: list[str] | None = None
    featurizer: str = "2d"
    n_molecules: int | None = None
    split: str = "benchmark"
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    cache_dir: str | None = None
    model: dict[str, Any] = field(default_factory=lambda: {"encoder": "gine"})
    balancer: str = "dbmtl"
    balancer_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 300
    batch_size: int = 120
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_factor: float = 0.7
    lr_patience: int = 5
    min_lr: float = 1e-5
    eval_batch_size: int = 2000
    reference_maes: dict[str, float] | None = None
    gradient_probe: int = 0
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    seed: int = 0
    out: str = "runs/molmtl"
    progress: bool | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a flat dict; unknown keys raise :class:`ConfigError` listing the valid ones."""
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a table of settings, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(values) - known))  # YAML keys may be numbers or None
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {_short(unknown)}; valid fields: {sorted(known)}"
            )
        return cls(**values)

    @classmethod
    def load(
        cls,
        *,
        preset: str | None = None,
        path: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> TrainConfig:
        """Defaults, then ``preset``, then the file at ``path``, then ``overrides`` (None values skipped)."""
        layers = [
            read_preset(preset) if preset is not None else {},
            read_config_file(path) if path is not None else {},
            {key: value for key, value in (overrides or {}).items() if value is not None},
        ]
        values: dict[str, Any] = {}
        for layer in layers:
            # Options belong to their method: a layer that switches the balancer without
            # giving options drops the earlier layers' (e.g. the preset's DB-MTL beta).
            if layer.get("balancer", values.get("balancer")) != values.get("balancer"):
                values.pop("balancer_options", None)
            values.update(layer)
        return cls.from_dict(values)

    @classmethod
    def from_run(cls, out: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """The settings stored in the run directory ``out``, with ``overrides`` (None values
        skipped): what ``train(config, resume=True)`` takes to continue that run."""
        run_dir = RunDir(out)
        try:
            stored = cls.from_dict({**run_dir.read_train_settings(), "out": str(out)})
        except (RunDirError, ConfigError) as error:
            raise ConfigError(
                f"cannot resume {out}: {run_dir.config_path.name}: {error}"
            ) from error
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        return cls.from_dict({**stored.to_dict(), **given, "out": str(out)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable copy (stored in the run directory's ``config.json``)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    # -- validation --------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        self._validate_data()
        self._validate_split()
        self._validate_model_and_balancer()
        self._validate_optimization()
        self._validate_reference_maes()
        _string("device", self.device)
        _choice("precision", self.precision, PRECISIONS)
        _bool("compile", self.compile)
        if self.progress is not None:
            _bool("progress", self.progress)
        _string("out", self.out)

    def _validate_data(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _optional_string("data", self.data)
        _string("smiles_column", self.smiles_column)
        if self.targets is not None:
            if (
                not isinstance(self.targets, list)
                or not self.targets
                or not all(isinstance(t, str) for t in self.targets)
            ):
                raise ConfigError(
                    f"targets must be a non-empty list of target names, got {_short(self.targets)}"
                )
            counts = Counter(self.targets)
            duplicates = sorted(t for t, count in counts.items() if count > 1)
            if duplicates:
                raise ConfigError(f"targets lists {_short(duplicates)} more than once")
        if self.dataset == "csv" and (self.data is None or self.targets is None):
            raise ConfigError(
                "dataset 'csv' needs data (the CSV path) and targets (its target columns)"
            )
        _string("featurizer", self.featurizer)
        if self.n_molecules is not None:
            _int("n_molecules", self.n_molecules, minimum=3)
        _optional_string("cache_dir", self.cache_dir)

    def _validate_split(self) -> None:
        _choice("split", self.split, tuple(SPLITS.names()))
        if self.split == "benchmark" and (self.dataset != "qm9" or self.n_molecules is not None):
            raise ConfigError(
                "split 'benchmark' is QM9's fixed 110,831/10,000/10,000 split of the full dataset; "
                "with dataset 'csv' or n_molecules use split 'random' or 'scaffold'"
            )
        fractions = self.split_fractions
        if (
            not isinstance(fractions, list)
            or len(fractions) != 3
            or not all(_is_number(f) and f > 0 for f in fractions)
            or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)
        ):
            raise ConfigError(
                f"split_fractions must be 3 positive numbers summing to 1, got {_short(fractions)}"
            )

    def _validate_model_and_balancer(self) -> None:
        if not isinstance(self.model, dict) or not isinstance(
            self.model.get("encoder", "gine"), str
        ):
            raise ConfigError(
                f"model must be a table with an 'encoder' name, got {_short(self.model)}"
            )
        _string("balancer", self.balancer)
        # Checked here (the registries list names without importing torch), so that a typo
        # fails before minutes of data loading, not after.
        _choice("balancer", self.balancer, tuple(available_balancers()))
        _choice("model.encoder", self.model.get("encoder", "gine"), tuple(available_encoders()))
        if not isinstance(self.balancer_options, dict):
            raise ConfigError(
                f"balancer_options must be a table, got {_short(self.balancer_options)}"
            )

    def _validate_optimization(self) -> None:
        _int("epochs", self.epochs, minimum=1)
        _int("batch_size", self.batch_size, minimum=1)
        _int("eval_batch_size", self.eval_batch_size, minimum=1)
        _int("lr_patience", self.lr_patience, minimum=0)
        _int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        _int("gradient_probe", self.gradient_probe, minimum=0)
        _number("lr", self.lr, low=0.0)
        _number("min_lr", self.min_lr, low=0.0, inclusive=True)
        _number("weight_decay", self.weight_decay, low=0.0, inclusive=True)
        _number("lr_factor", self.lr_factor, low=0.0, high=1.0)
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")

    def _validate_reference_maes(self) -> None:
        if self.reference_maes is None:
            return
        if not isinstance(self.reference_maes, dict) or not all(
            isinstance(k, str) and _is_number(v) and v > 0 for k, v in self.reference_maes.items()
        ):
            raise ConfigError(
                f"reference_maes must map target names to positive MAEs, got {_short(self.reference_maes)}"
            )
        if self.targets is not None:
            missing = [t for t in self.targets if t not in self.reference_maes]
            if missing:
                raise ConfigError(f"reference_maes lacks the target(s) {missing}")


def available_presets() -> list[str]:
    """Names of the presets shipped in ``molmtl/presets``."""
    folder = resources.files("molmtl") / "presets"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def read_preset(name: str) -> dict[str, Any]:
    """The settings of preset ``name``."""
    if name not in available_presets():
        raise ConfigError(f"unknown preset {name!r}; available: {available_presets()}")
    text = (resources.files("molmtl") / "presets" / f"{name}.toml").read_text()
    return tomllib.loads(text)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a ``.toml``, ``.yaml`` or ``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"config file {path} must end in .toml, .yaml or .yml")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        text = path.read_text()
        if suffix == ".toml":
            values = tomllib.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text) or {}
    except Exception as error:  # OSError, UnicodeDecodeError, TOML's and (lazy) YAML's errors
        reason = " ".join(str(error).split())[:300]
        raise ConfigError(f"cannot parse config file {path}: {reason}") from error
    # YAML aliases share one object among many places: count the values as they would expand
    if _expanded_size(values, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"config file {path} expands to more than {MAX_CONFIG_VALUES:,} values "
            "(YAML aliases?); a config holds a few dozen settings"
        )
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    return values


def _expanded_size(value: object, limit: int) -> int:
    """The number of values in ``value`` counting a shared one at every place it appears,
    counted up to just past ``limit`` (so a self-referencing structure ends too)."""
    count, pending = 0, [value]
    while pending and count <= limit:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set):
            pending.extend(item)
    return count


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 80, 80, 8, 8, 3


def _short(value: object) -> str:
    """A repr of ``value`` of at most a few hundred characters, whatever it holds."""
    return _REPR.repr(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be an integer {bounds}, got {_short(value)}")


def _number(
    name: str, value: object, *, low: float, high: float | None = None, inclusive: bool = False
) -> None:
    above_low = _is_number(value) and (value >= low if inclusive else value > low)
    below_high = high is None or (_is_number(value) and value < high)
    if not (above_low and below_high):
        bounds = f"{'>=' if inclusive else '>'} {low}" + ("" if high is None else f" and < {high}")
        raise ConfigError(f"{name} must be a number {bounds}, got {_short(value)}")


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {_short(value)}")


def _string(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {_short(value)}")


def _optional_string(name: str, value: object) -> None:
    if value is not None:
        _string(name, value)


def _bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {_short(value)}")
