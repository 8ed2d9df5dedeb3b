"""Part 5a metric readings: what the learner's metric divided, counted or maxed, read generically.

* `recovery_inputs`: feature_recovery's inputs, with one feature (instance 1, feature 3) that every latent of its
  instance points away from: its best cosine is negative, so |max cos| and max |cos| and -min cos all differ from
  the signed max there (generic inputs: nothing sits on the boundary at 0).
* `recovery_readings`: the cosine's vectors divided by another norm than their L2 norm (L1, max |w|, the squared L2
  norm, or nothing), on each side independently, and the sign readings (abs of the max, -min).
* `l0_threshold`: l0_norm counting activations above a threshold t > 0, with t read back from the learner's own
  counts (the interval of t that reproduces them), and named when a statistic of the activations lies there.
* `fve_degenerate_total`: an FVE whose denominator is about 0 (deviations from the mean summed before squaring),
  with the numerator's form read from a second call (the ratio of the two outputs' 1 - FVE cancels the denominator).

Every entry is offered only where it differs from the right answer, so a correct implementation never meets one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests import part5a_sae_architectures_metric_tiny as SG2
from tests import part5a_sae_architectures_returned_quantity as RQ
from tests.checking import fail

Mutant = tuple[str, str, Tensor]


def _close(a: Tensor, b: Tensor, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=1e-6))


# --------------------------------------------------------------------------------------------
# feature_recovery
# --------------------------------------------------------------------------------------------
def recovery_inputs(device: torch.device, n_inst: int, d_in: int, d_sae: int, n_feats: int) -> tuple[Tensor, Tensor]:
    """W_features [inst d_in feats] and W_dec [inst d_sae d_in] with an anti-aligned latent (cosine -1), a latent
    near feature 2, and in instance 1 a feature 3 with a negative cosine to every latent (its best match < 0)."""
    W_feat = torch.randn(n_inst, d_in, n_feats, device=device) * torch.linspace(0.3, 2.0, n_feats, device=device)
    W_dec = torch.randn(n_inst, d_sae, d_in, device=device) * torch.linspace(0.5, 3.0, d_sae, device=device)[:, None]
    W_dec[:, 0] = -2.0 * W_feat[:, :, 0]  # an anti-aligned latent: cosine -1, not +1
    W_dec[:, 1] = 0.5 * W_feat[:, :, 2] + 0.1 * W_dec[:, 1]
    n0, n1 = W_feat[1, :, 0] / W_feat[1, :, 0].norm(), W_dec[1, 1] / W_dec[1, 1].norm()
    u = (n0 - n1) / (n0 - n1).norm()  # rows 0 (= -2·feature 0) and 1 already point away from u
    rows = W_dec[1, 2:]
    depth = torch.linspace(0.3, 1.2, rows.shape[0], device=device) * rows.norm(dim=-1)
    W_dec[1, 2:] = rows - ((rows @ u) + depth)[:, None] * u  # every other latent's component along u is -depth
    W_feat[1, :, 3] = W_feat[1, :, 3].norm() * u
    return W_feat, W_dec


_NORMS = {
    "l2": "their L2 norm",
    "l1": "their L1 norm (norm(p=1), the sum of |w|)",
    "max": "their largest |entry| (norm(p=inf))",
    "sq": "their squared L2 norm ‖w‖² (pow(2).sum(), the square root forgotten)",
    "none": "nothing (left unnormalised)",
}


def _divisor(w: Tensor, dim: int, kind: str) -> Tensor:
    return {
        "l2": lambda: w.norm(dim=dim, keepdim=True),
        "l1": lambda: w.norm(p=1, dim=dim, keepdim=True),
        "max": lambda: w.abs().amax(dim, keepdim=True),
        "sq": lambda: w.pow(2).sum(dim, keepdim=True),
        "none": lambda: torch.ones_like(w.sum(dim, keepdim=True)),
    }[kind]()


def recovery_readings(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """The cosine's decoder rows and feature columns each divided by one of L2 / L1 / max|w| / ‖w‖² / nothing (every
    pair but the right one and the unnormalised pairs the catalogue already has), and the sign readings."""
    right_cos = torch.einsum(
        "isd,idf->isf", W_dec / _divisor(W_dec, -1, "l2"), W_feat / _divisor(W_feat, 1, "l2")
    )  # [inst d_sae feats]
    right = right_cos.amax(1)
    entries: list[Mutant] = [
        (
            "abs_of_max",
            "your values are the absolute value of the best signed cosine, |max_j cos|: where every latent points "
            "away from a feature (instance 1, feature 3 here) its best cosine is negative and must stay negative. "
            "Return cos.max(dim=1).values without .abs()",
            right.abs(),
        ),
        (
            "neg_min",
            "your values are -min_j cos, the most anti-aligned latent's cosine with its sign flipped: a latent "
            "pointing the opposite way has not found the feature. Take the max of the signed cosine over the latents",
            -right_cos.amin(1),
        ),
    ]
    for dk in _NORMS:
        for fk in _NORMS:
            if {dk, fk} <= {"l2", "none"} or (dk, fk) == ("max", "l2"):
                continue  # the right cosine, and the readings already catalogued (unnormalised, dec_inf_norm)
            cos = torch.einsum("isd,idf->isf", W_dec / _divisor(W_dec, -1, dk), W_feat / _divisor(W_feat, 1, fk))
            same = dk == fk
            sides = (
                f"both the W_dec rows and the W_features columns by {_NORMS[dk]}"
                if same
                else f"the W_dec rows by {_NORMS[dk]} and the W_features columns by {_NORMS[fk]}"
            )
            hint = (
                f"your cosines divide {sides}: a cosine divides each vector by its own L2 norm, "
                "w / w.norm(dim=..., keepdim=True) (the square root of the sum of squares), or F.normalize"
            )
            entries.append(("norm_kind", hint, cos.amax(1)))
    entries += RQ.recovery_indices(W_feat, W_dec)  # the best latent's index returned in place of its cosine
    return [e for e in entries if not _close(e[2], right, 1e-3)]


# --------------------------------------------------------------------------------------------
# l0_norm
# --------------------------------------------------------------------------------------------
def l0_threshold(out: Any, acts: Tensor, known: list[Mutant]) -> list[Mutant]:
    """l0_norm as the mean count of activations above a threshold t > 0 (a > t or |a| > t, or >=): the interval of t
    reproducing each instance's count is read from that instance's sorted activations; one t for every instance (or
    one per instance) that a statistic of the acts falls in is named, else the interval is quoted."""
    if not isinstance(out, Tensor) or out.shape != acts.shape[1:2] or not out.is_floating_point():
        return []
    batch, o = acts.shape[0], out.detach().double().cpu()
    counts = o * batch
    if not torch.isfinite(counts).all() or (counts - counts.round()).abs().max() > 1e-3 * batch / 1500 + 1e-6:
        return []
    a = acts.detach().double().cpu()
    flat = a.abs().transpose(0, 1).reshape(a.shape[1], -1).sort(-1, descending=True).values  # [inst, batch·d_sae]
    lo, hi = [], []
    for i, c in enumerate(counts.round().long().tolist()):
        if not 0 <= c < flat.shape[1]:
            return []
        lo.append(float(flat[i, c]))  # the largest value not counted
        hi.append(float(flat[i, c - 1]) if c > 0 else float("inf"))  # the smallest value counted
        if lo[-1] >= hi[-1]:
            return []  # a tie at the cut: no threshold gives this count
    if max(lo) <= 0:
        return []  # every instance's count is reproduced at t = 0: not a threshold above 0
    right, known = (acts != 0).to(acts.dtype).sum(-1).mean(0), known + SG2.l0_low_precision(acts)
    g_lo, g_hi = max(lo), min(hi)
    stats = {
        "acts.std(), the std of all the activations": a.std(),
        "acts.mean(), the mean of all the activations": a.mean(),
        "acts.abs().max() / 10": a.abs().max() / 10,
        "acts.median()": a.median(),
    }
    per_inst = {
        "the instance's std, acts[:, i].std()": a.std((0, 2)),
        "the instance's mean activation, acts[:, i].mean()": a.mean((0, 2)),
    }
    if g_lo < g_hi:
        t, span = g_lo, f"between {g_lo:.4g} and {g_hi:.4g}, one t for every instance"
        named = [f"{k} = {float(v):.4g}" for k, v in stats.items() if g_lo <= float(v) <= g_hi]
    else:
        t = torch.tensor(lo, dtype=acts.dtype, device=acts.device)[None, :, None]
        span = "per instance " + ", ".join(f"{x:.3g}..{y:.3g}" for x, y in zip(lo, hi, strict=True))
        named = [k for k, v in per_inst.items() if all(x <= float(s) <= y for x, y, s in zip(lo, hi, v, strict=True))]
    value = (acts.abs() > t).to(acts.dtype).sum(-1).mean(0)
    if _close(value, right) or any(_close(value, v) for _, _, v in known) or not _close(value, out.detach()):
        return []
    which = f"; {' and '.join(named)} lies there" if named else ""
    hint = (
        f"your count is of the activations above a threshold t > 0 (t {span}{which}): every non-zero activation is "
        "active, however small. Count acts != 0 (or acts > 0: the activations are never negative), "
        "(acts != 0).sum(-1) averaged over the batch"
    )
    return [("active_threshold", hint, value)]


# --------------------------------------------------------------------------------------------
# fraction_variance_explained
# --------------------------------------------------------------------------------------------
def fve_summed(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """The FVE's residual summed before squaring, (Σ(h - h_rec))², with the right total."""
    total = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    hint = (
        "your residual is (Σ(h - h_rec))², the differences summed before squaring (positive and negative errors "
        "cancel): square each difference, then sum, Σ(h - h_rec)² over batch and d_in"
    )
    return [("sum_before_square", hint, 1 - (h - h_rec).sum((0, 2)).pow(2) / total)]


