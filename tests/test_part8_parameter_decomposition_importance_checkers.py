"""Proofs for part 8's checkers (pairings, reductions and transforms, the fresh28 round): causal importances centred
over the batch or depending on the other examples in it, b_out reduced over an axis, a power of the masks in
masked_product, the masks paired with the wrong matrices, a soft maximum over the subcomponents in the minimality
penalty, and adversarial sources rounded, binarised or clamped (also seen by the n_steps = 0 probe)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def _ci(h_fn=None, z_fn=None):
    class CausalImportance(sol.CausalImportance):
        def forward(self, a, V):
            h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
            h = h_fn(h, a, V) if h_fn else h
            hidden = F.gelu(h[..., None] * self.w_in + self.b_in)
            z = z_fn(self, hidden) if z_fn else (hidden * self.w_out).sum(-1) + self.b_out
            return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CausalImportance


def test_inputs_centred_over_the_batch_are_named_and_batch_dependence_is_seen():
    centred = _ci(h_fn=lambda h, a, V: einops.einsum(a - a.mean(0), V, "batch inst d_in, inst C d_in -> batch inst C"))
    assert "a - a.mean(0)" in assert_fails(checks.test_causal_importance, centred, code="batch_centred").hint
    scaled = _ci(h_fn=lambda h, a, V: h + 0.5 * h.mean(0, keepdim=True))  # nobody listed
    assert (
        "other examples in its batch"
        in assert_fails(checks.test_causal_importance, scaled, code="batch_dependent").hint
    )
    assert_passes(checks.test_causal_importance, _ci())


def test_b_out_reduced_over_an_axis_is_named():
    for reduce, axis in ((torch.sum, -1), (torch.mean, -1), (torch.sum, 0)):
        fn = _ci(z_fn=lambda s, hid, r=reduce, x=axis: (hid * s.w_out).sum(-1) + r(s.b_out, x, keepdim=True))
        assert "b_out" in assert_fails(checks.test_causal_importance, fn, code="bias_reduced").hint


def _product(inner_fn=lambda inner, m: inner * m, dm_fn=lambda d: d):
    def masked_product(a, W, U, V, mask, delta_mask):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner_fn(inner, mask), U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + dm_fn(delta_mask)[..., None] * einops.einsum(a, W - U @ V, EIN)

    return masked_product


def test_a_power_of_the_masks_is_named():
    hint = assert_fails(checks.test_masked_product, _product(lambda i, m: i * m.sqrt()), code="mask_power").hint
    assert "√mask" in hint and "subcomponent masks" in hint
    assert (
        "delta mask"
        in assert_fails(checks.test_masked_product, _product(dm_fn=lambda d: d.sqrt()), code="mask_power").hint
    )
    assert_passes(checks.test_masked_product, _product())


def _recon(order, keys=("masks", "delta_masks")):
    def stochastic_reconstruction_losses(chain, U, V, x, masks, delta_masks):
        L, target = len(chain.weights), chain(x)
        lists = {"masks": masks, "delta_masks": delta_masks}
        m, d = ([lists[k][order(n, L)] if k in keys else lists[k][n] for n in range(L)] for k in lists)

        def loss(layers):
            fn = lambda n, a: (
                sol.masked_product(a, chain.weights[n], U[n], V[n], m[n], d[n])
                if n in layers
                else einops.einsum(a, chain.weights[n], EIN)
            )
            return (chain(x, fn) - target).pow(2).mean((0, 2)).sum()

        return loss(set(range(L))), sum(loss({n}) for n in range(L)) / L

    return stochastic_reconstruction_losses


def test_masks_paired_with_the_wrong_matrices_are_named():
    rev = assert_fails(
        checks.test_stochastic_reconstruction_losses, _recon(lambda n, L: L - 1 - n), code="masks_permuted"
    )
    assert "reversed" in rev.hint and "masks and delta masks" in rev.hint
    shifted = _recon(lambda n, L: (n + 1) % L, keys=("masks",))
    hint = assert_fails(checks.test_stochastic_reconstruction_losses, shifted, code="masks_permuted").hint
    assert "your masks are paired" in hint and "[1, 2, 3, 0]" in hint
    assert_passes(checks.test_stochastic_reconstruction_losses, _recon(lambda n, L: n))


def test_a_soft_maximum_over_the_subcomponents_is_named():
    lse = lambda ci, p, eps: sum(torch.logsumexp((g + eps) ** p, -1) for g in ci).mean(0).sum()
    assert "logsumexp" in assert_fails(checks.test_importance_minimality_loss, lse, code="softmax_reduction").hint
    top = lambda ci, p, eps: sum(((g + eps) ** p).amax(-1) for g in ci).mean(0).sum()
    assert "maximum" in assert_fails(checks.test_importance_minimality_loss, top, code="max_reduction").hint


def _ascent(post, factor=1.0):
    def adversarial_sources(loss_fn, init, n_steps, step_size):
        src = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            gs = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                src = [(s + factor * step_size * g.sign()).clamp(0, 1) for s, g in zip(src, gs, strict=True)]
        return [post(s.detach()) for s in src]

    return adversarial_sources


def test_rounded_binarised_or_clamped_sources_are_named_not_a_start_elsewhere():
    rounded = assert_fails(checks.test_adversarial_sources, _ascent(torch.round), code="sources_rounded")
    assert "rounded" in rounded.hint
    # the ascent also wrong (steps doubled): only the n_steps = 0 probe can tell, and it sees init rounded
    probe = assert_fails(checks.test_adversarial_sources, _ascent(torch.round, 2.0), code="sources_rounded")
    assert "init rounded" in probe.message
    binarised = _ascent(lambda s: (s > 0.3).to(s.dtype), 2.0)
    assert "binarised" in assert_fails(checks.test_adversarial_sources, binarised, code="sources_binarised").hint
    clamped = _ascent(lambda s: s.clamp(0.2, 0.8), 2.0)
    assert "clamped" in assert_fails(checks.test_adversarial_sources, clamped, code="sources_clamped").message
    assert_passes(checks.test_adversarial_sources, _ascent(lambda s: s))
