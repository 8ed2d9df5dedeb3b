"""Proofs for part 5's read-backs of a wrong number by the checker's own inputs: W_dec_normalized's eps read back
from the rows and named by the config field that holds it (eps_field) or reported (eps_value); generate_batch's
features pooled over instances (features_pooled) or scaled per feature by a toy-model field (feature_scaled), both
fitted by least squares; resample_advanced's live encoder scale taken as the norm of the mean live column (enc_stat).
"""

from __future__ import annotations

import inspect
import textwrap

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _norm(fn):
    class S(P.ToySAE):
        @property
        def W_dec_normalized(self):
            return fn(self.W_dec, self)

    return S


def _batch(fn):
    class S(P.ToySAE):
        def generate_batch(self, batch_size):
            return torch.einsum("bif,idf->bid", fn(self.model.generate_batch(batch_size), self.model), self.model.W)

    return S


def test_eps_from_another_config_field_is_named():
    impl = _norm(lambda W, s: W / (W.norm(dim=-1, keepdim=True) + s.cfg.jumprelu_bandwidth))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "eps_field")
    assert "an eps of 0.001" in failure.message and "cfg.jumprelu_bandwidth: the wrong config field" in failure.message
    assert "jumprelu_init_threshold" not in failure.message  # the checker's config keeps its floats apart


def test_hard_coded_eps_is_read_back():
    impl = _norm(lambda W, s: W / (W.norm(dim=-1, keepdim=True) + 3e-3))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "eps_value")
    assert "‖W_row‖ + 0.003" in failure.message and "no config field" in failure.message


def test_features_averaged_over_instances_are_named():
    failure = assert_fails(checks.test_generate_batch, _batch(lambda x, m: x.mean(1, keepdim=True)), "features_pooled")
    assert "averaged over the instances" in failure.message


def test_features_summed_over_instances_are_named():
    failure = assert_fails(checks.test_generate_batch, _batch(lambda x, m: x.sum(1, keepdim=True)), "features_pooled")
    assert "summed over the instances" in failure.message


def test_features_times_probability_are_named():
    impl = _batch(lambda x, m: x * m.feature_probability)
    failure = assert_fails(checks.test_generate_batch, impl, "feature_scaled")
    assert "the factors are self.model.feature_probability" in failure.message


def test_features_times_unknown_per_feature_scale_are_listed():
    impl = _batch(lambda x, m: x * torch.linspace(0.5, 2.0, x.shape[-1]))
    failure = assert_fails(checks.test_generate_batch, impl, "feature_scaled")
    assert "[0.5, 0.8, 1.1, 1.4, 1.7, 2.0]" in failure.message
    assert "not the toy model's per-feature fields" in failure.hint


def test_einsum_with_features_as_drawn_passes():
    assert_passes(checks.test_generate_batch, _batch(lambda x, m: x))


def test_norm_of_mean_live_column_is_named():
    source = textwrap.dedent(inspect.getsource(P.resample_advanced))
    old = "sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)"
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, "sae.W_enc[inst, :, ~dead[inst]].mean(-1, keepdim=True).norm(dim=0)"), namespace)
    failure = assert_fails(checks.test_resample_advanced, namespace["resample_advanced"], "enc_stat")
    assert "the norm of the mean live column" in failure.message
