"""``ApplicabilityDomain``: the chemistry a model was trained on, learned from the training set.

A model extrapolates outside the chemistry it has seen. The domain learns, from the
:class:`~molmtl.featurizers.facts.MoleculeFacts` of the training molecules, which elements,
heavy-atom counts, atom formal charges, net charges, radicals, isotope labels and fragment
counts occur, and says for any molecule why it lies outside (scikit-learn style: ``fit`` learns,
learned state ends in ``_``; JSON-ready with ``to_dict`` / ``from_dict``).

>>> from molmtl import featurizers
>>> train = featurizers.get("2d").featurize_many(["CCO", "CC(=O)O", "c1ccccc1"]).facts
>>> domain = ApplicabilityDomain().fit(train)
>>> domain.explain("CCCl")
'element Cl not seen in training'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from molmtl.featurizers._base import parse_smiles
from molmtl.featurizers.facts import ELEMENT_SYMBOLS, N_ELEMENTS, MoleculeFacts, molecule_facts

#: version of :meth:`ApplicabilityDomain.to_dict`'s layout
DOMAIN_FORMAT = 1
_LEARNED = (
    "n_molecules",
    "elements",
    "heavy_atoms",
    "atom_charges",
    "net_charges",
    "max_radical_electrons",
    "isotopes",
    "max_fragments",
)


class ApplicabilityDomain:
    """The chemistry of a set of molecules; molecules outside it are extrapolations.

    Args:
        reference: what the domain was learned from, as reasons name it ("element Cl not seen
            in training").

    Attributes (after :meth:`fit` or :meth:`from_dict`):
        n_molecules_: molecules fitted on.
        elements_: element symbols seen, by atomic number (hydrogen when any atom carries one).
        heavy_atoms_: ``(min, max)`` heavy atoms per molecule.
        atom_charges_: ``(min, max)`` atom formal charge.
        net_charges_: the net charges seen, ascending.
        max_radical_electrons_: most unpaired electrons in one molecule.
        isotopes_: whether any isotope-labelled atom was seen.
        max_fragments_: most disconnected parts in one molecule (1: no salts or mixtures).
    """

    def __init__(self, reference: str = "training") -> None:
        self.reference = reference

    def fit(self, facts: MoleculeFacts) -> ApplicabilityDomain:
        """Learn the domain of the ``G`` molecules ``facts`` (vectorized: milliseconds for 10^5)."""
        if len(facts) == 0:
            raise ValueError("cannot fit an applicability domain on 0 molecules")
        seen = np.flatnonzero(facts.elements.any(axis=0))
        self.n_molecules_ = len(facts)
        self.elements_ = tuple(ELEMENT_SYMBOLS[z] for z in seen)
        self.heavy_atoms_ = (int(facts.heavy_atoms.min()), int(facts.heavy_atoms.max()))
        self.atom_charges_ = (int(facts.min_atom_charge.min()), int(facts.max_atom_charge.max()))
        self.net_charges_ = tuple(int(c) for c in np.unique(facts.net_charge))
        self.max_radical_electrons_ = int(facts.radical_electrons.max())
        self.isotopes_ = bool((facts.isotopes > 0).any())
        self.max_fragments_ = int(facts.fragments.max())
        return self

    def contains(self, facts: MoleculeFacts) -> np.ndarray:
        """``[G]`` bool: True for the molecules of ``facts`` inside the domain."""
        outside = np.zeros(len(facts), dtype=bool)
        for violated, _ in self._rules(facts):
            outside |= violated
        return ~outside

    def reasons(self, facts: MoleculeFacts) -> list[list[str]]:
        """``[G]`` lists of the reasons each molecule lies outside; empty lists inside."""
        found: list[list[str]] = [[] for _ in range(len(facts))]
        for violated, describe in self._rules(facts):
            for g in np.flatnonzero(violated):
                found[g].append(describe(g))
        return found

    def notes(self, facts: MoleculeFacts) -> list[str]:
        """``[G]`` the reasons joined with '; ', '' for molecules inside."""
        return ["; ".join(reasons) for reasons in self.reasons(facts)]

    def explain(self, smiles: str) -> str:
        """Why the molecule ``smiles`` lies outside, '' when inside.

        Raises:
            InvalidMoleculeError: ``smiles`` is not a valid molecule (the message says why).
        """
        facts = MoleculeFacts.from_rows([molecule_facts(parse_smiles(smiles), smiles)])
        return self.notes(facts)[0]

    def _rules(self, facts: MoleculeFacts) -> list[tuple[np.ndarray, Callable[[int], str]]]:
        """Per rule: ``[G]`` bool, True where violated, and the reason of molecule ``g``."""
        self._check_fitted()
        seen = np.zeros(N_ELEMENTS, dtype=bool)
        seen[[ELEMENT_SYMBOLS.index(s) for s in self.elements_]] = True
        unseen = facts.elements & ~seen
        heavy, (low_charge, high_charge) = facts.heavy_atoms, self.atom_charges_
        where = self.reference
        heavy_had = f"{where} had {_span(*self.heavy_atoms_)}"
        net_had = f"{where} had {_choices(self.net_charges_)}"
        radicals_had = f"{where} had {_at_most(self.max_radical_electrons_)}"
        fragments_had = f"{where} had at most {self.max_fragments_}"
        return [
            (unseen.any(axis=1), lambda g: _unseen_elements(unseen[g], where)),
            (
                (heavy < self.heavy_atoms_[0]) | (heavy > self.heavy_atoms_[1]),
                lambda g: f"{_count(heavy[g], 'heavy atom')}, {heavy_had}",
            ),
            (
                (facts.min_atom_charge < low_charge) | (facts.max_atom_charge > high_charge),
                lambda g: _atom_charges(facts, g, self.atom_charges_, where),
            ),
            (
                ~np.isin(facts.net_charge, self.net_charges_),
                lambda g: f"net charge {_signed(facts.net_charge[g])}, {net_had}",
            ),
            (
                facts.radical_electrons > self.max_radical_electrons_,
                lambda g: (
                    f"{_count(facts.radical_electrons[g], 'radical electron')}, {radicals_had}"
                ),
            ),
            (
                (facts.isotopes > 0) & (not self.isotopes_),
                lambda g: f"{_count(facts.isotopes[g], 'isotope-labelled atom')}, {where} had none",
            ),
            (
                facts.fragments > self.max_fragments_,
                lambda g: f"{facts.fragments[g]} fragments, {fragments_had}",
            ),
        ]

    def _check_fitted(self) -> None:
        if not hasattr(self, "elements_"):
            raise ValueError(
                "this ApplicabilityDomain is not fitted: call fit(facts) or use from_dict()"
            )

    def to_dict(self) -> dict[str, Any]:
        """The learned domain as JSON-ready builtins (stored as ``"domain"`` in config.json)."""
        self._check_fitted()
        learned = {key: getattr(self, key + "_") for key in _LEARNED}
        return {
            "format": DOMAIN_FORMAT,
            "reference": self.reference,
            **{
                key: list(value) if isinstance(value, tuple) else value
                for key, value in learned.items()
            },
        }

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> ApplicabilityDomain:
        """The domain :meth:`to_dict` described.

        Raises:
            ValueError: not such a dict: the message names the unsupported format, the missing
                keys, the unknown element or the malformed value.
        """
        if not isinstance(stored, dict):
            raise ValueError(f"an applicability domain is a dict, got {type(stored).__name__}")
        if stored.get("format") != DOMAIN_FORMAT:
            raise ValueError(
                f"applicability domain format {stored.get('format')!r} is not {DOMAIN_FORMAT}"
            )
        missing = [key for key in ("reference", *_LEARNED) if key not in stored]
        if missing:
            raise ValueError(f"applicability domain lacks {missing}; it has {sorted(stored)}")
        unknown = [s for s in stored["elements"] if s not in ELEMENT_SYMBOLS[1:]]
        if unknown:
            raise ValueError(f"applicability domain has unknown element symbol(s) {unknown}")
        domain = cls(reference=str(stored["reference"]))
        try:
            domain.n_molecules_ = int(stored["n_molecules"])
            domain.elements_ = tuple(sorted(stored["elements"], key=ELEMENT_SYMBOLS.index))
            domain.heavy_atoms_ = _pair(stored["heavy_atoms"])
            domain.atom_charges_ = _pair(stored["atom_charges"])
            domain.net_charges_ = tuple(sorted(int(c) for c in stored["net_charges"]))
            domain.max_radical_electrons_ = int(stored["max_radical_electrons"])
            domain.isotopes_ = bool(stored["isotopes"])
            domain.max_fragments_ = int(stored["max_fragments"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"applicability domain has a malformed value: {error}") from None
        return domain

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApplicabilityDomain):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        if not hasattr(self, "elements_"):
            return f"ApplicabilityDomain(reference={self.reference!r})"
        return (
            f"ApplicabilityDomain({self.reference!r}: {self.n_molecules_} molecules, elements "
            f"{' '.join(self.elements_)}, {_span(*self.heavy_atoms_)} heavy atoms)"
        )


def _pair(values: Any) -> tuple[int, int]:
    low, high = (int(v) for v in values)
    return low, high


def _signed(value: int) -> str:
    return f"{value:+d}" if value else "0"


def _span(low: int, high: int) -> str:
    return f"only {low}" if low == high else f"{low}–{high}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _choices(charges: tuple[int, ...]) -> str:
    return ("only " if len(charges) == 1 else "") + ", ".join(map(_signed, charges))


def _at_most(count: int) -> str:
    return "none" if count == 0 else f"at most {count}"


def _unseen_elements(unseen: np.ndarray, where: str) -> str:
    symbols = [ELEMENT_SYMBOLS[z] for z in np.flatnonzero(unseen)]
    return f"element{'s' if len(symbols) > 1 else ''} {', '.join(symbols)} not seen in {where}"


def _atom_charges(facts: MoleculeFacts, g: int, seen: tuple[int, int], where: str) -> str:
    low, high = int(facts.min_atom_charge[g]), int(facts.max_atom_charge[g])
    outside = [_signed(c) for c in dict.fromkeys((low, high)) if not seen[0] <= c <= seen[1]]
    had = (
        f"only {_signed(seen[0])}"
        if seen[0] == seen[1]
        else f"{_signed(seen[0])} to {_signed(seen[1])}"
    )
    plural = "s" if len(outside) > 1 else ""
    return f"atom charge{plural} {' and '.join(outside)}, {where} had {had}"


#: QM9's chemistry (all 130,831 molecules): the domain assumed for run directories that store
#: none (written before the domain was learned from the training set)
QM9_DOMAIN = ApplicabilityDomain.from_dict(
    {
        "format": DOMAIN_FORMAT,
        "reference": "QM9",
        "n_molecules": 130_831,
        "elements": ["H", "C", "N", "O", "F"],
        "heavy_atoms": [1, 9],
        "atom_charges": [-1, 1],
        "net_charges": [0],
        "max_radical_electrons": 0,
        "isotopes": False,
        "max_fragments": 1,
    }
)
