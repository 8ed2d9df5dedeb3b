"""generate_batch read-backs: an axis reorder done with reshape/view instead of permute (on the drawn features or
on the mapped output), and zero-mean noise added to h = W x (seen where every feature is absent, so W x = 0)."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from tests.checking import fail

_FIX = "h = einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> batch inst d_in')"


def _hidden(x: Tensor, W: Tensor) -> Tensor:
    return torch.einsum("bif,idf->bid", x, W)


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def reshaped_layout_failure(h: Tensor, drawn: list[Tensor], W: Tensor) -> None:
    """h is W x with the features (or the result) put in another axis order by reshape instead of permute."""
    if len(drawn) != 1:
        return
    x, y, Wd = drawn[0].detach().double().cpu(), h.detach().double().cpu(), W.detach().double().cpu()
    if x.ndim != 3 or y.shape != (x.shape[0], x.shape[1], Wd.shape[1]):
        return
    names = ("batch", "inst", "feats")
    for perm in itertools.permutations(range(3)):
        inv = [perm.index(k) for k in range(3)]
        shape = tuple(x.shape[p] for p in perm)
        if perm == (0, 1, 2) or torch.equal(x.reshape(shape), x.permute(perm)):
            continue
        layout = "[" + " ".join(names[p] for p in perm) + "]"
        if _close(y, _hidden(x.reshape(shape).permute(inv), Wd)):
            fail(
                f"your h equals W x for the drawn features [batch inst feats] reshaped to {layout} where a permute "
                "was meant: reshape keeps the memory order, so examples, instances and features are mixed up",
                f"reorder axes with .permute (or use einsum directly): {_FIX}",
                code="reshaped_not_permuted",
            )
        out = _hidden(x, Wd)
        if _close(y, out.permute(perm).reshape(out.shape)):
            out_layout = "[" + " ".join(("batch", "inst", "d_in")[p] for p in perm) + "]"
            fail(
                f"your h is W x computed in the layout {out_layout} and then reshaped to [batch inst d_in] where a "
                "permute was meant: reshape keeps the memory order, so the entries are mixed up",
                f"put the axes back with .permute, not .reshape/.view (or use einsum directly): {_FIX}",
                code="reshaped_not_permuted",
            )


def noise_added_failure(h: Tensor, expected: Tensor) -> None:
    """h - W x is non-zero where W x = 0 (no feature present), varies from example to example, has mean ≈ 0 and the
    same spread where W x ≠ 0, and is uncorrelated with W x: zero-mean noise was added. The bounds are 6 standard
    errors, so an h that is W x times a factor, plus a bias, or any deterministic edit of W x does not pass them."""
    y, e = h.detach().double().cpu(), expected.detach().double().cpu()
    if y.shape != e.shape:
        return
    diff = y - e
    zero = e.abs().amax(-1) <= 1e-7  # [batch inst]: no feature present
    n_zero, n = int(zero.sum()), diff.numel()
    if n_zero < 4 or n_zero == zero.numel() or torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-5):
        return
    at_zero, elsewhere = diff[zero], diff[~zero]
    s0, s1 = float(at_zero.std()), float(elsewhere.std())
    if s0 <= 1e-6 or float((at_zero.abs() > 1e-7).double().mean()) < 0.9 or not 0.5 <= s0 / max(s1, 1e-12) <= 2:
        return
    mean, corr = float(diff.mean()), float(torch.corrcoef(torch.stack([diff.flatten(), e.flatten()]))[0, 1])
    s = float(diff.std())
    if abs(mean) > 6 * s / math.sqrt(n) or abs(corr) > 6 / math.sqrt(n):
        return
    fail(
        f"h - W x is non-zero even at the {n_zero} (example, instance) rows where no feature is present (W x = 0 "
        f"there): std {s0:.3g} there and {s1:.3g} elsewhere, mean {mean:.2g}, correlation with W x {corr:.2g}, "
        "different in every example: zero-mean noise is added to h",
        f"return W x with nothing added (no torch.randn_like(h) on top): {_FIX}",
        code="noise_added",
    )
