"""Proofs for part 8's checkers, twenty-third file: the fresh25 measurement's cases. A float32 forward or ascent on
float64 inputs, the average of the iterates, σ averaged over the instances, a term summed over the instances, h
summed over the instances, b_out before the w_out product, an added delta mask and the batch summed before the power
are named; the no-leak hint lists an integer slope tensor; the layerwise hint says the loop variable is unused; the
correct float64-preserving forms pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"
SE = "inst d_out r, inst r, inst r d_in -> inst r d_out d_in"


def _sigmoid(forward, backward):
    class S(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha=0.01):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return forward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return backward(x, g, ctx.alpha), None

    return S


def test_a_float32_forward_is_named_and_the_dtype_keeping_one_passes():
    lower = lambda x, g, a: g * torch.where(x < 0, a, (x <= 1).to(x.dtype))
    upper = lambda x, g, a: g * torch.where(x > 1, a, (x >= 0).to(x.dtype))
    cast = lambda x: x.clamp(0, 1).float()
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, _sigmoid(cast, lower), "dtype")
    assert "float64" in failure.message
    assert_fails(checks.test_upper_leaky_hard_sigmoid, _sigmoid(cast, upper), "dtype")
    assert_passes(checks.test_lower_leaky_hard_sigmoid, _sigmoid(lambda x: x.clamp(0, 1), lower))
    assert_passes(checks.test_upper_leaky_hard_sigmoid, _sigmoid(lambda x: torch.clamp(x, 0.0, 1.0), upper))


def test_an_integer_slope_tensor_is_listed_among_the_no_leak_causes():
    def up_long(x, g, a):
        s = (x >= 0).long()
        s[x > 1] = a
        return g * s

    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, _sigmoid(lambda x: x.clamp(0, 1), up_long), "no_leak")
    assert "integer" in failure.hint


def _pgd(loss_fn, init, n_steps, step, cast=lambda t: t, average=False):
    s, seen = [cast(t.detach().clone()) for t in init], []
    for _ in range(n_steps):
        s = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(s), s)
        with torch.no_grad():
            s = [(t + step * g.sign()).clamp(0, 1) for t, g in zip(s, grads, strict=True)]
        seen.append(s)
    if average:
        s = [torch.stack([h[i] for h in seen]).mean(0) for i in range(len(s))]
    return [t.detach() for t in s]


def test_the_average_iterate_and_a_float32_ascent_are_named():
    failure = assert_fails(checks.test_adversarial_sources, lambda *a: _pgd(*a, average=True), "average_iterate")
    assert "Polyak" in failure.hint
    failure = assert_fails(checks.test_adversarial_sources, lambda *a: _pgd(*a, cast=lambda t: t.float()), "dtype")
    assert "float64" in failure.message
    assert_passes(checks.test_adversarial_sources, _pgd)


def test_sigma_averaged_over_instances_mentions_the_instances():
    def s_mean(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return einops.einsum(U, S.mean(0, keepdim=True).expand_as(S), Vh, SE)

    assert "instances" in assert_fails(checks.test_svd_terms, s_mean, "mixes_instances").hint


def test_a_term_summed_over_the_instances_is_named():
    def summed(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[1]):
            Wk = chain.weights[0] - terms[:, k].sum(0)
            fn = lambda n, a, Wk=Wk: einops.einsum(a, Wk if n == 0 else chain.weights[n], EIN)
            out.append((chain(x, fn) - original).pow(2).mean(-1))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    assert "sum" in assert_fails(checks.test_ablation_losses, summed, "instances_mixed_terms").hint


def _ci(body):
    class C(sol.CausalImportance):
        def forward(self, a, V):
            z = body(self, a, V)
            return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return C


def test_h_summed_over_instances_and_b_out_inside_are_named():
    def inst_sum(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch C")[:, None]
        return (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out

    def b_out_inside(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        return ((F.gelu(h[..., None] * self.w_in + self.b_in) + self.b_out[..., None]) * self.w_out).sum(-1)

    assert_fails(checks.test_causal_importance, _ci(inst_sum), "instances_summed")
    assert_fails(checks.test_causal_importance, _ci(b_out_inside), "b_out_inside")


def test_an_added_delta_mask_and_the_batch_summed_before_the_power_are_named():
    def plus(a, W, U, V, mask, dm):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + (dm[..., None] + einops.einsum(a, W - U @ V, EIN))

    assert_fails(checks.test_masked_product, plus, "delta_mask_added")
    summed = lambda cis, p, eps=1e-12: sum((g.sum(0) + eps).pow(p).sum() for g in cis) / cis[0].shape[0]
    assert_fails(checks.test_importance_minimality_loss, summed, "batch_summed_before_power")


def test_a_layerwise_loop_that_always_masks_matrix_0_says_the_loop_variable_is_unused():
    def first_only(chain, U, V, x, masks, dms):
        y, L = chain(x), len(chain.weights)

        def run(layers):
            fn = lambda n, a: (
                sol.masked_product(a, chain.weights[n], U[n], V[n], masks[n], dms[n])
                if n in layers
                else einops.einsum(a, chain.weights[n], EIN)
            )
            return (chain(x, fn) - y).pow(2).mean((0, 2)).sum()

        return run(set(range(L))), sum(run({0}) for _ in range(L)) / L

    failure = assert_fails(checks.test_stochastic_reconstruction_losses, first_only, "layerwise_first_only")
    assert "doesn't use l" in failure.hint


def test_u_and_v_unpacked_in_each_others_place_are_named():
    def swapped(weights, U, V):
        total = sum((W - Ul @ Vl).pow(2).sum((-2, -1)) for W, Vl, Ul in zip(weights, U, V, strict=True))
        return total.sum() / sum(W[0].numel() for W in weights)

    failure = assert_fails(checks.test_faithfulness_loss, swapped, "swapped_uv")
    assert "`Ul`" in failure.hint and "`Vl`" in failure.hint
