"""Held-out round AZ (fresh53), part 6b: trials the checkers caught without naming the mistake, now named.
linearised_forward whose residual term or attention reads frozen.embeds instead of the `embeds` argument
(residual_frozen_embeds, attention_frozen_embeds), or whose skip reads LN2 without its centring (skip_uncentred); the
round's correct variants pass."""

import einops
import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------- linearised_forward
def _lf(bug: str = ""):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(frozen.embeds if bug == "attention" else embeds, frozen.ln1_scale)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e")
        z = frozen.pattern @ v + model.b_V[0][:, None]  # pattern rows sum to 1: b_V after the mixing is the same
        mid = (frozen.embeds if bug == "residual" else embeds) + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d")
        mid = mid + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = torch.where(frozen.active, pre, 0.0) if latents is None else latents
        skip = tc.skip(mid / frozen.ln2_scale if bug == "skip" else x)
        out = f @ tc.W_dec + tc.b_dec + skip + (frozen.error if error is None else error)
        return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


@pytest.mark.parametrize(
    ("bug", "code"),
    [("residual", "residual_frozen_embeds"), ("attention", "attention_frozen_embeds"), ("skip", "skip_uncentred")],
)
def test_fresh53_linearised_stale_inputs_named(bug, code):
    err = assert_fails(checks.test_linearised_forward, _lf(bug), code)
    assert ("frozen.embeds" if bug != "skip" else "centring") in err.hint


def test_fresh53_linearised_correct_variant_passes():
    assert_passes(checks.test_linearised_forward, _lf())
