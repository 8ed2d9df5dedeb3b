"""Part 6 read-backs that tell apart slips reaching the same symptom: NaN in top_activations' values (where the
NaN sit, read back with k = every entry), indices that do not give back the values (a divisor slip, or positions
that are ranks in a sorted row), and a logit effect equal to another latent's (a hard-coded row, or a value
cached on an earlier call: the SAE's decoder doubled on a copy tells them apart)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

MASK_FIX = "mask position 0 with -inf on a copy (acts.clone(); m[:, 0] = -torch.inf, or masked_fill)"


def _nan_positions(impl: Callable, values: Tensor, pos_idx: Any, acts: Tensor) -> tuple[list[int], bool] | None:
    """The positions of the NaN entries, read back with k = every entry (True) or from the returned pos_idx."""
    try:
        with torch.no_grad():
            v, _, p = impl(acts.clone(), acts.numel())
        if isinstance(v, Tensor) and isinstance(p, Tensor) and v.shape == p.shape == (acts.numel(),):
            return p.long().cpu()[v.isnan().cpu()].tolist(), True
    except Exception:  # the probe is optional: fall back on the returned indices
        pass
    if isinstance(pos_idx, Tensor) and pos_idx.shape == values.shape and not pos_idx.is_floating_point():
        return pos_idx.long().cpu()[values.isnan().cpu()].tolist(), False
    return None


def nan_values(impl: Callable, values: Any, pos_idx: Any, acts: Tensor) -> None:
    """values holds NaN: say where the NaN sit (every entry at positions >= 1: 0 · inf from an additive mask; only
    position 0: position 0 masked with NaN; otherwise the positions seen)."""
    if not (isinstance(values, Tensor) and values.is_floating_point() and values.isnan().any()):
        return
    n_seq, seq = acts.shape
    head = f"values contains {int(values.isnan().sum())} NaN"
    found = _nan_positions(impl, values, pos_idx, acts)
    if found is not None:
        pos, every = found
        how = f"with k = {acts.numel()} (every entry) your function returns" if every else "your indices put"
        if every and len(pos) == n_seq * (seq - 1) and 0 not in pos:
            fail(
                f"{head}: {how} NaN at every one of the {n_seq * (seq - 1)} entries at positions >= 1 (the entries "
                "that should stay as they are) and at none at position 0",
                "NaN exactly where the mask is 0: 0 · inf = NaN, e.g. an additive mask acts − inf · mask (inf times "
                f"the mask's zeros); {MASK_FIX}",
                code="inf_times_zero",
            )
        if pos and set(pos) == {0}:
            fail(
                f"{head}: {how} NaN only at position 0",
                f"NaN at the masked position alone: was position 0 masked with NaN? topk ranks NaN above every "
                f"number; {MASK_FIX}",
                code="not_finite",
            )
        where = sorted(set(pos))
        head += f": {how} NaN at positions {where[:8]}{' ...' if len(where) > 8 else ''}"
    fail(
        head,
        "NaN in the values; possible causes, e.g.: 0 · inf or inf − inf in a mask, position 0 masked with NaN, a "
        f"division by zero; topk ranks NaN above every number; {MASK_FIX}",
        code="not_finite",
    )


def indices_not_values(values: Tensor, s_idx: Tensor, p_idx: Tensor, acts: Tensor, exp: tuple[Tensor, Tensor]):
    """acts[seq_idx, pos_idx] is not values: name a flat index unravelled with another row length, or positions
    that are ranks in a sorted row (the sort's indices dropped), each only when it reproduces the indices."""
    n_seq, seq = acts.shape
    acts, values = acts.cpu().double(), values.detach().cpu().double()
    exp_seq, exp_pos = (e.long().cpu() for e in exp)
    for row, shift in ((seq, 0), (seq - 1, 1)):
        flat = exp_seq * row + exp_pos - shift
        for d in sorted({seq, seq - 1, seq + 1, n_seq}):
            for o in (0, 1):
                if (d, o) != (row, shift) and torch.equal(flat // d, s_idx) and torch.equal(flat % d + o, p_idx):
                    fail(
                        f"acts[seq_idx, pos_idx] does not give back the values: your indices are the right flat "
                        f"indices (rows of length {row}) turned into (i // {d}, i % {d}{' + 1' if o else ''})",
                        f"turn a flat index i into (i // row, i % row), where row is the length of the rows you "
                        f"flattened: acts.shape[1] = {seq} for acts itself, {seq - 1} for acts[:, 1:] (then add 1 "
                        "to the position)",
                        code="unravel",
                    )
    rounded_division(s_idx, p_idx, exp_seq, exp_pos, seq)
    masked = acts.clone()
    masked[:, 0] = -torch.inf
    for srt, off in ((masked.sort(dim=1, descending=True).values, 0), (acts[:, 1:].sort(1, descending=True)[0], 1)):
        r = p_idx - off
        inside = ((r >= 0) & (r < srt.shape[1]) & (s_idx >= 0) & (s_idx < n_seq)).all()
        if inside and torch.allclose(srt[s_idx, r.clamp(0, srt.shape[1] - 1)], values):
            fail(
                "acts[seq_idx, pos_idx] does not give back the values, but values[j] is entry "
                f"{'pos_idx[j] − 1' if off else 'pos_idx[j]'} of row seq_idx[j] sorted largest first: your "
                "positions are ranks in a sorted row, not positions in the sequence",
                "the rows were sorted and the sort's indices dropped: map a rank back to its position with "
                "them (`srt, order = m.sort(dim=1, descending=True)`, position = order[seq, rank]), or take "
                "topk over the flattened, unsorted acts",
                code="sorted_rows",
            )
    fail(
        "acts[seq_idx, pos_idx] does not give back the values",
        "the indices you return do not point at the values you return; possible causes, e.g.: a flat index "
        f"unravelled with another row length (i // row, i % row with row = acts.shape[1] = {seq} for acts itself, "
        f"{seq - 1} for acts[:, 1:], then add 1), or indices read from another layout (a sorted, sliced or "
        "transposed copy) than acts",
        code="unravel",
    )


def rounded_division(s_idx: Tensor, p_idx: Tensor, exp_seq: Tensor, exp_pos: Tensor, seq: int) -> None:
    """pos_idx is i % row of the right flat indices i, but seq_idx is a float division i / row rounded (round, ceil)
    rather than floored: named only when that rounding reproduces seq_idx."""
    for row, shift in ((seq, 0), (seq - 1, 1)):
        flat = exp_seq * row + exp_pos - shift
        if not torch.equal(flat % row + shift, p_idx.long().cpu()):
            continue
        for name, fn in (("(i / row).round()", torch.round), ("(i / row).ceil()", torch.ceil)):
            if torch.equal(fn(flat.double() / row).long(), s_idx.long().cpu()):
                off = (s_idx.long().cpu() != exp_seq).sum().item()
                fail(
                    f"acts[seq_idx, pos_idx] does not give back the values: pos_idx is right (i % {row} of the "
                    f"flat indices i), but seq_idx equals {name.replace('row', str(row))}, one row too far at "
                    f"{off}/{len(flat)} entries",
                    f"turn a flat index into its row with floor division, i // {row} (or torch.div(i, {row}, "
                    "rounding_mode='floor')); rounding a float division goes one row too far once i % row is past "
                    "half the row (round) or above 0 (ceil)",
                    code="rounded_division",
                )


def same_latent_effect(impl: Callable, out: Tensor, model: Any, sae: Any, latent: int) -> None:
    """out is the effect of another latent j: call again on a copy of the SAE with its decoder doubled. The same
    vector back: a value cached on an earlier call; row j's doubled effect: row j read whatever latent is."""
    every = sae.W_dec @ model.W_out[0] @ model.W_U  # [d_sae d_vocab]: the effect of every latent
    same = torch.isclose(every, out[None], rtol=1e-3, atol=1e-4).all(-1).nonzero().flatten().tolist()
    if not same:
        return
    j, again = same[0], None
    doubled = copy.deepcopy(sae)
    with torch.no_grad():
        doubled.W_dec.mul_(2.0)
        with contextlib.suppress(Exception):  # the probe is optional
            again = impl(model, doubled, latent)
    close = lambda a, b: isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    head = f"the logit effect of latent {latent} is the effect of latent {j}"
    if close(again, out) and not close(out, 2 * every[j]):
        fail(
            f"{head}, and your function returns that same vector again for a copy of the SAE with W_dec doubled",
            "the result does not depend on this call's inputs: a value computed on an earlier call and reused (a "
            "cache in a global or a dict keyed on nothing, a mutable default argument); compute the effect from "
            "this call's `sae` and `latent` every time",
            code="stale_cache",
        )
    if close(again, 2 * every[j]):
        fail(
            head,
            f"index the decoder with `latent` itself (row {latent} of sae.W_dec), not row {j} (with W_dec doubled "
            f"on a copy your function returns row {j}'s effect doubled: row {j} is read whatever latent is)",
            code="latent_index",
        )
    fail(
        head,
        f"the effect of row {j}, not of row {latent}; possible causes, e.g.: a row index other than `latent` (a "
        "hard-coded row, another variable) or a value reused from an earlier call",
        code="latent_index",
    )
