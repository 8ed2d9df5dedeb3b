"""generate_features with values='signed_uniform': the signs of present values are independent along every axis.

A correct answer draws each present value's sign independently (a fair sign per batch element, instance and feature),
so two present neighbours (features f and f + 1, instances i and i + 1, or examples b and b + 1, pooled over the rest)
have the same sign with probability 1/2. A sign drawn once and broadcast along an axis makes neighbours along it
agree always (one sign per [batch inst 1] shares it over the features); a sign from an index's parity makes them
disagree always; both leave every per-(instance, feature) mean at 0, so the moment checks cannot see them. Each of
the three rates is tested with a Bernstein bound (`checking.bernstein_tolerance`) at the checker's per-test failure
level, FAILURE_PROBABILITY / n_tests; every axis whose rate is off is named in one message."""

from __future__ import annotations

from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, bernstein_tolerance, fail

__all__ = ["sign_structure"]

_AXES = (  # axis name, its position in [batch inst feats], the shape of a sign shared along it
    ("features", 2, "[batch inst 1]"),
    ("instances", 1, "[batch 1 feats]"),
    ("examples", 0, "[1 inst feats]"),
)
_FAIR = (
    "Draw one fair sign per batch element, instance and feature (shape [batch inst feats]), "
    "or -1 + 2 * torch.rand(shape)"
)


def _same_sign_rate(present: Tensor, positive: Tensor, dim: int) -> tuple[float, int]:
    n = present.shape[dim]
    both = present.narrow(dim, 0, n - 1) & present.narrow(dim, 1, n - 1)
    same = positive.narrow(dim, 0, n - 1) == positive.narrow(dim, 1, n - 1)
    count = int(both.sum())
    return (float(same[both].double().mean()) if count else 0.5), count


def sign_structure(batch: Tensor, present: Tensor, kind: str, n_tests: int) -> None:
    """Fail (code signs_alternate_over_<axis>, signs_shared_over_<axis> or signs_correlated_over_<axis>, the first
    off axis in the order alternating, shared, correlated) when present neighbours along an axis agree in sign more
    or less often than half the time."""
    if kind != "signed_uniform":
        return
    positive = batch > 0
    off = []  # (kind of structure, axis, rate, tolerance, shape)
    for axis, dim, shape in _AXES:
        rate, n = _same_sign_rate(present, positive, dim)
        if n < 200:
            continue
        tol = bernstein_tolerance(n, 0.25, 1.0, FAILURE_PROBABILITY / n_tests)
        if abs(rate - 0.5) > tol:
            what = "alternate" if rate < 0.1 else "shared" if rate > 0.9 else "correlated"
            off.append((what, axis, rate, tol, shape))
    if not off:
        return
    off.sort(key=lambda entry: ("alternate", "shared", "correlated").index(entry[0]))
    seen = "; ".join(f"neighbouring {axis}: {rate:.1%} (expected 50% ± {tol:.1%})" for _, axis, rate, tol, _ in off)
    facts = []
    for what, axis, rate, _, shape in off:
        if what == "shared":
            facts.append(f"the sign is shared along the {axis} (drawn once with shape {shape} and broadcast)")
        elif what == "alternate":
            facts.append(
                f"the sign alternates along the {axis} (+, -, +, ...: from an index's parity or a repeated [1, -1] "
                "pattern, not a random draw)"
            )
        else:
            more = "more" if rate > 0.5 else "less"
            facts.append(f"signs of neighbouring {axis} are correlated: they agree {more} often than half the time")
    first = off[0]
    fail(
        f"with values='signed_uniform', how often present neighbours have the same sign: {seen}",
        "; ".join(facts) + f". {_FAIR}",
        code=f"signs_{first[0]}_over_{first[1]}",
    )
