"""Readings of a per-instance quantity shared across instances, in part 5a's JumpReLU forward and AuxK loss.

- `jumprelu_forward` / `JUMPRELU_MISTAKES`: `FR.jumprelu_forward` plus `theta_shared`: every instance given one
  row of thresholds, instance 0's ("first", e.g. log_threshold.exp()[0]) or their mean over instances ("mean");
  and `l0_counts`: L_sparsity counting pre without b_enc, or pre > 0, while acts_post is right.
- `auxk_pooled_mask`: the checker's dead mask has a latent dead in some instance for every latent, so a mask pooled
  over instances (dead.any(0)) is all True there and reads as "no mask". Called when the output is what an
  unmasked top-k gives: it re-runs the learner's function on a mask whose union over instances leaves latent 0
  out, where the pooled mask and no mask differ, and names the pooling when the output is the pooled one's; it first
  names a loss reduced over the batch (or the instances) and broadcast back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests import part5a_sae_architectures_diagnosis as DG
from tests import part5a_sae_architectures_forward_readings as FR
from tests import part5a_sae_architectures_mistakes as M
from tests.checking import expect_close


def jumprelu_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`FR.jumprelu_forward`, plus `theta_shared` ("first" or "mean"): one row of θ used for every instance, and
    `l0_counts` ("no_b_enc" or "zero"): L_sparsity's Heaviside given pre without b_enc, or a threshold of 0."""
    shared, counts = bug.pop("theta_shared", None), bug.pop("l0_counts", None)
    if counts is not None:
        d, _, acts, h_rec = FR.jumprelu_forward(sae, h)
        pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc * (counts != "no_b_enc")
        theta = sae.log_threshold.exp().expand_as(pre) * (counts != "zero")
        d = d | {"L_sparsity": ref_a.Heaviside.apply(pre, theta, sae.cfg.jumprelu_bandwidth).sum(-1)}
        return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec
    if shared is None:
        return FR.jumprelu_forward(sae, h, **bug)
    pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
    theta = sae.log_threshold.exp()
    theta = (theta[0] if shared == "first" else theta.mean(0)).expand_as(pre)
    bw = sae.cfg.jumprelu_bandwidth
    acts = ref_a.JumpReLU.apply(pre, theta, bw)
    h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
    d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": ref_a.Heaviside.apply(pre, theta, bw).sum(-1)}
    return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec


_SHARED = (
    "your thresholds are {} used for every instance: each instance has its own thresholds, θ = "
    "exp(log_threshold) of shape [inst d_sae], broadcast over the batch only (expand_as(pre)): don't index or "
    "reduce the instance axis"
)
JUMPRELU_MISTAKES = [
    *FR.JUMPRELU_MISTAKES,
    (
        "theta_first_instance",
        _SHARED.format("instance 0's (e.g. log_threshold.exp()[0])"),
        "acts",
        {"theta_shared": "first"},
    ),
    (
        "theta_pooled",
        _SHARED.format("their mean over instances (log_threshold.exp().mean(0))"),
        "acts",
        {"theta_shared": "mean"},
    ),
    (
        "l0_pre_no_b_enc",
        "your L_sparsity counts (h - b_dec) @ W_enc > θ, without b_enc, while acts_post (right) uses pre with b_enc: "
        "give Heaviside the same pre as JumpReLU, Heaviside.apply(pre, θ, bandwidth).sum(-1)",
        "L_sparsity",
        {"l0_counts": "no_b_enc"},
    ),
    (
        "l0_zero_threshold",
        "your L_sparsity counts the positive pre-activations (pre > 0), not those above the threshold θ: a latent "
        "between 0 and θ is off. Heaviside.apply(pre, θ, bandwidth).sum(-1), with θ = exp(log_threshold)",
        "L_sparsity",
        {"l0_counts": "zero"},
    ),
]


_POOLED = (
    "your dead mask is pooled over instances (e.g. dead.any(0)): a latent dead in one instance is taken as dead in "
    "every instance. Each instance has its own dead latents: mask with the whole [inst d_sae] mask, "
    "torch.where(dead, pre, -inf) (broadcast over the batch), before the top-k"
)


def auxk_pooled_mask(
    impl: Callable, pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int, out: Tensor
) -> None:
    """Fail with code dead_mask_pooled when `out` is the unmasked top-k's loss on the checker's inputs (where the
    pooled mask is all True) and, on a mask with latent 0 alive in every instance, the learner's loss is the
    pooled mask's and not the unmasked one's. Silent otherwise (also when the function fails there). First, a loss
    that is the right one averaged or summed over the batch (or the instances) and broadcast back is named."""
    right = ref_a.auxk_loss(pre, residual, dead, W_dec, k_aux)
    hint = "the loss is one number per example and instance: reduce over d_in only, (...).mean(-1)"
    DG.reduced_broadcast(out, right, "auxk_loss", hint, noun="loss", dims=("batch", "inst"))
    live = M.auxk_variant(pre, residual, dead, W_dec, k_aux, live=True)
    if out.shape != live.shape or not torch.allclose(out.detach().to(live.dtype), live, rtol=1e-4, atol=1e-5):
        return
    probe = dead.clone()
    probe[:, 0] = False  # latent 0 alive everywhere; the union over instances still holds every other latent
    pooled_mask = probe.any(0, keepdim=True).expand_as(probe)
    pooled = M.auxk_variant(pre, residual, pooled_mask, W_dec, k_aux)
    unmasked = M.auxk_variant(pre, residual, probe, W_dec, k_aux, live=True)
    if torch.allclose(pooled, unmasked, rtol=1e-4, atol=1e-5):
        return
    try:
        with torch.no_grad():
            got = impl(pre.detach().clone(), residual.clone(), probe.clone(), W_dec.detach().clone(), k_aux)
    except Exception:  # the checker's own steps report a function that fails
        return
    if not isinstance(got, Tensor) or got.shape != pooled.shape:
        return
    if torch.allclose(got.detach().to(pooled.dtype), pooled, rtol=1e-4, atol=1e-5):
        expected = ref_a.auxk_loss(pre, residual, probe, W_dec, k_aux)
        expect_close(
            got.detach().to(pooled.dtype),
            expected,
            "auxk_loss (with latent 0 alive in every instance)",
            _POOLED,
            code="dead_mask_pooled",
            dims="batch inst",
        )
