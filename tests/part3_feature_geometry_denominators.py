"""A dimensionality D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)² (= ‖v_i‖⁴ / Σ_j (v_i·v_j)²) whose denominator is one number per
instance instead of one per vector: read back from the learner's values as ‖v_i‖² / D_i (the normalised form) and
‖v_i‖⁴ / D_i (the raw form). When either is the same for every vector of an instance, the denominator does not
depend on i; the constant is then compared with the sums over ALL pairs (i, j) to say which one it is."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _same_over_vectors(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all()) and bool(torch.allclose(x, x[:, :1].expand_as(x), rtol=1e-4, atol=1e-12))


def constant_denominator_failure(base: Tensor, v: Tensor, name: str, sym: tuple[str, str]) -> None:
    """`base` [inst n]: the learner's values on `v` [inst n d]. Fail (code denominator_constant) when ‖v_i‖^(2k) /
    D_i is constant over i within every instance for k = 1 or 2, naming the all-pairs sum it equals if one does."""
    x, u = sym
    v = v.detach().double().cpu()
    base = base.detach().double().cpu()
    norm_sq = v.pow(2).sum(-1)  # [inst n]
    if bool((norm_sq <= 0).any()) or bool((base == 0).any()):
        return
    unit = v / norm_sq.sqrt()[..., None]
    raw, half, both = (torch.einsum("kid,kjd->kij", a, b).pow(2) for a, b in ((v, v), (unit, v), (unit, unit)))
    sums = (
        (f"Σ_i Σ_j ({x}_i·{x}_j)² (the squared Frobenius norm of the Gram matrix)", raw.sum((-1, -2))),
        (f"Σ_i Σ_j ({u}_i·{x}_j)²", half.sum((-1, -2))),
        (f"Σ_i Σ_j ({u}_i·{u}_j)²", both.sum((-1, -2))),
    )
    for k, power in ((1, "²"), (2, "⁴")):
        per_inst = norm_sq.pow(k) / base  # the denominator each value implies
        if not _same_over_vectors(per_inst):
            continue
        const = per_inst[:, 0]
        seen = next((label for label, s in sums if torch.allclose(const, s, rtol=1e-4)), None)
        which = (
            f"; that number is {seen}, the sum over ALL pairs (i, j) of the instance"
            if seen
            else f" ({', '.join(f'{float(c):.4g}' for c in const)} per instance)"
        )
        fail(
            f"within each instance your values are ‖{x}_i‖{power} times one constant: ‖{x}_i‖{power} / D_i, the "
            f"denominator your values imply, is the same number for every {name} i{which}",
            f"each {name} i has its own denominator Σ_j ({u}_i·{x}_j)² (= Σ_j ({x}_i·{x}_j)² / ‖{x}_i‖²), a sum over "
            f"j only: was the square summed over both indices (.sum((-1, -2)), a sum over i and j, or the squared "
            "d×d product) instead of over j only (.sum(-1) of the [n, n] matrix of squared overlaps)?",
            code="denominator_constant",
        )


def self_term_readings(norms_sq: Tensor, den: Tensor) -> list[tuple[str, str, Tensor]]:
    """The denominator Σ_j (Ŵ_i·W_j)² with its j = i term, ‖W_i‖², replaced by 1 (unit norms assumed)."""
    return [
        (
            "self_term_one",
            "your denominator has 1 where its j = i term belongs: Σ_{j≠i} (Ŵ_i·W_j)² + 1, as if every feature had unit "
            "norm. The self-term is (Ŵ_i·W_i)² = ‖W_i‖², which is 1 only for a unit-norm feature (these features have "
            "different norms): sum (Ŵ_i·W_j)² over every j, i included",
            norms_sq / (den - norms_sq + 1),
        )
    ]


def frobenius_statistic_readings(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """d_hidden / (a statistic of W's norms) for the statistics a learner writes in place of ‖W‖²_F = Σ_i ‖W_i‖²:
    the column (feature) norms or the row (hidden-dimension) norms, not squared, averaged or summed (Σ_i ‖W_i‖ and
    the squared norms averaged are in the catalogue already), then Σ_i ‖W_i‖⁴ and the mean of the per-feature D_i."""
    W = W.double()
    d = W.shape[1]
    axes = (("column", "feature", 1), ("row", "hidden-dimension", 2))
    out = []
    for name, words, dim in axes:
        norms = W.norm(dim=dim)
        for red, how in (("mean", "averaged"), ("sum", "summed")):
            if dim == 1 and red == "sum":  # Σ_i ‖W_i‖: `norms_not_squared` in the catalogue
                continue
            hint = (
                f"your denominator is the {words} norms ({name} norms of W[inst], not squared) {how}; D* divides by "
                "‖W‖²_F = Σ_i ‖W_i‖², the SUM of the SQUARED feature norms (= W.pow(2).sum((1, 2)))"
            )
            out.append((f"{name}_norms_{red}", hint, d / getattr(norms, red)(-1)))
    norms_sq, gram = W.pow(2).sum(1), W.mT @ W  # [inst feats], [inst feats feats]
    per_feature = norms_sq.pow(2) / gram.pow(2).sum(-1).clamp_min(1e-300)  # D_i = ‖W_i‖⁴ / Σ_j (W_i·W_j)²
    out += [
        (
            "norms_fourth_power",
            "your denominator is Σ_i ‖W_i‖⁴ (each feature's squared norm squared again: (W.pow(2).sum(1) ** 2)"
            ".sum(-1)); D* divides by ‖W‖²_F = Σ_i ‖W_i‖², each squared norm summed once (W.pow(2).sum((1, 2)))",
            d / norms_sq.pow(2).sum(-1),
        ),
        (
            "mean_feature_dimensionality",
            "your values are the mean over the features of the per-feature dimensionality D_i "
            "(compute_dimensionality(W).mean(-1)); D* is another quantity, d_hidden / ‖W‖²_F (hidden dimensions per "
            "feature, each feature counted by its ‖W_i‖²), not an average of the D_i",
            per_feature.where(norms_sq > 0, 0.0).mean(-1),
        ),
    ]
    return out
