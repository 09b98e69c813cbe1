"""Predict properties for new SMILES with a trained model or an ensemble (see docs/predict.md).

Public API: :class:`Predictor` (``load``, ``predict``, ``predict_file``),
:class:`PredictionSummary`, :class:`PredictorError`; :func:`open_output` and :func:`check_output`
(how a CSV output path is checked and written: atomically, or streamed into a FIFO or device).
"""

from molmtl.predict._errors import PredictorError
from molmtl.predict._output import TEXT_ERRORS, check_output, open_output
from molmtl.predict._predictor import Prediction, Predictor
from molmtl.predict._stream import CSV_FLOAT_FORMAT, write_csv
from molmtl.predict._summary import PredictionSummary

__all__ = [
    "CSV_FLOAT_FORMAT",
    "TEXT_ERRORS",
    "Prediction",
    "PredictionSummary",
    "Predictor",
    "PredictorError",
    "check_output",
    "open_output",
    "write_csv",
]
