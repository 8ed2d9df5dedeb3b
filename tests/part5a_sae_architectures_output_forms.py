"""Part 5a: readings of an output's form and of composite slips, added in held-out round BB.

* `axes_hint`: the axes a wrongly shaped metric kept (moved here from the checker module).
* `recovery_output`: feature_recovery returning torch.max's (values, indices) pair, or the top-1 cosine with the
  latent axis kept (topk(1) / max(keepdim=True) / kthvalue(keepdim=True)): shape (inst, 1, feats).
* `topk_l_sparsity`: TopK's logged L_sparsity reduced over the batch (shape [inst]), or the count rescaled by a
  named constant (divided by k: "the fraction of the k slots used").
* `batch_topk`: TopK keeping the k·batch largest activations of each instance over the whole batch (BatchTopK, part
  5b's architecture) instead of k per example: read from the per-instance total count.
* `fve_two_slips`: fraction_variance_explained with two slips at once among the residual (centred or not), the
  total (uncentred, centred on h_rec's or d_in's mean, the reconstruction's variance) and the aggregation (a ratio of
  sums, per-d_in ratios averaged, per-example ratios averaged): each slip named.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def axes_hint(got: tuple, sizes: dict[str, int], want: str) -> str | None:
    """Name the axes a wrongly shaped result kept, when every size identifies one input axis (sizes: name -> size)."""
    by_size = {}
    for axis, size in sizes.items():
        by_size[size] = None if size in by_size else axis  # ambiguous sizes name nothing
    kept = [by_size.get(n) for n in got]
    if not got or None in kept:
        return None
    wanted = want.split()
    lost = [a for a in wanted if a not in kept]
    extra = [a for a in kept if a not in wanted]
    parts = []
    if lost:
        parts.append(f"you reduced over `{'`, `'.join(lost)}`, which should stay")
    if extra:
        parts.append(f"`{'`, `'.join(extra)}` should be reduced")
    if not parts:
        return None
    return f"your result has axes ({', '.join(kept)}), expected ({', '.join(wanted)}): " + "; ".join(parts)


def recovery_output(out: Any, n_inst: int, n_feats: int) -> None:
    """feature_recovery's output as a (values, indices) pair, or with a size-1 latent axis kept."""
    if isinstance(out, tuple) and hasattr(out, "values") and hasattr(out, "indices"):
        fail(
            f"feature_recovery returned a {type(out).__name__} pair (values, indices), not a tensor",
            "torch.max(x, dim) returns both the values and their indices: return its .values (or use .amax(dim))",
            code="values_and_indices",
        )
    if isinstance(out, Tensor) and tuple(out.shape) == (n_inst, 1, n_feats):
        fail(
            f"feature_recovery returned shape {tuple(out.shape)}: the latent axis is kept with size 1",
            "the top-1 cosine kept its axis (topk(1, dim=1), or max / kthvalue with keepdim=True): drop it with "
            ".squeeze(1), or take .amax(dim=1)",
            code="latent_axis_kept",
        )


def topk_l_sparsity(value: Any, want: Tensor, k: int, d_sae: int) -> None:
    """TopK's loss_dict['L_sparsity'] ([batch inst]) reduced over the batch, or the right count times a constant."""
    what = "loss_dict['L_sparsity']"
    if not isinstance(value, Tensor) or value.device.type == "meta":
        return
    v = value.detach().to(want.dtype)
    if v.shape == want.shape[1:]:
        how = next(
            (n for n, r in (("averaged", want.mean(0)), ("summed", want.sum(0))) if torch.allclose(v, r, atol=1e-5)),
            "reduced",
        )
        fail(
            f"{what} has shape {tuple(v.shape)} (inst), expected {tuple(want.shape)} (batch inst): it is {how} over "
            "the batch",
            "keep L_sparsity per example, [batch inst] like L_reconstruction (don't take its .mean(0)): the loss and "
            "the logging reduce it themselves",
            code="sparsity_batch_reduced",
        )
    if v.shape != want.shape or torch.allclose(v, want, atol=1e-5) or not (want > 0).any():
        return
    for name, c in (("k", k), ("d_sae", d_sae)):
        for shown, factor in ((f"divided by {name} = {c}", 1 / c), (f"multiplied by {name} = {c}", c)):
            if torch.allclose(v, want * factor, rtol=1e-4, atol=1e-6):
                fail(
                    f"{what} is the number of non-zero latents {shown}",
                    f"L_sparsity is the count itself, (acts_post > 0).sum(-1): not {shown.split(' = ')[0]} (not a "
                    "fraction of the slots or latents)",
                    code="sparsity_scaled_by_size",
                )


