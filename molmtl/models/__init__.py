"""Multi-task models and their run-directory storage.

>>> model = build_model({"encoder": "mpnn"}, node_dim=11, edge_dim=5, n_tasks=11)
>>> save_model("runs/x", model, {"featurizer": spec, "targets": targets})
>>> model, config = load_model("runs/x")
"""

from molmtl.models._io import FORMAT_VERSION, RunDirError, load_model, save_model
from molmtl.models._model import (
    MAX_DEPTH,
    MAX_PARAMETERS,
    MAX_TASKS,
    MAX_WIDTH,
    MultiTaskModel,
    build_model,
    check_model_config,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "MAX_PARAMETERS",
    "MAX_TASKS",
    "MAX_WIDTH",
    "MultiTaskModel",
    "RunDirError",
    "build_model",
    "check_model_config",
    "load_model",
    "save_model",
]
