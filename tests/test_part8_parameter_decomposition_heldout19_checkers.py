"""Proofs for part 8's checkers, twenty-first file: the fresh23 measurement's slips. A slope with a break point
(x = 0 or x = 1) on the wrong side of the table's closed [0, 1], one SVD of the instances stacked, N averaged over
the matrices, instance 0's input used for every instance, U and V passed in each other's place, and one source's
gradient used for every adversarial source are named; every correct way of writing the break points passes."""

from __future__ import annotations

import einops
import torch

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.part8_parameter_decomposition_slips import learner_sigmoid
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"
SVD_EIN = "inst d_out r, inst r, inst r d_in -> inst r d_out d_in"


def test_a_break_point_on_the_wrong_side_of_the_closed_interval_is_named():
    lower = learner_sigmoid(lambda x, a, g: g * torch.where(x < 0, a, (x < 1).to(x.dtype)))
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, lower, "boundary")
    assert "x = 1" in failure.message and "x <= 1" in failure.hint
    upper = learner_sigmoid(lambda x, a, g: g * torch.where(x >= 1, a, (x >= 0).to(x.dtype)))
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, upper, "boundary")
    assert "alpha (0.03) at x = 1" in failure.message
    upper = learner_sigmoid(lambda x, a, g: g * torch.where(x > 1, a, (x > 0).to(x.dtype)))
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, upper, "boundary")
    assert "0 at x = 0" in failure.message and "x >= 0" in failure.hint


def test_every_closed_interval_convention_passes():
    inside = lambda x: ((x >= 0) & (x <= 1)).to(x.dtype)
    assert_passes(checks.test_lower_leaky_hard_sigmoid, learner_sigmoid(lambda x, a, g: g * (inside(x) + a * (x < 0))))
    assert_passes(checks.test_upper_leaky_hard_sigmoid, learner_sigmoid(lambda x, a, g: g * (inside(x) + a * (x > 1))))

    def by_autograd(leak):  # the clamp's own gradient (1 on the closed [0, 1]) plus the leak
        def backward(x, a, g):
            with torch.enable_grad():
                y = x.detach().requires_grad_()
                (slope,) = torch.autograd.grad(y.clamp(0, 1).sum(), y)
            return g * (slope + a * leak(x))

        return learner_sigmoid(backward)

    assert_passes(checks.test_lower_leaky_hard_sigmoid, by_autograd(lambda x: x < 0))
    assert_passes(checks.test_upper_leaky_hard_sigmoid, by_autograd(lambda x: x > 1))


def test_one_svd_of_the_instances_stacked_is_named():
    def stacked(W):
        i, o, d = W.shape
        U, S, Vh = torch.linalg.svd(W.reshape(i * o, d), full_matrices=False)
        r = min(o, d)
        return einops.einsum(U.reshape(i, o, -1)[..., :r], S[:r].expand(i, r), Vh[:r].expand(i, r, d), SVD_EIN)

    failure = assert_fails(checks.test_svd_terms, stacked, "mixes_instances")
    assert "stacked" in failure.hint


def test_n_averaged_over_the_matrices_is_named_by_l():
    def mean_size(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (se / (sum(W[0].numel() for W in weights) / len(weights))).sum()

    failure = assert_fails(checks.test_faithfulness_loss, mean_size, "n_over_matrices")
    assert "the number of matrices" in failure.hint


def test_instance_0s_input_for_every_instance_is_named():
    class Inst0(sol.CausalImportance):
        def forward(self, a, V):
            return super().forward(a[:, :1].expand_as(a), V)

    failure = assert_fails(checks.test_causal_importance, Inst0, "instance0_params")
    assert "a[:, :1]" in failure.hint


def test_u_and_v_passed_in_each_others_place_is_named():
    def impl(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def run(layers):
            def fn(layer, a):
                if layer in layers:
                    return sol.masked_product(a, chain.weights[layer], V[layer], U[layer], masks[layer], dms[layer])
                return einops.einsum(a, chain.weights[layer], EIN)

            return chain(x, fn)

        loss = lambda y: (y - target).pow(2).mean((0, 2)).sum()
        return loss(run(set(range(L)))), sum(loss(run({n})) for n in range(L)) / L

    failure = assert_fails(checks.test_stochastic_reconstruction_losses, impl, "swapped_uv")
    assert "each other's place" in failure.hint


def test_one_sources_gradient_for_every_source_is_named():
    def grads0(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            s = [t.requires_grad_(True) for t in s]
            g = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                s = [(t + step_size * g[0].sign()).clamp(0, 1) for t in s]
        return [t.detach() for t in s]

    failure = assert_fails(checks.test_adversarial_sources, grads0, "one_source_for_all")
    assert "`g[0]`" in failure.hint and "zip" in failure.hint
