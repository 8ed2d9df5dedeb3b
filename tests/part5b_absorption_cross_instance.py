"""absorption_fraction: when reordering the latents differently per instance moves the output, re-run with only
the OTHER instances' latents reordered, one instance at a time, and say which instances' fractions depend on
another instance's latents (an observation, not a guessed cause)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

RULE = (
    "each instance has its own parent latent, cos[:, :, p].argmax(-1) of shape [inst]; instance i reads only its "
    "own latents (acts[:, i, lat[i]], e.g. a gather over d_sae per instance), never another instance's latent and "
    "no reduction across instances"
)


def cross_instance_hint(impl: Callable, inputs: tuple, perm: Tensor, parent_of: list[int], base: Tensor) -> str:
    """The hint for a fraction that moved under per-instance latent reorderings: which instances changed when
    only the others' latents moved (instance k's own latents kept in place), then the rule."""
    features, acts, W_dec, W_feat = inputs
    ident = torch.arange(perm.shape[-1], device=perm.device)
    readers = []
    for k in range(perm.shape[0]):
        p = perm.clone()
        p[k] = ident
        args = (features, acts.gather(-1, p[None].expand_as(acts)), W_dec.gather(1, p[..., None].expand_as(W_dec)))
        try:
            out = impl(*(t.clone() for t in (*args, W_feat)), list(parent_of), cos_threshold=0.3)
        except Exception:
            continue
        if not isinstance(out, Tensor) or out.shape != base.shape or base.ndim == 0:
            continue
        if not torch.allclose(out[k].detach().to(base.dtype), base[k].detach(), rtol=1e-4, atol=1e-5):
            readers.append(k)
    if not readers:
        return RULE
    return (
        f"observed: the fraction of instance(s) {readers} changed when only the OTHER instances' latents were "
        f"reordered (its own latents kept in place), so it reads another instance's latents. "
        + RULE[0].upper()
        + RULE[1:]
    )
