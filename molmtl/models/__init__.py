"""Multi-task models and their run-directory storage.

>>> model = build_model({"encoder": "mpnn"}, node_dim=11, edge_dim=5, n_tasks=11)
>>> save_model("runs/x", model, {"featurizer": spec, "targets": targets})
>>> model, config = load_model("runs/x")
"""

from molmtl.models._io import FORMAT_VERSION, RunDirError, load_model, save_model
from molmtl.models._model import MultiTaskModel, build_model

__all__ = [
    "FORMAT_VERSION",
    "MultiTaskModel",
    "RunDirError",
    "build_model",
    "load_model",
    "save_model",
]
