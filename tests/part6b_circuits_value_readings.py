"""Part 6b readings of held-out round BB mistakes, each read back from the learner's own output:

* transcoder_forward: a leaky gate, entries below the threshold kept as one fixed fraction of pre (not 0);
* replacement_losses: a zero-ablation of one sequence or one position only (`a[0] = 0` zeroes the first sequence
  of the batch, not the layer); `recovered` computed on another scale (perplexities exp(loss), or log losses);
* linearised_forward: a [seq] vector (a frozen scale squeezed, a mean without keepdim) met [seq d_model];
* quantile_examples: indices that count positions within the band's own entries (flat[in_band]), used as indices
  into acts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_extra_mistakes as extra
from tests.checking import fail


def leaky_gate(tc: Any, x: Tensor, acts: Tensor) -> None:
    """acts right where the gate is open, and alpha · pre (one alpha, not 0 or 1) where it is closed."""
    try:
        pre = (x @ tc.W_enc + tc.b_enc).double()
        a = acts.detach().double()
        closed = (pre <= tc.threshold.double()) & (pre != 0)
        if a.shape != pre.shape or not closed.any() or not torch.allclose(a[~closed], (pre * ~closed)[~closed]):
            return
        ratio = a[closed] / pre[closed]
    except (RuntimeError, TypeError, AttributeError):
        return
    alpha = float(ratio.median())
    if abs(alpha) < 1e-6 or abs(alpha - 1) < 1e-6 or float((ratio - alpha).abs().max()) > 1e-3 * abs(alpha):
        return
    fail(
        f"your acts are right where pre > threshold, and {alpha:.4g} × pre where it is not (a leaky gate)",
        "a JumpReLU sets a closed latent to exactly 0: acts = pre · [pre > threshold] (torch.where(pre > threshold, "
        "pre, 0)), with no fraction of pre kept below the threshold",
        code="leaky_gate",
    )


def zero_ablation_subset(model: Any, tc: Any, tokens: Tensor, got: float, close: Callable, loss: Callable) -> None:
    """The zero-ablated loss equals the loss with one sequence (or one position) of the MLP output zeroed."""
    n_seq, seq = tokens.shape

    def zeroed(where: tuple) -> float:
        def hook(a: Tensor, hook: Any) -> Tensor:
            a = a.clone()
            a[where] = 0
            return a

        return loss(model, tokens, [(tc.hook_name_out, hook)])

    candidates = [(f"sequence {i} of the batch only (a[{i}] = 0)", (i,)) for i in range(n_seq)]
    candidates += [(f"position {p} of every sequence only (a[:, {p}] = 0)", (slice(None), p)) for p in (0, seq - 1)]
    for what, where in candidates:
        if close(got, zeroed(where)):
            fail(
                f"zero-ablated loss {got:.5f}: that is the loss with the MLP output zeroed at {what}",
                "the hook's activation is [batch pos d_model]: zero all of it (`torch.zeros_like(act)`, or "
                "`act[:] = 0`); act[0] is the first sequence of the batch, not the layer's output",
                code="ablation_subset",
            )


def recovered_scales(c: float, r: float, z: float) -> list[tuple[float, str, str]]:
    """recovered computed on perplexities or on log losses, as (value, code, why)."""
    out = []
    if max(c, r, z) < 50:
        e = math.exp
        out.append(
            (
                (e(z) - e(r)) / (e(z) - e(c)),
                "recovered_perplexity",
                "that is the fraction on perplexities exp(loss); it is computed on the losses themselves: ",
            )
        )
    if min(c, r, z) > 0:
        lg = math.log
        out.append(
            (
                (lg(z) - lg(r)) / (lg(z) - lg(c)),
                "recovered_perplexity",
                "that is the fraction on log(loss); it is computed on the losses themselves: ",
            )
        )
    return out


SIZE = r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)"


def scale_squeezed(err: RuntimeError, seq: int, d_model: int) -> None:
    """A [seq] vector broadcast against [seq d_model]: it lines up with d_model, not with the positions."""
    match = re.search(SIZE, str(err))
    if match is None or seq == d_model or {int(match.group(1)), int(match.group(2))} != {seq, d_model}:
        return
    fail(
        f"your code raised RuntimeError: {err}: a vector of {seq} numbers (one per position) met a [seq d_model] "
        f"tensor, and broadcasting lines it up with d_model ({d_model}), not with the positions",
        "keep one-per-position quantities as [seq 1] columns: the frozen scales are already [seq 1] (no .squeeze() "
        "or [:, 0] on them), and a mean over d_model needs keepdim=True",
        code="scale_squeezed",
    )


def band_indices(acts: Tensor, j: int, n_bands: int, values: Tensor, seq_idx: Tensor, pos_idx: Tensor) -> None:
    """extra.swapped_indices, then indices that are positions within flat[in_band] (band j's own entries)."""
    extra.swapped_indices(acts, j, values, seq_idx, pos_idx)
    seq_len = acts.shape[1]
    try:
        c = (seq_idx.long() * seq_len + pos_idx.long()).cpu()
        flat = acts.detach().clone()
        flat[:, 0] = 0
        flat = flat.flatten().cpu()
        top = flat.max()
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        members = ((flat > lo) & (flat <= hi)).nonzero().flatten()
        if not c.numel() or int(c.min()) < 0 or int(c.max()) >= len(members):
            return
        if torch.equal(acts.detach().flatten().cpu()[c], values.detach().cpu()):
            return
        if not torch.equal(flat[members[c]], values.detach().cpu()):
            return
    except (RuntimeError, TypeError, AttributeError, IndexError):
        return
    fail(
        f"band {j}: your flat indices count places within the band's own entries (flat[in_band]), not within acts: "
        f"flat[in_band][i] gives back the values, acts.flatten()[i] does not",
        "an index into a filtered tensor (flat[in_band]) is not an index into flat: map it back with "
        "in_band.nonzero()[i], or rank the whole flat tensor with the out-of-band entries set to inf "
        "(torch.where(in_band, distance, inf)) so that the indices stay flat indices; then (i // seq_len, i % seq_len)",
        code="filtered_index",
    )
