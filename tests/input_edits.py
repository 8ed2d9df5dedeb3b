"""The one reading of a learner's call that wrote into a tensor it was given: how many entries differ from a copy
taken before the call, and whether they were zeroed. Code `in_place`; the caller supplies the exercise's advice.
And the same finding without a copy: the solution, re-run on the inputs after the call, no longer reproduces the
expected values (used by `expect_matches` for every checker that passes its reference call)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.mutants import Reference
from tests.outcomes import fail


def edited_input_failure(what: str, name: str, before: Tensor, after: Tensor, advice: str, note: str = "") -> None:
    """Fail (code in_place) when `after` (the tensor the call was given) no longer equals `before` (a copy)."""
    changed = after.detach() != before.detach()
    if not changed.any():
        return
    zeroed = " (set to 0)" if bool((after.detach()[changed] == 0).all()) else ""
    fail(
        f"{what} changed its input `{name}` in place: {int(changed.sum())} of {after.numel()} entries differ after "
        f"the call{zeroed}{note}",
        advice,
        code="in_place",
    )


def reference_no_longer_reproduces(reference: Reference, expected: Tensor, rtol: float, atol: float) -> str | None:
    """A hint when the solution, re-run now on the call's inputs, no longer gives `expected`, else None.

    The audit (tests/test_reference.py) proves that every reference a checker passes reproduces its expected values
    with the solution in place of the learner's code, so after a learner's call the only thing that can make the
    re-run differ is an input the learner's code wrote into (a tensor, or a parameter of a model it was given)."""
    try:
        again = reference.run()
        if not isinstance(again, Tensor) or again.shape != expected.shape:
            return None
        again, want = again.detach().to(expected.device).double(), expected.detach().double()
        if bool(torch.allclose(again, want, rtol=rtol, atol=atol, equal_nan=True)):
            return None
    except Exception:  # a diagnosis must never be the reason a check crashes
        return None
    return (
        "your call changed one of its inputs in place: the solution, run again now on the very tensors (or model) "
        "your code was given, no longer gives the expected values. Look for an in-place operation on an input "
        "(`x -= ...`, `x[...] = ...`, `.add_()`, `.clamp_()`, `.masked_fill_()`, `.bernoulli_()`, an `out=` argument) "
        "and work on a new tensor instead (`x = x - ...`, or `.clone()` first)"
    )
