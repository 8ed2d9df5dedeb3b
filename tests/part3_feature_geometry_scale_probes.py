"""Part 3 probes on the features' scale and on per-instance normalisation.

* `small_feature_failure`: a feature of norm 1e-4, orthogonal to the others, has D_i = 1 whatever its scale; only an
  all-zero column is defined as 0. A threshold on the norm or the denominator (den > 1e-6), or an eps added to or
  clamped into a denominator of order ‖W_i‖⁴, zeroes or shrinks it.
* `per_instance_factor_failure`: the learner's D_i equal the right ones times one factor per instance (varying over
  instances): a normalisation over each instance's features, e.g. rescaled so Σ_i D_i = d_hidden.
* `abs_and_cap_mutants`: |Ŵ_i|·|W_j| (abs before the dot product) for D_i; each ‖W_i‖² capped at 1 for D*.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail


def small_feature_failure(fn: Callable, device: torch.device, what: str) -> None:
    """One instance, d_hidden 3, four features: an antipodal pair (1/2 each), a lone feature of norm 0.8 (1) and a
    lone feature of norm 1e-4 (1; ‖W_i‖⁴ = 1e-16 is a normal float32)."""
    W = torch.zeros(1, 3, 4)
    W[0, 0, 0], W[0, 0, 1], W[0, 1, 2], W[0, 2, 3] = 1.2, -1.2, 0.8, 1e-4
    out = fn(W.to(device))
    if not isinstance(out, Tensor) or tuple(out.shape) != (1, 4):
        return  # the shape checks elsewhere name it
    got = out.detach().double().cpu()[0]
    if not bool(torch.isfinite(got[:3]).all()) or not torch.allclose(
        got[:3], torch.tensor([0.5, 0.5, 1.0]).double(), rtol=1e-3, atol=1e-4
    ):
        return  # not about the small feature
    v = float(got[3])
    if abs(v - 1.0) <= 1e-3:
        return
    seen = "set to 0" if v == 0 else f"{v:.4g}"
    fail(
        f"{what}: a feature of norm 1e-4, orthogonal to every other feature, gets {seen}, expected 1 (the other "
        "features of that W are right: an antipodal pair 1/2 each, a lone feature of norm 0.8 gets 1)",
        "D_i does not depend on a feature's scale, and only an all-zero column is defined as 0. Possible causes: a "
        "threshold on the norm or the denominator (torch.where(den > 1e-6, ...), norm > eps) that zeroes small but "
        "nonzero features, or an eps added to or clamped into a denominator of order ‖W_i‖⁴ (≈ 1e-16 here) that "
        "shrinks them; test `denominator > 0`, or clamp only the norm used to normalise (clamp_min(1e-12))",
        code="small_feature",
    )


def per_instance_factor_failure(out: Tensor, expected: Tensor, W: Tensor, what: str) -> None:
    """Fail when out = f_k · expected per instance k with f_k varying over the instances (not one global factor)."""
    permuted_values_failure(out, expected, what, "feature")
    o, e = out.detach().double().cpu(), expected.detach().double().cpu()
    if o.shape != e.shape or o.ndim != 2 or o.shape[0] < 2 or not bool(torch.isfinite(o).all()):
        return
    keep = e.abs() > 1e-6
    if not bool(keep.any(1).all()):
        return
    f = torch.where(keep, o / torch.where(keep, e, torch.ones_like(e)), torch.nan)
    fk = f.nanmean(1)
    if not bool((torch.where(keep, (f - fk[:, None]).abs(), 0) <= 1e-4 * fk.abs()[:, None]).all()):
        return
    if bool(((fk - fk.mean()).abs() <= 1e-4 * fk.abs().mean()).all()) or bool((fk.abs() < 1e-9).any()):
        return  # one factor for all: the generic scale diagnosis names it
    sums = o.sum(1)
    d = W.shape[1]
    to_d = bool(((sums - d).abs() <= 1e-3 * d).all())
    fail(
        f"{what}: each instance's values are the right ones times one factor of its own "
        f"({', '.join(f'{float(x):.4g}' for x in fk)}); your Σ_i D_i per instance: "
        f"{', '.join(f'{float(s):.4g}' for s in sums)}",
        (
            f"your values are rescaled so Σ_i D_i = d_hidden (= W.shape[1] = {d}) in each instance: "
            if to_d
            else "a normalisation over each instance's features (a division by a per-instance sum, mean or max?): "
        )
        + "D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² feature by feature, with no rescaling afterwards (Σ_i D_i ≤ d_hidden "
        "is a property of the result, not a constraint to impose)",
        code="per_instance_rescaled",
    )


def abs_dot_mutants(W: Tensor, norms_sq: Tensor, W_hat: Tensor) -> list[tuple[str, str, Tensor]]:
    """D_i with absolute values taken before the dot product (|Ŵ_i|·|W_j|); W, W_hat [inst d feats] (float64)."""
    return [
        (
            "abs_before_dot",
            "your overlaps are |Ŵ_i|·|W_j|: the absolute values are taken coordinate by coordinate before the dot "
            "product, so opposite-sign coordinates no longer cancel. Take the dot product Ŵ_i·W_j first; the "
            "square (Ŵ_i·W_j)² already removes its sign",
            norms_sq / torch.einsum("kdi,kdj->kij", W_hat.abs(), W.abs()).pow(2).sum(-1),
        )
    ]


def capped_norm_mutants(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """D* with each feature's ‖W_i‖² capped at 1 before the sum (a feature counted at most once); W float64."""
    return [
        (
            "norms_capped",
            "each feature's ‖W_i‖² is capped at 1 before summing (clamp(max=1): a feature counted at most once): "
            "‖W‖²_F sums every ‖W_i‖² as it is, a feature longer than 1 counting for more",
            W.shape[1] / W.pow(2).sum(1).clamp(max=1).sum(-1),
        )
    ]


