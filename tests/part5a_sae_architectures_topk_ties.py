"""Part 5a: TopK forward with latents tied at the k-th value.

Latents 3, 4, 5 are exact copies of latents 0, 1, 2 (encoder column, b_enc and decoder row), every pre-activation is
positive and k = 3 is odd, so in many examples the k-th and (k+1)-th largest pre-activations are equal. The contract
keeps exactly k latents (which of two tied copies is kept does not change h_reconstructed); a strict comparison with
the (k+1)-th value (`pre > pre.kthvalue(d_sae - k)`) drops both copies at the cut and keeps k - 1. Keeping k + 1 at a
tie (`pre >= k-th value`) is left alone: an existing proof accepts it (no ties in continuous data). The comparison is
tie-invariant: the sorted acts of each example and h_reconstructed. A mask `pre > (k+1)-th value` computed on the
checker's own pre-activations is read back; otherwise the observation is stated. Examples without a tie are not used.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests.checking import fail
from tests.part5_toy_saes import D_IN, N_INST, random_hidden, reference_sae, twin

K = 3


def topk_tied_latents(cls: type, device: torch.device) -> None:
    """`cls`: the learner's TopKToySAE (its forward grafted on the reference)."""
    sae = reference_sae(cls, device, k=K)
    learner, reference = twin(sae, cls), twin(sae, ref_a.TopKToySAE)
    h = random_hidden(64, N_INST, D_IN, device)
    with torch.no_grad():
        for m in (learner, reference):
            m.W_enc[:, :, 3:6] = m.W_enc[:, :, 0:3]
            m.b_enc.add_(4.0)
            m.b_enc[:, 3:6] = m.b_enc[:, 0:3]
            m._W_dec[:, 3:6] = m._W_dec[:, 0:3]
        pre = F.relu(einops.einsum(h - reference.b_dec, reference.W_enc, "b i d, i d s -> b i s") + reference.b_enc)
    try:
        want = reference(h.clone())
        got = learner(h.clone())
    except Exception:  # an error here alone: the main comparison speaks
        return
    srt = pre.sort(-1, descending=True).values
    tied = srt[..., K - 1] == srt[..., K]  # the k-th value has a copy just below the cut
    acts = got[2] if isinstance(got, tuple | list) and len(got) == 4 else None
    if not tied.any() or not isinstance(acts, Tensor) or acts.shape != pre.shape:
        return
    acts = acts.detach().to(pre.dtype)
    if not ((acts != 0).sum(-1)[tied] < K).any():  # `pre >= k-th value` (k + 1 kept at a tie) is an accepted variant
        return
    same = torch.allclose(acts.sort(-1).values, want[2].detach().sort(-1).values, atol=1e-5)
    if same and torch.allclose(got[3].detach().to(pre.dtype), want[3].detach(), atol=1e-5):
        return
    next_ = srt[..., K : K + 1]  # the (k+1)-th largest
    n = (acts != 0).sum(-1)
    seen = (
        f"with latents 3-5 exact copies of latents 0-2 and k = {K}, {int(tied.sum())} examples have the k-th and "
        f"(k+1)-th pre-activations equal; there yours keeps {sorted(set(n[tied].tolist()))} latents (k = {K} expected)"
    )
    if torch.allclose(acts, pre * (pre > next_).to(pre.dtype), atol=1e-5):
        fail(
            f"{seen}. Read back: keeping pre > the (k+1)-th largest value, e.g. pre > pre.kthvalue(d_sae - k), "
            "reproduces yours",
            "a strict comparison drops every latent tied at the cut: keep exactly k, by index: pre.topk(k, dim=-1) "
            "and scatter its values",
            code="topk_ties",
        )
    fail(
        seen,
        "keep exactly k latents per example, by index (pre.topk(k, dim=-1)), even where values tie",
        code="topk_ties",
    )
