"""Readings of a k lowered from the data, in part 5a's TopK forward and AuxK loss.

- `topk_k_from_data`: forward keeps the same number of latents with cfg.k = 2 and 3 on a batch where some example
  has fewer than k positive pre-activations, but follows k on a batch where every example has at least 3: k is
  computed from the batch (e.g. lowered to the fewest positive pre-activations), not taken from the config.
- `auxk_k_lowered`: catalogue entries for AuxK with one k' < k_aux used in every instance (a k_aux lowered to the
  fewest dead latents over instances, or a topk(k_aux - 1)); k' = instance 0's dead count is left to
  `part5a_sae_architectures_metric_variants.auxk_k_from_instance0`; and AuxK's values scattered at the positions
  within the dead subset (a loop over instances that forgets to map them back to latent indices)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part5a_sae_architectures_mistakes as M
from tests.checking import fail
from tests.part5_toy_saes import COEFFS, random_hidden, reference_sae


def _kept_and_positive(cls: type, device: torch.device, k: int, shift: float) -> tuple[Tensor, Tensor]:
    """(non-zero latents kept per example, positive pre-activations per example) for every instance of a
    reference-initialised SAE whose b_enc is raised by `shift` (instance 2 by 3 more)."""
    sae = reference_sae(cls, device, k=k, sparsity_coeff=COEFFS)
    with torch.no_grad():
        sae.b_enc += shift
        sae.b_enc[2] += 3.0
    h = random_hidden(64, sae.cfg.n_inst, sae.cfg.d_in, device)
    acts = sae(h)[2]
    with torch.no_grad():
        pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
    return (acts.detach() != 0).sum(-1).cpu(), (pre > 0).sum(-1).cpu()


def _fewest_two(cls: type, device: torch.device) -> list[tuple[Tensor, Tensor, int]]:
    """One (kept, positive, k = 3) run on a batch whose fewest positive count is 2 (b_enc raised until it is), so a
    k lowered to the fewest (2 kept) is told from other batch-dependent rules (1 or 3 kept); [] if none is found."""
    try:
        for shift in (1.0, 1.5, 2.0, 2.5):
            n, pos = _kept_and_positive(cls, device, 3, shift)
            if int(pos.min()) == 2:
                return [(n, pos, 3)]
    except Exception:  # the checker's own steps report a forward that fails
        return []
    return []


def topk_k_from_data(cls: type, device: torch.device, kept: list[int]) -> None:
    """Called when forward kept the same counts `kept` with cfg.k = 2 and 3 on the probe's batch: fail when it
    follows k on a batch where every example has at least 3 positive pre-activations. Silent on errors."""
    try:
        low = [_kept_and_positive(cls, device, k, 0.0) for k in (2, 3)]
        high = [_kept_and_positive(cls, device, k, 4.0) for k in (2, 3)]
    except Exception:  # the checker's own steps report a forward that fails
        return
    if any(int(pos.min()) < 3 for _, pos in high):
        return
    if not all(torch.equal(n, torch.full_like(n, k)) for (n, _), k in zip(high, (2, 3), strict=True)):
        return
    fewest = int(low[0][1].min())
    runs = [(n, pos, k) for (n, pos), k in zip(low, (2, 3), strict=True)] + _fewest_two(cls, device)
    lowered = all(torch.equal(n, torch.full_like(n, min(k, max(1, int(pos.min()))))) for n, pos, k in runs)
    cause = (
        f"Your counts are min(k, {max(1, fewest)}) in every example (read back): k is lowered to the fewest positive "
        "pre-activations in the batch (a min over examples)."
        if lowered
        else "The counts kept are not min(k, the batch's fewest positive), so the batch sets them some other way."
    )
    fail(
        f"acts_post keeps the same number of non-zero latents per example ({', '.join(map(str, kept[:4]))}) with "
        f"cfg.k = 2 and with cfg.k = 3 on a batch where some example has only {fewest} positive pre-activation(s), "
        "but exactly k per example on a batch where every example has at least 3: the number kept depends on the "
        "batch",
        f"k must be self.cfg.k whatever the data: topk(self.cfg.k, dim=-1). {cause} An example with fewer than k "
        "positive values needs no guard: its top k includes zeros, and ReLU keeps them 0",
        code="k_from_data",
    )


def auxk_k_lowered(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list:
    """(code, hint, value): the reference AuxK loss with k' dead latents kept in every instance, 1 ≤ k' < k_aux
    (k' = 0, nothing decoded, is the diagnosis catalogue's nothing_decoded)."""
    fewest = int(dead.sum(-1).min())
    masked = torch.where(dead, pre, -torch.inf)
    out = []
    for k in range(1, k_aux):
        if k == int(dead[0].sum()):  # instance 0's count for every instance: metric_variants' k_from_instance0
            continue
        top = masked.topk(k, dim=-1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        loss = (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2).mean(-1)
        causes = []
        if k in (fewest, max(fewest, 1)):
            floor = ", floored at 1" if k != fewest else ""
            causes.append(
                f"k_aux lowered to the fewest dead latents over instances, dead.sum(-1).min() = {fewest}{floor}"
            )
        if k == k_aux - 1:
            causes.append("topk(k_aux - 1)")
        why = f". Possible causes: {'; '.join(causes)}" if causes else ""
        hint = (
            f"your loss equals the reference with only {k} dead latent(s) kept per example in every instance, not "
            f"k_aux = {k_aux}{why}. Use topk(k_aux) in every instance; where an instance has fewer than k_aux dead "
            "latents, the extra picks are -inf values: replace them by 0 before decoding"
        )
        out.append(("k_aux_lowered", hint, loss.detach()))
    return [*out, _subset_positions(pre, residual, dead, W_dec, k_aux), *_summed(pre, residual, dead, W_dec, k_aux)]


def _summed(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list:
    """Two slips: each catalogue mistake of `M.AUXK_MISTAKES` with the sum over d_in instead of the mean (none equal
    to another or to the plain sum)."""
    d_in = residual.shape[-1]
    seen = [M.auxk_variant(pre, residual, dead, W_dec, k_aux, **bug) for _, _, bug in M.AUXK_MISTAKES]
    out: list = []
    for (code, hint, _), value in zip(M.AUXK_MISTAKES, seen, strict=True):
        if code == "sum_over_d_in":
            continue
        summed = value * d_in
        close = lambda v, s=summed: v.shape == s.shape and torch.allclose(v, s, rtol=1e-4, atol=1e-6)
        if any(close(v) for v in seen) or any(close(v) for _, _, v in out):
            continue
        out.append(
            ("sum_and_slip", f"two slips: the sum over d_in where the mean belongs, and {hint}", summed.detach())
        )
    return out


def _subset_positions(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> tuple:
    """The AuxK loss with each instance's top-k_aux taken over its dead latents only, pre[:, i, dead_idx], and the
    values scattered at the positions within that subset (0 .. n_dead - 1) instead of the latents they index."""
    acts = torch.zeros_like(pre)
    for i in range(pre.shape[1]):
        idx = dead[i].nonzero().squeeze(-1)
        if idx.numel():
            top = pre[:, i, idx].topk(min(k_aux, idx.numel()), dim=-1)
            acts[:, i] = acts[:, i].scatter(-1, top.indices, top.values)
    hint = (
        "your values land on the wrong latents: the top-k of the dead latents' pre-activations, pre[:, i, dead_idx], "
        "returns positions within that subset (0, 1, ...), not latent indices. Map them back, dead_idx[top.indices], "
        "before scattering (or mask the live latents with -inf and take the top-k over every latent)"
    )
    loss = (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2).mean(-1)
    return ("subset_positions", hint, loss.detach())
