"""The one reading of a learner's call that wrote into a tensor it was given: how many entries differ from a copy
taken before the call, and whether they were zeroed. Code `in_place`; the caller supplies the exercise's advice."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


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
