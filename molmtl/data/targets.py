"""Prediction targets as data: name, source column, unit and conversion (QM9's 19 and generic)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

HARTREE_TO_EV = 27.211386246
KCAL_PER_MOL_TO_EV = 0.04336414


@dataclass(frozen=True)
class TargetInfo:
    """One prediction target.

    Attributes:
        name: name used in configs, metrics and prediction columns.
        column: column of the source file holding the raw values.
        unit: unit of the values molmtl trains on and predicts (after ``factor``).
        factor: multiplies the source column to give ``unit``.
        report_unit: unit of reported errors (e.g. meV for orbital energies).
        report_scale: multiplies a value in ``unit`` to give ``report_unit``.
        description: what the target is.
    """

    name: str
    column: str
    unit: str = ""
    factor: float = 1.0
    report_unit: str = ""
    report_scale: float = 1.0
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TargetInfo:
        return cls(**record)


def _qm9(name, column, unit, factor, description, report_unit=None, report_scale=1.0) -> TargetInfo:
    return TargetInfo(name, column, unit, factor, report_unit or unit, report_scale, description)


# Units and factors are PyTorch Geometric's QM9 conventions; the benchmark reports the
# energies of homo, lumo, zpve and the atomization energies in meV.
QM9_TARGETS: dict[str, TargetInfo] = {
    t.name: t
    for t in (
        _qm9("mu", "mu", "D", 1.0, "dipole moment"),
        _qm9("alpha", "alpha", "a0^3", 1.0, "isotropic polarizability"),
        _qm9("homo", "homo", "eV", HARTREE_TO_EV, "HOMO energy", "meV", 1000.0),
        _qm9("lumo", "lumo", "eV", HARTREE_TO_EV, "LUMO energy", "meV", 1000.0),
        _qm9("gap", "gap", "eV", HARTREE_TO_EV, "HOMO-LUMO gap", "meV", 1000.0),
        _qm9("r2", "r2", "a0^2", 1.0, "electronic spatial extent"),
        _qm9("zpve", "zpve", "eV", HARTREE_TO_EV, "zero-point vibrational energy", "meV", 1000.0),
        _qm9("u0", "u0", "eV", HARTREE_TO_EV, "internal energy at 0 K"),
        _qm9("u298", "u298", "eV", HARTREE_TO_EV, "internal energy at 298.15 K"),
        _qm9("h298", "h298", "eV", HARTREE_TO_EV, "enthalpy at 298.15 K"),
        _qm9("g298", "g298", "eV", HARTREE_TO_EV, "free energy at 298.15 K"),
        _qm9("cv", "cv", "cal/(mol K)", 1.0, "heat capacity at 298.15 K"),
        _qm9(
            "u0_atom",
            "u0_atom",
            "eV",
            KCAL_PER_MOL_TO_EV,
            "atomization energy at 0 K",
            "meV",
            1000.0,
        ),
        _qm9(
            "u298_atom",
            "u298_atom",
            "eV",
            KCAL_PER_MOL_TO_EV,
            "atomization energy at 298.15 K",
            "meV",
            1000.0,
        ),
        _qm9(
            "h298_atom",
            "h298_atom",
            "eV",
            KCAL_PER_MOL_TO_EV,
            "atomization enthalpy at 298.15 K",
            "meV",
            1000.0,
        ),
        _qm9(
            "g298_atom",
            "g298_atom",
            "eV",
            KCAL_PER_MOL_TO_EV,
            "atomization free energy at 298.15 K",
            "meV",
            1000.0,
        ),
        _qm9("A", "A", "GHz", 1.0, "rotational constant A"),
        _qm9("B", "B", "GHz", 1.0, "rotational constant B"),
        _qm9("C", "C", "GHz", 1.0, "rotational constant C"),
    )
}

#: the standard 11-task QM9 benchmark (Nash-MTL protocol), in its order
QM9_DEFAULT_TASKS: tuple[str, ...] = (
    "mu",
    "alpha",
    "homo",
    "lumo",
    "r2",
    "zpve",
    "u0_atom",
    "u298_atom",
    "h298_atom",
    "g298_atom",
    "cv",
)


def qm9_targets(names: Sequence[str] | None = None) -> list[TargetInfo]:
    """QM9 targets by name, in the given order; None gives the 11 benchmark tasks."""
    names = QM9_DEFAULT_TASKS if names is None else names
    if isinstance(names, str):
        raise TypeError(f"targets must be a list of names, got the string {names!r}")
    unknown = [n for n in names if n not in QM9_TARGETS]
    if unknown:
        raise ValueError(f"unknown QM9 target(s) {unknown}; valid: {', '.join(QM9_TARGETS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate QM9 targets in {list(names)}")
    return [QM9_TARGETS[n] for n in names]
