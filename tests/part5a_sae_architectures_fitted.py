"""Part 5a mistakes whose one free number is read off the learner's own output, as catalogue entries: an offset
vector added to auxk_loss's reconstruction (fitted by least squares; named as the empty top-k slots filled
with a non-zero value when it is that value times those slots' decoder rows, or as a tensor centred over the
batch), auxk_loss with a tensor centred over d_in per example (`auxk_centred_d_in`, plain entries), and a
tolerance threshold that makes small activations count as zero in dead_latent_fraction (located between two
latents' largest |activation|), or a latent counted dead when its batch mean activation or firing rate is below a
tolerance (located between two latents' own).

Each returns an entry only when the fitted form reproduces the learner's output exactly and differs from the right
answer, so a correct implementation never meets one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part5a_sae_architectures_metric_slips as MS
from tests import part5a_sae_architectures_metric_variants as MV

Mutant = tuple[str, str, Tensor]


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)


def auxk_offset(out: Tensor, pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list[Mutant]:
    """An auxk_loss mean_d (residual - r̂ - c)² with a constant vector c per instance (the same for every example).

    Per example, d·L_b - |e_b|² = -2 e_b·c + |c|² with e_b = residual - r̂ the right error: linear in (c, |c|²), so
    c is the least-squares solution over the batch; the entry is offered only when it fits every example."""
    if not isinstance(out, Tensor) or out.shape != residual.shape[:2] or not out.is_floating_point():
        return []
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    r_hat = torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, top.indices, values), W_dec).double()
    e, d = residual.double() - r_hat, residual.shape[-1]
    y = d * out.detach().double() - e.pow(2).sum(-1)  # [batch inst]
    A = torch.cat([-2 * e, torch.ones_like(e[..., :1])], -1).transpose(0, 1)  # [inst batch d+1]
    sol = torch.linalg.lstsq(A, y.transpose(0, 1).unsqueeze(-1)).solution.squeeze(-1)  # [inst d+1]
    c = sol[:, :-1]
    fitted = (e - c).pow(2).mean(-1)
    if c.norm(dim=-1).max() < 1e-4 or not _close(fitted, out.detach()):
        return []
    mean = residual.double().mean(0)
    # the empty top-k slots (an instance with fewer dead latents than k_aux) decoded with a value v, not 0: c = v · s
    empty = ~top.values[0].isfinite()  # [inst k_aux]: the same for every example (dead is per instance)
    s = (W_dec.double().gather(1, top.indices[0].unsqueeze(-1).expand(-1, -1, d)) * empty.unsqueeze(-1)).sum(1)
    v = float((c * s).sum() / (s * s).sum().clamp_min(1e-12))
    if empty.any() and abs(v) > 1e-4 and torch.allclose(c, v * s, atol=1e-4):
        hint = (
            f"your loss is the right one plus the decoder rows of the empty top-k slots times {v:.4g}: where an "
            f"instance has fewer dead latents than k_aux, the slots topk filled with -inf were given the value {v:.4g} "
            "(e.g. ones_like / full_like as the fill of torch.where(values.isfinite(), values, fill)) before decoding. "
            "Those slots contribute nothing: fill them with 0 (zeros_like, or nan_to_num(neginf=0))"
        )
        return [("empty_slots_filled", hint, fitted.to(out.dtype))]
    if torch.allclose(c, mean, atol=1e-4):
        what = (
            "+ residual.mean(0) (the batch mean of the residual added like a b_dec, or, the same values, the "
            "residual centred over the batch: residual - residual.mean(0))"
        )
    elif torch.allclose(c, -mean, atol=1e-4):
        what = "- residual.mean(0) (the batch mean of the residual, subtracted)"
    elif torch.allclose(c, e.mean(0), atol=1e-4):
        what = "+ (residual - r̂).mean(0) (the same values as the error residual - r̂ centred over the batch)"
    elif torch.allclose(c, -r_hat.mean(0), atol=1e-4):
        what = "- r̂.mean(0) (the dead latents' reconstruction r̂ centred over the batch)"
    else:
        norms = ", ".join(f"{float(v):.3g}" for v in c.norm(dim=-1))
        what = (
            f"+ c, a constant vector per instance that is none of the inputs (norms {norms}). Possible causes: a "
            "bias or a mean added; the empty top-k slots (fewer dead latents than k_aux) filled with a non-zero value "
            "(ones_like / full) before decoding"
        )
    hint = (
        f"your loss is the right one with the dead latents' reconstruction offset by the same vector on every "
        f"example, r̂ {what}. The auxiliary reconstruction is only the chosen dead latents' pre-activations times "
        "W_dec_normalized: no b_dec, no mean, nothing else added"
    )
    return [("reconstruction_offset", hint, fitted.to(out.dtype))]


def auxk_centred_d_in(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list[Mutant]:
    """auxk_loss with a tensor centred over d_in for each example (its mean over the d_in coordinates removed): the
    residual, the dead latents' reconstruction r̂, or their difference. Each offset is per example, so
    `auxk_offset` (one vector for the whole batch) can't fit it; the batch-centred forms are named there."""
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    r_hat = torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, top.indices, values), W_dec).detach()
    centre = lambda t: t - t.mean(-1, keepdim=True)
    right = "the loss is the mean over d_in of (residual - r̂)² with the residual as given and r̂ = the chosen dead "
    right += "latents' pre-activations @ W_dec_normalized: nothing centred (no b_dec means nothing is added, not that "
    right += "a mean is removed)"
    forms = [
        ("the residual", "residual - residual.mean(-1, keepdim=True)", (centre(residual) - r_hat)),
        ("r̂", "r̂ - r̂.mean(-1, keepdim=True)", (residual - centre(r_hat))),
        ("the error residual - r̂", "e - e.mean(-1, keepdim=True), a variance over d_in", centre(residual - r_hat)),
    ]
    return [
        (
            "centred_d_in",
            f"your loss has {what} centred over d_in for each example ({how}): {right}",
            err.pow(2).mean(-1),
        )
        for what, how, err in forms
    ]


