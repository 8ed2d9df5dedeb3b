"""Named slips of part 5a's Gated forward read off one step each: a bias added after the ReLU that should act
inside it (π_mag's b_mag), and L_aux built otherwise than ReLU(π_gate) @ W_dec_normalized.detach() + b_dec.detach()
(its decoder rows normalised over the d_sae axis instead of d_in; the ReLU applied to the decoded vector instead of
to π_gate, before or after b_dec); L_sparsity as the number of open gates (an L0) instead of ReLU(π_gate)'s L1.

`gated_forward` extends `tests.part5a_sae_architectures_forward_readings.gated_forward`, so the checker passes
`GATED_MISTAKES` with it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests import part5a_sae_architectures_forward_readings as FR
from tests.checking import fail


def _total(sae: Any, d: dict[str, Tensor]) -> Tensor:
    return (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).mean(0).sum()


def gated_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`FR.gated_forward`, plus `bias_after_relu`: π_mag's ReLU before b_mag, ReLU((x @ W_enc)·exp(r_mag)) + b_mag;
    `aux_norm_dim=1`: L_aux's decoder W_dec / ‖W_dec‖ over d_sae; `aux_relu_decoded` ("inner" or "outer"): L_aux
    decodes π_gate and ReLUs the result, before adding b_dec ("inner") or after ("outer"); `sparsity_gate_count`:
    L_sparsity counts the open gates, (π_gate > 0).sum(-1)."""
    after, norm_dim = bug.pop("bias_after_relu", False), bug.pop("aux_norm_dim", None)
    relu_dec, gate_count = bug.pop("aux_relu_decoded", None), bug.pop("sparsity_gate_count", False)
    if not after and norm_dim is None and relu_dec is None and not gate_count:
        return FR.gated_forward(sae, h, **bug)
    d, _, acts, h_rec = FR.gated_forward(sae, h)
    proj = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc)
    gate = proj + sae.b_enc
    if after:
        acts = (gate > 0).to(h.dtype) * ((proj * sae.r_mag.exp()).relu() + sae.b_mag)
        h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
    if norm_dim is not None:
        W = sae.W_dec.detach()
        via = torch.einsum("bis,isd->bid", gate.relu(), W / W.norm(dim=norm_dim, keepdim=True)) + sae.b_dec.detach()
        d = d | {"L_aux": (via - h).pow(2).mean(-1)}
    if relu_dec is not None:
        decoded = torch.einsum("bis,isd->bid", gate, sae.W_dec_normalized.detach())
        b = sae.b_dec.detach()
        via = decoded.relu() + b if relu_dec == "inner" else (decoded + b).relu()
        d = d | {"L_aux": (via - h).pow(2).mean(-1)}
    if gate_count:
        d = d | {"L_sparsity": (gate > 0).to(h.dtype).sum(-1)}
    return d, _total(sae, d), acts, h_rec


_AUX = "L_aux = ((ReLU(π_gate) @ W_dec_normalized.detach() + b_dec.detach() - h) ** 2).mean(-1)"
GATED_MISTAKES = [
    *FR.GATED_MISTAKES,
    (
        "bias_after_relu",
        "your b_mag is added after the ReLU, ReLU((x @ W_enc) · exp(r_mag)) + b_mag, so a gated-on latent can be "
        "negative: the bias goes inside, ReLU(π_mag) with π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"bias_after_relu": True},
    ),
    (
        "aux_norm_axis",
        "your L_aux decoder rows are normalised over the d_sae axis (dim=1): each latent's row is normalised over "
        f"d_in (dim=-1), as W_dec_normalized already is; use it detached. {_AUX}",
        "L_aux",
        {"aux_norm_dim": 1},
    ),
    (
        "aux_relu_after_decoding",
        "your L_aux applies the ReLU to the decoded vector (ReLU(π_gate @ W_dec)): the ReLU acts on the gate "
        f"pre-activations before decoding, ReLU(π_gate) @ W_dec. {_AUX}",
        "L_aux",
        {"aux_relu_decoded": "inner"},
    ),
    (
        "aux_relu_after_decoding",
        "your L_aux applies the ReLU to the reconstruction (ReLU(π_gate @ W_dec + b_dec)): the ReLU acts on the "
        f"gate pre-activations before decoding, ReLU(π_gate) @ W_dec. {_AUX}",
        "L_aux",
        {"aux_relu_decoded": "outer"},
    ),
    (
        "sparsity_gate_count",
        "your L_sparsity counts the open gates, (π_gate > 0).sum(-1) (an L0, with no gradient): the Gated SAE's "
        "penalty is the L1 of the gate's ReLU, L_sparsity = ReLU(π_gate).sum(-1), which pushes π_gate down",
        "L_sparsity",
        {"sparsity_gate_count": True},
    ),
]


