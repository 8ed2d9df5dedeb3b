"""Proofs for part 8's substitutes (round AF): the projectors u_k u_kᵀ / v_k v_kᵀ returned for the SVD terms, an
ablation compared with another baseline (the previous ablation, the batch-mean output) or under another loss (Huber,
Σ|Δ|), and adversarial steps of f × step_size read back from the sources' spacing."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def test_projectors_returned_for_the_svd_terms_are_named():
    def left(W):
        U = torch.linalg.svd(W, full_matrices=False)[0]
        return einops.einsum(U, U, "inst a r, inst b r -> inst r a b")

    def right(W):
        Vh = torch.linalg.svd(W, full_matrices=False)[2]
        return einops.einsum(Vh, Vh, "inst r a, inst r b -> inst r a b")

    assert "u_k u_kᵀ" in assert_fails(checks.test_svd_terms, left, code="projectors").hint
    assert "v_k v_kᵀ" in assert_fails(checks.test_svd_terms, right, code="projectors").hint

    def projected(W):  # u_k u_kᵀ W = σ_k u_k v_kᵀ: correct
        U = torch.linalg.svd(W, full_matrices=False)[0]
        return einops.einsum(U, U, "inst a r, inst b r -> inst r a b") @ W[:, None]

    assert_passes(checks.test_svd_terms, projected)


def _ablation(loss, baseline=lambda y: y, previous=False):
    def ablation_losses(chain, terms, x):
        ref, out = baseline(chain(x)), []
        for k in range(terms.shape[1]):
            Wk = chain.weights[0] - terms[:, k]
            y = chain(x, lambda layer, a, Wk=Wk: einops.einsum(a, Wk if layer == 0 else chain.weights[layer], EIN))
            out.append(loss(y, ref))
            ref = y if previous else ref
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return ablation_losses


def test_ablation_baselines_are_named():
    mse = lambda y, o: (y - o).pow(2).mean(-1)
    hint = assert_fails(checks.test_ablation_losses, _ablation(mse, previous=True), code="previous_baseline").hint
    assert "previous ablation" in hint
    batch_mean = _ablation(mse, baseline=lambda y: y.mean(0, keepdim=True))
    assert (
        "averaged over the batch"
        in assert_fails(checks.test_ablation_losses, batch_mean, code="batch_mean_baseline").hint
    )
    assert_passes(checks.test_ablation_losses, _ablation(mse))


def test_ablation_losses_read_under_other_losses_are_named():
    huber = _ablation(lambda y, o: F.smooth_l1_loss(y, o, reduction="none").mean(-1))
    assert "Huber" in assert_fails(checks.test_ablation_losses, huber, code="huber").hint
    l1 = _ablation(lambda y, o: (y - o).abs().sum(-1))
    assert "L1" in assert_fails(checks.test_ablation_losses, l1, code="sum_abs").hint


def _ascent(factor):
    def adversarial_sources(loss_fn, init, n_steps, step_size):
        src = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            gs = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                src = [(s + factor * step_size * g.sign()).clamp(0, 1) for s, g in zip(src, gs, strict=True)]
        return [s.detach() for s in src]

    return adversarial_sources


def test_adversarial_step_factor_is_read_back():
    hint = assert_fails(checks.test_adversarial_sources, _ascent(0.5), code="step_factor").hint
    assert "0.5 × step_size" in hint
    assert "2 × step_size" in assert_fails(checks.test_adversarial_sources, _ascent(2.0), code="step_factor").hint
    assert_passes(checks.test_adversarial_sources, _ascent(1.0))
