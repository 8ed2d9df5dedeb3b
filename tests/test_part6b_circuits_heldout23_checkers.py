"""Proofs for part 6b's diagnoses added after the fresh40 held-out measurement: a ReLU before the jump gate (the same
gate only while every threshold is positive: a transcoder copy with negative thresholds shows it), the input
re-centred over d_in, `recovered` clipped to [0, 1] (a negated transcoder puts it below 0), the skip term written as
the "zero" ablation, and a matrix row taken where its column belongs (M[i] for M[:, i]) in a shape error."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.part6b_circuits_generic_transcoders import with_negative_thresholds
from tests.part6b_circuits_mistakes import synthetic_transcoder
from tests.proving import assert_fails
from tests.test_checking_learner_errors import _hint_of


def _forward(relu: bool = False, centred: str = ""):
    def transcoder_forward(tc, x):
        x_enc = x - x.mean(-1, keepdim=True) if centred else x
        x_skip = x_enc if centred == "both" else x
        pre = x_enc @ tc.W_enc + tc.b_enc
        acts = (torch.relu(pre) if relu else pre) * (pre > tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec
        return acts, out if tc.W_skip is None else out + x_skip @ tc.W_skip.T

    return transcoder_forward


def test_relu_before_gate_is_named_on_negative_thresholds():
    err = assert_fails(checks.test_transcoder_forward, _forward(relu=True), "relu_gate")
    assert "negative thresholds" in err.message + err.hint and "no ReLU" in err.hint


def test_negative_thresholds_copy_leaves_the_shared_transcoder_alone():
    tc = synthetic_transcoder(torch.device("cpu"))
    before = tc.threshold.detach().clone()
    neg = with_negative_thresholds(tc)
    assert torch.equal(tc.threshold, before) and (neg.threshold < 0).any() and (neg.threshold > 0).any()
    x = torch.randn(3, 5, tc.d_in, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(_forward(relu=True)(neg, x)[0], ref.transcoder_forward(neg, x)[0])


@pytest.mark.parametrize("centred", ["encoder", "both"])
def test_input_recentred_is_named(centred):
    err = assert_fails(checks.test_transcoder_forward, _forward(centred=centred), "input_normalised")
    assert "centring" in err.hint


def _losses(clamp: bool = False, skip_zero: bool = False):
    def replacement_losses(model, tc, tokens):
        seen = {}
        read = (tc.hook_name, lambda a, hook: seen.__setitem__("x", a))
        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        clean = loss([])
        replaced = loss([read, (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])
        if skip_zero:
            zero = loss([read, (tc.hook_name_out, lambda a, hook: tc.skip(seen["x"]))])
        else:
            zero = loss([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
        rec = (zero - replaced) / (zero - clean)
        rec = min(1.0, max(0.0, rec)) if clamp else rec
        return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": rec}

    return replacement_losses


def test_recovered_clamped_is_named():
    err = assert_fails(checks.test_replacement_losses, _losses(clamp=True), "recovered_clamped")
    assert "clipped to [0, 1]" in err.message and "no clamp" in err.hint


def test_zero_ablation_writing_the_skip_is_named():
    err = assert_fails(checks.test_replacement_losses, _losses(skip_zero=True), "ablation_skip")
    assert "tc.skip(x)" in err.message


def test_de_embedding_row_for_column_is_named():
    impl = lambda model, tc, latent: model.W_E @ tc.W_enc[latent]
    err = assert_fails(checks.test_latent_de_embedding, impl, "exception")
    assert "tc.W_enc[:, latent]" in err.hint and "M[:, i]" in err.hint


def test_row_for_column_hint_stays_a_question_and_needs_both_sizes():
    W, M, A = torch.randn(5, 3), torch.randn(4, 7), torch.randn(7, 4)
    product = lambda W, M: W @ M[2]
    hint = _hint_of(product, W, M)  # a row of length 7 where W's last axis is 3: M's column length 4 is not named
    assert "M[:, 2]" not in hint and "M[i] vs M[:, i]" in hint
    hint = _hint_of(product, A, M)  # A [7x4] @ a row of length 7: both of M's sizes (4, 7) are in the error
    assert "M[2] is row 2 of M [4, 7]" in hint and "M[:, 2] (length 4)" in hint
