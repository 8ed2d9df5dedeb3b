"""Part 3's D* = d_hidden / ‖W‖²_F with ‖W‖²_F summed over only some of the features: the learner's denominator
d_hidden / D* read back and matched against the sums of ‖W_i‖² over every subset of an instance's features, so a
threshold ('represented' features only), a slice or a mask is named by the features it kept."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _subsets(sq: Tensor, den: Tensor) -> list[list[int]] | None:
    """Per instance, the one subset of features whose Σ ‖W_i‖² is `den` (relative 1e-5), or None when an instance has
    none or several. Sums over the 2^n subsets of n <= 12 features; float32 outputs are exact to ~1e-7 relative,
    and a chance match of a spread of 2^n sums to 1e-5 in every one of the instances is negligible."""
    n = sq.shape[-1]
    if n > 12:
        return None
    masks = (torch.arange(2**n)[:, None] >> torch.arange(n)) & 1  # [2^n n]
    sums = sq @ masks.double().T  # [inst 2^n]
    hit = (sums - den[:, None]).abs() <= 1e-5 * den.abs()[:, None]
    if not bool((hit.sum(-1) == 1).all()):
        return None
    return [masks[int(h.nonzero()[0, 0])].nonzero().flatten().tolist() for h in hit]


def subset_norm_failure(out: Tensor, W: Tensor, what: str) -> None:
    """Name a ‖W‖²_F that sums ‖W_i‖² over only some features (the same subset rule in every instance that lost any)."""
    got = out.detach().double().cpu()
    if got.shape != W.shape[:1] or not bool(torch.isfinite(got).all()) or bool((got <= 0).any()):
        return
    Wd = W.detach().double().cpu()
    sq, den = Wd.pow(2).sum(1), W.shape[1] / got  # [inst feats], [inst]
    kept = _subsets(sq, den)
    n = sq.shape[-1]
    if kept is None or all(len(k) == n for k in kept) or any(len(k) == 0 for k in kept):
        return
    norms = sq.sqrt()
    inside = torch.cat([norms[i, k] for i, k in enumerate(kept)])
    left = torch.cat([norms[i, [j for j in range(n) if j not in k]] for i, k in enumerate(kept)])
    seen = "; ".join(
        f"instance {i}: features {k}" if len(k) < n else f"instance {i}: all {n}" for i, k in enumerate(kept)
    )
    if float(inside.min()) > float(left.max()):
        rule = (
            f"exactly the features with ‖W_i‖ above a threshold between {float(left.max()):.3g} and "
            f"{float(inside.min()):.3g} are counted (a 'represented features' filter or mask, such as norms > 0.5)"
        )
    elif float(inside.max()) < float(left.min()):
        rule = (
            f"exactly the features with ‖W_i‖ below a threshold between {float(inside.max()):.3g} and "
            f"{float(left.min()):.3g} are counted"
        )
    else:
        rule = "some features are left out (a slice such as [..., :-1] or [..., 1:], a mask, or an index)"
    fail(
        f"{what}: d_hidden / your value is the sum of ‖W_i‖² over only some features ({seen}; {n} features each)",
        f"{rule}; ‖W‖²_F sums every feature's ‖W_i‖², whatever its size (a weak feature counts for its small "
        "‖W_i‖²): W.pow(2).sum((1, 2))",
        code="features_subset",
    )
