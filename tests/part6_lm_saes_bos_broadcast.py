"""ablate_latent whose logits equal the clean run's for a latent that is off at position 0 (BOS): before reading
that as a hook that never ran, the same function is run on a latent that fires at every BOS. If the logits change
there, the hook did run and edit: the edit used position 0's activation at every position (f[:, :1] or f[:, 0]
broadcast), or otherwise depends on position 0's value only, unless it matches an ablation that reads a neighbouring
latent's activation (an index slip: that neighbour is silent next to the first latent, not next to the second)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_edit_sources import index_slips
from tests.part6_lm_saes_mistakes import mlp_acts


def bos_latent(model: Any, sae: Any, tokens: Tensor) -> int:
    """The latent with the largest activation at BOS among those firing at every BOS of `tokens`, preferring one
    whose index neighbours (latent - 1 and latent + 1) both fire at some position where it does not, so that an
    ablation reading a neighbour's activation (an index slip, a two-latent slice) changes the logits."""
    acts = sae.encode(mlp_acts(model, sae.hook_name, tokens))
    f, f0 = acts > 0, acts[:, 0]
    alone = lambda j, i: bool((f[..., j] & ~f[..., i]).any())
    score = torch.where((f0 > 0).all(0), f0.min(0).values, torch.zeros_like(f0[0]))
    for i in score.argsort(descending=True).tolist():
        if score[i] <= 0:
            break
        if 0 < i < sae.d_sae - 1 and alone(i - 1, i) and alone(i + 1, i):
            return i
    return int(score.argmax())


def unchanged_but_edits(ablate: Callable, model: Any, sae: Any, tokens: Tensor, latent: int, out: Any) -> None:
    """`ablate(latent)` -> logits. Returns unless `out` (the logits for `latent`) equals the clean run's, `latent`
    is off at every BOS but fires elsewhere, and the logits for a latent firing at every BOS do change."""
    clean = model(tokens)
    if not (isinstance(out, Tensor) and out.shape == clean.shape and torch.allclose(out, clean, atol=1e-5)):
        return
    acts = mlp_acts(model, sae.hook_name, tokens)
    f = sae.encode(acts)
    if bool((f[:, 0, latent] != 0).any()) or not bool((f[:, 1:, latent] > 0).any()):
        return
    other = bos_latent(model, sae, tokens)
    if not bool((f[:, 0, other] > 0).all()):
        return
    try:
        second = ablate(other)
    except Exception:  # the first call's reading stands
        return
    if not (isinstance(second, Tensor) and second.shape == clean.shape) or torch.allclose(second, clean, atol=1e-5):
        return
    for code, hint, value in index_slips(model, sae, tokens, other):  # a neighbour's f: silent next to `latent`
        if torch.allclose(second.to(value.device), value, rtol=1e-4, atol=1e-4):
            fail(
                f"the logits for latent {latent} are exactly the clean ones, although it fires at "
                f"{int((f[:, 1:, latent] > 0).sum())} positions; for latent {other} your logits change, and match "
                "an ablation that reads another latent's activation",
                hint.replace("that removes", "for latent " + str(other) + ", your hook removes", 1),
                code=code,
            )
    d = sae.W_dec[other]
    broadcast = model.run_with_hooks(
        tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a - sae.encode(a)[:, :1, other, None] * d)]
    )
    n_on = int((f[:, 1:, latent] > 0).sum())
    seen = (
        f"the logits for latent {latent} are exactly the clean ones, although it fires at {n_on} positions (never at "
        f"position 0, BOS); for latent {other}, which fires at every BOS, your logits do change"
    )
    if torch.allclose(second.to(broadcast.device), broadcast, rtol=1e-4, atol=1e-4):
        fail(
            f"{seen}, and match an ablation that removes position 0's activation at every position",
            "that uses position 0's activation (f[:, :1] or f[:, 0]) at every position: index the latent only, "
            "f = sae.encode(act)[..., latent], so each position removes its own f · W_dec[latent]",
            code="bos_broadcast",
        )
    fail(
        seen,
        "so the hook runs and edits, but the edit seems to depend on the activation at position 0 only (e.g. "
        "f[:, :1] or f[:, 0] broadcast to every position, or only position 0 edited): each position must remove its "
        "own f_latent · W_dec[latent]",
        code="bos_only",
    )
