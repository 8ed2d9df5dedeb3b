"""Proofs for part 8's checkers, fifth file: mistakes from the seventh fresh held-out measurement. Most are named
because the inputs are now generic (K = 5 ablated terms, L = 4 matrices, 3 instances, a batch of 7, a tall matrix,
10 hidden units for 4 subcomponents, a loss that couples two sources), the rest by behavioural probes."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes

Lower, Upper = ref.LowerLeakyHardSigmoid, ref.UpperLeakyHardSigmoid


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# svd_terms: a tall matrix
# --------------------------------------------------------------------------------------------
def svd_r_is_d_out(W):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = [S[:, k, None, None] * torch.einsum("io,id->iod", U[:, :, k], Vh[:, k]) for k in range(W.shape[1])]
    return torch.stack(terms, 1)


def svd_full_then_slice(W):
    U, S, Vh = torch.linalg.svd(W)
    r = S.shape[-1]
    return (U[..., :r] * S[:, None, :]).mT[..., :, None] * Vh[..., :r, :][..., None, :]


def test_svd_count_from_d_out_is_named_on_a_tall_matrix():
    failure = assert_fails(checks.test_svd_terms, svd_r_is_d_out, "term_count")
    assert "W is tall here" in failure.hint and "W.shape[1]" in failure.hint


def test_svd_full_matrices_sliced_is_accepted():
    assert_passes(checks.test_svd_terms, svd_full_then_slice)


# --------------------------------------------------------------------------------------------
# ablation_losses: K = 5 terms
# --------------------------------------------------------------------------------------------
def ablation(first=lambda chain, terms, k: chain.weights[0] - terms[:, k], reduce=None):
    def impl(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[1]):
            W = first(chain, terms, k)
            y = chain(x, lambda layer, a, W=W: ein(a, W if layer == 0 else chain.weights[layer]))
            out.append(reduce(y, original) if reduce else (y - original).pow(2).mean(-1))
        return torch.stack(out).permute(2, 0, 1)

    return impl


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (ablation(first=lambda c, t, k: c.weights[0] - (t.sum(1) - t[:, k])), "remove_others"),
        (ablation(first=lambda c, t, k: c.weights[0] - t[0, k]), "instance_0_terms"),
        (ablation(reduce=lambda y, o: ((y - o) / (o.abs() + 1e-8)).pow(2).mean(-1)), "blows_up"),
    ],
)
def test_ablation_fresh7_mistakes_are_named(impl, code):
    assert_fails(checks.test_ablation_losses, impl, code)


def test_ablation_unknown_reduction_lists_both_places():
    """A reduction nobody listed gets a hint pointing at the run and the reduction, not at the run alone."""
    failure = assert_fails(checks.test_ablation_losses, ablation(reduce=lambda y, o: (y - o).pow(4).mean(-1)), "values")
    assert "check both the ablated run and this reduction" in failure.hint


# --------------------------------------------------------------------------------------------
# faithfulness_loss: L = 4 matrices
# --------------------------------------------------------------------------------------------
def faith_half(weights, U, V):
    sq = sum(0.5 * (W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    return (sq / sum(W[0].numel() for W in weights)).sum()


def faith_var(weights, U, V):
    d = torch.cat([(W - u @ v).flatten(1) for W, u, v in zip(weights, U, V, strict=True)], 1)
    return d.var(1).sum()


def test_faithfulness_half_is_a_factor_not_the_matrix_count():
    failure = assert_fails(checks.test_faithfulness_loss, faith_half, "scale")
    assert "½" in failure.hint and "matrices" not in failure.hint


def test_faithfulness_variance_is_named():
    assert_fails(checks.test_faithfulness_loss, faith_var, "variance")


# --------------------------------------------------------------------------------------------
# CausalImportance: chained sigmoids, too few hidden units, a second GELU
# --------------------------------------------------------------------------------------------
def ci_class(z_fn, squash=lambda z, alpha: (Lower.apply(z, alpha), Upper.apply(z, alpha))):
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        return squash(z_fn(self, h), self.alpha)

    return type("CI", (ref.CausalImportance,), {"forward": forward})


def z_right(self, h):
    return (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out


def z_first_units(n):
    def z(self, h):
        units = range(n(self))
        return self.b_out + sum(self.w_out[..., j] * F.gelu(h * self.w_in[..., j] + self.b_in[..., j]) for j in units)

    return z


def test_ci_chained_sigmoids_hint_names_both_causes():
    chained = lambda z, alpha: (lo := Lower.apply(z, alpha), Upper.apply(lo, alpha))
    failure = assert_fails(checks.test_causal_importance, ci_class(z_right, chained), "both_lower")
    assert "nor applied to the first output" in failure.hint


@pytest.mark.parametrize(
    ("n", "why"),
    [(lambda self: self.w_in.shape[1], "the C subcomponents"), (lambda self: self.w_in.shape[-1] - 1, "one short")],
)
def test_ci_too_few_hidden_units_are_observed(n, why):
    failure = assert_fails(checks.test_causal_importance, ci_class(z_first_units(n)), "unused_hidden_units")
    assert why in failure.hint


def test_ci_second_gelu_is_named():
    assert_fails(checks.test_causal_importance, ci_class(lambda self, h: F.gelu(z_right(self, h))), "gelu_twice")


# --------------------------------------------------------------------------------------------
# masked_product: a thresholded mask, the delta mask twice
# --------------------------------------------------------------------------------------------
def product(mask_fn=lambda m: m, dm_on_a=False):
    def impl(a, W, U, V, mask, delta_mask):
        dm = delta_mask[..., None]
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C") * mask_fn(mask)
        out = einops.einsum(inner, U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + dm * ein(dm * a if dm_on_a else a, W - U @ V)

    return impl


@pytest.mark.parametrize(
    ("impl", "code"),
    [(product(mask_fn=lambda m: (m > 0.5).float()), "mask_thresholded"), (product(dm_on_a=True), "delta_mask_twice")],
)
def test_product_fresh7_mistakes_are_named(impl, code):
    assert_fails(checks.test_masked_product, impl, code)


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: L = 4 matrices, 3 instances, a batch of 7
# --------------------------------------------------------------------------------------------
def recon(divisor=None, layer_target=None, layer_masks=None):
    def impl(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def run(layers, m=masks):
            f = lambda layer, a: (
                ref.masked_product(a, chain.weights[layer], U[layer], V[layer], m[layer], dms[layer])
                if layer in layers
                else ein(a, chain.weights[layer])
            )
            return chain(x, f)

        loss = lambda y, t: (y - t).pow(2).mean((0, 2)).sum()
        y_full = run(set(range(L)))
        t = layer_target(target, y_full) if layer_target else target
        m = layer_masks(masks) if layer_masks else masks
        total = sum(loss(run({layer}, m), t) for layer in range(L))
        return loss(y_full, target), total / (divisor(chain, x) if divisor else L)

    return impl


@pytest.mark.parametrize(
    ("impl", "said"),
    [
        (recon(divisor=lambda chain, x: len(chain.weights[0])), "divided by 12 (instances) where 4 (the L = 4"),
        (recon(divisor=lambda chain, x: len(x)), "divided by 7 (the batch) where 4 (the L = 4"),
    ],
)
def test_recon_layerwise_divisor_is_named(impl, said):
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, impl, "scale")
    assert said in failure.hint


def test_recon_layerwise_against_masked_output_is_named():
    impl = recon(layer_target=lambda target, y_full: y_full.detach())
    assert_fails(checks.test_stochastic_reconstruction_losses, impl, "layerwise_vs_masked")


def test_recon_unexplained_layerwise_lists_causes():
    """The layerwise runs get every mask halved: nothing names it, so the hint says what was seen (the full loss
    right, the layerwise one not) and where to look, instead of 'an edge case' of one slice."""
    impl = recon(layer_masks=lambda masks: [m * 0.5 for m in masks])
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, impl, "layerwise_loss")
    assert "masks[l]" in failure.hint and "edge case" not in failure.hint
    assert "possible causes" not in failure.hint  # its average, target or matrix: none of them is the halved masks


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: the power distributed, or taken after the sum per matrix
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (lambda ci, p, eps=1e-12: sum((g.pow(p) + eps**p).sum(-1) for g in ci).mean(0).sum(), "pow_distributed"),
        (lambda ci, p, eps=1e-12: sum((g + eps).sum(-1).pow(p) for g in ci).mean(0).sum(), "p_outside"),
    ],
)
def test_minimality_fresh7_mistakes_are_named(impl, code):
    assert_fails(checks.test_importance_minimality_loss, impl, code)


# --------------------------------------------------------------------------------------------
# adversarial_sources: sources updated one after the other, a step size that changes
# --------------------------------------------------------------------------------------------
def adversarial(order):
    """Each source stepped in turn, from a gradient taken after the earlier ones moved (Gauss-Seidel)."""

    def impl(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            for i in order(len(s)):
                leaf = s[i].clone().requires_grad_(True)
                (g,) = torch.autograd.grad(loss_fn([leaf if j == i else x for j, x in enumerate(s)]), [leaf])
                s[i] = (s[i] + step_size * g.sign()).clamp(0, 1)
        return s

    return impl


@pytest.mark.parametrize("order", [lambda n: range(n), lambda n: reversed(range(n))])
def test_adversarial_sequential_updates_are_named(order):
    assert_fails(checks.test_adversarial_sources, adversarial(order=order), "sequential_updates")


def decayed(loss_fn, init, n_steps, step_size):
    """step_size / (t + 1): the moves leave the lattice of whole steps."""
    s = [t.detach().clone() for t in init]
    for t in range(n_steps):
        s = [x.requires_grad_(True) for x in s]
        gs = torch.autograd.grad(loss_fn(s), s)
        s = [(x.detach() + step_size / (t + 1) * g.sign()).clamp(0, 1) for x, g in zip(s, gs, strict=True)]
    return s


def test_adversarial_decaying_step_is_observed():
    failure = assert_fails(checks.test_adversarial_sources, decayed, "off_lattice")
    assert "step_size / (t + 1)" in failure.hint
