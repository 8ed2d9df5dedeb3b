"""part7 compute_target on tiny present values: 'present' means non-zero at any scale, so a row or pair whose present
values are far below 1 (2e-12, 1e-7) is present. A learner output wrong only there is read back as a tolerance test
|x| > t (the smallest t in a ladder that reproduces it)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part7_open_problems_readbacks as R
from tests.checking import fail
from utils.part7_open_problems import NO_LABEL

TINY = 1e-6
TOLERANCES = (1e-12, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


def _tiny(x: Tensor) -> Tensor:
    return (x != 0) & (x.abs() < TINY)


def _tiny_positions(features: Tensor, target: str) -> Tensor:
    tiny = _tiny(features)
    if target == "argmax":
        return tiny.any(-1)
    if target.endswith("_pairs"):
        return tiny[..., 0::2] | tiny[..., 1::2]
    return tiny


def _readback(got: Tensor, features: Tensor, target: str) -> str | None:
    first, second = features[..., 0::2], features[..., 1::2]
    fits = []
    for t in TOLERANCES:
        if target == "argmax":
            rule = torch.where(features.abs().amax(-1) > t, features.argmax(-1), NO_LABEL)
        elif target in ("and_pairs", "or_pairs"):
            a, b = first.abs() > t, second.abs() > t
            rule = (a & b if target == "and_pairs" else a | b).to(got.dtype)
        else:
            return None
        if torch.equal(got, rule):
            fits.append(t)
    if not fits:
        return None
    if len(fits) == 1:
        return f"your output equals a presence test |x| > {fits[0]:g} on every position (read back)"
    return (
        f"your output equals a presence test |x| > t on every position, for every t we tried from {fits[0]:g} to "
        f"{fits[-1]:g} (read back)"
    )


def labelling_readings(got: Tensor, expected: Tensor, features: Tensor, target: str, what: str) -> None:
    """Code tiny_values when every wrong position has a tiny non-zero input (and some are wrong); then the argmax
    labelling read-backs."""
    wrong = got != expected
    tiny = _tiny_positions(features, target)
    if wrong.any() and not (wrong & ~tiny).any():
        where = wrong.nonzero()[0].tolist()
        readback = _readback(got, features, target)
        fail(
            f"{what} is wrong only where present values are tiny (0 < |x| < {TINY:g}): {int(wrong.sum())} positions, "
            f"first at {where}: got {got[tuple(where)].item():g}, expected {expected[tuple(where)].item():g}",
            "'present' means non-zero at any scale: test x != 0 itself"
            + (f"; {readback}" if readback else " (no tolerance such as |x| > 1e-6)"),
            code="tiny_values",
        )
    if target == "argmax":
        R.argmax_labelling(got, expected, features, what)
