"""Proofs for part 8 after the fresh46 round: the squared difference of |outputs| on a chain with no last
activation (`abs_difference`), the linearity shortcut chain(-T_k alone) - chain(0) (`linearity_shortcut`), a
delta mask drawn as the max (or min) of C uniforms (the hint also lists r^(1/k), the same law), the target taken
from the fully masked run (`target_masked_run`), and the round's correct variants."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _mm(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# ablation_losses
# --------------------------------------------------------------------------------------------
def abl_abs_diff(chain, terms, x):
    original = chain(x)
    out = []
    for k in range(terms.shape[1]):
        Wk = chain.weights[0] - terms[:, k]
        fn = lambda l, a, Wk=Wk: _mm(a, Wk if l == 0 else chain.weights[l])  # noqa: E741
        out.append((chain(x, fn).abs() - original.abs()).pow(2).mean(-1))
    return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")


def test_diff_of_magnitudes_named():
    err = assert_fails(checks.test_ablation_losses, abl_abs_diff, "abs_difference")
    assert "|outputs|" in err.hint and "negative" in err.hint


def abl_relu_diff(chain, terms, x):
    original = chain(x).relu()
    out = []
    for k in range(terms.shape[1]):
        Wk = chain.weights[0] - terms[:, k]
        fn = lambda l, a, Wk=Wk: _mm(a, Wk if l == 0 else chain.weights[l])  # noqa: E741
        out.append((chain(x, fn).relu() - original).pow(2).mean(-1))
    return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")


def test_relu_of_outputs_named():
    assert_fails(checks.test_ablation_losses, abl_relu_diff, "relu_difference")


def _abl_linear(sign):
    def impl(chain, terms, x):
        out = []
        base = lambda l, a: _mm(a, torch.zeros_like(chain.weights[0]) if l == 0 else chain.weights[l])  # noqa: E741
        for k in range(terms.shape[1]):
            fn = lambda l, a, k=k: _mm(a, sign * terms[:, k] if l == 0 else chain.weights[l])  # noqa: E741
            out.append((chain(x, fn) - chain(x, base)).pow(2).mean(-1))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return impl


def test_linearity_shortcut_named():
    err = assert_fails(checks.test_ablation_losses, _abl_linear(-1.0), "linearity_shortcut")
    assert "-T_k alone" in err.hint and "linear" in err.hint


def test_linearity_shortcut_plus_term_named():
    assert_fails(checks.test_ablation_losses, _abl_linear(1.0), "linearity_shortcut")


def abl_mse_none(chain, terms, x):
    y0 = chain(x)
    runs = [
        chain(x, lambda l, a, k=k: _mm(a, chain.weights[0] - terms[:, k] if l == 0 else chain.weights[l]))  # noqa: E741
        for k in range(terms.shape[1])
    ]
    return torch.stack([F.mse_loss(y, y0, reduction="none").mean(-1) for y in runs], -1).permute(1, 2, 0)


def test_ablation_mse_none_passes():
    assert_passes(checks.test_ablation_losses, abl_mse_none)


def test_ablation_reference_passes():
    assert_passes(checks.test_ablation_losses, S.ablation_losses)


# --------------------------------------------------------------------------------------------
# sample_masks
# --------------------------------------------------------------------------------------------
def _masks_delta(reduce):
    def impl(cis):
        rs = [torch.rand_like(g) for g in cis]
        return [g + (1 - g) * r for g, r in zip(cis, rs, strict=True)], [reduce(torch.rand_like(g)) for g in cis]

    return impl


def test_delta_max_over_c_named():
    err = assert_fails(checks.test_sample_masks, _masks_delta(lambda t: t.amax(-1)), "delta_not_uniform")
    assert "k = 4" in err.message and "= C" in err.message and ".amax(-1)" in err.hint and "r ** (1 / 4)" in err.hint


def test_delta_min_over_c_named():
    err = assert_fails(checks.test_sample_masks, _masks_delta(lambda t: t.amin(-1)), "delta_not_uniform")
    assert "smallest" in err.message and ".amin(-1)" in err.hint


def test_delta_sqrt_of_uniform_lists_both():
    err = assert_fails(checks.test_sample_masks, _masks_delta(lambda t: t[..., 0] ** 0.5), "delta_not_uniform")
    assert "k = 2" in err.message and "r ** (1 / 2)" in err.hint and ".amax(-1)" in err.hint


def masks_one_minus(cis):
    return (
        [1 - (1 - g) * torch.rand_like(g) for g in cis],
        [1 - torch.rand(g.shape[:-1], dtype=g.dtype, device=g.device) for g in cis],
    )


def masks_uniform_dist(cis):
    m = [torch.distributions.Uniform(g, torch.ones_like(g), validate_args=False).rsample() for g in cis]
    return m, [torch.empty(g.shape[:-1], dtype=g.dtype, device=g.device).uniform_() for g in cis]


def test_masks_correct_variants_pass():
    assert_passes(checks.test_sample_masks, masks_one_minus)
    assert_passes(checks.test_sample_masks, masks_uniform_dist)


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses
# --------------------------------------------------------------------------------------------
def _recon(target):
    def impl(chain, U, V, x, masks, dms):
        tgt = target(chain, U, V, x, masks, dms)
        n = len(chain.weights)

        def run(on):
            fn = lambda l, a: (  # noqa: E741
                S.masked_product(a, chain.weights[l], U[l], V[l], masks[l], dms[l])
                if l in on
                else _mm(a, chain.weights[l])
            )
            return (chain(x, fn) - tgt).pow(2).mean((0, 2)).sum()

        return run(set(range(n))), sum(run({l}) for l in range(n)) / n  # noqa: E741

    return impl


def _target_masked(ones):
    def target(chain, U, V, x, masks, dms):
        pick = (lambda t: torch.ones_like(t)) if ones else (lambda t: t)
        fn = lambda l, a: S.masked_product(a, chain.weights[l], U[l], V[l], pick(masks[l]), pick(dms[l]))  # noqa: E741
        return chain(x, fn).detach() if not ones else chain(x, fn)

    return target


def test_target_is_masked_run_detached_named():
    err = assert_fails(checks.test_stochastic_reconstruction_losses, _recon(_target_masked(False)), "target_masked_run")
    assert "full loss is 0" in err.hint


def test_target_masks_and_delta_one_passes():
    assert_passes(checks.test_stochastic_reconstruction_losses, _recon(_target_masked(True)))
