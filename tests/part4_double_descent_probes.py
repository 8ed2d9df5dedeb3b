"""Part 4: behavioural probes that name what a wrong training batch or dimensionality does (the rows kept or
reordered, one side of the overlap matrix read, the values rescaled per instance), stated as observed facts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part3_feature_geometry import dimensionality_structure
from tests.part3_feature_geometry_rounded import rounded_output_failure
from tests.part3_feature_geometry_scale_probes import output_probe, permuted_values_failure
from tests.part3_feature_geometry_slip_pairs import slip_pair_failure
from tests.part4_double_descent_calls import training_slice_failure
from tests.part4_double_descent_dimensionality import extra_dimensionality_candidates
from tests.part4_double_descent_norm_slips import norm_constant_failure
from tests.part4_double_descent_readbacks import nondeterministic_failure, zero_output_failure

AXES = ("examples", "inst", "feats")
PAIR_NAMES = {"vectors": "vectors (dim=1)", "coords": "coordinates (dim=-1)", "v": "v"}
CD4_PAIR_FORMULA = "D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)², v̂_i = v_i / ‖v_i‖, the sum over every vector j of the instance"


def _same_rows(a: Tensor, b: Tensor) -> Tensor:
    """[m, n]: row i of a equals row j of b (over every axis but the first)."""
    return torch.cdist(a.flatten(1).double(), b.flatten(1).double()) < 1e-6


def training_rows_failure(got: Any, data: Tensor, what: str, batch_size: int) -> None:
    """A batch with fewer examples than the training set: first the slices, then the duplicates dropped."""
    training_slice_failure(got, data, what, batch_size)
    if not isinstance(got, Tensor) or got.ndim != data.ndim or tuple(got.shape[1:]) != tuple(data.shape[1:]):
        return
    n, m = data.shape[0], got.shape[0]
    head, tail = (
        m > n and bool(torch.allclose(part.double(), data.double(), atol=1e-6)) for part in (got[:n], got[-n:])
    )
    if head or tail:
        extra = (got[n:] if head else got[: m - n]).double()
        norms = extra.norm(dim=-1)
        unit = bool((((norms - 1).abs() < 1e-4) | (norms == 0)).all())
        fail(
            f"{what} has {m} examples, expected {n}: all of self.train_data in order, plus {m - n} more examples "
            f"({m - n}{' = batch_size' if m - n == batch_size else ''}; {'unit-norm' if unit else 'not unit-norm'})",
            "training is full batch on the fixed training set: return self.train_data alone, with nothing appended "
            "(no torch.cat with a freshly drawn batch)",
            code="extra_examples",
        )
    if not 0 < m < n:
        return
    match = _same_rows(got, data)
    if not (bool(match.any(1).all()) and bool(match.any(0).all())):
        return
    twins = _same_rows(data, data).sum(1) > 1
    shown = ", ".join(str(i) for i in twins.nonzero().flatten().tolist()[:6])
    fail(
        f"{what} has {got.shape[0]} examples, expected {data.shape[0]}: every distinct training example is there, "
        f"but repeated ones only once (training examples {shown} are identical, e.g. all-zero examples with no "
        "feature present)",
        "duplicate examples were dropped: unique(dim=0) (or a set of rows) keeps one copy of each repeated example "
        "and also sorts them. Return self.train_data as it is: repeated examples are part of the training set",
        code="deduplicated",
    )


def reordered_failure(wrong: Tensor, data: Tensor) -> None:
    """The batch holds self.train_data's values rearranged inside each line along one axis (a sort, a shuffle)."""
    w, d = wrong.detach().double().cpu(), data.detach().double().cpu()
    if w.shape != d.shape:
        return
    close = lambda a, b: bool(torch.allclose(a, b, atol=1e-6))
    for dim, axis in enumerate(AXES):
        if not close(w.sort(dim).values, d.sort(dim).values):
            continue
        others = " and ".join(a for a in AXES if a != axis)
        how = (
            f"exactly self.train_data sorted along the {axis} axis (sort(dim={dim}) sorts every ({others}) line on "
            "its own)"
            if close(w, d.sort(dim).values)
            else f"self.train_data with each ({others}) line reordered along the {axis} axis on its own (a shuffle "
            "or sort per line)"
        )
        fail(
            f"generate_batch returned {how}: the same values as the training set, in another order",
            "reordering each line separately mixes coordinates of different training examples, so the rows are no "
            "longer training examples. Return self.train_data as it is (no sort or shuffle needed: every step uses "
            "the whole set)",
            code="reordered",
        )
    if close(w.flatten().sort().values, d.flatten().sort().values):
        fail(
            "generate_batch returned the values of self.train_data rearranged (the same multiset of numbers, in "
            "other places)",
            "a sort, permute or reshape mixed up the entries: return self.train_data as it is",
            code="reordered",
        )


