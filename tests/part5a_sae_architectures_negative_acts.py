"""Read-back for part 5a's TopK `negative_acts` reading: acts_post has negative values (and is none of the listed
mistakes, so not the no-ReLU form, which the catalogue names). The causes the hint used to list from that one
statistic are computed as mutants of the reference on the checker's inputs, and only the ones that reproduce the
learner's acts_post (atol 1e-5) are named; otherwise the hint says what was seen."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _keep(score: Tensor, values: Tensor, k: int) -> Tensor:
    idx = score.topk(k, dim=-1).indices
    return torch.zeros_like(values).scatter(-1, idx, values.gather(-1, idx))


def negative_acts_hint(acts: Tensor, reference: Any, h: Tensor) -> str:
    """The negative_acts hint: the causes whose mutant gives `acts`, or the observation alone."""
    k = reference.cfg.k
    with torch.no_grad():
        proj = torch.einsum("bid,ids->bis", h - reference.b_dec, reference.W_enc)
        pre = proj + reference.b_enc
        candidates = {
            "the values gathered from pre instead of ReLU(pre) (the indices from the top-k of ReLU(pre))": _keep(
                pre.relu(), pre, k
            ),
            "b_enc added after the ReLU, ReLU(x @ W_enc) + b_enc": _keep(
                proj.relu() + reference.b_enc, proj.relu() + reference.b_enc, k
            ),
        }
    got = acts.detach().to(pre.dtype)
    found = [why for why, want in candidates.items() if torch.allclose(got, want, atol=1e-5)]
    rule = (
        "acts_post is never negative: the ReLU must be the last step before the top-k values are kept "
        "(the plain no-ReLU form would have been named; yours is not it)"
    )
    if found:
        return f"{rule}. Your acts_post equals the reference with {' and '.join(found)} (read back)"
    neg = got < 0
    return (
        f"{rule}. Your negative values are at {int(neg.sum())} positions, from {float(got[neg].min()):.4g} to "
        f"{float(got[neg].max()):.4g}; neither values gathered from pre nor b_enc added after the ReLU reproduces "
        "your acts_post"
    )
