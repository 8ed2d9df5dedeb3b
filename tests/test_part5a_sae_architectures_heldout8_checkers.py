"""Proofs for part 5a's catalogue entries added after the fresh17 held-out measurement: FVE as the squared
correlation of h and h_rec, FVE's total without the 1/n, feature recovery with the decoder rows divided by their
largest |entry|, and with + 1 in the norms' denominators; an x-gradient of Heaviside or JumpReLU non-zero only inside
the window (grad_x_window), metrics computed on inputs reshaped instead of permuted."""

from __future__ import annotations

import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails


def test_fve_squared_correlation():
    def fve(h, h_rec):
        out = [
            torch.corrcoef(torch.stack([h[:, i].flatten(), h_rec[:, i].flatten()]))[0, 1] ** 2
            for i in range(h.shape[1])
        ]
        return torch.stack(out)

    assert_fails(checks.test_fraction_variance_explained, fve, "fve_correlation")


def test_fve_total_without_the_n():
    def fve(h, h_rec):
        total = (h.pow(2).sum(0) - h.sum(0).pow(2)).sum(-1)
        return 1 - (h - h_rec).pow(2).sum((0, 2)) / total

    failure = assert_fails(checks.test_fraction_variance_explained, fve, "fve_total_no_n")
    assert "/n" in failure.hint


def _recovery(dec_norm, eps):
    def feature_recovery(W_features, W_dec):
        f = W_features / (W_features.norm(dim=1, keepdim=True) + eps)
        d = W_dec / (dec_norm(W_dec) + eps)
        return torch.einsum("isd,idf->isf", d, f).amax(1)

    return feature_recovery


def test_recovery_decoder_divided_by_its_largest_entry():
    inf = lambda W: W.abs().amax(-1, keepdim=True)
    assert_fails(checks.test_feature_recovery, _recovery(inf, 1e-8), "dec_inf_norm")


def test_recovery_plus_one_in_the_denominators():
    l2 = lambda W: W.norm(dim=-1, keepdim=True)
    assert_fails(checks.test_feature_recovery, _recovery(l2, 1.0), "norm_plus_one")


def _with_grad_x(base: type, grad_x) -> type:
    """The reference step function `base` (its forward and θ-gradient) with `grad_x(x, θ, ε, window)` as the
    x-gradient."""

    def backward(ctx, g):
        x, threshold = ctx.saved_tensors
        window = ((x - threshold) / ctx.bandwidth).abs().lt(0.5).to(x.dtype)
        return grad_x(x, threshold, ctx.bandwidth, window) * g, base.backward(ctx, g)[1], None

    return type(base.__name__, (base,), {"backward": staticmethod(backward)})


def _jumprelu(grad_x):
    return _with_grad_x(A.JumpReLU, grad_x)


def _heaviside(grad_x):
    return _with_grad_x(A.Heaviside, grad_x)


def test_step_x_gradient_only_inside_the_window():
    failure = assert_fails(checks.test_jumprelu, _jumprelu(lambda x, th, bw, k: k), "grad_x_window")
    assert "K((x - θ)/ε) itself" in failure.message and "1[x > θ]" in failure.hint
    failure = assert_fails(checks.test_jumprelu, _jumprelu(lambda x, th, bw, k: k / bw), "grad_x_window")
    assert "1/ε = 10" in failure.message
    upper = lambda x, th, bw, k: k * (x > th).to(x.dtype)  # the step, but only within ε/2 of θ
    failure = assert_fails(checks.test_jumprelu, _jumprelu(upper), "grad_x_window")
    assert "0 below" in failure.message and "however far above θ" in failure.hint
    failure = assert_fails(checks.test_heaviside, _heaviside(lambda x, th, bw, k: k), "grad_x_window")
    assert "None or zeros" in failure.hint
    assert_fails(checks.test_heaviside, _heaviside(lambda x, th, bw, k: k / bw), "grad_x_rect")  # the catalogue's
    checks.test_jumprelu(_jumprelu(lambda x, th, bw, k: (x > th).to(x.dtype)))


def test_metrics_on_inputs_reshaped_not_permuted():
    def l0(acts):
        b, i, s = acts.shape
        return (acts.reshape(i, b, s) != 0).float().sum(-1).mean(1)

    failure = assert_fails(checks.test_l0_norm, l0, "reshaped_not_permuted")
    assert "[inst batch d_sae]" in failure.hint and ".permute(1, 0, 2)" in failure.hint

    def fve(h, h_rec):
        b, i, d = h.shape
        x, r = h.reshape(i, b, d), h_rec.reshape(i, b, d)
        return 1 - (x - r).pow(2).sum((1, 2)) / (x - x.mean(1, keepdim=True)).pow(2).sum((1, 2))

    failure = assert_fails(checks.test_fraction_variance_explained, fve, "reshaped_not_permuted")
    assert "h and h_rec reshaped to [inst batch d_in]" in failure.hint
