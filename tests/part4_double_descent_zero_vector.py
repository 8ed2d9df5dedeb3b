"""What part 4's compute_dimensionality returned for a non-finite zero vector (`tests.part4_double_descent`).

For a zero vector both ‖v‖² and the denominator Σ_j (v̂·v_j)² are 0, so its value is a guarded 0 / 0. The output alone
cannot tell which guard let the NaN through (an unprotected v / ‖v‖, whose NaN passes a `den != 0` test, or a
protected norm whose `den >= 0` test is always true), so the message says where the non-finite values are and the
hint names both guards.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def zero_vector_failure(out: Tensor, expected: Tensor) -> None:
    """Fail when compute_dimensionality with a zero last vector (out, expected: [inst vectors]) is not finite."""
    bad = ~torch.isfinite(out)
    if not bad.any():
        return
    at_zero = bad[:, -1].all() and not bad[:, :-1].any()
    kinds = sorted({"NaN" if bool(torch.isnan(x)) else str(float(x)) for x in out[bad].double().cpu()})
    where = "only at the zero vector" if at_zero else f"at {int(bad.sum())} of {bad.numel()} entries"
    others_right = bool(at_zero and torch.allclose(out[:, :-1].double().cpu(), expected[:, :-1], rtol=1e-4, atol=1e-6))
    fail(
        f"with a zero vector the output is {' / '.join(kinds)} {where}"
        + (" (every other vector's value is right)" if others_right else "")
        + ", expected 0 for the zero vector",
        "for a zero vector ‖v‖² = 0 and Σ_j (v̂·v_j)² = 0, so ‖v‖² / Σ_j (v̂·v_j)² is 0 / 0: the guard must return 0 "
        "there. Either v̂ = v / ‖v‖ is unprotected (NaN, which also passes a `den != 0` test: clamp the norm, "
        "norm.clamp_min(1e-12)) or the test does not exclude den = 0 (`den >= 0` is always true: use "
        "torch.where(den > 0, norm_sq / den.clamp_min(1e-30), 0))",
        code="zero_vector",
    )
