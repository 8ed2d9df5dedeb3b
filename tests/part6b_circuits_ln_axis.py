"""linearised_forward with a normalisation centred over the wrong axis: the mean taken over the positions (dim 0)
instead of over d_model (dim -1), in LN1, LN2, the final LN, or in all three (one helper written with mean(0))."""

from __future__ import annotations

from torch import Tensor

_WHERE = {
    "ln1_mean_positions": ("ln1",),
    "ln2_mean_positions": ("ln2",),
    "final_mean_positions": ("final",),
    "ln_mean_positions": ("ln1", "ln2", "final"),
}
_FIX = (
    "centre over d_model: v - v.mean(-1, keepdim=True), each position by its own mean, then divide by the frozen scale"
)
LN_AXIS_MISTAKES = {
    "ln1_mean_positions": "LN1 subtracts the mean over the POSITIONS (dim 0) instead of over d_model: " + _FIX,
    "ln2_mean_positions": "LN2 subtracts the mean over the POSITIONS (dim 0) instead of over d_model: " + _FIX,
    "final_mean_positions": "the final LN subtracts the mean over the POSITIONS (dim 0) instead of over d_model: "
    + _FIX,
    "ln_mean_positions": "every normalisation subtracts the mean over the POSITIONS (dim 0) instead of over d_model: "
    + _FIX,
}


def forward(model, tc, frozen, embeds, latents, error, code: str) -> tuple[Tensor, Tensor]:
    """The reference forward with the normalisations named by `code` centred over dim 0."""
    wrong = _WHERE[code]

    def ln(v: Tensor, scale: Tensor, which: str) -> Tensor:
        return (v - v.mean(0 if which in wrong else -1, keepdim=True)) / scale

    x1 = ln(embeds, frozen.ln1_scale, "ln1")
    v = (x1[None] @ model.W_V[0]) + model.b_V[0][:, None]
    z = frozen.pattern @ v
    resid_mid = embeds + (z @ model.W_O[0]).sum(0) + model.b_O[0]
    x = ln(resid_mid, frozen.ln2_scale, "ln2")
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    mlp_out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
    logits = ln(resid_mid + mlp_out, frozen.final_scale, "final") @ model.W_U + model.b_U
    return pre, logits
