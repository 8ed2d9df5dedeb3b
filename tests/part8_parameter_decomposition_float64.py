"""Gradient gaps that are float32 rounding alone: the same call in float64 agrees with the reference.

A correct learner may compute a loss in another order than the reference: e.g. the reconstruction target as
chain(x) with every mask 1, (W - U V) a + U V a, which equals W a in exact arithmetic but carries float32 rounding
(~eps_32 × |W a| × a few). The loss's gradient is (2 / N) Σ (y - target) ∂y/∂θ, so a target error δ moves it by
(2 / N) Σ δ ∂y/∂θ, which no fixed rtol bounds (an entry whose residual-weighted sum nearly cancels has a large
relative error). Rather than widen the float32 tolerance (and let real slips through), a gradient that fails the
float32 comparison is re-checked with the learner's own function on float64 copies of the inputs: there rounding is
2^29 times smaller, so a correct formula agrees to ~1e-12 relative, well inside sqrt(eps_64) ≈ 1.5e-8, while any
real mistake still differs at its own (float32-visible) size. A learner whose code can't run in float64 keeps the
float32 verdict.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

TOL64 = torch.finfo(torch.float64).eps ** 0.5  # far above float64 rounding, far below any float32-visible slip


def close32(got: list[Tensor | None], right: list[Tensor] | tuple[Tensor, ...]) -> bool:
    """The float32 comparison _expect_grad makes, for every leaf at once."""
    return all(
        isinstance(g, Tensor) and g.shape == r.shape and torch.allclose(g, r, rtol=1e-4, atol=1e-6)
        for g, r in zip(got, right, strict=True)
    )


def _double(leaves: dict[str, list[Tensor]]) -> dict[str, list[Tensor]]:
    return {k: [t.detach().double().requires_grad_() for t in v] for k, v in leaves.items()}


def _agree(learner: Callable[[dict], Tensor], reference: Callable[[dict], Tensor], leaves: dict) -> bool:
    mine, ours = _double(leaves), _double(leaves)
    try:
        with torch.enable_grad():
            out = learner(mine)
            got = torch.autograd.grad(out, [t for v in mine.values() for t in v], allow_unused=True)
    except Exception:  # code that can't run in float64 keeps the float32 verdict
        return False
    with torch.enable_grad():
        right = torch.autograd.grad(reference(ours), [t for v in ours.values() for t in v], allow_unused=True)
    scale = max((r.abs().max().item() for r in right if r is not None), default=0.0)
    return all(
        g is not None and r is not None and g.shape == r.shape and torch.allclose(g, r, rtol=TOL64, atol=TOL64 * scale)
        for g, r in zip(got, right, strict=True)
    )


def double_chain(chain: WeightChain) -> WeightChain:
    biases = [None if b is None else b.double() for b in chain.biases]
    return WeightChain([w.double() for w in chain.weights], biases, list(chain.activations), list(chain.names))


def recon_rounding(fn: Callable, chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> bool:
    """True when fn's (full + 0.5 layerwise) gradients agree with the reference's in float64."""
    dchain, dx = double_chain(chain), x.double()
    w = torch.tensor([1.0, 0.5], dtype=torch.float64, device=x.device)

    def learner(q: dict) -> Tensor:
        full, layerwise = fn(dchain, q["U"], q["V"], dx, q["masks"], q["delta_masks"])[:2]
        return full + 0.5 * layerwise

    leaves = {k: p[k] for k in ("masks", "U", "V", "delta_masks")}
    return _agree(learner, lambda q: mis.recon_reference(dchain, q, dx) @ w, leaves)


def faithfulness_rounding(fn: Callable, weights: list[Tensor], U0: list[Tensor], V0: list[Tensor]) -> bool:
    """True when fn's gradients w.r.t. U and V agree with the reference's in float64."""
    dw = [w.double() for w in weights]
    return _agree(
        lambda q: fn(dw, q["U"], q["V"]),
        lambda q: mis.faithfulness_candidates(dw, q["U"], q["V"])[0],
        {"U": U0, "V": V0},
    )