_EVERY_DEAD = (
    "your fraction is 1 in every instance: every latent counted dead, even those that fire on almost every example. "
    "Your test is true for a latent that fires: zero on *some* example (.any(0) instead of .all(0), or a product "
    "over the batch, acts.prod(0) == 0, which is 0 as soon as one factor is and underflows for small ones), or a "
    "tolerance t {span} above every activation. Dead means zero on every example, (acts == 0).all(dim=0)"
)


def dead_threshold(acts: Tensor, known: list[Mutant]) -> list[Mutant]:
    """dead_latent_fraction with |a| < t counted as zero, for each t between two latents' largest |activation|:
    one entry per distinct outcome, naming the range of t it stands for (none equal to a `known` entry). A cast to
    float16 / bfloat16 is such a threshold, named first (`MV.dead_low_precision`)."""
    peak = acts.abs().amax(0)  # [inst d_sae]: a latent is 'dead' under a threshold t exactly when peak < t
    right = (acts == 0).all(0).to(acts.dtype).mean(-1)
    levels = sorted({float(v) for v in peak.flatten() if v > 0})
    entries: list[Mutant] = MV.dead_low_precision(acts)
    for lo, hi in zip(levels, [*levels[1:], float("inf")], strict=True):
        value = (peak <= lo).to(acts.dtype).mean(-1)  # t in (lo, hi]: every latent with peak <= lo counts as dead
        if _close(value, right) or any(_close(value, v) for _, _, v in [*known, *entries]):
            continue
        span = f"above {lo:.3g}" if hi == float("inf") else f"between {lo:.3g} and {hi:.3g}"
        hint = (
            f"your fraction counts a latent as dead when its activations stay below a tolerance t (some t {span}, "
            "e.g. |a| < t or a <= t): latents that fire only weakly are alive. Dead means exactly zero on every "
            "example, (acts == 0).all(dim=0)"
        )
        if lo < 1e-8 < hi:  # the range holds torch.isclose's / numpy.isclose's default atol
            hint = MS.isclose_hint(f"or another tolerance t {span}")
        if hi == float("inf"):  # every latent dead, even those firing on almost every example: not only a tolerance
            entries.append(("every_latent_dead", _EVERY_DEAD.format(span=span), value))
            continue
        entries.append(("zero_tolerance", hint, value))
    entries += _statistic_thresholds(acts, right, [*known, *entries])
    return entries + _counted(acts.shape[-1], right, [*known, *entries])


def _counted(d_sae: int, right: Tensor, known: list[Mutant]) -> list[Mutant]:
    """Every `known` fraction (other than a count already) times d_sae: two slips, a count of latents instead of a
    fraction plus that entry's slip; none equal to the right answer or another entry."""
    entries: list[Mutant] = []
    values = torch.stack([right, *(v.to(right.dtype) for _, _, v in known if v.shape == right.shape)])
    for code, hint, value in known:
        count = value * d_sae
        if code == "count" or ((value - value.round()).abs().max() < 1e-6 and value.abs().max() > 1):
            continue  # a count already, or not a fraction
        if torch.isclose(values.double(), count.double(), rtol=1e-4, atol=1e-6).all(-1).any():
            continue
        values = torch.cat([values, count[None].to(right.dtype)])
        more = f"two slips: yours is a count of latents, not a fraction (divide by d_sae = {d_sae}); and {hint}"
        entries.append(("count_and_slip", more, count))
    return entries


def _statistic_thresholds(acts: Tensor, right: Tensor, known: list[Mutant]) -> list[Mutant]:
    """dead_latent_fraction with a latent counted dead when its mean activation (or its firing rate) over the batch
    is below a tolerance t > 0: one entry per distinct outcome, naming the range of t read from the latents' own
    means (rates), none equal to the right answer or a `known` entry."""
    stats = (
        ("mean activation over the batch, acts.mean(0)", acts.mean(0)),
        ("firing rate over the batch, (acts > 0).mean(0)", (acts != 0).to(acts.dtype).mean(0)),
    )
    entries: list[Mutant] = []
    for what, stat in stats:
        levels = sorted({float(v) for v in stat.flatten() if v > 0})
        for lo, hi in zip(levels, [*levels[1:], float("inf")], strict=True):
            value = (stat <= lo).to(acts.dtype).mean(-1)  # t in (lo, hi]
            if _close(value, right) or any(_close(value, v) for _, _, v in [*known, *entries]):
                continue
            span = f"above {lo:.3g}" if hi == float("inf") else f"between {lo:.3g} and {hi:.3g}"
            hint = (
                f"your fraction counts a latent as dead when its {what}, is below a threshold t > 0 (some t {span}, "
                "e.g. 1e-2 or another tolerance): a latent that fires rarely or weakly is alive. Dead means exactly "
                "zero on every example, (acts == 0).all(dim=0) (for activations that are never negative, "
                "acts.sum(0) == 0 says the same)"
            )
            entries.append(("dead_stat_threshold", hint, value))
    return entries
