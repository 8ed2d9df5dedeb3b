"""Part 5a: one path of a forward cut by .detach() (read back from the loss's gradients on the checker's own SAE).

A detach leaves every value right (loss, loss_dict, acts_post, h_reconstructed) and changes only the gradients, so
the main comparison can say no more than "the gradients of b_dec are wrong: a term missing, extra or detached". Here
the reference forward is rebuilt with one path detached at a time, among the places a learner detaches too much:

* `enc_b_dec`: the encoder's input x = h - b_dec.detach() (b_dec then learns from the decoder only; the Gated L_aux
  is the one place b_dec is detached);
* `mag_proj` / `gate_proj` (Gated): x @ W_enc detached in the magnitude or the gate path only (that path then trains
  no encoder direction);
* `dec_W` / `dec_b_dec`: the main reconstruction decoded with W_dec_normalized.detach() or b_dec.detach() (the Gated
  L_aux's detaches copied into the main decoding).

When the learner's values are right and its loss gradients (over every parameter) equal one rebuilt forward's, the
detached path is named; otherwise nothing is said and the main comparison speaks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests.checking import fail
from tests.part5a_sae_architectures_loss_paths import _close, _flat

HINTS = {
    "enc_b_dec": "the encoder's input is x = h - b_dec with b_dec's gradient kept: your gradients are those of "
    "h - b_dec.detach() (b_dec then learns from the decoder only). Detach b_dec nowhere in the encoder",
    "mag_proj": "the magnitude path π_mag = (x @ W_enc) · exp(r_mag) + b_mag gets no gradient through x @ W_enc "
    "(your gradients are those of proj.detach() there): the shared directions W_enc learn from the reconstruction "
    "through the magnitude path, so keep its gradient",
    "gate_proj": "the gate path π_gate = x @ W_enc + b_enc gets no gradient through x @ W_enc (your gradients are "
    "those of proj.detach() there): L_sparsity and L_aux train W_enc through the gate, so keep its gradient",
    "dec_W": "the reconstruction decodes with a detached decoder (W_dec_normalized.detach()): only the Gated L_aux "
    "detaches it; h_reconstructed must train W_dec",
    "dec_b_dec": "the reconstruction adds a detached b_dec (b_dec.detach()): only the Gated L_aux detaches it; "
    "h_reconstructed must train b_dec",
}


def _encode(sae: Any, h: Tensor, cut: str) -> Tensor:
    b_dec = sae.b_dec.detach() if cut == "enc_b_dec" else sae.b_dec
    return torch.einsum("bid,ids->bis", h - b_dec, sae.W_enc)


def _decode(sae: Any, acts: Tensor, cut: str) -> Tensor:
    W = sae.W_dec_normalized.detach() if cut == "dec_W" else sae.W_dec_normalized
    b_dec = sae.b_dec.detach() if cut == "dec_b_dec" else sae.b_dec
    return torch.einsum("bis,isd->bid", acts, W) + b_dec


def gated_loss(sae: Any, h: Tensor, cut: str) -> Tensor:
    proj = _encode(sae, h, cut)
    gate = (proj.detach() if cut == "gate_proj" else proj) + sae.b_enc
    mag = (proj.detach() if cut == "mag_proj" else proj) * sae.r_mag.exp() + sae.b_mag
    h_rec = _decode(sae, (gate > 0).to(h.dtype) * mag.relu(), cut)
    via = torch.einsum("bis,isd->bid", gate.relu(), sae.W_dec_normalized.detach()) + sae.b_dec.detach()
    per = (h_rec - h).pow(2).mean(-1) + sae.sparsity_coeff * gate.relu().sum(-1) + (via - h).pow(2).mean(-1)
    return per.mean(0).sum()


def jumprelu_loss(sae: Any, h: Tensor, cut: str) -> Tensor:
    pre = _encode(sae, h, cut) + sae.b_enc
    theta, bw = sae.log_threshold.exp().expand_as(pre), sae.cfg.jumprelu_bandwidth
    h_rec = _decode(sae, ref_a.JumpReLU.apply(pre, theta, bw), cut)
    l0 = ref_a.Heaviside.apply(pre, theta, bw).sum(-1)
    return ((h_rec - h).pow(2).mean(-1) + sae.sparsity_coeff * l0).mean(0).sum()


def topk_loss(sae: Any, h: Tensor, cut: str) -> Tensor:
    pre = (_encode(sae, h, cut) + sae.b_enc).relu()
    top = pre.topk(sae.cfg.k, dim=-1)
    h_rec = _decode(sae, torch.zeros_like(pre).scatter(-1, top.indices, top.values), cut)
    return (h_rec - h).pow(2).mean(-1).mean(0).sum()


LOSSES = {
    ref_a.GatedToySAE: (gated_loss, ("enc_b_dec", "mag_proj", "gate_proj", "dec_W", "dec_b_dec")),
    ref_a.JumpReLUToySAE: (jumprelu_loss, ("enc_b_dec", "dec_W", "dec_b_dec")),
    ref_a.TopKToySAE: (topk_loss, ("enc_b_dec", "dec_W", "dec_b_dec")),
}


def detached_path(learner: Any, reference: Any, h: Tensor) -> None:
    """Name the one detached path that reproduces the learner's loss gradients, its values being right."""
    loss_fn, cuts = next(v for cls, v in LOSSES.items() if type(reference) is cls)
    try:
        found = _matching_cut(learner, reference, h, loss_fn, cuts)
    except Exception:  # a learner's forward this reading can't run: the main comparison speaks
        return
    if found is not None:
        fail(
            "your values are right but the loss's gradients are not: they are exactly those of the forward with one "
            f"path detached ({found})",
            HINTS[found],
            code=f"detached_{found}",
        )


def _matching_cut(learner: Any, reference: Any, h: Tensor, loss_fn: Any, cuts: tuple) -> str | None:
    out, want = learner(h.clone()), reference(h.clone())
    loss = out[1]
    if not (isinstance(loss, Tensor) and loss.requires_grad and loss.numel() == 1):
        return None
    for a, b in ((loss, want[1]), (out[2], want[2]), (out[3], want[3])):
        if not (isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.detach(), b, atol=1e-5)):
            return None
    names = [n for n, p in reference.named_parameters() if p.requires_grad]
    got, right = _flat(learner, loss.sum(), names), _flat(reference, want[1], names)
    if _close(got, right):
        return None
    for cut in cuts:
        if _close(got, _flat(reference, loss_fn(reference, h.clone(), cut), names)):
            return cut
    return None
