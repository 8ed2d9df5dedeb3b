"""More named mistakes for part 6b's checkers (`tests.part6b_circuits`), from the fresh held-out rounds."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import _describe_error as describe_error
from tests.checking import fail
from tests.part6_lm_saes_extra_mistakes import NOT_A_LOSS
from tests.part6b_circuits_mistakes import quantile_variant, same_groups


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


def token_view_shape(out: Any, d_vocab: int, what: str) -> Any:
    """One entry short of d_vocab: a row of W_E (or a column of W_U) dropped, most likely BOS's [1:]. Or fewer
    integers than d_vocab, all valid token ids: the ids of the top tokens (topk's indices), not the values."""
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
    return [
        (
            "abs_gate",
            "the gate compares pre itself with the threshold (pre > threshold), not its magnitude |pre|: a large "
            "negative pre-activation doesn't fire",
            acts,
            out,
        )
    ]


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
}


def influence_signs(impl: Callable, A: Tensor, weights: Tensor) -> Any:
    """impl(A, weights); if it raises, the same call on |A| (every edge positive, where the reference is unchanged:
    Â normalises |A|). Right there means the signs are mishandled, which a raise on A alone doesn't say."""
    A0, w0 = A.clone(), weights.clone()  # the learner's call gets the originals: an in-place change shows after
    try:
        return impl(A, weights)
    except Exception as err:
        try:
            positive = impl(A0.abs(), w0.clone())
        except Exception:
            raise err from None
        from solutions.part6b_circuits import node_influence

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
