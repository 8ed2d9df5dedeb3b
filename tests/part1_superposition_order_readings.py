"""Part 1 readings for mistakes that tie a draw to an order: rates accumulated along the feature axis, a pair's two
masks that are one tensor (an in-place op), a pair's choice that follows the example index, a loss error centred."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


def cumulative_rate_candidates(p: Tensor) -> list[tuple[str, str, Tensor]]:
    """Rate tables [inst feats] of a presence drawn against p accumulated along the features (cumsum, cumprod)."""
    hint = (
        "the rates follow p.{op}(-1), p accumulated along the features (feature i uses the {what} of the first i + 1 "
        "probabilities): compare each entry with its own p[inst, feature], not a cumulative one"
    )
    return [
        ("presence_cumulative_p", hint.format(op="cumsum", what="sum"), p.cumsum(-1).clamp(max=1.0)),
        ("presence_cumulative_p", hint.format(op="cumprod", what="product"), p.cumprod(-1)),
    ]


def centred_error_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """The squared error centred by its mean over one axis (torch.var / std², biased or Bessel-corrected)."""
    err = target - out
    found = []
    for dim, axis in ((0, "batch"), (2, "feats")):
        for correction, how in ((1, "Bessel-corrected, torch.var's default"), (0, "correction=0")):
            var = (imp * (err - err.mean(dim, keepdim=True)) ** 2).sum(dim) / (err.shape[dim] - correction)
            rest = var.mean(-1).sum() if dim == 0 else var.mean(0).sum()
            found.append(
                (
                    "error_centred",
                    f"equals the reference with the error centred by its mean over the {axis} axis ({how}): a "
                    "variance (torch.var, .std() ** 2) of target - out. The loss is the plain mean of "
                    "importance · (target - out)², not centred",
                    rest,
                )
            )
    return found


def identical_pair_masks_failure(present: Tensor, message: str) -> None:
    """Anticorrelated pairs whose two masks are equal in every example: one mask tensor serves both members."""
    first, second = present[..., 0::2], present[..., 1::2]
    if not bool(first.any()) or bool((first != second).any()):
        return
    fail(
        message + "; in every example the two features of each pair have the same mask",
        "the second feature's mask is the first's: the first feature's mask was changed after the second was built "
        "from it, so both end up the same tensor. An in-place op (first.logical_not_(), ~= , masked_fill_, "
        "mask[...] = ...) edits the mask both members read; use out-of-place ops (~first, first.logical_not())",
        code="masks_identical",
    )


def example_order_choice_failure(present: Tensor, what: str) -> None:
    """The member chosen in each active anticorrelated pair is one per example and follows the example index."""
    first, second = present[..., 0::2], present[..., 1::2]
    active = first | second
    rows = active.flatten(1).any(1)
    picks = (first & active).flatten(1).sum(1), active.flatten(1).sum(1)
    chose_first = picks[0] == picks[1]
    chose_second = picks[0] == 0
    if not bool((chose_first | chose_second)[rows].all()) or int(rows.sum()) < 16:
        return  # some example mixes its choices: not one choice per example
    for period in (2, 3, 4):
        on = rows & rows.roll(-period)
        on[-period:] = False
        if int(on.sum()) < 16:
            continue
        if bool((chose_first[on] == chose_first.roll(-period)[on]).all()) and bool(
            chose_first[rows].any() & (~chose_first[rows]).any()
        ):
            fail(
                f"{what}: the member chosen in every active pair is the same within an example and repeats with "
                f"the example index (period {period}: example b and b + {period} always choose alike)",
                "which feature of a pair is on is decided by the example's position (b % 2, torch.arange(batch)), "
                "not by chance: draw a random coin per pair, torch.rand(batch, inst, pairs) < 0.5",
                code="choice_by_example_index",
            )
