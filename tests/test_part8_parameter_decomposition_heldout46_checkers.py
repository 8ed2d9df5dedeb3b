"""Proofs for part 8 after the fresh46 round: the squared difference of |outputs| on a chain with no last
activation (`abs_difference`), the linearity shortcut chain(-T_k alone) - chain(0) (`linearity_shortcut`), a delta
mask drawn as the max (or min) of C uniforms (`delta_order_statistic`), the target taken from the fully masked run
(`target_masked_run`), and the round's correct variants."""

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
