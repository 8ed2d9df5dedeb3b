"""Proofs for part 8 after held-out round BA (fresh54).

* sample_masks: a delta mask taken from another matrix's draws (rs[l + 1][..., 0], rs[-1 - l][..., -1]) was not
  caught; it is named `delta_reuse`.
* svd_terms: terms with W's own σ_k but vectors read from the wrong axis (after an SVD of W.mT, Vh's columns where
  its rows belong) were blamed on noise added to W (`perturbed_W`); they are named `vectors_mixed`.
* svd_terms: NaN terms where σ = 0 (an eigendecomposition route, v_k = Wᵀ u_k / σ_k) had an empty hint; the
  division by σ_k is named.
* leaky hard sigmoids: a leak slope of 1 / alpha or 1 + alpha was read back as a bare number (33.33, 1.03); both
  are named.
* masked_product: V's rows or U's columns normalised first gave the generic hint; the pieces' factors are fitted
  back (least squares per instance) and named (`pieces_rescaled`: 1/‖v_c‖, 1/‖u_c‖, ...).
* ablation_losses: a fraction of the term removed (W_0 - 0.5 T_k, alone or with a sum over output dims) and a mean
  ablation (W_0 - T_k + mean_k T_k) gave the generic hint; they are named (`term_fraction`, `mean_ablation`).
* importance_minimality_loss: a value off by √batch (a sum over the batch divided by √8) gave the formula; a factor
  √n or 1/√n of a reduction count is named (`root_count`).
* The round's correct variants pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


# ---------------------------------------------------------------- sample_masks
def _masks_delta_from_next(cis):
    rs = [torch.rand_like(g) for g in cis]
    return [g + (1 - g) * r for g, r in zip(cis, rs, strict=True)], [rs[(n + 1) % len(rs)][..., 0] for n in range(2)]


def _masks_delta_from_reversed(cis):
    rs = [torch.rand_like(g) for g in cis]
    return [g + (1 - g) * r for g, r in zip(cis, rs, strict=True)], [rs[-1 - n][..., -1] for n in range(len(cis))]


def test_sample_masks_names_a_delta_from_another_matrix():
    for impl in (_masks_delta_from_next, _masks_delta_from_reversed):
        failure = assert_fails(checks.test_sample_masks, impl, "delta_reuse")
        assert "matrix 1's masks" in failure.message


def _masks_r_plus(cis):
    out = []
    for g in cis:
        r = torch.empty_like(g).uniform_(0, 1)
        out.append(r + (1 - r) * g)
    return out, [torch.empty(g.shape[:-1], dtype=g.dtype, device=g.device).uniform_() for g in cis]


def _masks_one_draw_split(cis):
    rs = [torch.rand(*g.shape[:-1], g.shape[-1] + 1, dtype=g.dtype, device=g.device) for g in cis]
    return [g + (1 - g) * r[..., :-1] for g, r in zip(cis, rs, strict=True)], [r[..., -1] for r in rs]


def _masks_beta(cis):
    one = torch.tensor(1.0, dtype=cis[0].dtype, device=cis[0].device)
    law = torch.distributions.Beta(one, one)
    return [g + (1 - g) * law.rsample(g.shape) for g in cis], [law.sample(g.shape[:-1]) for g in cis]


def _masks_clamped_r(cis):
    rand = lambda shape, g: torch.rand(shape, dtype=g.dtype, device=g.device).clamp(1e-6, 1 - 1e-6)
    return [g + (1 - g) * rand(g.shape, g) for g in cis], [rand(g.shape[:-1], g) for g in cis]


def test_sample_masks_accepts_the_rounds_variants():
    for impl in (_masks_r_plus, _masks_one_draw_split, _masks_beta, _masks_clamped_r):
        assert_passes(checks.test_sample_masks, impl)


# ---------------------------------------------------------------- svd_terms
def _svd_of_transpose_vh_columns(W):
    U, s, Vh = torch.linalg.svd(W.mT, full_matrices=False)  # W = Vhᵀ S Uᵀ: u_k is row k of this Vh
    return torch.einsum("idk,ik,iko->ikod", U, s, Vh.mT)


def test_svd_terms_names_vectors_from_the_wrong_axis():
    failure = assert_fails(checks.test_svd_terms, _svd_of_transpose_vh_columns, "vectors_mixed")
    assert "noise" not in failure.hint


def _svd_of_transpose(W):
    U, s, Vh = torch.linalg.svd(W.mT, full_matrices=False)
    return torch.einsum("idk,ik,iko->ikod", U, s, Vh)


def _svd_loop_outer(W):
    out = []
    for i in range(W.shape[0]):
        U, s, Vh = torch.linalg.svd(W[i], full_matrices=False)
        out.append(torch.stack([s[k] * torch.outer(U[:, k], Vh[k]) for k in range(s.shape[0])]))
    return torch.stack(out)


def _svd_old_api_f64(W):
    U, s, V = torch.svd(W.double())
    return ((U * s[:, None, :]).mT[..., None] * V.mT[:, :, None, :]).to(W.dtype)


def test_svd_terms_accepts_the_rounds_variants():
    for impl in (_svd_of_transpose, _svd_loop_outer, _svd_old_api_f64):
        assert_passes(checks.test_svd_terms, impl)


# ---------------------------------------------------------------- leaky hard sigmoids
def _leaky(lower, slope_fn):
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)

    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        leak = slope_fn(ctx.alpha)
        if lower:
            return grad_output * torch.where(x < 0, leak, (x <= 1).to(x.dtype)), None
        return grad_output * torch.where(x > 1, leak, (x >= 0).to(x.dtype)), None

    name = "LowerLeakyHardSigmoid" if lower else "UpperLeakyHardSigmoid"
    return type(
        name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


def test_leaky_sigmoids_name_a_divided_or_added_leak():
    for lower in (True, False):
        check = checks.test_lower_leaky_hard_sigmoid if lower else checks.test_upper_leaky_hard_sigmoid
        assert "1 / alpha" in assert_fails(check, _leaky(lower, lambda a: 1 / a), "slope_regions").hint
        assert "1 + alpha" in assert_fails(check, _leaky(lower, lambda a: 1 + a), "slope_regions").hint


def _lower_clone_index():
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return torch.minimum(torch.maximum(x, torch.zeros_like(x)), torch.ones_like(x))

    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        g = grad_output.clone()
        g[x < 0] *= ctx.alpha
        g[x > 1] = 0
        return g, None

    members = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type("LowerLeakyHardSigmoid", (torch.autograd.Function,), members)


def _upper_hardtanh():
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return F.hardtanh(x, 0.0, 1.0)

    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        inside = ((x >= 0) & (x <= 1)).to(grad_output.dtype)
        return grad_output * (inside + ctx.alpha * (x > 1).to(grad_output.dtype)), None

    members = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type("UpperLeakyHardSigmoid", (torch.autograd.Function,), members)


def test_leaky_sigmoids_accept_the_rounds_variants():
    assert_passes(checks.test_lower_leaky_hard_sigmoid, _lower_clone_index())
    assert_passes(checks.test_upper_leaky_hard_sigmoid, _upper_hardtanh())


# ---------------------------------------------------------------- masked_product
def _product(a, W, U, V, mask, delta_mask):
    out = torch.einsum("bic,ioc->bio", torch.einsum("bid,icd->bic", a, V) * mask, U)
    return out + delta_mask[..., None] * torch.einsum("bid,iod->bio", a, W - U @ V)


def _product_v_normalised(a, W, U, V, mask, delta_mask):
    return _product(a, W, U, V / V.norm(dim=-1, keepdim=True), mask, delta_mask)


def _product_u_normalised(a, W, U, V, mask, delta_mask):
    return _product(a, W, U / U.norm(dim=-2, keepdim=True), V, mask, delta_mask)


def test_masked_product_names_rescaled_pieces():
    hint = assert_fails(checks.test_masked_product, _product_v_normalised, "pieces_rescaled").hint
    assert "V's rows normalised" in hint
    hint = assert_fails(checks.test_masked_product, _product_u_normalised, "pieces_rescaled").hint
    assert "U's columns normalised" in hint


def _product_explicit_matrix(a, W, U, V, mask, delta_mask):
    Wm = torch.einsum("ioc,bic,icd->biod", U, mask, V) + delta_mask[..., None, None] * (W - U @ V)[None]
    return torch.einsum("biod,bid->bio", Wm, a)


def _product_linearity(a, W, U, V, mask, delta_mask):
    inner = torch.einsum("bid,icd->bic", a, V)
    uv_a, w_a = torch.einsum("bic,ioc->bio", inner, U), torch.einsum("bid,iod->bio", a, W)
    return torch.einsum("bic,ioc->bio", inner * mask, U) + delta_mask.unsqueeze(-1) * (w_a - uv_a)


def _product_mask_into_u(a, W, U, V, mask, delta_mask):
    Um = U[None] * mask[:, :, None, :]
    delta = torch.einsum("iod,bid->bio", W - U @ V, a)
    return torch.einsum("bioc,icd,bid->bio", Um, V, a) + delta_mask[..., None] * delta


def test_masked_product_accepts_the_rounds_variants():
    for impl in (_product_explicit_matrix, _product_linearity, _product_mask_into_u):
        assert_passes(checks.test_masked_product, impl)


# ---------------------------------------------------------------- ablation_losses
def _abl(c=1.0, reduce=lambda d: d.mean(-1), mean_ablation=False):
    def ablation_losses(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[1]):
            W = chain.weights[0] - c * terms[:, k] + (terms.mean(1) if mean_ablation else 0)
            y = chain(x, lambda n, a, W=W: _mm(a, W if n == 0 else chain.weights[n]))
            out.append(reduce((y - original).pow(2)))
        return torch.stack(out).permute(2, 0, 1)

    return ablation_losses


def _mm(a, W):
    return torch.einsum("bid,iod->bio", a, W)


def test_ablation_names_a_fraction_of_the_term_and_a_mean_ablation():
    assert "0.5 × the term" in assert_fails(checks.test_ablation_losses, _abl(0.5), "term_fraction").hint
    hint = assert_fails(checks.test_ablation_losses, _abl(0.5, lambda d: d.sum(-1)), "term_fraction").hint
    assert "summed over the output dims" in hint
    assert_fails(checks.test_ablation_losses, _abl(mean_ablation=True), "mean_ablation")


def _abl_repeat_batch(chain, terms, x):
    K, B = terms.shape[1], x.shape[0]
    Wk = (chain.weights[0][None] - terms.permute(1, 0, 2, 3)).repeat_interleave(B, 0)  # [(k b) inst o d]

    def fn(n, a):
        return torch.einsum("nid,niod->nio", a, Wk) if n == 0 else _mm(a, chain.weights[n])

    d = (chain(x.repeat(K, 1, 1), fn) - chain(x).repeat(K, 1, 1)).pow(2).mean(-1)
    return d.reshape(K, B, -1).permute(2, 0, 1)


def _abl_inplace_restore(chain, terms, x):
    original, out, W0 = chain(x), [], chain.weights[0].clone()
    for k in range(terms.shape[1]):
        chain.weights[0].sub_(terms[:, k])
        out.append((chain(x) - original).pow(2).mean(-1))
        chain.weights[0].copy_(W0)
    return torch.stack(out).permute(2, 0, 1)


def test_ablation_accepts_the_rounds_variants():
    for impl in (_abl_repeat_batch, _abl_inplace_restore):
        assert_passes(checks.test_ablation_losses, impl)


def _svd_via_eigh(W):
    evals, U = torch.linalg.eigh(W @ W.mT)  # ascending
    r = min(W.shape[-2:])
    evals, U = evals.flip(-1)[..., :r], U.flip(-1)[..., :r]
    s = evals.clamp(min=0).sqrt()
    Vh = (U.mT @ W) / s[..., None]  # 0 / 0 where σ = 0
    return torch.einsum("iak,ik,ikb->ikab", U, s, Vh)


def test_svd_terms_names_a_division_by_a_zero_singular_value():
    failure = assert_fails(checks.test_svd_terms, _svd_via_eigh, "not_finite")
    assert "division by σ_k" in failure.hint


# ---------------------------------------------------------------- importance_minimality_loss
def _penalty_root_batch(cis, p, eps=1e-12):
    return sum((g + eps).pow(p).sum(-1) for g in cis).sum(0).sum() / cis[0].shape[0] ** 0.5


def test_minimality_names_a_root_of_the_batch_size():
    assert "√8" in assert_fails(checks.test_importance_minimality_loss, _penalty_root_batch, "root_count").hint


def _penalty_exp_log(cis, p, eps=1e-12):
    return sum(torch.exp(p * torch.log(g + eps)).sum((0, 2)) for g in cis).sum() / cis[0].shape[0]


def _penalty_cat(cis, p, eps=1e-12):
    return (torch.cat(cis, -1) + eps).pow(p).sum(-1).mean(0).sum()


def test_minimality_accepts_the_rounds_variants():
    for impl in (_penalty_exp_log, _penalty_cat):
        assert_passes(checks.test_importance_minimality_loss, impl)
