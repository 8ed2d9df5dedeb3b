"""Part 8: named slips from the fresh held-out trials that the generic diagnoses only described.

* faithfulness: the expanded square ‖W‖² + ‖UV‖² - c⟨W, UV⟩ with the cross term's factor 2 lost (c = 1), the
  cross term missing (c = 0) or its sign flipped (c = -2);
* the leaky hard sigmoids: the whole gradient multiplied by alpha (alpha read as a global scale);
* SVD terms: every term W (no σ zeroed in U diag(S) Vh), or W - term_k (the ablated matrices);
* causal importance: z softmaxed over the subcomponents, or h = V a averaged over the batch;
* masked_product: the mask added to V a instead of multiplying it;
* minimality: p (g + eps)^(p - 1) (the derivative written where the penalty belongs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_misplaced as misplaced
from tests import part8_parameter_decomposition_mistakes as mis

Mistakes = list[tuple[str, str, Tensor]]


def faithfulness_expansions(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """‖W - UV‖² expanded by hand with the cross term wrong: factor 1, missing, or with the opposite sign."""
    n = sum(W[0].numel() for W in weights)
    out = []
    with torch.no_grad():
        parts = [
            (W.pow(2).sum((-2, -1)), (u @ v).pow(2).sum((-2, -1)), (W * (u @ v)).sum((-2, -1)))
            for W, u, v in zip(weights, U, V, strict=True)
        ]
        for c, what in (
            (1, "with factor 1 (the 2 of 2⟨W, U V⟩ lost)"),
            (0, "missing"),
            (-2, "with its sign flipped (+ 2⟨W, U V⟩)"),
        ):
            se = sum(w + uv - c * x for w, uv, x in parts)
            hint = (
                f"your value is ‖W‖² + ‖U V‖² - {c}⟨W, U V⟩ over N: the expanded square with the cross term {what}; "
                "‖W - U V‖² = ‖W‖² - 2⟨W, U V⟩ + ‖U V‖², or simply (W - U @ V).pow(2).sum() without expanding"
            )
            out.append(("expanded_square", hint, (se / n).sum()))
    return out


def sigmoid_candidates(x: Tensor, g: Tensor, alpha: float, lower: bool) -> tuple[Tensor, Mistakes]:
    """The usual candidates, plus the whole gradient multiplied by alpha."""
    right, mistakes = mis.sigmoid_candidates(x, g, alpha, lower)
    hint = (
        f"your gradient is alpha ({alpha:g}) × the right one everywhere: alpha is the slope on the leaky side only "
        "(grad_output · alpha there), not a factor on the whole gradient (1 on [0, 1], 0 on the other side)"
    )
    return right, [*mistakes, ("alpha_scaled", hint, right * alpha)]


def svd_whole_terms(W: Tensor) -> Mistakes:
    """Every term U diag(S) Vh = W (no σ zeroed), or W - σ_k u_k v_kᵀ (what ablating term k leaves)."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = torch.einsum("iar,ir,irb->irab", U, S, Vh)
    every = W[:, None].expand_as(terms)
    return [
        (
            "every_term_W",
            "every one of your terms is W itself: U diag(S) Vh keeps every σ; term k is σ_k u_k v_kᵀ "
            "(U[..., :, k, None] * S[..., k] * Vh[..., k, None, :]), zero all other σ's or take the outer product",
            every,
        ),
        (
            "ablated_not_terms",
            "your terms are W - σ_k u_k v_kᵀ, what removing term k leaves (the next exercise's "
            "ablated matrices): return the terms σ_k u_k v_kᵀ themselves",
            every - terms,
        ),
    ]


def _ci(p: dict[str, Tensor], batch_mean: bool = False, softmax: bool = False, variant: str = "") -> Tensor:
    h = torch.einsum("bid,icd->bic", p["a"], p["V"])
    h = h.mean(0, keepdim=True).expand_as(h) if batch_mean else h
    h = h.sum(1, keepdim=True).expand_as(h) if variant == "inst_sum" else h
    hidden = F.gelu(h[..., None] * p["w_in"] + p["b_in"])
    if variant == "b_out_inside":
        z = ((hidden + p["b_out"][..., None]) * p["w_out"]).sum(-1)
    else:
        z = (hidden * p["w_out"]).sum(-1) + p["b_out"]
    return (z.softmax(-1) if softmax else z).clamp(0, 1)


def ci_slips(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        return [
            (
                "softmax_over_C",
                "your importances are the hard sigmoids of softmax(z) over the subcomponents: each "
                "subcomponent's z goes through the sigmoids on its own (no normalisation over C)",
                _ci(p, softmax=True),
            ),
            (
                "batch_mean_h",
                "your importances are the same for every example: h = V a averaged over the batch "
                "(h.mean(0)) before the MLPs; each example has its own h = V a and its own importances",
                _ci(p, batch_mean=True),
            ),
            (
                "instances_summed",
                "your importances are the same for every instance: h = V a summed over the instances (an einsum "
                "whose output drops inst, e.g. '-> batch C') and broadcast back; each instance has its own "
                "h[:, i] = V[i] a[:, i]",
                _ci(p, variant="inst_sum"),
            ),
            (
                "b_out_inside",
                "your b_out is added to the hidden units before the product with w_out, (GELU(...) + b_out) · w_out: "
                "b_out is added once, after the sum, z = Σ_j w_out GELU(w_in h + b_in) + b_out",
                _ci(p, variant="b_out_inside"),
            ),
            *misplaced.ci_params_in_place(p),
        ]


def product_added_mask(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        inner = torch.einsum("bid,icd->bic", p["a"], p["V"])
        pieces = torch.einsum("bic,ioc->bio", inner + p["mask"], p["U"])
        delta = p["delta_mask"][..., None] * torch.einsum("bid,iod->bio", p["a"], p["W"] - p["U"] @ p["V"])
    hint = "your output is U (V a + mask) + delta: the mask is added to V a where it multiplies it, U (mask ⊙ V a)"
    with torch.no_grad():
        right = torch.einsum("bic,ioc->bio", inner * p["mask"], p["U"])
        plus = p["delta_mask"][..., None] + torch.einsum("bid,iod->bio", p["a"], p["W"] - p["U"] @ p["V"])
    hint_d = (
        "your delta term is delta_mask + (W - U V) a: the delta mask is added where it multiplies, "
        "delta_mask · (W - U V) a (delta_mask[..., None] times the product)"
    )
    found = [("mask_added", hint, pieces + delta), ("delta_mask_added", hint_d, right + plus)]
    return found + misplaced.product_parts_scaled(p)


def minimality_derivative(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        value = sum((p * (g + eps) ** (p - 1)).sum(-1) for g in ci).mean(0).sum()
    hint = (
        "your value is Σ p (g + eps)^(p - 1): the derivative of the penalty; the penalty itself is "
        "Σ (g + eps)^p (autograd takes the derivative)"
    )
    return [("derivative_written", hint, value), *misplaced.minimality_power_after_sum(ci, p, eps)]


def learner_sigmoid(backward: Callable[[Tensor, float, Tensor], Tensor]) -> type[torch.autograd.Function]:
    """A learner's leaky hard sigmoid (the exercise's signature) whose backward returns `backward(x, alpha,
    grad_output)`: how the proofs write a wrong backward in one line."""

    class LearnerSigmoid(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Tensor, alpha: float = 0.01) -> Tensor:
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return x.clamp(0, 1)

        @staticmethod
        def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
            (x,) = ctx.saved_tensors
            return backward(x, ctx.alpha, g), None

    return LearnerSigmoid
