"""Proofs for part 8's checkers, thirteenth file: more mistakes from the sixteenth fresh held-out measurement. A
causal-importance MLP whose parameters are averaged over the instances, or whose output layer sums over C too, is
named; a masked product that builds one masked matrix for the whole batch (masks summed over the examples) is named;
a hard sigmoid whose forward is a straight line in x within a region is described by that line (x / 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def _ci(z_fn):
    class CI(ref.CausalImportance):
        def forward(self, a, V):
            z = z_fn(self, torch.einsum("bid,icd->bic", a, V))
            return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CI


def test_ci_parameters_averaged_over_instances_is_named():
    def z(self, h):
        hidden = F.gelu(h[..., None] * self.w_in.mean(0) + self.b_in.mean(0))
        return (hidden * self.w_out.mean(0)).sum(-1) + self.b_out.mean(0)

    failure = assert_fails(checks.test_causal_importance, _ci(z), "instance_mean")
    assert "averaged over the inst axis" in failure.hint


def test_ci_output_layer_summed_over_c_is_named():
    def z(self, h):
        hidden = F.gelu(h[..., None] * self.w_in + self.b_in)
        return torch.einsum("bicd,icd->bi", hidden, self.w_out)[..., None] + self.b_out

    failure = assert_fails(checks.test_causal_importance, _ci(z), "sum_over_C")
    assert "not over C too" in failure.hint


def test_masked_product_masks_summed_over_the_batch_is_named():
    def masked_product(a, W, U, V, mask, delta_mask):
        W_masked = torch.einsum("bic,ioc,icd->iod", mask, U, V)
        delta = torch.einsum("bid,iod->bio", a, W - U @ V)
        return torch.einsum("bid,iod->bio", a, W_masked) + delta_mask[..., None] * delta

    failure = assert_fails(checks.test_masked_product, masked_product, "mask_batch_sum")
    assert "summed over the batch" in failure.hint


def test_lower_forward_relu6_over_6_is_described_as_a_line():
    class Lower(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha=0.01):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return F.relu6(x) / 6

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * torch.where(x < 0, ctx.alpha, (x <= 1).to(x.dtype)), None

    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, Lower, "forward")
    assert "on [0, 1] it is a value that changes with x as x / 6" in failure.hint
    assert "above 1 it is a value that changes with x as x / 6" in failure.hint
