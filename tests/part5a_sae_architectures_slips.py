"""Part 5a: one-token slips the generic mechanisms can't name by themselves (an exp added where it multiplies, an
L1 penalty in the loss while L0 is logged, top-k chosen by |pre|, the AuxK coefficient applied inside auxk_loss,
a percentage, one Frobenius norm per instance), and the step functions at negative thresholds (the table allows any
threshold: a ReLU habit `x > 0` in the x-gradient shows only there)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from solutions.part5_toy_saes import ToySAEConfig
from tests import part5a_sae_architectures_metric_readings as MR
from tests import part5a_sae_architectures_metric_slips as MS
from tests import part5a_sae_architectures_metric_variants as MV
from tests import part5a_sae_architectures_mistakes as M
from tests import part5a_sae_architectures_negative_theta as NT
from tests import part5a_sae_architectures_probes as PR
from tests.checking import fail

AUX_COEFF = ToySAEConfig.aux_coeff


def gated_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`M.gated_forward`, plus `r_mag_added`: π_mag = x @ W_enc + exp(r_mag) + b_mag (the scale added);
    `sparsity_dec_norms`: L_sparsity = Σ ReLU(π_gate) · ‖W_dec row‖ (the unnormalised rows' norms);
    `r_mag_decoder`: exp(r_mag) also scales the decoder rows in the main reconstruction; `coeff_on_aux`:
    sparsity_coeff multiplies L_aux instead of L_sparsity."""
    if bug.get("coeff_on_aux"):
        d, _, acts, h_rec = M.gated_forward(sae, h)
        per = d["L_reconstruction"] + d["L_sparsity"] + sae.sparsity_coeff * d["L_aux"]
        return d, per.mean(0).sum(), acts, h_rec
    if bug.get("sparsity_dec_norms") or bug.get("r_mag_decoder"):
        d, _, acts, h_rec = M.gated_forward(sae, h)
        if bug.get("sparsity_dec_norms"):
            gate = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
            d = d | {"L_sparsity": (gate.relu() * sae.W_dec.norm(dim=-1)).sum(-1)}
        if bug.get("r_mag_decoder"):
            W = sae.W_dec_normalized * sae.r_mag.exp()[..., None]
            h_rec = torch.einsum("bis,isd->bid", acts, W) + sae.b_dec
            d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
        per = d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
        return d, per.mean(0).sum(), acts, h_rec
    if not bug.get("r_mag_added"):
        return M.gated_forward(sae, h, **bug)
    d, _, _, _ = M.gated_forward(sae, h)
    x = h - sae.b_dec
    proj = torch.einsum("bid,ids->bis", x, sae.W_enc)
    acts = (proj + sae.b_enc > 0).to(h.dtype) * (proj + sae.r_mag.exp() + sae.b_mag).relu()
    h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
    d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
    per = d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
    return d, per.mean(0).sum(), acts, h_rec


GATED_MISTAKES = [
    *M.GATED_MISTAKES,
    (
        "r_mag_added",
        "exp(r_mag) is a per-latent *scale* of the magnitude path: π_mag = (x @ W_enc) · exp(r_mag) + b_mag (you added "
        "it: x @ W_enc + exp(r_mag))",
        "acts",
        {"r_mag_added": True},
    ),
    (
        "sparsity_decoder_norms",
        "your L_sparsity weights each latent's ReLU(π_gate) by the norm of its unnormalised decoder row ‖W_dec[i, "
        "s]‖ (the convention of Anthropic's April 2024 update, not asked here): L_sparsity = ReLU(π_gate).sum(-1), "
        "unweighted",
        "L_sparsity",
        {"sparsity_dec_norms": True},
    ),
    (
        "r_mag_scales_decoder",
        "your reconstruction scales each decoder row by exp(r_mag) too: r_mag belongs to the encoder's magnitude "
        "path only (π_mag = (x @ W_enc) · exp(r_mag) + b_mag); decode with W_dec_normalized as it is, "
        "h_reconstructed = acts_post @ W_dec_normalized + b_dec",
        "h_reconstructed",
        {"r_mag_decoder": True},
    ),
    (
        "sparsity_coeff_on_aux",
        "the sparsity coefficient applied to another loss term (L_aux) instead of L_sparsity: loss = "
        "(L_reconstruction + sparsity_coeff · L_sparsity + L_aux), mean over the batch, sum over instances",
        "loss",
        {"coeff_on_aux": True},
    ),
]


def jumprelu_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`PR.jumprelu_forward`, plus `loss_l1`: L_sparsity (the L0 count) logged right, the loss penalising the L1
    norm of acts_post instead."""
    if bug.get("soft_threshold"):
        d, _, acts, _ = M.jumprelu_forward(sae, h)
        pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
        soft = (pre - sae.log_threshold.exp()).relu()  # JumpReLU.apply(pre - θ, 0, ε): pre - θ where pre > θ
        h_rec = torch.einsum("bis,isd->bid", soft, sae.W_dec_normalized) + sae.b_dec
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
        return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), soft, h_rec
    if bug.get("b_enc_after"):  # JumpReLU(x @ W_enc, θ) + b_enc: the bias added to the activations
        d, _, _, _ = M.jumprelu_forward(sae, h)
        pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc)
        theta = sae.log_threshold.exp()
        acts = pre * (pre > theta).to(h.dtype) + sae.b_enc
        h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
        return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec
    if bug.get("decode_mask"):
        d, _, acts, _ = M.jumprelu_forward(sae, h)
        pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
        mask = (pre > sae.log_threshold.exp()).to(h.dtype)
        h_rec = torch.einsum("bis,isd->bid", mask, sae.W_dec_normalized) + sae.b_dec
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
        return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec
    if not bug.get("loss_l1"):
        return PR.jumprelu_forward(sae, h, **bug)
    d, _, acts, h_rec = M.jumprelu_forward(sae, h)
    return d, (d["L_reconstruction"] + sae.sparsity_coeff * acts.abs().sum(-1)).mean(0).sum(), acts, h_rec


JUMPRELU_SLIPS = [
    (
        "loss_l1_logged_l0",
        "your loss penalises the L1 norm of acts_post (Σ|acts|, the vanilla SAE's penalty) while L_sparsity logs the "
        "L0 count: the JumpReLU loss uses L_sparsity itself, L_reconstruction + sparsity_coeff · L_sparsity",
        "loss",
        {"loss_l1": True},
    ),
    (
        "soft_threshold",
        "your activations are pre - θ where kept (e.g. JumpReLU.apply(pre - θ, 0, ε)): a soft threshold that shrinks "
        "every kept value by θ. JumpReLU keeps pre itself above θ: acts_post = JumpReLU.apply(pre, θ, ε)",
        "acts",
        {"soft_threshold": True},
    ),
    (
        "relu_before_bias",
        "your activations are JumpReLU(x @ W_enc, θ) + b_enc: b_enc added after the nonlinearity, to the "
        "activations. It belongs to the pre-activation, before the JumpReLU: acts_post = JumpReLU.apply(pre, θ, ε) "
        "with pre = (h - b_dec) @ W_enc + b_enc",
        "acts",
        {"b_enc_after": True},
    ),
    (
        "decoded_mask",
        "h_reconstructed decodes the 0/1 mask (Heaviside(pre, θ), the L0 code) instead of the activations: decode "
        "acts_post, h_reconstructed = acts_post @ W_dec_normalized + b_dec",
        "h_reconstructed",
        {"decode_mask": True},
    ),
]


def topk_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`M.topk_forward`, plus `abs_then_relu`: the k largest |pre| chosen, their ReLU values kept; and
    `decoder_encoder`: W_dec_normalized transposed used as the encoder (tied weights); `argsort_ranks`: the
    indices argsort returns compared with k as if they were ranks (mask = argsort(desc) < k); `scatter_full`:
    scatter(-1, indices, ReLU(pre)) with the whole tensor as src (the first k latents' values land in the slots)."""
    if not any(bug.get(b) for b in ("abs_then_relu", "decoder_encoder", "argsort_ranks", "scatter_full")):
        return M.topk_forward(sae, h, **bug)
    d, _, _, _ = M.topk_forward(sae, h)
    W_enc = sae.W_dec_normalized.mT if bug.get("decoder_encoder") else sae.W_enc
    pre = torch.einsum("bid,ids->bis", h - sae.b_dec, W_enc) + sae.b_enc
    score = pre.abs() if bug.get("abs_then_relu") else pre.relu()
    idx = score.topk(sae.cfg.k, dim=-1).indices
    acts = torch.zeros_like(pre).scatter(-1, idx, pre.relu().gather(-1, idx))
    if bug.get("argsort_ranks"):
        acts = pre.relu() * (pre.relu().argsort(-1, descending=True) < sae.cfg.k)
    if bug.get("scatter_full"):
        acts = torch.zeros_like(pre).scatter(-1, idx, pre.relu())
    h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
    d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
    return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec


TOPK_MISTAKES = [
    *M.TOPK_MISTAKES,
    (
        "chosen_by_abs_pre",
        "choose the k largest values of ReLU(pre), not the k largest |pre|: a large negative pre-activation took a "
        "slot (and became 0 after the ReLU) that a positive one should have had",
        "acts",
        {"abs_then_relu": True},
    ),
    (
        "decoder_as_encoder",
        "your encoder is the decoder transposed (W_dec_normalized.mT, tied weights): this SAE has its own encoder, "
        "pre = (h - b_dec) @ W_enc + b_enc",
        "acts",
        {"decoder_encoder": True},
    ),
    (
        "argsort_as_ranks",
        "your mask is built from argsort's indices compared with k (argsort(desc) < k): argsort returns the index "
        "of the j-th largest latent, not each latent's rank (mask[j] = argsort(desc)[j] < k asks whether the j-th "
        "largest latent has an index "
        "below k). Use topk(k).indices and scatter the gathered values (or argsort twice to get ranks)",
        "acts",
        {"argsort_ranks": True},
    ),
    (
        "scatter_whole_src",
        "scatter(-1, indices, ReLU(pre)) takes src's first k entries along the last axis (src[..., j] for j < k), "
        "not the chosen latents' values: the first k latents' values landed in the chosen slots. Gather the "
        "values first: zeros_like(pre).scatter(-1, indices, ReLU(pre).gather(-1, indices)) (or topk's .values)",
        "acts",
        {"scatter_full": True},
    ),
]


def topk_listed_acts(reference: Any, h: Tensor) -> list[Tensor]:
    """acts_post of every catalogued TopK mistake at the acts stage."""
    return [topk_forward(reference, h, **bug)[2] for _, _, stage, bug in TOPK_MISTAKES if stage == "acts"]


def auxk_coeff(want: Tensor) -> list[tuple[str, str, Tensor]]:
    """The AuxK coefficient (cfg.aux_coeff) applied inside auxk_loss."""
    hint = (
        f"your values are {AUX_COEFF:.4g} × the expected ones, cfg.aux_coeff: auxk_loss returns the unweighted "
        "per-example loss; the forward multiplies by aux_coeff (once)"
    )
    return [("aux_coeff_inside", hint, want * AUX_COEFF)]


def percentage(name: str, want: Tensor) -> list[tuple[str, str, Tensor]]:
    """A fraction returned as a percentage (× 100)."""
    return [
        ("percentage", f"your values are 100 × the expected: return {name} as a fraction, not a percentage", 100 * want)
    ]


def recovery_more(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """`PR.recovery_more`, plus cosines divided by one Frobenius norm of each whole matrix per instance, and
    latents matched to features one-to-one (`MS.recovery_one_to_one`), and the latent picked by |cos|
    (`MV.recovery_abs_pick`)."""
    dots = torch.einsum("isd,idf->isf", W_dec, W_feat)
    norms = W_dec.norm(dim=(1, 2))[:, None, None] * W_feat.norm(dim=(1, 2))[:, None, None]
    hint = (
        "normalise each decoder row W_dec[i, j, :] and each feature column W_features[i, :, f] by its own norm "
        "(dim=-1 and dim=1), not each whole matrix by one (Frobenius) norm per instance"
    )
    one_to_one = MS.recovery_one_to_one(W_feat, W_dec)
    return [
        *PR.recovery_more(W_feat, W_dec),
        ("global_norm", hint, (dots / norms).amax(1)),
        *one_to_one,
        *MV.recovery_abs_pick(W_feat, W_dec),
        *MR.recovery_readings(W_feat, W_dec),
    ]


_TABLE = {  # name: (forward, ∂/∂x, ∂/∂θ) as in the exercise's table
    "Heaviside": (
        lambda x, th, bw: (x > th).to(x.dtype),
        lambda x, th, bw: torch.zeros_like(x),
        lambda x, th, bw: -M.rect((x - th) / bw) / bw,
    ),
    "JumpReLU": (
        lambda x, th, bw: x * (x > th).to(x.dtype),
        lambda x, th, bw: (x > th).to(x.dtype),
        lambda x, th, bw: -th * M.rect((x - th) / bw) / bw,
    ),
}


def negative_threshold(impl: Any, name: str, bandwidth: float) -> None:
    """Call the step function at negative thresholds (the table allows any threshold) and compare with the table.
    x spreads over (θ - 1, 1): some x lie in (θ, 0], where a ReLU habit (`x > 0` as well as `x > θ`) shows."""
    fwd, dx, dth = _TABLE[name]
    gen = torch.Generator().manual_seed(5)
    th0 = -0.45 - 0.5 * torch.rand(3, 40, generator=gen, dtype=torch.float64).float()
    x0 = th0 + torch.linspace(-0.93, 1.87, 40) + 0.0071  # no x on θ, on 0 or on a window edge
    g = torch.randn(3, 40, generator=gen, dtype=torch.float64).float() + 0.5
    x, th = x0.clone().requires_grad_(True), th0.clone().requires_grad_(True)
    try:
        out = impl.apply(x, th, bandwidth)
        grads = torch.autograd.grad((out * g).sum(), (x, th), allow_unused=True)
    except Exception:  # an error at negative thresholds alone: leave it to a clear comparison below
        return
    grad_x = torch.zeros_like(x0) if grads[0] is None else grads[0].detach()
    grad_th = torch.zeros_like(th0) if grads[1] is None else grads[1].detach()
    close = lambda a, b: torch.allclose(a.detach().to(b.dtype), b, rtol=1e-4, atol=1e-5)
    between = (x0 > th0) & (x0 <= 0)  # where `x > 0` and `x > θ` disagree
    seen = f"at negative thresholds (θ from {th0.min():.2f} to {th0.max():.2f}; the table allows any threshold)"
    want_out, want_x, want_th = fwd(x0, th0, bandwidth), dx(x0, th0, bandwidth) * g, dth(x0, th0, bandwidth) * g
    if not close(out, want_out):
        bad = ~torch.isclose(out.detach().to(x0.dtype), want_out, rtol=1e-4, atol=1e-5)
        where = "all of them where θ < x ≤ 0" if bool((bad == between).all()) else f"{int(bad.sum())} positions"
        fail(
            f"{name}'s forward is wrong {seen}: at {where}",
            NT.forward_hint(out, fwd, x0, th0, bandwidth),
            code="negative_threshold_forward",
        )
    if not close(grad_x, want_x):
        relu_habit = (dx(x0, th0, bandwidth) * (x0 > 0).to(x0.dtype)) * g
        if close(grad_x, relu_habit):
            fail(
                f"the gradient of {name} with respect to x is 0 {seen} where θ < x ≤ 0 (there the step is on), right "
                "elsewhere: your x-gradient is masked by `x > 0` as well as `x > θ`",
                "∂/∂x is 1[x > θ] alone (times grad_output): drop the extra `x > 0` (a ReLU habit; it only differs "
                "when θ < 0, but the function takes any threshold)",
                code="relu_mask_grad_x",
            )
        fail(
            f"the gradient of {name} with respect to x is wrong {seen}, right at the positive thresholds",
            NT.grad_x_hint(grad_x, dx, x0, th0, bandwidth, g),
            code="negative_threshold_grad_x",
        )
    if not close(grad_th, want_th):
        fail(
            f"the gradient of {name} with respect to threshold is wrong {seen}, right at the positive thresholds",
            NT.grad_th_hint(grad_th, dth, x0, th0, bandwidth, g, factor=name == "JumpReLU"),
            code="negative_threshold_grad_th",
        )


def grad_output_in_place(
    impl: Any, name: str, inputs: tuple[Tensor, Tensor, Tensor], bandwidth: float, got: tuple, want: tuple
) -> None:
    """When the gradients are wrong, re-run backward on a grad_output the checker keeps a copy of: a backward that
    edits grad_output in place (`grad_output.mul_(mask)`, `grad_output[x <= θ] = 0`) hands the edited values to
    every gradient computed after the edit, so the edit is named rather than the values it spoilt."""
    close = lambda a, b: a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5))
    if all(close(a, b) for a, b in zip(got, want, strict=True)):
        return
    x0, th0, g = inputs
    x, th, mine = x0.clone().requires_grad_(True), th0.clone().requires_grad_(True), g.clone()
    try:
        out = impl.apply(x, th, bandwidth)
        torch.autograd.grad(out, (x, th), grad_outputs=mine, allow_unused=True)
    except Exception:  # the checks that follow name a backward that fails
        return
    if torch.equal(mine, g):
        return
    changed = int((mine != g).sum())
    fail(
        f"{name}.backward changed grad_output in place ({changed}/{g.numel()} entries differ after the call), and "
        "its gradients are wrong",
        "grad_output is autograd's tensor, not yours to edit: an in-place op on it (grad_output.mul_(mask), "
        "grad_output[mask] = 0, *=) changes it for every gradient computed after that line; build new tensors "
        "(grad_output * mask, grad_output.masked_fill(...))",
        code="grad_output_in_place",
    )


def auxk_in_place(inputs: tuple, saved: dict[str, Tensor]) -> None:
    """Fail when auxk_loss edited one of the tensors it was given (compared with the checker's saved copies, in
    order), e.g. `residual -= residual_hat`, naming which."""
    changed = [k for a, (k, b) in zip(inputs, saved.items(), strict=False) if not torch.equal(a.detach(), b)]
    if changed:
        fail(
            f"auxk_loss changed its input{'s' * (len(changed) > 1)} {', '.join(changed)} in place: the caller's "
            "tensors are edited",
            "compute new tensors and leave the inputs as they are: residual - residual_hat, not residual -= "
            "residual_hat (nor masked_fill_ / scatter_ / += on an input)",
            code="in_place",
        )
