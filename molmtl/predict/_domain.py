"""The applicability domain of a run directory, and of an ensemble of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molmtl.featurizers import QM9_DOMAIN, ApplicabilityDomain, MoleculeFacts
from molmtl.rundir import CONFIG_FILE, RunDirError

#: last reason of a molecule outside QM9's chemistry, for a run directory that stores no domain
#: (trained before molmtl learned the domain from the training set): QM9's is assumed
NO_STORED_DOMAIN = "the model stores no training domain: QM9's chemistry assumed"


def stored_domain(config: dict[str, Any], run_dir: Path) -> ApplicabilityDomain | None:
    """The domain stored as ``"domain"`` in a run's config.json, None when there is none.

    Raises:
        RunDirError: the stored domain cannot be read (the message names the file and why).
    """
    if "domain" not in config:
        return None
    try:
        return ApplicabilityDomain.from_dict(config["domain"])
    except ValueError as error:
        raise RunDirError(f"{run_dir / CONFIG_FILE}: invalid 'domain': {error}") from error


class EnsembleDomain:
    """The domains of a model's members: a molecule is inside when inside every member's.

    Args:
        domains: one per member, None for a member whose run stores no domain (it is judged
            by :data:`~molmtl.featurizers.QM9_DOMAIN`, and its notes say so).
    """

    def __init__(self, domains: Sequence[ApplicabilityDomain | None]) -> None:
        # members trained on the same data share a domain: judge each distinct one once
        self.distinct: list[ApplicabilityDomain | None] = []
        for domain in domains:
            if domain not in self.distinct:
                self.distinct.append(domain)

    def check(self, facts: MoleculeFacts) -> tuple[np.ndarray, list[str]]:
        """``[G]`` bool, inside every member's domain, and ``[G]`` notes ('' when inside): the
        members' reasons, each once, in member order, joined with '; '."""
        combined: list[dict[str, None]] = [{} for _ in range(len(facts))]
        for domain in self.distinct:
            for reasons, found in zip(combined, (domain or QM9_DOMAIN).reasons(facts), strict=True):
                reasons.update(dict.fromkeys(found))
                if found and domain is None:
                    reasons[NO_STORED_DOMAIN] = None
        notes = ["; ".join(reasons) for reasons in combined]
        return np.array([not note for note in notes], dtype=bool), notes