def dimensionality_candidates(v: Tensor) -> list[tuple[str, str, Tensor]]:
    """On v [inst n d]: absolute values taken before the dot product, |v̂_i|·|v_j|."""
    v = v.double()
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    dots = torch.einsum("kid,kjd->kij", unit.abs(), v.abs())
    return [
        (
            "abs_before_dot",
            "your overlaps are |v̂_i|·|v_j| (absolute values of the coordinates taken before the dot product): the "
            "overlap is the signed dot product v̂_i·v_j, squared afterwards, Σ_j (v̂_i·v_j)² (the square already "
            "removes the sign; abs of single coordinates changes the value and is not rotation invariant)",
            norm_sq / dots.pow(2).sum(-1).clamp_min(1e-30),
        ),
        *extra_dimensionality_candidates(v),
        *chunk_local_candidates(v),
    ]


def chunk_local_candidates(v: Tensor) -> list[tuple[str, str, Tensor]]:
    """On v [inst n d]: the sum over j run only inside i's own chunk of c vectors (2 <= c < n): a loop over chunks of
    i (for memory) whose overlaps were taken within the chunk, a block-diagonal overlap matrix."""
    v = v.double()
    n = v.shape[1]
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    dots = torch.einsum("kid,kjd->kij", unit, v).pow(2)
    out = []
    for c in range(2, n):
        block = torch.arange(n) // c
        den = (dots * (block[:, None] == block[None, :])).sum(-1)
        hint = (
            f"your values are D_i with the sum over j run only inside i's own chunk of {c} vectors (vectors "
            f"0..{c - 1}, {c}..{2 * c - 1}, ...: a block-diagonal overlap matrix): a loop over chunks of i (for "
            "memory) must still sum over every vector j of the instance, e.g. einsum of the chunk v̂[:, s:s+c] with "
            "all of v, Σ_j (v̂_i·v_j)² over j = 0..n-1"
        )
        out.append(("chunk_local", hint, norm_sq / den.clamp_min(1e-30)))
    return out


def _rescaled_failure(out: Tensor, expected: Tensor, v: Tensor) -> None:
    got, right = out.detach().double().cpu(), expected.double().cpu()
    ok = right.abs() > 1e-9
    if not bool(ok.all()) or not bool(torch.isfinite(got).all()):
        return
    ratio = got / right
    c = ratio.mean(-1, keepdim=True)
    if bool((c.abs() < 1e-9).any()):  # a factor 0 is no rescaling (zero_output_failure reads it back)
        return
    if not bool(((ratio - c).abs() <= 1e-4 * c.abs()).all()) or bool(((c - 1).abs() < 1e-4).all()):
        return
    sums, d, n = got.sum(-1), v.shape[-1], v.shape[-2]
    factors = ", ".join(f"{x:.4g}" for x in c.flatten().tolist()[:4])
    cause = "a normalisation across the vectors (divided by a sum, a mean or a maximum over i?)"
    for target, name in ((d, f"d = {d}, the dimension"), (1, "1"), (n, f"n = {n}, the number of vectors")):
        if bool(torch.allclose(sums, torch.full_like(sums, float(target)), rtol=1e-4)):
            cause = f"every instance's values sum to {name}: rescaled so that Σ_i D_i = {target}?"
    fail(
        f"your values are the right ones times one factor per instance (×{factors})",
        f"{cause} D_i is each vector's own share of a dimension, ‖v_i‖² / Σ_j (v̂_i·v_j)², not normalised over the "
        "vectors: their sum is whatever the vectors give",
        code="rescaled",
    )


