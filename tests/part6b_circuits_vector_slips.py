"""The latent's vector changed in a way that can be named: for latent_de_embedding (W_E @ v) and latent_logit_effect
(v @ W_U), the d_model vector v read off a reshape where a transpose belongs, centred over the latents or over
d_model, or sent through the skip matrix. Used where the generic 'direction' reading would only say that v changed."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _vectors(tc: Any, i: int, side: str) -> list[tuple[str, str, Tensor]]:
    """(code, hint, v) for each named change of the latent's vector."""
    if side == "de":
        W, name, v = tc.W_enc, "W_enc", tc.W_enc[:, i]
        d_model, d_sae = W.shape
        own, shape = "W_enc[:, latent]", "[d_model d_sae]"
        regrouped = W.reshape(d_sae, d_model)[i]
        moved = f"W_enc.reshape(d_sae, d_model)[latent] (sizes {d_sae}, {d_model})"
        across = W.mean(1)
        across_txt = "W_enc[:, latent] - W_enc.mean(1) (the mean encoder column, over the latents, subtracted)"
    else:
        W, name, v = tc.W_dec, "W_dec", tc.W_dec[i]
        d_sae, d_model = W.shape
        own, shape = "W_dec[latent]", "[d_sae d_model]"
        regrouped = W.reshape(d_model, d_sae)[:, i]
        moved = f"W_dec.reshape(d_model, d_sae)[:, latent] (sizes {d_model}, {d_sae})"
        across = W.mean(0)
        across_txt = "W_dec[latent] - W_dec.mean(0) (the mean decoder row, over the latents, subtracted)"
    rows = [
        (
            "reshape_not_transpose",
            f"your vector is {moved}: reshape and view only regroup the numbers in memory order, they don't move "
            f"axes, so it mixes coordinates of several latents; {name} is {shape} as it is: take {own}",
            regrouped,
        ),
        ("centred", f"your vector is {across_txt}: use {own} as it is, not centred", v - across),
        (
            "centred",
            f"your vector is {own} minus its own mean over d_model: use it as it is, not centred",
            v - v.mean(),
        ),
    ]
    if tc.W_skip is not None and tc.W_skip.shape[0] == tc.W_skip.shape[1] == len(v):
        S = tc.W_skip
        skip = f"the skip matrix W_skip is a separate path (x @ W_skipᵀ), not applied to {own}: use {own} alone"
        for form, value in ((f"{own} @ W_skip.T", v @ S.T), (f"{own} @ W_skip", v @ S)):
            rows.append(("through_skip", f"your vector is {form}, sent through W_skip first: {skip}", value))
    return rows


def named_vector(model: Any, tc: Any, i: int, actual: Tensor, side: str) -> list[tuple[str, str, Tensor]]:
    """The named change of the latent's vector that reproduces `actual`, as a catalogue row; [] when none does."""
    for code, hint, v in _vectors(tc, i, side):
        value = model.W_E @ v if side == "de" else v @ model.W_U
        if value.shape == actual.shape and torch.allclose(actual.to(value), value, rtol=1e-3, atol=1e-4):
            return [(code, hint, value)]
    return []