def batch_topk(acts: Tensor, reference: Any, h: Tensor, k: int) -> None:
    """Non-zeros per instance, over the batch, equal min(k·batch, positives) while some example keeps more than k."""
    nz = acts.detach() != 0
    if not (nz.sum(-1) > k).any():
        return
    with torch.no_grad():
        pre = torch.einsum("bid,ids->bis", h - reference.b_dec, reference.W_enc) + reference.b_enc
    batch = acts.shape[0]
    total, positive = nz.sum((0, 2)), (pre > 0).sum((0, 2))
    if torch.equal(total, positive.clamp(max=k * batch)) and (total < positive).any():  # some were dropped
        fail(
            f"some examples keep more than k={k} latents, yet each instance keeps exactly k·batch = {k * batch} "
            "activations over the whole batch",
            "you took the top k·batch over the batch and the latents together (BatchTopK, part 5b's variant): keep "
            "the k largest of each example, topk(k, dim=-1) over d_sae",
            code="batch_topk",
        )


def _fve_parts(h: Tensor, h_rec: Tensor) -> tuple[dict, dict, dict]:
    e = h - h_rec
    residuals = {
        "plain": (e.pow(2), None),
        "centred": (
            (e - e.mean(0, keepdim=True)).pow(2),
            "the residual is centred (its batch mean removed): use Σ(h - h_rec)² as it is",
        ),
    }
    totals = {
        "centred": ((h - h.mean(0, keepdim=True)).pow(2), None),
        "uncentred": (h.pow(2), "the total is not centred: use Σ(h - mean_batch(h))², not Σh²"),
        "rec_mean": (
            (h - h_rec.mean(0, keepdim=True)).pow(2),
            "the total is centred on h_rec's batch mean: centre h on its own mean",
        ),
        "d_in_mean": (
            (h - h.mean(-1, keepdim=True)).pow(2),
            "the total is centred on the mean over d_in: the mean is over the batch (dim 0)",
        ),
        "rec_variance": (
            (h_rec - h_rec.mean(0, keepdim=True)).pow(2),
            "the total is the reconstruction's variance: use h's, Σ(h - mean_batch(h))²",
        ),
    }
    aggregations = {
        "sums": (lambda r, t: 1 - r.sum((0, 2)) / t.sum((0, 2)), None),
        "per_d_in": (
            lambda r, t: (1 - r.sum(0) / t.sum(0)).mean(-1),
            "a ratio per d_in averaged over d_in: sum over d_in as well as the batch before dividing",
        ),
        "per_example": (
            lambda r, t: (1 - r.sum(-1) / t.sum(-1)).mean(0),
            "a ratio per example averaged over the batch: sum over the batch before dividing (a ratio of sums)",
        ),
    }
    return residuals, totals, aggregations


def fve_two_slips(out: Tensor, h: Tensor, h_rec: Tensor) -> None:
    """Fail naming each slip when `out` is FVE with two or three of the slips above at once."""
    residuals, totals, aggregations = _fve_parts(h.double(), h_rec.double())
    got = out.detach().double()
    for (r, (rv, rh)), (t, (tv, th)), (a, (fn, ah)) in product(residuals.items(), totals.items(), aggregations.items()):
        slips = [hint for hint in (rh, th, ah) if hint is not None]
        if len(slips) < 2:
            continue
        value = fn(rv, tv)
        fits = value.shape == got.shape and bool(torch.isfinite(value).all())
        if fits and torch.allclose(got, value, rtol=1e-4, atol=1e-6):
            fail(
                f"fraction_variance_explained has {len(slips)} slips at once (read back: {r} residual, {t} total, "
                f"{a} aggregation)",
                f"{len(slips)} slips: " + "; and ".join(slips),
                code="fve_slips",
            )
