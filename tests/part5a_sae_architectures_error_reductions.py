"""Part 5a: how each example's error is reduced over d_in in the forwards' error losses.

L_reconstruction (Gated, JumpReLU, TopK) and the Gated SAE's L_aux are the MEAN over d_in of the SQUARED error
e = out - h. A learner who writes the error's Euclidean norm (`e.norm(dim=-1)`, `torch.linalg.norm`), its L1 norm
(`e.abs().sum(-1)`) or, for L_aux, its mean absolute value reduces each example's error otherwise. (The sum of
squares, the root of the mean square and the mean absolute value of the reconstruction error are catalogue entries
or shared readings already; they are not repeated here.)

`error_reductions` recomputes each such reduction of the reference's own error and names the one the learner's term
equals. It reads only a term whose inputs are right: acts_post and h_reconstructed must match the reference (else
the main comparison names what differs first), so the term's error is the reference's. `_dense_decoded` names an
L_reconstruction computed from the dense code (every latent decoded, before the gate, threshold or top-k).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part5a_sae_architectures_gated_slips as GS
from tests.checking import fail

_MSE = "the mean over d_in of the squared error, ((out - h) ** 2).mean(-1)"
_TERMS = {
    "L_reconstruction": "h_reconstructed - h",
    "L_aux": "ReLU(π_gate) @ W_dec_normalized.detach() + b_dec.detach() - h",
}


def _errors(reference: Any, h: Tensor, ref_rec: Tensor) -> dict[str, Tensor]:
    """Per term, the reference's error [batch inst d_in] (L_aux only for a Gated SAE)."""
    errors = {"L_reconstruction": ref_rec - h}
    if hasattr(reference, "r_mag"):
        x = h - reference.b_dec
        gate = F.relu(torch.einsum("bid,ids->bis", x, reference.W_enc) + reference.b_enc)
        errors["L_aux"] = torch.einsum("bis,isd->bid", gate, reference.W_dec_normalized) + reference.b_dec - h
    return errors


def _readings(key: str) -> list[tuple[str, str, Callable[[Tensor], Tensor]]]:
    """(code, what the learner computed, reduction of e over d_in)."""
    out = [
        ("error_norm", "the Euclidean norm of the error, e.norm(dim=-1) (the root of the SUM of squares)",
         lambda e: e.norm(dim=-1)),
        ("error_l1_sum", "the L1 norm of the error, e.abs().sum(-1)", lambda e: e.abs().sum(-1)),
    ]  # fmt: skip
    if key == "L_aux":  # L_reconstruction's mean |e| is the shared penalty reading `not_squared`
        out.append(("error_l1_mean", "the mean absolute error, e.abs().mean(-1)", lambda e: e.abs().mean(-1)))
    return out


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def error_reductions(learner: Any, reference: Any, h: Tensor) -> None:
    """Fail naming the reduction over d_in when a loss_dict error term of `learner` (the learner's class, the
    reference's parameters) is another reduction of the right error; silent otherwise."""
    try:
        with torch.no_grad():
            out = learner(h.clone())
            ref_dict, ref_loss, ref_acts, ref_rec = reference(h.clone())
    except Exception:  # the main comparison reports it
        return
    if not (isinstance(out, tuple | list) and len(out) == 4 and isinstance(out[0], dict)):
        return
    acts, rec = out[2], out[3]
    if hasattr(reference, "r_mag"):  # a Gated SAE: the magnitude path's scale read back from acts_post
        GS.magnitude_scale(acts, reference, h)
        loss = out[1] if isinstance(out[1], Tensor) and out[1].shape == ref_loss.shape else ref_loss
        terms_right = all(_close(out[0].get(k, h).detach().to(h.dtype), v) for k, v in ref_dict.items())
        if terms_right and not _close(loss.detach().to(h.dtype), ref_loss):
            GS.loss_weights(learner, reference, h)  # every term right: the weights the loss gives them
    if not all(isinstance(t, Tensor) for t in (acts, rec)) or not (
        _close(acts.detach().to(h.dtype), ref_acts) and _close(rec.detach().to(h.dtype), ref_rec)
    ):
        return
    for key, err in _errors(reference, h, ref_rec.detach()).items():
        got, want = out[0].get(key), ref_dict.get(key)
        if not isinstance(got, Tensor) or not isinstance(want, Tensor) or got.shape != want.shape:
            continue
        got = got.detach().to(h.dtype)
        if _close(got, want.detach()):
            continue
        for code, what, reduce in _readings(key):
            if _close(got, reduce(err.detach())):
                fail(
                    f"loss_dict[{key!r}] is {what}, with e = {_TERMS[key]}: each example's error is reduced over "
                    "d_in otherwise than by the mean of its squares",
                    f"yours is {what.split(',')[0]}: loss_dict[{key!r}] is {_MSE}. Square each coordinate of the "
                    "error, then average over d_in (no root, no absolute value, no sum)",
                    code=code,
                )
        if key == "L_reconstruction":
            _dense_decoded(reference, h, got)


def _dense_decoded(reference: Any, h: Tensor, got: Tensor) -> None:
    """Fail when L_reconstruction (h_reconstructed right) is the error of decoding the dense code, every latent's
    ReLU(pre) (ReLU(π_mag) for a Gated SAE) before the sparsity step: the loss then trains another reconstruction."""
    x = h - reference.b_dec
    proj = torch.einsum("bid,ids->bis", x, reference.W_enc)
    if hasattr(reference, "r_mag"):
        dense, what, step = F.relu(proj * reference.r_mag.exp() + reference.b_mag), "ReLU(π_mag)", "the gate"
    else:
        step = "the threshold" if hasattr(reference, "log_threshold") else "the top-k"
        dense, what = F.relu(proj + reference.b_enc), "ReLU(pre)"
    dense_rec = torch.einsum("bis,isd->bid", dense, reference.W_dec_normalized) + reference.b_dec
    if _close(got, (dense_rec - h).pow(2).mean(-1).detach()):
        fail(
            f"loss_dict['L_reconstruction'] is the squared error of decoding every latent's {what}, before "
            f"{step}; your h_reconstructed (right) is decoded from acts_post",
            "compute L_reconstruction from the h_reconstructed you return, ((h_reconstructed - h) ** 2).mean(-1): "
            "the loss must train the sparse reconstruction the SAE outputs",
            code="rec_loss_dense",
        )
