"""Proof that part 8's checkers for exercises 6-10 (stochastic masks, the masked product, the reconstruction
losses, the minimality penalty, adversarial sources) accept correct variants and name realistic mistakes."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _mm(a, W):
    return einops.einsum(a, W, "b i d, i o d -> b i o")


# --------------------------------------------------------------------------------------------
# Exercise 6: sample_masks
# --------------------------------------------------------------------------------------------
def masks_variant(draw=lambda g, layer: torch.rand_like(g), mask=lambda g, r: g + (1 - g) * r,
                  delta=lambda g, layer, rs: torch.rand_like(g[..., 0])):  # fmt: skip
    def impl(cis):
        rs = [draw(g, layer) for layer, g in enumerate(cis)]
        return [mask(g, r) for g, r in zip(cis, rs, strict=False)], [delta(g, layer, rs) for layer, g in enumerate(cis)]

    return impl


def masks_lerp(cis):
    return [torch.lerp(g, torch.ones_like(g), torch.rand(g.shape, device=g.device, dtype=g.dtype)) for g in cis], [
        torch.empty(g.shape[:-1], device=g.device, dtype=g.dtype).uniform_(0, 1) for g in cis
    ]


def masks_one_draw(cis):
    """One random tensor for everything, split afterwards (still independent entries)."""
    sizes = [g.shape[-1] + 1 for g in cis]
    r = torch.rand(*cis[0].shape[:-1], sum(sizes), device=cis[0].device, dtype=cis[0].dtype).split(sizes, dim=-1)
    return [g + (1 - g) * rr[..., :-1] for g, rr in zip(cis, r, strict=False)], [rr[..., -1] for rr in r]


def masks_distribution(cis):
    """Uniform(g, 1).rsample(): reparametrised, so gradients reach g; 1 - r is uniform too."""
    masks = [torch.distributions.Uniform(g, torch.ones_like(g) + 1e-7).rsample().clamp(max=1) for g in cis]
    return masks, [1 - torch.rand(g.shape[:-1], device=g.device, dtype=g.dtype) for g in cis]


SHARED_R = {}


def _shared_layers(g, layer):
    if layer == 0:
        SHARED_R["r"] = torch.rand_like(g)
    return SHARED_R["r"][..., : g.shape[-1]]


def _antithetic_layers(g, layer):
    """The second matrix reuses 1 - r of the first: uniform, never equal, but not independent."""
    r = _shared_layers(g, layer)
    return r if layer == 0 else 1 - r


def _swapped(cis):
    masks, deltas = ref.sample_masks(cis)
    return deltas, masks


@pytest.mark.parametrize("impl", [ref.sample_masks, masks_lerp, masks_one_draw, masks_distribution])
def test_sample_masks_accepts(impl):
    assert_passes(checks.test_sample_masks, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (masks_variant(draw=lambda g, layer: torch.rand_like(g[:1]).expand_as(g)), "shared_over_batch"),
        (masks_variant(draw=lambda g, layer: torch.rand(g.shape[-1]).expand_as(g)), "shared_over_batch"),
        (masks_variant(draw=lambda g, layer: torch.rand_like(g[..., :1]).expand_as(g)), "shared_over_components"),
        (masks_variant(draw=lambda g, layer: torch.rand_like(g[:, :1]).expand_as(g)), "shared_over_instances"),
        (masks_variant(draw=_shared_layers), "shared_over_layers"),
        (masks_variant(draw=_antithetic_layers), "correlated"),
        (masks_variant(draw=lambda g, layer: torch.rand_like(g).sort(0).values), "correlated"),
        (masks_variant(mask=lambda g, r: g + r), "above_one"),
        (masks_variant(mask=lambda g, r: g * r), "below_g"),
        (masks_variant(mask=lambda g, r: r), "ignores_g"),
        (masks_variant(mask=lambda g, r: torch.maximum(g, r)), "max_not_interpolation"),
        (masks_variant(draw=lambda g, layer: torch.randn_like(g)), "normal"),
        (masks_variant(draw=lambda g, layer: 2 * torch.rand_like(g) - 1), "signed_uniform"),
        (masks_variant(draw=lambda g, layer: (torch.rand_like(g) > 0.5).float()), "binary"),
        (masks_variant(draw=lambda g, layer: torch.rand_like(g) ** 2), "not_uniform"),
        (masks_variant(mask=lambda g, r: g.detach() + (1 - g.detach()) * r), "no_grad"),
        (masks_variant(mask=lambda g, r: g + (1 - g.detach()) * r), "grad_partial"),
        (lambda cis: ([g + (1 - g) * torch.rand_like(g) for g in cis], []), "delta_missing"),
        (lambda cis: ([g + (1 - g) * torch.rand_like(g) for g in cis], [None, None]), "delta_missing"),
        (masks_variant(delta=lambda g, layer, rs: torch.ones_like(g[..., 0])), "delta_ones"),
        (masks_variant(delta=lambda g, layer, rs: torch.zeros_like(g[..., 0])), "delta_zeros"),
        (masks_variant(delta=lambda g, layer, rs: torch.randn_like(g[..., 0])), "delta_range"),
        (masks_variant(delta=lambda g, layer, rs: rs[layer][..., 0]), "delta_reuse"),
        (masks_variant(delta=lambda g, layer, rs: SHARED_R.setdefault("d", torch.rand_like(g[..., 0]))),
         "shared_over_layers"),
        (masks_variant(delta=lambda g, layer, rs: torch.rand_like(g[:1, :, 0]).expand_as(g[..., 0])),
         "shared_over_batch"),
        (masks_variant(delta=lambda g, layer, rs: torch.rand_like(g[:, :1, 0]).expand_as(g[..., 0])),
         "shared_over_instances"),
        (masks_variant(delta=lambda g, layer, rs: torch.rand_like(g[..., 0]) ** 0.5), "delta_not_uniform"),
        (masks_variant(delta=lambda g, layer, rs: 1 - rs[layer][..., 0]), "correlated"),
        (masks_variant(delta=lambda g, layer, rs: torch.rand_like(g[..., :1])), "shape"),
        (_swapped, "swapped"),
        (lambda cis: [g + (1 - g) * torch.rand_like(g) for g in cis], "not_pair"),
        (lambda cis: (ref.sample_masks(cis)[0][:1], ref.sample_masks(cis)[1]), "n_masks"),
        (masks_variant(mask=lambda g, r: (g + (1 - g) * r).double()), "dtype"),
    ],
)  # fmt: skip
def test_sample_masks_rejects(impl, code):
    SHARED_R.clear()
    assert_fails(checks.test_sample_masks, impl, code)


# --------------------------------------------------------------------------------------------
# Exercise 7: masked_product
# --------------------------------------------------------------------------------------------
def product_variant(mask_fn=lambda m: m, delta_fn=lambda W, U, V: W - U @ V, delta_mask="delta", detach_mask=False):
    def impl(a, W, U, V, mask, dm):
        m = mask.detach() if detach_mask else mask
        out = einops.einsum(einops.einsum(a, V, "b i d, i c d -> b i c") * mask_fn(m), U, "b i c, i o c -> b i o")
        d = einops.einsum(a, delta_fn(W, U, V), "b i d, i o d -> b i o")
        if delta_mask == "everywhere":
            return dm[..., None] * (out + d)
        return out + (dm[..., None] * d if delta_mask == "delta" else d)

    return impl


def product_explicit(a, W, U, V, mask, delta_mask):
    """Build every example's masked matrix, then apply it."""
    W_masked = einops.einsum(U, mask, V, "i o c, b i c, i c d -> b i o d") + delta_mask[..., None, None] * (W - U @ V)
    return einops.einsum(W_masked, a, "b i o d, b i d -> b i o")


