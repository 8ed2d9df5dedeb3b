"""More named mistakes for part 6b's checkers (`tests.part6b_circuits`), from the fresh held-out rounds."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions.part6b_circuits import node_influence
from tests import part6b_circuits_failure_readings as failure_readings
from tests.checking import _describe_error as describe_error
from tests.checking import fail
from tests.part6_lm_saes_extra_mistakes import NOT_A_LOSS
from tests.part6b_circuits_mistakes import quantile_variant, same_groups
from tests.part6b_circuits_named_factors import influence_elementwise, influence_row_counts
from tests.part6b_circuits_term_readings import ones_identity


def logits_means(model: Any, tc: Any, tokens: Tensor, got: dict[str, float]) -> None:
    """A loss that is the mean of its run's logits: the run was made without return_type='loss'."""
    seen: dict = {}
    runs = {
        "clean": [],
        "replaced": [
            (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
            (tc.hook_name_out, lambda a, hook: tc(seen["x"])),
        ],
        "zero_ablated": [(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))],
    }
    for key, hooks in runs.items():
        mean = float(model.run_with_hooks(tokens, fwd_hooks=hooks).mean())
        if abs(got[key] - mean) <= 1e-4 * abs(mean) + 1e-6:
            fail(f"out[{key!r}] is {got[key]:.4g}, the mean of that run's logits", NOT_A_LOSS, code="logits_mean")


def other_bands(impl: Callable, acts: Tensor) -> None:
    """A second call with other k and n_bands (the first used k=3, n_bands=4, the default): both arguments used."""
    k, n_bands = 2, 3
    out = impl(acts.clone(), k, n_bands)
    if isinstance(out, list | tuple) and len(out) != n_bands:
        fail(
            f"quantile_examples(acts, k={k}, n_bands={n_bands}) returned {len(out)} groups, expected {n_bands}",
            "use the n_bands argument for the number of bands and their edges (max · j / n_bands)"
            + (", not a fixed 4 (the default)" if len(out) == 4 else ""),
            code="n_bands_ignored",
        )
    if not same_groups(out, quantile_variant(acts, k, n_bands)):
        fail(
            f"quantile_examples(acts, k={k}, n_bands={n_bands}) differs from the expected groups, while k=3, "
            "n_bands=4 (the defaults) were right",
            "use the arguments everywhere: n_bands for the number of bands AND their edges max · j / n_bands, k "
            "for the number of examples per band (no fixed 4 or 3)",
            code="arguments_ignored",
        )


def _range_groups(acts: Tensor, k: int, n_bands: int, bottom: float) -> list[Tensor]:
    """The values quantile_examples chooses when its bands split [bottom, max] (not (0, max]) into equal parts."""
    flat = acts.clone()
    flat[:, 0] = 0
    flat = flat.flatten()
    top = float(flat.max())
    groups = []
    for j in range(n_bands):
        hi = top - j * (top - bottom) / n_bands
        lo = hi - (top - bottom) / n_bands
        vals = flat[(flat > lo) & (flat <= hi)]
        groups.append(vals[(vals - (lo + hi) / 2).abs().argsort()[:k]].sort(descending=True).values)
    return groups


