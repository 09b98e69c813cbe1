"""Names of the prediction columns, in one place so the DataFrame and the CSV agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from molmtl.predict._errors import PredictorError

#: suffix of an ensemble's spread column: a standard deviation, never a variance
STD_SUFFIX = "_std"
#: per-row status columns, before the property columns
STATUS_COLUMNS = ("valid", "error", "in_domain", "domain_note")


def output_columns(targets: Sequence[str], *, ensemble: bool) -> list[str]:
    """``valid, error, in_domain, domain_note`` then each target followed by its ``_std`` for
    an ensemble."""
    columns = list(STATUS_COLUMNS)
    for target in targets:
        columns.append(target)
        if ensemble:
            columns.append(target + STD_SUFFIX)
    repeated = sorted(name for name, count in Counter(["smiles", *columns]).items() if count > 1)
    if repeated:
        raise PredictorError(
            f"target names collide with the predictor's own columns: {repeated} "
            f"(the output also has 'smiles', {list(STATUS_COLUMNS)} and '<target>{STD_SUFFIX}')"
        )
    return columns
