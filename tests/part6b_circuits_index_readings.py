"""quantile_examples: read the learner's (seq_idx, pos_idx) back as a formula of the flat index i of each chosen
example. When the values are right but an index is not, each index is compared with the usual ways of splitting a
flat index (i // n, i % n, i - i // n for n = seq_len or the number of sequences, a position of acts[:, 1:] not
shifted back); the hint names the formula that reproduces it, and otherwise states what was observed."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


def _formulas(i: Tensor, n_seq: int, seq_len: int) -> dict[str, Tensor]:
    return {
        "i // seq_len": i // seq_len,
        "i % seq_len": i % seq_len,
        "i // n_seq (the number of sequences)": i // n_seq,
        "i % n_seq (the number of sequences)": i % n_seq,
        "i - i // seq_len (the sequence index subtracted, not seq_len · (i // seq_len))": i - i // seq_len,
        "i (the flat index itself)": i,
        "i % seq_len - 1 (a position of acts[:, 1:]: slicing BOS off moves every position down by one, add 1 back)": (
            i % seq_len - 1
        ),
    }


def flat_index_reading(
    j: int, seq_idx: Tensor, pos_idx: Tensor, exp_seq: Tensor, exp_pos: Tensor, n_seq: int, seq_len: int
) -> None:
    """Band j's values are right: if seq_idx or pos_idx is wrong and equals a formula of the flat index, name it."""
    if seq_idx.shape != exp_seq.shape or pos_idx.shape != exp_pos.shape:
        return
    exp_seq, exp_pos = exp_seq.long().cpu(), exp_pos.long().cpu()
    got = {"seq_idx": seq_idx.long().cpu(), "pos_idx": pos_idx.long().cpu()}
    want = {"seq_idx": exp_seq, "pos_idx": exp_pos}
    i = exp_seq * seq_len + exp_pos
    formulas = _formulas(i, n_seq, seq_len)
    for name in ("seq_idx", "pos_idx"):
        if got[name].equal(want[name]):
            continue
        right = "i // seq_len" if name == "seq_idx" else "i % seq_len"
        for formula, value in formulas.items():
            if formula != right and got[name].equal(value):
                fail(
                    f"band {j}: the values are right, but {name} {got[name].tolist()} equals {formula} for the flat "
                    f"index i = {i.tolist()} of each example (acts is [{n_seq}, {seq_len}]); expected "
                    f"{want[name].tolist()}",
                    f"turn a flat index i into (seq_idx, pos_idx) = (i // seq_len, i % seq_len) with seq_len = "
                    f"acts.shape[1] = {seq_len} (torch.unravel_index(i, acts.shape) does both)",
                    code="indices",
                )
