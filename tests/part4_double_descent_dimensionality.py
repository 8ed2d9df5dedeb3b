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
            "your denominator is Σ_j (v̂_i·v̂_j)(v̂_i·v_j) = Σ_j cos²_ij ‖v_j‖, which two slips give: a Gram matrix "
            "G = Σ_j v̂_j v_jᵀ with one side unit-normalised (an extra normalisation), read as v̂_iᵀ G v̂_i (the fast "
            "form needs G = Σ_j v_j v_jᵀ of the raw vectors, v.mT @ v); or the cosine form with the norm ‖v_j‖ where "
            "its square belongs ((v̂_i·v_j)² = cos²_ij ‖v_j‖²: weigh the squared cosines by the squared norms)",
            norm_sq / mixed.sum(-1).clamp_min(1e-30),
        ),
    ]


def _tiny_vector_value(fn: Callable[[Tensor], object], device: torch.device, size: float) -> float | None:
    """D of a lone vector of norm `size`, orthogonal to an antipodal pair (1.2) and a lone vector (0.8), or None when
    the output has the wrong shape or the three other vectors are wrong (then it is not about the tiny vector)."""
    v = torch.zeros(1, 4, 3)
    v[0, 0, 0], v[0, 1, 0], v[0, 2, 1], v[0, 3, 2] = 1.2, -1.2, 0.8, size
    out = fn(v.to(device))
    if not isinstance(out, Tensor) or tuple(out.shape) != (1, 4):
        return None  # the shape checks elsewhere name it
    got, right = out.detach().double().cpu()[0], ref.compute_dimensionality(v.double())[0]
    if not bool(torch.isfinite(got[:3]).all()) or not torch.allclose(got[:3], right[:3], rtol=1e-3, atol=1e-4):
        return None
    return float(got[3])


def _short(x: float) -> str:
    """1e-4, not 1e-04."""
    return f"{x:.0e}".replace("e-0", "e-")


def _floor_reading(d: float, d2: float, size: float) -> tuple[str, str]:
    """Which floor a tiny vector's values at norms `size` (D = d) and 3·size (D = d2) imply. A floor e on the norm used
    to normalise gives D = e² / ‖v‖² (falls 9× when the norm triples), a floor f on the denominator D = ‖v‖² / f
    (grows 9×): the two are told apart by the second size, not by one value."""
    at = f"D = {d:.4g} at norm {_short(size)}, {d2:.4g} at {_short(3 * size)}"
    if d == 0 or d2 == 0:  # set to 0 at one size (a threshold): no constant to solve for
        return _zeroed_reading(d, d2, size)
    readings = (
        (size * (d**0.5 - 1), 3 * size * (d2**0.5 - 1), "added to the norm used to normalise, v / (‖v‖ + e)", ""),
        (size**2 * (1 / d - 1), (3 * size) ** 2 * (1 / d2 - 1), "added to the denominator, Σ_j (v̂·v_j)² + e", ""),
        (
            size**4 * (1 / d - 1),
            (3 * size) ** 4 * (1 / d2 - 1),
            "added to the denominator of the unnormalised form, ‖v‖⁴ / (Σ_j (v·v_j)² + e)",
            "_unnormalised_eps",
        ),
    )
    for c, c2, how, suffix in readings if d > 0 and d2 > 0 else ():  # d or d2 negative or NaN: no constant to solve for
        if c > 0 and abs(c2 - c) <= 0.02 * c:
            return (
                f"{at}: both equal the right D with a constant e = {c:.3g} {how}, an eps guard that changes D for "
                "small but valid vectors; guard only a zero vector: clamp the norm used to normalise "
                "(clamp_min(1e-12)) or test `denominator > 0`",
                "small_vector" + suffix,
            )
    if d > 0 and d2 > 0 and abs(d / d2 - 9) <= 0.05 * 9:
        return (
            f"D falls like 1 / ‖v‖² ({at}): the norm used to normalise has a "
            f"floor e = ‖v‖·√D = {size * d**0.5:.3g}, so v̂ = v / e is shorter than a unit vector (F.normalize's eps, "
            "or clamp_min(e) / max(‖v‖, e) on the norm, with e too large). Use a floor far below any real norm: "
            "clamp_min(1e-12), or F.normalize's default eps",
            "norm_floor",
        )
    if d > 0 and d2 > 0 and abs(d2 / d - 9) <= 0.05 * 9:
        return (
            f"D grows like ‖v‖² ({at}): the denominator has a floor f = ‖v‖² / "
            f"D = {size**2 / d:.3g} (e.g. .clamp_min(f) or max(den, f)); guard only a zero vector: test `denominator > "
            "0`, or a floor far below any real value (clamp_min(1e-30))",
            "small_vector",
        )
    return (
        "D_i does not depend on a vector's scale, and only a zero vector is defined as 0. Possible causes: a floor "
        "on the denominator (e.g. .clamp_min(1e-6): the value implied above is then that floor), an eps added to it, "
        "a floor on the norm used to normalise (F.normalize(eps=...) or clamp_min(eps) on ‖v_i‖, too large), or a "
        "threshold that zeroes small vectors (torch.where(den > eps, ...)); guard only a zero vector: clamp the "
        "norm used to normalise (clamp_min(1e-12)) or test `denominator > 0`",
        "small_vector",
    )


