"""Named causes for the part 5a forwards read off one ingredient each: the Gated gate pre-activation with b_mag
added, the JumpReLU threshold read in another base (10**, 2**, or log_threshold itself) and a JumpReLU bandwidth
scaled by the mean threshold, the TopK input ReLU'd or its encoder columns normalised, a Gated or TopK
reconstruction loss with another penalty (the shared `tests/loss_penalties.py`), Heaviside's backward reading the
saved output instead of x, and AuxK's decoder re-normalised over d_sae or decoded summed over instances.

Each forward extends `tests.part5a_sae_architectures_forward_causes` (itself the slips' forward), so the checkers
pass the lists below with it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests import part5a_sae_architectures_forward_causes as FC
from tests import part5a_sae_architectures_metric_measures as MM
from tests import part5a_sae_architectures_mistakes as M
from tests import part5a_sae_architectures_slips as SL


def _dec(acts: Tensor, sae: Any) -> Tensor:
    return torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec


def gated_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`FC.gated_forward`, plus `b_mag_in_gate`: π_gate = x @ W_enc + b_enc + b_mag; `scaled=(g, m)`: the gate
    path's projection times exp(r_mag) when g, the magnitude path's when m (the right one is (False, True));
    `penalty=f`: L_reconstruction = f(h_rec - h).mean(-1)."""
    penalty, in_gate = bug.pop("penalty", None), bug.pop("b_mag_in_gate", False)
    scaled = bug.pop("scaled", None)
    if penalty is None and not in_gate and scaled is None:
        return FC.gated_forward(sae, h, **bug)
    d, _, acts, h_rec = FC.gated_forward(sae, h)
    if in_gate or scaled is not None:
        proj = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc)
        s_gate, s_mag = scaled or (False, True)
        gate = (proj * sae.r_mag.exp() if s_gate else proj) + sae.b_enc + (sae.b_mag if in_gate else 0)
        acts = (gate > 0).to(h.dtype) * ((proj * sae.r_mag.exp() if s_mag else proj) + sae.b_mag).relu()
        h_rec = _dec(acts, sae)
        via = torch.einsum("bis,isd->bid", gate.relu(), sae.W_dec_normalized.detach()) + sae.b_dec.detach()
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": gate.relu().sum(-1)} | {
            "L_aux": (via - h).pow(2).mean(-1)
        }
    if penalty is not None:
        d = d | {"L_reconstruction": penalty(h_rec - h).mean(-1)}
    loss = (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).mean(0).sum()
    return d, loss, acts, h_rec


GATED_MISTAKES = [
    *SL.GATED_MISTAKES,
    *FC.GATED_CAUSES,
    (
        "b_mag_in_gate",
        "your gate pre-activation also adds b_mag: the two paths share W_enc but each has its own bias, π_gate = "
        "x @ W_enc + b_enc (no b_mag) and π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"b_mag_in_gate": True},
    ),
    (
        "r_mag_on_gate",
        "the two paths' scalings are swapped: your exp(r_mag) rescales the gate path, π_gate = (x @ W_enc) · "
        "exp(r_mag) + b_enc, and the magnitude path is left unscaled. It belongs on the magnitude path only: "
        "π_gate = x @ W_enc + b_enc and π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"scaled": (True, False)},
    ),
    (
        "r_mag_on_both",
        "your exp(r_mag) rescales both paths: it belongs on the magnitude path only, π_gate = x @ W_enc + b_enc "
        "(no exp(r_mag)) and π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"scaled": (True, True)},
    ),
    *FC.penalty_causes(),
]


