"""Part 5a's per-instance metrics: generic diagnoses of what a wrong output was reduced over.

`pooled_over_instances`: every instance got one shared value that is a reduction over the instances of the right
per-instance values (the instance axis reduced too). `fve_implied_total`: the denominator an FVE output implies,
matched against other totals than Σ(h - mean(h))² up to a size factor (a sum where a mean was asked)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part5a_sae_architectures_metric_spans as SP
from tests.checking import fail

_REDUCTIONS = (("mean", lambda w: w.mean(0)), ("sum", lambda w: w.sum(0)), ("max", lambda w: w.amax(0)))


def _close(a: Tensor, b: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def pooled_over_instances(out: Tensor, want: Tensor, mistakes: list, what: str, keep: str) -> None:
    """For an output matching no catalogue entry (`mistakes`: (code, hint, value)): fail when `out` ([inst ...])
    is one value shared by every instance, equal to the mean, sum or max over the instances of the right values,
    while the right values differ between instances. `keep`: the axes to reduce instead (for the hint). Where the
    shared value is also instance 0's right value, both causes are listed (for the mean; for another reduction
    the generic first_slice_for_all diagnosis names instance 0)."""
    o, w = out.detach().double(), want.detach().double()
    if o.shape != w.shape or o.ndim < 1 or o.shape[0] < 2 or _close(o, w) or any(_close(o, v) for *_, v in mistakes):
        return
    shared = o[:1].expand_as(o)
    if not _close(o, shared) or _close(w, w[:1].expand_as(w)):
        return
    for name, reduce in _REDUCTIONS:
        pooled = reduce(w)
        if not _close(o[0], pooled):
            continue
        value = f"{float(o.flatten()[0]):.4g}" if o.ndim == 1 else "the same values"
        first = _close(o[0], w[0])
        if first and name != "mean":
            return  # instance 0's value that happens to be the max or sum: the generic first_slice_for_all says it
        cause = (
            f"the {name} over the instances of the right values (and by chance also instance 0's right value)"
            if first
            else f"the {name} over the instances of the right per-instance values"
        )
        also = " Or, since it is also instance 0's value: instance 0's result used for every instance." if first else ""
        fail(
            f"{what}: every instance got {value}, {cause}, while the right values differ between instances",
            f"you reduced over the instances too (pooled them): reduce over {keep} only and keep the instance axis "
            f"(e.g. .mean(-1), not .mean() or a mean over the instance axis as well).{also}",
            code="pooled_over_instances",
        )


def fve_implied_total(out: Tensor, h: Tensor, h_rec: Tensor) -> None:
    """For an uncatalogued FVE output: the total it implies with the right numerator, num/(1 - out), compared with
    other totals built from per-d_in spreads, up to a size factor (the numerator or denominator reduced with a
    mean where a sum belongs, or the reverse). Names the total; says nothing when none fits."""
    SP.fve_named_totals(out, h, h_rec)  # another named total (one example, the mean's energy, one coordinate)
    n, d = h.shape[0], h.shape[-1]
    hd, o = h.detach().double(), out.detach().double()
    num = (hd - h_rec.detach().double()).pow(2).sum((0, 2))
    implied = num / (1 - o)
    if not torch.isfinite(implied).all():
        return
    std = {False: hd.std(0, unbiased=False), True: hd.std(0, unbiased=True)}
    totals = {
        "(Σ_d std_d)², the square of a sum of the per-d_in standard deviations": [
            s.sum(-1).pow(2) for s in std.values()
        ],
        "(Σ_d |h - mean(h)|)², the square of a sum of absolute deviations": [
            (hd - hd.mean(0)).abs().sum(-1).pow(2).sum(0)
        ],
        "(Σ_d (h - mean(h)))², the square of the deviations' sum over d_in": [(hd - hd.mean(0)).sum(-1).pow(2).sum(0)],
    }
    factors = {
        "1": 1.0,
        "batch": n,
        "batch - 1": n - 1,
        "d_in": d,
        "batch·d_in": n * d,
        "1/batch": 1 / n,
        "1/d_in": 1 / d,
    }
    for name, values in totals.items():
        for total in values:
            for label, c in factors.items():
                if _close(implied, c * total, rtol=1e-4, atol=1e-8):
                    scale = "" if label == "1" else f" (times {label}: a mean where a sum belongs, or the reverse)"
                    fail(
                        f"fraction_variance_explained: your value is 1 - Σ(h - h_rec)² / T with T = {name}{scale}",
                        "the total is Σ over batch and d_in of (h - mean(h))²: square each deviation before summing "
                        "(batch × Σ_d var_d), don't square a sum; numerator and denominator both sums over batch "
                        "and d_in",
                        code="fve_total_squared_sum",
                    )


def dead_latent_reductions(impl, acts: Tensor) -> None:
    """Call dead_latent_fraction on a copy of `acts` where instance 1 has 5 of 7 latents dead and instance 2 all of
    them (so a median or a min over the latents of the dead mask differs from its mean, and from a pooling over the
    instances), and fail when the output is that median or min. A failing call or another output is left to the
    main check on `acts`."""
    if acts.ndim != 3 or acts.shape[1] < 3 or acts.shape[2] < 7:
        return
    probe = acts.clone()
    probe[:, 1, 3:7], probe[:, 2] = 0.0, 0.0
    try:
        out = impl(probe.clone())
    except Exception:  # the main check reports it
        return
    if not isinstance(out, Tensor) or out.shape != (acts.shape[1],):
        return
    dead = (probe == 0).all(0).double()  # [inst d_sae]
    right, out = dead.mean(-1), out.detach().double().cpu().to(dead.device)
    if _close(out, right):
        return
    for how, value in (("median", dead.median(-1).values), ("min", dead.amin(-1))):
        if _close(out, value) and not _close(value, right):
            fail(
                f"dead_latent_fraction on acts where instance 1 has 5 of 7 latents dead and instance 2 all 7: got "
                f"{[round(v, 4) for v in out.tolist()]}, the {how} over latents of the dead mask, expected the "
                f"fractions {[round(v, 4) for v in right.tolist()]}",
                f"a {how} over latents where the mean (the fraction) belongs: (acts == 0).all(dim=0) gives one "
                "0/1 per latent and instance; average it over the latents, .float().mean(-1)",
                code=f"{how}_over_latents",
            )
