"""What the absent entries of a batch are when none of them is 0.

A correct batch has every absent entry exactly 0. When no entry is 0, the absent entries either hold random
non-zero values (no mask, or where(present, v, -v)) or one shared constant c: a fill value c, or (when c is an end
of the other entries' range) a shift or rescale applied after the mask (2 * where(present, u, 0) - 1 sets every
absent entry to -1). The constant is told apart by its rate: in each
(inst, feature) cell it appears at the absence rate 1 - p.
"""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail
from tests.part1_superposition_probes import rate_tolerance


def repeated_value(batch: Tensor) -> tuple[float, int] | None:
    """The most frequent value of `batch` and its count, when it repeats more than continuous draws ever do (over
    1 in 1000 entries: float32 uniforms collide about once in 2^24 pairs of draws per value)."""
    values, counts = batch.flatten().unique(return_counts=True)
    top = int(counts.argmax())
    if int(counts[top]) <= 1e-3 * batch.numel():
        return None
    return float(values[top]), int(counts[top])


def _shift_note(batch: Tensor, c: float) -> str:
    """The shift-after-mask reading, offered only when c is an end of the other entries' range (an affine map of a
    masked draw sends 0 to c and the draws to one side of it)."""
    rest = batch[batch != c]
    if rest.numel() == 0:
        return ""
    lo, hi = float(rest.min()), float(rest.max())
    if min(abs(lo - c), abs(hi - c)) > 0.01 * max(hi - lo, 1e-12):
        return ""
    return (
        ", or a shift or rescale applied after the mask (e.g. 2 * torch.where(present, u, 0) - 1 turns every "
        "absent 0 into -1; here the other entries lie on one side of it)"
    )


def shifted_absent_failure(batch: Tensor, probs: Tensor, low: float, high: float) -> None:
    """Entries equal to one constant c != 0 at the absence rate 1 - p of every (inst, feature) cell (within the
    Bernstein tolerance of rate_tolerance on the batch's n draws): the absent entries were moved to c after masking.
    Only called once no entry is 0, so a correct batch never reaches it."""
    found = repeated_value(batch)
    if batch.ndim != 3 or found is None or found[0] == 0:
        return
    c, count = found
    n = batch.shape[0]
    rates = (batch == c).double().mean(0)
    absent = 1 - probs.double()
    if not bool(((rates - absent).abs() <= rate_tolerance(n, absent)).all()):
        return
    i, j = (int(v) for v in divmod(int(probs.argmin()), probs.shape[1]))
    law = f"U[{low:g}, {high:g}]"
    fail(
        f"the batch: none of its {batch.numel()} entries is 0, and {count} of them equal {c:.4g}; in each (inst, "
        f"feature) that value appears at the absence rate 1 - p (inst {i}, feature {j}: {100 * float(rates[i, j]):.1f}"
        f"% of the examples, 1 - p = {100 * float(absent[i, j]):.1f}%)",
        f"the absent entries are all {c:.4g} instead of 0. Ways that give this: the absent entries filled with "
        f"{c:.4g} (torch.where(present, v, {c:.4g}), or a tensor started at {c:.4g}){_shift_note(batch, c)}. Make "
        f"the values {law} first, then mask: torch.where(rand < p, 2 * torch.rand(...) - 1, 0.0)",
        code="shifted_after_mask",
    )
