"""Tiny untrained run directories, written once per session with build_model + save_model.

Untrained weights are enough here: the tests check alignment, agreement and safety, not
accuracy. Random (seeded) weights and non-trivial target scaling make every molecule's
prediction distinct, so a shifted row cannot go unnoticed. By default a run directory stores
no applicability domain (as those written before the trainer stored one): its predictions are
judged by QM9's chemistry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from molmtl import featurizers
from molmtl.featurizers import ApplicabilityDomain
from molmtl.models import build_model, save_model

TARGETS = [
    {"name": "mu", "unit": "D"},
    {"name": "gap", "unit": "eV"},
    {"name": "cv", "unit": "cal/(mol K)"},
]
TINY_GINE = {"encoder": "gine", "hidden_dim": 16, "n_layers": 2, "out_dim": 16}


def write_run_dir(
    run_dir: Path,
    *,
    seed: int,
    targets: list[dict] = TARGETS,
    model_config: dict = TINY_GINE,
    featurizer: str = "2d",
    domain: ApplicabilityDomain | None = None,
) -> Path:
    """A run directory holding a seeded, untrained model (as `molmtl train` would lay it out),
    with ``domain`` stored as config.json's ``"domain"`` when given."""
    spec = featurizers.get(featurizer).spec
    torch.manual_seed(seed)
    model = build_model(
        model_config, node_dim=spec["node_dim"], edge_dim=spec["edge_dim"], n_tasks=len(targets)
    )
    n_tasks = len(targets)
    model.set_target_scaling(torch.linspace(-3.0, 3.0, n_tasks), torch.linspace(0.5, 20.0, n_tasks))
    metadata = {"featurizer": spec, "targets": targets}
    if domain is not None:
        metadata["domain"] = domain.to_dict()
    save_model(run_dir, model, metadata)
    return run_dir


@pytest.fixture(scope="session")
def make_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_run_dir(seed=..., **options)`` in a fresh temporary directory."""

    def make(**options) -> Path:
        return write_run_dir(tmp_path_factory.mktemp("run"), **options)

    return make


@pytest.fixture(scope="session")
def run_dir(make_run_dir: Callable[..., Path]) -> Path:
    return make_run_dir(seed=0)


@pytest.fixture(scope="session")
def ensemble_run_dirs(make_run_dir: Callable[..., Path], run_dir: Path) -> list[Path]:
    return [run_dir, make_run_dir(seed=1), make_run_dir(seed=2)]


@pytest.fixture
def fresh_run_dir(make_run_dir: Callable[..., Path]) -> Path:
    """A run directory a test may damage."""
    return make_run_dir(seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; two threads on busy shared cores spin. Restored
    after each module, so tests elsewhere keep torch's setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
