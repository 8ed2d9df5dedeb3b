"""Part 6 top_activations: one entry returned several times (k rounds of argmax where each pick was knocked out
with a finite value, such as 0, that it beats again once every remaining entry is below it)."""

from __future__ import annotations

from typing import Any

from tests.checking import fail


def repeated_picks(seq_idx: Any, pos_idx: Any, k: int, shown: Any) -> None:
    """(seq_idx, pos_idx) of a call on distinct activations with negative entries: fail when a pair repeats."""
    if seq_idx is None or pos_idx is None or seq_idx.shape != (k,) or pos_idx.shape != (k,):
        return
    pairs = list(zip(seq_idx.tolist(), pos_idx.tolist(), strict=True))
    again = [pair for pair in pairs if pairs.count(pair) > 1]
    if not again:
        return
    s, p = again[0]
    fail(
        f"on activations with negative entries (three positive ones after position 0, k = {k}), the entry at "
        f"sequence {s}, position {p} came back {pairs.count((s, p))} times: values {shown}",
        "each pick must be knocked out for good before the next one: set it to -inf (masked[s, p] = -torch.inf); a "
        "finite value such as 0 lets it win again once every remaining entry is below it (or take topk(k) at once)",
        code="knocked_out_finite",
    )
