"""More named mistakes for part 6b's checkers (`tests.part6b_circuits`), from the fresh held-out rounds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

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
    """One entry short of d_vocab: a row of W_E (or a column of W_U) dropped, most likely BOS's [1:]."""
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
