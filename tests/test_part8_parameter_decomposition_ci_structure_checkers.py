"""Proofs for CausalImportance's structure diagnoses (tests/part8_parameter_decomposition_ci_structure.py) and the
hint for an autograd.Function whose forward is called directly (tests/learner_errors.py): GELU applied to a weight
is named, a hidden layer affine in h is described with its possible causes, a matmul that mixes the subcomponents
is found by changing one subcomponent's parameters, and .forward(None, ...) gets the .apply hint."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.learner_errors import _error_hint
from tests.proving import assert_fails, assert_passes

Lo, Up = sol.LowerLeakyHardSigmoid, sol.UpperLeakyHardSigmoid


def _ci(hidden_fn, z_fn=lambda m, hidden: (hidden * m.w_out).sum(-1), squash=None):
    class CI(sol.CausalImportance):
        def forward(self, a, V):
            h = einops.einsum(a, V, "b i d, i c d -> b i c")
            z = z_fn(self, hidden_fn(self, h)) + self.b_out
            if squash is not None:
                return squash(z, self.alpha)
            return Lo.apply(z, self.alpha), Up.apply(z, self.alpha)

    return CI


GELU = lambda m, h: F.gelu(h[..., None] * m.w_in + m.b_in)


def test_gelu_of_the_weight_is_named():
    CI = _ci(lambda m, h: F.gelu(m.w_in) * h[..., None] + m.b_in)
    assert "F.gelu(w_in)" in assert_fails(checks.test_causal_importance, CI, code="gelu_misplaced").hint


def test_an_affine_hidden_layer_is_described_with_its_causes():
    CI = _ci(lambda m, h: F.gelu(m.w_in) * h[..., None] + F.gelu(m.b_in))  # no single placement fits
    hint = assert_fails(checks.test_causal_importance, CI, code="hidden_affine").hint
    assert "affine in h" in hint and "GELU(1) = 0.8413" in hint and "Possible causes" in hint


def test_hidden_units_mixed_across_subcomponents_are_found():
    CI = _ci(GELU, z_fn=lambda m, hidden: (hidden @ m.w_out.mT).sum(-1))
    hint = assert_fails(checks.test_causal_importance, CI, code="subcomponents_mixed").hint
    assert "w_out[" in hint and "its own" in hint


def test_forward_called_directly_gets_the_apply_hint():
    CI = _ci(GELU, squash=lambda z, alpha: (Lo.forward(None, z, alpha), Up.forward(None, z, alpha)))
    failure = assert_fails(checks.test_causal_importance, CI, code="exception")
    assert ".apply(x, ...), not .forward(ctx, ...)" in failure.hint


def test_correct_einsum_variant_passes():
    CI = _ci(GELU, z_fn=lambda m, hidden: torch.einsum("bicd,icd->bic", hidden, m.w_out))
    assert_passes(checks.test_causal_importance, CI)


def test_direct_forward_hint_for_a_local_function_and_not_for_setup_context_style():
    def local():
        class Clamp(torch.autograd.Function):  # defined in a function: its class isn't a module global
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x.clamp(0, 1)

        return Clamp

    try:
        local().forward(None, torch.ones(2))
    except AttributeError as err:
        assert ".apply(x, ...)" in _error_hint(err)

    try:
        SetupStyle.apply(torch.ones(2))
    except RuntimeError as err:
        assert ".apply" not in (_error_hint(err) or "")


class SetupStyle(torch.autograd.Function):
    """forward(x) without a ctx (the ctx goes to setup_context): an error in it is not a direct call."""

    @staticmethod
    def forward(x):
        raise RuntimeError("boom")

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass
