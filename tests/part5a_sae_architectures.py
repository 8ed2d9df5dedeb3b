"""Checkers for part 5a (SAE architectures and metrics).

Built like part 5's checkers (`tests.part5_toy_saes`, whose building blocks these reuse): each checker
runs the learner's method on a subclass of the reference class, compares with the reference on the same
inputs (non-zero biases, per-instance sparsity coefficients, uneven decoder norms, several instances),
and compares gradients as well as values where the exercise is about gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests.checking import checker, expect_close, expect_matches, expect_scalar, expect_tensor, fail, returned
from tests.part5_toy_saes import (
    D_IN,
    D_SAE,
    N_FEATS,
    N_INST,
    call_forward,
    check_loss_keys,
    check_total_loss,
    compare_grads,
    diagnose,
    expect_reconstruction_loss,
    graft,
    random_hidden,
    reference_sae,
    twin,
)


# --------------------------------------------------------------------------------------------
# Exercise 7: Gated SAE
# --------------------------------------------------------------------------------------------
@checker("gated_forward")
def test_gated_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref_a.GatedToySAE, impl, ("forward",))
    sae = reference_sae(cls, device)
    reference = twin(sae, ref_a.GatedToySAE)
    h = random_hidden(32, N_INST, D_IN, device)
    loss_dict, loss, acts, h_rec = call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = reference(h)

    x = (h - reference.b_dec).detach()
    proj = torch.einsum("bid,ids->bis", x, reference.W_enc.detach())
    gate = proj + reference.b_enc.detach()
    mag_no_exp = proj * reference.r_mag.detach() + reference.b_mag.detach()
    expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
    diagnose(
        acts,
        ref_acts.detach(),
        "acts_post",
        "batch inst d_sae",
        [
            (
                torch.relu(gate),
                "acts_post is the *magnitude* path, switched on and off by the gate: 1[π_gate > 0] · ReLU(π_mag)",
                "gate_as_acts",
            ),
            ((gate > 0).float() * torch.relu(mag_no_exp), "scale W_enc by exp(r_mag), not r_mag", "r_mag_no_exp"),
            (
                torch.relu(proj * reference.r_mag.detach().exp() + reference.b_mag.detach()),
                "multiply by the gate indicator (π_gate > 0)",
                "no_gate",
            ),
        ],
        "acts",
        "acts_post = 1[π_gate > 0] · ReLU(π_mag) with π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
    )
    expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
    expect_close(
        h_rec,
        ref_rec.detach(),
        "h_reconstructed",
        "decode acts_post with W_dec_normalized, add b_dec",
        code="reconstruction",
        dims="batch inst d_in",
    )
    check_loss_keys(loss_dict, ref_dict, h)
    expect_reconstruction_loss(loss_dict, ref_dict)
    sp = loss_dict["L_sparsity"].detach()
    diagnose(
        sp,
        ref_dict["L_sparsity"].detach(),
        "L_sparsity",
        "batch inst",
        [
            (acts.detach().abs().sum(-1), "penalise the gate path, ReLU(π_gate), not acts_post", "sparsity_on_acts"),
        ],
        "sparsity_loss",
        "L_sparsity = ReLU(π_gate).sum(-1)",
    )
    via_gate_undetached_b = ref_dict["L_aux"].detach()
    expect_close(
        loss_dict["L_aux"].detach(),
        via_gate_undetached_b,
        "L_aux",
        "L_aux: decode ReLU(π_gate) with the detached normalised decoder, add detached b_dec, "
        "mean squared error over d_in",
        code="aux_loss",
        dims="batch inst",
    )
    loss = expect_scalar(loss, "loss")
    without_aux = (ref_dict["L_reconstruction"] + reference.sparsity_coeff * ref_dict["L_sparsity"]).mean(0).sum()
    if torch.isclose(loss.detach(), without_aux.detach(), rtol=1e-5) and not torch.isclose(without_aux, ref_loss):
        fail("loss leaves out L_aux", "add L_aux to the per-example loss before averaging", code="no_aux_in_loss")
    check_total_loss(loss, ref_loss, ref_dict, reference.sparsity_coeff, aux=True)
    detach_hint = (
        "the auxiliary reconstruction must use W_dec_normalized.detach() and b_dec.detach(): "
        "L_aux should train the gate, not the decoder",
        "aux_not_detached",
    )
    compare_grads(sae, loss, reference, ref_loss, hints={"_W_dec": detach_hint, "b_dec": detach_hint})
    return "gate and magnitude paths, three losses, gradients"


# --------------------------------------------------------------------------------------------
# Exercise 8: Heaviside and JumpReLU
# --------------------------------------------------------------------------------------------
BANDWIDTH = 0.1


def _step_inputs(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """x near and far from a positive threshold (both inside and outside the rectangle), and an upstream gradient."""
    threshold = 0.3 + torch.rand(4, 50, device=device)
    u = torch.linspace(-3, 3, 50, device=device)  # (x - threshold) / bandwidth
    x = threshold + BANDWIDTH * (u + 0.013)  # the offset avoids |u| = 1/2 exactly
    x[:, :5] = -0.5
    grad_out = torch.randn(4, 50, device=device) + 0.5
    return x, threshold, grad_out


def _check_step_function(
    impl: Any,
    name: str,
    fwd: Callable,
    dx: Callable,
    dth: Callable,
    device: torch.device,
    x_mistakes: list,
    th_mistakes: list,
) -> None:
    if not hasattr(impl, "apply"):
        fail(
            f"{name} should be a torch.autograd.Function subclass (with .apply)",
            "pass the class itself, e.g. tests...(Heaviside)",
            code="not_function",
        )
    x0, th0, g = _step_inputs(device)
    x, th = x0.clone().requires_grad_(True), th0.clone().requires_grad_(True)
    out = expect_tensor(
        impl.apply(x, th, BANDWIDTH), f"{name}.apply(x, threshold, bandwidth)", shape=x.shape, device=device
    )
    expect_close(
        out.detach(),
        fwd(x0, th0),
        f"{name} forward",
        f"the forward pass is exactly {name}: see the table",
        code="forward",
    )
    if not out.requires_grad:
        fail(f"the output of {name} has no gradient", "return a tensor computed from x in forward", code="no_grad")
    grad_x, grad_th = torch.autograd.grad((out * g).sum(), (x, th), allow_unused=True)  # scalar: no sympy import
    grad_x = torch.zeros_like(x0) if grad_x is None else grad_x
    grad_th = torch.zeros_like(th0) if grad_th is None else grad_th
    diagnose(
        grad_x,
        dx(x0, th0) * g,
        f"the gradient of {name} with respect to x",
        None,
        [(c(x0, th0) * g, h, code) for c, h, code in x_mistakes],
        "grad_x",
        "see the ∂/∂x column of the table, times grad_output",
    )
    diagnose(
        grad_th,
        dth(x0, th0) * g,
        f"the gradient of {name} with respect to threshold",
        None,
        [(c(x0, th0) * g, h, code) for c, h, code in th_mistakes]
        + [(dth(x0, th0), "multiply by grad_output (the chain rule)", "no_grad_output")],
        "grad_threshold",
        "see the ∂/∂θ column: -(factor/ε) · K((x - θ)/ε) · grad_output",
    )


def _rect(x: Tensor, th: Tensor, width: float = 0.5) -> Tensor:
    return (((x - th) / BANDWIDTH).abs() < width).to(x.dtype)


_TH_MISTAKES = [
    (
        lambda x, th: _rect(x, th) / BANDWIDTH,
        "the pseudo-derivative with respect to θ is negative: raising the threshold can only switch the output off",
        "grad_sign",
    ),
    (lambda x, th: -_rect(x, th), "divide by the bandwidth ε", "no_bandwidth"),
    (lambda x, th: -_rect(x, th, 1.0) / BANDWIDTH, "the rectangle K(u) is 1 for |u| < 1/2, not |u| < 1", "rect_width"),
]


@checker("heaviside")
def test_heaviside(impl: Any, device: torch.device) -> str:
    _check_step_function(
        impl,
        "Heaviside",
        fwd=lambda x, th: (x > th).to(x.dtype),
        dx=lambda x, th: torch.zeros_like(x),
        dth=lambda x, th: -_rect(x, th) / BANDWIDTH,
        device=device,
        x_mistakes=[
            (
                lambda x, th: torch.ones_like(x),
                "the step has no useful gradient in x: return zeros (or None)",
                "grad_x_passthrough",
            ),
            (
                lambda x, th: _rect(x, th) / BANDWIDTH,
                "only the threshold gets a pseudo-derivative; x gets 0",
                "grad_x_passthrough",
            ),
        ],
        th_mistakes=_TH_MISTAKES,
    )
    return "forward values and pseudo-derivatives"


@checker("jumprelu")
def test_jumprelu(impl: Any, device: torch.device) -> str:
    _check_step_function(
        impl,
        "JumpReLU",
        fwd=lambda x, th: x * (x > th).to(x.dtype),
        dx=lambda x, th: (x > th).to(x.dtype),
        dth=lambda x, th: -th * _rect(x, th) / BANDWIDTH,
        device=device,
        x_mistakes=[
            (lambda x, th: torch.ones_like(x), "∂/∂x is 1[x > θ]: zero where the output is zero", "grad_x_ones"),
            (lambda x, th: (x > 0).to(x.dtype), "∂/∂x is 1[x > θ], not 1[x > 0]", "grad_x_relu"),
        ],
        th_mistakes=[
            (
                lambda x, th: -_rect(x, th) / BANDWIDTH,
                "the JumpReLU pseudo-derivative has a factor θ: -(θ/ε) K(...)",
                "no_theta_factor",
            ),
            (
                lambda x, th: th * _rect(x, th) / BANDWIDTH,
                "the pseudo-derivative with respect to θ is negative",
                "grad_sign",
            ),
            (lambda x, th: -th * _rect(x, th), "divide by the bandwidth ε", "no_bandwidth"),
            (
                lambda x, th: -th * _rect(x, th, 1.0) / BANDWIDTH,
                "the rectangle K(u) is 1 for |u| < 1/2, not |u| < 1",
                "rect_width",
            ),
            (lambda x, th: -x * _rect(x, th) / BANDWIDTH, "the factor is θ, not x", "x_factor"),
        ],
    )
    return "forward values and pseudo-derivatives"


# --------------------------------------------------------------------------------------------
# Exercise 9: JumpReLU SAE
# --------------------------------------------------------------------------------------------
@checker("jumprelu_forward")
def test_jumprelu_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref_a.JumpReLUToySAE, impl, ("forward",))
    sae = reference_sae(cls, device, jumprelu_bandwidth=0.3, jumprelu_init_threshold=0.1)  # θ - ε/2 > 0
    reference = twin(sae, ref_a.JumpReLUToySAE)
    h = random_hidden(64, N_INST, D_IN, device)
    loss_dict, loss, acts, h_rec = call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = reference(h)
    pre = torch.einsum("bid,ids->bis", (h - reference.b_dec).detach(), reference.W_enc.detach())
    pre = pre + reference.b_enc.detach()
    log_th = reference.log_threshold.detach()
    expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
    diagnose(
        acts,
        ref_acts.detach(),
        "acts_post",
        "batch inst d_sae",
        [
            (pre * (pre > log_th), "the threshold is exp(log_threshold)", "no_exp"),
            (torch.relu(pre), "apply JumpReLU with the threshold, not a plain ReLU", "plain_relu"),
        ],
        "acts",
        "acts_post = JumpReLU.apply(pre, exp(log_threshold), bandwidth)",
    )
    expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
    expect_close(
        h_rec,
        ref_rec.detach(),
        "h_reconstructed",
        "decode with W_dec_normalized and add b_dec",
        code="reconstruction",
        dims="batch inst d_in",
    )
    check_loss_keys(loss_dict, ref_dict, h)
    expect_reconstruction_loss(loss_dict, ref_dict)
    diagnose(
        loss_dict["L_sparsity"].detach(),
        ref_dict["L_sparsity"].detach(),
        "L_sparsity",
        "batch inst",
        [
            (
                acts.detach().abs().sum(-1),
                "the JumpReLU penalty counts active latents (L0), it doesn't sum their values",
                "sparsity_l1",
            ),
        ],
        "sparsity_loss",
        "L_sparsity = Heaviside.apply(pre, threshold, bandwidth).sum(-1)",
    )
    loss = expect_scalar(loss, "loss")
    check_total_loss(loss, ref_loss, ref_dict, reference.sparsity_coeff)
    compare_grads(
        sae,
        loss,
        reference,
        ref_loss,
        hints={
            "log_threshold": (
                "the threshold gets its gradient from JumpReLU and from Heaviside: compute L_sparsity with "
                "Heaviside.apply (counting acts_post > 0 has no gradient) and pass the threshold as a tensor "
                "that depends on log_threshold",
                "threshold_grad",
            )
        },
    )
    return "thresholded activations, L0 penalty, gradients reach the threshold"


# --------------------------------------------------------------------------------------------
# Exercise 10: TopK SAE
# --------------------------------------------------------------------------------------------
@checker("topk_forward")
def test_topk_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref_a.TopKToySAE, impl, ("forward",))
    checked = []
    for k in (2, 3):
        sae = reference_sae(cls, device, k=k, sparsity_coeff=0.0)
        with torch.no_grad():
            sae.b_enc[0] -= 1.5  # instance 0 often has fewer than k positive pre-activations
        reference = twin(sae, ref_a.TopKToySAE)
        h = random_hidden(64, N_INST, D_IN, device)
        loss_dict, loss, acts, h_rec = call_forward(sae, h)
        ref_dict, ref_loss, ref_acts, ref_rec = reference(h)
        pre = torch.einsum("bid,ids->bis", (h - reference.b_dec).detach(), reference.W_enc.detach())
        pre = pre + reference.b_enc.detach()
        top = pre.topk(k, dim=-1)
        no_relu = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
        n_active = (acts.detach() != 0).sum(-1)
        if (n_active > k).any():
            fail(
                f"some examples have {int(n_active.max())} non-zero latents, expected at most k={k}",
                "keep only the k largest values per example and zero the rest (topk over the d_sae axis)",
                code="too_many",
            )
        diagnose(
            acts,
            ref_acts.detach(),
            "acts_post",
            "batch inst d_sae",
            [
                (no_relu, "apply the ReLU: a negative value among the top k must become 0", "no_relu"),
            ],
            "acts",
            f"acts_post keeps the k={k} largest values of ReLU(pre) per example, in place, zeros elsewhere",
        )
        expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
        expect_close(
            h_rec,
            ref_rec.detach(),
            "h_reconstructed",
            "decode with W_dec_normalized and add b_dec",
            code="reconstruction",
            dims="batch inst d_in",
        )
        if "L_reconstruction" not in loss_dict:
            fail("loss_dict has no key 'L_reconstruction'", "add it (shape [batch inst])", code="missing_key")
        expect_close(
            loss_dict["L_reconstruction"].detach(),
            ref_dict["L_reconstruction"].detach(),
            "L_reconstruction",
            "mean over d_in of the squared error",
            code="rec_loss",
            dims="batch inst",
        )
        loss = expect_scalar(loss, "loss")
        expect_close(
            loss.detach(),
            ref_loss.detach(),
            "loss",
            "the TopK loss is the reconstruction loss alone, mean over batch, summed over instances",
            code="loss",
        )
        compare_grads(sae, loss, reference, ref_loss)
        checked.append(k)
    return f"k = {checked}: at most k active, values in place, loss and gradients"


# --------------------------------------------------------------------------------------------
# Exercise 10b: AuxK
# --------------------------------------------------------------------------------------------
def _auxk_variants(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> dict[str, Tensor]:
    """The per-example loss of common mistakes, for naming them."""

    def loss_of(acts: Tensor, reduce: str = "mean") -> Tensor:
        rec = torch.einsum("bis,isd->bid", acts, W_dec)
        err = (residual - rec).pow(2)
        return err.mean(-1) if reduce == "mean" else err.sum(-1)

    def top(x: Tensor) -> Tensor:
        t = x.topk(k_aux, dim=-1)
        values = torch.where(t.values.isfinite(), t.values, torch.zeros_like(t.values))
        return torch.zeros_like(x).scatter(-1, t.indices, values)

    masked = torch.where(dead, pre, -torch.inf)
    right = top(masked)
    return {
        # A ReLU before the top-k, and masking live latents with 0 instead of -inf, give the same values:
        # both drop the dead latents' negative pre-activations.
        "dropped_negatives": loss_of(top(torch.where(dead, pre.relu(), -torch.inf))),
        "used_live_latents": loss_of(top(pre)),
        "sum_over_d_in": loss_of(right, reduce="sum"),
        "all_dead_latents": loss_of(torch.where(dead, pre, torch.zeros_like(pre))),
    }


@checker("auxk_loss")
def test_auxk_loss(impl: Callable, device: torch.device) -> str:
    n_inst, d_sae, d_in, k_aux = 3, 8, 4, 2
    pre = torch.randn(64, n_inst, d_sae, device=device) - 0.5  # mostly negative: dead latents rarely fire
    residual = 0.3 * torch.randn(64, n_inst, d_in, device=device)
    W_dec = torch.randn(n_inst, d_sae, d_in, device=device)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device)
    dead[0, [1, 4, 6]] = True  # more dead latents than k_aux
    dead[1, 2] = True  # fewer dead latents than k_aux
    # instance 2: no dead latent, so the auxiliary reconstruction is 0 and the loss is mean(residual²)
    pre_in = pre.clone().requires_grad_(True)
    out = returned(impl(pre_in, residual.clone(), dead.clone(), W_dec.clone(), k_aux), "auxk_loss")
    if isinstance(out, Tensor) and not torch.isfinite(out.detach()).all():
        fail(
            "auxk_loss returned inf or NaN",
            "where an instance has fewer dead latents than k_aux, the top-k picks some -inf values: replace them "
            "by 0 before decoding",
            code="inf",
        )
    out = expect_tensor(out, "auxk_loss(...)", shape=(64, n_inst), dims="batch inst", device=device)
    expected = ref_a.auxk_loss(pre, residual, dead, W_dec, k_aux)
    hints = {
        "dropped_negatives": "the dead latents' negative pre-activations must take part: use the pre-activations "
        "before any ReLU (after a ReLU a dead latent gets no gradient), and mask live latents with -inf, not 0 "
        "(a live latent masked to 0 beats every negative dead one)",
        "used_live_latents": "only dead latents take part: mask the live ones out before the top-k",
        "sum_over_d_in": "take the mean over d_in, not the sum",
        "all_dead_latents": "keep only the k_aux largest dead pre-activations per example",
    }
    variants = _auxk_variants(pre, residual, dead, W_dec, k_aux)
    expect_matches(
        out,
        expected,
        "auxk_loss",
        [(code, hints[code], value) for code, value in variants.items()],
        dims="batch inst",
        hint="mean over d_in of (residual - the dead latents' top-k_aux decoded)²",
    )
    if not out.requires_grad:
        fail("the loss has no gradient", "don't detach anything inside auxk_loss", code="no_grad")
    (grad,) = torch.autograd.grad(out.sum(), pre_in, allow_unused=True)
    pre_ref = pre.clone().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad(ref_a.auxk_loss(pre_ref, residual, dead, W_dec, k_aux).sum(), pre_ref)
    expect_close(
        grad if grad is not None else torch.zeros_like(pre),
        ref_grad,
        "the gradient with respect to pre",
        "the gradient should reach exactly the chosen dead latents' pre-activations",
        code="grad",
        dims="batch inst d_sae",
    )
    return "dead latents only, before the ReLU, fewer dead than k_aux, mean over d_in, gradients"


# --------------------------------------------------------------------------------------------
# Exercise 11: metrics
# --------------------------------------------------------------------------------------------
def _acts(device: torch.device) -> Tensor:
    acts = torch.relu(torch.randn(200, N_INST, D_SAE, device=device) - torch.linspace(-0.5, 1.5, D_SAE, device=device))
    acts[:, 0, 1] = 0.0  # a dead latent
    acts[:, 1, 4:6] = 0.0
    acts[3, 1, 5] = 0.7  # fires once: alive
    return acts


@checker("l0_norm")
def test_l0_norm(impl: Callable, device: torch.device) -> str:
    acts = _acts(device)
    out = expect_tensor(impl(acts.clone()), "l0_norm(acts)", shape=(N_INST,), dims="inst", device=device)
    expected = ref_a.l0_norm(acts)
    diagnose(
        out,
        expected,
        "l0_norm",
        "inst",
        [
            (expected / D_SAE, "count latents (sum over d_sae), then average over the batch", "fraction"),
            (acts.sum(-1).mean(0), "count non-zero latents, don't sum their values", "l1"),
            (expected * acts.shape[0], "average over the batch, don't sum", "batch_sum"),
        ],
        "values",
        "mean over the batch of the number of non-zero latents",
    )
    return "per-instance mean count of active latents"


@checker("fraction_variance_explained")
def test_fraction_variance_explained(impl: Callable, device: torch.device) -> str:
    h = torch.randn(100, N_INST, D_IN, device=device) * torch.tensor([0.3, 1.0, 2.0], device=device) + 1.5
    h_rec = h + 0.4 * torch.randn_like(h) * torch.tensor([1.0, 0.2, 0.5], device=device)[:, None]
    out = expect_tensor(
        impl(h.clone(), h_rec.clone()),
        "fraction_variance_explained(h, h_rec)",
        shape=(N_INST,),
        dims="inst",
        device=device,
    )
    expected = ref_a.fraction_variance_explained(h, h_rec)
    resid = (h - h_rec).pow(2)
    centred = (h - h.mean(0)).pow(2)
    diagnose(
        out,
        expected,
        "fraction_variance_explained",
        "inst",
        [
            (
                1 - resid.sum((0, 2)) / h.pow(2).sum((0, 2)),
                "measure the variance around the batch mean: (h - h.mean(0))²",
                "not_centered",
            ),
            (resid.sum((0, 2)) / centred.sum((0, 2)), "that is the fraction *unexplained*: return 1 minus it", "fvu"),
            (
                (1 - resid.sum(0) / centred.sum(0)).mean(-1),
                "sum over d_in before dividing (a ratio of sums)",
                "per_dim",
            ),
            (
                1 - (resid.sum(-1) / centred.sum(-1)).mean(0),
                "a ratio of sums over batch and d_in, not a mean of ratios",
                "ratio_of_means",
            ),
        ],
        "values",
        "1 - Σ(h - h_rec)² / Σ(h - mean(h))², sums over batch and d_in",
    )
    return "ratio of sums, centred variance, per instance"


@checker("dead_latent_fraction")
def test_dead_latent_fraction(impl: Callable, device: torch.device) -> str:
    acts = _acts(device)
    out = expect_tensor(impl(acts.clone()), "dead_latent_fraction(acts)", shape=(N_INST,), dims="inst", device=device)
    expected = ref_a.dead_latent_fraction(acts)
    diagnose(
        out,
        expected,
        "dead_latent_fraction",
        "inst",
        [
            (expected * D_SAE, "return a fraction of latents (divide by d_sae)", "count"),
            (
                (acts == 0).any(0).float().mean(-1),
                "a latent is dead when it is zero on *every* example (all, not any)",
                "any",
            ),
            (
                (acts == 0).float().mean((0, 2)),
                "dead means zero on the whole batch, not a fraction of zero entries",
                "zero_entries",
            ),
        ],
        "values",
        "fraction of latents with acts == 0 on every example of the batch",
    )
    return "fraction of latents silent on the whole batch"


@checker("feature_recovery")
def test_feature_recovery(impl: Callable, device: torch.device) -> str:
    W_feat = torch.randn(N_INST, D_IN, N_FEATS, device=device) * torch.linspace(0.3, 2.0, N_FEATS, device=device)
    W_dec = torch.randn(N_INST, D_SAE, D_IN, device=device) * 3.0
    W_dec[:, 0] = -2.0 * W_feat[:, :, 0]  # an anti-aligned latent: cosine -1, not +1
    W_dec[:, 1] = 0.5 * W_feat[:, :, 2] + 0.1 * W_dec[:, 1]
    out = expect_tensor(
        impl(W_feat.clone(), W_dec.clone()),
        "feature_recovery(W_features, W_dec)",
        shape=(N_INST, N_FEATS),
        dims="inst feats",
        device=device,
    )
    expected = ref_a.feature_recovery(W_feat, W_dec)
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    d_hat = W_dec / W_dec.norm(dim=-1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", d_hat, f_hat)
    diagnose(
        out,
        expected,
        "feature_recovery",
        "inst feats",
        [
            (
                cos.abs().max(1).values,
                "use the signed cosine: a latent pointing the opposite way has not found the feature",
                "abs",
            ),
            (cos.mean(1), "take the max over latents, not the mean", "mean"),
            (
                torch.einsum("isd,idf->isf", W_dec, f_hat).max(1).values,
                "normalise the decoder rows too",
                "unnormalized",
            ),
            (
                torch.einsum("isd,idf->isf", d_hat, W_feat).max(1).values,
                "normalise the feature directions too",
                "unnormalized",
            ),
        ],
        "values",
        "max over latents of cos(W_features[:, :, f], W_dec[:, j, :])",
    )
    return "best signed cosine per feature"
