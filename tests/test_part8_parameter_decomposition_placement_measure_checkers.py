"""Proofs for three readings of where something went: b_out added to h before CausalImportance's MLP (a bias in
the wrong place), stochastic_reconstruction_losses reducing the masked runs with another per-example error measure
(Euclidean norm, RMS, L1, max, 1 - cosine), and a leaky sigmoid whose backward reads the clamped output y (x = 0 and
x < 0 look the same there) instead of a `<` / `<=` slip."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.part8_parameter_decomposition_error_measures import MEASURES
from tests.proving import assert_fails


# ---------------------------------------------------------------- CausalImportance: b_out in the wrong place
def _ci(h_bias: bool, pre_bias: bool, z_bias: bool) -> type:
    class CausalImportance(ref.CausalImportance):
        def forward(self, a, V):
            h = einops.einsum(a, V, "b i d, i c d -> b i c") + (self.b_out if h_bias else 0)
            pre = h[..., None] * self.w_in + self.b_in + (self.b_out[..., None] if pre_bias else 0)
            z = (F.gelu(pre) * self.w_out).sum(-1) + (self.b_out if z_bias else 0)
            return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CausalImportance


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ((True, False, True), ["also added on h before the MLP", "besides after the sum"]),
        ((True, False, False), ["added on h before the MLP", "instead of after the sum"]),
        ((False, True, False), ["added inside the GELU", "instead of after the sum"]),
    ],
)
def test_ci_bias_place(flags, words):
    failure = assert_fails(checks.test_causal_importance, _ci(*flags), "bias_place")
    assert all(w in failure.hint for w in words) and "a bias in the wrong place" in failure.hint
    assert "b_out once, after the sum over j" in failure.hint


# ---------------------------------------------------------------- reconstruction: another error measure
def _recon(measure):
    def stochastic_reconstruction_losses(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def loss(layers):
            def lf(m, a):
                if m in layers:
                    return ref.masked_product(a, chain.weights[m], U[m], V[m], masks[m], dms[m])
                return einops.einsum(a, chain.weights[m], "b i d, i o d -> b i o")

            return measure(chain(x, lf), target).mean(0).sum()

        return loss(set(range(L))), sum(loss({m}) for m in range(L)) / L

    return stochastic_reconstruction_losses


@pytest.mark.parametrize(
    ("name", "spelled", "words"),
    [
        ("norm", lambda y, t: (y - t).norm(dim=-1), "Euclidean norm of the error"),
        ("cosine", lambda y, t: 1 - F.cosine_similarity(y, t, dim=-1), "1 - the cosine similarity"),
        ("rms", lambda y, t: F.mse_loss(y, t, reduction="none").mean(-1).sqrt(), "root mean square error"),
        ("max_abs", lambda y, t: (y - t).abs().max(-1).values, "largest absolute error"),
    ],
)
def test_recon_error_measure(name, spelled, words):
    assert name in MEASURES
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, _recon(spelled), f"error_{name}")
    assert words in failure.hint and "the loss is the mean squared error" in failure.hint


# ---------------------------------------------------------------- leaky sigmoids: the clamped output saved
class UpperSaveOut(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        y = x.clamp(0, 1)
        ctx.save_for_backward(y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * torch.where(y >= 1, ctx.alpha, (y > 0).to(y.dtype)), None


class LowerSaveOut(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        y = x.clamp(0, 1)
        ctx.save_for_backward(y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * torch.where(y <= 0, ctx.alpha, (y < 1).to(y.dtype)), None


class UpperSlipOnX(torch.autograd.Function):  # x saved, one real `>` / `>=` slip: stays a boundary reading
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x > 1, ctx.alpha, (x > 0).to(x.dtype)), None


@pytest.mark.parametrize(
    ("check", "impl"),
    [(checks.test_upper_leaky_hard_sigmoid, UpperSaveOut), (checks.test_lower_leaky_hard_sigmoid, LowerSaveOut)],
)
def test_saved_output(check, impl):
    failure = assert_fails(check, impl, "saved_output")
    assert "the backward reads the clamped output y, where x = 0 and x < 0 (or x = 1 and x > 1) look the same: " in (
        failure.hint
    )
    assert "save x" in failure.hint and "check `<` against `<=`" not in failure.hint


def test_slip_on_x_stays_boundary():
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, UpperSlipOnX, "boundary")
    assert "check `<` against `<=`" in failure.hint and "clamped output" not in failure.hint
