"""linearised_forward with a normalisation dividing by another one's frozen scale: LN1, LN2 and the final LN each
have their own (frozen.ln1_scale, ln2_scale, final_scale). Mutants here: LN1 and LN2 given any other pair of the
three scales (swapped, one used twice, final_scale in either) with the final LN right, and the final LN given
ln1_scale; the main catalogue holds LN2 by ln1_scale (`ln2_scale_ln1`) and the final LN by ln2_scale
(`final_scale_ln2`)."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor

NAMES = ("ln1", "ln2", "final")
RIGHT = NAMES
CATALOGUED = {("ln1", "ln1", "final"), ("ln1", "ln2", "ln2")}
# LN1 and LN2 (which set the pre-activations) with the final LN right, or the final LN alone wrong: the pre-activations
# of two assignments that differ only in the final scale would tie, so the final scale is varied only on its own.
ASSIGNMENTS = [
    a
    for a in itertools.product(NAMES, repeat=3)
    if a != RIGHT and a not in CATALOGUED and (a[2] == "final" or a[:2] == RIGHT[:2])
]


def _code(a: tuple[str, str, str]) -> str:
    return "scales_" + "_".join(a)


def _hint(a: tuple[str, str, str]) -> str:
    norms = ("LN1", "LN2", "the final LN")
    wrong = [f"{norm} divides by frozen.{s}_scale" for norm, s, r in zip(norms, a, RIGHT, strict=True) if s != r]
    return (
        "your values are those of " + " and ".join(wrong) + ": each normalisation divides by its own frozen scale, "
        "LN1 by frozen.ln1_scale (before attention), LN2 by frozen.ln2_scale (the MLP input), the final one by "
        "frozen.final_scale (before W_U)"
    )


SCALE_SWAPS = {_code(a): _hint(a) for a in ASSIGNMENTS}
BY_CODE = {_code(a): a for a in ASSIGNMENTS}


def forward(model: Any, tc: Any, frozen: Any, embeds: Tensor, latents=None, error=None, *, code: str):
    """The local replacement model with the scales assigned as BY_CODE[code] says."""
    s1, s2, sf = (getattr(frozen, f"{name}_scale") for name in BY_CODE[code])
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    v = torch.einsum("kd,hde->hke", ln(embeds, s1), model.W_V[0]) + model.b_V[0][:, None]
    z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
    mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
    x = ln(mid, s2)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    resid = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
    return pre, ln(resid, sf) @ model.W_U + model.b_U
