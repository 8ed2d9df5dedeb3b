"""Part 5a metric slips, as catalogue entries (code, hint, value) built from the checker's own inputs: a dtype cast
before a zero test (an integer cast truncating |a| < 1 to 0 in l0_norm; a float16 cast rounding tiny activations to
0 in dead_latent_fraction), the FVE's ratio inverted, its total with the biased variance times (n - 1), its
residual a difference of norms; feature recovery picking the latent by |cos| but returning the signed cosine; the
AuxK k taken from instance 0's dead count for every instance.

Each entry is the right computation with one thing changed, so a correct implementation never meets one; an entry
equal to the right values on these inputs is left out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.loss_difference_of_squares import difference_of_squares

Mutant = tuple[str, str, Tensor]


def _differs(value: Tensor, right: Tensor) -> bool:
    return value.shape != right.shape or not torch.allclose(value, right, rtol=1e-4, atol=1e-6)


def l0_int_cast(acts: Tensor) -> list[Mutant]:
    """L0 counted after acts.int() (or .long()): truncation toward zero makes every |a| < 1 a zero, so only the
    latents with |a| >= 1 are counted."""
    right = (acts != 0).to(acts.dtype).sum(-1).mean(0)
    value = (acts.abs() >= 1).to(acts.dtype).sum(-1).mean(0)
    hint = (
        "your count is the number of latents with |a| ≥ 1: an integer cast (acts.int(), .long(), .to(int)) "
        "truncates every activation below 1 to 0 before the test. Compare the floats themselves: (acts != 0) "
        "or (acts > 0), then .sum(-1) and mean over the batch"
    )
    return [("int_cast", hint, value)] if _differs(value, right) else []


def dead_low_precision(acts: Tensor) -> list[Mutant]:
    """dead_latent_fraction tested after a cast to float16 / bfloat16: activations too small for that dtype
    round to 0, so latents alive only at tiny values count as dead."""
    right = (acts == 0).all(0).to(acts.dtype).mean(-1)
    entries: list[Mutant] = []
    for dtype, name in ((torch.float16, "float16 (.half())"), (torch.bfloat16, "bfloat16")):
        value = (acts.to(dtype) == 0).all(0).to(acts.dtype).mean(-1)
        if not _differs(value, right):
            continue
        info = torch.finfo(dtype)
        tiny = info.smallest_normal * info.eps / 2  # half the smallest subnormal: below it, the cast gives 0
        hint = (
            f"your dead set is the one a cast to {name} gives: activations below about {tiny:.2g} round to 0 in that "
            "dtype, so latents alive only at tiny values count as dead. Test the activations in their own dtype: "
            "(acts == 0).all(dim=0)"
        )
        entries.append(("low_precision_cast", hint, value))
    return entries


def fve_ratio_slips(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """FVE with the ratio inverted (1 - total / residual), the total as the biased variance times (n - 1) (the
    centred sum of squares off by (n - 1) / n), and the residual a difference of norms per example."""
    n = h.shape[0]
    res = (h - h_rec).pow(2).sum((0, 2))
    tot = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    right = 1 - res / tot
    entries: list[Mutant] = [
        (
            "ratio_inverted",
            "your ratio is upside down: 1 - Σ(h - mean)² / Σ(h - h_rec)². The FVE is 1 - residual / total: "
            "the reconstruction error Σ(h - h_rec)² over the centred sum of squares Σ(h - h.mean(0))²",
            1 - tot / res,
        ),
        (
            "variance_convention_mixed",
            f"your total is the biased variance (÷ n) times n - 1 ({n - 1}): the centred sum of squares times "
            f"(n - 1)/n. Mixing the two conventions: var(unbiased=False) pairs with × n, var(unbiased=True) "
            "(torch's default) with × (n - 1); or sum (h - h.mean(0))² directly",
            1 - res / (tot * (n - 1) / n),
        ),
        (
            "norm_difference",
            "your residual is (‖h‖ - ‖h_rec‖)² per example, a difference of lengths: it is zero for any h_rec of "
            "the right length, however wrong its direction. Use the norm of the difference, ‖h - h_rec‖² = "
            "(h - h_rec).pow(2).sum(-1)",
            1 - (h.norm(dim=-1) - h_rec.norm(dim=-1)).pow(2).sum(0) / tot,
        ),
    ]
    return [e for e in entries if _differs(e[2], right)]


def recovery_abs_pick(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """feature_recovery taking the latent with the largest |cos| and returning its signed cosine: an
    anti-aligned latent (cos near -1) wins over the best aligned one."""
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), f_hat)
    value = cos.gather(1, cos.abs().argmax(1, keepdim=True)).squeeze(1)
    hint = (
        "you picked the latent by |cos| (argmax of the absolute cosine) and returned its signed cosine: an "
        "anti-aligned latent (cos near -1) wins and you return a negative recovery. The recovery is the largest "
        "signed cosine, cos.max(dim=latents).values, with no abs"
    )
    return [("abs_argmax_signed", hint, value)] if _differs(value, cos.amax(1)) else []


def _auxk(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k: int) -> Tensor:
    top = torch.where(dead, pre.detach(), -torch.inf).topk(k, dim=-1)
    vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(pre.detach()).scatter(-1, top.indices, vals)
    return (residual - torch.einsum("bis,isd->bid", acts, W_dec.detach())).pow(2).mean(-1)


def auxk_k_from_instance0(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list[Mutant]:
    """auxk_loss with k = min(k_aux, the number of dead latents of instance 0) used for every instance."""
    right = _auxk(pre, residual, dead, W_dec, k_aux)
    value = _auxk(pre, residual, dead, W_dec, min(k_aux, int(dead[0].sum())))
    hint = (
        f"your k is instance 0's number of dead latents ({int(dead[0].sum())}, fewer than k_aux = {k_aux}) for every "
        "instance: each instance has its own dead set. Keep k = k_aux and let the -inf of the non-dead latents drop "
        "out (torch.where(top.values.isfinite(), top.values, 0))"
        + ("; or topk(k_aux - 1), one latent short in every instance" if int(dead[0].sum()) == k_aux - 1 else "")
    )
    return [("k_from_instance0", hint, value)] if _differs(value, right) else []


def auxk_unit_values(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list[Mutant]:
    """auxk_loss with the chosen dead latents decoded at activation 1 (their decoder rows summed, values lost)."""
    right = _auxk(pre, residual, dead, W_dec, k_aux)
    top = torch.where(dead, pre.detach(), -torch.inf).topk(k_aux, dim=-1)
    ones = top.values.isfinite().to(pre.dtype)
    acts = torch.zeros_like(pre.detach()).scatter(-1, top.indices, ones)
    value = (residual - torch.einsum("bis,isd->bid", acts, W_dec.detach())).pow(2).mean(-1)
    hint = (
        "your loss decodes each chosen dead latent with activation 1, as if their decoder rows were just summed: the "
        "top-k values themselves are lost (a mask or a scatter of ones where the values belong?). Decode the values: "
        "torch.zeros_like(pre).scatter(-1, top.indices, top.values) (the -inf of non-dead latents set to 0)"
    )
    return [("auxk_unit_values", hint, value)] if _differs(value, right) else []


def fve_residual_slips(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """FVE with the residual Σ(h - h_rec ** 2) (precedence: only h_rec squared) or Σ(h² - h_rec²) (a difference
    of squares, `loss_difference_of_squares`)."""
    tot = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    right = 1 - (h - h_rec).pow(2).sum((0, 2)) / tot
    hint = (
        "your residual is Σ(h - h_rec ** 2): ** binds tighter than -, so only h_rec is squared. Bracket the "
        "difference: (h - h_rec) ** 2, or (h - h_rec).pow(2)"
    )
    entries: list[Mutant] = [("precedence_square", hint, 1 - (h - h_rec**2).sum((0, 2)) / tot)]
    for code, told, value in difference_of_squares(h, h_rec, lambda x: x.sum((0, 2)), "h", "h_rec"):
        entries.append((code, f"in your FVE's residual Σ(h - h_rec)²: {told}", 1 - value / tot))
    return [e for e in entries if _differs(e[2], right)]
