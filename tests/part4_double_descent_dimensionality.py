"""compute_dimensionality (part 4, v [inst n d]): two more readings of the values (the vectors centred over n first;
a Gram matrix Σ_j v̂_j v_jᵀ with one side unit-normalised) and a probe with a tiny vector, orthogonal to the others,
whose denominator Σ_j (v̂_i·v_j)² = ‖v_i‖² = 1e-8 sits below any floor or eps a learner might put on it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

import solutions.part4_double_descent as ref
from tests.checking import fail


def _dimensionality(v: Tensor) -> Tensor:
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    return norm_sq / torch.einsum("kid,kjd->kij", unit, v).pow(2).sum(-1).clamp_min(1e-30)


def extra_dimensionality_candidates(v: Tensor) -> list[tuple[str, str, Tensor]]:
    v = v.double()
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    mixed = torch.einsum("kid,kjd->kij", unit, unit) * torch.einsum("kid,kjd->kij", unit, v)
    return [
        (
            "centred",
            "your values are D_i of the vectors centred over the n vectors first (v - v.mean(1, keepdim=True)): D_i "
            "uses the vectors as they are, no centring (it measures each vector's share of a dimension, not of the "
            "spread around their mean)",
            _dimensionality(v - v.mean(1, keepdim=True)),
        ),
        (
            "gram_one_side_unit",
            "your denominator is Σ_j (v̂_i·v̂_j)(v̂_i·v_j): a Gram matrix G = Σ_j v̂_j v_jᵀ with one side unit-normalised "
            "(an extra normalisation), read as v̂_iᵀ G v̂_i. The fast form needs G = Σ_j v_j v_jᵀ of the raw vectors "
            "(v.mT @ v), so that v̂_iᵀ G v̂_i = Σ_j (v̂_i·v_j)²",
            norm_sq / mixed.sum(-1).clamp_min(1e-30),
        ),
    ]


def small_vector_failure(fn: Callable[[Tensor], object], device: torch.device) -> None:
    """One instance, 4 vectors in 3 dimensions: an antipodal pair (1/2 each), a lone vector of norm 0.8 (1) and a lone
    vector of norm 1e-4 (1: D_i is scale-free; ‖v‖⁴ = 1e-16 is a normal float32). Fails (code small_vector) when
    only the tiny vector is wrong, reading back the denominator its value implies."""
    v = torch.zeros(1, 4, 3)
    v[0, 0, 0], v[0, 1, 0], v[0, 2, 1], v[0, 3, 2] = 1.2, -1.2, 0.8, 1e-4
    out = fn(v.to(device))
    if not isinstance(out, Tensor) or tuple(out.shape) != (1, 4):
        return  # the shape checks elsewhere name it
    got, right = out.detach().double().cpu()[0], ref.compute_dimensionality(v.double())[0]
    if not bool(torch.isfinite(got[:3]).all()) or not torch.allclose(got[:3], right[:3], rtol=1e-3, atol=1e-4):
        return  # not about the tiny vector
    d = float(got[3])
    if abs(d - float(right[3])) <= 1e-3:
        return
    norm_sq = 1e-8
    reads = (
        f"‖v‖² / D = {norm_sq / d:.3g} and ‖v‖⁴ / D = {norm_sq**2 / d:.3g}, where Σ_j (v̂·v_j)² = {norm_sq:.0e} and "
        f"Σ_j (v·v_j)² = {norm_sq**2:.0e}"
        if d > 0
        else "it is set to 0"
    )
    fail(
        f"a vector of norm 1e-4, orthogonal to every other vector, gets D = {d:.4g}, expected 1 ({reads}); the other "
        "vectors of that input are right (an antipodal pair 1/2 each, a lone vector of norm 0.8 gets 1)",
        "D_i does not depend on a vector's scale, and only a zero vector is defined as 0. Possible causes: a floor "
        "on the denominator (e.g. .clamp_min(1e-6): the value implied above is then that floor), an eps added to it, "
        "or a threshold that zeroes small vectors (torch.where(den > eps, ...)); guard only a zero vector: clamp the "
        "norm used to normalise (clamp_min(1e-12)) or test `denominator > 0`",
        code="small_vector",
    )
