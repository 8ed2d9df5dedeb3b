"""dimensions_per_feature on inputs the contract allows but the main probes miss: a float64 W (the output keeps the
input's dtype, at float64 precision) and a tiny W (‖W‖²_F about 1e-7, where a zero guard such as clamp_min(1e-3) or
+ finfo(float32).eps changes the answer). A wrong tiny answer is read back as a floor on ‖W‖²_F or as a constant
added to it, solved from the learner's values; otherwise the observation is stated."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import expect_tensor, fail
from tests.part3_feature_geometry_floors import bent_ratio_failure


def _round(x: Tensor) -> list[float]:
    return [float(f"{v:.4g}") for v in x.tolist()]


def _added_constant(out: Tensor, d: int, frob: Tensor) -> float | None:
    """The one c > 0 with out = d / (‖W‖²_F + c) in every instance (relative 1e-3 of c), or None."""
    if not bool(torch.isfinite(out).all()) or not bool((out > 0).all()):
        return None
    c = d / out - frob
    mid = float(c.median())
    if mid <= 0 or not bool(((c - mid).abs() <= 1e-3 * mid).all()):
        return None
    return mid


def check_float64_and_tiny(dimensions_per_feature: Callable, W: Tensor, device: torch.device) -> None:
    """Fail (`dtype`, `values`, `small_norm`) unless W in float64 and W scaled to ‖W‖²_F ≈ 1e-7 give d / ‖W‖²_F."""
    d = W.shape[1]
    W64 = W.detach().double()
    what = "dimensions_per_feature(W.double())"
    out = dimensions_per_feature(W64.clone())
    if isinstance(out, Tensor) and out.is_floating_point() and out.dtype != torch.float64:
        fail(
            f"{what} has dtype {out.dtype}, expected torch.float64 (the input's)",
            "the float64 input came out in lower precision: a reduction given dtype= (W.pow(2).sum(..., "
            "dtype=torch.float32)), a .float(), or a buffer created with the default dtype; let the result keep "
            "W's dtype",
            code="dtype",
        )
    out = expect_tensor(out, what, shape=(W.shape[0],), dims="inst", device=device)
    right = d / W64.pow(2).sum((1, 2))
    if not torch.allclose(out.detach().double(), right, rtol=1e-9, atol=0):
        fail(
            f"{what} is {_round(out)}, expected {_round(right)} to float64 precision (relative 1e-9)",
            "compute in W's own dtype: a float32 step (a cast, a float32 constant tensor) rounds the float64 answer",
            code="values",
        )
    frob = W64.pow(2).sum((1, 2))
    scale = (1e-7 / frob.max()).sqrt()
    tiny = (W64 * scale).to(W.dtype)  # ‖W‖²_F at most 1e-7: below common guards, far above float32's smallest normals
    frob_t = tiny.double().pow(2).sum((1, 2))
    right_t = d / frob_t
    what_t = "dimensions_per_feature(W scaled so ‖W‖²_F ≈ 1e-7)"
    out_t = expect_tensor(dimensions_per_feature(tiny.clone()), what_t, shape=(W.shape[0],), dims="inst")
    got = out_t.detach().double().cpu()
    if torch.allclose(got, right_t.cpu(), rtol=1e-4, atol=0):
        return
    bent_ratio_failure(got, torch.tensor(float(d)), frob_t.cpu(), what_t, "d_hidden", "‖W‖²_F", code="small_norm")
    c = _added_constant(got, d, frob_t.cpu())
    if c is not None:
        fail(
            f"{what_t} is {_round(got)}, expected {_round(right_t)}: your values equal d_hidden / (‖W‖²_F + {c:.4g}) "
            "in every instance",
            f"a constant {c:.4g} added to the denominator (an eps zero guard such as + 1e-6 or + finfo(dtype).eps) "
            "changes D* for small but valid W; divide by ‖W‖²_F itself (W with ‖W‖_F = 0 has no D*)",
            code="small_norm",
        )
    fail(
        f"{what_t} is {_round(got)}, expected {_round(right_t)} (right for W at ordinary scale): its denominator "
        f"reads {_round(d / got)} where ‖W‖²_F is {_round(frob_t)}",
        "the answer bends for small ‖W‖²_F: a guard on the denominator or on W that bites for small but valid inputs; "
        "divide by ‖W‖²_F itself",
        code="small_norm",
    )