def product_matmul(a, W, U, V, mask, delta_mask):
    inner = (V @ a.unsqueeze(-1)).squeeze(-1) * mask
    delta = ((W - U @ V) @ a.unsqueeze(-1)).squeeze(-1)
    return (U @ inner.unsqueeze(-1)).squeeze(-1) + delta_mask.unsqueeze(-1) * delta


def product_mask_on_U(a, W, U, V, mask, delta_mask):
    """The mask applied to U's columns instead of the inner activations (the same product)."""
    inner = einops.einsum(a, V, "b i d, i c d -> b i c")
    masked = einops.einsum(inner, U[None] * mask[:, :, None, :], "b i c, b i o c -> b i o")
    return masked + delta_mask[..., None] * (_mm(a, W) - _mm(a, U @ V))


@pytest.mark.parametrize("impl", [ref.masked_product, product_explicit, product_matmul, product_mask_on_U])
def test_masked_product_accepts(impl):
    assert_passes(checks.test_masked_product, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (product_variant(delta_fn=lambda W, U, V: 0 * W), "no_delta"),
        (product_variant(delta_mask="none"), "delta_unmasked"),
        (product_variant(delta_fn=lambda W, U, V: W), "full_W"),
        (product_variant(delta_fn=lambda W, U, V: U @ V - W), "delta_sign"),
        (product_variant(mask_fn=lambda m: torch.ones_like(m)), "mask_ignored"),
        (product_variant(mask_fn=lambda m: m**2), "mask_squared"),
        (product_variant(mask_fn=lambda m: 1 - m), "mask_inverted"),
        (product_variant(delta_mask="everywhere"), "delta_mask_everywhere"),
        (product_variant(delta_fn=lambda W, U, V: (W - U @ V).detach()), "delta_detached"),
        (product_variant(detach_mask=True), "mask_detached"),
        (lambda a, W, U, V, m, d: -ref.masked_product(a, W, U, V, m, d), "sign"),
        (lambda a, W, U, V, m, d: product_explicit(a, W, U, V, m, d).transpose(0, 1), "shape"),
        (lambda a, W, U, V, m, d: None, "returned_none"),
    ],
)
def test_masked_product_rejects(impl, code):
    assert_fails(checks.test_masked_product, impl, code)


