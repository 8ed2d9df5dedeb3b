"""Behavioural probes for part 6b's checkers: two losses in each other's places, and NaN influences told apart by a
probe (an elementwise reciprocal for the matrix inverse, or unguarded row sums)."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.learner_errors import _is_learner_frame


def keys_swapped(got: dict[str, float], exp: dict[str, float], close: Callable[[float, float], bool]) -> None:
    """Two of the losses each hold the other's expected value (and those two values differ): their keys are swapped."""
    names = ("clean", "replaced", "zero_ablated")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if close(exp[a], exp[b]) or close(got[a], exp[a]):
                continue
            if close(got[a], exp[b]) and close(got[b], exp[a]):
                fail(
                    f"out[{a!r}] = {got[a]:.5f} and out[{b!r}] = {got[b]:.5f}: each is the other's expected loss "
                    f"(expected {exp[a]:.5f} and {exp[b]:.5f})",
                    f"the values of {a!r} and {b!r} are swapped: check which run's loss goes under which key",
                    code="keys_swapped",
                )


def influence_nan(out: Tensor, A: Tensor, weights: Tensor, impl: Callable) -> None:
    """NaN in the influence. Both an unguarded row normalisation (0 / 0 in rows without inputs) and an elementwise
    1 / (I - Â) (1 / 0 = inf off the diagonal, then inf · 0 with the zero logit weights) give NaN at every node
    here, so a probe tells them apart: with every logit weight positive, the elementwise reciprocal gives +inf
    (no 0 · inf left) where the unguarded division still gives NaN."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a_abs = A.abs()
    guarded = a_abs / a_abs.sum(-1, keepdim=True).clamp_min(1e-12)
    ones = torch.ones_like(weights)
    elementwise = ones @ (1 / (eye - guarded) - eye)
    try:
        probe = torch.as_tensor(impl(A.clone(), ones.clone())).detach()
    except Exception:
        probe = None
    reciprocal = (
        "1 / (I - Â) (or (I - Â) ** -1) is the elementwise reciprocal: the zeros off the diagonal become inf, and inf "
        "· 0 gives NaN; the series I + Â + Â² + … sums to the MATRIX inverse, torch.linalg.inv(I - Â) (or "
        "torch.linalg.solve)"
    )
    rows = "rows with no incoming edges sum to 0: clamp the row sums before dividing (clamp_min(1e-12))"
    if (
        probe is not None
        and probe.shape == elementwise.shape
        and not probe.isnan().any()
        and torch.equal(probe.isinf(), elementwise.isinf())
        and elementwise.isinf().any()
    ):
        fail(
            "the influence contains NaN; with every logit weight 1 it is +inf at the nodes where an elementwise "
            "1 / (I - Â) is",
            reciprocal,
            code="elementwise_inverse",
        )
    fail(
        f"the influence contains NaN (at nodes {out.isnan().nonzero().flatten().tolist()})",
        f"possible causes: {rows}; or {reciprocal}",
        code="zero_rows",
    )


# `variant_forward` flags from the fresh14 trial, merged into the checker's linearised-forward catalogue.
LINEARISED_FRESH14 = {
    "global_mean": "each normalisation subtracts the mean over d_model at each position (v.mean(-1, keepdim=True)), "
    "not one mean over every position and feature (v.mean())",
    "skip_untransposed": "the skip connection is x @ W_skip.T (tc.skip(x)): W_skip is [d_out d_in] like a Linear "
    "layer's weight, so x @ W_skip (square here, so no error) multiplies by its transpose",
}


def de_embedding_fresh14(model: Any, tc: Any, i: int) -> list[tuple[str, str, Tensor]]:
    enc = tc.W_enc[:, i]
    direct = model.W_E @ enc
    return [
        (
            "positional",
            "leave the position embedding out (here its mean over positions, W_pos.mean(0)): it is the same for "
            "every token at a position, so it shifts every token's value alike",
            (model.W_E + model.W_pos.mean(0)) @ enc,
        ),
        (
            "threshold_scale",
            "the values are divided by the latent's threshold: return W_E @ W_enc[:, latent] as it is, in the "
            "units of the pre-activation",
            direct / tc.threshold[i],
        ),
    ]


def bool_index_error(err: Exception) -> None:
    """An error on a 1-d tensor whose length is the number of True entries of a boolean mask of 2+ axes held by
    the same learner frame: `pre[mask]` kept the selected values only, flattened."""
    for frame, _ in traceback.walk_tb(err.__traceback__):
        if not _is_learner_frame(frame.f_code.co_filename):
            continue
        items = [(n, v) for n, v in frame.f_locals.items() if isinstance(v, Tensor)]
        masks = [(n, v) for n, v in items if v.dtype == torch.bool and v.ndim >= 2]
        for name, flat in items:
            if flat.ndim != 1 or flat.dtype == torch.bool:
                continue
            for mask_name, mask in masks:
                if flat.numel() == int(mask.sum()) and flat.numel() not in mask.shape:
                    fail(
                        f"your code raised {type(err).__name__}: {err}",
                        f"`{name}` is 1-d with {flat.numel()} entries, the number of True entries of `{mask_name}` "
                        f"{list(mask.shape)}: boolean indexing (x[{mask_name}]) keeps only the selected values, "
                        f"flattened; keep the shape with torch.where({mask_name}, x, 0.0) or x * {mask_name}",
                        code="bool_index",
                    )


def hook_width_error(err: Exception, d_model: int, d_sae: int) -> None:
    """A size mismatch between d_model and d_sae raised inside the model's forward (not on a line of the learner's):
    a hook probably returned the latents where the activation belongs."""
    frames = traceback.extract_tb(err.__traceback__)
    sizes = {int(n) for n in re.findall(r"\d+", str(err))}
    if not frames or _is_learner_frame(frames[-1].filename) or not {d_model, d_sae} <= sizes:
        return
    fail(
        f"your code raised {type(err).__name__}: {err}, inside the model's forward pass",
        f"a tensor of width {d_sae} (d_sae, the transcoder's latents; d_vocab may be the same size) met the "
        f"residual stream (d_model = {d_model}) "
        "in the model: probably a hook returned something else than an activation of the shape it received; the "
        "hook on tc.hook_name_out must return the transcoder's output, [batch, seq, d_model] "
        "(transcoder_forward(tc, x)[1]), not its latents ([0])",
        code="hook_width",
    )


def token_total(direct: Tensor, tokens: slice) -> list[tuple[str, str, Tensor]]:
    """Every token column of a row holding the sum of that row's token edges (one number for all positions)."""
    mutant = direct.clone()
    mutant[:, tokens] = direct[:, tokens].sum(-1, keepdim=True)
    return [
        (
            "token_total",
            "each token node's edge is the total over every position: sum the product gradient · embedding over "
            "d_model only (.sum(-1)), one edge per position",
            mutant,
        )
    ]


