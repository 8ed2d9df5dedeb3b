"""Part 8: a loss off by a ratio of two of the inputs' counts, or with the product U V scaled by a count.

* `count_ratio`: the value is a/b × the right one for two different named counts a, b (L, n_inst, C): one count
  multiplied (or divided) where the other belongs, e.g. a global mean over everything times L instead of n_inst;
* `product_scaled`: the faithfulness of W against (U V) / c or c · U V for a named count c (the C pieces averaged
  instead of summed, ...), read back by recomputing the loss with that product.
The inputs' counts differ (L = 4, n_inst = 3, C = 7), so each reading names one count pair.
"""

from __future__ import annotations

from fractions import Fraction

from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis

Mistakes = list[tuple[str, str, Tensor]]


def faithfulness_counts(weights: list[Tensor], U: list[Tensor]) -> dict[str, int]:
    """The counts a learner might multiply or divide by, named; only distinct values are kept (first name wins)."""
    named = {
        "L (the number of matrices, len(weights))": len(weights),
        "n_inst (the number of instances)": weights[0].shape[0],
        "C (the number of subcomponents)": U[0].shape[-1],
    }
    out: dict[str, int] = {}
    for name, c in named.items():
        if c > 1 and c not in out.values():
            out[name] = c
    return out


def count_ratio(right: Tensor, counts: dict[str, int], what: str) -> Mistakes:
    """right × a / b for every ordered pair of different counts (a ratio that is not itself a whole count)."""
    out: Mistakes = []
    for a_name, a in counts.items():
        for b_name, b in counts.items():
            if a == b or Fraction(a, b).denominator == 1 or Fraction(b, a).denominator == 1:
                continue
            hint = (
                f"your value is {a}/{b} = {a / b:.4g} × the expected one: {a} = {a_name} and {b} = {b_name}, so one "
                f"count stands where the other belongs: multiplied by {a_name.split(' (')[0]} where "
                f"{b_name.split(' (')[0]} belongs (e.g. a mean over everything, instances included, times "
                f"{a_name.split(' (')[0]}), or divided by {b_name.split(' (')[0]} where "
                f"{a_name.split(' (')[0]} belongs. {what}"
            )
            out.append(("count_ratio", hint, right * a / b))
    return out


def faithfulness_product_scaled(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """The right loss with every U_l V_l divided (or multiplied) by a named count, and the count-ratio readings."""
    counts = faithfulness_counts(weights, U)
    right = mis.faithfulness_candidates(weights, U, V)[0]
    right_formula = "Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖², U_l V_l the sum (not the mean) of the C rank-one pieces"
    out: Mistakes = []
    for name, c in counts.items():
        short = name.split(" (")[0]
        for s, how in ((1 / c, f"(U V) / {c}"), (c, f"{c} · U V")):
            value = mis.faithfulness_candidates(weights, [u * s for u in U], V)[0]
            hint = (
                f"your value is the faithfulness loss of W against {how}, {c} = {name}: the product U V scaled "
                f"by {short}"
                + (" (the C pieces u_c v_cᵀ averaged instead of summed?)" if c == U[0].shape[-1] and s < 1 else "")
                + f". The loss is {right_formula}"
            )
            out.append(("product_scaled", hint, value))
    return out + count_ratio(right, counts, f"The loss is {right_formula}")


def per_subcomponent(loss: Tensor, right: Tensor, U: list[Tensor]) -> tuple[str, str] | None:
    """loss = right / C or C × right (C = 7 differs from L, the instances and N): an extra mean over C, or a sum."""
    C = U[0].shape[-1]
    for factor, how in ((1 / C, "divided by"), (C, "multiplied by")):
        if float(right) != 0 and abs(float(loss) / (factor * float(right)) - 1) < 1e-4:
            return "per_subcomponent", (
                f"your value is {factor:.4g} × the expected one, {how} C = {C}, the number of subcomponents "
                "(U[l].shape[-1]): each matrix's error ‖W_l - U_l V_l‖² is not averaged (or summed) over the C "
                "subcomponents; the loss is Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖², N = entries of one instance's matrices"
            )
    return None