# --------------------------------------------------------------------------------------------
# Exercise 8: stochastic_reconstruction_losses
# --------------------------------------------------------------------------------------------
def recon_variant(target=None, reduce=lambda d: d.pow(2).mean((0, 2)).sum(), layer_sets=None, combine=None,
                  detach_masks=False, swap=False, others="W", with_full=False, hidden=False,
                  delta_ones=False):  # fmt: skip
    def impl(chain, U, V, x, masks, delta_masks):
        delta_masks = [torch.ones_like(d) for d in delta_masks] if delta_ones else delta_masks
        ms = [m.detach() for m in masks] if detach_masks else masks
        L = len(chain.weights)
        tgt, tgt_acts = chain.run(x)
        tgt = tgt if target is None else target(x)

        def run(layers):
            def layer_fn(layer, a):
                if layer in layers:
                    return ref.masked_product(
                        a, chain.weights[layer], U[layer], V[layer], ms[layer], delta_masks[layer]
                    )
                return _mm(a, chain.weights[layer] if others == "W" else U[layer] @ V[layer])

            return chain.run(x, layer_fn)

        full = reduce(run(set(range(L)))[0] - tgt)
        per = []
        for s in layer_sets(L) if layer_sets else [{layer} for layer in range(L)]:
            out, acts = run(s)
            if hidden:  # the masked matrix's own (post-activation) output against the original one
                (layer,) = s
                after = [*acts[1:], out][layer]
                per.append(reduce(after - [*tgt_acts[1:], tgt][layer]))
            else:
                per.append(reduce(out - tgt))
        per = [*per, full] if with_full else per
        layerwise = combine(per) if combine else sum(per) / len(per)
        return (layerwise, full) if swap else (full, layerwise)

    return impl


def recon_mse(chain, U, V, x, masks, delta_masks):
    with torch.no_grad():
        target = chain(x)
    L = len(chain.weights)
    outs = []
    for masked in [range(L), *[[layer] for layer in range(L)]]:
        fn = lambda layer, a, masked=masked: (
            ref.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], delta_masks[layer])
            if layer in masked
            else _mm(a, chain.weights[layer])
        )
        outs.append(F.mse_loss(chain(x, fn), target, reduction="none").mean((0, 2)).sum())
    return outs[0], torch.stack(outs[1:]).mean()


def recon_unit_masks(chain, U, V, x, masks, delta_masks):
    """The matrices that are not masked run as masked products with every mask at 1: exactly W."""
    L, target = len(chain.weights), chain(x)

    def loss(layers):
        def layer_fn(layer, a):
            m, d = (masks[layer], delta_masks[layer]) if layer in layers else (1.0, 1.0)
            return ref.masked_product(a, chain.weights[layer], U[layer], V[layer], m * torch.ones_like(masks[layer]),
                                      d * torch.ones_like(delta_masks[layer]))  # fmt: skip

        return einops.reduce((chain(x, layer_fn) - target) ** 2, "b i o -> i", "mean").sum()

    return loss(set(range(L))), sum(loss({layer}) for layer in range(L)) / L


