"""Behavioural probes for part 6's checkers: runs that use one hook twice (late binding), which flattened positions
a mask left out (a stride from the wrong axis)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tests.checking import fail


def same_hook_runs(got: dict[str, float], exp: dict[str, float]) -> None:
    """out['spliced'] and out['zero_ablated'] equal, and equal to one of the two expected losses: both runs used the
    same hook. Swapped keys give two different values (each the other's), so this is not a swap."""
    s, z = got["spliced"], got["zero_ablated"]
    close = lambda a, b: abs(a - b) <= 2e-5 * abs(b) + 1e-6
    if not close(s, z) or close(exp["spliced"], exp["zero_ablated"]):
        return
    which = next((name for name in ("zero_ablated", "spliced") if close(s, exp[name])), None)
    if which is None:
        return
    fail(
        f"out['spliced'] = out['zero_ablated'] = {s:.6g}, the expected {which.replace('_', '-')} loss: both runs "
        "used the same hook",
        "the two hooks are the same function: a lambda (or def) built in a loop reads the loop variable when it is "
        "CALLED, after the loop, so every hook sees its last value (late binding); bind the value when the lambda "
        "is made (lambda act, hook, fn=fn: fn(act)), or write the two hooks out separately",
        code="late_binding",
    )


def strided_mask(impl: Callable, shape: tuple[int, int], device: torch.device) -> None:
    """A probe on which every position can be told apart: distinct positive values, position 0 (BOS) the largest,
    and k = every non-BOS position. The positions the learner leaves out are read off its indices; when they are
    every s-th flattened entry with s != seq (e.g. flat[::n_seq] = -inf), the stride is named."""
    n_seq, seq = shape
    g = torch.Generator().manual_seed(3)
    probe = (torch.randperm(n_seq * seq, generator=g).float() + 1).view(n_seq, seq) / (n_seq * seq)
    probe[:, 0] += 2.0
    k = n_seq * (seq - 1)
    try:
        values, seq_idx, pos_idx = impl(probe.to(device), k)
        values, seq_idx, pos_idx = (torch.as_tensor(t).detach().cpu() for t in (values, seq_idx, pos_idx))
        flat = seq_idx.long() * seq + pos_idx.long()
        if values.shape != (k,) or flat.shape != (k,) or flat.min() < 0 or flat.max() >= n_seq * seq:
            return
        finite = torch.isfinite(values)  # a masked entry topk had to return (-inf) is not kept
        flat = flat[finite]
        if not torch.allclose(values[finite].double(), probe.flatten()[flat].double()):
            return
    except Exception:
        return
    kept = torch.zeros(n_seq * seq, dtype=torch.bool)
    kept[flat] = True
    left_out = (~kept).nonzero().flatten()
    if len(left_out) < 2 or left_out[0] != 0:
        return
    stride = int(left_out[1])
    if stride == seq or not torch.equal(left_out, torch.arange(0, len(left_out) * stride, stride)):
        return
    if int(left_out[-1]) + stride < n_seq * seq:  # not every s-th: the mask stopped early
        return
    named = f" ({stride} = n_seq, the number of sequences)" if stride == n_seq else ""
    pairs = ", ".join(f"({int(i) // seq}, {int(i) % seq})" for i in left_out[:4])
    fail(
        f"on a probe [{n_seq} sequences × {seq} positions] with k = {k}, your top k leaves out every {stride}-th "
        f"flattened entry (flat indices 0, {stride}, {2 * stride}, …: (sequence, position) {pairs}, …), not position "
        f"0 of every sequence (every {seq}-th)",
        f"a strided mask flat[::{stride}]{named}: in the flattened [n_seq, seq] tensor position 0 of each sequence "
        f"is every seq-th entry (flat[::seq], seq = {seq}); simpler, mask acts[:, 0] = -inf on a copy before "
        "flattening",
        code="mask_stride",
    )
