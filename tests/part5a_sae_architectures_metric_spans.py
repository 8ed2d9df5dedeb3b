"""Part 5a metric readings found by a search rather than one entry each, as catalogue entries (code, hint, value).

* `example_spans`: the metric on a prefix or a suffix of the batch, for every length. Lengths that give the same
  values are grouped, and the hint says how many examples that leaves out (one, or a range of counts when the
  inputs can't tell the lengths apart), never "one example" when more are left out.
* `l0_relative_thresholds`: L0 counting |a| above a threshold taken from the activations themselves (their mean
  |a| over everything, per instance, per example or per latent) instead of a ≠ 0.
* `fve_named_totals`: FVE whose total is another named quantity (centred on one example, the energy of the batch
  mean, one d_in coordinate, uncentred), read back from the learner's output as total = Σres / (1 - fve).
* `sorted_along`: the right values sorted along an axis (a permutation that keeps the multiset of values).
* `recovery_centred`: feature recovery with the features (or the decoder rows) centred over the wrong axis.
An entry equal to the right values is left out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail

Mutant = tuple[str, str, Tensor]


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def _count(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"between {lo} and {hi} (these inputs can't tell how many)"


def example_spans(acts: Tensor, fn: Callable[[Tensor], Tensor]) -> list[Mutant]:
    """fn on acts[:k] (the last n - k examples left out, code example_dropped_last) and acts[k:] (the first k left
    out, example_dropped_first) for every k, lengths with equal values grouped into one entry."""
    n, right = acts.shape[0], fn(acts)
    entries: list[Mutant] = []
    for end in ("last", "first"):
        runs: list[tuple[int, int, Tensor]] = []  # (fewest, most left out, value)
        for dropped in range(1, n):
            value = fn(acts[: n - dropped] if end == "last" else acts[dropped:])
            if runs and _same(value, runs[-1][2]):
                runs[-1] = (runs[-1][0], dropped, runs[-1][2])
            else:
                runs.append((dropped, dropped, value))
        for lo, hi, value in runs:
            if _same(value, right) or (lo > 1 and hi > lo) or hi == n - 1:  # one example kept: single_example
                continue  # a run of lengths not including one example is weak evidence: left out
            if hi == 1:
                what = f"one example ({end}, acts[{'1:' if end == 'first' else ':-1'}]) of the {n}: an off-by-one slice"
            else:
                kept = f"the first {n - hi}..{n - lo}" if end == "last" else f"the last {n - hi}..{n - lo}"
                if lo == hi:
                    kept = f"the {'first' if end == 'last' else 'last'} {n - lo}"
                where = f"acts[:{n - lo}]" if end == "last" else f"acts[{lo}:]"
                what = (
                    f"the {end} {_count(lo, hi)} examples of the {n}: it equals the metric on only {kept} examples "
                    f"(e.g. {where}), a slice or loop over part of the batch"
                )
            entries.append((f"example_dropped_{end}", f"your value leaves out {what}; use every example", value))
    return entries


def l0_relative_thresholds(acts: Tensor) -> list[Mutant]:
    """L0 counting |a| > c (or >=) with c a mean of |a| taken over all of acts, per instance, example or latent."""
    a = acts.abs()
    right = (acts != 0).to(acts.dtype).sum(-1).mean(0)
    means = {
        "the mean |a| over the whole tensor": a.mean(),
        "each instance's mean |a|": a.mean((0, 2), keepdim=True),
        "each example's mean |a| over the latents": a.mean(-1, keepdim=True),
        "each latent's mean |a| over the batch": a.mean(0, keepdim=True),
    }
    entries: list[Mutant] = []
    for name, c in means.items():
        for op, cmp in ((">", torch.gt), (">=", torch.ge)):
            value = cmp(a, c).to(acts.dtype).sum(-1).mean(0)
            if _same(value, right):
                continue
            hint = (
                f"your count is of |a| {op} {name} (a threshold relative to the activations), not of a ≠ 0: L0 "
                "counts every non-zero latent, however small; (acts != 0).sum(-1), then the mean over the batch"
            )
            entries.append(("relative_threshold", hint, value))
    return entries


def fve_named_totals(out: Tensor, h: Tensor, h_rec: Tensor) -> None:
    """Reads the total back from an FVE output (T = Σres / (1 - fve), the numerator assumed right) and names it
    when it is one of a few other totals (exactly, per instance); says nothing when none fits."""
    hd, o = h.detach().double(), out.detach().double()
    if o.shape != (h.shape[1],):
        return
    implied = (hd - h_rec.detach().double()).pow(2).sum((0, 2)) / (1 - o)
    if not torch.isfinite(implied).all():
        return
    centred = hd - hd.mean(0, keepdim=True)
    totals = {
        "Σ(h - h[0])², the deviations from the first example instead of from the batch mean": (hd - hd[:1]),
        "Σ(h - h[-1])², the deviations from the last example instead of from the batch mean": (hd - hd[-1:]),
        "batch · Σ_d mean(h)², the energy of the batch mean (its size), not the spread around it": (
            hd.mean(0, keepdim=True).expand_as(hd)
        ),
        "Σh², the uncentred energy of h (no mean subtracted)": hd,
        "Σ(h - mean(h))² over the batch for d_in coordinate 0 only ([..., 0]), not summed over d_in": (
            centred[..., :1]
        ),
        "Σ(h - mean(h))² over the batch for the last d_in coordinate only ([..., -1]), not summed over d_in": (
            centred[..., -1:]
        ),
        "Σ(h - mean over d_in)², each example centred on its own mean over d_in, not on the batch mean": (
            hd - hd.mean(-1, keepdim=True)
        ),
    }
    right = centred.pow(2).sum((0, 2))
    for name, dev in totals.items():
        total = dev.pow(2).sum((0, 2))
        if torch.allclose(total, right, rtol=1e-6) or not torch.allclose(implied, total, rtol=1e-4, atol=1e-8):
            continue
        fail(
            f"fraction_variance_explained: your value is 1 - Σ(h - h_rec)² / T with T = {name}",
            "the total is Σ over the batch and every d_in coordinate of (h - h.mean(0))²: each coordinate centred "
            "on its own batch mean, summed over batch and d_in, per instance",
            code="fve_wrong_total",
        )


def sorted_along(metric: str, want: Tensor, dim: int, axis: str) -> list[Mutant]:
    """The right values sorted along `dim` (descending or ascending): a permutation of them along that axis."""
    entries: list[Mutant] = []
    for descending, how in ((True, "best-first (descending)"), (False, "ascending")):
        value = want.sort(dim, descending=descending).values
        if not _same(value, want):
            hint = (
                f"your values are the right {metric} values sorted {how} along the {axis} axis: each {axis} has its "
                f"own value in its own position; return them unsorted (sort a copy for plotting)"
            )
            entries.append(("sorted_output", hint, value))
    return entries


def recovery_centred(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """Recovery with W_features centred over the feature axis, or W_dec over the latent axis, before the cosine."""

    def rec(F: Tensor, Wd: Tensor) -> Tensor:
        dots = torch.einsum("isd,idf->isf", Wd / Wd.norm(dim=-1, keepdim=True), F / F.norm(dim=1, keepdim=True))
        return dots.amax(1)

    right = rec(W_feat, W_dec)
    entries: list[Mutant] = [
        (
            "centred_wrong_axis",
            "your features were centred over the feature axis (W_features - W_features.mean(-1)) before the "
            "cosine: each feature is its own direction; normalise W_features[:, :, f] as it is, nothing subtracted",
            rec(W_feat - W_feat.mean(-1, keepdim=True), W_dec),
        ),
        (
            "centred_wrong_axis",
            "your decoder rows were centred over the latents (W_dec - W_dec.mean(1)) before the cosine: normalise "
            "each W_dec[:, j, :] as it is, nothing subtracted",
            rec(W_feat, W_dec - W_dec.mean(1, keepdim=True)),
        ),
    ]
    return [e for e in entries if not _same(e[2], right)]
