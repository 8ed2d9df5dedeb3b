"""More named mistakes for part 6's checkers: state carried from one call to the next (a second call with other
arguments, compared with the first call's), other positions or another test for 'fires' in the frequencies, a
loss increase reported for a loss, recovered computed on perplexities, and logit effects normalised into
probabilities or cosines."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import expect_matches
from tests.mutants import call

STALE = (
    "a value kept from an earlier call (a global, a dict or attribute filled once, a default argument, an "
    "lru_cache) or a hard-coded argument"
)


def steer_second_call(
    again: Callable[[int, float], Tensor],
    ref: Callable,
    model: Any,
    sae: Any,
    tokens: Tensor,
    first: tuple,
    second: tuple,
) -> None:
    """Steering once more with another latent and coeff (`again(latent, coeff)` gives the learner's logits): a
    result made with the first call's latent and/or coeff is named as state carried between calls."""
    (l1, c1), (l2, c2) = first, second
    out = again(l2, c2)
    steered = lambda latent, coeff: ref(model, sae, tokens, latent, coeff)
    build = "build coeff · W_dec[latent] from this call's own arguments every time"
    mistakes = [
        (
            "stale_call",
            f"the second call (latent {l2}, coeff {c2}) returned the first call's steered logits (latent {l1}, coeff "
            f"{c1}): the steering vector is {STALE}; {build}",
            steered(l1, c1),
        ),
        (
            "stale_call",
            f"the second call (latent {l2}, coeff {c2}) steered with the first call's latent {l1}: the latent is "
            f"{STALE}; {build}",
            steered(l1, c2),
        ),
        (
            "stale_call",
            f"the second call (latent {l2}, coeff {c2}) steered with the first call's coeff {c1}: the coefficient is "
            f"{STALE}; {build}",
            steered(l2, c1),
        ),
    ]
    expect_matches(
        out,
        steered(l2, c2),
        f"the steered logits of a second call (latent {l2}, coeff {c2})",
        mistakes,
        rtol=1e-4,
        atol=1e-4,
        dims="batch seq d_vocab",
        hint="add coeff * W_dec[latent] at sae.hook_name, every position, with this call's latent and coeff",
        reference=call(ref, model, sae, tokens, l2, c2),
    )


def ablate_second_call(model: Any, sae: Any, tokens: Tensor, first: int, second: int) -> list[tuple[str, str, Tensor]]:
    """The second ablation (latent `second`) made with the first call's activation f, decoder row, or both."""

    def ablated(f_latent: int, row: int) -> Tensor:
        def hook(a: Tensor, hook: Any) -> Tensor:
            return a - sae.encode(a)[..., f_latent, None] * sae.W_dec[row]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    fix = "compute f = sae.encode(act)[..., latent] inside the hook of this call, for this call's latent"
    return [
        (
            "stale_call",
            f"that is the first call's result (latent {first}) returned for latent {second}: the result or f is "
            f"{STALE}; {fix}",
            ablated(first, first),
        ),
        (
            "stale_f",
            f"that subtracts the first call's activations f of latent {first} times W_dec[{second}]: f is {STALE}; "
            f"{fix}",
            ablated(first, second),
        ),
        (
            "stale_call",
            f"that subtracts f of latent {second} times the first call's decoder row W_dec[{first}]: the row is "
            f"{STALE}; use W_dec[latent] of this call",
            ablated(second, first),
        ),
    ]


def frequency_positions(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """`acts` [n_seq seq d_sae], every position: positions 1 .. seq-2 (the last dropped as well as BOS; the last
    alone is in frequency_mistakes), and 'fires' read as 'is the most active latent of the token'."""
    fired = (acts > 0).float()
    one_hot = F.one_hot(acts[:, 1:].argmax(-1), acts.shape[-1]).float()
    return [
        (
            "positions",
            "that counts positions 1 .. seq-2 (`[:, 1:-1]`): the last position was dropped too; it has no next token "
            "to predict, but its activations are real: count every position except 0 (`acts[:, 1:]`)",
            fired[:, 1:-1].mean((0, 1)),
        ),
        (
            "argmax_only",
            "that counts only the most active latent of each token (argmax or one-hot) as firing: a latent fires "
            "wherever its activation is > 0, and many latents fire on each token; count `acts > 0`",
            one_hot.mean((0, 1)),
        ),
    ]


def loss_increases(exp: dict[str, float]) -> dict[str, list[tuple[str, str, Tensor]]]:
    """A loss reported as its increase over the clean loss, and recovered computed on perplexities exp(loss)."""
    c, s, z = exp["clean"], exp["spliced"], exp["zero_ablated"]
    increase = lambda key: (
        "loss_increase",
        f"that is out[{key!r}] - out['clean'], the increase of the loss: return the loss itself (the model's mean "
        "cross-entropy with the hook), and compute differences only in recovered",
        torch.tensor(exp[key] - c, dtype=torch.float64),
    )
    out = {"spliced": [increase("spliced")], "zero_ablated": [increase("zero_ablated")], "recovered": []}
    if max(c, s, z) < 50:
        e = math.exp
        out["recovered"].append(
            (
                "perplexity",
                "that is recovered computed on perplexities exp(loss): recovered = (zero - spliced) / (zero - clean) "
                "on the losses themselves",
                torch.tensor((e(z) - e(s)) / (e(z) - e(c)), dtype=torch.float64),
            )
        )
    return out


def logit_normalised(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The latent's effect turned into a change of probabilities, or into cosines with the unembedding columns."""
    d = sae.W_dec[latent] @ model.W_out[0]  # [d_model]
    e = d @ model.W_U
    raw = "the logit effect is the raw change of the logits, W_dec[latent] @ W_out[0] @ W_U"
    b_U = getattr(model, "b_U", torch.zeros_like(e))
    return [
        (
            "probabilities",
            f"that is a change of probabilities, softmax(b_U + effect) - softmax(b_U): {raw}, with no softmax",
            torch.softmax(b_U + e, -1) - torch.softmax(b_U, -1),
        ),
        (
            "probabilities",
            f"that is a change of probabilities, softmax(effect) - softmax(0) (uniform): {raw}, with no softmax",
            torch.softmax(e, -1) - 1 / e.shape[-1],
        ),
        (
            "cosine",
            "that is the cosine similarity of W_dec[latent] @ W_out[0] with each column of W_U: "
            f"{raw}, a dot product not divided by either norm",
            F.cosine_similarity(d[:, None], model.W_U, dim=0),
        ),
    ]
