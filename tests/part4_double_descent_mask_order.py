"""Read-back for "normalised before the mask" in part 4's generate_dataset (`tests.part4_double_descent_mistakes`).

Normalising dense U[0, 1] draws u and then masking leaves each example's squared norm r² = Σ_present u² / Σ_all u².
The u are exchangeable, so E[u_i² / Σ_j u_j²] = 1 / F exactly, and an example with k present features has
E[r² | k] = k / F whatever the value distribution. Every count k with enough examples is one test: its mean r² must
be k / F within Bernstein's bound (r² lies in [0, 1], so its variance is at most μ(1 - μ)). Another divisor (the
count, its square or cube root, a constant) breaks the proportionality to k, so the cause is named only when the
read-back holds at every such k.
"""

from __future__ import annotations

from torch import Tensor

MIN_ROWS = 200  # a count with fewer examples is too noisy to test


def normalised_before_mask(x: Tensor, tolerance) -> tuple[bool, str]:
    """Whether x [examples inst feats] has E[r² | k] = k / F at every well-populated count k, and the evidence.

    `tolerance(n, var)` is the section's Bernstein bound for the mean of n independent [0, 1] draws.
    """
    n_feats = x.shape[-1]
    sq = x.double().pow(2).sum(-1).flatten()
    k = (x > 0).sum(-1).flatten()
    tested, seen = 0, []
    for count in range(1, n_feats):
        rows = sq[k == count]
        if rows.numel() < MIN_ROWS:
            continue
        mu = count / n_feats
        mean = float(rows.mean())
        tested += 1
        seen.append(f"k = {count}: {mean:.3g} (k/F = {mu:.3g})")
        if abs(mean - mu) > tolerance(rows.numel(), mu * (1 - mu)):
            return False, ""
    return tested >= 2, "; ".join(seen[:3])
