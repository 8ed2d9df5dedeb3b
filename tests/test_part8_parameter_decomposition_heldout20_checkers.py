"""Proofs for part 8's checkers, twenty-second file: the fresh24 measurement's cases. An output that is 0 everywhere
(the run compared with itself), another hidden activation than GELU, a delta without W, a robust loss, the batch
division inside the power, a batch-summed or round-robin ascent, a float32 draw or cast on float64 inputs, and r paired
along the batch (antithetic) are named; the n_steps probe no longer calls a used n_steps ignored; every correct
draw passes the batch-spread test."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests import part8_parameter_decomposition_variants as variants
from tests.checking import CheckFailed
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def test_an_ablation_compared_with_itself_is_called_all_zero():
    def itself(chain, terms, x):
        out = []
        for k in range(terms.shape[1]):
            Wk = chain.weights[0] - terms[:, k]
            fn = lambda n, a, Wk=Wk: einops.einsum(a, Wk if n == 0 else chain.weights[n], EIN)
            out.append((chain(x, fn) - chain(x, fn)).pow(2).mean(-1))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    failure = assert_fails(checks.test_ablation_losses, itself, "all_zero")
    assert "compared with itself" in failure.hint and "every other entry is right" not in failure.hint


def test_another_hidden_activation_is_named():
    def with_act(act):
        class Leaky(sol.CausalImportance):
            def forward(self, a, V):
                h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
                z = (act(h[..., None] * self.w_in + self.b_in, self.alpha) * self.w_out).sum(-1) + self.b_out
                return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

        return Leaky

    failure = assert_fails(checks.test_causal_importance, with_act(F.leaky_relu), "activation")
    assert "F.leaky_relu(x, alpha)" in failure.hint and "GELU" in failure.hint
    failure = assert_fails(checks.test_causal_importance, with_act(lambda t, a: F.leaky_relu(t)), "activation")
    assert "slope 0.01" in failure.hint


def test_a_delta_without_w_and_a_float32_cast_are_named():
    def no_w(a, W, U, V, mask, dm):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + dm[..., None] * einops.einsum(a, -(U @ V), EIN)

    assert "W is missing" in assert_fails(checks.test_masked_product, no_w, "delta_without_W").hint
    cast = lambda *t: sol.masked_product(*(x.float() for x in t))
    assert "float64" in assert_fails(checks.test_masked_product, cast, "dtype").message


def test_a_robust_loss_in_the_reconstruction_is_named():
    def huber(chain, U, V, x, masks, dms):
        y, L = chain(x), len(chain.weights)

        def go(layers):
            fn = lambda n, a: (
                sol.masked_product(a, chain.weights[n], U[n], V[n], masks[n], dms[n])
                if n in layers
                else einops.einsum(a, chain.weights[n], EIN)
            )
            return F.smooth_l1_loss(chain(x, fn), y, reduction="none").mean((0, 2)).sum()

        return go(set(range(L))), sum(go({n}) for n in range(L)) / L

    failure = assert_fails(checks.test_stochastic_reconstruction_losses, huber, "robust_loss")
    assert "smooth_l1" in failure.hint


def test_the_batch_division_inside_the_power_is_named():
    inside = lambda ci, p, eps=1e-12: sum(((g + eps) / g.shape[0]).pow(p).sum() for g in ci)
    assert "inside the power" in assert_fails(checks.test_importance_minimality_loss, inside, "batch_inside_power").hint


def _ascent(rule):
    def fn(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for n in range(n_steps):
            s = [t.requires_grad_(True) for t in s]
            gs = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                if rule == "summed":
                    new = [
                        (t + step_size * g.sum(0, keepdim=True).sign()).clamp(0, 1) for t, g in zip(s, gs, strict=True)
                    ]
                else:
                    new = [
                        (t + step_size * g.sign()).clamp(0, 1) if i == n % len(s) else t
                        for i, (t, g) in enumerate(zip(s, gs, strict=True))
                    ]
            s = [t.detach() for t in new]
        return s

    return fn


def test_a_batch_summed_or_round_robin_ascent_is_named_not_called_n_steps_ignored():
    failure = assert_fails(checks.test_adversarial_sources, _ascent("summed"), "batch_summed_gradient")
    assert "every example's source moved the same way" in failure.hint
    assert_fails(checks.test_adversarial_sources, _ascent("robin"), "round_robin")


def test_float32_delta_draws_and_antithetic_r_are_named():
    def no_dtype(cis):
        return [g + (1 - g) * torch.rand_like(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    assert "float64" in assert_fails(checks.test_sample_masks, no_dtype, "dtype").message

    def antithetic(cis):
        ms, ds = [], []
        for g in cis:
            h = (g.shape[0] + 1) // 2
            r = torch.rand((h, *g.shape[1:]), dtype=g.dtype)
            ms.append(g + (1 - g) * torch.cat([r, 1 - r])[: g.shape[0]])
            ds.append(torch.rand(g.shape[:-1], dtype=g.dtype))
        return ms, ds

    assert_fails(checks.test_sample_masks, antithetic, "paired_over_batch")


def test_correct_draws_pass_the_batch_spread_test():
    for seed in range(40):  # per-entry, per-instance and per-matrix draws: S is chi-square, far from the lower tail
        torch.manual_seed(seed)
        rs = [torch.rand(4000, 3, 4), torch.stack([torch.rand(4000, 3) for _ in range(3)], -1)]
        variants.batch_mean_spread(rs, [torch.rand(4000, 3), torch.rand(4000, 3)])
    assert_passes(checks.test_sample_masks, sol.sample_masks)
    try:
        variants.batch_mean_spread([torch.full((100, 2, 2), 0.5)], [torch.rand(100, 2)])
    except CheckFailed as failure:
        assert failure.code == "paired_over_batch"
    else:
        raise AssertionError("constant r = 1/2 should fail the spread test")
