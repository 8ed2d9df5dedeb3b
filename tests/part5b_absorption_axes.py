"""Which axis the decoder rows were normalised over, read back on the hand-built absorption case: an output that
matches 'decoder rows not normalised' there but doesn't move when W_dec is rescaled uniformly (which moves
unnormalised cosines, and leaves any normalisation as it is) normalises, over another axis than d_in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

SCALE = 0.37  # a uniform rescaling that moves unnormalised cosines across the thresholds 0.3 and 0.5


def decoder_axis(impl: Callable, inputs: tuple, parent_of: list[int], th: float, out: Tensor, variant: Any) -> None:
    features, acts, W_dec, W_feat = inputs
    close = lambda a, b: a.shape == b.shape and torch.allclose(a, b.to(a.device), rtol=1e-4, atol=1e-5)
    unnormalised = variant(features, acts, W_dec, W_feat, parent_of, th, normalise="feat")
    if not close(out, unnormalised):
        return
    scaled = (features, acts, W_dec * SCALE, W_feat)
    if close(variant(*scaled, parent_of, th, normalise="feat"), unnormalised):
        return  # the rescaling tells nothing here
    try:
        got = impl(*(t.clone() for t in scaled), list(parent_of), cos_threshold=th)
    except Exception:
        return
    if not isinstance(got, Tensor) or not close(got, out):
        return
    other = close(got, variant(*scaled, parent_of, th, normalise="dec_axis"))
    fail(
        f"your fraction matches decoder rows left unnormalised, yet it stayed the same when W_dec was multiplied by "
        f"{SCALE} (which moves unnormalised cosines): you normalise W_dec, but over another axis than d_in"
        + (" (your output matches W_dec.norm(dim=1), over the latents)" if other else ""),
        "normalise each decoder row over d_in: W_dec / W_dec.norm(dim=-1, keepdim=True) (W_dec is [inst d_sae d_in]; "
        "dim=1 normalises each d_in coordinate over the latents)",
        code="normalise_axis",
    )
