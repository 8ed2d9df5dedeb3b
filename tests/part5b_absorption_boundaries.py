"""part5b boundary inputs the main checks leave out (absorption_fraction): two children on with their parent off, and
a parent latent with a tiny but positive activation (on, so not absorbed).

It runs after every other check of the exercise passed, and names a mistake only from what the learner's output
shows on these inputs (re-computed from the named rule). An activation exactly equal to the eval threshold is not
tested: `>=` there is an accepted variant (tests/test_part5b_absorption_heldout_checkers.py), since a tie has
probability 0 on real activations."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import fail

__all__ = ["boundary_cases", "orphan_siblings", "tiny_parent_activation"]

N_ORPHAN_ROWS = 3  # examples per (instance, parent) with two children on and the parent off
TINY = 1e-4  # a parent latent's activation that is small but positive: the latent is on


def boundary_cases(
    impl: Callable, case: tuple[Tensor, ...], parent_of: list[int], device: torch.device, random_case: Callable
) -> None:
    """The boundary probes, in order: orphan children, a tiny parent activation, the default cos_threshold
    (`random_case(device)`: the checker's random inputs)."""
    orphan_siblings(impl, case, parent_of, device)
    tiny_parent_activation(impl, case, parent_of, device)
    default_threshold(impl, random_case(device))


def default_threshold(impl: Callable, random_case: tuple) -> None:
    """The random case called WITHOUT cos_threshold must give the fractions at the signature's default, 0.3 (round BA:
    the hand-built case, the only call that relied on the default, gives the same fractions at 0.3 and 0.5)."""
    features, acts, W_dec, W_feat, parent_of = random_case
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of))
    right = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, 0.3)
    if not isinstance(out, Tensor) or out.shape != right.shape or torch.allclose(out.to(right.dtype), right):
        return
    used = [
        t
        for t in (0.1, 0.2, 0.25, 0.4, 0.5, 0.6, 0.7)
        if torch.allclose(out.to(right.dtype), ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, t))
    ]
    seen = f" (they are the fractions at cos_threshold={used[0]:g})" if used else ""
    fail(
        f"absorption_fraction called without cos_threshold gives other fractions than with cos_threshold=0.3{seen}, "
        "while every call that passed cos_threshold was right",
        "keep the signature's default, cos_threshold: float = 0.3, and use the argument (no constant of your own)",
        code="default_threshold",
    )


def _fraction_off_below(features, acts, W_dec, W_feat, parent_of, level: float, carrier_level: float) -> Tensor:
    """The right fraction, except that the parent's latent counts as off when its activation is <= level and a
    carrier as active when its activation is > carrier_level."""
    cos = _cos(W_dec, W_feat)
    ar = torch.arange(acts.shape[1])
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        own = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= 0.3
        carriers[ar, own] = False
        off = acts[:, ar, own] <= level
        carried = ((acts > carrier_level) & carriers).any(-1)
        out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1)


def tiny_parent_activation(impl: Callable, case: tuple[Tensor, ...], parent_of: list[int], device) -> None:
    """The hand-built case with every parent latent that was off given the activation TINY = 1e-4 instead: on, so
    those examples are no longer absorbed. A fraction that still counts them reads "off" as a small activation
    (acts < eps, or a rounding), read back as the right rule with off = activation <= TINY."""
    features, acts, W_dec, W_feat = (t.detach().cpu() for t in case)
    cos = _cos(W_dec, W_feat)
    acts = acts.clone()
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        for i, own in enumerate(cos[:, :, p].argmax(-1).tolist()):
            column = acts[:, i, own]
            acts[:, i, own] = torch.where(column == 0, TINY, column)
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, 0.3)
    args = (features.to(device), acts.to(device), W_dec.to(device), W_feat.to(device))
    out = impl(*(t.clone() for t in args), list(parent_of), cos_threshold=0.3)
    if not isinstance(out, Tensor) or out.shape != expected.shape:
        return
    got = out.detach().cpu().to(expected.dtype)
    if torch.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
        return
    seen = (
        f"absorption_fraction on the hand-built case with every parent latent that was off given a tiny activation "
        f"{TINY:g} (on): the right fractions drop (inst 0: {[round(v, 4) for v in expected[0].tolist()]}), yours are "
        f"{[round(v, 4) for v in got[0].tolist()]}"
    )
    hint = (
        "the parent's latent is off only when its activation is exactly 0 (acts == 0, or <= 0): any positive "
        "activation, however small, means it fired"
    )
    for carrier_level in (0.0, TINY):
        reading = _fraction_off_below(features, acts, W_dec, W_feat, parent_of, TINY, carrier_level)
        if torch.allclose(got, reading.to(got.dtype), rtol=1e-4, atol=1e-5):
            fail(
                f"{seen}: they equal the fractions with the parent's latent counted off while its activation is "
                f"{TINY:g} (a cut such as acts < 1e-3, or a rounding, instead of acts == 0)",
                hint,
                code="off_below_level",
            )
    fail(seen, hint, code="tiny_parent_activation")


