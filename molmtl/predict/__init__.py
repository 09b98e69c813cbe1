"""Predict properties for new SMILES with a trained model or an ensemble (see docs/predict.md).

Public API: :class:`Predictor` (``load``, ``predict``, ``predict_file``),
:class:`PredictionSummary`, :class:`PredictorError`.
"""

from molmtl.predict._errors import PredictorError
from molmtl.predict._predictor import Prediction, Predictor
from molmtl.predict._stream import CSV_FLOAT_FORMAT
from molmtl.predict._summary import PredictionSummary

__all__ = ["CSV_FLOAT_FORMAT", "Prediction", "PredictionSummary", "Predictor", "PredictorError"]
