"""GradDrop: per coordinate, keep only the gradients of one randomly chosen sign."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator
from molmtl.balancing._numerics import row_norms


class GradDrop(Aggregator):
    """Gradient sign dropout.

    Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
    Dropout", NeurIPS 2020 (Algorithm 1).

    Per coordinate ``k`` of the shared gradients, the positive sign purity
    ``P_k = (1 + sum_i g_ik / sum_i |g_ik|) / 2`` is compared with a fresh uniform ``U_k``: if
    ``P_k > U_k`` only the positive entries ``g_ik > 0`` are kept, if ``P_k < U_k`` only the
    negative ones; the update is ``sum_i (leak + (1 - leak) M_ik) g_ik`` for the kept mask ``M``.

    Where it acts: the paper applies GradDrop to the gradients with respect to a layer's
    activations, signed by the activations and summed over the batch, and LibMTL implements
    only that form (its ``GradDrop`` requires ``rep_grad=True``). An aggregator sees the per-task
    gradients of the shared parameters alone, so here, as in torchjd's ``GradDrop``, every
    coordinate of those gradients is one entry (the paper's form with the parameters in place of
    the activations). Fed the gradients of a positive representation with batch size 1, LibMTL's
    form gives the same update. The paper's ``f`` is the identity here, as in LibMTL; columns
    whose gradients are all zero are left at 0 (their purity 0 / 0 is never drawn against).

    The update is not ``weights @ grads`` (each coordinate has its own mask), so
    :meth:`aggregate` is overridden; the ``weights`` reported are each task's kept share,
    ``leak + (1 - leak) |M_i * g_i|^2 / |g_i|^2`` (0 for a zero or unlabelled gradient). Masked
    tasks take no part in the purities.

    Random numbers: ``U`` comes from a private generator on the gradients' device, seeded from
    ``seed`` or, when ``seed`` is None, from torch's global RNG at construction; its state is in
    :meth:`state_dict`, so a resumed run draws the same ``U`` (on the same device type; on
    another one the generator restarts from ``seed``). A training step (:meth:`aggregate`) draws
    ``[P]`` uniforms; :meth:`weights` uses the ones the next step will draw, without drawing.

    Args:
        leak: the fraction of every gradient let through whatever its sign (default 0.0, the
            paper's GradDrop and LibMTL's default); 1 is the plain sum.
        seed: seed of the uniforms; None (default) draws it from torch's global RNG.
    """

    def __init__(self, *, leak: float = 0.0, seed: int | None = None) -> None:
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"GradDrop leak must be in [0, 1], got {leak}")
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.leak = leak
        self.seed = int(seed)
        self._rng_state: Tensor | None = None
        self._rng_device_type: str | None = None

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        uniforms, _ = self._uniforms(grads)
        return self._drop(grads, mask, uniforms)[1]

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        uniforms, self._rng_state = self._uniforms(grads)
        self._rng_device_type = grads.device.type
        return self._drop(grads, mask, uniforms)

    def _drop(self, grads: Tensor, mask: Tensor, uniforms: Tensor) -> tuple[Tensor, Tensor]:
        """The ``[P]`` update and ``[T]`` kept shares for the ``[P]`` uniforms."""
        grads = torch.where(mask[:, None], grads, 0.0)  # an unlabelled row may hold anything
        magnitude = grads.abs().sum(dim=0)
        purity = 0.5 * (1.0 + grads.sum(dim=0) / torch.where(magnitude > 0, magnitude, 1.0))
        kept = ((purity > uniforms) & (grads > 0)) | ((purity < uniforms) & (grads < 0))
        kept_grads = torch.where(kept, grads, 0.0)
        update = self.leak * grads.sum(dim=0) + (1.0 - self.leak) * kept_grads.sum(dim=0)
        norms = row_norms(grads)  # squares of large gradients would overflow
        nonzero = norms > 0
        kept_share = (row_norms(kept_grads) / torch.where(nonzero, norms, 1.0)).square()
        shares = torch.where(nonzero, self.leak + (1.0 - self.leak) * kept_share, 0.0)
        return update, shares

    def _uniforms(self, grads: Tensor) -> tuple[Tensor, Tensor]:
        """This step's ``[P]`` uniforms and the generator state after drawing them."""
        generator = torch.Generator(device=grads.device)
        if self._rng_state is not None and self._rng_device_type == grads.device.type:
            generator.set_state(self._rng_state)
        else:
            generator.manual_seed(self.seed)
        uniforms = torch.rand(
            grads.shape[1], generator=generator, dtype=grads.dtype, device=grads.device
        )
        return uniforms, generator.get_state()

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"seed": self.seed}
        if self._rng_state is not None:
            state["rng_state"] = self._rng_state.clone()
            state["rng_device_type"] = self._rng_device_type
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"seed", "rng_state", "rng_device_type"}
        if "seed" not in state or unknown:
            raise ValueError(
                f"GradDrop state must have the key 'seed' and optionally 'rng_state' and "
                f"'rng_device_type', got {sorted(state)}"
            )
        self.seed = int(state["seed"])
        rng_state = state.get("rng_state")
        self._rng_state = None if rng_state is None else rng_state.clone()
        self._rng_device_type = state.get("rng_device_type")
