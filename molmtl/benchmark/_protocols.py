"""Named benchmark protocols: the shared training settings, the methods compared and the seeds.

A protocol fixes everything that must be equal between the compared methods (data, split,
encoder, epochs, optimizer, model selection on the validation split); only the balancer and
its options change from one multi-task run to the next. No protocol tunes any method: every
method runs at the defaults of its paper or of its authors' code, with the protocol's learning
rate, so the tuning budget is the same (zero runs) for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MethodRun:
    """One compared method: a table label, a balancer name and the options it gets.

    ``label`` names the method in every output and its run folder, so it is filesystem-safe.
    """

    label: str
    balancer: str
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Protocol:
    """A benchmark protocol.

    Args:
        name: what ``--protocol`` takes.
        description: one paragraph for ``--list`` and the Markdown table.
        settings: :class:`~molmtl.training.TrainConfig` fields shared by every run (single-task
            and multi-task): data, split, model, epochs, optimizer.
        methods: the multi-task runs compared, in table order.
        seeds: the seeds run by default; each seed has its own single-task references.
        published_delta_m: published Δm% per label, under the published protocol (shown beside
            ours, labelled as such, never used in our numbers).
    """

    name: str
    description: str
    settings: dict[str, Any]
    methods: tuple[MethodRun, ...]
    seeds: tuple[int, ...]
    published_delta_m: dict[str, float] = field(default_factory=dict)

    def method(self, label: str) -> MethodRun:
        for method in self.methods:
            if method.label == label:
                return method
        raise ValueError(
            f"protocol {self.name!r} has no method {label!r}; its methods: {self.labels()}"
        )

    def labels(self) -> list[str]:
        return [method.label for method in self.methods]


def _method(name: str, note: str = "", **options: Any) -> MethodRun:
    return MethodRun(name.replace("+", "-"), name, options, note)


#: every method the benchmark compares, in table order, at its paper's defaults
FULL_METHODS: tuple[MethodRun, ...] = (
    _method("ew"),
    _method("si"),
    _method("uw"),
    _method("dwa"),
    _method("rlw"),
    _method("famo"),
    _method("gradnorm"),
    _method("mgda"),
    _method("pcgrad"),
    _method("pcgrad+log"),
    _method("cagrad"),
    _method("cagrad+log"),
    _method("imtl"),
    _method("nashmtl"),
    _method("nashmtl+log"),
    _method("alignedmtl"),
    _method("fairgrad"),
    _method("upgrad"),
    _method("dualproj"),
    _method("config"),
    _method("graddrop"),
    _method("stch"),
    _method("go4align"),
    _method("excessmtl"),
    _method("moco"),
    _method("sdmgrad"),
    _method("gradmax", "DB-MTL's gradient half alone (no log transform)"),
    _method("dbmtl", "the paper's defaults: beta = 0.9, beta_sigma = 0"),
    MethodRun(
        "dbmtl-beta0",
        "dbmtl",
        {"beta": 0.0},
        "ablation, not tuned on this protocol: no gradient smoothing (beta = 0)",
    ),
)

#: the 2D GINE of the qm9-quick preset
_GINE = {"encoder": "gine", "hidden_dim": 96, "n_layers": 3, "out_dim": 96}
_SHORT_SCHEDULE = {"lr": 2e-3, "lr_factor": 0.7, "lr_patience": 2, "min_lr": 1e-5}

PROTOCOLS: dict[str, Protocol] = {
    "smoke": Protocol(
        name="smoke",
        description=(
            "An install check: 300 QM9 molecules, a small 2D GINE, 3 epochs, ew and dbmtl, "
            "one seed. Minutes on a laptop; its numbers mean nothing."
        ),
        settings={
            "dataset": "qm9",
            "featurizer": "2d",
            "n_molecules": 300,
            "split": "random",
            "split_fractions": [0.8, 0.1, 0.1],
            "model": {"encoder": "gine", "hidden_dim": 32, "n_layers": 2, "out_dim": 32},
            "epochs": 3,
            "batch_size": 32,
            **_SHORT_SCHEDULE,
        },
        methods=(_method("ew"), _method("dbmtl")),
        seeds=(0,),
    ),
    "reduced": Protocol(
        name="reduced",
        description=(
            "What a 2-core CPU finishes in a sitting: the 11 QM9 targets, a seeded random "
            "10,000-molecule subset split 80/10/10, the 2D GINE of qm9-quick (96 wide, 3 "
            "layers), 30 epochs of Adam (lr 2e-3, batch 64, ReduceLROnPlateau on the "
            "validation score), the best-validation epoch tested; 3 seeds."
        ),
        settings={
            "dataset": "qm9",
            "featurizer": "2d",
            "n_molecules": 10_000,
            "split": "random",
            "split_fractions": [0.8, 0.1, 0.1],
            "model": dict(_GINE),
            "epochs": 30,
            "batch_size": 64,
            **_SHORT_SCHEDULE,
        },
        methods=FULL_METHODS,
        seeds=(0, 1, 2),
    ),
    "paper": Protocol(
        name="paper",
        description=(
            "The standard QM9 multi-task protocol of the qm9-paper preset (Navon et al. 2022, "
            "Lin et al. 2023): the 3D MPNN, 110,831/10,000/10,000, batch 120, 300 epochs, "
            "Adam 1e-3 with ReduceLROnPlateau. For a GPU."
        ),
        settings={
            "dataset": "qm9",
            "featurizer": "3d",
            "split": "benchmark",
            "model": {
                "encoder": "mpnn",
                "hidden_dim": 64,
                "edge_hidden_dim": 128,
                "n_iterations": 3,
                "set2set_steps": 3,
            },
            "epochs": 300,
            "batch_size": 120,
            "lr": 1e-3,
            "lr_factor": 0.7,
            "lr_patience": 5,
            "min_lr": 1e-5,
            "eval_batch_size": 500,
        },
        methods=FULL_METHODS,
        seeds=(0, 1, 2),
        # Δm% (lower is better) as published under this protocol, for comparison only
        published_delta_m={
            "ew": 177.6,
            "si": 77.8,
            "uw": 108.0,
            "mgda": 120.5,
            "pcgrad": 125.7,
            "cagrad": 112.8,
            "nashmtl": 62.0,
            "famo": 58.5,
            "fairgrad": 57.9,  # Ban & Ji, ICML 2024
        },
    ),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; available: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]