def negative_acts(impl: Callable, acts: Tensor) -> None:
    """A second call on activations with negative entries: the bands split (0, max], so a value <= 0 is in no band;
    bands from the minimum coincide with these on activations >= 0 (the minimum is then 0, position 0 zeroed)."""
    k, n_bands = 3, 4
    neg = acts.clone()
    below = acts[:, 1:] == 0  # non-firing entries, the first few of them made negative
    spots = below.nonzero()[: max(4, int(below.sum()) // 2)]
    drop = torch.linspace(-0.9, -0.1, len(spots), dtype=acts.dtype, device=acts.device) * float(acts[:, 1:].max())
    neg[spots[:, 0], spots[:, 1] + 1] = drop
    out = impl(neg.clone(), k, n_bands)
    if same_groups(out, quantile_variant(neg, k, n_bands)):
        return
    low = float(drop.min())
    what = f"on activations with negative entries (down to {low:.3g}; k={k}, n_bands={n_bands}) your groups"
    for bottom, name in ((low, "the minimum"), (float(neg[:, 1:].min()), "the minimum without position 0")):
        wrong = _range_groups(neg, k, n_bands, bottom)
        got = [torch.as_tensor(g[0]).detach().float().cpu() for g in out] if isinstance(out, list | tuple) else []
        if len(got) == n_bands and all(
            a.shape == b.shape and torch.allclose(a, b.float().cpu()) for a, b in zip(got, wrong, strict=True)
        ):
            fail(
                f"{what} are those of {n_bands} equal bands from {name} ({bottom:.3g}) to the max",
                "the bands split (0, max] into equal parts, starting at 0, not at the smallest activation: a value "
                "<= 0 is in no band (on activations >= 0 the two agree, the minimum being 0)",
                code="band_range",
            )
    fail(
        f"{what} differ from the expected ones, while activations >= 0 gave the right groups",
        "the bands split (0, max] into equal parts, starting at 0: a value <= 0 is in no band. Possible causes: "
        "edges or band membership computed from the minimum, or from |acts|, or negative values counted as firing",
        code="band_range",
    )


def swapped_indices(acts: Tensor, j: int, values: Tensor, seq_idx: Tensor, pos_idx: Tensor) -> None:
    """Band j's indices returned as (pos_idx, seq_idx): acts[pos_idx, seq_idx] gives back the values."""
    reordered_values(acts, j, values, seq_idx, pos_idx)
    s_idx, p_idx = pos_idx.long(), seq_idx.long()
    if not s_idx.numel() or torch.equal(s_idx, p_idx) or min(int(s_idx.min()), int(p_idx.min())) < 0:
        return
    if (
        int(s_idx.max()) < acts.shape[0]
        and int(p_idx.max()) < acts.shape[1]
        and torch.equal(acts[s_idx, p_idx], values)
    ):
        fail(
            f"band {j}: acts[pos_idx, seq_idx] gives back the values, acts[seq_idx, pos_idx] does not: the two index "
            "tensors are swapped",
            "return (values, seq_idx, pos_idx): the sequence index (i // seq_len) first, then the position "
            "(i % seq_len)",
            code="indices_swapped",
        )


def reordered_values(acts: Tensor, j: int, values: Tensor, seq_idx: Tensor, pos_idx: Tensor) -> None:
    """Band j's indices point at the right entries but in another order than the values: the values were sorted
    (or reordered) on their own and the indices left as they were."""
    s_idx, p_idx = seq_idx.long(), pos_idx.long()
    if not s_idx.numel() or s_idx.shape != values.shape or p_idx.shape != values.shape:
        return
    if (
        min(int(s_idx.min()), int(p_idx.min())) < 0
        or int(s_idx.max()) >= acts.shape[0]
        or int(p_idx.max()) >= acts.shape[1]
    ):
        return
    at = acts[s_idx, p_idx]
    if not torch.equal(at, values) and torch.equal(at.sort().values, values.sort().values):
        fail(
            f"band {j}: acts[seq_idx, pos_idx] = {[round(v, 3) for v in at.tolist()]} holds the right values in "
            f"another order than values = {[round(v, 3) for v in values.tolist()]}",
            "the values were sorted (or reordered) but the indices weren't reordered with them: sort the flat "
            "indices (by their values, descending) and take the values, i // seq_len and i % seq_len from the same "
            "sorted indices",
            code="indices_order",
        )


def empty_band(impl: Callable, device: Any) -> None:
    """quantile_examples where one band holds no activation: its group is still returned (three empty tensors), so
    that group j is band j whatever the data; a learner who skips it returns n_bands - 1 groups."""
    acts = torch.zeros(3, 7)
    acts[0, 0], acts[1, 0], acts[2, 0] = 5.0, 4.5, 2.5  # BOS, to be ignored
    acts[1, 3], acts[0, 5], acts[2, 2] = 4.0, 3.5, 3.25  # band (3, 4]
    acts[0, 2], acts[2, 6] = 1.5, 1.75  # band (1, 2]; band (2, 3] is empty
    acts[1, 1], acts[2, 4] = 0.5, 0.75  # band (0, 1]
    acts = acts.to(device)
    k, n_bands = 2, 4
    out = impl(acts.clone(), k, n_bands)
    expected = quantile_variant(acts, k, n_bands)
    if same_groups(out, expected):
        return
    n_out = len(out) if isinstance(out, list | tuple) else None
    fail(
        f"on activations with max 4 where band 1, (2, 3], holds no value (k={k}, n_bands={n_bands}), the result "
        + (f"has {n_out} groups, expected {n_bands}" if n_out != n_bands else "differs from the expected groups"),
        (
            "an empty band still gets its group, three empty tensors (topk of 0 elements, or an empty selection), "
            "so that group j is always band j: don't skip it (no `continue` when the band has no members)"
        )
        if n_out == n_bands - 1
        else "return n_bands groups, one per band, an empty band as three empty tensors",
        code="empty_band",
    )


WIDTHS = {
    "d_model": "the residual stream (the transcoder's input and output, a row of W_E or a column of W_U)",
    "d_sae": "the transcoder's latents",
    "n_ctx": "the context (positions)",
}


def token_view_shape(out: Any, model: Any, tc: Any, what: str) -> Any:
    """One entry short of d_vocab: a row of W_E (or a column of W_U) dropped, most likely BOS's [1:]. Or fewer
    integers than d_vocab, all valid token ids: the ids of the top tokens (topk's indices), not the values. Or a
    vector as long as one of the model's other widths (d_model, d_sae): named by the model's config."""
    d_vocab = model.cfg.d_vocab
    sizes = {"d_model": model.cfg.d_model, "d_sae": tc.d_sae, "n_ctx": model.cfg.n_ctx}
    width = next((w for w, n in sizes.items() if isinstance(out, Tensor) and out.shape == (n,) and n != d_vocab), None)
    if width is not None and out.is_floating_point():
        fail(
            f"{what} has shape ({sizes[width]},), expected (d_vocab) = ({d_vocab},)",
            f"your vector has {sizes[width]} = {width} entries, the width of {WIDTHS[width]}: expected one value per "
            f"token of the vocabulary, d_vocab = {d_vocab}"
            + (
                " (a product that kept d_model and summed over the vocabulary axis, or the vocabulary matrix W_E / "
                "W_U left out?)"
                if width == "d_model"
                else ""
            ),
            code="shape",
        )
    if isinstance(out, Tensor) and out.dim() == 1 and not out.is_floating_point() and out.dtype != torch.bool:
        ids = out.detach().cpu()
        if 0 < ids.shape[0] < d_vocab and bool(((ids >= 0) & (ids < d_vocab)).all()):
            fail(
                f"{what} is {ids.shape[0]} integers, all valid token ids (the top tokens?), expected {d_vocab} "
                "floats, one per token",
                "return the whole vector of values, one per token of the vocabulary (shape [d_vocab]), not the ids "
                "of its top tokens (topk(...).indices): ranking them comes after",
                code="token_ids",
            )
    if isinstance(out, Tensor) and out.dim() == 1 and out.shape[0] == d_vocab - 1:
        fail(
            f"{what} has {d_vocab - 1} entries, one fewer than d_vocab = {d_vocab}",
            "one token is missing: a slice such as W_E[1:] or W_U[:, 1:] (leaving out BOS) drops its row; return "
            "one value per token of the vocabulary, BOS included, indexed by token id",
            code="token_dropped",
        )
    return out


def token_view_relations(out: Tensor, expected: Tensor, what: str) -> None:
    """The right values rearranged (sorted) or standardised (mean removed, divided by the std)."""
    if out.shape != expected.shape or not out.is_floating_point():
        return
    a, e = out.detach().double().cpu(), expected.detach().double().cpu()
    close = lambda x, y: bool(torch.allclose(x, y, rtol=1e-3, atol=1e-4))
    for descending in (True, False):
        if close(a, e.sort(descending=descending).values) and not close(a, e):
            fail(
                f"{what} holds the right values, sorted ({'largest' if descending else 'smallest'} first)",
                "return them in token order (entry i is token i's value): sorting loses which token each belongs to; "
                "rank them afterwards (topk) when you need the top tokens",
                code="sorted",
            )
    kept, missing = a != 0, (a == 0) & (e.abs() > 1e-4)
    if missing.any() and close(a[kept], e[kept]):  # zeros where the values aren't, the right values elsewhere
        n, total = int(missing.sum()), a.numel()
        fail(
            f"{what} is 0 at {n}/{total} tokens where the expected values are not"
            + ("" if kept.any() else " (it is 0 everywhere)")
            + ("; where it is not 0 it is right" if kept.any() else ""),
            "something zeroed entries: the threshold applied to the de-embedding or logit effect (a JumpReLU or ReLU "
            "gate, `v * (v > threshold)`), a mask, or nothing computed? Return the raw linear value for every token: "
            "the threshold gates activations, not these views",
            code="gated",
        )
    for name, norm in (("L2 norm (normalised to unit length)", e.norm()), ("largest |value|", e.abs().max())):
        if close(a, e / norm):
            fail(
                f"{what} is the right vector divided by its {name}: your values are {float(1 / norm):.4g} × the "
                f"expected ones, and 1/{float(norm):.4g} = {float(1 / norm):.4g}",
                "return the raw values, without normalising the result: their size is part of what they say (how "
                "strongly each token drives or is driven by the latent)",
                code="normalised_output",
            )
    centred = e - e.mean()
    for unbiased in (True, False):
        if close(a, centred / e.std(unbiased=unbiased)):
            fail(
                f"{what} is the right vector standardised (mean over the vocabulary removed, divided by its std)",
                "return the raw values (a z-score is for comparing latents, not what the exercise asks)",
                code="standardised",
            )
    if close(a, centred):
        fail(
            f"{what} is the right vector with its mean over the vocabulary removed",
            "return the raw values, without centring",
            code="centred",
        )


def forward_extra(tc: Any, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of transcoder_forward with the gate on |pre| (a latent firing on a large negative
    pre-activation too)."""
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre.abs() > tc.threshold)
    out = acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    z = x @ tc.W_enc  # the gate on x W_enc, b_enc added after it
    late = z * (z > tc.threshold) + tc.b_enc
    late_out = late @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    floor = torch.maximum(pre, tc.threshold.expand_as(pre))  # pre.clamp(min=threshold)
    floor_out = floor @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    return [
        (
            "clamp_at_threshold",
            "that is pre.clamp(min=threshold): every latent below its threshold is raised TO it instead of set to 0. "
            "The JumpReLU keeps pre where pre > threshold and gives 0 elsewhere: acts = pre · [pre > threshold] "
            "(torch.where(pre > tc.threshold, pre, 0))",
            floor,
            floor_out,
        ),
        (
            "abs_gate",
            "the gate compares pre itself with the threshold (pre > threshold), not its magnitude |pre|: a large "
            "negative pre-activation doesn't fire",
            acts,
            out,
        ),
        (
            "b_enc_after_gate",
            "b_enc was added after the gate: the JumpReLU gates x @ W_enc, then b_enc is added to every latent "
            "(firing or not); b_enc belongs inside, pre = x @ W_enc + b_enc, and the gate acts on pre: acts = pre · "
            "[pre > threshold]",
            late,
            late_out,
        ),
    ]


def out_number(out: Any, tc: Any, what: str) -> None:
    """out is a plain number 0 on a transcoder without skip: a conditional expression that took the whole sum."""
    if isinstance(out, int | float) and not isinstance(out, bool) and out == 0 and tc.W_skip is None:
        fail(
            f"out of {what} is the number {out!r}, not a tensor (this transcoder has no skip: tc.W_skip is None)",
            "a conditional expression binds everything to its left: `acts @ W_dec + b_dec + x @ W_skip.T if W_skip "
            "is not None else 0` is `(acts @ W_dec + b_dec + x @ W_skip.T) if ... else 0`, so the whole out becomes "
            "0 without skip: parenthesise the skip term, `acts @ W_dec + b_dec + (x @ tc.W_skip.T if tc.W_skip is "
            "not None else 0)`",
            code="ternary_skip",
        )


def forward_call(impl: Callable, tc: Any, x: Tensor) -> Any:
    """impl(tc, x); a size mismatch raised inside it, between the latent size d_sae and the output size, is named
    by the transcoder's sizes (and the encoder's bias where the decoder's belongs, when the line uses b_enc)."""
    try:
        return impl(tc, x)
    except RuntimeError as err:
        match = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", str(err))
        sizes = {int(v) for v in match.groups()} if match else set()
        if tc.d_sae == tc.d_out or sizes != {tc.d_sae, tc.d_out}:
            raise
        described, frames = describe_error(err), traceback.extract_tb(err.__traceback__)
        hint = (
            "tc.b_enc is the encoder's bias, [d_sae]: it belongs in pre = x @ W_enc + b_enc; the output adds the "
            "decoder's bias tc.b_dec, [d_out]: out = acts @ W_dec + b_dec (+ x @ W_skip.T)"
            if frames and "b_enc" in (frames[-1].line or "")
            else "a [d_sae] tensor (acts, pre, b_enc, threshold) met a [d_out] one (out, b_dec): print their shapes; "
            "a latent-side tensor is used on the output side, or the reverse"
        )
        fail(
            f"{described.message}\n(size {tc.d_sae} is d_sae, the latents; size {tc.d_out} is d_out, the output)",
            hint,
            code="latent_output_mix",
        )


LINEARISED_EXTRA = {
    "error_added": "when `error` is given it replaces frozen.error (the error node's value is what is passed), "
    "it is not added to it",
    "relu_active": "f = pre · frozen.active, with no ReLU: the frozen mask decides which latents are on, and a "
    "latent that is on stays linear in pre even where pre < 0 (away from the prompt), so that the model is affine "
    "in its inputs; relu(pre) · active bends it",
    "scale_mean": "the frozen scales were averaged over positions (scale.mean()?), but each position has its "
    "own: divide position p by frozen.ln*_scale[p] (the [pos, 1] tensor broadcast over d_model)",
    "no_ln1": "LN1 was left out: attention read the raw embeddings; it reads LN1 of them, x1 = (embeds - mean) / "
    "frozen.ln1_scale, which feeds W_V, while the residual stream adds the raw embeds",
    "pattern_softmaxed": "your values are those of softmax(frozen.pattern) in place of the pattern: frozen.pattern "
    "is already the softmax (each query's row sums to 1, zeros above the diagonal), so use it as it is; a second "
    "softmax flattens it and gives weight to future keys",
    "error_in_ln2": "your values are those of the error added to resid_mid before LN2, so it feeds the encoder and "
    "the skip: the error node is part of the MLP's output, mlp_out = f @ W_dec + b_dec + skip(x) + error, added "
    "after the encoder read x = LN2(resid_mid)",
}


def influence_signs(impl: Callable, A: Tensor, weights: Tensor) -> Any:
    """impl(A, weights); if it raises, the same call on |A| (every edge positive, where the reference is unchanged:
    Â normalises |A|). Right there means the signs are mishandled, which a raise on A alone doesn't say."""
    A0, w0 = A.clone(), weights.clone()  # the learner's call gets the originals: an in-place change shows after
    try:
        return impl(A, weights)
    except Exception as err:
        ones_identity(err, len(A0))
        failure_readings.self_loops(err, A0)
        try:
            positive = impl(A0.abs(), w0.clone())
        except Exception:
            failure_readings.singular_causes(err)
            raise err from None
        right = node_influence(A0, w0)
        if (
            isinstance(positive, Tensor)
            and positive.shape == right.shape
            and torch.allclose(positive.detach().to(right), right, rtol=1e-4, atol=1e-6)
        ):
            fail(
                f"node_influence raised {type(err).__name__} ({str(err)[:80]}) on a signed adjacency, and is "
                "right on |adjacency| (every edge made positive)",
                "the signs are mishandled: Â uses |A| in the entries AND in the row sums (|A| / |A|.sum(-1)); a "
                "row sum of the signed entries can be 0 or negative (clamped to a tiny positive number, it "
                "blows the entries up and I - Â turns singular)",
                code="signed_normaliser",
            )
        failure_readings.singular_causes(err)
        raise


def leaf_targets(out: Tensor, values: Tensor, n_latents: int) -> None:
    """Latent rows holding only an edge to the latent itself, equal to its value: the target was the injected leaf
    (d leaf / d leaf = 1, nothing else reaches it), not the pre-activation recomputed by the forward."""
    own = torch.zeros_like(out[:n_latents])
    own[torch.arange(n_latents), torch.arange(n_latents)] = values
    if n_latents and torch.allclose(out[:n_latents], own, rtol=1e-3, atol=2e-4):
        fail(
            "each latent target's row has a single edge, to the latent itself, equal to its activation",
            "the latent targets were the injected values themselves (a leaf: its gradient is 1 to itself and 0 to "
            "everything else): take each latent target from what linearised_forward computes, its pre-activation "
            "pre[pos, idx], which depends on the earlier nodes",
            code="leaf_targets",
        )


def influence_extra(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    """The rows of the paths matrix B normalised (after the series) instead of the rows of |A| (before it), and the
    logit weights passed through a softmax (they are already probabilities)."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    rows = lambda M: M / M.sum(-1, keepdim=True).clamp_min(1e-12)
    series = lambda M: torch.linalg.inv(eye - M) - eye
    hint = (
        "the rows of the paths matrix B = (I - M)⁻¹ - I were normalised, after the series: normalise the rows of |A| "
        "before it, Â = |A| / |A|.sum(-1), then B = (I - Â)⁻¹ - I as it comes (its rows need not sum to 1)"
    )
    B = series(rows(A.abs()))
    unweighted = (
        "the logit weights were left out: influence = logit_weights @ B, each target's row of B = (I - Â)⁻¹ - I "
        "weighted by logit_weights (0 for non-logit nodes)"
    )
    return [
        *[("rows_of_B", hint, weights @ rows(series(M))) for M in (A.abs(), rows(A.abs()))],
        (
            "weights_ignored",
            unweighted + ", not B summed over every target (B.sum(0): every node weighted 1)",
            B.sum(0),
        ),
        (
            "weights_softmaxed",
            "the logit weights went through a softmax: they are the logit nodes' probabilities already (0 "
            "elsewhere), so softmax(w) gives every node, logit or not, a weight; use them as they are: "
            "influence = logit_weights @ B",
            weights.softmax(-1) @ B,
        ),
        *influence_row_counts(A, weights),
        *influence_elementwise(A, weights),
        *[
            (
                "signed_clamped",
                f"the adjacency was clamped ({how}) while still signed, before abs: {what}; take |A| first "
                "(adjacency.abs()), and keep any clamp for the row sums you divide by",
                weights @ series(rows(A.clamp_min(c).abs())),
            )
            for c, how, what in (
                (1e-12, "clamp_min(1e-12)", "every negative edge and every absent (0) edge became 1e-12"),
            )  # clamp_min(0) / relu keeps the excitatory edges only: signed_normaliser names it
        ],
    ]


UNUSED_GRAD = (
    "torch.autograd.grad was asked for the gradient of a target with respect to a tensor that target does not "
    "depend on (one target at a time, most nodes can't reach it: a latent at a later position, another position's "
    "error or token): pass allow_unused=True (with materialize_grads=True, or turn the None into zeros), or "
    "differentiate each target only with respect to the nodes it depends on"
)


NO_GRAD = (
    "attribution_edges is called with gradients off, as in the notebook (torch.set_grad_enabled(False) at its top; "
    "this check calls it under torch.no_grad()), so nothing computed there has a grad_fn: compute the forward pass "
    "and the gradients inside `with torch.enable_grad():` (and no torch.no_grad() of your own around them)"
)


def edges_call(impl: Callable, *args: Any) -> Any:
    """impl(*args) with gradients off, as the notebook calls it; torch's 'appears to not have been used in the graph'
    error named (allow_unused), and 'does not require grad' with gradients off (enable_grad left out)."""
    try:
        with torch.no_grad():
            return impl(*args)
    except RuntimeError as err:
        if "does not require grad" in str(err):
            fail(describe_error(err).message, NO_GRAD, code="grad_disabled")
        if "not have been used in the graph" not in str(err):
            raise
        fail(describe_error(err).message, UNUSED_GRAD, code="unused_grad")


def abs_token_edges(model: Any, tc: Any, frozen: Any, graph: Any, correct: Tensor, forward: Callable) -> list:
    """The token and/or error columns as sum |grad ⊙ vector| (magnitudes summed over d_model) instead of the dot
    product; forward(frozen, embeds, latents, error) is the local replacement model."""
    pos, idx = graph.latent_pos, graph.latent_idx
    T, E = graph.nodes("token"), graph.nodes("error")
    tok, err, both = correct.clone(), correct.clone(), correct.clone()
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        error = frozen.error.detach().clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = frozen.acts[pos, idx]
        pre, logits = forward(frozen, embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, graph.n_nodes))
        for row, t in zip(rows, targets, strict=True):
            ge, gm = torch.autograd.grad(t, (error, embeds), retain_graph=True, allow_unused=True)
            ge = torch.zeros_like(error) if ge is None else ge
            gm = torch.zeros_like(embeds) if gm is None else gm
            tok[row, T] = both[row, T] = (gm * embeds.detach()).abs().sum(-1)
            err[row, E] = both[row, E] = (ge * error.detach()).abs().sum(-1)
    advice = (
        "a vector node's edge is the dot product (grad · vector).sum(-1), signed; its terms cancel, and their "
        "magnitudes summed break completeness"
    )
    return [
        ("abs_dot", f"the token edges are sum |grad ⊙ embed| over d_model: {advice}", tok),
        ("abs_dot", f"the token and error edges are sum |grad ⊙ vector| over d_model: {advice}", both),
        ("abs_dot", f"the error edges are sum |grad ⊙ error| over d_model: {advice}", err),
    ]


def replaced_candidates(tc: Any, spliced: Callable, loss: Callable) -> list[tuple[Callable, str, str]]:
    """(loss thunk, code, hint) of the known wrong splices of replacement_losses: `spliced(read_at, fn)` is the
    loss with x read at read_at and fn(x, act) written at tc.hook_name_out; `loss(hooks)` a run with hooks."""
    tc_out = lambda x, a: tc(x)
    return [
        (
            lambda: spliced(tc.hook_name_out, tc_out),
            "same_hook",
            "a transcoder reads the MLP *input* (tc.hook_name) and replaces the *output* (tc.hook_name_out)",
        ),
        (
            lambda: loss([(tc.hook_name, lambda a, hook: tc(a))]),
            "write_input",
            "tc.hook_name is where the transcoder *reads* x; its output tc(x) replaces the MLP's output: return it "
            "at tc.hook_name_out",
        ),
        (
            lambda: spliced("blocks.0.hook_resid_mid", tc_out),
            "input_hook",
            "read the input after the normalisation, at tc.hook_name (blocks.0.ln2.hook_normalized)",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: a + tc(x)),
            "added",
            "return the transcoder's output *instead of* the MLP's, not added to it",
        ),
        (
            lambda: spliced(
                tc.hook_name, lambda x, a: torch.relu(x @ tc.W_enc + tc.b_enc) @ tc.W_dec + tc.b_dec + tc.skip(x)
            ),
            "relu",
            "use the transcoder's own forward pass `tc(x)` (a JumpReLU), not a ReLU",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: tc(x) + tc.b_dec),
            "b_dec_twice",
            "tc(x) already includes b_dec (acts @ W_dec + b_dec + skip): yours adds tc.b_dec on top of it, so b_dec "
            "is counted twice; return tc(x) as it is",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: tc(x) - tc.b_dec),
            "no_b_dec",
            "the transcoder's output includes b_dec: return tc(x) as it is, without subtracting tc.b_dec",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: tc(x) + tc.skip(x)),
            "skip_twice",
            "tc(x) already includes the skip term x @ W_skip.T: yours adds tc.skip(x) on top of it, so the skip "
            "connection is counted twice; return tc(x) as it is",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: tc.decode(tc.encode(x))),
            "no_skip",
            "tc.decode(tc.encode(x)) leaves the skip connection out: return tc(x), which adds x @ W_skip.T",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: tc.encode(x) @ tc.W_dec),
            "no_b_dec_no_skip",
            "yours writes acts @ W_dec alone (e.g. tc.encode(x) @ tc.W_dec): the transcoder's output also adds b_dec "
            "and the skip connection (x @ W_skip.T): return tc(x), which includes both",
        ),
        (
            lambda: spliced(tc.hook_name, lambda x, a: tc(x)[1]),
            "batch_index",
            "the replaced loss is that of sequence 1's transcoder output written into every sequence (tc(x)[1], "
            "broadcast over the batch): tc(x) returns one tensor, the output [batch seq d_model], not a tuple "
            "(acts, out) like transcoder_forward; return tc(x) itself (or transcoder_forward(tc, x)[1])",
        ),
        (
            lambda: loss([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))]),
            "replaced_zeroed",
            "that is the zero-ablated loss, while your 'zero_ablated' is not the replaced one (so the keys are not "
            "swapped): your 'replaced' run zero-ablated the MLP: the replacement hook returned zeros (a lambda "
            "defined in a loop binds the loop variable late; a hook reused for both runs?), or the zero-ablated "
            "loss was stored under 'replaced' too",
        ),
        (
            lambda: _written_at(tc, loss, "blocks.0.hook_resid_post"),
            "residual_replaced",
            "the transcoder's output was written over the whole residual stream at blocks.0.hook_resid_post: it "
            f"replaces the MLP's output only, one term of the residual stream: return tc(x) at tc.hook_name_out "
            f"({tc.hook_name_out})",
        ),
    ]


def _written_at(tc: Any, loss: Callable, where: str) -> float:
    """The loss with x read at tc.hook_name and tc(x) written at `where` (not the MLP's output)."""
    seen: dict = {}
    return loss([(tc.hook_name, lambda a, hook: seen.__setitem__("x", a)), (where, lambda a, hook: tc(seen["x"]))])


def recovered_relative(c: float, r: float) -> list[tuple[float, str, str]]:
    """recovered measured against the clean loss alone, as (value, code, why) for replacement_losses's list."""
    return [(1 - (r - c) / c, "recovered_relative", "that is 1 - (replaced - clean) / clean, without the baseline: ")]


def bos_probe(
    impl: Callable, model: Any, tc: Any, reference: Callable, close: Callable, named_only: bool = False
) -> None:
    """replacement_losses on 2-token sequences (BOS, then a token). The only loss term is position 0's prediction,
    which in this one-layer model depends only on the MLP output at position 0 (BOS): a replacement that skips
    position 0 gives the clean loss there. The second tokens are those whose log-probability the replacement
    changes most, so the replaced loss is far from the clean one (0.011, with a tolerance of 1e-4 relative)."""
    bos = torch.full((1, 1), model.tokenizer.bos_token_id, device=model.W_E.device)
    seen: dict = {}
    read = (tc.hook_name, lambda a, hook: seen.__setitem__("x", a))
    replaced = model.run_with_hooks(bos, fwd_hooks=[read, (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])
    delta = replaced.log_softmax(-1)[0, 0] - model(bos).log_softmax(-1)[0, 0]
    second = (-delta).topk(6).indices
    tokens = torch.stack([bos[0].expand_as(second), second], dim=1)
    exp = reference(model, tc, tokens)
    out = impl(model, tc, tokens.clone())
    if not isinstance(out, dict) or any(not isinstance(out.get(k), int | float | Tensor) for k in exp):
        return
    got = {k: float(out[k]) for k in exp}
    if all(close(got[k], exp[k]) for k in exp):
        return
    if close(got["replaced"], got["clean"]) and not close(exp["replaced"], exp["clean"]):
        fail(
            f"on 2-token sequences (BOS, then one token) the replaced loss {got['replaced']:.5f} equals the clean loss "
            f"{got['clean']:.5f}, expected {exp['replaced']:.5f}; on longer sequences it was right",
            "there the only loss term is position 0's prediction, which in this one-layer model depends only on the "
            "MLP output at position 0 (BOS): the transcoder's output did not replace it there. Replace the MLP "
            "output at every position, BOS included (no [:, 1:] slice, no torch.cat keeping act[:, :1])",
            code="bos_kept",
        )
    if named_only:  # the other probes run first, so that this description comes last
        return
    k = next(k for k in exp if not close(got[k], exp[k]))
    fail(
        f"on 2-token sequences (BOS, then one token), out[{k!r}] = {got[k]:.5f}, expected {exp[k]:.5f}; on longer "
        "sequences it was right",
        "the only loss term there is position 0's prediction (from BOS): something treats position 0, or short "
        "sequences, differently (a slice from position 1, a fixed length)",
        code="short_sequences",
    )
