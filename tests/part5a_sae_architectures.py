"""Checkers for part 5a (SAE architectures and metrics), built like part 5's (`tests.part5_toy_saes`, whose blocks
these reuse): each runs the learner's method on a subclass of the reference class, compares every output with the
reference on the same inputs (non-zero biases, per-instance sparsity coefficients, uneven decoder norms, several
instances), then the gradients; a wrong output or gradient is compared with the catalogue of known mistakes
(`tests.part5a_sae_architectures_mistakes`), and otherwise with generic relations that name unlisted mistakes.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests import part5_toy_saes_diagnosis as D
from tests import part5_toy_saes_loss_readings as RL
from tests import part5a_sae_architectures_detached_paths as DP
from tests import part5a_sae_architectures_diagnosis as DG
from tests import part5a_sae_architectures_edge_inputs as EI
from tests import part5a_sae_architectures_error_reductions as ER
from tests import part5a_sae_architectures_fitted as FIT
from tests import part5a_sae_architectures_forward_readings as FR
from tests import part5a_sae_architectures_gated_slips as GS
from tests import part5a_sae_architectures_instance_pooling as IP
from tests import part5a_sae_architectures_loss_paths as LP
from tests import part5a_sae_architectures_lowered_k as LK
from tests import part5a_sae_architectures_metric_fits as MF
from tests import part5a_sae_architectures_metric_slips as MS
from tests import part5a_sae_architectures_metric_tiny as SG2
from tests import part5a_sae_architectures_mistakes as M
from tests import part5a_sae_architectures_negative_acts as NA
from tests import part5a_sae_architectures_output_forms as OF
from tests import part5a_sae_architectures_probes as PR
from tests import part5a_sae_architectures_readbacks as RB
from tests import part5a_sae_architectures_reductions as RD
from tests import part5a_sae_architectures_slips as SL
from tests import part5a_sae_architectures_small_scale as SS
from tests import part5a_sae_architectures_step_grads as SG
from tests import part5a_sae_architectures_ties as TI
from tests import part5a_sae_architectures_topk_placement as TP
from tests import part5a_sae_architectures_topk_ties as TT
from tests import part5a_sae_architectures_weight_readings as WR
from tests.checking import checker, expect_close, expect_matches, expect_tensor, fail, returned
from tests.mutants import call
from tests.parameter_signs import check_negated_parameter
from tests.part5_toy_saes import (
    COEFFS,
    D_IN,
    D_SAE,
    N_FEATS,
    N_INST,
    check_sae_forward,
    graft,
    random_hidden,
    reference_sae,
    twin,
)
from tests.part5a_sae_architectures_diagnosis import (
    AUXK_HINTS,
    BANDWIDTH,
    HALF_WINDOW,
    THETA_FACTORS,
    auxk_extra,
    auxk_output,
    gated_decode_options,
    grad_x_window,
    jumprelu_acts_options,
    ratio_pooled,
    recovery_extra,
    recovery_zero_norms,
    reduced_broadcast,
    threshold_window,
)

# --------------------------------------------------------------------------------------------
# Exercise 7: Gated SAE
# --------------------------------------------------------------------------------------------
GATED_D_IN = 4  # every size distinct (n_inst 3, d_in 4, d_sae 7): [inst d_sae] can't broadcast onto [inst d_in d_sae]


@checker("gated_forward", kind="class")
def test_gated_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref_a.GatedToySAE, impl, ("forward",))
    sae = reference_sae(cls, device, d_in=GATED_D_IN)  # d_in ≠ n_inst: a broadcast that lines them up raises
    reference = twin(sae, ref_a.GatedToySAE)
    h = random_hidden(48, N_INST, GATED_D_IN, device)
    hints = {
        "acts": "acts_post = 1[π_gate > 0] · ReLU(π_mag), with x = h - b_dec, π_gate = x @ W_enc + b_enc and "
        "π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "L_sparsity": "L_sparsity = ReLU(π_gate).sum(-1)",
        "L_aux": "L_aux = ((ReLU(π_gate) @ W_dec_normalized.detach() + b_dec.detach() - h) ** 2).mean(-1)",
        "loss": "loss = (L_reconstruction + sparsity_coeff · L_sparsity + L_aux), mean over the batch, sum over "
        "instances",
    }
    ingredients = {"acts": WR.gated_acts_weights, "h_reconstructed": WR.with_decoder_norms(gated_decode_options)}
    listed = [GS.gated_forward(reference, h, **b)[0]["L_aux"] for _, _, st, b in GS.GATED_MISTAKES if st == "L_aux"]
    DG.gated_aux(twin(sae, cls), reference, h, listed)  # acts and h_reconstructed right, L_aux not: its ingredients
    check_negated_parameter(twin(sae, cls), reference, h, "GatedToySAE.forward")  # e.g. exp(-r_mag)
    ER.error_reductions(twin(sae, cls), reference, h)  # L_reconstruction / L_aux as ‖e‖, Σ|e|, mean |e|
    DP.detached_path(twin(sae, cls), reference, h)  # values right, one path detached (b_dec in x, proj in a path)
    check_sae_forward(
        sae,
        reference,
        h,
        GS.gated_forward,
        GS.GATED_MISTAKES,
        hints=hints,
        ingredients=ingredients,
        solution=ref_a.GatedToySAE.forward,
    )
    return "gate and magnitude paths, three losses, gradients (the auxiliary path trains the gate only)"


# --------------------------------------------------------------------------------------------
# Exercise 8: Heaviside and JumpReLU
# --------------------------------------------------------------------------------------------


def _step_inputs(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """x near and far from positive thresholds (inside and outside the rectangle, and near 0), and an upstream
    gradient that is not 1. One x per row sits exactly on θ (the step is strict there: 1[x > θ] is 0, so `>=`
    shows); no x sits on an edge of the rectangle. Two x lie 6.4 and 7.3 below θ: there K((x - θ) · ε) is 0 too, so
    u multiplied by ε is told from no window at all (and x - θ/ε stays far from them)."""
    threshold = 0.3 + torch.rand(4, 62, device=device)
    u = torch.linspace(-6, 6, 50, device=device) + 0.013  # (x - threshold) / bandwidth
    x = torch.empty(4, 62, device=device)
    x[:, :50] = threshold[:, :50] + BANDWIDTH * u
    x[:, 50:55] = torch.tensor([-0.043, -0.021, 0.011, 0.033, 0.047], device=device)  # near 0: |x/ε| < 1/2
    x[:, 55:60] = -0.5 + 0.07 * torch.arange(5, device=device)
    x[:, 60:] = threshold[:, 60:] - torch.tensor([6.4, 7.3], device=device)
    x[:, 59] = threshold[:, 59]  # exactly on θ: u = 0, inside the rectangle, off the step
    grad_out = torch.randn(4, 62, device=device) + 0.5
    return x, threshold, grad_out


def _check_step_function(
    impl: Any,
    name: str,
    solution: type,
    fwd: Callable,
    dx: Callable,
    dth: Callable,
    device: torch.device,
    fwd_mistakes: list,
    x_mistakes: list,
    th_mistakes: list,
) -> None:
    if not (isinstance(impl, type) and issubclass(impl, torch.autograd.Function)):
        fail(
            f"{name} should be a torch.autograd.Function subclass (with .apply), got {impl!r:.60}",
            f"pass the class itself: test_...({name})",
            code="not_function",
        )
    x0, th0, g = _step_inputs(device)
    x, th = x0.clone().requires_grad_(True), th0.clone().requires_grad_(True)
    out = impl.apply(x, th, BANDWIDTH)
    if isinstance(out, Tensor) and out.dtype == torch.bool:
        fail(
            f"{name}.apply(x, threshold, bandwidth) returned a bool tensor",
            "a comparison gives bools, which carry no gradient: convert it to x's dtype, (x > threshold).to(x.dtype)",
            code="bool_output",
        )
    out = expect_tensor(out, f"{name}.apply(x, threshold, bandwidth)", shape=x.shape, dtype=x.dtype, device=device)
    if not torch.equal(x.detach(), x0) or not torch.equal(th.detach(), th0):
        fail(f"{name} changed its inputs in place", "compute a new tensor; don't edit x or threshold", code="in_place")
    on, want_out = fwd(x0, torch.full_like(th0, -torch.inf), BANDWIDTH), fwd(x0, th0, BANDWIDTH)
    if not any(torch.equal(out.detach(), fn(x0, th0, BANDWIDTH)) for _, _, fn in fwd_mistakes):
        TI.step_forward(out, want_out, on, x0, th0, BANDWIDTH, name, "1" if name == "Heaviside" else "x")
        PR.step_side_hint(out, want_out, x0, th0, name)
    expect_matches(
        out.detach(),
        want_out,
        f"{name} forward",
        [(code, hint, fn(x0, th0, BANDWIDTH)) for code, hint, fn in fwd_mistakes],
        hint=f"the forward pass is exactly {name}: see the table",
        code="forward",
        reference=call(solution.forward, SimpleNamespace(save_for_backward=lambda *saved: None), x0, th0, BANDWIDTH),
    )
    SG.dtype_kept(impl, name, x0, th0, BANDWIDTH)  # float64 / float16 x: the output keeps x's dtype
    if not out.requires_grad:
        hint = "a Function's output carries a gradient unless forward marks it: drop ctx.mark_non_differentiable(...)"
        fail(f"the output of {name} has no gradient", hint, code="no_grad")
    try:
        grad_x, grad_th = torch.autograd.grad((out * g).sum(), (x, th), allow_unused=True)
    except RuntimeError as err:
        SG.backward_error(err, name)
    grad_x = torch.zeros_like(x0) if grad_x is None else grad_x
    grad_th = torch.zeros_like(th0) if grad_th is None else grad_th
    want_x, want_th = dx(x0, th0, BANDWIDTH) * g, dth(x0, th0, BANDWIDTH) * g
    # the solution's backward, given what its forward saved and the upstream gradient g: (grad_x, grad_threshold)
    backward = lambda i: call(
        solution.backward, SimpleNamespace(saved_tensors=(x0, th0), bandwidth=BANDWIDTH), g, pick=lambda out: out[i]
    )

    def catalogue(mistakes: list, swapped: Tensor) -> list:
        return [(c, h, (fn(x0, th0, BANDWIDTH) * g) if fn is not None else swapped) for c, h, fn in mistakes]

    SL.grad_output_in_place(impl, name, (x0, th0, g), BANDWIDTH, (grad_x, grad_th), (want_x, want_th))
    PR.copied_backward(name, grad_x, grad_th, x0, th0, g, BANDWIDTH)
    PR.saved_order_hint(solution, x0, th0, g, BANDWIDTH, grad_x, grad_th, name)
    x_catalogue = catalogue(x_mistakes, SG.grad_x_copies_theta(grad_x, grad_th, want_x, want_th, name)) + [
        ("no_grad_output", "multiply by grad_output (the chain rule)", dx(x0, th0, BANDWIDTH))
    ] * (not torch.equal(dx(x0, th0, BANDWIDTH), torch.zeros_like(x0)))
    grad_x_window(name, grad_x, x0, th0, g, BANDWIDTH, [*x_catalogue, ("right", "", want_x)])
    expect_matches(
        grad_x,
        want_x,
        f"the gradient of {name} with respect to x",
        x_catalogue,
        hint="see the ∂/∂x column of the table, times grad_output",
        code="grad_x",
        reference=backward(0),
    )
    # where does the learner's threshold gradient live? The rectangle is 0 for |u| >= 1/2 (no x sits on an edge)
    outside = (grad_th.detach() != 0) & (M.rect((x0 - th0) / BANDWIDTH) == 0)
    th_hint, th_code = "see the ∂/∂θ column: -(factor/ε) · K((x - θ)/ε) · grad_output", "grad_threshold"
    what = f"the gradient of {name} with respect to threshold"
    th_catalogue = [
        *catalogue(th_mistakes, want_x),
        ("no_grad_output", "multiply by grad_output (the chain rule)", want_th / g),
    ]
    close = lambda a, b: a.shape == b.shape and torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5)
    # a catalogue mutant other than "zeros" is named first; a gradient merely 0 here is read at two bandwidths
    named = any(close(grad_th, v) for c, _, v in th_catalogue if c != "no_threshold_grad" and v is not None)
    if not close(grad_th, want_th) and not named:
        SG.theta_grad_slips(grad_th, x0, th0, g, BANDWIDTH, dth, name, impl)
        DG.theta_factor(impl, grad_th, x0, th0, g, name)  # another factor than 1 or θ, or another power of ε
        window = threshold_window(impl, torch.where(x0 == th0, 0.0, grad_th), bool(outside.any()))  # off θ
        if window is not None:
            th_code, th_hint = window
            if th_code != "kernel_shape":  # sure diagnoses, ahead of the catalogue
                expect_close(grad_th, want_th, what, th_hint, code=th_code)
        SG.zero_theta_grad(impl, grad_th, x0, th0, g, BANDWIDTH, dth, name)  # a tensor of zeros, not None
    each = "each element of threshold gets its own -(factor/ε) · K((x - θ)/ε) · grad_output: don't average or sum it"
    reduced_broadcast(grad_th, want_th, what, each + " over the batch (autograd sums over a broadcast θ by itself)")
    expect_matches(grad_th, want_th, what, th_catalogue, hint=th_hint, code=th_code, reference=backward(1))
    SG.theta_grad_alone(impl, name, x0, th0, g, BANDWIDTH, want_th)  # x not requiring grad, θ requiring it
    EI.small_threshold(impl, name, dth, BANDWIDTH)  # θ < ε/2: the window reaches below x = 0


@checker("heaviside", kind="class")
def test_heaviside(impl: Any, device: torch.device) -> str:
    _check_step_function(
        impl,
        "Heaviside",
        ref_a.Heaviside,
        fwd=lambda x, th, bw: (x > th).to(x.dtype),
        dx=lambda x, th, bw: torch.zeros_like(x),
        dth=lambda x, th, bw: -M.rect((x - th) / bw) / bw,
        device=device,
        fwd_mistakes=M.HEAVISIDE_FORWARD,
        x_mistakes=M.HEAVISIDE_GRAD_X,
        th_mistakes=[*M.HEAVISIDE_GRAD_TH, FR.HEAVISIDE_SAVED_OUTPUT],
    )
    SL.negative_threshold(impl, "Heaviside", BANDWIDTH)
    return "forward values and pseudo-derivatives"


@checker("jumprelu", kind="class")
def test_jumprelu(impl: Any, device: torch.device) -> str:
    _check_step_function(
        impl,
        "JumpReLU",
        ref_a.JumpReLU,
        fwd=lambda x, th, bw: x * (x > th).to(x.dtype),
        dx=lambda x, th, bw: (x > th).to(x.dtype),
        dth=lambda x, th, bw: -th * M.rect((x - th) / bw) / bw,
        device=device,
        fwd_mistakes=M.JUMPRELU_FORWARD,
        x_mistakes=[*M.JUMPRELU_GRAD_X, *PR.JUMPRELU_GRAD_X, *WR.OUTPUT_AS_THETA_X],
        th_mistakes=[*M.JUMPRELU_GRAD_TH, HALF_WINDOW, *THETA_FACTORS, *WR.OUTPUT_AS_THETA_TH],
    )
    SL.negative_threshold(impl, "JumpReLU", BANDWIDTH)
    return "forward values and pseudo-derivatives"


# --------------------------------------------------------------------------------------------
# Exercise 9: JumpReLU SAE
# --------------------------------------------------------------------------------------------
@checker("jumprelu_forward", kind="class")
def test_jumprelu_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref_a.JumpReLUToySAE, impl, ("forward",))
    # θ in [0.2, 0.5], ε = 0.3: many pre-activations in the window; the init threshold (a rival bandwidth) differs
    sae = reference_sae(cls, device, jumprelu_bandwidth=0.3, jumprelu_init_threshold=0.1)
    EI.small_threshold_latent(sae, 0.3)  # latent 0: θ = 0.05 < ε/2, negative pre inside its window
    reference = twin(sae, ref_a.JumpReLUToySAE)
    h = random_hidden(64, N_INST, D_IN, device)
    check_negated_parameter(twin(sae, cls), reference, h, "JumpReLUToySAE.forward")  # e.g. exp(-log_threshold)
    WR.jumprelu_l0_pooled(twin(sae, cls), reference, h)  # L_sparsity's Heaviside given a pooled θ
    LP.detached_term(twin(sae, cls), reference, h, {"L_sparsity": sae.sparsity_coeff, "L_reconstruction": 1})
    ER.error_reductions(twin(sae, cls), reference, h)  # L_reconstruction as ‖e‖ or Σ|e|
    DP.detached_path(twin(sae, cls), reference, h)
    check_sae_forward(
        sae,
        reference,
        h,
        IP.jumprelu_forward,
        IP.JUMPRELU_MISTAKES,
        ingredients={
            "acts": jumprelu_acts_options,
            "h_reconstructed": WR.with_decoder_norms(RB.jumprelu_decode_options),
        },
        hints={
            "acts": "acts_post = JumpReLU.apply(pre, θ, cfg.jumprelu_bandwidth) with pre = (h - b_dec) @ W_enc + b_enc "
            "and θ = exp(log_threshold)",
            "L_sparsity": "L_sparsity = Heaviside.apply(pre, θ, bandwidth).sum(-1)",
            "loss": "loss = (L_reconstruction + sparsity_coeff · L_sparsity), mean over the batch, sum over instances",
        },
        grad_hints={"log_threshold": (EI.THRESHOLD_GRAD_HINT, "threshold_grad")},
        solution=ref_a.JumpReLUToySAE.forward,
    )
    return "thresholded activations, L0 penalty, gradients reach the threshold"


# --------------------------------------------------------------------------------------------
# Exercise 10: TopK SAE
# --------------------------------------------------------------------------------------------
@checker("topk_forward", kind="class")
def test_topk_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref_a.TopKToySAE, impl, ("forward",))
    PR.topk_k_ignored(cls, device)
    PR.dtype_followed(cls, device, k=2)
    checked = []
    for k in (5, 2):  # 5 first: no size (n_inst 3, d_in 4, d_sae 7), root or ½ convention, so a factor k shows
        # non-zero sparsity coefficients: the TopK loss must ignore them
        sae = reference_sae(cls, device, k=k, sparsity_coeff=COEFFS)
        with torch.no_grad():
            sae.b_enc[0] -= 1.5  # instance 0 often has fewer than k positive pre-activations
            sae.b_enc[2] += 3.0  # instance 2 mostly has every latent positive: the k smallest are not zeros
        reference = twin(sae, ref_a.TopKToySAE)
        h = random_hidden(64, N_INST, D_IN, device)
        check_negated_parameter(twin(sae, cls), reference, h, "TopKToySAE.forward")
        ER.error_reductions(twin(sae, cls), reference, h)  # L_reconstruction as ‖e‖ or Σ|e|
        DP.detached_path(twin(sae, cls), reference, h)
        out = returned(sae(h.clone()), "forward")
        acts = out[2] if isinstance(out, tuple | list) and len(out) == 4 else None
        if isinstance(acts, Tensor) and acts.shape == (64, N_INST, k):
            fail(
                f"acts_post has shape {tuple(acts.shape)}: the top-k values, not scattered back",
                "scatter the values into zeros shaped [batch inst d_sae]: zeros_like(pre).scatter(-1, indices, values)",
                code="values_not_scattered",
            )
        if isinstance(acts, Tensor) and acts.shape == (64, N_INST, D_SAE) and acts.device.type != "meta":
            listed = SL.topk_listed_acts(reference, h)
            unlisted = not any(torch.allclose(acts.detach(), a.detach(), atol=1e-5) for a in listed)
            if unlisted:
                DG.topk_first_slots(acts, M.topk_forward(reference, h)[2], k)
                TP.misplaced_values(acts, M.topk_forward(reference, h)[2])  # right values, wrong latents
            if unlisted and (acts.detach() == 0).all():
                fail(
                    "acts_post is zero everywhere",
                    f"keep the k = self.cfg.k = {k} largest values per example (is your k 0, or another config field "
                    "such as aux_k?)",
                    code="all_zero",
                )
            if unlisted and (acts.detach() < 0).any():
                fail(
                    f"acts_post has {int((acts.detach() < 0).sum())} negative values",
                    NA.negative_acts_hint(acts, reference, h),
                    code="negative_acts",
                )
            if unlisted and ((acts.detach() != 0).sum(-1) > k).any():
                PR.topk_shared_indices(acts, k)
                OF.batch_topk(acts, reference, h, k)  # k·batch kept per instance over the batch (BatchTopK)
                fail(
                    f"some examples have {int((acts.detach() != 0).sum(-1).max())} non-zero latents, at most k={k} "
                    "expected",
                    "keep only the k largest values per example and zero the rest (topk over the d_sae axis)",
                    code="too_many_active",
                )
        hints = {
            "acts": f"acts_post keeps the k={k} largest values of ReLU((h - b_dec) @ W_enc + b_enc) per example, "
            "in place, zeros elsewhere",
            "loss": "loss = L_reconstruction, mean over the batch, sum over instances (no sparsity term)",
        }
        check_sae_forward(
            sae,
            reference,
            h,
            FR.topk_forward,
            FR.TOPK_MISTAKES,
            keys=("L_reconstruction",),
            hints=hints,
            ingredients={
                "acts": PR.topk_acts_options,
                "h_reconstructed": WR.with_decoder_norms(PR.topk_decode_options),
            },
            solution=ref_a.TopKToySAE.forward,
        )
        if "L_sparsity" in out[0]:
            ref_dict, _, ref_acts, _ = reference(h)
            OF.topk_l_sparsity(out[0]["L_sparsity"], ref_dict["L_sparsity"].detach(), k, D_SAE)
            value = expect_tensor(out[0]["L_sparsity"], "loss_dict['L_sparsity']", shape=(64, N_INST), device=device)
            if not torch.allclose(value.detach().to(h.dtype), ref_acts.detach().sum(-1), atol=1e-5):
                RL.every_latent_counted(value.to(h.dtype), ref_dict["L_sparsity"], "loss_dict['L_sparsity']", D_SAE)
                DG.per_example_broadcast(value.to(h.dtype), ref_dict["L_sparsity"], "loss_dict['L_sparsity']")
                D.relation_hint(value.to(h.dtype), ref_dict["L_sparsity"], "loss_dict['L_sparsity']", {"k": k})
            expect_matches(
                value.detach().to(h.dtype),
                ref_dict["L_sparsity"].detach(),
                "loss_dict['L_sparsity']",
                [("sparsity_l1", "L_sparsity counts the non-zero latents, not their sum", ref_acts.detach().sum(-1))],
                dims="batch inst",
                hint="L_sparsity = number of non-zero latents per example (for logging)",
                reference=call(ref_a.TopKToySAE.forward, reference, h, pick=lambda out: out[0]["L_sparsity"].detach()),
            )
        checked.append(k)
    TT.topk_tied_latents(cls, device)  # the k-th and (k+1)-th values equal: exactly k kept, by index
    return f"k = {checked}: at most k active, values in place, loss and gradients"


# --------------------------------------------------------------------------------------------
# Exercise 10b: AuxK
# --------------------------------------------------------------------------------------------
@checker("auxk_loss", kind="function")
def test_auxk_loss(impl: Callable, device: torch.device) -> str:
    n_inst, d_sae, d_in, k_aux, batch = 6, 8, 5, 3, 64  # k_aux is no size, nor the root of one
    pre = torch.randn(batch, n_inst, d_sae, device=device) - 0.5  # mostly negative: dead latents rarely fire
    pre[:, 3] += torch.linspace(-0.3, 0.3, d_sae, device=device)
    residual = 0.3 * torch.randn(batch, n_inst, d_in, device=device)
    W_dec = torch.nn.functional.normalize(torch.randn(n_inst, d_sae, d_in, device=device), dim=-1)
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device)
    dead[0, [1, 6]] = True  # fewer dead latents than k_aux: its count used for every instance shows
    dead[1, [2, 4, 7]] = True  # exactly k_aux dead latents
    dead[3, [0, 2, 3, 5, 7]] = True  # more than k_aux + 1; instance 2: none dead, so the loss is mean(residual²)
    dead[4, [1, 2, 5, 6]], dead[5] = True, torch.arange(d_sae, device=device) != 2  # more than k_aux: which k shows
    inputs = (pre.clone().requires_grad_(True), residual.clone(), dead.clone(), W_dec.clone().requires_grad_(), k_aux)
    auxk_output(out := returned(impl(*inputs), "auxk_loss"), batch, n_inst, d_in)
    out = expect_tensor(out, "auxk_loss(...)", shape=(batch, n_inst), dims="batch inst", dtype=pre.dtype, device=device)
    SL.auxk_in_place(inputs, {"pre": pre, "residual": residual, "dead": dead, "W_dec_normalized": W_dec})
    RB.auxk_float64(impl, pre, residual, dead, W_dec, k_aux, out)  # float64: float64-accurate
    IP.auxk_pooled_mask(impl, pre, residual, dead, W_dec, k_aux, out)  # dead.any(0): all True here
    expected = ref_a.auxk_loss(pre, residual, dead, W_dec, k_aux)
    expect_matches(
        out.detach(),
        expected,
        "auxk_loss",
        [
            (code, AUXK_HINTS.get(code, hint), M.auxk_variant(pre, residual, dead, W_dec, k_aux, **bug))
            for code, hint, bug in M.AUXK_MISTAKES
        ]
        + auxk_extra(pre, residual, dead, W_dec, k_aux, expected)
        + FR.auxk_causes(pre, residual, dead, W_dec, k_aux, expected)
        + FIT.auxk_offset(out, pre, residual, dead, W_dec, k_aux)
        + RB.auxk_inf_decoded(pre, residual, dead, W_dec, k_aux)
        + EI.auxk_readings(pre, residual, dead, W_dec, k_aux)
        + WR.auxk_first_instance(pre, residual, dead, W_dec, k_aux)
        + LK.auxk_k_lowered(pre, residual, dead, W_dec, k_aux),
        dims="batch inst",
        hint="mean over d_in of (residual - the dead latents' top-k_aux decoded)²",
        reference=call(ref_a.auxk_loss, pre, residual, dead, W_dec, k_aux),
    )
    wrt = (inputs[0], inputs[3])
    grad, dec_grad = torch.autograd.grad(out.sum(), wrt, allow_unused=True) if out.requires_grad else (None, None)
    if grad is None:
        fail("the loss has no gradient with respect to pre", "don't detach anything inside auxk_loss", code="no_grad")
    if dec_grad is None or not dec_grad.any():
        hint = "don't detach W_dec_normalized: the auxiliary loss trains the dead latents' decoder rows too"
        fail("no gradient reaches W_dec_normalized: the decoder is detached", hint, code="decoder_detached")
    pre_ref = pre.clone().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad(ref_a.auxk_loss(pre_ref, residual, dead, W_dec, k_aux).sum(), pre_ref)
    expect_matches(
        torch.zeros_like(pre) if grad is None else grad,
        ref_grad,
        "the gradient with respect to pre",
        [],
        dims="batch inst d_sae",
        hint="the gradient should reach exactly the chosen dead latents' pre-activations",
        code="grad",
    )
    return "dead latents only, before the ReLU, fewer dead than k_aux, mean over d_in, gradients"


# --------------------------------------------------------------------------------------------
# Exercise 11: metrics
# --------------------------------------------------------------------------------------------
def _acts(device: torch.device, batch: int = 1500) -> Tensor:
    acts = torch.relu(
        torch.randn(batch, N_INST, D_SAE, device=device) - torch.linspace(-0.5, 1.5, D_SAE, device=device)
    )
    acts[:, 0, 1] = 0.0  # a dead latent
    small = torch.tensor([5e-7, 5e-6, 5e-5, 5e-4, 5e-3, 0.03, 0.07], device=device)
    acts[5:12, 0, 2] = small  # tiny but non-zero activations: they count
    acts[5:12, 1, 6] = small.flip(0)
    acts[:, 1, 4:6] = 0.0
    acts[3, 1, 5] = 0.7  # fires once: alive, with a rate below 1e-3
    acts[:, 1, 0] = 0.0  # instance 1 has two dead latents: a count or a 0/1 flag differs from the fraction
    acts[:, 1, 2] = 0.3  # constant over the batch at a non-zero value: alive (std == 0 is not dead)
    acts[-1, :, 3], acts[-1, :, 6] = 0.2, 0.4  # the last example fires on latents 3 and 6 at least
    acts[:, 2, 0] = 0.0
    acts[9, 2, 0] = 1e-7  # alive with a mean activation below 1e-9
    return acts


def _metric(
    impl: Callable, args: tuple, what: str, shape: tuple, dims: str, device: torch.device, shapes: dict | None = None
) -> Tensor:
    """Call a metric; name a known wrong shape (`shapes`: {shape: (code, hint)}) or an int result (all fractional)."""
    try:
        out = returned(PR.unchanged_call(impl, args, what), what)
        if out is not None and not isinstance(out, Tensor):
            fail(f"{what} should be a torch.Tensor, got {type(out).__name__}", PR.NOT_TENSOR, code="not_tensor")
        if isinstance(out, Tensor) and tuple(out.shape) == shape:
            D.integer_fraction(out, what)
    except RuntimeError as err:
        if "could not infer output dtype" in str(err):
            fail(
                f"{what} raised RuntimeError: {err}",
                "a comparison gives a bool tensor, and a sum of bools an integer one: convert with .float() before "
                "taking a mean",
                code="int_mean",
            )
        raise
    if isinstance(out, Tensor) and tuple(out.shape) in (shapes or {}) and tuple(out.shape) != shape:
        code, hint = shapes[tuple(out.shape)]
        fail(f"{what} has shape {tuple(out.shape)}, expected {shape} ({dims})", hint, code=code)
    if isinstance(out, Tensor) and tuple(out.shape) != shape:
        names = "batch inst d_sae" if args[0].shape[-1] == D_SAE else "batch inst d_in"
        hint = OF.axes_hint(tuple(out.shape), dict(zip(names.split(), args[0].shape, strict=True)), dims)
        if hint:
            fail(f"{what} has shape {tuple(out.shape)}, expected {shape} ({dims})", hint, code="wrong_axes")
    if isinstance(out, Tensor) and out.dtype != torch.bool and not out.is_floating_point() and out.shape == shape:
        out = out.to(args[0].dtype)  # an integer count is fine where the values are integers
    out = expect_tensor(out, what, shape=shape, dims=dims, device=device)
    if out.is_floating_point() and torch.finfo(out.dtype).bits < torch.finfo(args[0].dtype).bits:
        fail(
            f"{what} returned {out.dtype} values for {args[0].dtype} inputs",
            f"keep the inputs' precision ({args[0].dtype}): a conversion such as .half() or .to(torch.float16) "
            "rounds the result (float16 keeps about 3 significant digits)",
            code="lower_precision",
        )
    if out.is_floating_point():  # a float64 result (a float64 literal, .double(), numpy) breaks the dtype contract
        expect_tensor(out, what, shape=shape, dims=dims, dtype=args[0].dtype, device=device)
    EI.single_instance(impl, args, what)  # n_inst = 1: a trailing .squeeze() returns a 0-d tensor
    RB.float64_kept(impl, args, what, got=out)  # float64 inputs: a .float() or torch.zeros(shape) shows
    return out if out.is_floating_point() else out.to(args[0].dtype)


# Catalogues of the last two metrics (the others are in tests.part5a_sae_architectures_mistakes)
def dead_mistakes(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    silent = (acts == 0).all(0).to(acts.dtype)
    return [
        ("count", "return a fraction of latents (divide by d_sae), not a count", silent.sum(-1)),
        (
            "any",
            "a latent is dead when it is zero on *every* example (all, not any)",
            (acts == 0).any(0).to(acts.dtype).mean(-1),
        ),
        (
            "zero_entries",
            "dead means zero on the whole batch, not a fraction of zero entries",
            (acts == 0).to(acts.dtype).mean((0, 2)),
        ),
        ("alive_fraction", "that is the fraction of latents *alive*: dead is 1 minus it", 1 - silent.mean(-1)),
        (
            "rate_threshold",
            "a latent that fires rarely is alive: dead means zero on every example, not a low firing rate",
            ((acts != 0).to(acts.dtype).mean(0) < 1e-3).to(acts.dtype).mean(-1),
        ),
        ("single_example", "check every example of the batch, not just one", (acts[-1] == 0).to(acts.dtype).mean(-1)),
        (
            "axes_swapped",
            "that is the fraction of *examples* on which every latent is zero: a latent is dead when it is zero on "
            "every example, (acts == 0).all(dim=0), then average over the latents",
            (acts == 0).all(-1).to(acts.dtype).mean(0),
        ),
        *[
            (
                "activity_threshold",
                "a latent with tiny but non-zero activations is alive: dead means exactly zero on every example, "
                "(acts == 0).all(0), not a small mean activation",
                (acts.mean(0) < t).to(acts.dtype).mean(-1),
            )
            for t in (1e-8, 1e-6, 1e-4)
        ],
        (
            "divided_by_batch",
            "divide the number of dead latents by d_sae (the number of latents), not by the batch size",
            silent.sum(-1) / acts.shape[0],
        ),
        *M.metric_extra("dead", acts),
        *PR.first_example("dead", acts),
    ]


def recovery_mistakes(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    d_hat = W_dec / W_dec.norm(dim=-1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", d_hat, f_hat)
    return [
        (
            "abs",
            "use the signed cosine: a latent pointing the opposite way has not found the feature",
            cos.abs().amax(1),
        ),
        ("mean", "take the max over latents, not the mean", cos.mean(1)),
        ("min", "take the *max* over latents (the best match), not the min", cos.amin(1)),
        ("squared", "return the cosine itself, not its square", cos.pow(2).amax(1)),
        ("unnormalized_dec", "normalise the decoder rows too", torch.einsum("isd,idf->isf", W_dec, f_hat).amax(1)),
        (
            "unnormalized_feat",
            "normalise the feature directions too",
            torch.einsum("isd,idf->isf", d_hat, W_feat).amax(1),
        ),
        (
            "unnormalized_both",
            "normalise both sets of directions: a cosine, not a dot product",
            torch.einsum("isd,idf->isf", W_dec, W_feat).amax(1),
        ),
        (
            "feat_norm_axis",
            "a feature's direction is a column of W_features (over d_in, dim=1): normalise over dim=1",
            torch.einsum("isd,idf->isf", d_hat, W_feat / W_feat.norm(dim=-1, keepdim=True)).amax(1),
        ),
        (
            "dec_norm_axis",
            "a latent's direction is a row of W_dec (over d_in, dim=-1): normalise over dim=-1",
            torch.einsum("isd,idf->isf", W_dec / W_dec.norm(dim=1, keepdim=True), f_hat).amax(1),
        ),
        (
            "feat_norm_axis",
            "a feature's direction is a column of W_features (over d_in, dim=1): normalise over dim=1, not over "
            "the instances",
            torch.einsum("isd,idf->isf", d_hat, W_feat / W_feat.norm(dim=0, keepdim=True)).amax(1),
        ),
        (
            "dec_norm_axis",
            "a latent's direction is a row of W_dec (over d_in, dim=-1): normalise over dim=-1, not over the instances",
            torch.einsum("isd,idf->isf", W_dec / W_dec.norm(dim=0, keepdim=True), f_hat).amax(1),
        ),
        (
            "global_norm",
            "normalise each decoder row and each feature column by its own norm, not by one norm of the whole tensor",
            torch.einsum("isd,idf->isf", W_dec / W_dec.norm(), f_hat).amax(1),
        ),
        (
            "global_norm",
            "normalise each decoder row and each feature column by its own norm, not by one norm of the whole tensor",
            torch.einsum("isd,idf->isf", d_hat, W_feat / W_feat.norm()).amax(1),
        ),
        *M.metric_extra("recovery", cos),
    ]


@checker("l0_norm", kind="function")
def test_l0_norm(impl: Callable, device: torch.device) -> str:
    acts = _acts(device)
    acts = SG2.with_tiny_values(acts)  # latents at 1e-9 / 1e-12: counted, but 0 after a float16 cast
    acts[:375, 0, 3:] = 0.5  # a heavy tail in instance 0: its mean count (≈2.7) is neither its median (2) nor whole
    shapes = {
        (acts.shape[0], N_INST): ("no_batch_mean", "average the per-example counts over the batch (dim 0)"),
        (): ("reduced_instances", "return one value per instance: don't average over instances too"),
    }
    out = _metric(impl, (acts,), "l0_norm(acts)", (N_INST,), "inst", device, shapes)
    mistakes = M.l0_mistakes(acts) + PR.first_example("l0", acts) + PR.l0_rounded(acts) + PR.l0_active_examples(acts)
    mistakes += PR.reshaped_inputs(ref_a.l0_norm, (acts,), "batch inst d_sae", "acts") + MS.l0_every_latent(acts)
    mistakes += EI.l0_smooth(acts) + SG2.l0_low_precision(acts) + MF.l0_threshold(out, acts, mistakes)  # t > 0
    RD.pooled_over_instances(out, ref_a.l0_norm(acts), mistakes, "l0_norm", "the batch and d_sae")
    expect_matches(
        out.detach(),
        ref_a.l0_norm(acts),
        "l0_norm",
        mistakes,
        dims="inst",
        hint="mean over the batch of the number of non-zero latents",
        reference=call(ref_a.l0_norm, acts),
    )
    return "per-instance mean count of active latents"


@checker("fraction_variance_explained", kind="function")
def test_fraction_variance_explained(impl: Callable, device: torch.device) -> str:
    h = torch.randn(97, N_INST, D_IN, device=device) * torch.tensor([0.3, 1.0, 2.0, 0.6], device=device) + 1.5
    h_rec = 0.9 * h + 0.4 * torch.randn_like(h) * torch.tensor([1.0, 0.2, 0.5], device=device)[:, None] + 0.1
    h_rec[:, 1] = 1.5 * h[:, 1].mean(0) - 0.5 * h_rec[:, 1]  # worse than the mean: FVE < 0 (about -1.3), not clamped
    shapes = {
        (): ("reduced_instances", "compute one value per instance: sum over batch and d_in only, not over instances"),
        (N_INST, D_IN): ("per_dim_unreduced", "sum over d_in as well as the batch before dividing (a ratio of sums)"),
    }
    out = _metric(impl, (h, h_rec), "fraction_variance_explained(h, h_rec)", (N_INST,), "inst", device, shapes)
    want, mistakes = ref_a.fraction_variance_explained(h, h_rec), M.fve_mistakes(h, h_rec) + PR.fve_extra(h, h_rec)
    mistakes += PR.fve_example_as_instance(h, h_rec) + PR.fve_std_denominator(h, h_rec) + MF.fve_summed(h, h_rec)
    mistakes += SL.percentage("fraction_variance_explained", want) + MS.fve_slips(h, h_rec)
    mistakes += SG2.fve_formula_slips(h, h_rec) + SG2.rounded("fraction_variance_explained", want)
    mistakes = [m for m in mistakes if m[2] is not None]  # an entry the sizes can't tell apart is None
    mistakes += PR.reshaped_inputs(ref_a.fraction_variance_explained, (h, h_rec), "batch inst d_in", "h and h_rec")
    sizes = {"batch": h.shape[0], "d_in": D_IN, "batch·d_in": h.shape[0] * D_IN}
    D.complement_factor_hint(out.detach(), want, mistakes, "instance", sizes)
    num, den = (h - h_rec).pow(2).sum((0, 2)).double(), (h - h.mean(0)).pow(2).sum((0, 2)).double()
    if D.uncatalogued(out.detach(), want, mistakes):
        MF.fve_degenerate_total(impl, out, h, h_rec)  # a total about 0: summed before squaring
        OF.fve_two_slips(out, h, h_rec)  # two slips among residual, total and aggregation, each named
        ratio_pooled(out, num, den)
        RD.fve_implied_total(out, h, h_rec)
    expect_matches(
        out.detach(),
        want,
        "fraction_variance_explained",
        mistakes,
        dims="inst",
        hint="1 - Σ(h - h_rec)² / Σ(h - mean(h))², sums over batch and d_in",
        reference=call(ref_a.fraction_variance_explained, h, h_rec),
    )
    SS.fve_small_scale(impl, h, h_rec, ref_a.fraction_variance_explained)  # totals < 1e-3: a floor on it bites
    return "ratio of sums, centred variance, per instance"


@checker("dead_latent_fraction", kind="function")
def test_dead_latent_fraction(impl: Callable, device: torch.device) -> str:
    acts = MS.with_tiny_alive(_acts(device))  # two latents alive only at values below 1e-8
    acts[:, 2, 4], acts[:, 0, 6] = 0.5, 0.6  # alive, zero on exactly n_inst (3) / d_sae (7) examples: a zero
    acts[10:13, 2, 4], acts[20:27, 0, 6] = 0.0, 0.0  # count compared with a size other than the batch shows
    small = torch.linspace(1e-3, 2e-3, acts.shape[0], device=device)
    acts[:, 2, 1], acts[:, 2, 5] = small, small.flip(0)  # alive, never an example's largest (but as argmax's ties)
    acts[11, 2, [1, 5]] = 0.0  # example 11 of instance 2 stays all zero
    acts[:, 0, 0], acts[:, 1, 1] = 0.0, 0.0  # 2, 3, 0 dead of 7: instance 0's is no mean (5/21) or max over them
    shapes = {
        (N_INST, D_SAE): ("per_latent", "average over the latents: the fraction of dead latents per instance"),
        (): ("reduced_instances", "return one value per instance: don't average over instances too"),
    }
    out = _metric(impl, (acts,), "dead_latent_fraction(acts)", (N_INST,), "inst", device, shapes)
    RD.dead_latent_reductions(impl, acts)  # a median (or min) over latents, on acts where it differs
    mistakes = [*dead_mistakes(acts), *PR.dead_count_sizes(acts), *PR.dead_never_largest(acts)]
    mistakes += SG2.dead_flag_readings(acts)
    mistakes, want = mistakes + FIT.dead_threshold(acts, mistakes), ref_a.dead_latent_fraction(acts)
    mistakes += SG2.rounded("dead_latent_fraction", want) + EI.dead_example_column(acts) + TI.dead_max_indices(acts)
    RD.pooled_over_instances(out, want, mistakes, "dead_latent_fraction", "the batch and d_sae")
    expect_matches(
        out.detach(),
        want,
        "dead_latent_fraction",
        mistakes,
        dims="inst",
        hint="fraction of latents with acts == 0 on every example of the batch",
        reference=call(ref_a.dead_latent_fraction, acts),
    )
    return "fraction of latents silent on the whole batch"


@checker("feature_recovery", kind="function")
def test_feature_recovery(impl: Callable, device: torch.device) -> str:
    W_feat, W_dec = MF.recovery_inputs(device, N_INST, D_IN, D_SAE, N_FEATS)  # feature 3 of inst 1: best cos < 0
    what = "feature_recovery(W_features, W_dec)"
    out = returned(PR.unchanged_call(impl, (W_feat, W_dec), what), what)
    OF.recovery_output(out, N_INST, N_FEATS)  # torch.max's (values, indices), or topk(1) keeping the latent axis
    if isinstance(out, Tensor) and out.shape == (N_INST, N_FEATS) and not out.is_floating_point():
        fail(
            f"feature_recovery returned {out.dtype} values: indices, not cosines?",
            "return the max cosine itself (.max(dim).values or .amax), not the index of the best latent",
            code="returned_indices",
        )
    if isinstance(out, Tensor) and out.shape == (N_INST, D_SAE):
        fail(
            f"feature_recovery returned shape {tuple(out.shape)} (one value per latent), expected (inst, feats)",
            "take the max over the latents (d_sae) for each feature, not over the features for each latent",
            code="max_over_features",
        )
    if isinstance(out, Tensor) and out.shape == (D_SAE, N_FEATS):
        fail(
            f"feature_recovery returned shape {tuple(out.shape)} (latents, feats), expected (inst, feats)",
            "take the max over the latents (dim 1 of the [inst d_sae feats] cosines), not over the instances",
            code="max_over_instances",
        )
    out = expect_tensor(out, what, shape=(N_INST, N_FEATS), dims="inst feats", dtype=W_feat.dtype, device=device)
    RB.float64_kept(impl, (W_feat, W_dec), what, got=out)  # dtype only: the eps conventions differ by ~1e-8
    expect_matches(
        out.detach(),
        ref_a.feature_recovery(W_feat, W_dec),
        "feature_recovery",
        recovery_mistakes(W_feat, W_dec)
        + recovery_extra(W_feat, W_dec)
        + RB.recovery_order_slips(W_feat, W_dec)
        + SG2.recovery_norm_slips(W_feat, W_dec)
        + MF.recovery_readings(W_feat, W_dec)
        + EI.recovery_angular(ref_a.feature_recovery(W_feat, W_dec))
        + SG2.rounded("feature_recovery", ref_a.feature_recovery(W_feat, W_dec)),
        dims="inst feats",
        hint="max over latents of cos(W_features[:, :, f], W_dec[:, j, :])",
        reference=call(ref_a.feature_recovery, W_feat, W_dec),
    )
    recovery_zero_norms(impl, W_feat, W_dec)
    EI.recovery_size_one(impl, W_feat, W_dec, what)  # n_inst = 1, n_feats = 1: a bare .squeeze() drops them
    return "best signed cosine per feature"
