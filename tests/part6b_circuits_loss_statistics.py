"""replacement_losses: numbers that are a rounded or a differently reduced version of the right one. The recovered
fraction rounded (to 1-3 decimals, or as a rounded percentage) or exactly 1, and the clean loss taken as another
statistic of the per-token cross-entropies than their mean (the median of the per-sequence means or of every token's
loss, the largest or smallest sequence mean), or their mean over other entries or another count (round BA: the
prediction made at BOS left out, the sum divided by every token, batch × seq_len, where seq_len - 1 are predicted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from tests.outcomes import fail


def recovered_rounded(c: float, r: float, z: float) -> list[tuple[float, str, str]]:
    """(value, code, why) of the recovered fraction rounded to d decimals, or as a percentage rounded to d decimals."""
    rec = (z - r) / (z - c)
    rounded = "rounded to {} decimals (round(recovered, {})): "
    # a fraction rounded to a whole number has another likely cause: exactly 1 is named below with both
    out = [(round(rec, d), "recovered_rounded", rounded.format(d, d)) for d in (1, 2, 3) if round(rec, d) != round(rec)]
    percent = "a percentage rounded to {} decimals (round(100 * recovered, {})): "
    out += [(round(100 * rec, d), "recovered_rounded", percent.format(d, d)) for d in range(3)]
    tail = "return the fraction unrounded (round only when printing): "
    to_one = " or ".join(f"round(recovered, {d})" if d else "round(recovered)" for d in range(4) if round(rec, d) == 1)
    rounding = f", or the fraction was rounded ({to_one} gives 1.0)" if to_one else ""
    one = (
        "recovered is exactly 1: the numerator and the denominator are the same difference (clean where replaced "
        "belongs, (zero - clean) / (zero - clean))" + rounding
    )
    return [(v, code, why.rstrip(": ") + "; " + tail) for v, code, why in out] + [(1.0, "recovered_one", one)]


def clean_statistic(model: Any, tokens: Tensor, got: float, close: Callable) -> None:
    """The clean loss as another statistic of the per-token losses than their mean: say which."""
    logits = model(tokens).float()
    per_token = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    per_seq = per_token.view(tokens.shape[0], -1).mean(-1)
    want = float(per_token.mean())
    candidates = (
        (float(per_seq.median()), "the median of the per-sequence mean losses"),
        (float(per_seq.quantile(0.5)), "the median of the per-sequence mean losses"),
        (float(per_token.median()), "the median of every token's loss"),
        (float(per_token.quantile(0.5)), "the median of every token's loss"),
        (float(per_seq.max()), "the largest per-sequence mean loss"),
        (float(per_seq.min()), "the smallest per-sequence mean loss"),
    )
    for value, what in candidates:
        if close(got, value) and not close(value, want):
            fail(
                f"clean loss {got:.5f}, expected {want:.5f}: that is {what}",
                "the loss is the mean cross-entropy over every predicted token (every sequence, every position but "
                "the last): `model(tokens, return_type='loss')`, or the per-token losses' .mean()",
                code="loss_statistic",
            )
    clean_entries(per_token.view(tokens.shape[0], -1), got, close)


def clean_entries(per: Tensor, got: float, close: Callable) -> None:
    """The per-token losses [batch seq-1] averaged over other entries or divided by another count: say which (both
    when two fit: on a long batch their values differ by less than the checker's tolerance)."""
    n_seq, n_pred = per.shape
    want = float(per.mean())
    candidates = {
        "summed and divided by batch × seq_len (tokens.numel())": float(per.sum() / (n_seq * (n_pred + 1))),
        "averaged without the first prediction (the one made at BOS, position 0)": float(per[:, 1:].mean()),
        "averaged without the last prediction": float(per[:, :-1].mean()),
    }
    fits = [what for what, v in candidates.items() if close(got, v) and not close(v, want)]
    tight = [what for what in fits if abs(got - candidates[what]) <= 1e-5 * abs(got) + 1e-6]
    fits = tight or fits
    if fits:
        fail(
            f"clean loss {got:.5f}, expected {want:.5f}: that is the per-token losses " + ", or ".join(fits),
            f"every sequence of seq_len = {n_pred + 1} tokens makes seq_len - 1 = {n_pred} predictions (the token "
            "at t + 1 from positions 0..t), the one made at BOS included: the loss is the mean over all "
            f"batch × (seq_len - 1) = {n_seq * n_pred} of them, as model(tokens, return_type='loss') computes it",
            code="loss_average",
        )