def magnitude_scale(acts: Any, reference: Any, h: Tensor) -> None:
    """Fail when acts_post is 1[π_gate > 0]·ReLU((x @ W_enc)·s + b_mag) with a per-latent scale s read back from the
    learner's values that is another function of r_mag than exp(r_mag) (r_mag itself, 1, exp(-r_mag), -r_mag,
    softplus and sigmoid are named elsewhere): e.g. 1 + r_mag, exp linearised. Silent when the values are not of
    that form."""
    if not isinstance(acts, Tensor) or acts.shape != (h.shape[0], *reference.b_enc.shape):
        return
    with torch.no_grad():
        proj = torch.einsum("bid,ids->bis", h - reference.b_dec, reference.W_enc)
        on = ((proj + reference.b_enc > 0) & (acts.detach() > 0)).to(h.dtype)
        a, r = acts.detach().to(h.dtype), reference.r_mag.detach()
        num, den = ((a - reference.b_mag) * proj * on).sum(0), (proj * proj * on).sum(0)
        s = torch.where(den > 0, num / den.clamp(min=1e-12), r.exp())  # least squares per latent
        fitted = (proj + reference.b_enc > 0).to(h.dtype) * (proj * s + reference.b_mag).relu()
    close = lambda x, y: torch.allclose(x, y, rtol=1e-4, atol=1e-5)
    named = (r.exp(), r, torch.ones_like(r), (-r).exp(), -r, torch.nn.functional.softplus(r), r.sigmoid())
    if not close(a, fitted) or any(close(s, v) for v in named):  # those are the catalogue's (DG.gated_acts_options)
        return
    read = "s ≈ 1 + r_mag (exp linearised)" if close(s, 1 + r) else "s another function of r_mag"
    fail(
        "acts_post is 1[π_gate > 0] · ReLU((x @ W_enc) · s + b_mag) with a per-latent scale s that is not exp(r_mag) "
        f"(read back: {read}; s[0, :3] = {[round(float(v), 4) for v in s[0, :3]]}, exp(r_mag)[0, :3] = "
        f"{[round(float(v), 4) for v in r.exp()[0, :3]]})",
        "the magnitude path scales each latent's projection by exactly exp(r_mag): π_mag = (x @ W_enc) · "
        "self.r_mag.exp() + b_mag",
        code="r_mag_scale",
    )


def loss_weights(learner: Any, reference: Any, h: Tensor) -> None:
    """Fail when the Gated loss (its loss_dict right) weights L_reconstruction or L_aux by a constant other than 1
    (and not 0: a term left out is named by the catalogue): the weights are solved from the learner's loss on four
    batches, loss = a·Σ mean(L_rec) + b·Σ coeff·mean(L_sparsity) + c·Σ mean(L_aux)."""
    rows, losses = [], []
    for scale, shift in ((1.0, 0.0), (0.6, 0.3), (1.4, -0.2), (0.8, 0.5)):
        x = h * scale + shift
        try:
            with torch.no_grad():
                out = learner(x.clone())
                ref_dict, _, _, _ = reference(x.clone())
        except Exception:  # the main comparison reports it
            return
        if not (isinstance(out, tuple | list) and len(out) == 4 and isinstance(out[1], Tensor) and out[1].numel() == 1):
            return
        rows.append([ref_dict["L_reconstruction"].mean(0).sum(), (reference.sparsity_coeff * ref_dict["L_sparsity"]
                     .mean(0)).sum(), ref_dict["L_aux"].mean(0).sum()])  # fmt: skip
        losses.append(out[1].detach().double().reshape(()))
    A, y = torch.tensor([[float(v) for v in r] for r in rows], dtype=torch.float64), torch.stack(losses)
    w = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    if (A @ w - y).abs().max() > 1e-4 * y.abs().max() or abs(float(w[1]) - 1) > 1e-3:
        return
    off = [(name, float(v)) for name, v in (("L_reconstruction", w[0]), ("L_aux", w[2])) if abs(float(v) - 1) > 1e-3]
    n_inst = reference.b_enc.shape[0]  # a term averaged over the instances (weight 1/n_inst) is the catalogue's
    if len(off) != 1 or min(abs(off[0][1]), abs(off[0][1] - 1 / n_inst)) < 1e-3:
        return
    name, c = off[0]
    fail(
        f"your loss weights {name} by {c:.4g} (read from your loss on four batches; the other terms are weighted "
        "right): loss = (L_reconstruction + sparsity_coeff · L_sparsity + L_aux), each term with weight 1",
        f"drop the factor {c:.4g} on {name}: the Gated loss adds the three terms as they are, mean over the batch, "
        "sum over instances",
        code="term_weight",
    )
