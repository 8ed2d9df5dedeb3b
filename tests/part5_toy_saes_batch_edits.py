"""generate_batch read-backs of an edit applied to the drawn batch: a running sum along an axis (h.cumsum), and
the drawn features sparsified a second time (some of the active features dropped before the map through W)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

_FIX = "h = einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> batch inst d_in'), nothing else"
_AXES = ("batch", "inst", "d_in")


def running_sum_failure(h: Tensor, expected: Tensor) -> None:
    """h is the running sum (cumsum) of the right h along one axis: name the axis."""
    y, e = h.detach().double().cpu(), expected.detach().double().cpu()
    if y.shape != e.shape or torch.allclose(y, e, rtol=1e-4, atol=1e-5):
        return
    for dim, axis in enumerate(_AXES):
        if e.shape[dim] > 1 and torch.allclose(y, e.cumsum(dim), rtol=1e-4, atol=1e-4):
            fail(
                f"your h is a running sum along `{axis}` of W x: h[{axis} = j] = Σ over {axis} ≤ j of the right h "
                f"(a cumsum over dim {dim})",
                f"map each example's own features, with no sum along `{axis}`: {_FIX}",
                code="running_sum",
            )


def features_dropped_failure(h: Tensor, features: Tensor, W: Tensor) -> None:
    """h = W (x ⊙ m) for a 0/1 mask m that zeroes some of the drawn features' non-zero entries: every (example,
    instance) row is matched by W applied to a subset of its active features (all 2^feats subsets tried), and in
    some rows only by a strict subset. The features were sparsified again after self.model.generate_batch."""
    x, y, Wd = features.detach().double().cpu(), h.detach().double().cpu(), W.detach().double().cpu()
    n_feats = x.shape[-1]
    if y.shape[:2] != x.shape[:2] or y.shape[2] != Wd.shape[1] or Wd.shape[2] != n_feats or n_feats > 10:
        return
    masks = ((torch.arange(2**n_feats)[:, None] >> torch.arange(n_feats)) & 1).double()  # [M feats]
    cand = torch.einsum("bif,mf,idf->bimd", x, masks, Wd)  # W applied to each subset of the features
    scale = y.abs().amax().clamp_min(1e-12)
    match = (cand - y[:, :, None]).abs().amax(-1) <= 1e-4 * scale + 1e-6  # [batch inst M]
    if not bool(match.any(-1).all()):
        return
    full = match[:, :, -1]  # the last mask keeps every feature
    dropped_rows = ~full
    partly = dropped_rows & (y.abs().amax(-1) > 1e-6 * scale)  # some active features kept: not a whole row zeroed
    if int(partly.sum()) < 2:
        return  # whole examples zeroed: told by the examples_zeroed diagnosis
    # the kept fraction of the active features, from each row's largest matching subset
    kept = torch.where(match, masks.sum(-1), -1.0).argmax(-1)  # [batch inst]: index of the largest subset matched
    active = x != 0
    kept_active = (active & (masks[kept] > 0)).sum()
    frac = float(kept_active) / max(int(active.sum()), 1)
    m = masks[kept] > 0  # [batch inst feats]: the subset each row kept
    lost, held = x[active & ~m], x[active & m]
    if lost.numel() and held.numel() and float(lost.max()) < float(held.min()):
        how = (
            f"every dropped feature value is below {float(lost.max()):.3g} and every kept one at least "
            f"{float(held.min()):.3g}: a threshold on the feature values"
        )
    else:
        lo, hi = (f"{float(lost.min()):.3g} to {float(lost.max()):.3g}", "not a threshold on the values")
        how = f"the dropped values range over {lo}, as the kept ones do: {hi}; another mask was applied"
    fail(
        f"your h is W applied to the drawn features with some of their non-zero entries zeroed: in "
        f"{int(dropped_rows.sum())} of {dropped_rows.numel()} (example, instance) rows h matches W x only with some "
        f"active features dropped (about {frac:.0%} of the active features kept)",
        f"the features were sparsified a second time ({how}): self.model.generate_batch already draws sparse "
        f"features; map them as they are: {_FIX}",
        code="features_dropped",
    )


def permuted_features_failure(A: Tensor, W: Tensor) -> None:
    """A: the map read back by least squares from h = A x ([inst d_in feats], NaN columns for features never
    active). When every known column of A is one of W's columns (each used once), but not its own, the features
    met W's columns in another order: name the order (reversed, rolled, or the permutation read back)."""
    n_inst, _, n_feats = W.shape
    if A.shape != W.shape:
        return
    perms, moved = [], False
    for i in range(n_inst):
        perm = []
        for f in range(n_feats):
            col = A[i, :, f]
            if col.isnan().any():
                perm.append(None)
                continue
            hits = [g for g in range(n_feats) if torch.allclose(col, W[i, :, g], rtol=1e-3, atol=1e-4)]
            if len(hits) != 1:
                return
            perm.append(hits[0])
            moved |= hits[0] != f
        known = [g for g in perm if g is not None]
        if len(set(known)) != len(known):
            return
        perms.append(perm)
    if not moved:
        return
    flip = all(g is None or g == n_feats - 1 - f for p in perms for f, g in enumerate(p))
    rolls = [
        s for s in range(1, n_feats) if all(g is None or g == (f + s) % n_feats for p in perms for f, g in enumerate(p))
    ]
    if flip:
        order = "in reverse order (feature f meets W's column feats-1-f: a .flip(-1) or [..., ::-1] of one of them)"
    elif rolls:
        order = f"shifted by {rolls[0]} (feature f meets W's column f+{rolls[0]}: a roll or an off-by-one index)"
    else:
        order = "in another order (feature f meets W's column perm[f], read back per instance: " + str(perms) + ")"
    fail(
        f"your h is W x with the features matched to W's columns {order}",
        "feature f goes with W[:, :, f]: don't reorder the features or W's columns (no flip, sort, roll or "
        f"permutation). {_FIX}",
        code="features_permuted",
    )