def _cos(W_dec: Tensor, W_feat: Tensor) -> Tensor:
    d = W_dec / W_dec.norm(dim=-1, keepdim=True)
    f = W_feat / W_feat.norm(dim=1, keepdim=True)
    return torch.einsum("isd,idf->isf", d, f)


def orphan_siblings(impl: Callable, case: tuple[Tensor, ...], parent_of: list[int], device: torch.device) -> None:
    """The hand-built case (binary features) plus, per instance and parent, N_ORPHAN_ROWS examples in which two of
    the parent's children fire and the parent does not, with a carrier of the parent active and the parent's latent
    off. A child without its parent is an allowed input (the hand-built case has one); these examples are not cases,
    so the right fractions don't move. A count of the family's active features (parent + children > 1) counts them."""
    features, acts, W_dec, W_feat = (t.detach().cpu() for t in case)
    cos = _cos(W_dec, W_feat)
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    n_inst = features.shape[1]
    rows_f, rows_a = [], []
    for p in parents:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        if len(kids) < 2:
            continue
        f_rows = torch.zeros(N_ORPHAN_ROWS, n_inst, features.shape[-1])
        f_rows[:, :, kids[:2]] = 1.0
        a_rows = torch.zeros(N_ORPHAN_ROWS, n_inst, acts.shape[-1])
        for i in range(n_inst):
            own = int(cos[i, :, p].argmax())
            ranked = [int(s) for s in cos[i, :, kids[0]].argsort(descending=True)]
            carrier = next((s for s in ranked if s != own and cos[i, s, p] >= 0.35), None)
            if carrier is None:
                return
            a_rows[:, i, carrier] = 1.0
        rows_f.append(f_rows)
        rows_a.append(a_rows)
    if not rows_f:
        return
    features = torch.cat([features, *rows_f]).to(device)
    acts = torch.cat([acts, *rows_a]).to(device)
    W_dec, W_feat = W_dec.to(device), W_feat.to(device)
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=0.3)
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, 0.3)
    if not isinstance(out, Tensor) or out.shape != expected.shape:
        return
    got = out.detach().to(expected.dtype)
    if torch.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
        return
    fractions = []  # the fractions with a case = the family's values summing to more than 1
    for p in parents:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        family = features[..., p] + features[..., kids].sum(-1)
        cases = family > 1
        own = _cos(W_dec, W_feat)[:, :, p].argmax(-1)
        carriers = _cos(W_dec, W_feat)[:, :, p] >= 0.3
        carriers[torch.arange(n_inst), own] = False
        off = acts.gather(-1, own.expand(acts.shape[0], -1).unsqueeze(-1)).squeeze(-1) == 0
        carried = ((acts > 0) & carriers).any(-1)
        fractions.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    counted = torch.stack(fractions, -1).to(expected.dtype)
    what = (
        f"absorption_fraction on the hand-built case plus {N_ORPHAN_ROWS} examples per instance and parent in which "
        "two of the parent's children fire with the parent OFF (binary features; the parent's latent off, a carrier "
        "of the parent on)"
    )
    seen = (
        f"{what}: your fractions moved (inst 0: {[round(v, 4) for v in got[0].tolist()]}), the right ones don't "
        f"({[round(v, 4) for v in expected[0].tolist()]}): examples without the parent are not cases"
    )
    if torch.allclose(got, counted, rtol=1e-4, atol=1e-5):
        fail(
            seen + "; yours equal the fractions with a case = features[p] + the sum of its children's > 1 (a count "
            "of the family's active features, which is >= 2 with two children and no parent)",
            "a case has the parent itself on AND at least one child on: (features[..., p] > 0) & "
            "(features[..., children] > 0).any(-1); a sum of the family's values equals this only when a child never "
            "fires without its parent",
            code="cases_by_count",
        )
    fail(
        seen,
        "a case has the parent itself on AND at least one child on: (features[..., p] > 0) & "
        "(features[..., children] > 0).any(-1); children firing without the parent don't make a case",
        code="orphan_children",
    )
