"""quantile_examples read-backs: a band left out of the list (the loop started one band late or stopped one band
early), and values read from another layout of `acts` at the right indices (acts.T.flatten() at row-major flat
indices)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _same(group: Any, want: tuple) -> bool:
    if not isinstance(group, tuple | list) or len(group) != 3:
        return False
    for got, exp in zip(group, want, strict=True):
        if not isinstance(got, Tensor) or got.shape != exp.shape:
            return False
        if not torch.allclose(got.detach().double().cpu(), exp.detach().double().cpu()):
            return False
    return True


def band_left_out(out: Any, expected: list, n_bands: int) -> None:
    """n_bands - 1 groups equal to the expected ones with one band removed: say which band is missing."""
    if not isinstance(out, list | tuple) or len(out) != n_bands - 1:
        return
    for s in range(n_bands):
        rest = expected[:s] + expected[s + 1 :]
        if all(_same(g, w) for g, w in zip(out, rest, strict=True)):
            which = "the top band (j = 0, values near the max)" if s == 0 else f"band {s}"
            if s == n_bands - 1:
                which = f"the bottom band (j = {s}, the smallest firing values)"
            fail(
                f"expected a list of {n_bands} groups, got {len(out)}: they are the expected groups with {which} "
                "left out",
                f"loop over every band, j in range(n_bands) = 0..{n_bands - 1} (a range starting at 1 or stopping at "
                f"n_bands - 1 skips one); band j is (m(n-j-1)/n, m(n-j)/n], j = 0 the top one",
                code="band_left_out",
            )


def values_other_layout(out: Any, expected: list, acts: Tensor) -> None:
    """Every band's indices are the expected ones, but its values are acts.T.flatten() (or another layout) read at
    the row-major flat index seq_idx * seq_len + pos_idx, not acts[seq_idx, pos_idx]."""
    seq_len = acts.shape[1]
    flat_t = acts.T.flatten()
    seen = False
    for group, (_, want_seq, want_pos) in zip(out, expected, strict=True):
        values, seq_idx, pos_idx = group
        if not (torch.equal(seq_idx.cpu(), want_seq.cpu()) and torch.equal(pos_idx.cpu(), want_pos.cpu())):
            return
        flat = (seq_idx * seq_len + pos_idx).long()
        if values.shape != flat.shape or not torch.allclose(values.double().cpu(), flat_t[flat].double().cpu()):
            return
        seen = seen or not torch.equal(values.cpu(), acts[seq_idx.long(), pos_idx.long()].cpu())
    if seen:
        fail(
            "the indices of every band are the expected ones, but the values are not acts[seq_idx, pos_idx]: they "
            "equal acts.T.flatten()[seq_idx * seq_len + pos_idx] (a column-major copy read at row-major indices)",
            "read the values from the same flattening the indices came from: flat = acts.flatten() (row-major), "
            "values = flat[chosen] (equal to acts[seq_idx, pos_idx])",
            code="values_layout",
        )