def jumprelu_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`FC.jumprelu_forward`, plus `theta_base=b`: θ = b ** log_threshold (b None: θ = log_threshold itself);
    `bw_scale`: JumpReLU (not Heaviside) gets the bandwidth times the mean of θ."""
    if "theta_base" not in bug and not bug.get("bw_scale"):
        return FC.jumprelu_forward(sae, h, **bug)
    lt, bw = sae.log_threshold, sae.cfg.jumprelu_bandwidth
    pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
    base = bug.get("theta_base", torch.e)
    theta = (lt if base is None else lt.exp() if base == torch.e else base**lt).expand_as(pre)
    bw_acts = bw * lt.exp().mean().item() if bug.get("bw_scale") else bw
    acts = ref_a.JumpReLU.apply(pre, theta, bw_acts)
    h_rec = _dec(acts, sae)
    d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": ref_a.Heaviside.apply(pre, theta, bw).sum(-1)}
    return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec


def _base_hint(read: str) -> str:
    return (
        f"your threshold is {read}: the parameter is the natural log of θ, so θ = exp(log_threshold) "
        "(torch.exp, not 10 ** or 2 **), expanded to pre's shape, for both JumpReLU and Heaviside"
    )


JUMPRELU_MISTAKES = [
    *FC.JUMPRELU_MISTAKES,
    ("theta_base_10", _base_hint("10 ** log_threshold (a base-10 log read)"), "acts", {"theta_base": 10.0}),
    ("theta_base_2", _base_hint("2 ** log_threshold (a base-2 log read)"), "acts", {"theta_base": 2.0}),
    (
        "bandwidth_scaled",
        "your JumpReLU gets a bandwidth scaled by the threshold (ε · mean θ, a relative bandwidth): the values are "
        "unchanged, but the threshold's gradient window is not. Pass cfg.jumprelu_bandwidth itself to JumpReLU and "
        "Heaviside",
        "grad",
        {"bw_scale": True},
    ),
]


def topk_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`SL.topk_forward`, plus `relu_input`: the encoder reads ReLU(h - b_dec); `enc_normalised`: W_enc's columns
    (over d_in) normalised too; `penalty=f`: L_reconstruction = f(h_rec - h).mean(-1)."""
    penalty, relu_in, norm_enc = bug.pop("penalty", None), bug.pop("relu_input", False), bug.pop("enc_normalised", 0)
    twice = bug.pop("b_enc_twice", 0)  # b_enc added to pre a second time
    if penalty is None and not relu_in and not norm_enc and not twice:
        return SL.topk_forward(sae, h, **bug)
    d, _, acts, h_rec = SL.topk_forward(sae, h)
    if relu_in or norm_enc or twice:
        x = (h - sae.b_dec).relu() if relu_in else h - sae.b_dec
        W_enc = sae.W_enc / sae.W_enc.norm(dim=1, keepdim=True) if norm_enc else sae.W_enc
        pre = (torch.einsum("bid,ids->bis", x, W_enc) + sae.b_enc * (1 + twice)).relu()
        top = pre.topk(sae.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = _dec(acts, sae)
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
    if penalty is not None:
        d = d | {"L_reconstruction": penalty(h_rec - h).mean(-1)}
    return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec


TOPK_MISTAKES = [
    *SL.TOPK_MISTAKES,
    (
        "relu_on_input",
        "your encoder reads ReLU(h - b_dec): the ReLU belongs after the encoder, on the pre-activations, pre = "
        "ReLU((h - b_dec) @ W_enc + b_enc); the centred input h - b_dec keeps its negative entries",
        "acts",
        {"relu_input": True},
    ),
    (
        "encoder_normalised",
        "your encoder's columns are normalised too (W_enc / ‖W_enc‖ over d_in): only the decoder's rows are "
        "normalised (W_dec_normalized); the encoder is used as it is, pre = (h - b_dec) @ W_enc + b_enc",
        "acts",
        {"enc_normalised": True},
    ),
    (
        "b_enc_twice",
        "your pre-activations hold b_enc twice (pre already includes it, pre = (h - b_dec) @ W_enc + b_enc): add "
        "b_enc once, then ReLU and keep the top k",
        "acts",
        {"b_enc_twice": 1},
    ),
    *FC.penalty_causes(),
]

# Heaviside's backward reading the saved output H = 1[x > θ] in place of x: K((H - θ)/ε) is 1 only where H sits
# within ε/2 of θ, i.e. above θ for any x when θ is near 1 (and never below θ while θ > ε/2)
HEAVISIDE_SAVED_OUTPUT = (
    "saved_output",
    "your threshold gradient uses the forward's output where it needs x: K((H - θ)/ε) with H = 1[x > θ] is 1 only "
    "where θ is near 0 or 1, whatever x. Save x in forward (ctx.save_for_backward(x, threshold)), not the output",
    lambda x, th, bw: -M.rect(((x > th).to(x.dtype) - th) / bw) / bw,
)


def auxk_causes(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int, expected: Tensor) -> list:
    """(code, hint, value) for auxk_loss: `FC.auxk_causes`, the decoder re-normalised over d_sae, the decode summed
    over instances."""
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(pre).scatter(-1, top.indices, values)
    renorm = torch.einsum("bis,isd->bid", acts, torch.nn.functional.normalize(W_dec, dim=1))
    summed = torch.einsum("bis,isd->bd", acts, W_dec)[:, None, :]
    loss = lambda r_hat: (residual - r_hat).pow(2).mean(-1).detach()
    return [
        *FC.auxk_causes(pre, residual, dead, W_dec, k_aux, expected),
        *MM.auxk_error_measure(pre, residual, dead, W_dec, k_aux),
        (
            "decoder_renormalised_d_sae",
            "your decoder is re-normalised over dim=1 (the d_sae axis, each column across latents): W_dec_normalized "
            "is given with unit rows already; decode with it as it is, dead_acts @ W_dec_normalized",
            loss(renorm),
        ),
        (
            "decode_summed_over_instances",
            "your decode sums over the instance axis (an einsum output without inst, 'b i s, i s d -> b d'): each "
            "instance decodes its own dead latents with its own decoder, 'b i s, i s d -> b i d'",
            loss(summed),
        ),
        *[
            (
                f"dead_values_{name}",
                f"your loss decodes {name} of the chosen dead pre-activations: decode the k_aux pre-activations "
                "themselves (no function applied), scattered in place",
                loss(
                    torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, top.indices, f(top.values)), W_dec)
                ),
            )
            for name, f in (("sigmoid", torch.sigmoid), ("exp", torch.exp), ("softplus", torch.nn.functional.softplus))
        ],
    ]
