"""compute_dimensionality readings for part 3 (round AV): the unit vectors divided by one common number c instead of
each column's own norm (a global p-norm from W.norm(p, keepdim=True) with a positional p, or the instance's largest
or mean column norm), which gives c² ‖W_i‖² / Σ_j (W_i·W_j)²; and the sum over j restricted to a subset of the
features (a 'represented' threshold on ‖W_j‖²), read back from the learner's denominator ‖W_i‖² / D_i."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def common_divisor_candidates(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """On W [inst d feats] (float64): D_i with Ŵ = W / c for one c shared by many columns."""
    norms_sq = W.pow(2).sum(1)
    raw = torch.einsum("kdi,kdj->kij", W, W).pow(2).sum(-1)
    out = []
    for p in (1, -1, -2):
        c = torch.linalg.vector_norm(W.flatten(), ord=p)
        out.append(
            (
                "norm_positional_p",
                f"your values are c² ‖W_i‖² / Σ_j (W_i·W_j)² with c = the L{p} 'norm' of all of W (every entry "
                f"of every instance): the unit vectors were divided by W.norm({p}, keepdim=True), and a positional "
                f"first argument of Tensor.norm is the order p, not dim ({p} read as p, no dim: one number for the "
                "whole tensor). Pass dim by keyword: W / W.norm(dim=1, keepdim=True), each column's own L2 norm",
                c**2 * norms_sq / raw,
            )
        )
    col = norms_sq.sqrt()
    for name, how, c in (
        ("largest", "W.norm(dim=1, keepdim=True).amax(-1, keepdim=True)", col.amax(-1, keepdim=True)),
        ("mean", "W.norm(dim=1, keepdim=True).mean(-1, keepdim=True)", col.mean(-1, keepdim=True)),
    ):
        out.append(
            (
                "normalised_by_one_norm",
                f"your values are c² ‖W_i‖² / Σ_j (W_i·W_j)² with c = the instance's {name} column norm: every column "
                f"was divided by one norm per instance ({how}), not by its own. Normalise each column by its own "
                "norm, Ŵ_i = W_i / ‖W_i‖ (W.norm(dim=1, keepdim=True), no reduction over the features)",
                c**2 * norms_sq / raw,
            )
        )
    return out


def restricted_sum_failure(out: Tensor, W: Tensor, what: str) -> None:
    """The learner's denominator ‖W_i‖² / D_i is, in every instance, Σ_j (Ŵ_i·W_j)² over one proper subset of the
    features j (the same subset for every i of the instance). 2^n sums per instance (n <= 12); a float32 output is
    exact to ~1e-7 relative, so a chance match of all n features of an instance to 1e-5 does not happen."""
    Wd = W.detach().double().cpu()
    o = out.detach().double().cpu()
    n = Wd.shape[-1]
    if n > 12 or o.shape != Wd.shape[::2] or not bool(torch.isfinite(o).all()) or bool((o == 0).any()):
        return
    sq = Wd.pow(2).sum(1)  # [inst feats]
    if bool((sq == 0).any()):
        return
    terms = torch.einsum("kdi,kdj->kij", Wd / sq.sqrt()[:, None], Wd).pow(2)  # [inst i j]
    den = sq / o
    masks = (torch.arange(2**n)[:, None] >> torch.arange(n)) & 1  # [2^n n]
    kept = []
    for k in range(Wd.shape[0]):
        sums = terms[k] @ masks.double().T  # [i 2^n]
        hit = ((sums - den[k][:, None]).abs() <= 1e-5 * den[k].abs()[:, None]).all(0)
        if int(hit.sum()) != 1:
            return
        kept.append(masks[int(hit.nonzero()[0, 0])].bool())
    kept_t = torch.stack(kept)
    if bool(kept_t.all()):
        return
    dropped = [[j for j in range(n) if not bool(kept_t[k, j])] for k in range(len(kept))]
    seen = "; ".join(f"instance {k}: {d}" for k, d in enumerate(dropped) if d)
    lo, hi = float(sq[~kept_t].max()), float(sq[kept_t].min()) if bool(kept_t.any()) else float("inf")
    if lo < hi:
        cut = " (the 'represented' cut ‖W_j‖² > 0.5?)" if lo <= 0.5 < hi else ""
        cause = (
            f"exactly the features with ‖W_j‖² at most {lo:.4g} are left out and every one from {hi:.4g} up is "
            f"kept: a threshold on the norm{cut} restricts the sum"
        )
    else:
        cause = "a mask or a slice restricts the sum"
    fail(
        f"{what}: your denominator ‖W_i‖² / D_i is Σ_j (Ŵ_i·W_j)² over only some of the features j; left out: {seen}",
        f"{cause}. The sum runs over every feature j of the instance, whatever its norm: a small feature still "
        "shares dimensions (a threshold belongs only to counting represented features, not to D_i)",
        code="sum_over_subset",
    )


def one_divisor_failure(out: Tensor, expected: Tensor, W: Tensor, what: str) -> None:
    """Fail when out = c_k² ‖W_i‖² / Σ_j (W_i·W_j)² with one number c_k per instance k: every column divided by the
    same c_k instead of its own norm (Ŵ_i·W_j = W_i·W_j / c_k). c_k is read back from out · Σ_j (W_i·W_j)² / ‖W_i‖²,
    which must be the same for every feature of the instance; the hint says which column's norm it is, when one is."""
    o, Wd = out.detach().double().cpu(), W.detach().double().cpu()
    if o.shape != Wd.shape[::2] or not bool(torch.isfinite(o).all()) or bool((o <= 0).any()):
        return
    norms_sq = Wd.pow(2).sum(1)
    if bool((norms_sq == 0).any()):
        return
    c_sq = o * torch.einsum("kdi,kdj->kij", Wd, Wd).pow(2).sum(-1) / norms_sq  # [inst feats]
    ck = c_sq.mean(1, keepdim=True)
    if not bool(((c_sq - ck).abs() <= 1e-4 * ck).all()) or bool(((ck - norms_sq).abs() <= 1e-4 * ck).all(0).all()):
        return
    if bool(((ck - Wd.shape[2]).abs() <= 1e-4 * Wd.shape[2]).all()):
        return  # c² = feats in every instance: a mean over j with no normalisation, named by the slip pairs (round BB)
    c = ck.sqrt().flatten()
    match = ((norms_sq.sqrt() - c[:, None]).abs() <= 1e-4 * c[:, None]).all(0).nonzero().flatten().tolist()
    which = (
        f"feature {match[0]}'s norm in every instance (an index such as norms[:, :1] or [..., {match[0]}] where each "
        "column's own norm belongs)"
        if match
        else "one number per instance, not any column's own norm"
    )
    fail(
        f"{what}: your values are c² ‖W_i‖² / Σ_j (W_i·W_j)² with one c per instance, c = "
        f"{', '.join(f'{float(x):.4g}' for x in c)}: {which}",
        "every column of an instance was divided by the same number c: normalise each column by its own norm, "
        "Ŵ_i = W_i / ‖W_i‖ (W.norm(dim=1, keepdim=True), one norm per feature)",
        code="normalised_by_one_norm",
    )
