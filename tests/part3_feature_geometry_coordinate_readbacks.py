"""Read-backs for two structural readings of a dimensionality formula D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)² (shared by part 3's
compute_dimensionality and part 4's): values that ignore the other vectors, and values that change under a rotation.
Each reading used to list causes (an elementwise product, a max over j, an L1/L∞ norm, a norm over the wrong axis)
from the one observation; now a cause is named only when its formula, computed on the checker's own vectors,
reproduces the learner's values, and otherwise the hint states what was observed, with numbers, and the causes that
were ruled out."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

RTOL, ATOL = 1e-4, 1e-6  # the tolerance dimensionality_structure compares probes with


def _d(num_sq: Tensor, unit: Tensor, v: Tensor) -> Tensor:
    return num_sq / torch.einsum("kid,kjd->kij", unit, v).pow(2).sum(-1).clamp_min(1e-300)


def _matches(got: Tensor, value: Tensor, v: Tensor) -> bool:
    """`value` reproduces `got` at every vector that is not (nearly) zero: how a zero vector is guarded is read by
    other readings."""
    keep = v.norm(dim=-1) > 1e-9 * v.norm(dim=-1).amax().clamp_min(1e-300)
    return value.shape == got.shape and bool(torch.allclose(got[keep], value[keep], rtol=RTOL, atol=ATOL))


def _largest_change(before: Tensor, after: Tensor) -> str:
    rel = (after - before).abs() / before.abs().clamp_min(1e-12)
    rel = torch.nan_to_num(rel, nan=float("inf"))
    flat = int(rel.flatten().argmax())
    k, i = divmod(flat, before.shape[-1])
    return (
        f"the largest change is at instance {k}, vector {i}: {float(before[k, i]):.6g} before the rotation, "
        f"{float(after[k, i]):.6g} after"
    )


def rotation_failure(base: Tensor, turned: Tensor, v: Tensor, sym: tuple[str, str] = ("v", "v̂")) -> None:
    """Fail (code not_rotation_invariant): `base` [inst n] are the learner's values on v [inst n d], `turned` its
    values on the rotated vectors. A non-Euclidean or wrong-axis norm is named only when it reproduces `base`."""
    got, v = base.detach().double().cpu(), v.detach().double().cpu()
    x, u = sym
    l2, l1, linf = v.norm(dim=-1), v.abs().sum(-1), v.abs().amax(-1)
    across = v.norm(dim=1, keepdim=True).clamp_min(1e-300)  # a norm over the vector axis n, not the coordinates
    candidates = (
        (f"the L1 norm in the unit vector ({u}_i = {x}_i / {x}_i.abs().sum(), or norm(p=1))", l2**2, v / l1[..., None]),
        (f"the L1 norm in both ‖{x}_i‖² and {u}_i (abs().sum(), or norm(p=1))", l1**2, v / l1[..., None]),
        (f"the max (L∞ norm) in the unit vector ({u}_i = {x}_i / {x}_i.abs().max())", l2**2, v / linf[..., None]),
        (f"the max (L∞ norm) in both ‖{x}_i‖² and {u}_i", linf**2, v / linf[..., None]),
        (
            f"the unit vector normalised over the vector axis (each coordinate across all {x}_j), not over the "
            "coordinates",
            l2**2,
            v / across,
        ),
    )
    unit = v / l2.clamp_min(1e-300)[..., None]  # overlaps as a product of coordinate sums (einsum letters differ)
    sums = l2**2 / (unit.sum(-1)[..., :, None] * v.sum(-1)[..., None, :]).pow(2).sum(-1).clamp_min(1e-300)
    found = [(where, _d(num_sq, unit, v)) for where, num_sq, unit in candidates] + [
        (
            f"overlaps (Σ_d {u}_id)(Σ_d {x}_jd), a product of coordinate sums, in place of the dot products (an einsum "
            "whose two inputs name the coordinate axis with different letters sums each one separately)",
            sums,
        )
    ]
    for where, value in found:
        if _matches(got, value, v):
            fail(
                "your values change when every vector is rotated by the same orthogonal matrix, and they equal D_i "
                f"computed with {where}",
                f"your formula uses {where}; ‖{x}_i‖ and {u}_i use the L2 norm over the d coordinates of each "
                f"vector (norm(dim=-1) with its default p=2) and the overlaps are dot products {u}_i·{x}_j over "
                "them; anything else depends on the coordinate axes, so a rotation changes it",
                code="not_rotation_invariant",
            )
    fail(
        "your values change when every vector is rotated by the same orthogonal matrix (D_i only depends on dot "
        f"products and L2 norms, so a rotation leaves it unchanged); {_largest_change(got, turned.double().cpu())}",
        "somewhere your formula depends on the coordinate axes, not only on dot products over the d coordinates. It "
        f"is not an L1 or L∞ norm in ‖{x}_i‖ or {u}_i, a unit vector normalised over the vector axis, or a product of "
        "coordinate sums in place of the dot products: those were "
        f"computed on the same vectors and give other values. Compute ‖{x}_i‖² and the overlaps ({u}_i·{x}_j) as dot "
        "products over the coordinates only",
        code="not_rotation_invariant",
    )


def ignores_others_failure(base: Tensor, v: Tensor, name: str, sym: tuple[str, str] = ("v", "v̂")) -> None:
    """Fail (code ignores_others): redrawing vector 0 left every other D_i unchanged. A max over j, the j = i term
    alone or an elementwise product is named only when it reproduces `base` [inst n] on v [inst n d]."""
    got, v = base.detach().double().cpu(), v.detach().double().cpu()
    x, u = sym
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-300)[..., None]
    overlaps = torch.einsum("kid,kjd->kij", unit, v).pow(2)
    candidates = (
        (f"a max over j of the squared overlaps ({u}_i·{x}_j)² instead of their sum", norm_sq / overlaps.amax(-1)),
        (
            "only the j = i term of the sum (the diagonal of the overlap matrix), which makes every D_i 1",
            norm_sq / overlaps.diagonal(dim1=-2, dim2=-1),
        ),
        (
            f"an elementwise product ({u}_i * {x}_i) summed over the coordinates in place of the overlaps with every "
            f"{name} j",
            norm_sq / (unit * v).pow(2).sum(-1),
        ),
    )
    contract = (
        f"the denominator sums the squared overlaps ({u}_i·{x}_j)² over every {name} j (a [n, n] matrix of dot "
        "products, summed over j)"
    )
    observed = (
        f"your D_i does not change when another {name} j changes (only {name} 0 was redrawn, and every other "
        f"{name}'s value stayed the same)"
    )
    for what, value in candidates:
        if _matches(got, value, v):
            fail(
                f"{observed}; your values equal D_i computed with {what}",
                f"your formula uses {what}; {contract}",
                code="ignores_others",
            )
    fail(
        observed,
        f"{contract}; yours does not read the other {name}s. It is not a max over j, the j = i term alone or an "
        f"elementwise product {u}_i * {x}_i: those were computed on the same {name}s and give other values",
        code="ignores_others",
    )
