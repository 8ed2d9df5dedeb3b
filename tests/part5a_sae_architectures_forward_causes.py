"""Further named causes for the part 5a forwards: a Gated L_aux decoding ReLU(x @ W_enc) (b_enc left out of the
auxiliary path only), a JumpReLU reconstruction loss penalising each difference otherwise than by its square (the
shared penalties of `tests/loss_penalties.py`: L1, Huber, a higher power), JumpReLU activations multiplied by the
Heaviside gate again (the forward values unchanged, the threshold's gradient not), and an AuxK reconstruction
divided by k_aux.

Each forward here is the slips' forward (`tests.part5a_sae_architectures_slips`) extended with these bugs, so the
checkers pass the lists below with it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests import part5a_sae_architectures_mistakes as M
from tests import part5a_sae_architectures_probes as PR
from tests import part5a_sae_architectures_slips as SL
from tests.loss_penalties import _penalties

_REC = "L_reconstruction = ((h_reconstructed - h) ** 2).mean(-1): the square of each difference, mean over d_in"


def _pre(sae: Any, h: Tensor) -> Tensor:
    return torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc)


def gated_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`SL.gated_forward`, plus `aux_no_b_enc`: L_aux decodes ReLU(x @ W_enc), b_enc left out of the aux path;
    `mag="both"`: π_mag = (x @ W_enc) · exp(r_mag) + b_mag + b_enc; `mag="scaled_bias"`: π_mag = x @ W_enc + b_mag ·
    exp(r_mag); `sparsity_scaled`: L_sparsity = (ReLU(π_gate) · exp(r_mag)).sum(-1)."""
    mag, scaled = bug.pop("mag", None), bug.pop("sparsity_scaled", False)
    if mag is not None or scaled:
        d, _, acts, h_rec = SL.gated_forward(sae, h)
        proj, scale = _pre(sae, h), sae.r_mag.exp()
        if mag is not None:
            pi_mag = proj * scale + sae.b_mag + sae.b_enc if mag == "both" else proj + sae.b_mag * scale
            acts = ((proj + sae.b_enc) > 0).to(h.dtype) * pi_mag.relu()
            h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
            d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
        if scaled:
            d = d | {"L_sparsity": ((proj + sae.b_enc).relu() * scale).sum(-1)}
        loss = (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).mean(0).sum()
        return d, loss, acts, h_rec
    if not bug.get("aux_no_b_enc"):
        return SL.gated_forward(sae, h, **bug)
    d, _, acts, h_rec = SL.gated_forward(sae, h)
    via = torch.einsum("bis,isd->bid", _pre(sae, h).relu(), sae.W_dec_normalized.detach()) + sae.b_dec.detach()
    d = d | {"L_aux": (via - h).pow(2).mean(-1)}
    loss = (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).mean(0).sum()
    return d, loss, acts, h_rec


GATED_CAUSES = [
    (
        "aux_no_b_enc",
        "your L_aux decodes ReLU(x @ W_enc), without b_enc: the auxiliary path decodes the gate's own activations "
        "ReLU(π_gate) with π_gate = x @ W_enc + b_enc, the same π_gate whose sign gates the main path",
        "L_aux",
        {"aux_no_b_enc": True},
    ),
    (
        "mag_both_biases",
        "your magnitude path adds b_enc as well as b_mag: b_enc is the gate's bias only. π_gate = x @ W_enc + b_enc "
        "and π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"mag": "both"},
    ),
    (
        "r_mag_scales_b_mag",
        "your exp(r_mag) rescales b_mag instead of the projection (x @ W_enc + b_mag · exp(r_mag)): π_mag = "
        "(x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"mag": "scaled_bias"},
    ),
    (
        "sparsity_r_mag_scaled",
        "your L_sparsity multiplies ReLU(π_gate) by exp(r_mag): the magnitude scaling belongs to the magnitude path "
        "only. L_sparsity = ReLU(π_gate).sum(-1)",
        "L_sparsity",
        {"sparsity_scaled": True},
    ),
]


