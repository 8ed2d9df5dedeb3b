"""resample_advanced on an instance with no live latent: the docstring's fallback.

The main check keeps a live latent in every instance, so the encoder scale (mean norm of the live latents' encoder
columns) is always defined there. The exercise also says "1.0 if no latent is alive": a mean over an empty set is NaN
in torch, so an instance whose latents are all dead gets NaN encoder columns unless the fallback is written. This
second, small call has one such instance (and one with a live latent, so a fallback applied everywhere shows too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from solutions import part5_toy_saes as ref
from tests.checking import fail

N_INST, D_IN, D_SAE, BATCH, SCALE = 2, 5, 3, 11, 0.37  # sizes distinct from each other and from the main check's


def all_dead_instance(impl: Callable, device: torch.device, call_resampler: Callable, reference_sae: Callable) -> None:
    """Instance 0: every latent dead (encoder columns = SCALE · unit direction); instance 1: latent 0 alive.
    `reference_sae` is the checker's SAE builder (tests.part5_toy_saes, which imports this module)."""
    sae = reference_sae(ref.ToySAE, device, n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, sparsity_coeff=0.1)
    gen = torch.Generator().manual_seed(5)
    h = (torch.randn(BATCH, N_INST, D_IN, generator=gen) + 1.0).to(device)
    sae.generate_batch = lambda batch_size: h[:batch_size].clone()
    frac = torch.zeros(4, N_INST, D_SAE, device=device)
    frac[:, 1, 0] = 0.2
    before = sae.W_enc.detach()[0].transpose(0, 1).clone()
    call_resampler(lambda: impl(sae, frac, SCALE, BATCH))
    enc = sae.W_enc.detach()[0].transpose(0, 1)  # [d_sae d_in], instance 0
    dec = sae.W_dec.detach()[0]
    if not torch.isfinite(enc).all():
        fail(
            "on an instance with no live latent (every latent dead), the new encoder columns are NaN/inf",
            "an instance with no live latent: use 1.0 as the scale, as the docstring says (the mean of an empty set of "
            "norms is NaN): scale = alive_norms.mean() if any latent is alive else 1.0",
            code="no_live_fallback",
        )
    lengths = enc.norm(dim=-1)
    if torch.allclose(lengths, torch.full_like(lengths, SCALE), rtol=1e-3):
        return
    if torch.equal(enc, before):
        fail(
            "an instance whose latents are all dead was left unchanged",
            "resample every dead latent, also in an instance with no live latent: use 1.0 as the scale there, "
            "as the docstring says",
            code="no_live_skipped",
        )
    ratio = (lengths / SCALE).tolist()
    fail(
        f"on an instance with no live latent, the new encoder columns have lengths {lengths.tolist()}, expected "
        f"resample_scale · 1.0 = {SCALE} each (lengths / resample_scale = {[round(r, 4) for r in ratio]})",
        "an instance with no live latent: use 1.0 as the scale, as the docstring says; the decoder rows there are "
        f"{'unit' if torch.allclose(dec.norm(dim=-1), torch.ones(D_SAE, device=device), rtol=1e-3) else 'not unit'}",
        code="no_live_fallback",
    )


def model_not_module_failure(kept: Any, model: torch.nn.Module) -> None:
    """init: self.model holds something other than a module, e.g. one of the toy model's weights (model.W)."""
    if kept is None or isinstance(kept, torch.nn.Module):
        return
    seen = type(kept).__name__ + (f" of shape {tuple(kept.shape)}" if isinstance(kept, torch.Tensor) else "")
    which = [n for n, p in model.named_parameters() if isinstance(kept, torch.Tensor) and kept is p]
    fail(
        f"self.model is a {seen}"
        + (f" (the toy model's parameter `{which[0]}`)" if which else "")
        + f", not the {type(model).__name__} passed in",
        "store the toy model itself, `self.model = model` (frozen with model.requires_grad_(False), which returns "
        "the model); generate_batch needs its generate_batch and W",
        code="model_not_module",
    )
