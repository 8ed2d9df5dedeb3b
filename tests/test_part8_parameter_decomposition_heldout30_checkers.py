"""Proofs for part 8's checkers: slips in a result's structure (`part8_parameter_decomposition_structure_slips`):
the given column_terms for the SVD, a reshape for a transpose, the last ablation as baseline, a squeezed result,
b_in multiplied, one draw reused for every matrix, the delta added like a bias, a max over matrices, a gradient
reduced over an axis and clamp bounds other than (0, 1); correct variants written differently pass."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
import utils.part8_parameter_decomposition as spd
from tests.proving import assert_fails, assert_passes


def svd_reshape_view(W):
    i, o, d = W.shape
    U, S, Vh = torch.linalg.svd(W.reshape(i, d, o), full_matrices=False)
    t = einops.einsum(U, S, Vh, "i a r, i r, i r b -> i r a b")
    return t.reshape(i, t.shape[1], o, d)


def abl_baseline_last(chain, terms, x):
    outs = []
    for k in range(terms.shape[1]):
        Wk = chain.weights[0] - terms[:, k]
        fn = lambda n, a, Wk=Wk: einops.einsum(a, Wk if n == 0 else chain.weights[n], "b i d, i o d -> b i o")
        outs.append(chain(x, fn))
    return einops.rearrange(torch.stack([(y - outs[-1]).pow(2).mean(-1) for y in outs]), "k b i -> i k b")


def ci_class(zfn):
    class CI(ref.CausalImportance):
        def forward(self, a, V):
            z = zfn(self, einops.einsum(a, V, "b i d, i c d -> b i c"))
            return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CI


def masks_shared(cis):
    r = torch.rand_like(cis[0])
    return [g + (1 - g) * r for g in cis], [torch.rand(g.shape[:-1], device=g.device) for g in cis]


def masks_per_matrix(cis):  # correct: r drawn afresh for each matrix, with torch.rand(shape)
    draw = lambda shape, g: torch.rand(shape, dtype=g.dtype, device=g.device)
    return [g + (1 - g) * draw(g.shape, g) for g in cis], [draw(g.shape[:-1], g) for g in cis]


def mp_delta_bias(a, W, U, V, mask, dm):
    out = einops.einsum(einops.einsum(a, V, "b i d, i c d -> b i c") * mask, U, "b i c, i o c -> b i o")
    return out + dm[..., None] * (W - U @ V).sum(-1)[None]


def min_max(cis, p, eps=1e-12):
    return torch.stack([(g + eps).pow(p).sum(-1) for g in cis]).max(0).values.mean(0).sum()


def adversarial(direction, lo=0.0, hi=1.0):
    def impl(loss_fn, init, n_steps, step_size):
        s = [x.detach().clone() for x in init]
        for _ in range(n_steps):
            s = [x.requires_grad_(True) for x in s]
            gs = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                s = [
                    (x + step_size * direction(g)).clamp(lo if lo is not None else step_size, hi)
                    for x, g in zip(s, gs, strict=True)
                ]
        return [x.detach() for x in s]

    return impl


@pytest.mark.parametrize(
    "check, impl, code",
    [
        (checks.test_svd_terms, spd.column_terms, "column_terms"),
        (checks.test_svd_terms, svd_reshape_view, "reshaped_not_transposed"),
        (checks.test_ablation_losses, abl_baseline_last, "baseline_last_ablation"),
        (checks.test_ablation_losses, lambda c, t, x: ref.ablation_losses(c, t, x).squeeze(), "squeezed"),
        (
            checks.test_causal_importance,
            ci_class(lambda s, h: (F.gelu(h[..., None] * s.w_in * s.b_in) * s.w_out).sum(-1) + s.b_out),
            "b_in_multiplied",
        ),
        (checks.test_sample_masks, masks_shared, "shared_draw"),
        (checks.test_masked_product, mp_delta_bias, "delta_as_bias"),
        (checks.test_importance_minimality_loss, min_max, "max_over_matrices"),
        (
            checks.test_adversarial_sources,
            adversarial(lambda g: g.sign().mean(0, keepdim=True).expand_as(g)),
            "grad_reduced_dim0",
        ),
        (checks.test_adversarial_sources, adversarial(torch.sign, lo=None), "clamp_bounds"),
    ],
)
def test_structure_slips_named(check, impl, code):
    assert_fails(check, impl, code)


@pytest.mark.parametrize(
    "check, impl",
    [
        (checks.test_sample_masks, masks_per_matrix),
        (checks.test_adversarial_sources, adversarial(torch.sign)),
        (
            checks.test_ablation_losses,
            lambda c, t, x: ref.ablation_losses(c, t.clone(), x).reshape(t.shape[0], t.shape[1], -1),
        ),
    ],
)
def test_structure_variants_pass(check, impl):
    assert_passes(check, impl)
