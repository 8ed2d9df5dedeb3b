"""top_activations: the indices are right but the values are not the activations at those indices. Reads where the
values were taken from instead (the position before or after, i.e. a +1 shift applied to the indices only, or the
right entries rounded to float16 / bfloat16), else says the two outputs disagree."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def values_off_indices(values: Tensor, seq_idx: Tensor, pos_idx: Tensor, acts: Tensor, k: int, expected) -> None:
    """Fail (code values_index_shifted / values_not_at_indices) when seq_idx and pos_idx equal the expected ones
    but `values` differs from the expected values."""
    exp_values, exp_seq, exp_pos = (e.detach().cpu() for e in expected)
    s, p = seq_idx.detach().long().cpu(), pos_idx.detach().long().cpu()
    v, a = values.detach().double().cpu(), acts.detach().double().cpu()
    if not (torch.equal(s, exp_seq.long()) and torch.equal(p, exp_pos.long())):
        return
    if torch.allclose(v, exp_values.double(), rtol=1e-5, atol=1e-6):
        return
    for shift in (-1, 1):
        q = p + shift
        if (q >= 0).all() and (q < a.shape[1]).all() and torch.allclose(v, a[s, q], rtol=1e-5, atol=1e-6):
            before_after = "before" if shift < 0 else "after"
            fail(
                f"seq_idx and pos_idx are right, but values are acts[seq_idx, pos_idx {shift:+d}]: the activation "
                f"one position {before_after} each returned index",
                "the values were read at the position before the shift you applied to the indices (e.g. topk on "
                "acts[:, 1:] gives positions counted from 1: add the 1 before reading acts, or use the values topk "
                "returns); values[j] must be acts[seq_idx[j], pos_idx[j]]",
                code="values_index_shifted",
            )
    for dtype in (torch.float16, torch.bfloat16):
        if torch.equal(v, a[s, p].to(dtype).double()):
            fail(
                f"seq_idx and pos_idx are right, but values are acts[seq_idx, pos_idx] rounded to {dtype} (got "
                f"{v[:3].tolist()}, expected {exp_values[:3].tolist()})",
                f"the values went through {dtype} (a .half() / .to({dtype}) copy, or autocast): keep the input's "
                "dtype, float32 here, for the values you return",
                code="low_precision",
            )
    fail(
        f"seq_idx and pos_idx are right, but values are not acts[seq_idx, pos_idx] (got {v[:3].tolist()}, "
        f"expected {exp_values[:3].tolist()})",
        "values[j] must be the activation at the returned indices, acts[seq_idx[j], pos_idx[j]]: were the values "
        "read from a different tensor or at different indices than the ones you return?",
        code="values_not_at_indices",
    )
