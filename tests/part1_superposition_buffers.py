"""A generator that edits the model's own buffers (feature_probability, importance) in place: after the call the buffer
differs from the table the model was built with. Observed entry by entry; a one-sided clamp is named only when
before.clamp(min=c) (or max=c) reproduces the edited buffer exactly."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def buffer_edit_failure(model: object, tables: dict[str, Tensor], method: str) -> None:
    """Fail when one of the model's buffers `tables` (name -> the value it was built with) changed during `method`."""
    for name, before in tables.items():
        after = getattr(model, name, None)
        if not isinstance(after, Tensor) or after.shape != before.shape:
            continue
        after = after.detach().to(before.device, before.dtype)
        if torch.equal(after, before):
            continue
        changed = (after != before).nonzero().tolist()
        where = ", ".join(
            f"[{', '.join(map(str, i))}] {float(before[tuple(i)]):.4g} → {float(after[tuple(i)]):.4g}"
            for i in changed[:3]
        )
        edit = ""
        for side, c in (("min", float(after.min())), ("max", float(after.max()))):
            if torch.equal(before.clamp(**{side: c}), after):
                edit = f" (read back: exactly self.{name}.clamp_({side}={c:.3g}))"
                break
        fail(
            f"after {method}, self.{name} is no longer the table the model was built with: {len(changed)} "
            f"entr{'y' if len(changed) == 1 else 'ies'} changed, {where}{edit}",
            f"{method} edits self.{name} in place (a clamp_/mul_/add_ or an indexed assignment on it or a view of "
            f"it), so every later call and the loss see changed values. Leave the buffer as it is and use its values "
            "unchanged"
            + (
                f": presence is torch.rand(...) < self.{name} for every p, small ones included"
                if "prob" in name
                else ""
            ),
            code="modified_buffer",
        )
