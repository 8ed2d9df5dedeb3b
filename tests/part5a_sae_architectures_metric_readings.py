"""Part 5a per-instance metrics read generically, as catalogue entries (code, hint, value) built from the checker's
own inputs: the right computation with a count replaced by its neighbour (n ± 1), an example or latent slice
dropped (first or last, divided by the kept or the full count), instance 0's value for every instance, the FVE's
ratio rearranged, its mean pooled over the wrong axes or the explained sum of squares over the total (ESS / TSS),
and feature recovery's cosine rescaled or averaged over the best few latents. `edge_only_latents` gives
dead_latent_fraction's input latents alive on one end example only.

A 1-D output equal to instance 0's value everywhere is one constant, which the generic first-slice reading leaves
alone (a constant matches slice 0 of many things); these entries name it where the metric is known.
Each entry is the right computation with one thing changed; an entry equal to the right values is left out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part5a_sae_architectures_metric_spans as SP

Mutant = tuple[str, str, Tensor]


def _differs(value: Tensor, right: Tensor) -> bool:
    return value.shape != right.shape or not torch.allclose(value, right, rtol=1e-5, atol=1e-7)


def _l0(acts: Tensor) -> Tensor:
    return (acts != 0).to(acts.dtype).sum(-1).mean(0)


def _dead(acts: Tensor) -> Tensor:
    return (acts == 0).all(0).to(acts.dtype).mean(-1)


def _keep(entries: list[Mutant], right: Tensor) -> list[Mutant]:
    """The entries that differ from the right values; two with other codes but equal values on these inputs (e.g.
    an alive latent dropped from a mean over d_sae - 1, and a mean over d_sae - 1) become one entry naming both."""
    kept: list[Mutant] = []
    for code, hint, value in entries:
        if not _differs(value, right):
            continue
        same = next((i for i, k in enumerate(kept) if not _differs(value, k[2])), None)
        if same is None:
            kept.append((code, hint, value))
        elif kept[same][0] != code:
            first = kept[same]
            kept[same] = (first[0], f"two readings fit what you returned: {first[1]}; or {hint}", first[2])
    return kept


def instance0_for_all(metric: str, right: Tensor) -> list[Mutant]:
    """Instance 0's value returned for every instance (an index 0 where the instance axis belongs)."""
    hint = (
        f"every instance got instance 0's {metric} ({float(right[0]):.4g}): an index [:, 0] (or a loop that kept "
        "its first result) where each instance's own slice belongs; compute per instance, keeping the instance axis"
    )
    return _keep([("first_instance_for_all", hint, right[:1].expand_as(right).clone())], right)


def _slices(acts: Tensor, fn: Callable[[Tensor], Tensor], fraction: bool) -> list[Mutant]:
    n, d = acts.shape[0], acts.shape[-1]
    entries: list[Mutant] = SP.example_spans(acts, fn) if fraction else []  # dead: every prefix / suffix length
    for end, sl in (("first", slice(1, None)), ("last", slice(None, -1))):
        idx = "1:" if end == "first" else ":-1"
        what = f"example ({end}, acts[{idx}])"
        if not fraction:
            left_out = f"your value leaves out one {what} of the {n}: an off-by-one slice or range; use every example"
            entries.append((f"example_dropped_{end}", left_out, fn(acts[sl])))
            # a loop over range(1, n) (or range(n - 1)) whose total is divided by the full batch size
            summed = f" (your total over {n - 1} examples is divided by the batch size {n})"
            entries.append((f"example_dropped_{end}", left_out + summed, fn(acts[sl]) * (n - 1) / n))
        kept = fn(acts[..., sl])
        hint = (
            f"your value leaves out one latent ({end}, acts[..., {idx}] or a range starting at 1 / stopping at "
            f"d_sae - 1) of the {d}: an off-by-one slice or loop; use every latent"
        )
        entries.append(("latent_dropped", hint, kept))
        if fraction:  # the kept latents' count over the full d_sae
            entries.append(
                ("latent_dropped", hint + f" (you divided by d_sae = {d} but counted {d - 1})", kept * (d - 1) / d)
            )
    return entries


def _count_off(right: Tensor, name: str, s: int) -> list[Mutant]:
    return [
        (
            "mean_count_off_by_one",
            f"your mean divides by {name} {sign} 1 ({s + k}), not by {name} ({s}): a mean with the wrong count "
            "(a Bessel-style n - 1 habit, or a range off by one); use .mean() over that axis",
            right * s / (s + k),
        )
        for k, sign in ((-1, "-"), (1, "+"))
    ]


def l0_readings(acts: Tensor) -> list[Mutant]:
    """l0_norm with the batch mean over batch ± 1, a latent or an example left out, or instance 0's for all."""
    right = _l0(acts)
    entries = _count_off(right, "batch", acts.shape[0]) + _slices(acts, _l0, fraction=False)
    entries += SP.l0_relative_thresholds(acts) + SP.sorted_along("L0", right, 0, "instance")
    return _keep(entries + instance0_for_all("L0", right), right)


def dead_readings(acts: Tensor) -> list[Mutant]:
    """dead_latent_fraction over d_sae ± 1, a latent or an example left out, or instance 0's for all."""
    right = _dead(acts)
    entries = _count_off(right, "d_sae", acts.shape[-1]) + _slices(acts, _dead, fraction=True)
    entries += SP.sorted_along("dead fraction", right, 0, "instance")
    return _keep(entries + instance0_for_all("dead fraction", right), right)


