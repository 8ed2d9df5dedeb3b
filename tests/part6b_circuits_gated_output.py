"""Readings of part 6b's linearised_forward whose first output equals frozen.acts at the prompt: the gated
activations f = pre · frozen.active returned in place of pre look the same there as frozen's own recording, so a
call at shifted embeddings tells them apart (the gated activations move with embeds, the recording does not)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def gated_output(impl: Callable, model: Any, tc: Any, frozen: Any, pre: Tensor, shift: Tensor, forward: Callable):
    """pre at the prompt equals frozen.acts (the gated activations there), not the pre-activations: if, at shifted
    embeddings, the first output is the shifted pre-activations times frozen.active, the function does compute
    from embeds and returns the gated activations f; name that (else the recording reading stands)."""
    close = lambda a, b: torch.allclose(a, b, rtol=1e-3, atol=1e-3)
    right, _ = forward(model, tc, frozen, frozen.embeds.clone())
    if not close(pre.detach(), frozen.acts) or close(right, frozen.acts):
        return
    moved = frozen.embeds + shift
    try:
        out = impl(model, tc, frozen, moved.clone())
        got = out[0].detach().to(right)
    except Exception:  # a probe only: the main check's verdict stands
        return
    want, _ = forward(model, tc, frozen, moved)
    gated = want * frozen.active
    if got.shape != gated.shape or not close(got, gated) or close(gated, frozen.acts):
        return
    fail(
        "pre at the prompt equals frozen.acts, and at shifted embeddings it equals the pre-activations there times "
        "frozen.active (zero where the latent is off): your first output is the gated activations f, computed from "
        "embeds, not the pre-activations",
        "return pre = LN2(resid_mid) @ W_enc + b_enc itself, before the gate; the gated f = pre · frozen.active (or "
        "`latents` when given) is what feeds the decoder, not what is returned",
        code="returns_gated",
    )