def _triangle_failure(probe: Callable[[Tensor], Tensor | None], v: Tensor, base: Tensor) -> None:
    """Redraw each vector j (large, so every overlap with it moves): D_i reading only j > i (or j < i) is named."""
    n = v.shape[1]
    reached, g = torch.zeros(n, n, dtype=torch.bool), torch.Generator().manual_seed(17)
    scale = 3 * float(v.detach().norm(dim=-1).max())
    for k in range(n):
        moved = v.detach().clone().cpu()
        moved[:, k] = torch.randn(moved[:, k].shape, generator=g, dtype=moved.dtype) * scale
        after = probe(moved.to(v))
        if after is None:
            return
        reached[:, k] = ~torch.isclose(after, base, rtol=1e-4, atol=1e-6).all(0)
    upper, lower = torch.ones(n, n, dtype=torch.bool).triu(1), torch.ones(n, n, dtype=torch.bool).tril(-1)
    for side, pattern, other in (("j > i", upper, lower), ("j < i", lower, upper)):
        if not bool((reached & other).any()) and int((reached & pattern).sum()) >= int(pattern.sum()) // 2:
            fail(
                f"your D_i depends on the other vectors on one side only: redrawing vector j changes D_i only for "
                f"the vectors i with {side} (as if each D_i read only the vectors on one side of it)",
                "each pair counted from one side? The denominator sums a triangle of the [n, n] matrix of squared "
                "overlaps (triu / tril, a loop over j > i, or the diagonal + 2 × one triangle). That matrix is not "
                "symmetric: (v̂_i·v_j)² = (v_i·v_j)² / ‖v_i‖² differs from (v̂_j·v_i)² unless the norms are equal, "
                "so no triangle stands for the other one. Sum (v̂_i·v_j)² over every j, the j = i term included",
                code="triangle_only",
            )


def dimensionality_probes(fn: Callable[[Tensor], Tensor], v: Tensor, out: Tensor, expected: Tensor) -> None:
    """Rescaled values and one-sided overlaps, then part 3's structural probes (rotation, scale, other vectors)."""
    nondeterministic_failure(fn, v, out)
    zero_output_failure(fn, v, out, expected)
    norm_constant_failure(out, expected, v, "compute_dimensionality(v)")
    permuted_values_failure(out, expected, "compute_dimensionality(v)", "vector")
    _rescaled_failure(out, expected, v)
    base = out.detach().double().cpu()

    probe = output_probe(fn, base)

    _triangle_failure(probe, v, base)
    rounded_output_failure(out, expected, "compute_dimensionality(v)")
    slip_pair_failure(out, v, "compute_dimensionality(v)", PAIR_NAMES, CD4_PAIR_FORMULA)
    dimensionality_structure(fn, v, out)


def train_data_edited_failure(train_data: Tensor, before: Tensor, what: str) -> None:
    """The fixed training set compared exactly with its copy saved before the call: an in-place edit (clamp_ to
    1e-6, mul_, add_) is named even when it moves the values by less than any value tolerance."""
    if isinstance(train_data, Tensor) and not torch.equal(train_data.detach(), before):
        changed = int((train_data.detach() != before).sum())
        fail(
            f"{what} changed self.train_data in place ({changed} of its {before.numel()} entries differ from before "
            "the call)",
            "the training set is fixed: return it without modifying it (no clamp_, mul_, add_ or item assignment on "
            "self.train_data; use out-of-place operations on a copy if you need to change values)",
            code="modified",
        )
