"""Part 8, importance_minimality_loss: the arguments read in another order, and one example where the batch mean
belongs.

* p and eps swapped: a signature written (causal_importances, eps, p), or the two passed the other way inside, so
  the call (ci, p, eps) computes Σ (g + p)^eps. With the checker's p = 0.7 and eps = 1e-3 every term is close to 1
  and the value close to a count of entries, which a generic hint would read as one.
* one example's penalty: per_example[0] (the first) or per_example[-1] (the last: an accumulator overwritten in a
  loop over the batch) where per_example.mean(0) belongs.
"""

from __future__ import annotations

from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def minimality_reads(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """(code, hint, value) for the readings above, from the importances `ci` (no gradient needed)."""
    per = lambda base, power: sum((g.detach() + base).pow(power).sum(-1) for g in ci)  # [batch inst]
    found: Mistakes = [
        (
            "p_eps_swapped",
            f"your value is Σ (g + {p:g})^{eps:g}: p and eps swapped. The signature is importance_minimality_loss("
            "causal_importances, p, eps=1e-12), p before eps; the penalty is Σ (g + eps)^p",
            per(p, eps).mean(0).sum(),
        )
    ]
    right = per(eps, p)
    for index, which in ((0, "the first example's (per_example[0])"), (-1, "the last example's (per_example[-1])")):
        found.append(
            (
                "one_example",
                f"your value is {which} penalty alone, summed over instances: the penalty is a mean over the batch "
                "(per_example.mean(0)), not one example (an index, or an accumulator overwritten in a loop over the "
                "batch)",
                right[index].sum(),
            )
        )
    return found