def jumprelu_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`SL.jumprelu_forward`, plus `penalty=f`: L_reconstruction = f(h_rec - h).mean(-1); `gate_twice`: acts_post =
    JumpReLU(pre, θ, ε) · Heaviside(pre, θ, ε)."""
    penalty, twice = bug.pop("penalty", None), bug.pop("gate_twice", False)
    if penalty is None and not twice:
        return SL.jumprelu_forward(sae, h, **bug)
    d, _, acts, h_rec = SL.jumprelu_forward(sae, h)
    if twice:
        pre = _pre(sae, h) + sae.b_enc
        theta, eps = sae.log_threshold.exp().expand_as(pre), sae.cfg.jumprelu_bandwidth
        acts = ref_a.JumpReLU.apply(pre, theta, eps) * ref_a.Heaviside.apply(pre, theta, eps)
        h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
    if penalty is not None:
        d = d | {"L_reconstruction": penalty(h_rec - h).mean(-1)}
    return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec


def penalty_causes() -> list:
    """A forward's L_reconstruction penalising each difference otherwise than by its square (the shared penalties:
    L1, Huber, a higher power), as (code, hint, stage, bug) entries for the forwards taking `penalty=f`."""
    return [
        (
            code,
            f"your L_reconstruction is the mean over d_in of {name.format(t='h')} (with out = h_reconstructed): it "
            f"penalises each difference otherwise than by its square. {_REC}",
            "L_reconstruction",
            {"penalty": f},
        )
        for code, name, f, _ in _penalties()
    ]


JUMPRELU_CAUSES = penalty_causes()
JUMPRELU_CAUSES += [
    (
        "gate_applied_twice",
        "your activations are multiplied by the gate twice (JumpReLU.apply(pre, θ, ε) · Heaviside.apply(pre, θ, ε), "
        "or another extra Heaviside factor): the values are unchanged (the gate is 0 or 1), but the extra factor adds "
        "its own threshold gradient (acts · ∂H/∂θ) and removes JumpReLU's below θ. acts_post = JumpReLU.apply(pre, "
        "θ, ε) alone; Heaviside only gives L_sparsity",
        "grad",
        {"gate_twice": True},
    )
]
JUMPRELU_MISTAKES = [
    *M.JUMPRELU_MISTAKES,
    *PR.JUMPRELU_BANDWIDTH_MISTAKES,
    *PR.JUMPRELU_DECODE_MISTAKES,
    *SL.JUMPRELU_SLIPS,
    *JUMPRELU_CAUSES,
]


def auxk_causes(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int, expected: Tensor) -> list:
    """(code, hint, value) for auxk_loss's expect_matches: `SL.auxk_coeff`'s, and the decoded residual divided by
    k_aux."""
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    r_hat = torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, top.indices, values), W_dec)
    hint = (
        f"your decoded residual is divided by k_aux = {k_aux} (an average of the dead latents' contributions): the "
        "auxiliary reconstruction is their sum, dead_acts @ W_dec_normalized (no division); the loss is the mean "
        "over d_in of (residual - that sum)²"
    )
    value = (residual - r_hat / k_aux).pow(2).mean(-1).detach()
    loss = lambda idx, v: residual - torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, idx, v), W_dec)
    mixed = loss(pre.topk(k_aux, dim=-1).indices, values).pow(2).mean(-1).detach()
    by_abs = torch.where(dead, pre, -torch.inf).abs().topk(k_aux, dim=-1).indices
    kept = torch.where(torch.gather(dead.expand_as(pre), -1, by_abs), pre.gather(-1, by_abs), 0.0)
    mixed_hint = (
        "your decoded values sit at the wrong latents: the indices come from a top-k of the unmasked pre-activations "
        "and the values from the dead-only top-k. Take indices and values from the same top-k of the masked tensor"
    )
    abs_hint = (
        "your top-k ranks |masked pre| (the -inf of live latents become +inf and win, then are zeroed): rank the "
        "dead latents' pre-activations themselves, live ones set to -inf, with no abs"
    )
    ranked = torch.where(dead, pre.relu(), -torch.inf).topk(k_aux, dim=-1).indices  # negative pre all tie at 0
    chosen = torch.where(dead.expand_as(pre).gather(-1, ranked), pre.gather(-1, ranked), 0.0)
    relu_rank_hint = (
        "your dead latents are ranked by ReLU(pre) (the values kept are pre's own): every negative pre-activation "
        "ties at 0 there, so which dead latents are chosen is arbitrary. Rank the pre-activations before any ReLU: "
        "torch.where(dead, pre, -inf).topk(k_aux, dim=-1), and keep those values"
    )
    return [
        *SL.auxk_coeff(expected),
        ("ranked_after_relu", relu_rank_hint, loss(ranked, chosen).pow(2).mean(-1).detach()),
        ("divided_by_k_aux", hint, value),
        ("auxk_mixed_indices", mixed_hint, mixed),
        ("auxk_abs_after_mask", abs_hint, loss(by_abs, kept).pow(2).mean(-1).detach()),
    ]
