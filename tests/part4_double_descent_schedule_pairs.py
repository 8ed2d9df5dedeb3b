"""warmup_cosine_lr with one slip in the warm-up and another in the cosine (round BB): each catalogued mistake is
split at warmup_steps into its warm-up part and its decay part; when the learner's warm-up is that of a catalogued
mistake of the warm-up alone and the learner's decay that of a mistake of the decay alone, both are named (before,
neither matched the whole schedule and the hint restated the formula)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.isfinite(b).all()) and torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def schedule_pair_failure(got: Tensor, right: Tensor, steps: int, warmup: int, catalogue: list) -> None:
    """Fail (two_slips) when got's warm-up is one catalogued slip's and its decay another's."""
    if not 1 < warmup < steps - 1 or not bool(torch.isfinite(got).all()):
        return
    got = got.double()
    if _close(got, right) or any(_close(got, v.double()) for _, _, v in catalogue):
        return
    cut = warmup
    if _close(got[:cut], right[:cut]) or _close(got[cut:], right[cut:]):
        return  # only one phase is wrong: the single-slip diagnoses name it
    # a slip of one phase only (right in the other phase), so that its hint is about that phase
    warm = [
        (code, hint)
        for code, hint, v in catalogue
        if _close(got[:cut], v.double()[:cut]) and _close(v.double()[cut:], right[cut:])
    ]
    decay = [
        (code, hint)
        for code, hint, v in catalogue
        if _close(got[cut:], v.double()[cut:]) and _close(v.double()[:cut], right[:cut])
    ]
    if not warm or not decay:
        return
    (code_w, hint_w), (code_d, hint_d) = warm[0], decay[0]
    if code_w == code_d and hint_w == hint_d:
        return
    fail(
        f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup}): both phases are wrong, each by a known slip: "
        f"the warm-up (steps 0 to {cut - 1}) is that of `{code_w}`, the decay (steps {cut} on) that of `{code_d}`",
        f"two slips at once. In the warm-up: {hint_w}. In the decay: {hint_d}",
        code="two_slips",
    )
