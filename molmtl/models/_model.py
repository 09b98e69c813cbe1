"""The multi-task model: a shared encoder, one head per task, and the target scaling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from molmtl.nn import Encoder, encoder_options, get_encoder
from molmtl.nn.heads import TaskHeads

if TYPE_CHECKING:
    from molmtl.data import GraphBatch

#: upper bounds of a model config, checked before anything is built: a width (any ``*_dim``
#: option, the featurizer's dimensions included), a count of layers, rounds or steps (any other
#: integer option), the number of tasks, and the parameters of the whole model
MAX_WIDTH = 4096
MAX_DEPTH = 64
MAX_TASKS = 1024
MAX_PARAMETERS = 100_000_000


class MultiTaskModel(nn.Module):
    """Shared encoder + per-task heads, trained on standardized targets.

    The target statistics of the training split are buffers, so a saved model predicts in
    physical units on its own: ``predict(batch) = forward(batch) * target_std + target_mean``.

    Args:
        encoder: the shared encoder (its parameters are :meth:`shared_parameters`).
        n_tasks: T.
        head_hidden_dim: hidden width of each task head, or None for linear heads.
    """

    def __init__(
        self, encoder: Encoder, n_tasks: int, *, head_hidden_dim: int | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = TaskHeads(encoder.out_dim, n_tasks, hidden_dim=head_hidden_dim)
        self.n_tasks = n_tasks
        self.register_buffer("target_mean", torch.zeros(n_tasks))
        self.register_buffer("target_std", torch.ones(n_tasks))
        #: the ``model_config`` this model was built from, with ``node_dim``, ``edge_dim`` and
        #: ``n_tasks`` (set by :func:`build_model`; :func:`save_model` stores it).
        self.config: dict[str, Any] = {}

    def forward(self, batch: GraphBatch) -> Tensor:
        """``[num_graphs, T]`` predictions in standardized units."""
        return self.heads(self.encoder(batch))

    def predict(self, batch: GraphBatch) -> Tensor:
        """``[num_graphs, T]`` predictions in physical units."""
        return self(batch) * self.target_std + self.target_mean

    def set_target_scaling(self, mean: Tensor, std: Tensor) -> None:
        """Store the ``[T]`` training-split mean and std of the targets."""
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != (self.n_tasks,) or std.shape != (self.n_tasks,):
            raise ValueError(
                f"target mean and std must have shape [{self.n_tasks}], got "
                f"{list(mean.shape)} and {list(std.shape)}"
            )
        self.target_mean.copy_(mean)
        self.target_std.copy_(std)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters shared by all tasks (the encoder)."""
        return self.encoder.parameters()

    def task_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that belong to one task each (the heads)."""
        return self.heads.parameters()


def build_model(
    model_config: dict[str, Any], *, node_dim: int, edge_dim: int, n_tasks: int
) -> MultiTaskModel:
    """Build a :class:`MultiTaskModel` from a config such as ``{"encoder": "mpnn", "hidden_dim": 64}``.

    Keys: ``encoder`` (a name from :func:`molmtl.nn.available_encoders`, default ``"gine"``),
    ``head_hidden_dim`` (None for linear heads), and the encoder's own options.

    Raises:
        ValueError: naming the unknown encoder or option, or the size beyond its bound
            (:func:`check_model_config`).
    """
    check_model_config(model_config, node_dim=node_dim, edge_dim=edge_dim, n_tasks=n_tasks)
    options = dict(model_config)
    encoder_name = options.pop("encoder", "gine")
    head_hidden_dim = options.pop("head_hidden_dim", None)
    encoder = get_encoder(encoder_name, node_dim=node_dim, edge_dim=edge_dim, **options)
    model = MultiTaskModel(encoder, n_tasks, head_hidden_dim=head_hidden_dim)
    model.config = {
        "encoder": encoder_name,
        **encoder_options(encoder_name),
        **options,
        "head_hidden_dim": head_hidden_dim,
        "node_dim": node_dim,
        "edge_dim": edge_dim,
        "n_tasks": n_tasks,
    }
    return model


def check_model_config(
    model_config: dict[str, Any], *, node_dim: int, edge_dim: int, n_tasks: int
) -> int:
    """Check a model config without allocating it; return its number of parameters.

    Names, option types and the bounds :data:`MAX_WIDTH`, :data:`MAX_DEPTH`, :data:`MAX_TASKS`
    are checked first; then the model is built on PyTorch's ``meta`` device (shapes only, no
    memory, no random numbers drawn) to count its parameters against :data:`MAX_PARAMETERS`.

    Raises:
        ValueError: naming the option and its valid range.
    """
    if not isinstance(model_config, dict):
        raise ValueError(f"model config must be a table, got {type(model_config).__name__}")
    options = dict(model_config)
    name = options.pop("encoder", "gine")
    if not isinstance(name, str):
        raise ValueError(f"model encoder must be a name, got {_short(name)}")
    head_hidden_dim = options.pop("head_hidden_dim", None)
    valid = encoder_options(name)  # unknown encoder: ValueError listing the valid ones
    unknown = sorted(map(str, set(options) - set(valid)))
    if unknown:
        raise ValueError(
            f"unknown option(s) {_short(unknown)} for encoder {name!r}; valid: {sorted(valid)}"
        )
    # the integer options are sizes (a future float option, e.g. a dropout rate, is not)
    sizes = {"node_dim": node_dim, "edge_dim": edge_dim, "n_tasks": n_tasks}
    sizes.update((k, v) for k, v in options.items() if type(valid[k]) is int)
    if head_hidden_dim is not None:
        sizes["head_hidden_dim"] = head_hidden_dim
    for key, value in sizes.items():
        _check_size(key, value)
    with torch.device("meta"):
        shapes = MultiTaskModel(
            get_encoder(name, node_dim=node_dim, edge_dim=edge_dim, **options),
            n_tasks,
            head_hidden_dim=head_hidden_dim,
        )
    count = sum(parameter.numel() for parameter in shapes.parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"the model {_short(model_config)} has {count:,} parameters, more than the "
            f"{MAX_PARAMETERS:,} molmtl builds; use smaller widths"
        )
    return count


def _check_size(key: str, value: object) -> None:
    """``value`` is an int in ``[1, bound]``, the bound that of a width, a task count or a depth."""
    bound = MAX_TASKS if key == "n_tasks" else MAX_WIDTH if key.endswith("_dim") else MAX_DEPTH
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
        raise ValueError(
            f"model option {key} must be an integer from 1 to {bound}, got {_short(value)}"
        )


def _short(value: object) -> str:
    """``repr(value)``, cut to 100 characters (an edited config may hold anything)."""
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
