"""warmup_cosine_lr: a cosine part fitted exactly as a + b · 0.5(1 + cos(π progress)) is matched against the
expressions that common slips in writing 0.5 * (1 + cos(...)) produce, so the hint names the slip the fit confirms
(a parenthesis or precedence slip, a missing factor 0.5) rather than only the offset and scale."""

from __future__ import annotations

# (a, b, what the learner's expression reads as, code, the fix); with c = cos(π progress), 0.5(1 + c) = r:
# 1 + c / 2 = 0.5 + r; 0.5 * 1 + c = -0.5 + 2r; 1 + c = 2r (the catalogue names a missing `1 +` and a flipped sign)
_SLIPS = (
    (
        0.5,
        1.0,
        "1 + cos(π progress) / 2",
        "cosine_parentheses",
        "the / 2 divides the cosine alone, since / binds before +: write (1 + cos(π progress)) / 2",
    ),
    (
        -0.5,
        2.0,
        "0.5 * 1 + cos(π progress)",
        "cosine_parentheses",
        "the 0.5 multiplies the 1 alone, since * binds before +: write 0.5 * (1 + cos(π progress))",
    ),
    (
        0.0,
        2.0,
        "1 + cos(π progress)",
        "cosine_half_missing",
        "the factor 0.5 is missing: 0.5 * (1 + cos(π progress)) goes from 1 to 0",
    ),
)


def cosine_slip(a: float, b: float) -> tuple[str, str, str] | None:
    """(expression, hint, code) for the slip that gives the fitted cosine part a + b · 0.5(1 + cos), or None."""
    for a0, b0, expr, code, hint in _SLIPS:
        if abs(a - a0) < 1e-4 and abs(b - b0) < 1e-4:
            return expr, hint, code
    return None
