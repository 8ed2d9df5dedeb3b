"""Part 6 steering and ablation: logits changed after the run instead of the activation in a hook.

`logits_edited_after`: no hook at sae.hook_name changed the activation (none ran there, or each one returned the
activation it got unchanged, as a cache does), yet the logits differ from the clean ones. The change was then made
some other way: to the logits themselves (the clean logits plus coeff, or minus f, times the latent's direct logit
effect W_dec[latent] @ W_out[0] @ W_U, which leaves out the final LayerNorm), or at another hook point.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-4)


def logits_edited_after(
    edits: list, model: Any, sae: Any, tokens: Tensor, latent: int, out: Tensor, coeff: float | None = None
) -> None:
    """`edits`: the (activation received, activation returned) pairs of every hook the learner ran at sae.hook_name;
    `coeff` is None for an ablation. Runs only when the output matched nothing else."""
    if any(not torch.equal(a, b) for a, b in edits):
        return
    clean = model(tokens).double()
    got = out.detach().double()
    if got.shape != clean.shape or _close(got, clean):
        return
    effect = (sae.W_dec[latent] @ model.W_out[0] @ model.W_U).double()
    if coeff is not None:
        amount, task = coeff * torch.ones(clean.shape[:-1], dtype=clean.dtype, device=clean.device), "steer"
        sign, edit = "plus coeff", "act + coeff · W_dec[latent]"
    else:
        _, cache = model.run_with_cache(tokens, names_filter=sae.hook_name)
        amount, task = -sae.encode(cache[sae.hook_name])[..., latent].double(), "ablate"
        sign, edit = "minus f", "act − f · W_dec[latent] (f = sae.encode(act)[..., latent])"
    added = _close(got - clean, amount[..., None] * effect)
    where = "no hook changed the activation at sae.hook_name" + (
        " (a hook or cache read it and returned it unchanged)" if edits else " (none ran there)"
    )
    fail(
        f"{where}, yet your logits differ from the clean ones"
        + (f": they are exactly the clean logits {sign} × the latent's direct logit effect" if added else ""),
        (
            "the change was made to the logits after the run; the logit effect W_dec[latent] @ W_out[0] @ W_U leaves "
            "out the final LayerNorm, so it is not what the model does. "
            if added
            else "the change was made another way (to the logits after the run, or at another hook point?). "
        )
        + f"To {task}, change the activation in a hook at sae.hook_name, {edit}, and return that run's logits",
        code="logits_edited",
    )
