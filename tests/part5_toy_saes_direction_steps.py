"""resample_advanced read-back (round BB): new decoder directions built from the picked input x with the steps in
another order or b_dec used another way: normalise(normalise(x) - b_dec) (x normalised before b_dec is
subtracted), normalise(x + b_dec) (b_dec added), normalise(x - 2·b_dec) (subtracted twice),
normalise(normalise(x - b_dec) - b_dec) (subtracted again after normalising). Each candidate is built from every
input of the instance, and a rule is named when every new direction is one of its candidates."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

_FIX = "direction = (h[i] - b_dec) / ‖h[i] - b_dec‖: subtract b_dec from the raw input first, then normalise, once"


def _unit(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def direction_steps_failure(rows: Tensor, inst_of: Tensor, spikes: Tensor, b_dec: Tensor) -> None:
    """`rows`: the new unit decoder rows; `inst_of`: each row's instance; input type j of instance k is
    b_dec[k] + spikes[k, j] ([inst types d_in])."""
    x = b_dec[:, None, :] + spikes  # [inst types d_in]
    b = b_dec[:, None, :]
    rules = (
        ("x normalised BEFORE b_dec was subtracted: (x / ‖x‖ - b_dec), then normalised", _unit(_unit(x) - b)),
        ("b_dec ADDED to the input: (x + b_dec) / ‖x + b_dec‖", _unit(x + b)),
        ("b_dec subtracted twice: (x - 2·b_dec) / ‖x - 2·b_dec‖", _unit(x - 2 * b)),
        ("b_dec subtracted again after normalising: normalise(normalise(x - b_dec) - b_dec)", _unit(_unit(x - b) - b)),
    )
    right = _unit(x - b)
    for what, cand in rules:
        hits = [bool(((cand[int(k)] @ r) > 1 - 1e-4).any()) for k, r in zip(inst_of, rows, strict=True)]
        wrong = [bool(((right[int(k)] @ r) > 1 - 1e-4).any()) for k, r in zip(inst_of, rows, strict=True)]
        if all(hits) and not all(wrong):
            fail(f"the new decoder directions are, for the picked input x, {what}", _FIX, code="direction_steps")
