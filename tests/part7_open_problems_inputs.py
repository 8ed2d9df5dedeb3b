"""part7 checks on what a call does to its inputs and on dtypes/boundaries the contract allows: cross_entropy_loss
leaving logits, labels and importance as they were and keeping float64, compute_target's argmax on rows whose
present features are all equal (every feature present, binary) and on a single feature (any tied index is a label)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part7_open_problems as ref
from tests.checking import fail
from tests.input_edits import edited_input_failure

NAMES = ("logits", "labels", "importance")


def ce_first_call(loss_value: Callable, impl: Callable, args: tuple[Tensor, ...], device) -> Tensor:
    """The loss on the checker's inputs (its dtype the logits'), then a call on copies kept here (code in_place when
    one of them changed) and one in float64 (code dtype when the loss comes back in a lower precision)."""
    got = loss_value(impl, args, "cross_entropy_loss(logits, labels, importance)", device)
    if got.dtype != args[0].dtype:
        fail(f"the loss has dtype {got.dtype}, expected {args[0].dtype}", "keep the logits' dtype", code="dtype")
    copies = tuple(t.detach().clone() for t in args)
    impl(*copies)
    for name, before, after in zip(NAMES, args, copies, strict=True):
        edited_input_failure(
            "cross_entropy_loss",
            name,
            before,
            after,
            f"don't write into `{name}` (x[mask] = 0, x.clamp_(...)): the caller reuses it; compute a new "
            "tensor instead (labels.clamp(min=0) for the gather index)",
            note=" (the loss itself may be right)",
        )
    wide = (args[0].detach().double(), args[1], args[2].double())
    got64 = loss_value(impl, wide, "cross_entropy_loss on float64 logits and importance", device)
    if got64.dtype != torch.float64:
        fail(
            f"with float64 logits and importance the loss has dtype {got64.dtype} (differs from the float64 loss "
            f"by {abs(float(got64) - float(ref.cross_entropy_loss(*wide))):.2g})",
            "keep the inputs' dtype: no .float() / .to(torch.float32) on logits or importance, and no float32 "
            "accumulator (torch.zeros(n) without dtype=)",
            code="dtype",
        )
    return got


def constant_rows(impl: Callable, device) -> None:
    """argmax where every present feature has the same value (all present, binary) and with a single feature: a row
    with a present feature is labelled by an index of its largest value (any of the tied ones: the spec asks for "the
    index of the largest feature", and argmax's first-index rule is one choice among equals); -1 only where none is
    present."""
    cases = [
        torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]]),
        torch.tensor([[[0.7], [0.0], [1.0]]]),
    ]
    for features in cases:
        features = features.to(device)
        what = f"compute_target(features {features[0].tolist()} of shape {list(features.shape)}, 'argmax')"
        got = impl(features.clone(), "argmax")
        expected = ref.compute_target(features, "argmax")
        if not isinstance(got, Tensor) or got.shape != expected.shape or got.is_floating_point():
            continue
        wrong = ~_tied_max_label(got.to(features.device).long(), features)
        if not bool(wrong.any()):
            continue
        rows = [features[0, i].tolist() for i in wrong.nonzero()[:, -1].tolist()]
        fail(
            f"{what} gives {got.tolist()}, expected {expected.tolist()} (or another index of a tied largest value): "
            f"wrong on the row(s) {rows}, where every present feature has the same value (or there is only one "
            "feature)",
            "a row has no label only when NO feature is present, (features != 0).any(-1) false; a row whose values "
            "are all equal (max == min) still has one when they are non-zero: the index of its largest value (any "
            "of the tied ones)",
            code="constant_rows",
        )


def _tied_max_label(got: Tensor, features: Tensor) -> Tensor:
    """Per row: the label is NO_LABEL exactly where no feature is present, and elsewhere an index whose value is
    the row's largest (ties: any of them)."""
    present = (features != 0).any(-1)
    n = features.shape[-1]
    in_range = (got >= 0) & (got < n)
    picked = features.gather(-1, got.clamp(0, n - 1)[..., None])[..., 0]
    largest = in_range & (picked == features.amax(-1))
    return torch.where(present, largest, got == -1)


def zero_and_tiny_rows(x: Tensor, kind: str) -> None:
    """In place: the first example all zero, and (signed, positive) a row of instance 0 whose present values are tiny
    but non-zero. "Present" means non-zero at any scale: a pair 2e-12, 3e-12 is present in both, and a row whose
    values are all below 1e-6 has a label. (The pair's product, 6e-24, is still a normal float32: an AND read off
    `a * b != 0` is right on it, as it is on every value the exercise's features take.)"""
    if kind == "signed":
        x[2, ..., 0, 0], x[2, ..., 0, 1] = 2e-12, 3e-12
    if kind == "positive":
        x[2, ..., 0, :] = 0.0
        x[2, ..., 0, 1], x[2, ..., 0, 3] = 2e-7, 5e-7
    x[0] = 0.0