def _zeroed_reading(d: float, d2: float, size: float) -> tuple[str, str]:
    """The tiny vector's D is 0 at one of the two sizes: a threshold zeroes small vectors."""
    if d == 0 and d2 == 0:
        return (
            f"a vector of norm {_short(size)} and one of norm {_short(3 * size)} both get D = 0: a threshold zeroes "
            "small but valid vectors (torch.where(den > eps, ...), torch.where(norm > eps, ...), or a mask like "
            "norm > 1e-3). Only an exactly zero vector gets 0: test `denominator > 0` (or norm > 0)",
            "small_vector_zeroed",
        )
    return (
        f"D = {d:.4g} at norm {_short(size)}, {d2:.4g} at {_short(3 * size)}: a small but valid vector is set to 0 "
        "or not finite at one size, so a threshold or a guard depends on the vector's size "
        "(torch.where(den > eps, ...) or a floor). Only an exactly zero vector gets 0: test `denominator > 0`",
        "small_vector_zeroed",
    )


def small_vector_failure(fn: Callable[[Tensor], object], device: torch.device) -> None:
    """One instance, 4 vectors in 3 dimensions: an antipodal pair (1/2 each), a lone vector of norm 0.8 (1) and a lone
    vector of norm 1e-4, then 1e-7 (1: D_i is scale-free; ‖v‖⁴ = 1e-28 is still a normal float32, so a guard such as
    clamp_min(1e-6) on the norm shows at the second size). Fails (code small_vector, or norm_floor when a second
    size, 3× the first, shows a floor on the norm used to normalise) when only the tiny vector is wrong,
    reading back the denominator its value implies."""
    for size in (1e-4, 1e-7):
        d = _tiny_vector_value(fn, device, size)
        if d is None or abs(d - 1) <= 1e-3:
            continue
        d2 = _tiny_vector_value(fn, device, 3 * size)
        norm_sq = size**2
        reads = (
            f"‖v‖² / D = {norm_sq / d:.3g} and ‖v‖⁴ / D = {norm_sq**2 / d:.3g}, where Σ_j (v̂·v_j)² = {norm_sq:.0e} and "
            f"Σ_j (v·v_j)² = {norm_sq**2:.0e}"
            if d > 0
            else "it is set to 0"
        )
        hint, code = _floor_reading(d, d2 if d2 is not None else float("nan"), size)
        fail(
            f"a vector of norm {_short(size)}, orthogonal to every other vector, gets D = {d:.4g}, expected 1 "
            f"({reads}); the other vectors of that input are right (an antipodal pair 1/2 each, a lone vector of norm "
            "0.8 gets 1)",
            hint,
            code=code,
        )
