"""top_activations whose answer skips real entries while position 0 stays out: the entries the reference returns and
the learner's output lacks are read back (the reference on the same acts with just those entries set to -inf must
reproduce the output exactly) and said by where they sit (the last flat entry, the last position, the last sequence),
so an off-by-one slice is not reported as a BOS-mask problem."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail


def _where(missing: list[tuple[int, int]], n_seq: int, n_pos: int) -> tuple[str, str]:
    """What the left-out entries have in common, and the slip that leaves such entries out."""
    if missing == [(n_seq - 1, n_pos - 1)]:
        return (
            f"the very last flat entry, acts[{n_seq - 1}, {n_pos - 1}]",
            "a slice or range that stops one short (flatten()[:-1], range(numel - 1))? take topk over every entry of "
            "the masked acts",
        )
    if all(p == n_pos - 1 for _, p in missing):
        return "entries at the last position", "a slice that stops one short on positions ([:, 1:-1])? keep 1:"
    if all(s == n_seq - 1 for s, _ in missing):
        return "entries of the last sequence", "a slice that stops one short on sequences ([:-1])? keep every row"
    return "entries at " + ", ".join(f"({s}, {p})" for s, p in missing[:4]), "every real entry (position >= 1) competes"


def left_out_entries(
    reference: Callable, acts: Tensor, k: int, values: Tensor, seq_idx: Tensor, pos_idx: Tensor
) -> None:
    """Fails (entries_left_out) when the output is the reference's answer with some real entries removed."""
    n_seq, n_pos = acts.shape
    if not (values.shape == seq_idx.shape == pos_idx.shape == (k,)) or seq_idx.is_floating_point():
        return
    s, p = seq_idx.long(), pos_idx.long()
    if bool(((s < 0) | (s >= n_seq) | (p < 1) | (p >= n_pos)).any()):
        return
    _, exp_seq, exp_pos = reference(acts, k)
    got = set(zip(s.tolist(), p.tolist(), strict=True))
    missing = [sp for sp in zip(exp_seq.cpu().tolist(), exp_pos.cpu().tolist(), strict=True) if sp not in got]
    if not missing:
        return
    edited = acts.clone()
    for i, j in missing:
        edited[i, j] = -torch.inf
    rv, rs, rp = (t.detach().cpu() for t in reference(edited, k))
    if not (torch.equal(rv.double(), values.double()) and torch.equal(rs, s) and torch.equal(rp, p)):
        return
    where, fix = _where(missing, n_seq, n_pos)
    fail(
        f"on a [{n_seq}, {n_pos}] `acts` with k = {k}, the result is the expected answer with {where} left out "
        f"(value {float(acts[missing[0]]):.4g}, among the {k} largest real entries): the reference run with "
        "just that left out reproduces your output exactly",
        f"{where} did not compete: {fix}",
        code="entries_left_out",
    )
