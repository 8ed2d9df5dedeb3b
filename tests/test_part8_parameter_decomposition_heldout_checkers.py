"""Proofs for part 8's checkers, third file: mistakes from the held-out trials (and correct variants written
differently), each named by a generic diagnosis (an axis reduced, a divisor, a range, a broadcast) or a mutant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
import tests.part8_parameter_decomposition_slips as slips
from tests.proving import assert_fails, assert_passes


def _mm(a, W):
    return torch.einsum("bid,iod->bio", a, W)


# --------------------------------------------------------------------------------------------
# ablation_losses: an axis reduced and broadcast back, or constant along an axis
# --------------------------------------------------------------------------------------------
def ablation_reduced(reduce):
    def impl(chain, terms, x):
        out = ref.ablation_losses(chain, terms, x)
        return reduce(out).expand_as(out)

    return impl


@pytest.mark.parametrize(
    "impl, code",
    [
        (ablation_reduced(lambda t: t.mean(0, keepdim=True)), "reduced_axis"),
        (ablation_reduced(lambda t: t.sum(2, keepdim=True)), "reduced_axis"),
        (ablation_reduced(lambda t: t.amax(0, keepdim=True)), "constant_axis"),
    ],
)
def test_ablation_heldout_rejects(impl, code):
    assert_fails(checks.test_ablation_losses, impl, code)


def test_ablation_reduced_axis_names_the_axis():
    failure = assert_fails(
        checks.test_ablation_losses, ablation_reduced(lambda t: t.mean(0, keepdim=True)), "reduced_axis"
    )
    assert "averaged over `inst`" in failure.hint


# --------------------------------------------------------------------------------------------
# faithfulness_loss: the divisor that was used
# --------------------------------------------------------------------------------------------
def faith_divided_by(count):
    def impl(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (se / count(weights, U, V)).sum()

    return impl


def test_faithfulness_counts_U_and_V():
    n_uv = lambda ws, U, V: sum(u[0].numel() + v[0].numel() for u, v in zip(U, V, strict=True))
    failure = assert_fails(checks.test_faithfulness_loss, faith_divided_by(n_uv), "wrong_count")
    n = n_uv(*checks.probes.faithfulness_inputs())
    assert f"divided by {n}: the entries of U_l and V_l" in failure.hint


def test_faithfulness_unknown_divisor_is_only_described():
    failure = assert_fails(checks.test_faithfulness_loss, faith_divided_by(lambda ws, U, V: 50), "wrong_count")
    assert "divided by 50;" in failure.hint


def test_faithfulness_transposed_is_accepted():
    """‖Wᵀ - Vᵀ Uᵀ‖² is ‖W - U V‖², over the stacked deltas of all matrices: a correct variant."""

    def impl(weights, U, V):
        deltas = [(W.mT - v.mT @ u.mT).flatten(1) for W, u, v in zip(weights, U, V, strict=True)]
        return torch.cat(deltas, 1).pow(2).mean(1).sum()

    assert_passes(checks.test_faithfulness_loss, impl)


# --------------------------------------------------------------------------------------------
# CausalImportance: GELU on the output, V ignored
# --------------------------------------------------------------------------------------------
def ci_class(inner_fn, gelu_outside=False):
    class CI(ref.CausalImportance):
        def forward(self, a, V):
            h = inner_fn(a, V)
            pre = h[..., None] * self.w_in + self.b_in
            if gelu_outside:
                z = F.gelu((pre * self.w_out).sum(-1) + self.b_out)
            else:
                z = (F.gelu(pre) * self.w_out).sum(-1) + self.b_out
            return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CI


INNER = lambda a, V: torch.einsum("bid,icd->bic", a, V)


@pytest.mark.parametrize(
    "impl, code",
    [
        (ci_class(INNER, gelu_outside=True), "gelu_outside"),
        (ci_class(lambda a, V: a.sum(-1, keepdim=True).expand(*a.shape[:2], V.shape[1])), "ignores_V"),
        (ci_class(lambda a, V: a[..., : V.shape[1]]), "ignores_V"),
    ],
)
def test_causal_importance_heldout_rejects(impl, code):
    assert_fails(checks.test_causal_importance, impl, code)


def test_causal_importance_bmm_is_accepted():
    inner = lambda a, V: torch.bmm(a.transpose(0, 1), V.transpose(1, 2)).transpose(0, 1)
    assert_passes(checks.test_causal_importance, ci_class(inner))


# --------------------------------------------------------------------------------------------
# masked_product: a broadcast error in the learner's code, one mean mask
# --------------------------------------------------------------------------------------------
def product_no_unsqueeze(a, W, U, V, mask, delta_mask):
    comps = torch.einsum("bic,ioc->bio", torch.einsum("bid,icd->bic", a, V) * mask, U)
    return comps + delta_mask * _mm(a, W - U @ V)


def product_mean_mask(a, W, U, V, mask, delta_mask):
    comps = _mm(a, U @ V) * mask.mean(-1, keepdim=True)
    return comps + delta_mask[..., None] * _mm(a, W - U @ V)


def product_unsqueeze(a, W, U, V, mask, delta_mask):
    comps = (U.unsqueeze(0) @ (mask * (V.unsqueeze(0) @ a.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)).squeeze(-1)
    return comps + delta_mask.unsqueeze(-1) * _mm(a, W - U @ V)


def test_masked_product_broadcast_error_names_the_delta_mask():
    failure = assert_fails(checks.test_masked_product, product_no_unsqueeze, "broadcast")
    assert "delta_mask[..., None]" in failure.hint and "RuntimeError" in failure.message


def test_masked_product_mean_mask():
    assert_fails(checks.test_masked_product, product_mean_mask, "mask_mean")


def test_masked_product_unsqueeze_matmul_is_accepted():
    assert_passes(checks.test_masked_product, product_unsqueeze)


def test_masked_product_other_errors_stay_plain():
    def impl(a, W, U, V, mask, delta_mask):
        raise RuntimeError("something else")

    assert_fails(checks.test_masked_product, impl, "exception")


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: root of the MSE, matrix 0's masks everywhere, combined reductions
# --------------------------------------------------------------------------------------------
def recon(reduce=lambda d: d.pow(2).mean((0, 2)).sum(), pick=lambda ms, layer: ms[layer], dpick=None):
    dpick = dpick or pick

    def impl(chain, U, V, x, masks, delta_masks):
        target = chain(x)

        def loss(layers):
            def fn(layer, a):
                if layer not in layers:
                    return _mm(a, chain.weights[layer])
                m, d = pick(masks, layer), dpick(delta_masks, layer)
                return ref.masked_product(a, chain.weights[layer], U[layer], V[layer], m, d)

            return reduce(chain(x, fn) - target)

        n = len(chain.weights)
        return loss(set(range(n))), sum(loss({layer}) for layer in range(n)) / n

    return impl


FIRST = lambda ms, layer: ms[0]
OWN = lambda ms, layer: ms[layer]


@pytest.mark.parametrize(
    "impl, code",
    [
        (recon(reduce=lambda d: d.pow(2).mean((0, 2)).sqrt().sum()), "rmse"),
        (recon(reduce=lambda d: d.pow(2).mean((0, 2)).sum().sqrt()), "rmse_total"),
        (recon(pick=OWN, dpick=FIRST), "delta_masks_first"),
        (recon(pick=FIRST, dpick=OWN), "masks_first"),
        (recon(reduce=lambda d: d.pow(2).sum()), "reductions"),
        (recon(reduce=lambda d: d.pow(2).sum(-1).mean()), "reductions"),
    ],
)
def test_recon_heldout_rejects(impl, code):
    assert_fails(checks.test_stochastic_reconstruction_losses, impl, code)


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: two reductions swapped at once
# --------------------------------------------------------------------------------------------
def test_minimality_two_reductions_swapped():
    def impl(cis, p, eps=1e-12):
        return sum((g + eps).pow(p).sum(-1) for g in cis).mean(1).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "scale")
    assert "a sum over the batch" in failure.hint and "a mean over instances" in failure.hint


# --------------------------------------------------------------------------------------------
# adversarial_sources: the range of the values, how far they moved, one sign for all entries
# --------------------------------------------------------------------------------------------
def ascent(project=lambda t: t.clamp(0, 1), direction=lambda gs: [g.sign() for g in gs], scale=1.0):
    def impl(loss_fn, init, n_steps, step_size):
        srcs = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            leaves = [s.requires_grad_(True) for s in srcs]
            grads = torch.autograd.grad(loss_fn(leaves), leaves)
            with torch.no_grad():
                srcs = [project(s + scale * step_size * d) for s, d in zip(srcs, direction(grads), strict=True)]
        return [s.detach() for s in srcs]

    return impl


@pytest.mark.parametrize(
    "impl, code",
    [
        (ascent(project=lambda t: t.clamp(-1, 1)), "out_of_range"),
        (ascent(project=lambda t: t.clamp(max=1)), "out_of_range"),
        (ascent(scale=2.5), "too_far"),
        (ascent(direction=lambda gs: [sum(g.sum() for g in gs).sign().expand_as(g) for g in gs]), "shared_sign"),
        (ascent(direction=lambda gs: [g.sum().sign().expand_as(g) for g in gs]), "shared_sign_per_source"),
    ],
)
def test_adversarial_heldout_rejects(impl, code):
    assert_fails(checks.test_adversarial_sources, impl, code)


def test_adversarial_where_projection_is_accepted():
    project = lambda t: torch.where(t < 0, 0.0, torch.where(t > 1, 1.0, t))
    assert_passes(checks.test_adversarial_sources, ascent(project=project))


def test_ablation_all_zeros_gets_no_axis_hint():
    """A constant output (nothing ablated) is not blamed on one axis."""
    failure = assert_fails(
        checks.test_ablation_losses, lambda c, t, x: torch.zeros(3, t.shape[1], x.shape[0]), "all_zero"
    )
    assert "same for every" not in failure.hint and "0 everywhere" in failure.hint


# --------------------------------------------------------------------------------------------
# Fresh measurement 2: sizes that name full_matrices, values in the wrong places, the law of random draws,
# arguments that change nothing, and a few new mutants
# --------------------------------------------------------------------------------------------
def svd_full_matrices_broadcast(W):
    U, S, Vh = torch.linalg.svd(W)  # default full_matrices=True: U [d_out d_out], Vh [d_in d_in]
    return (U[..., None] * S[:, None, :, None] * Vh[:, None]).transpose(1, 2)


def svd_full_matrices_einsum(W):
    U, S, Vh = torch.linalg.svd(W)
    return torch.einsum("iak,ik,ikb->ikab", U, S, Vh)


@pytest.mark.parametrize("impl", [svd_full_matrices_einsum, svd_full_matrices_broadcast])
def test_svd_full_matrices_is_named_from_the_error(impl):
    failure = assert_fails(checks.test_svd_terms, impl, "full_matrices")
    assert "full_matrices=False" in failure.hint


def test_svd_sigma_on_the_wrong_axis():
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return torch.einsum("iak,ikb->ikab", U * S[:, :, None], Vh)

    assert_fails(checks.test_svd_terms, impl, "sigma_wrong_axis")


def test_svd_stacked_then_reshaped():
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        terms = torch.stack(
            [S[:, k, None, None] * torch.einsum("ia,ib->iab", U[:, :, k], Vh[:, k]) for k in range(S.shape[1])]
        )
        return terms.reshape(W.shape[0], S.shape[1], *W.shape[1:])  # [r inst ...] reshaped, not permuted

    failure = assert_fails(checks.test_svd_terms, impl, "reshape_not_permute")
    assert "[r inst d_out d_in]" in failure.hint


def test_ablation_reshape_instead_of_permute():
    def impl(chain, terms, x):
        out = ref.ablation_losses(chain, terms, x).permute(1, 2, 0)  # [k batch inst], as a loop over k stacks them
        return out.reshape(out.shape[2], out.shape[0], out.shape[1])

    failure = assert_fails(checks.test_ablation_losses, impl, "reshape_not_permute")
    assert "[k batch inst]" in failure.hint and "permute" in failure.hint


def test_ablation_other_reordering_is_described():
    """Values shuffled in no axis order at all: the observation (right values, other places), no cause asserted."""

    def impl(chain, terms, x):
        out = ref.ablation_losses(chain, terms, x)
        return out.flatten().roll(1).reshape(out.shape)

    assert_fails(checks.test_ablation_losses, impl, "reordered")


def test_masked_product_inverted_delta_mask():
    def impl(a, W, U, V, mask, delta_mask):
        comps = torch.einsum("bic,ioc->bio", torch.einsum("bid,icd->bic", a, V) * mask, U)
        return comps + (1 - delta_mask)[..., None] * _mm(a, W - U @ V)

    assert_fails(checks.test_masked_product, impl, "delta_mask_inverted")


def test_recon_bias_twice():
    def impl(chain, U, V, x, masks, delta_masks):
        target = chain(x)

        def loss(layers):
            def fn(layer, a):
                if layer in layers:
                    W, m, d = chain.weights[layer], masks[layer], delta_masks[layer]
                    out = ref.masked_product(a, W, U[layer], V[layer], m, d)
                else:
                    out = _mm(a, chain.weights[layer])
                return out + chain.biases[layer]

            return (chain(x, fn) - target).pow(2).mean((0, 2)).sum()

        n = len(chain.weights)
        return loss(set(range(n))), sum(loss({layer}) for layer in range(n)) / n

    assert_fails(checks.test_stochastic_reconstruction_losses, impl, "bias_twice")


def _delta(draw):
    def impl(cis):
        return [g + (1 - g) * torch.rand_like(g) for g in cis], [draw(g[..., 0]) for g in cis]

    return impl


@pytest.mark.parametrize(
    "draw",
    [
        lambda t: torch.randint(0, 2, t.shape).to(t.dtype),
        lambda t: torch.bernoulli(torch.full_like(t, 0.5)),
        lambda t: (torch.rand_like(t) * 4).round() / 4,
    ],
)
def test_sample_masks_discrete_delta_is_named_before_sharing(draw):
    failure = assert_fails(checks.test_sample_masks, _delta(draw), "delta_discrete")
    assert "distinct values" in failure.message


def test_sample_masks_rounded_r():
    def impl(cis):
        masks = [g + (1 - g) * torch.randint(0, 11, g.shape).to(g.dtype) / 10 for g in cis]
        return masks, [torch.rand_like(g[..., 0]) for g in cis]

    assert_fails(checks.test_sample_masks, impl, "discrete")


def test_sharing_test_is_robust_to_coin_flips():
    """Independent 0/1 draws agree half the time; shared ones always: only the latter are called shared."""
    from tests import part8_parameter_decomposition_diagnosis as diag

    coins = torch.randint(0, 2, (4000, 3)).float()
    assert not diag.shared_draws(coins[:, 0], coins[:, 1])
    assert diag.shared_draws(coins[:, 0], coins[:, 0].clone())
    uniform = torch.rand(4000, 2)
    assert not diag.shared_draws(uniform[:, 0], uniform[:, 1])


def test_minimality_p_hard_coded():
    failure = assert_fails(
        checks.test_importance_minimality_loss,
        lambda cis, p, eps=1e-12: sum((g + eps).sqrt().sum(-1) for g in cis).mean(0).sum(),
        "p_ignored",
    )
    assert "when p does" in failure.hint


def test_minimality_eps_hard_coded():
    impl = lambda cis, p, eps=1e-12: sum((g + 0.1).pow(p).sum(-1) for g in cis).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, impl, "eps_ignored")


def test_minimality_eps_clamp():
    impl = lambda cis, p, eps=1e-12: sum(g.clamp_min(eps).pow(p).sum(-1) for g in cis).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, impl, "eps_clamp")


def test_adversarial_from_init_and_accumulated_grad():
    def from_init(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            leaves = [t.requires_grad_(True) for t in s]
            grads = torch.autograd.grad(loss_fn(leaves), leaves)
            s = [(i + step_size * g.sign()).clamp(0, 1) for i, g in zip(init, grads, strict=True)]
        return s

    def accumulated(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone().requires_grad_(True) for t in init]
        for _ in range(n_steps):
            loss_fn(s).backward()
            for t in s:
                t.data = (t.data + step_size * t.grad.sign()).clamp(0, 1)
        return [t.detach() for t in s]

    assert_fails(checks.test_adversarial_sources, from_init, "from_init")
    assert_fails(checks.test_adversarial_sources, accumulated, "grad_accumulates")


def test_adversarial_hard_coded_step_size():
    def impl(loss_fn, init, n_steps, step_size):
        return ascent(scale=0.05 / step_size)(loss_fn, init, n_steps, step_size)

    assert_fails(checks.test_adversarial_sources, impl, "step_size_ignored")


def test_adversarial_within_one_step_lists_causes():
    """Every step restarted from init with a half-size step: no mutant fits, the observation is stated."""

    def impl(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            leaves = [t.requires_grad_(True) for t in s]
            grads = torch.autograd.grad(loss_fn(leaves), leaves)
            s = [(i + step_size * g.sign() / 2).clamp(0, 1) for i, g in zip(init, grads, strict=True)]
        return s

    failure = assert_fails(checks.test_adversarial_sources, impl, "small_steps")
    assert "moves seen: 0.075)" in failure.hint and "Restarting every step from init" in failure.hint


class SavesAlphaAsATensor(torch.autograd.Function):
    """save_for_backward(x, alpha) with a float alpha: torch raises after forward returns, outside the learner's
    code, which must still be named (not reported as the checker failing on its own)."""

    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x, alpha)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


def test_an_autograd_function_torch_rejects_is_named():
    error = assert_fails(checks.test_upper_leaky_hard_sigmoid, SavesAlphaAsATensor, "autograd_function")
    assert "ctx.alpha" in error.hint


# --------------------------------------------------------------------------------------------
# Third fresh measurement: mistakes named by new mutants, region observations and probes
# --------------------------------------------------------------------------------------------
def _svd_s_flipped(W):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return torch.einsum("iak,ik,ikb->ikab", U, S.flip(-1), Vh)


def _ablation(change):
    def impl(chain, terms, x):
        def run(W0):
            return chain.run(x, lambda layer, a: _mm(a, W0 if layer == 0 else chain.weights[layer]))

        out = [change(run(chain.weights[0] - terms[:, k]), run(chain.weights[0])) for k in range(terms.shape[1])]
        return torch.stack(out).permute(2, 0, 1)

    return impl


_sigmoid = slips.learner_sigmoid


def _ci(variant):
    def forward(self, a, V):
        h = torch.einsum("bid,icd->bic", a, V)
        pre = (F.gelu(h)[..., None] * self.w_in + self.b_in) if variant == "gelu_on_h" else h[..., None] * self.w_in
        tanh = variant == "tanh"
        hidden = pre if variant == "gelu_on_h" else F.gelu(pre + self.b_in, approximate="tanh" if tanh else "none")
        z = (hidden * self.w_out + self.b_out[..., None]).sum(-1) if variant == "b_out_in_sum" else None
        z = (hidden * self.w_out).sum(-1) + self.b_out if z is None else z
        if variant == "no_apply":
            return ref.LowerLeakyHardSigmoid()(z, self.alpha), ref.UpperLeakyHardSigmoid()(z, self.alpha)
        return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return type("CausalImportance", (ref.CausalImportance,), {"forward": forward})


def _product(variant):
    def impl(a, W, U, V, mask, dm):
        comps = _mm(torch.einsum("bid,icd->bic", a, V) * (mask.mean(0) if variant == "batch_mean" else mask), U)
        if variant == "delta_of_masked":
            return comps + dm[..., None] * (_mm(a, W) - comps)
        if variant == "on_W":
            return comps + dm[..., None] * _mm(a, W) - _mm(a, U @ V)
        return comps + dm[..., None] * _mm(a, W - U @ V)

    return impl


def _recon(variant):
    def impl(chain, U, V, x, masks, dms):
        n = len(chain.weights)
        target = chain(x, lambda layer, a: _mm(a, U[layer] @ V[layer])) if variant == "target_UV" else chain(x)
        j = (lambda layer: layer - 1) if variant == "shifted" else (lambda layer: layer)

        def loss(layers):
            def fn(layer, a):
                if layer not in layers:
                    return _mm(a, chain.weights[layer])
                return ref.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[j(layer)], dms[j(layer)])

            d = (chain(x, fn) - target).pow(2).mean((0, 2)).sum()
            return d / 2 if variant == "half" else d

        return loss(set(range(n))), sum(loss({layer}) for layer in range(n)) / n

    return impl


def _minimality(term):
    return lambda ci, p, eps=1e-12: sum(term(g, p, eps) for g in ci).mean(0).sum()


def _adversarial(variant):
    def impl(loss_fn, init, n_steps, step_size):
        s, best = [t.detach().clone() for t in init], (-float("inf"), None)
        for _ in range(n_steps):
            leaves = [t.requires_grad_(True) for t in s]
            loss = loss_fn(leaves)
            best = max(best, (float(loss), [t.detach() for t in s]), key=lambda b: b[0])
            grads = torch.autograd.grad(loss, leaves)
            scale = 1 / n_steps if variant == "budget" else 1.0
            new = [(t + scale * step_size * g.sign()).clamp(0, 1).detach() for t, g in zip(s, grads, strict=True)]
            s = new[:1] + [t.detach() for t in s[1:]] if variant == "first_only" else new
        if variant == "best_seen":
            return best[1] if best[0] >= float(loss_fn(s)) else s
        return s

    return impl


def _masks(variant):
    def impl(ci):
        if variant == "sample":
            D = torch.distributions.Uniform
            return [D(g, torch.ones_like(g)).sample() for g in ci], [torch.rand(g.shape[:-1]) for g in ci]
        if variant == "clamp":
            return [(g + torch.rand_like(g)).clamp(max=1) for g in ci], [torch.rand(g.shape[:-1]) for g in ci]
        return [g + (1 - g) * torch.rand_like(g) for g in ci], [torch.rand_like(g).mean(-1) for g in ci]

    return impl


lower, upper = checks.test_lower_leaky_hard_sigmoid, checks.test_upper_leaky_hard_sigmoid
step01 = lambda x: ((x >= 0) & (x <= 1)).to(x.dtype)


@pytest.mark.parametrize(
    "check, impl, code, words",
    [
        (checks.test_svd_terms, _svd_s_flipped, "s_flipped", "paired with the wrong u, v"),
        (checks.test_ablation_losses, _ablation(lambda a, b: (a[1][1] - b[1][1]).pow(2).mean(-1)), "hidden_change", ""),
        (checks.test_ablation_losses, _ablation(lambda a, b: (a[0] - b[0]).mean(-1).pow(2)), "mean_then_square", ""),
        (lower, _sigmoid(lambda x, a, g: g * torch.where(x < 0, a * x, (x <= 1).to(x.dtype))), "value_as_slope", ""),
        (lower, _sigmoid(lambda x, a, g: g * torch.where(x < 0, a, (x > 1).to(x.dtype))), "conditions_swapped", ""),
        (lower, _sigmoid(lambda x, a, g: torch.where(x < 0, a * g, (x <= 1).to(x.dtype))), "grad_output_leak_only", ""),
        (upper, _sigmoid(lambda x, a, g: g * (step01(x) + a)), "alpha_everywhere", ""),
        (upper, _sigmoid(lambda x, a, g: g * torch.where(g > 1, a, (g >= 0).to(g.dtype))), "slope_from_grad", ""),
        (checks.test_causal_importance, _ci("gelu_on_h"), "gelu_on_h", ""),
        (checks.test_causal_importance, _ci("tanh"), "gelu_tanh", "approximate='tanh'"),
        (checks.test_causal_importance, _ci("b_out_in_sum"), "b_out_in_sum", "d_ci times"),
        (checks.test_causal_importance, _ci("no_apply"), "no_apply", ".apply"),
        (checks.test_sample_masks, _masks("sample"), "no_grad", ".rsample()"),
        (checks.test_sample_masks, _masks("clamp"), "not_uniform", "exactly 1"),
        (checks.test_sample_masks, _masks("mean_C"), "delta_not_uniform", "a mean of several draws"),
        (checks.test_masked_product, _product("delta_of_masked"), "delta_of_masked", ""),
        (checks.test_masked_product, _product("on_W"), "delta_mask_on_W", ""),
        (checks.test_masked_product, _product("batch_mean"), "mask_batch_mean", ""),
        (checks.test_stochastic_reconstruction_losses, _recon("target_UV"), "target_UV", ""),
        (checks.test_stochastic_reconstruction_losses, _recon("shifted"), "masks_shifted", ""),
        (checks.test_stochastic_reconstruction_losses, _recon("half"), "scale", "½ MSE convention"),
        (
            checks.test_importance_minimality_loss,
            _minimality(lambda g, p, eps: torch.linalg.vector_norm(g + eps, ord=p, dim=-1)),
            "norm_per_matrix",
            "",
        ),
        (
            checks.test_importance_minimality_loss,
            _minimality(lambda g, p, eps: torch.pow(p, g + eps).sum(-1)),
            "pow_swapped",
            "",
        ),
        (
            checks.test_importance_minimality_loss,
            _minimality(lambda g, p, eps: ((g + eps) ** p - eps**p).sum(-1)),
            "minus_eps_p",
            "",
        ),
        (checks.test_adversarial_sources, _adversarial("best_seen"), "best_seen", "after the last step"),
        (checks.test_adversarial_sources, _adversarial("first_only"), "unmoved_source", "sources[1] never moved"),
        (checks.test_adversarial_sources, _adversarial("budget"), "small_steps", "step_size / n_steps = 0.0375"),
    ],
)
def test_fresh3_mistakes_are_named(check, impl, code, words):
    failure = assert_fails(check, impl, code)
    assert words in failure.hint
    assert "`loss` (size 2)" not in failure.hint


def test_fresh3_adversarial_right_with_its_own_best_tracking_passes():
    """Tracking the best loss is harmless when the final sources are returned."""
    assert_passes(checks.test_adversarial_sources, _adversarial("right"))


# --------------------------------------------------------------------------------------------
# Fresh4: cat vs stack, pairs, batched matmul, region-by-region slopes, late binding, catalogue additions
# --------------------------------------------------------------------------------------------
def _svd_cat(W):
    return ref.svd_terms(W).flatten(1, 2)


def _svd_both_transposed(W):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return torch.einsum("ika,ik,ibk->ikab", U, S, Vh)


def _pairs(cis):
    masks, deltas = ref.sample_masks(cis)
    return list(zip(masks, deltas, strict=True))


def _ci_matmul(self, a, V):
    z = (F.gelu((a @ V.mT)[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out
    return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)


def _mp_matmul(a, W, U, V, mask, dm):
    return _mm(a, W) if (a @ V.mT) is None else None


def _sigmoid_with_forward(fwd, slope):
    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha=0.01):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return fwd(x)

        @staticmethod
        def backward(ctx, g):
            return g * slope(ctx.saved_tensors[0], ctx.alpha), None

    return Fn


def _recon(which):
    def impl(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def loss(s):
            fn = lambda k, a: (
                ref.masked_product(a, chain.weights[k], U[k], V[k], masks[k], dms[k])
                if k in s
                else (_mm(a, chain.weights[k]))
            )
            return (chain(x, fn) - target).pow(2).mean((0, 2)).sum()

        return loss(range(L)), sum(loss(which(m, L)) for m in range(L)) / L

    return impl


_UPPER = lambda x, a: torch.where(x > 1, a, (x >= 0).to(x.dtype))
_CI = lambda f: type("CausalImportance", (ref.CausalImportance,), {"forward": f})


@pytest.mark.parametrize(
    "check, impl, code, text",
    [
        (checks.test_svd_terms, _svd_cat, "merged_axes", "torch.stack"),
        (checks.test_svd_terms, _svd_both_transposed, "uv_transposed", "column k of U"),
        (checks.test_sample_masks, _pairs, "pairs", "not a list of pairs"),
        (checks.test_causal_importance, _CI(_ci_matmul), "batched_matmul", "batched matmul"),
        (checks.test_masked_product, _mp_matmul, "broadcast", "batched matmul"),
        (
            checks.test_upper_leaky_hard_sigmoid,
            _sigmoid_with_forward(lambda x: x.clamp(0, 1), lambda x, a: torch.where(x > 1, (x >= 0).to(x.dtype), a)),
            "slope_regions",
            "on [0, 1] it is alpha",
        ),
        (
            checks.test_upper_leaky_hard_sigmoid,
            _sigmoid_with_forward(
                lambda x: x.clamp(0, 1), lambda x, a: torch.where(x > 1, 1 + a * (x - 1), (x >= 0).to(x.dtype))
            ),
            "slope_regions",
            "changes with x",
        ),
        (
            checks.test_upper_leaky_hard_sigmoid,
            _sigmoid_with_forward(lambda x: x.clamp(max=1), _UPPER),
            "one_change",
            "no lower",
        ),
        (
            checks.test_faithfulness_loss,
            lambda Ws, U, V: (
                sum(torch.linalg.matrix_norm(W - u @ v, ord=2) ** 2 for W, u, v in zip(Ws, U, V, strict=True)).sum()
                / sum(W[0].numel() for W in Ws)
            ),
            "spectral_norm",
            "spectral",
        ),
        (
            checks.test_faithfulness_loss,
            lambda Ws, U, V: (
                sum((W - u @ v).sum((-2, -1)) ** 2 for W, u, v in zip(Ws, U, V, strict=True)).sum()
                / sum(W[0].numel() for W in Ws)
            ),
            "sum_squared",
            "(Σ δ)²",
        ),
        (checks.test_stochastic_reconstruction_losses, _recon(lambda m, L: [L - 1]), "layerwise_last", "late binding"),
        (checks.test_stochastic_reconstruction_losses, _recon(lambda m, L: range(m, L)), "layerwise_from_m", "l == m"),
        (
            checks.test_importance_minimality_loss,
            lambda ci, p, e: sum((g + e).pow(p).mean() for g in ci),
            "mean_per_matrix",
            "",
        ),
    ],
)
def test_fresh4_named(check, impl, code, text):
    failure = assert_fails(check, impl, code)
    assert text in failure.hint or text in failure.message, failure
    assert "delta_mask[..., None]" not in failure.hint


def _ci_variant(swap):
    def forward(self, a, V):
        h = torch.einsum("bid,icd->bic", a, V)[..., None]
        hidden = (
            F.gelu(h * self.w_out + self.b_in) * self.w_in if swap else F.gelu(h * (self.w_in + self.b_in)) * self.w_out
        )
        z = hidden.sum(-1) + self.b_out
        return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return _CI(forward)


def _mp_dm_mean(a, W, U, V, mask, dm):
    return ref.masked_product(a, W, U, V, mask, torch.ones_like(dm)) - (1 - dm.mean()) * _mm(a, W - U @ V)


@pytest.mark.parametrize(
    "check, impl, code",
    [
        (checks.test_causal_importance, _ci_variant(True), "w_in_w_out_swapped"),
        (checks.test_causal_importance, _ci_variant(False), "b_in_in_product"),
        (checks.test_masked_product, _mp_dm_mean, "delta_mask_mean"),
    ],
)
def test_fresh4_catalogue(check, impl, code):
    assert_fails(check, impl, code)


def test_a_float64_loss_is_named_not_a_crash():
    """torch.float_power computes in float64: the loss's dtype is named before it is compared with the reference."""

    def minimality_float_power(cis, p, eps=1e-12):
        return sum(torch.float_power(g + eps, p).sum(-1) for g in cis).mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, minimality_float_power, "dtype")