def fve_degenerate_total(impl: Any, out: Tensor, h: Tensor, h_rec: Tensor) -> None:
    """Fail when 1 - out implies a denominator about 0 (below 1e-3 of the right total for every instance): deviations
    from the batch mean summed before squaring (or not squared). The numerator is read from a second call on another
    h_rec: (1 - out) / (1 - out2) = N(h_rec) / N(h_rec2) whatever the (same) denominator is."""
    o = out.detach().double()
    hd, rd = h.detach().double(), h_rec.detach().double()
    res, total = (hd - rd).pow(2).sum((0, 2)), (hd - hd.mean(0)).pow(2).sum((0, 2))
    implied = res / (1 - o)
    if not torch.isfinite(o).all() or not (implied.abs() < 1e-3 * total).all():
        return
    gen = torch.Generator().manual_seed(5)
    h_rec2 = h_rec.detach() + 0.5 * torch.randn(h.shape, generator=gen, dtype=h.dtype).to(h.device)
    try:
        out2 = impl(h.detach().clone(), h_rec2.clone())
        q = (1 - o) / (1 - out2.detach().double())
    except Exception:
        q = None
    numerators = {
        "(Σ(h - h_rec))², the differences summed before squaring too": lambda r: (hd - r).sum((0, 2)).pow(2),
        "Σ(h - h_rec)², right": lambda r: (hd - r).pow(2).sum((0, 2)),
        "Σ(h - h_rec), not squared at all": lambda r: (hd - r).sum((0, 2)),
        "Σ|h - h_rec|, absolute differences": lambda r: (hd - r).abs().sum((0, 2)),
    }
    r2 = h_rec2.double()
    found = [k for k, f in numerators.items() if q is not None and _close(q, f(rd) / f(r2), 1e-3)]
    num = f"Your numerator is {found[0]}." if found else "(Your numerator's form could not be read back.)"
    fail(
        f"1 - your value is {float((1 - o).abs().max()):.3g} at most: with the right "
        f"numerator that is a denominator of about {float(implied.abs().max()):.2g} (the right total "
        f"Σ(h - mean(h))² is {float(total.min()):.4g} or more)",
        "your total is about 0: the deviations h - mean(h) sum to 0 over the batch, so a total summed before "
        "squaring, (Σ(h - mean(h)))², or never squared, Σ(h - mean(h)), is 0 up to rounding. Square each deviation, "
        f"then sum: Σ(h - mean(h))² over batch and d_in. {num}",
        code="total_near_zero",
    )
