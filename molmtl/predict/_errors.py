"""Errors of the predictor."""


class PredictorError(ValueError):
    """A prediction cannot run as asked: mismatched ensemble members, a missing SMILES column,
    an output column that would overwrite an input column, a bad setting."""
