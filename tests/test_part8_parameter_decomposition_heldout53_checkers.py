"""Proofs for part 8 after held-out round AZ (fresh53).

* sample_masks: a matrix whose mask is g itself (no draw reached it) is named `mask_is_g` (it was read as a coin
  flip); m = g ** r (a log-scale interpolation) is read back from the law of log(m) / log(g) (`geometric`; it was
  blamed on a clamp).
* faithfulness_loss: N = Σ_l (d_out + d_in) is named among the counts; the root of the loss averaged over the
  instances is read back (`root_of_instance_mean`; the generic hint listed causes none of which it was).
* ablation_losses: the change measured at the first matrix's product, (T_k x)², is read back (`product_change`);
  a slip in the ablated matrix together with one in the reduction is named as both (`two_slips`).
* stochastic_reconstruction_losses: both losses off by their own reduction factors (a sum over output dims, and
  the layerwise losses summed over the matrices) is named as both (`loss_factors`).
* masked_product: a mask slip with a delta slip (1 - mask and the delta mask left out) is named as both.
* adversarial_sources: a step-count slip with a step slip (n_steps - 1 steps of descent) is named as both.
* importance_minimality_loss: an eps slip with a reduction slip (eps once per matrix's sum, a mean over the
  matrices) is named as both.
* svd_terms: σ / Σσ with the order reversed (smallest first) is named as both slips.
* The round's correct variants pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _mm(a, W):
    return einops.einsum(a, W, "b i d, i o d -> b i o")


# ---------------------------------------------------------------- sample_masks
def _masks_first_only(cis):
    ms = [cis[0] + (1 - cis[0]) * torch.rand_like(cis[0]), *cis[1:]]
    return ms, [torch.rand_like(g[..., 0]) for g in cis]


def _masks_geometric(cis):
    return [g ** torch.rand_like(g) for g in cis], [torch.rand_like(g[..., 0]) for g in cis]


def test_sample_masks_names_an_undrawn_mask():
    failure = assert_fails(checks.test_sample_masks, _masks_first_only, "mask_is_g")
    assert "coin flip" not in failure.hint


def test_sample_masks_names_a_geometric_interpolation():
    failure = assert_fails(checks.test_sample_masks, _masks_geometric, "geometric")
    assert "clamp" not in failure.hint


def _masks_one_minus(cis):
    return [1 - (1 - g) * torch.rand_like(g) for g in cis], [
        torch.rand(g.shape[:-1], dtype=g.dtype, device=g.device) for g in cis
    ]


def _masks_lerp_delta_first(cis):
    d = [torch.rand(g.shape[:-1], dtype=g.dtype, device=g.device) for g in cis]
    return [torch.lerp(g, torch.ones_like(g), torch.rand_like(g)) for g in cis], d


def _masks_delta_column(cis):
    return [g + (1 - g) * torch.rand_like(g) for g in cis], [torch.rand_like(g)[..., 0] for g in cis]


def _masks_distribution(cis):
    ms = [torch.distributions.Uniform(g, torch.ones_like(g), validate_args=False).rsample() for g in cis]
    return ms, [torch.distributions.Uniform(0.0, 1.0).sample(g.shape[:-1]).to(g) for g in cis]


def test_sample_masks_accepts_the_rounds_variants():
    for impl in (_masks_one_minus, _masks_lerp_delta_first, _masks_delta_column, _masks_distribution):
        assert_passes(checks.test_sample_masks, impl)


# ---------------------------------------------------------------- faithfulness_loss
def _faith_n_plus(weights, U, V):
    err = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    return (err / sum(W.shape[-1] + W.shape[-2] for W in weights)).sum()


def _faith_mean_sqrt(weights, U, V):
    err = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    return (err / sum(W[0].numel() for W in weights)).mean(0).sqrt()


def test_faithfulness_names_a_sum_of_sizes():
    failure = assert_fails(checks.test_faithfulness_loss, _faith_n_plus, "wrong_count")
    assert "d_out + d_in" in failure.hint


def test_faithfulness_names_the_root_of_an_instance_mean():
    assert_fails(checks.test_faithfulness_loss, _faith_mean_sqrt, "root_of_instance_mean")


def _faith_cat(weights, U, V):
    d = torch.cat(
        [(W - torch.einsum("ioc,icd->iod", u, v)).flatten(1) for W, u, v in zip(weights, U, V, strict=True)], 1
    )
    return d.pow(2).mean(1).sum()


def _faith_matrix_norm(weights, U, V):
    tot = torch.stack(
        [torch.linalg.matrix_norm(W - torch.bmm(u, v)) ** 2 for W, u, v in zip(weights, U, V, strict=True)]
    ).sum(0)
    return tot.sum() / sum(W.shape[-1] * W.shape[-2] for W in weights)


def test_faithfulness_accepts_the_rounds_variants():
    for impl in (_faith_cat, _faith_matrix_norm):
        assert_passes(checks.test_faithfulness_loss, impl)


# ---------------------------------------------------------------- ablation_losses
def _abl_product_change(chain, terms, x):
    out = [_mm(x, terms[:, k]).pow(2).mean(-1) for k in range(terms.shape[1])]
    return torch.stack(out).permute(2, 0, 1)


def _abl_cumulative_summed(chain, terms, x):
    original, W0, out = chain(x), chain.weights[0], []
    for k in range(terms.shape[1]):
        W0 = W0 - terms[:, k]
        y = chain(x, lambda n, a, W0=W0: _mm(a, W0 if n == 0 else chain.weights[n]))
        out.append((y - original).pow(2).sum(-1))
    return torch.stack(out).permute(2, 0, 1)


def _abl_added_distance(chain, terms, x):
    original, out = chain(x), []
    for k in range(terms.shape[1]):
        W = chain.weights[0] + terms[:, k]
        out.append((chain(x, lambda n, a, W=W: _mm(a, W if n == 0 else chain.weights[n])) - original).norm(dim=-1))
    return torch.stack(out).permute(2, 0, 1)


def test_ablation_names_the_first_products_change():
    assert_fails(checks.test_ablation_losses, _abl_product_change, "product_change")


def test_ablation_names_two_slips():
    failure = assert_fails(checks.test_ablation_losses, _abl_cumulative_summed, "two_slips")
    assert "cumulatively" in failure.hint and "sum over output dims" in failure.hint
    failure = assert_fails(checks.test_ablation_losses, _abl_added_distance, "two_slips")
    assert "added" in failure.hint and "Euclidean" in failure.hint


def _abl_permute(chain, terms, x):
    original, out = chain(x), []
    for k in range(terms.shape[1]):
        Wk = chain.weights[0] - terms[:, k]
        y = chain(x, lambda n, a, Wk=Wk: _mm(a, Wk if n == 0 else chain.weights[n]))
        out.append((y - original).pow(2).mean(-1))
    return torch.stack(out).permute(2, 0, 1)


def test_ablation_accepts_the_rounds_variant():
    assert_passes(checks.test_ablation_losses, _abl_permute)


# ---------------------------------------------------------------- other correct variants of the round
def _svd_projection(W):
    _, S_, Vh = torch.linalg.svd(W, full_matrices=False)
    return torch.stack([W @ Vh[:, k, :, None] @ Vh[:, k, None, :] for k in range(S_.shape[-1])], 1)


def _svd_left_projector(W):
    U, S_, _ = torch.linalg.svd(W, full_matrices=False)
    return torch.stack([U[:, :, k, None] @ U[:, None, :, k] @ W for k in range(S_.shape[-1])], 1)


def test_svd_terms_accepts_projections():
    for impl in (_svd_projection, _svd_left_projector):
        assert_passes(checks.test_svd_terms, impl)


def _im_vector_norm(cis, p, eps=1e-12):
    return torch.linalg.vector_norm(torch.cat(cis, -1) + eps, ord=p, dim=-1).pow(p).mean(0).sum()


def test_minimality_accepts_a_vector_norm():
    assert_passes(checks.test_importance_minimality_loss, _im_vector_norm)


class _CIMatmul(S.CausalImportance):
    def forward(self, a, V):
        h = (a.unsqueeze(-2) @ V.mT).squeeze(-2)
        z = torch.einsum("bicj,icj->bic", F.gelu(h.unsqueeze(-1) * self.w_in + self.b_in), self.w_out) + self.b_out
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


def test_causal_importance_accepts_a_batched_matmul():
    assert_passes(checks.test_causal_importance, _CIMatmul)


# ---------------------------------------------------------------- stochastic_reconstruction_losses
def _recon(chain, U, V, x, masks, dms, reduce, layerwise_sum):
    target, n = chain(x), len(chain.weights)

    def run(layers):
        def fn(layer, a):
            if layer in layers:
                return S.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], dms[layer])
            return _mm(a, chain.weights[layer])

        return reduce(chain(x, fn) - target)

    total = sum(run({layer}) for layer in range(n))
    return run(set(range(n))), total if layerwise_sum else total / n


def _recon_two_factors(chain, U, V, x, masks, dms):
    return _recon(chain, U, V, x, masks, dms, lambda d: d.pow(2).sum(-1).mean(0).sum(), True)


def _recon_target_from_ones(chain, U, V, x, masks, dms):
    def run(layers, ones=False):
        def fn(layer, a):
            if ones or layer in layers:
                m = torch.ones_like(masks[layer]) if ones else masks[layer]
                d = torch.ones_like(dms[layer]) if ones else dms[layer]
                return S.masked_product(a, chain.weights[layer], U[layer], V[layer], m, d)
            return _mm(a, chain.weights[layer])

        return chain(x, fn)

    target, n = run(set(), ones=True), len(chain.weights)
    loss = lambda y: (y - target).pow(2).mean(0).mean(-1).sum()
    return loss(run(set(range(n)))), sum(loss(run({layer})) for layer in range(n)) / n


def test_recon_names_two_factors():
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, _recon_two_factors, "loss_factors")
    assert "output dims" in failure.hint and "L = " in failure.hint


def test_recon_accepts_a_target_from_masks_of_ones():
    assert_passes(checks.test_stochastic_reconstruction_losses, _recon_target_from_ones)


# ---------------------------------------------------------------- masked_product
def _product_inverted_whole_delta(a, W, U, V, m, dm):
    inner = einops.einsum(a, V, "b i d, i c d -> b i c")
    return einops.einsum(inner * (1 - m), U, "b i c, i o c -> b i o") + _mm(a, W - U @ V)


def _product_full_matrix(a, W, U, V, m, dm):
    Wp = einops.einsum(U, m, V, "i o c, b i c, i c d -> b i o d") + dm[..., None, None] * (W - U @ V)
    return einops.einsum(Wp, a, "b i o d, b i d -> b i o")


def test_masked_product_names_two_slips():
    failure = assert_fails(checks.test_masked_product, _product_inverted_whole_delta, "two_slips")
    assert "inverted" in failure.hint and "delta mask left out" in failure.hint


def test_masked_product_accepts_a_per_example_matrix():
    assert_passes(checks.test_masked_product, _product_full_matrix)


# ---------------------------------------------------------------- adversarial_sources
def _adv_descent_short(loss_fn, init, n_steps, step_size):
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps - 1):
        s = [x.requires_grad_(True) for x in s]
        gs = torch.autograd.grad(loss_fn(s), s)
        with torch.no_grad():
            s = [(x - step_size * g.sign()).clamp(0, 1) for x, g in zip(s, gs, strict=True)]
    return [x.detach() for x in s]


def _adv_backward_inplace(loss_fn, init, n_steps, step_size):
    s = [t.detach().clone().requires_grad_(True) for t in init]
    for _ in range(n_steps):
        for x in s:
            x.grad = None
        loss_fn(s).backward()
        with torch.no_grad():
            for x in s:
                x.add_(step_size * torch.sgn(x.grad)).clamp_(0, 1)
    return [x.detach().clone() for x in s]


def test_adversarial_names_two_slips():
    failure = assert_fails(checks.test_adversarial_sources, _adv_descent_short, "two_slips")
    assert "one step short" in failure.hint and "descent" in failure.hint


def test_adversarial_accepts_backward_in_place():
    assert_passes(checks.test_adversarial_sources, _adv_backward_inplace)


# ---------------------------------------------------------------- importance_minimality_loss, svd_terms
def _penalty_eps_once_layer_mean(cis, p, eps=1e-12):
    return (sum(g.pow(p).sum(-1) + eps for g in cis) / len(cis)).mean(0).sum()


def test_minimality_names_two_slips():
    failure = assert_fails(checks.test_importance_minimality_loss, _penalty_eps_once_layer_mean, "two_slips")
    assert "each matrix's sum" in failure.hint and "mean over the matrices" in failure.hint


def _svd_shares(W):
    U, S_, Vh = torch.linalg.svd(W, full_matrices=False)
    return einops.einsum(U, S_ / S_.sum(-1, keepdim=True), Vh, "i o r, i r, i r d -> i r o d")


def _svd_shares_ascending(W):
    return _svd_shares(W).flip(1)


def test_svd_names_normalised_singular_values_reversed():
    failure = assert_fails(checks.test_svd_terms, _svd_shares_ascending, "two_slips")
    assert "smallest singular value first" in failure.hint
