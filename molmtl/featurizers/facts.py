"""Per-molecule chemistry facts, computed once at featurization: what an applicability domain
is fitted on and checked against (:mod:`molmtl.featurizers.domain`), without parsing again.

>>> from molmtl import featurizers
>>> facts = featurizers.get("2d").featurize_many(["CCO", "[NH4+]"]).facts
>>> facts.heavy_atoms.tolist(), facts.net_charge.tolist()
([3, 1], [0, 1])
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from rdkit import Chem
from rdkit.Chem.rdMolDescriptors import CalcMolFormula

#: columns of :attr:`MoleculeFacts.elements`: atomic numbers 0 (unused) to 118
N_ELEMENTS = 119
ELEMENT_SYMBOLS: tuple[str, ...] = (
    "*",
    *map(Chem.GetPeriodicTable().GetElementSymbol, range(1, 119)),
)
_ATOMIC_NUMBER = {symbol: z for z, symbol in enumerate(ELEMENT_SYMBOLS) if z}
_FORMULA_ELEMENT = re.compile(r"[A-Z][a-z]?")


class FactRow(NamedTuple):
    """The facts of one molecule (see :class:`MoleculeFacts` for each field)."""

    heavy_atoms: int
    atomic_numbers: tuple[int, ...]
    min_atom_charge: int
    max_atom_charge: int
    net_charge: int
    radical_electrons: int
    isotopes: int
    fragments: int


def molecule_facts(mol: Chem.Mol, smiles: str) -> FactRow:
    """Facts of a sanitized molecule parsed from ``smiles`` (a few µs).

    The elements come from the molecular formula, so hydrogen counts when any atom carries one,
    implicit or explicit. Charges, radicals and isotope labels need bracket atoms in SMILES, and
    several fragments a '.', so plain SMILES skip reading them atom by atom.
    """
    atomic_numbers = tuple(
        sorted({_ATOMIC_NUMBER[s] for s in _FORMULA_ELEMENT.findall(CalcMolFormula(mol))})
    )
    fragments = len(Chem.GetMolFrags(mol)) if "." in smiles else 1
    if "[" not in smiles:
        return FactRow(mol.GetNumHeavyAtoms(), atomic_numbers, 0, 0, 0, 0, 0, fragments)
    atoms = list(mol.GetAtoms())
    charges = [atom.GetFormalCharge() for atom in atoms]
    return FactRow(
        heavy_atoms=mol.GetNumHeavyAtoms(),
        atomic_numbers=atomic_numbers,
        min_atom_charge=min(charges),
        max_atom_charge=max(charges),
        net_charge=sum(charges),
        radical_electrons=sum(atom.GetNumRadicalElectrons() for atom in atoms),
        isotopes=sum(atom.GetIsotope() != 0 for atom in atoms),
        fragments=fragments,
    )


@dataclass(frozen=True, repr=False)
class MoleculeFacts:
    """Chemistry facts of G molecules, one row each, aligned with the graphs of a featurized batch.

    Attributes:
        heavy_atoms: ``[G]`` int64 number of atoms other than hydrogen.
        elements: ``[G, N_ELEMENTS]`` bool, column ``z`` True when element ``z`` is present
            (hydrogen when any atom carries one, implicit or explicit).
        min_atom_charge, max_atom_charge: ``[G]`` int64 lowest and highest atom formal charge.
        net_charge: ``[G]`` int64 sum of the formal charges.
        radical_electrons: ``[G]`` int64 unpaired electrons in the molecule.
        isotopes: ``[G]`` int64 atoms with an isotope label (``[2H]``, ``[13C]``).
        fragments: ``[G]`` int64 disconnected parts (``[Na+].[Cl-]`` has 2).
    """

    heavy_atoms: np.ndarray
    elements: np.ndarray
    min_atom_charge: np.ndarray
    max_atom_charge: np.ndarray
    net_charge: np.ndarray
    radical_electrons: np.ndarray
    isotopes: np.ndarray
    fragments: np.ndarray

    def __len__(self) -> int:
        return len(self.heavy_atoms)

    def __repr__(self) -> str:
        return f"MoleculeFacts({len(self)} molecules)"

    @classmethod
    def from_rows(cls, rows: Sequence[FactRow]) -> MoleculeFacts:
        """Facts of the molecules ``rows`` (from :func:`molecule_facts`), in that order."""
        elements = np.zeros((len(rows), N_ELEMENTS), dtype=bool)
        owners = [i for i, row in enumerate(rows) for _ in row.atomic_numbers]
        elements[owners, [z for row in rows for z in row.atomic_numbers]] = True
        columns = {
            name: np.array([getattr(row, name) for row in rows], dtype=np.int64)
            for name in cls.scalar_names()
        }
        return cls(elements=elements, **columns)

    @classmethod
    def scalar_names(cls) -> list[str]:
        """The ``[G]`` integer fields (all but ``elements``)."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "elements"]

    @classmethod
    def concatenate(cls, parts: Sequence[MoleculeFacts]) -> MoleculeFacts:
        """The rows of ``parts``, one after the other."""
        if not parts:
            return cls.from_rows([])
        return cls(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(cls)
            }
        )

    def select(self, index: np.ndarray | Sequence[int]) -> MoleculeFacts:
        """The rows ``index`` (positions, or a ``[G]`` bool mask), in that order."""
        index = np.asarray(index)
        return MoleculeFacts(**{name: values[index] for name, values in self.arrays().items()})

    def arrays(self) -> dict[str, np.ndarray]:
        """Field name → array (for storing; :meth:`from_arrays` reads it back)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> MoleculeFacts:
        """Facts from :meth:`arrays`; raises ``KeyError`` naming a missing field."""
        return cls(
            elements=np.asarray(arrays["elements"], dtype=bool),
            **{name: np.asarray(arrays[name], dtype=np.int64) for name in cls.scalar_names()},
        )
