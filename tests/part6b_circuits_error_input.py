"""linearised_forward with the error term fed into the MLP's input: added to x = LN2(resid_mid) (after the
normalisation) so that it reaches the encoder and the skip, and missing from the MLP's output. (The error added to
resid_mid before LN2 is `error_in_ln2` in part6b_circuits_extra_mistakes.)"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

ERROR_INPUT = {
    "error_in_mlp_input": "your values are those of the error added to the MLP's input x = LN2(resid_mid) (after the "
    "normalisation), so it feeds the encoder and the skip, and left out of the MLP's output: the error node is part "
    "of the MLP's output, mlp_out = f @ W_dec + b_dec + tc.skip(x) + error, with x the plain LN2 output",
}


def forward(model: Any, tc: Any, frozen: Any, embeds: Tensor, latents=None, error=None) -> tuple[Tensor, Tensor]:
    """The local replacement model with x = LN2(resid_mid) + error read by the encoder and the skip."""
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    x1 = ln(embeds, frozen.ln1_scale)
    v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
    z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
    mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
    x = ln(mid, frozen.ln2_scale) + (frozen.error if error is None else error)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    resid = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x)
    return pre, ln(resid, frozen.final_scale) @ model.W_U + model.b_U
