"""Part 5a metric checks with tiny activations, and a few formula slips as catalogue entries.

The metrics take an SAE's activations, which are never negative (their docstrings say so), so a positive-only reading
(acts > 0, a zero sum over the batch) is right and no probe feeds them signed values.

The catalogue entries (code, hint, value) are the right computation with one thing changed: L0 after a float16 cast
(tiny activations round to 0), the FVE's shortcut total without brackets, its total as the biased variance times a
size other than the batch, its residual a norm instead of a square, a metric rounded to a few decimals, and the
recovery cosine divided by a sum of norms or by a norm reduced over the instance's rows, on W_features reshaped where a
transpose belongs, or reduced over an axis and broadcast back; the FVE residual centred on its own mean.
An entry equal to the right values on the inputs is left out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part5a_sae_architectures_metric_measures as MM

Mutant = tuple[str, str, Tensor]


def _differs(value: Tensor, right: Tensor) -> bool:
    return value.shape != right.shape or not torch.allclose(value, right, rtol=1e-3, atol=1e-5)


def with_tiny_values(acts: Tensor) -> Tensor:
    """`acts` with instance 2's latent 0 firing at 1e-9 / 1e-12 on 400 examples: non-zero, so counted, but 0 after
    a cast to float16 (its smallest subnormal is about 6e-8)."""
    acts[100:300, 2, 0] = 1e-9
    acts[300:500, 2, 0] = 1e-12
    return acts


def l0_low_precision(acts: Tensor) -> list[Mutant]:
    """L0 counted after a cast to float16 / bfloat16: activations too small for that dtype count as zero."""
    right = (acts != 0).to(acts.dtype).sum(-1).mean(0)
    entries: list[Mutant] = []
    for dtype, name in ((torch.float16, "float16 (.half())"), (torch.bfloat16, "bfloat16")):
        value = (acts.to(dtype) != 0).to(acts.dtype).sum(-1).mean(0)
        if not _differs(value, right):
            continue
        info = torch.finfo(dtype)
        tiny = info.smallest_normal * info.eps / 2
        hint = (
            f"your count is the one after a cast to {name}: activations below about {tiny:.2g} round to 0 in that "
            "dtype (the input has latents firing at 1e-9 and 1e-12), so they are not counted. Test the activations "
            "in their own dtype: (acts != 0).sum(-1), then the mean over the batch"
        )
        entries.append(("low_precision_cast", hint, value))
    return entries


def dead_flag_readings(acts: Tensor) -> list[Mutant]:
    """dead_latent_fraction as a yes/no flag per instance, or counting the constant (zero-variance) latents."""
    return [
        (
            "any_dead_flag",
            "that is a yes/no flag per instance (does it have any dead latent?): return the fraction of latents "
            "dead, (acts == 0).all(dim=0) averaged over the latents",
            (acts == 0).all(0).any(-1).to(acts.dtype),
        ),
        (
            "constant_latent",
            "your fraction counts as dead the latents with zero variance over the batch (latent 2 of instance "
            "1 is 0.3 on every example): such a latent fires; dead means zero on every example",
            (acts.std(0) == 0).to(acts.dtype).mean(-1),
        ),
    ]


def fve_formula_slips(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """FVE with the shortcut total Σh² - B·Σmean² missing its brackets, the total as the biased variance times
    n_inst or d_in (instead of the batch), and the residual a per-example norm or a whole norm (not squared)."""
    n = h.shape[0]
    res = (h - h_rec).pow(2).sum((0, 2))
    total = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    right = 1 - res / total
    var = h.var(0, unbiased=False).sum(-1)
    entries: list[Mutant] = [
        (
            "precedence",
            "your value is 1 - Σres² / Σh² - B·Σmean(h)²: the shortcut total Σh² - B·Σmean(h)² lost its brackets. "
            "Divide by the whole total: 1 - Σ(h - h_rec)² / (Σh² - B·Σmean(h)²), or use Σ(h - mean(h))²",
            1 - res / h.pow(2).sum((0, 2)) - n * h.mean(0).pow(2).sum(-1),
        ),
    ]
    for name, size in (("n_inst (h.shape[1])", h.shape[1]), ("d_in (h.shape[2])", h.shape[2])):
        if size != n:
            entries.append(
                (
                    "total_size_factor",
                    f"your total is the biased variance (summed over d_in) times {name} = {size}: Σ(h - mean(h))² "
                    f"is the biased variance times the batch size (h.shape[0] = {n}), not times {name}",
                    1 - res / (var * size),
                )
            )
    per_example = (h - h_rec).norm(dim=-1).sum(0)
    entries.append(
        (
            "residual_not_squared",
            "your residual is Σ_batch ‖h - h_rec‖ (each example's L2 norm, not squared): use the squared error "
            "Σ(h - h_rec)² over batch and d_in, the same kind of sum as the total",
            1 - per_example / total,
        )
    )
    r = h - h_rec
    entries.append(
        (
            "residual_centred",
            "your residual is centred on its own batch mean, Σ(r - mean(r))² with r = h - h_rec (sklearn's "
            "explained_variance_score): the FVE's residual is the plain squared error Σ(h - h_rec)², so a constant "
            "offset in h_rec counts as error. Centre only the total, on mean(h)",
            1 - (r - r.mean(0, keepdim=True)).pow(2).sum((0, 2)) / total,
        )
    )
    entries.append(
        (
            "residual_not_squared",
            "your residual is ‖h - h_rec‖ (the square root of Σ(h - h_rec)²), not the squared error itself: "
            "use Σ(h - h_rec)² over batch and d_in",
            1 - res.sqrt() / total,
        )
    )
    return [e for e in entries if _differs(e[2], right)]


def rounded(metric: str, want: Tensor) -> list[Mutant]:
    """The metric rounded to 1, 2 or 3 decimals (a logging habit, .round(decimals=k) or round(x, k))."""
    entries: list[Mutant] = []
    for k in (1, 2, 3):
        value = want.round(decimals=k)
        if _differs(value, want):
            hint = (
                f"your values are the right ones rounded to {k} decimal{'s' if k > 1 else ''} (.round(decimals={k})): "
                f"return the unrounded {metric}; round only when printing"
            )
            entries.append(("rounded", hint, value))
    return entries


def recovery_norm_slips(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """Feature recovery with the dot product divided by the sum of the two norms (not their product), by a norm
    reduced over the instance's rows, on a reshaped (not transposed) input, or reduced over an axis and broadcast."""
    dot = torch.einsum("isd,idf->isf", W_dec, W_feat)
    dn, fn = W_dec.norm(dim=-1)[:, :, None], W_feat.norm(dim=1)[:, None, :]
    right = (dot / (dn * fn)).amax(1)
    value = (dot / (dn + fn)).amax(1)
    hint = (
        "your cosine is W_dec[j] · W_features[:, f] / (‖W_dec[j]‖ + ‖W_features[:, f]‖): a sum of the norms. "
        "The cosine divides by their product, ‖W_dec[j]‖ · ‖W_features[:, f]‖ (or normalise both first)"
    )
    entries = [
        ("norm_sum", hint, value),
        *_recovery_norm_reduced(dot, W_dec, W_feat),
        *MM.recovery_norm_eps(W_feat, W_dec),
    ]
    entries += _recovery_reshaped(W_feat, W_dec) + broadcast_reductions(right, ("instance", "feature"), "recovery")
    return [e for e in entries if _differs(e[2], right)]


