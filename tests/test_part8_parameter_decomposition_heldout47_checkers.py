"""Proofs for part 8 after the fresh47 round: the slope of CausalImportance's leaky sides read at several depths
beyond [0, 1] (z clamped before the sigmoids: `input_clamped`; no leak at all: `no_leak`; 0.01 at every depth:
`alpha_not_passed`), a squashing projection in adversarial_sources (sigmoid or (1 + tanh) / 2 after each step:
`sigmoid_projection`, `tanh_projection`), and
the round's correct variants."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _mm(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# causal_importance: the leak read at several depths
# --------------------------------------------------------------------------------------------
def _z(module, a, V):
    h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
    return (F.gelu(h[..., None] * module.w_in + module.b_in) * module.w_out).sum(-1) + module.b_out


class CIZClamped(S.CausalImportance):
    def forward(self, a, V):
        z = _z(self, a, V).clamp(-1, 2)  # "for stability": the leak dies beyond [-1, 2]
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


class CIZClampedWide(S.CausalImportance):
    def forward(self, a, V):
        z = torch.clamp(_z(self, a, V), min=-5.0, max=6.0)
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


class CIDefaultAlpha(S.CausalImportance):
    def forward(self, a, V):
        z = _z(self, a, V)
        return S.LowerLeakyHardSigmoid.apply(z), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


class CIAllEinsum(S.CausalImportance):
    def forward(self, a, V):
        h = torch.einsum("bid,icd->bic", a, V)
        pre = torch.einsum("bic,ick->bick", h, self.w_in) + self.b_in
        z = torch.einsum("bick,ick->bic", nn.GELU()(pre), self.w_out) + self.b_out
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


def test_ci_z_clamped_names_the_clamp_of_the_input_not_alpha():
    err = assert_fails(checks.test_causal_importance, CIZClamped, "input_clamped")
    assert "alpha = 0.05 at z = -0.05" in err.message and "0 from z = -1.5" in err.message
    assert "clamp" in err.hint and "pass self.alpha" not in err.hint


def test_ci_z_clamped_wider_range_is_named_the_same():
    err = assert_fails(checks.test_causal_importance, CIZClampedWide, "input_clamped")
    assert "0 from z = -7.5" in err.message


def test_ci_default_alpha_still_named_alpha_not_passed():
    err = assert_fails(checks.test_causal_importance, CIDefaultAlpha, "alpha_not_passed")
    assert "0.01 at every depth" in err.message and "LowerLeakyHardSigmoid" in err.hint


def test_ci_all_einsum_passes():
    assert_passes(checks.test_causal_importance, CIAllEinsum)


# --------------------------------------------------------------------------------------------
# adversarial_sources: a squashing projection
# --------------------------------------------------------------------------------------------
def _squashed(project):
    def impl(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            s = [t.requires_grad_(True) for t in s]
            gs = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                s = [project(t + step_size * g.sign()) for t, g in zip(s, gs, strict=True)]
        return [t.detach() for t in s]

    return impl


def test_sigmoid_projection_named():
    err = assert_fails(checks.test_adversarial_sources, _squashed(torch.sigmoid), "sigmoid_projection")
    assert "squashing" in err.hint and "clamp" in err.hint


def test_tanh_projection_named():
    err = assert_fails(checks.test_adversarial_sources, _squashed(lambda t: (1 + torch.tanh(t)) / 2), "tanh_projection")
    assert "tanh" in err.hint


def adv_per_source_grad(loss_fn, init, n_steps, step_size):
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        leaves = [t.clone().requires_grad_(True) for t in s]
        loss = loss_fn(leaves)
        new = []
        for i, t in enumerate(leaves):
            (g,) = torch.autograd.grad(loss, [t], retain_graph=i < len(leaves) - 1)
            new.append(torch.clamp(t.detach() + step_size * torch.sign(g), 0.0, 1.0))
        s = new
    return s


def test_adv_per_source_grad_passes():
    assert_passes(checks.test_adversarial_sources, adv_per_source_grad)