def edge_only_latents(acts: Tensor) -> Tensor:
    """acts with latent 5 of instances 0 and 1 firing on the last example only and latent 3 of instance 0 on the
    first only (each its example's largest latent): all alive, so a slice dropping either end example counts some
    dead, in a pattern of instances (0 and 1; 0 alone) no zero tolerance (2; 0 and 2; all) or constant latent (1)
    gives."""
    acts[:, :2, 5], acts[:, 0, 3] = 0.0, 0.0
    acts[-1, :2, 5], acts[0, 0, 3] = 9.0, 8.0  # each its example's largest
    return acts


def fve_readings(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """FVE with the ratio rearranged ((T - R) / R, 1 - R / (T + R), T / (T + R)) and its total centred on a mean
    pooled over the wrong axes (batch and d_in, or batch and instances), or the pooled shortcut with another count."""
    n, d = h.shape[0], h.shape[-1]
    res, tot = (h - h_rec).pow(2).sum((0, 2)), (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    right = 1 - res / tot
    form = "the FVE is 1 - R / T with R = Σ(h - h_rec)² and T = Σ(h - h.mean(0))²"
    entries: list[Mutant] = [
        ("ratio_rearranged", f"yours is (T - R) / R, divided by the residual R: {form}", (tot - res) / res),
        (
            "ratio_rearranged",
            f"yours is 1 - R / (T + R), the residual added to the total: {form}",
            1 - res / (tot + res),
        ),
        ("ratio_rearranged", f"yours is T / (T + R): {form}", tot / (tot + res)),
    ]
    sq, pooled = h.pow(2).sum((0, 2)), h.sum((0, 2)).pow(2)
    hint = (  # the count batch·d_in is centred_scalar_mean (M.fve_mistakes); d_in leaves a total near -∞ (FVE ≈ 1)
        f"your total is Σh² - (Σ_(batch, d_in) h)² / {n}: a sum pooled over batch and d_in, divided by the batch "
        f"({n}; a mean pooled that way divides by batch·d_in = {n * d}). The total centres each d_in coordinate on "
        "its own batch mean: Σ(h - h.mean(0))², i.e. Σh² - batch · Σ_d mean_d²"
    )
    entries.append(("mean_pooled_axes", hint, 1 - res / (sq - pooled / n)))
    hint = (
        "your total centres h on one mean pooled over the batch and the instances (h.mean((0, 1))): each instance "
        "is its own model; centre on h.mean(0), the batch mean per instance and d_in coordinate"
    )
    entries.append(("mean_pooled_axes", hint, 1 - res / (h - h.mean((0, 1), keepdim=True)).pow(2).sum((0, 2))))
    entries += _explained_over_total(h, h_rec, tot)
    return _keep(entries + instance0_for_all("FVE", right), right)


def _explained_over_total(h: Tensor, h_rec: Tensor, tot: Tensor) -> list[Mutant]:
    """The explained sum of squares over the total, ESS / TSS with ESS = Σ(h_rec - h.mean(0))²: the R² of a
    least-squares fit with an intercept, not 1 - R / T in general (h_rec on its own mean is `variance_ratio`)."""
    why = (
        "ESS / TSS equals 1 - SSE / SST only for a least-squares fit with an intercept (its residual orthogonal to "
        "the fit); an SAE's reconstruction is no such fit, so the two differ. FVE is 1 - Σ(h - h_rec)² / "
        "Σ(h - h.mean(0))², sums over batch and d_in"
    )
    ess = (h_rec - h.mean(0, keepdim=True)).pow(2).sum((0, 2))  # h_rec on its own mean: variance_ratio (M)
    hint = f"yours is the explained sum of squares over the total, ESS / TSS with ESS = Σ(h_rec - h.mean(0))²: {why}"
    return [("explained_over_total", hint, ess / tot)]


def recovery_readings(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """feature_recovery with the cosine rescaled to [0, 1] ((cos + 1) / 2) and the mean of the best k latents."""
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), f_hat)
    right = cos.amax(1)
    entries: list[Mutant] = [
        (
            "cosine_rescaled",
            "your values are (cos + 1) / 2, the cosine rescaled to [0, 1]: return the best cosine itself, in [-1, 1]",
            (right + 1) / 2,
        )
    ]
    for k in (2, 3):
        hint = (
            f"your value is the mean of the {k} best latents' cosines (topk({k}) then .mean()): the recovery is the "
            "single best one, cos.max(dim=latents).values"
        )
        entries.append(("topk_mean", hint, cos.topk(k, dim=1).values.mean(1)))
    Fc, Dc = W_feat - W_feat.mean(1, keepdim=True), W_dec - W_dec.mean(-1, keepdim=True)
    pearson = torch.einsum("isd,idf->isf", Dc / Dc.norm(dim=-1, keepdim=True), Fc / Fc.norm(dim=1, keepdim=True))
    hint = (
        "your values are Pearson correlations: each vector centred on its mean over d_in before the cosine. The "
        "recovery is the plain cosine of the uncentred directions, W_features[:, :, f] and W_dec[:, j, :] each "
        "divided by its norm, with no mean subtracted"
    )
    entries.append(("correlation_not_cosine", hint, pearson.amax(1)))
    entries += SP.sorted_along("feature recovery", right, -1, "feature") + SP.recovery_centred(W_feat, W_dec)
    return _keep(entries, right)