def _recovery_norm_reduced(dot: Tensor, W_dec: Tensor, W_feat: Tensor) -> list[Mutant]:
    """The cosine with one side's norm reduced over the instance's rows (the largest, the mean or the sum of the
    latents' or features' norms) instead of each row's own norm."""
    dn, fn = W_dec.norm(dim=-1, keepdim=True), W_feat.norm(dim=1, keepdim=True)  # [i s 1], [i 1 f]
    out: list[Mutant] = []
    for side, own, noun, dim in (("W_dec", dn, "latents", -1), ("W_features", fn, "features", 1)):
        axis = 1 if side == "W_dec" else 2
        for how, red in (
            ("the largest norm among", own.amax(axis, keepdim=True)),
            ("the mean norm of", own.mean(axis, keepdim=True)),
            ("the sum of the norms of", own.sum(axis, keepdim=True)),
        ):
            if side == "W_features" and how == "the mean norm of":
                continue  # the catalogue's mean_feature_norm
            value = (dot / ((red * fn) if side == "W_dec" else (dn * red))).amax(1)
            hint = (
                f"your {side} vectors are divided by {how} the instance's {noun}, not each by its own norm: "
                f"normalise each one by itself, {side} / {side}.norm(dim={dim}, keepdim=True), so every cosine "
                "lies in [-1, 1]"
            )
            out.append(("norm_reduced", hint, value))
    return out


def _recovery_reshaped(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """Feature recovery on W_features reshaped to [inst feats d_in] (or W_dec to [inst d_in d_sae]) and read as if
    transposed: reshape regroups the numbers in memory, it doesn't swap axes."""
    i, d, f = W_feat.shape
    s = W_dec.shape[1]
    out: list[Mutant] = []
    for what, fe, de, shape, fix in (
        (
            "W_features",
            W_feat.reshape(i, f, d).transpose(1, 2),
            W_dec,
            f"({i}, {f}, {d})",
            "W_features.transpose(1, 2)",
        ),
        ("W_dec", W_feat, W_dec.reshape(i, d, s).transpose(1, 2), f"({i}, {d}, {s})", "W_dec.transpose(1, 2)"),
    ):
        value = _recovery(fe, de)
        hint = (
            f"your values are the right ones computed with {what}.reshape{shape} in place of a transpose: reshape "
            f"and view regroup the numbers in memory, they don't swap axes. Use {fix} (or einops.rearrange), or "
            "contract over d_in directly with einsum"
        )
        out.append(("reshaped_not_transposed", hint, value))
    return out


def _recovery(W_feat: Tensor, W_dec: Tensor) -> Tensor:
    dot = torch.einsum("isd,idf->isf", W_dec, W_feat)
    return (dot / (W_dec.norm(dim=-1)[:, :, None] * W_feat.norm(dim=1)[:, None, :])).amax(1)


def broadcast_reductions(want: Tensor, dims: tuple[str, ...], noun: str) -> list[Mutant]:
    """The right values averaged, summed, maxed or minned over one axis and broadcast back along it (every position
    along that axis the same): a reduction over an axis that should stay."""
    out: list[Mutant] = []
    for axis, name in enumerate(dims):
        if want.shape[axis] < 2:
            continue
        for how, red in (
            ("averaged", want.mean(axis, keepdim=True)),
            ("summed", want.sum(axis, keepdim=True)),
            ("maxed", want.amax(axis, keepdim=True)),
            ("minned", want.amin(axis, keepdim=True)),
        ):
            hint = (
                f"your values are the same at every {name} (size {want.shape[axis]}): the expected {noun} {how} over "
                f"the {name}s and broadcast back. Each {name} gets its own value: don't reduce over that axis"
            )
            out.append(("reduced_broadcast", hint, red.expand_as(want)))
    return out
