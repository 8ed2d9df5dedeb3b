"""Proofs for part 8 after the confidence audit (fresh49): the past misleading trials of fresh45/47 keep failing
without their wrong cause, and the readings changed by the audit name a cause only when its mutant reproduces the
learner's values (read-back), else say what was seen.

* causal_importance `hidden_affine`: GELU placements (left out, or on two or three of w_in, b_in, w_out) are read
  back on the checker's inputs; a hidden layer merely scaled (0.8413 · pre, the slope GELU(w_in) gives on the probe)
  is not told "GELU applied to w_in" or "GELU missing".
* stochastic_reconstruction_losses `layerwise_loss`: the layerwise loss off by an unexplained factor is described
  (the divisors and the masked-output target read back and ruled out), without "possible causes: its average, its
  target, or which matrix each run masks" (the masks squared in the layerwise runs are none of those).
* causal_importance gradient (`grad`): once both sigmoids' slopes were measured to be alpha, the hint says so and
  states the contract, without "possible causes: a leaky sigmoid's backward, ...".
* sample_masks r law (`not_uniform`): draws with the right mean and a larger spread than a uniform's are not told
  "a mean of several draws" (a mean narrows the spread: that cause stays listed only for a narrower spread).
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails
from tests.test_part8_parameter_decomposition_heldout3_checkers import recon

Lo, Up = S.LowerLeakyHardSigmoid, S.UpperLeakyHardSigmoid


# --------------------------------------------------------------------------------------------
# past misleading trials
# --------------------------------------------------------------------------------------------
def faith_din_times_C(weights, U, V):  # fresh45 faith_n_din_times_C
    se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    n = sum(W.shape[-1] * u.shape[-1] for W, u in zip(weights, U, strict=True))
    return (se / n).sum()


def test_fresh45_faith_n_din_times_C_is_not_told_counted_twice():
    hint = assert_fails(checks.test_faithfulness_loss, faith_din_times_C, "wrong_count").hint
    assert "counted twice" not in hint and "½ MSE" not in hint


class CIZClamped(S.CausalImportance):  # fresh47 ci_z_clamped_for_stability
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        hid = F.gelu(h[..., None] * self.w_in + self.b_in)
        z = ((hid * self.w_out).sum(-1) + self.b_out).clamp(-1, 2)
        return Lo.apply(z, self.alpha), Up.apply(z, self.alpha)


def test_fresh47_ci_z_clamped_is_not_told_alpha_not_passed():
    hint = assert_fails(checks.test_causal_importance, CIZClamped, "input_clamped").hint
    assert "pass self.alpha" not in hint


def adv_sigmoid_proj(loss_fn, init, n_steps, step_size):  # fresh47 adv_sigmoid_projection
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        s = [t.requires_grad_(True) for t in s]
        gs = torch.autograd.grad(loss_fn(s), s)
        with torch.no_grad():
            s = [torch.sigmoid(t + step_size * g.sign()) for t, g in zip(s, gs, strict=True)]
    return [t.detach() for t in s]


def test_fresh47_adv_sigmoid_projection_is_named():
    hint = assert_fails(checks.test_adversarial_sources, adv_sigmoid_proj, "sigmoid_projection").hint
    assert "step size changing" not in hint


# --------------------------------------------------------------------------------------------
# causal_importance hidden_affine: causes read back, not guessed from the probe slope
# --------------------------------------------------------------------------------------------
def _ci(hidden_fn):
    class CI(S.CausalImportance):
        def forward(self, a, V):
            h = einops.einsum(a, V, "b i d, i c d -> b i c")
            z = (hidden_fn(self, h) * self.w_out).sum(-1) + self.b_out
            return Lo.apply(z, self.alpha), Up.apply(z, self.alpha)

    return CI


def test_gelu_on_two_pieces_is_read_back():
    CI = _ci(lambda m, h: F.gelu(m.w_in) * h[..., None] + F.gelu(m.b_in))
    hint = assert_fails(checks.test_causal_importance, CI, code="hidden_affine").hint
    assert "GELU applied to w_in and b_in (F.gelu(w_in), F.gelu(b_in))" in hint and "reproduces your values" in hint


def test_gelu_on_all_three_pieces_is_read_back():
    CI = _ci(lambda m, h: (F.gelu(m.w_in) * h[..., None] + F.gelu(m.b_in)) * F.gelu(m.w_out) / m.w_out)
    hint = assert_fails(checks.test_causal_importance, CI, code="hidden_affine").hint
    assert "GELU applied to w_in and b_in and w_out" in hint


def test_scaled_pre_activation_with_gelu_w_in_slope_is_not_told_gelu_on_w_in():
    """0.8413 · (w_in h + b_in): the probe slope is GELU(1), the one GELU on w_in gives there; the old hint said
    'the slope fits GELU applied to w_in ... Possible causes: GELU missing, or applied to another piece'."""
    g1 = float(F.gelu(torch.tensor(1.0)))
    CI = _ci(lambda m, h: g1 * (h[..., None] * m.w_in + m.b_in))
    hint = assert_fails(checks.test_causal_importance, CI, code="hidden_affine").hint
    assert "Possible causes" not in hint and "GELU missing" not in hint.split("gives on this probe")[-1]
    assert "isn't one of those" in hint


def test_halved_pre_activation_is_described_not_caused():
    CI = _ci(lambda m, h: 0.5 * (h[..., None] * m.w_in + m.b_in))
    hint = assert_fails(checks.test_causal_importance, CI, code="hidden_affine").hint
    assert "0.5·t" in hint and "Possible causes" not in hint and "isn't one of those" in hint


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses layerwise_loss: what was seen and ruled out, no cause list
# --------------------------------------------------------------------------------------------
def test_recon_layerwise_masks_squared_is_described_not_caused():
    failure = assert_fails(
        checks.test_stochastic_reconstruction_losses,
        recon(layer_masks=lambda ms: [m * m for m in ms]),
        "layerwise_loss",
    )
    assert "possible causes" not in failure.hint and "its target" not in failure.hint
    assert "were read back" in failure.hint and "masks[l]" in failure.hint


# --------------------------------------------------------------------------------------------
# causal_importance gradient: the leaky backward is not named once its slopes were measured right
# --------------------------------------------------------------------------------------------
def test_w_in_gradient_bent_is_not_blamed_on_the_sigmoids():
    """The values are right and w_in's gradient is off (a straight-through term w_in³ - w_in³.detach() in the
    pre-activation): both sigmoids' slopes are alpha, so the old 'possible causes: a leaky sigmoid's backward ...'
    named a cause the evidence had ruled out."""
    cube = lambda w: w.pow(3) - w.pow(3).detach()
    CI = _ci(lambda m, h: F.gelu(h[..., None] * m.w_in + m.b_in + cube(m.w_in)))
    failure = assert_fails(checks.test_causal_importance, CI, "grad")
    assert "possible causes" not in failure.hint and "are alpha = self.alpha" in failure.hint


# --------------------------------------------------------------------------------------------
# sample_masks: r with the right mean and a uniform's spread exceeded is not told "a mean of several draws"
# --------------------------------------------------------------------------------------------
def _masks_spread_out(cis):
    def r_like(g):
        u = 2 * torch.rand_like(g) - 1
        return 0.5 + 0.5 * u.sign() * u.abs().sqrt()  # mean 1/2, variance 1/8: crowds towards 0 and 1

    masks = [g + (1 - g) * r_like(g) for g in cis]
    return masks, [torch.rand(g.shape[:-1], dtype=g.dtype) for g in cis]


def test_r_crowding_to_the_ends_is_not_told_a_mean_of_draws():
    failure = assert_fails(checks.test_sample_masks, _masks_spread_out, "not_uniform")
    assert "crowd towards 0 and 1" in failure.hint and "not a mean of several draws" in failure.hint
    assert "or a mean of several draws" not in failure.hint
