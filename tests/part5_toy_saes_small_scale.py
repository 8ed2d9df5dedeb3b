"""Probes at small but valid scales, where a guard, tolerance or threshold that the main inputs never reach bites.

forward: pre-activations of order 1e-4, inside (0, cfg.jumprelu_init_threshold]: ReLU keeps every positive one, so
a cut at a config value (F.threshold(pre, cfg.jumprelu_init_threshold, 0)) or a tolerance shows.
resample_advanced: an instance whose reconstruction losses are tiny but nonzero (max L² about 1e-12): the exercise
skips only an instance whose every loss is exactly 0, so a tolerance (w.max() < 1e-6) that skips it shows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
from tests.checking import fail


def small_preactivations(sae: ref.ToySAE, reference: ref.ToySAE, h: Tensor, call_forward: Callable) -> None:
    """acts_post of the learner's `sae` and the reference `reference` (same parameters) on a small-scale h."""
    acts = call_forward(sae, h)[2].detach()
    want = ref.ToySAE.forward(reference, h)[2].detach()
    if acts.shape != want.shape or torch.allclose(acts, want, rtol=1e-4, atol=1e-10):
        return
    zeroed = (acts == 0) & (want > 0)
    kept = want > 0
    pos = int(kept.sum())
    if zeroed.any() and torch.allclose(acts[~zeroed], want[~zeroed], rtol=1e-4, atol=1e-10):
        lo = float(want[zeroed].max())
        above = want[kept & ~zeroed]
        hi = float(above.min()) if above.numel() else float("inf")
        fields = [f"cfg.{n} = {v:g}" for n, v in vars(sae.cfg).items() if isinstance(v, float) and lo <= v < hi]
        cut = f"a cut at {fields[0]}" if fields else "a threshold or tolerance above 0"
        fail(
            f"on small inputs (pre-activations of order 1e-4) acts_post equals ReLU's except that {int(zeroed.sum())} "
            f"of {pos} positive activations, every one up to {lo:.3g}, were set to 0 (the smallest kept: {hi:.3g}); "
            f"this matches {cut}",
            "ReLU zeroes only pre-activations ≤ 0: acts_post = F.relu(pre) (or pre.clamp(min=0)); F.threshold at a "
            "config value, or a small-value tolerance, zeroes valid small activations",
            code="acts_threshold",
        )
    diff = (acts - want).abs()
    fail(
        f"on small inputs (pre-activations of order 1e-4) acts_post differs from ReLU((h - b_dec) @ W_enc + b_enc) at "
        f"{int((diff > 1e-4 * want.abs() + 1e-10).sum())}/{acts.numel()} positions (largest difference "
        f"{float(diff.max()):.3g}), while it matched on inputs of order 1",
        "a guard, eps or tolerance that changes small values (clamp_min, + eps, a threshold): compute ReLU exactly",
        code="small_scale",
    )


def tiny_loss_instance(impl: Callable, device: torch.device, call_resampler: Callable, reference_sae: Callable) -> None:
    """Instance 0: losses about 1e-6 (L² about 1e-12, nonzero); instance 1: losses of order 1. Nothing fires (b_enc
    = -100), latent 0 counts as live, latents 1..3 are dead: both instances' dead latents must be resampled."""
    n_inst, d_in, d_sae, batch = 2, 5, 4, 13
    sae = reference_sae(ref.ToySAE, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
    gen = torch.Generator().manual_seed(11)
    offset = (
        torch.randn(batch, n_inst, d_in, generator=gen).to(device) * torch.tensor([1e-3, 1.0], device=device)[:, None]
    )
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)
    h = sae.b_dec.detach() + offset
    sae.generate_batch = lambda batch_size: h[:batch_size].clone()
    frac = torch.zeros(4, n_inst, d_sae, device=device)
    frac[:, :, 0] = 0.2
    before = sae.W_dec.detach().clone()
    call_resampler(lambda: impl(sae, frac, 0.37, batch))
    changed = (sae.W_dec.detach() != before).any(-1)[:, 1:]  # [inst, dead latent]
    if not changed[0].any() and changed[1].all():
        l_rec = offset[:, 0].pow(2).mean(-1)
        fail(
            f"an instance whose reconstruction losses are tiny but nonzero (L_reconstruction up to "
            f"{float(l_rec.max()):.3g}, so L² up to {float(l_rec.max() ** 2):.3g}) was skipped: its dead latents "
            "were left alone, while the instance with losses of order 1 was resampled",
            "skip an instance only when every loss is exactly 0 (weights.sum() <= 0); a tolerance such as "
            "w.max() < 1e-6 skips instances whose losses are merely small",
            code="loss_tolerance",
        )
