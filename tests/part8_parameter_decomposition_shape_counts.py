"""Part 8, faithfulness_loss: a divisor built from the matrices' sizes in another way than N = Σ_l d_out · d_in,
and the two instance slips that together give 1/m².

The learner's divisor is read back as n = N · right / loss. The checker's four matrices (2×5, 6×2, 3×4, 5×3, with
C = 7 and m = 3 instances) make every formula below a different number, so a whole n that equals one of them names
how it was counted: a size squared (d_out · d_out where d_out · d_in belongs: shape[-2] twice), one size alone, the
sums of the sizes multiplied, or any of these over every instance. The counts the catalogue already names (U's and
V's entries, Σ (d_out + d_in), one matrix's entries, L) are left to it.

A value 1/m² × the right one is the instances divided out twice: N counted over every instance (W.numel(), m · N)
and a mean over the instances where their sum belongs.
"""

from __future__ import annotations

from torch import Tensor

PER_MATRIX = {  # per-matrix count -> what it is, in words
    "d_out · d_out (shape[-2] twice where d_out · d_in belongs)": lambda o, i: o * o,
    "d_in · d_in (shape[-1] twice where d_out · d_in belongs)": lambda o, i: i * i,
    "d_out alone (W.shape[-2], a row count)": lambda o, i: o,
    "d_in alone (W.shape[-1], a column count)": lambda o, i: i,
    "max(d_out, d_in)²": lambda o, i: max(o, i) ** 2,
    "min(d_out, d_in)²": lambda o, i: min(o, i) ** 2,
    "(d_out · d_in)²": lambda o, i: (o * i) ** 2,
}


def _counts(weights: list[Tensor]) -> dict[str, int]:
    m, dims = weights[0].shape[0], [tuple(W.shape[-2:]) for W in weights]
    counts: dict[str, int] = {}
    for what, f in PER_MATRIX.items():
        total = sum(f(o, i) for o, i in dims)
        counts.setdefault(f"Σ_l {what}", total)
        counts.setdefault(f"Σ_l {what}, over all {m} instances", m * total)
    so, si = sum(o for o, _ in dims), sum(i for _, i in dims)
    counts.setdefault("(Σ_l d_out) · (Σ_l d_in): the sizes summed over the matrices, then multiplied", so * si)
    counts.setdefault("(Σ_l d_out)²", so * so)
    counts.setdefault("(Σ_l d_in)²", si * si)
    return counts


def faithfulness_count(loss: Tensor, right: Tensor, weights: list[Tensor]) -> tuple[str, str] | None:
    """(code, hint) when the loss is the squared error over one of the counts above, or 1/m² × the right one."""
    lo, r = float(loss), float(right)
    if lo <= 0 or r <= 0 or not lo < float("inf") or abs(lo / r - 1) < 1e-4:
        return None
    m, n = weights[0].shape[0], sum(W[0].numel() for W in weights)
    rule = (
        f"N = {n} is the number of entries of one instance's matrices, Σ_l d_out · d_in (weights[l][0].numel()): "
        "Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖²"
    )
    if abs(lo / r * m * m - 1) < 1e-4:
        return "instances_divided_twice", (
            f"your value is 1/{m * m} = 1/m² × the expected one (m = {m} instances): the instances divided out "
            "twice, e.g. N counted over every instance (W.numel() = m · N) and a mean over the instances where "
            f"their sum belongs. {rule}"
        )
    d = n * r / lo
    for what, c in _counts(weights).items():
        if c != n and abs(d - c) <= 1e-4 * c:
            return "wrong_count", f"your value is the squared error divided by {c}, {what}; {rule}"
    return None
