"""absorption_fraction: the hand-built case's catalogue, each mistake confirmed on the random case (round BA).

The hand-built case has few examples of each kind, so a learner's fractions can equal a catalogued mistake's there by
coincidence (a "carried" rule that projects the active latents onto the parent matched "off = not the most active
latent" on one instance). A catalogued mistake is only named on the hand-built case when the learner's fractions on
the checker's random case (same cos_threshold) equal that mistake's there too; when the learner's call on the random
case fails or has another shape, nothing is dropped."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.part5b_absorption_mistakes import ABSORPTION_MISTAKES, absorption_variant

__all__ = ["hand_built_mistakes"]


def hand_built_mistakes(
    impl: Callable,
    case: tuple[Tensor, ...],
    parent_of: list[int],
    th: float,
    keyword: bool,
    out: Tensor,
    random_case: Callable,
) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the catalogue on the hand-built `case`, those that the random case (`random_case(device)`)
    contradicts left out (`keyword`: the learner was called with cos_threshold, so a strict > can differ)."""
    features, acts, W_dec, W_feat = case
    rows = []
    for kwargs, code, hint in ABSORPTION_MISTAKES[1:]:
        if code == "strict_threshold" and not keyword:
            continue
        rows.append((kwargs, code, hint, absorption_variant(features, acts, W_dec, W_feat, parent_of, th, **kwargs)))
    rows += [
        (
            {"child": which},
            "cases_one_child",
            f"the cases count only the {which} child of each parent (children[{index}]): a case is the parent with ANY "
            "of its children, (features[..., p] > 0) & (features[..., children] > 0).any(-1)",
            one_child(features, acts, W_dec, W_feat, parent_of, th, index),
        )
        for which, index in (("first", 0), ("last", -1))
    ]
    matched = [row for row in rows if torch.allclose(out, row[3].to(out.device), rtol=1e-4, atol=1e-5)]
    if not matched:
        return [(code, hint, value) for _, code, hint, value in rows]
    r_features, r_acts, r_dec, r_feat, r_parent_of = random_case(acts.device)
    try:
        theirs = impl(
            r_features.clone(), r_acts.clone(), r_dec.clone(), r_feat.clone(), list(r_parent_of), cos_threshold=th
        )
    except Exception:
        theirs = None
    if not isinstance(theirs, Tensor) or theirs.shape != (r_acts.shape[1], r_parent_of.count(-1)):
        return [(code, hint, value) for _, code, hint, value in rows]
    theirs = theirs.detach().to(torch.float32)
    kept = []
    for kwargs, code, hint, value in rows:
        if any(row[1] == code for row in matched):
            r_case = (r_features, r_acts, r_dec, r_feat, r_parent_of, th)
            there = one_child(*r_case, -1 if kwargs["child"] == "last" else 0) if "child" in kwargs else None
            there = absorption_variant(*r_case, **kwargs) if there is None else there
            if not torch.allclose(theirs, there.to(theirs.device, theirs.dtype), rtol=1e-4, atol=1e-5, equal_nan=True):
                continue  # the random case contradicts this reading
        kept.append((code, hint, value))
    return kept


def one_child(features, acts, W_dec, W_feat, parent_of: list[int], th: float, index: int) -> Tensor:
    """The right fractions with the cases read from one child of each parent (children[index]) only."""
    a = W_dec / W_dec.norm(dim=-1, keepdim=True)
    b = W_feat / W_feat.norm(dim=1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", a, b)
    ar, out = torch.arange(acts.shape[1], device=acts.device), []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids[index]] > 0)
        own = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= th
        carriers[ar, own] = False
        absorbed = cases & (acts[:, ar, own] == 0) & ((acts > 0) & carriers).any(-1)
        out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)