@pytest.mark.parametrize("impl", [ref.stochastic_reconstruction_losses, recon_variant(), recon_mse, recon_unit_masks])
def test_recon_accepts(impl):
    assert_passes(checks.test_stochastic_reconstruction_losses, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (recon_variant(target=lambda x: x), "vs_input"),
        (recon_variant(reduce=lambda d: d.abs().mean((0, 2)).sum()), "not_squared"),
        (recon_variant(delta_ones=True), "delta_masks_ignored"),
        (recon_variant(reduce=lambda d: d.pow(2).mean()), "mean_over_instances"),
        (recon_variant(reduce=lambda d: d.pow(2).sum(-1).mean(0).sum()), "sum_over_outputs"),
        (recon_variant(reduce=lambda d: d.pow(2).mean(-1).sum()), "sum_over_batch"),
        (recon_variant(combine=sum), "layerwise_sum"),
        (recon_variant(layer_sets=lambda L: [set(range(layer + 1)) for layer in range(L)]), "cumulative"),
        (recon_variant(layer_sets=lambda L: [set(range(L))] * L), "all_layers"),
        (recon_variant(layer_sets=lambda L: [{0}]), "layerwise_first_only"),
        (recon_variant(layer_sets=lambda L: [set(range(L)) - {layer} for layer in range(L)]), "layerwise_complement"),
        (recon_variant(with_full=True), "layerwise_with_full"),
        (recon_variant(others="UV"), "others_without_delta"),
        (recon_variant(hidden=True), "hidden_target"),
        (recon_variant(swap=True), "swapped"),
        (recon_variant(detach_masks=True), "grad"),
        (lambda *args: ref.stochastic_reconstruction_losses(*args)[0], "not_pair"),
        (lambda *args: tuple(t[None] for t in ref.stochastic_reconstruction_losses(*args)), "not_scalar"),
    ],
)
def test_recon_rejects(impl, code):
    assert_fails(checks.test_stochastic_reconstruction_losses, impl, code)


# --------------------------------------------------------------------------------------------
# Exercise 9: importance_minimality_loss
# --------------------------------------------------------------------------------------------
def minimality_cat(cis, p, eps=1e-12):
    return (torch.cat(cis, dim=-1) + eps).pow(p).sum(-1).mean(0).sum()


def minimality_loop(cis, p, eps=1e-12):
    total = 0
    for g in cis:
        total = total + einops.reduce((g + eps) ** p, "b i c -> i", "sum") / g.shape[0]
    return total.sum()


def minimality_exp_log(cis, p, eps=1e-12):
    return sum(torch.exp(p * torch.log(g + eps)).sum() for g in cis) / cis[0].shape[0]


@pytest.mark.parametrize("impl", [ref.importance_minimality_loss, minimality_cat, minimality_loop, minimality_exp_log])
def test_minimality_accepts(impl):
    assert_passes(checks.test_importance_minimality_loss, impl)


def minimality_variant(term=lambda g, p, e: (g + e) ** p, per_layer=lambda t: t.sum(-1), layers=sum,
                       batch=lambda t: t.mean(0), inst=lambda t: t.sum(), root=False):  # fmt: skip
    def impl(cis, p, eps=1e-12):
        per_example = layers([per_layer(term(g, p, eps)) for g in cis])
        return inst(batch(per_example ** (1 / p) if root else per_example))

    return impl


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (minimality_variant(per_layer=lambda t: t.mean(-1)), "mean_over_components"),
        (minimality_variant(layers=lambda ts: sum(ts) / len(ts)), "mean_over_layers"),
        (minimality_variant(layers=lambda ts: ts[0]), "one_layer"),
        (minimality_variant(batch=lambda t: t.sum(0)), "sum_over_batch"),
        (minimality_variant(inst=lambda t: t.mean()), "mean_over_instances"),
        (lambda cis, p, eps=1e-12: torch.cat([(g + eps) ** p for g in cis], -1).mean(), "mean_everything"),
        (minimality_variant(term=lambda g, p, e: g + e), "p_ignored"),
        (minimality_variant(term=lambda g, p, e: (g + e) ** (1 / p)), "p_inverted"),
        (minimality_variant(term=lambda g, p, e: g**p + e), "eps_outside"),
        (minimality_variant(term=lambda g, p, e: g**p), "no_eps"),
        (minimality_variant(term=lambda g, p, e: (g + 1e-12) ** p), "no_eps"),
        (minimality_variant(root=True), "norm"),
        (lambda cis, p, eps=1e-12: (sum((g + eps).sum(-1) for g in cis) ** p).mean(0).sum(), "p_outside"),
        (minimality_variant(inst=lambda t: 2 * t.sum()), "scale"),
        (minimality_variant(inst=lambda t: t.sum() + 0.1), "values"),
        (lambda cis, p, eps=1e-12: ref.importance_minimality_loss([g.detach() for g in cis], p, eps), "grad"),
        (lambda cis, p, eps=1e-12: ref.importance_minimality_loss(cis, p, eps).item(), "not_tensor"),
    ],
)
def test_minimality_rejects(impl, code):
    assert_fails(checks.test_importance_minimality_loss, impl, code)


