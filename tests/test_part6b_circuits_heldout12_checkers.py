"""Proofs for part 6b's checkers: a zero-ablation hook at the MLP's output that rebinds its argument and returns
nothing (named from the learner's ZeroDivisionError, while a read hook at the input that returns None is fine),
linearised_forward without the value bias b_V (the shipped model's is 0: named on a copy with a non-zero one), and
the de-embedding through LN2's centring (W_E minus its mean over d_model), a correct variant: the markdown says
LN2 subtracts that mean, and the shipped embeddings are already centred. Also transcoder_forward's gate written
pre >= threshold (the contract's is strict), named on an input with exact ties, and strict gates on it accepted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails, assert_passes


def test_replacement_losses_noop_zero_hook():
    def replacement_losses(model, tc, tokens):
        seen = {}

        def read(a, hook):
            seen["x"] = a

        def zero(a, hook):
            a = a * 0  # rebinds the local name, nothing returned

        def loss(hooks):
            return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

        c = loss([])
        r = loss([(tc.hook_name, read), (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])
        z = loss([(tc.hook_name_out, zero)])
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": (z - r) / (z - c)}

    err = assert_fails(checks.test_replacement_losses, replacement_losses, "noop_hook")
    assert "hook_mlp_out" in err.message


@pytest.mark.parametrize("bug", [None, "no_bV"])
def test_linearised_forward_value_bias(bug):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        v = ln(embeds, frozen.ln1_scale) @ model.W_V[0]
        if bug is None:
            v = v + model.b_V[0][:, None]
        mid = embeds + ((frozen.pattern @ v) @ model.W_O[0]).sum(0) + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        err = frozen.error if error is None else error
        mlp = f @ tc.W_dec + tc.b_dec + tc.skip(x) + err
        return pre, ln(mid + mlp, frozen.final_scale) @ model.W_U + model.b_U

    if bug is None:
        assert_passes(checks.test_linearised_forward, linearised_forward)
    else:
        err = assert_fails(checks.test_linearised_forward, linearised_forward, "one_change")
        assert "b_V" in err.message and "b_V" in err.hint


def test_de_embedding_centred_is_correct():
    def latent_de_embedding(model, tc, latent):
        W_E = model.W_E - model.W_E.mean(-1, keepdim=True)  # LN2's centring, a no-op on centred embeddings
        return W_E @ tc.W_enc[:, latent]

    assert_passes(checks.test_latent_de_embedding, latent_de_embedding)
    assert ref.latent_de_embedding is not None


def _forward(gate, pre_of):
    def transcoder_forward(tc, x):
        pre = pre_of(tc, x)
        acts = gate(pre, tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec
        return acts, out if tc.W_skip is None else out + F.linear(x, tc.W_skip)

    return transcoder_forward


PRE = {
    "matmul": lambda tc, x: x @ tc.W_enc + tc.b_enc,
    "linear": lambda tc, x: F.linear(x, tc.W_enc.T, tc.b_enc),
    "einsum": lambda tc, x: torch.einsum("...i,is->...s", x, tc.W_enc) + tc.b_enc,
    "products": lambda tc, x: (x[..., None] * tc.W_enc).sum(-2) + tc.b_enc,
}


@pytest.mark.parametrize("pre", sorted(PRE))
def test_transcoder_forward_non_strict_gate(pre):
    """The contract's gate is strict (pre > threshold): the small transcoder's input has exact ties (dyadic weights
    and input, so pre is exact whatever computes it), where pre >= threshold lets the latent through."""
    err = assert_fails(checks.test_transcoder_forward, _forward(lambda p, t: p * (p >= t), PRE[pre]), "gate_non_strict")
    assert "exactly" in err.hint and ">=" in err.hint


@pytest.mark.parametrize("pre", sorted(PRE))
@pytest.mark.parametrize(
    "gate",
    [
        lambda p, t: torch.where(p > t, p, torch.zeros_like(p)),
        lambda p, t: p * (p - t > 0).float(),
        lambda p, t: p * torch.gt(p, t),
        lambda p, t: p.masked_fill(~(p > t), 0.0),
    ],
)
def test_transcoder_forward_strict_gates_correct(pre, gate):
    assert_passes(checks.test_transcoder_forward, _forward(gate, PRE[pre]))
