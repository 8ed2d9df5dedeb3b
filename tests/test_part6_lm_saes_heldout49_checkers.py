"""Proofs for part 6 after the fresh48 audit: the two past misleading trials (position 0 negated in
top_activations, model.W_out without [0] in latent_logit_effect) keep hints that name the actual mistake; the
frequencies that weigh some sequences more than others name a batch slicing only when that slicing, simulated on the
checker's 10 sequences in batches of 4, gives exactly the learner's weights (read-back in
tests/part6_lm_saes_batch_slices.py), and otherwise say the weights observed without a cause."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part6_lm_saes as p6
from tests.proving import assert_fails


def top_negate_bos(acts, k):
    m = acts.clone()
    m[:, 0] = -m[:, 0]
    v, flat = m.flatten().topk(k)
    return v, flat // acts.shape[1], flat % acts.shape[1]


def effect_W_out_all_layers(model, sae, latent):
    return sae.W_dec[latent] @ model.W_out @ model.W_U


def _frequencies(batches):
    """latent_frequencies that counts the sequences batches(n_seq, batch_size) yields (lists of indices)."""

    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae), 0
        for idx in batches(tokens.shape[0], batch_size):
            _, cache = model.run_with_cache(tokens[idx], names_filter=sae.hook_name)
            fired = (sae.encode(cache[sae.hook_name])[:, 1:] > 0).float()
            counts += fired.sum((0, 1))
            n += fired.shape[0] * fired.shape[1]
        return counts / n

    return latent_frequencies


def test_past_negated_bos_not_named_as_max():
    err = assert_fails(p6.test_top_activations, top_negate_bos, "bos_mask_not_lowest")
    assert "-acts[:, 0]" in err.hint and "acts.max()" not in err.hint


def test_past_W_out_layer_axis_named():
    err = assert_fails(p6.test_latent_logit_effect, effect_W_out_all_layers, "shape")
    assert "W_out[0]" in err.hint and "n_layers" in str(err)


def test_end_past_block_read_back():
    impl = _frequencies(lambda n, bs: [list(range(s, min(s + bs + 1, n))) for s in range(0, n, bs)])
    err = assert_fails(p6.test_latent_frequencies, impl, "counted_twice")
    assert "start + batch_size + 1" in err.hint and "range(0, n_seq, 1)" not in err.hint


def test_smaller_step_read_back():
    impl = _frequencies(lambda n, bs: [list(range(s, min(s + bs, n))) for s in range(0, n, 2)])
    err = assert_fails(p6.test_latent_frequencies, impl, "counted_twice")
    assert "range(0, n_seq, 2)" in err.hint and "batch_size + 1" not in err.hint


def test_duplicated_sequence_not_named_as_overlap():
    """Sequence 4 appended once more to the data: counted twice, but by no batch slicing."""
    impl = _frequencies(lambda n, bs: [list(range(s, min(s + bs, n))) for s in range(0, n, bs)] + [[4]])
    err = assert_fails(p6.test_latent_frequencies, impl, "counted_twice")
    assert "sequence 4 twice" in err.message
    assert "exactly the weights of" not in err.hint and "overlapping" not in err.hint
    assert "not batches cut with a strided slice, an end past the block or a smaller step" in err.hint


def test_strided_read_back():
    impl = _frequencies(lambda n, bs: [list(range(s, n, bs)) for s in range(0, n, bs)])
    err = assert_fails(p6.test_latent_frequencies, impl, "strided_batches")
    assert "tokens[start::batch_size]" in err.hint


def test_strided_look_alike_not_named_as_strided():
    """Only sequences 0, 4 and 8 counted, 8 twice: every 4th sequence, but not the weights a strided slice gives."""
    impl = _frequencies(lambda n, bs: [[0, 4, 8], [8]])
    err = assert_fails(p6.test_latent_frequencies, impl, "strided_batches")
    assert "exactly the weights of" not in err.hint and "where a block belongs" not in err.hint
    assert "not batches cut with a strided slice" in err.hint


def _steer(edit):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        hook = lambda a, hook: edit(a, coeff * sae.W_dec[latent])
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return steer_with_latent


def test_past_steer_positive_neurons_read_back():
    """fresh45 steer_only_positive_neurons: the vector added only where act > 0."""
    err = assert_fails(p6.test_steer_with_latent, _steer(lambda a, v: a + v * (a > 0)), "steer_not_additive")
    assert "(act > 0)" in err.message and "GELU applied" not in err.message


def test_past_steer_relu_read_back():
    """fresh46 steer_relu_clamp: ReLU after the addition."""
    err = assert_fails(p6.test_steer_with_latent, _steer(lambda a, v: torch.relu(a + v)), "steer_not_additive")
    assert "torch.relu(act + coeff" in err.message and "(act > 0)" not in err.message


def test_past_steer_gelu_read_back():
    """fresh47 steer_gelu_again: GELU after the addition (was listed only as 'a max, clamp or mask')."""
    err = assert_fails(p6.test_steer_with_latent, _steer(lambda a, v: F.gelu(a + v)), "steer_not_additive")
    assert "F.gelu(act + coeff" in err.message and "max, clamp or mask" not in err.hint


def test_steer_sigmoid_gate_observed_without_cause():
    """The vector gated by sigmoid(act): varies by position, but none of the named hooks; no cause is named."""
    err = assert_fails(p6.test_steer_with_latent, _steer(lambda a, v: a + v * torch.sigmoid(a)), "steer_not_additive")
    assert "exactly" not in err.message and "max, clamp or mask" not in err.hint
    assert "it is not a GELU or ReLU after the addition" in err.message