def influence_fresh14(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    a = A.abs()
    s = a.sum(-1, keepdim=True)
    a = torch.where(s > 0, a / s.clamp_min(1e-30), torch.zeros_like(a))
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return [
        (
            "matrix_exp",
            "that is w @ (exp(Â) - I): exp weights a path of length n by 1/n!, but influence sums every path with "
            "weight 1: Σ Âⁿ (n >= 1) = (I - Â)⁻¹ - I (torch.linalg.inv or solve)",
            weights @ (torch.linalg.matrix_exp(a) - eye),
        )
    ]


def quantile_fresh14(out: Any, expected: list, acts: Tensor, k: int, n_bands: int) -> None:
    """Band-wise: the distances to the band's middle returned as the values; every band cut to the same count c < k
    (k split among the bands)."""
    body = acts.clone()
    body[:, 0] = 0
    top = float(body.max())
    got = [torch.as_tensor(g[0]).detach().double().cpu() for g in out]
    want = [e[0].double().cpu() for e in expected]
    mids = [top * (2 * (n_bands - j) - 1) / (2 * n_bands) for j in range(n_bands)]
    dist = [(w - m).abs().sort().values for w, m in zip(want, mids, strict=True)]
    if any(len(w) for w in want) and all(
        g.shape == d.shape and torch.allclose(g.sort().values, d, atol=1e-5) for g, d in zip(got, dist, strict=True)
    ):
        fail(
            "each band's values are the distances of its examples to the band's middle",
            "rank by |a - middle|, but return the activations themselves (acts at the chosen positions), sorted "
            "by decreasing value",
            code="distances",
        )
    counts = {len(g) for g in got}
    c = max(counts)
    if c < k and all(len(g) == min(c, len(w)) for g, w in zip(got, want, strict=True)) and max(map(len, want)) > c:
        split = f" (k // n_bands = {k} // {n_bands} = {k // n_bands})" if c == k // n_bands else ""
        fail(
            f"each band holds at most {c} examples, expected up to k = {k} per band{split}",
            "k is the number of examples for EACH band, not a total to split among the bands",
            code="k_per_band",
        )