def output_probe(fn: Callable[[Tensor], Tensor], base: Tensor) -> Callable[[Tensor], Tensor | None]:
    """fn on a copy of an input, as a finite float64 CPU tensor shaped like `base`; None for anything else (an
    exception, another shape or type, NaN): a probe's answer that can't be read says nothing."""

    def probe(x: Tensor) -> Tensor | None:
        try:
            y = fn(x.clone())
        except Exception:
            return None
        if not isinstance(y, Tensor) or tuple(y.shape) != tuple(base.shape) or not y.is_floating_point():
            return None
        y = y.detach().double().cpu()
        return y if bool(torch.isfinite(y).all()) else None

    return probe


def permuted_values_failure(out: Tensor, expected: Tensor, what: str, item: str) -> None:
    """Fail (code permuted) when each instance's row [inst, n] holds the right values in another order: read back
    whether the order is descending or ascending (a sort, e.g. for a bar plot) or some other permutation."""
    o, e = out.detach().double().cpu(), expected.detach().double().cpu()
    if o.shape != e.shape or o.ndim != 2 or not bool(torch.isfinite(o).all()) or not bool(torch.isfinite(e).all()):
        return
    tol = 1e-5 * e.abs().amax().clamp_min(1e-12)
    if not torch.allclose(o.sort(-1).values, e.sort(-1).values, rtol=1e-5, atol=float(tol)):
        return
    if torch.allclose(o, e, rtol=1e-5, atol=float(tol)):
        return
    desc = bool((o[:, :-1] >= o[:, 1:]).all())
    asc = bool((o[:, :-1] <= o[:, 1:]).all())
    order = "sorted in descending order" if desc else "sorted in ascending order" if asc else "reordered"
    fail(
        f"{what}: each instance's values are the right ones, but {order} (instance 0: got "
        f"{', '.join(f'{float(x):.3g}' for x in o[0, :5])}, expected {', '.join(f'{float(x):.3g}' for x in e[0, :5])})",
        f"return D_i in the {item}s' own order (entry i belongs to {item} i): "
        + (
            "sort only a copy for the plot, e.g. D.sort(dim=-1, descending=True) outside the function"
            if desc or asc
            else "no sorting or indexing of the output"
        ),
        code="permuted",
    )