# --------------------------------------------------------------------------------------------
# Exercise 10: adversarial_sources
# --------------------------------------------------------------------------------------------
def pgd(direction=torch.sign, ascent=True, clamp="after", n_extra=0, stale=False):
    """Projected sign-gradient ascent written as a learner would, with one switch per mistake."""

    def impl(loss_fn, init, n_steps, step_size):
        sources, first = [s.detach().clone() for s in init], None
        for _ in range(n_steps + n_extra):
            if clamp == "before":
                sources = [s.clamp(0, 1) for s in sources]
            leaves = [s.requires_grad_(True) for s in sources]
            grads = torch.autograd.grad(loss_fn(leaves), leaves)
            first = grads if first is None else first
            grads = first if stale else grads
            with torch.no_grad():
                step = [step_size * direction(g) * (1 if ascent else -1) for g in grads]
                sources = [s + d for s, d in zip(leaves, step, strict=False)]
                sources = [s.clamp(0, 1) for s in sources] if clamp == "after" else sources
        sources = [s.clamp(0, 1) for s in sources] if clamp == "end" else sources
        return [s.detach() for s in sources]

    return impl


def pgd_backward(loss_fn, init, n_steps, step_size):
    sources = [s.detach().clone().requires_grad_(True) for s in init]
    for _ in range(n_steps):
        for s in sources:
            s.grad = None
        loss_fn(sources).backward()
        with torch.no_grad():
            for s in sources:
                s.add_(step_size * s.grad.sign()).clamp_(0, 1)
    return [s.detach() for s in sources]


def pgd_in_place(loss_fn, init, n_steps, step_size):
    out = ref.adversarial_sources(loss_fn, init, n_steps, step_size)
    for s, o in zip(init, out, strict=False):
        s.copy_(o)
    return out


def pgd_where(loss_fn, init, n_steps, step_size):
    sources = list(init)
    for _ in range(n_steps):
        leaves = [s.detach().requires_grad_(True) for s in sources]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        stepped = [s + step_size * g.sign() for s, g in zip(leaves, grads, strict=False)]
        sources = [torch.where(t > 1, 1.0, torch.where(t < 0, 0.0, t)).detach() for t in stepped]
    return sources


@pytest.mark.parametrize("impl", [ref.adversarial_sources, pgd(), pgd_backward, pgd_where])
def test_adversarial_accepts(impl):
    assert_passes(checks.test_adversarial_sources, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (pgd(ascent=False), "descent"),
        (pgd(clamp="never"), "no_clamp"),
        (pgd(clamp="end"), "clamp_at_end"),
        (pgd(clamp="before"), "clamp_before_step"),
        (pgd(direction=lambda g: g), "no_sign"),
        (pgd(direction=lambda g: g / g.norm()), "normalised_grad"),
        (pgd(direction=lambda g: (g > 0).float()), "sign_01"),
        (pgd(n_extra=-3), "one_step"),
        (pgd(n_extra=1), "extra_step"),
        (pgd(n_extra=-1), "one_step_short"),
        (pgd(n_extra=-4), "no_steps"),
        (pgd(stale=True), "stale_gradient"),
        (pgd_in_place, "in_place"),
        (lambda f, init, n, step: [s.requires_grad_(True) for s in ref.adversarial_sources(f, init, n, step)],
         "not_detached"),
        (lambda f, init, n, step: torch.cat(ref.adversarial_sources(f, init, n, step)[:1]), "not_list"),
    ],
)  # fmt: skip
def test_adversarial_rejects(impl, code):
    assert_fails(checks.test_adversarial_sources, impl, code)
