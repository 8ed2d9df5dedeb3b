"""absorption_fraction on two things the random inputs alone do not read back: a dead latent (its decoder row all
zero, never active), whose cosine must come out 0, not NaN (0/0, which argmax picks as the largest); and carriers
pooled across instances (one "some carrier is active" per example shared by every instance, as acts[:, mask]
with the [inst d_sae] mask gives), read back on the checker's own inputs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import fail


def _fractions(features, acts, W_dec, W_feat, parent_of, threshold, eps: float, pooled: bool) -> Tensor:
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + eps)
    W_feat_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + eps)
    cos = torch.einsum("isd,idf->isf", W_dec_hat, W_feat_hat)
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        latent = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= threshold
        carriers[torch.arange(len(latent)), latent] = False
        off = acts.gather(-1, latent.expand(acts.shape[0], -1).unsqueeze(-1)).squeeze(-1) == 0
        carried = ((acts > 0) & carriers).any(-1)
        if pooled:
            carried = carried.any(-1, keepdim=True).expand_as(carried)
        out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def _same(out: Tensor, value: Tensor) -> bool:
    return out.shape == value.shape and bool(torch.allclose(out.detach().to(value.dtype), value, atol=1e-5))


def pooled_carriers(impl: Callable, inputs: tuple, threshold: float = 0.3) -> None:
    """Code carriers_pooled when the output on the random inputs equals the reference with the carrier test pooled
    over instances (read back); anything else is left to the other readings."""
    features, acts, W_dec, W_feat, parent_of = inputs
    try:
        out = impl(
            features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=threshold
        )
    except Exception:
        return
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, list(parent_of), threshold)
    pooled = _fractions(features, acts, W_dec, W_feat, parent_of, threshold, 1e-8, True)
    if isinstance(out, Tensor) and not _same(out, expected) and _same(out, pooled):
        fail(
            "absorption_fraction on random inputs equals the reference with 'some other active latent carries p' "
            "pooled over instances: an example counts as carried in every instance when a carrier is active in ANY "
            "instance (read back)",
            "keep the instance axis: ((acts > 0) & carriers).any(-1) with carriers [inst d_sae] broadcast against "
            "acts [batch inst d_sae]; acts[:, carriers] with the boolean mask flattens every instance's carriers "
            "into one axis",
            code="carriers_pooled",
        )


def dead_decoder_row(impl: Callable, inputs: tuple, device) -> None:
    """Instance 0's latent 0 made dead (decoder row 0, never active): the output must equal the reference (cosine 0
    for that latent). Code dead_latent, with the NaN or the read-back of cosines without eps."""
    features, acts, W_dec, W_feat, parent_of = (t.clone() if isinstance(t, Tensor) else list(t) for t in inputs)
    W_dec[0, 0] = 0.0
    acts[:, 0, 0] = 0.0
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, list(parent_of), 0.3)
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=0.3)
    if not isinstance(out, Tensor) or out.shape != expected.shape or _same(out, expected):
        return
    no_eps = _fractions(features, acts, W_dec, W_feat, parent_of, 0.3, 0.0, False)
    seen = "NaN" if out.isnan().any() else f"{out[0].detach().cpu().tolist()}"
    fail(
        f"absorption_fraction with a dead latent (instance 0, latent 0: decoder row all zero, never active) gives "
        f"{seen} for instance 0, expected {expected[0].cpu().tolist()}"
        + (" (read back: cosines computed without eps, 0/0 = NaN, which argmax picks)" if _same(out, no_eps) else ""),
        "a zero decoder row has cosine 0 with every feature: normalise with an eps, W / (W.norm(dim=-1, keepdim=True) "
        "+ 1e-8), or F.normalize, so no NaN reaches argmax (torch.argmax treats NaN as the largest)",
        code="dead_latent",
    )
