"""The squared overlaps of the dimensionality ‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)² written with matrix algebra instead of an
elementwise square. Part 3 (features, the columns of W) and part 4 (hidden vectors and features) both ask for this
formula, so both catalogues take these candidates from here (part 4 imports it: a later section may import an
earlier one)."""

from __future__ import annotations

import torch
from torch import Tensor

Mistake = tuple[str, str, Tensor]


def _guards(num: Tensor, den: Tensor) -> list[Tensor]:
    """num / den as learners guard it: raw, clamped at the two usual floors, or 0 wherever den is not positive."""
    return [
        num / den,
        num / den.clamp_min(1e-30),
        num / den.clamp_min(1e-12),
        torch.where(den > 0, num / den, torch.zeros_like(num)),
    ]


def overlap_square_candidates(
    v: Tensor,
    dot: str = "v̂ᵢ·vⱼ",
    dot_t: str = "v̂ⱼ·vᵢ",
    raw: str = "vᵢ·vⱼ",
    gram: str = "G = v vᵀ",
    norm: str = "‖vᵢ‖",
    outer: str = "M = Σⱼ vⱼ vⱼᵀ",
) -> list[Mistake]:
    """On v [inst n d]: O * O.mT (the overlap times its transpose, `dot` · `dot_t`, elementwise) and O @ O
    (torch.linalg.matrix_power(O, 2)) with O = v̂ vᵀ, and the Gram form G @ G over ‖vᵢ‖⁴ (G * G.mT is right there:
    G is symmetric), each raw and with the usual guards of the denominator; and the quadratic form v̂ᵢᵀ M v̂ᵢ of the
    [d d] matrix M = Σⱼ vⱼ vⱼᵀ (equal to Σⱼ (v̂ᵢ·vⱼ)²) written ‖M v̂ᵢ‖², M applied twice; and the overlaps summed
    before squaring, (Σⱼ |vᵢ·vⱼ|)² over ‖vᵢ‖⁴ (the signed
    (Σⱼ vᵢ·vⱼ)² is each section's own `square_of_sum`). `dot`, `dot_t`, `raw`,
    `gram`, `norm` and `outer` name the overlaps and matrices in the section's own notation."""
    v = v.double()
    norm_sq = (v**2).sum(-1)
    ov = torch.einsum("kid,kjd->kij", v / norm_sq.sqrt().clamp_min(1e-300)[..., None], v)
    g = torch.einsum("kid,kjd->kij", v, v)
    m_unit = torch.einsum(
        "kde,kie->kid", torch.einsum("kjd,kje->kde", v, v), v / norm_sq.sqrt().clamp_min(1e-300)[..., None]
    )
    power = (
        "the square of each overlap is elementwise, O ** 2 (or O * O), not a power of the matrix "
        "(torch.linalg.matrix_power(O, 2) and O @ O are matrix products)"
    )
    out = []
    for code, hint, num, den in (
        (
            "overlap_times_transpose",
            f"your denominator is Σⱼ Oᵢⱼ Oⱼᵢ (the overlap matrix times its transpose, elementwise: O * O.mT): the "
            f"square of each overlap is Oᵢⱼ², O ** 2 (O is not symmetric: {dot} ≠ {dot_t})",
            norm_sq,
            (ov * ov.mT).sum(-1),
        ),
        (
            "overlap_matrix_power",
            f"your denominator sums the rows of O @ O (Oᵢⱼ = {dot}): {power}",
            norm_sq,
            (ov @ ov).sum(-1),
        ),
        (
            "overlap_matrix_power",
            f"your denominator sums the rows of G @ G ({gram}, Gᵢⱼ = {raw}, over {norm}⁴): {power.replace('O', 'G')}",
            norm_sq**2,
            (g @ g).sum(-1),
        ),
        (
            "square_after_sum",
            f"your values are {norm}⁴ / (Σⱼ |{raw}|)² (= {norm}² / (Σⱼ |{dot}|)²): the overlaps summed "
            f"first and the sum squared, where the sum of the squares belongs. Square each overlap, then sum over j: "
            f"Σⱼ ({dot})²",
            norm_sq**2,
            g.abs().sum(-1) ** 2,
        ),
        (
            "gram_applied_twice",
            f"your denominator is ‖M v̂ᵢ‖² with {outer} (a [d d] matrix): that is v̂ᵢᵀ M² v̂ᵢ, M applied twice. Σⱼ "
            f"({dot})² is the quadratic form v̂ᵢᵀ M v̂ᵢ (M applied once, then a dot product with v̂ᵢ): "
            "einsum('...i,...ij,...j->...', v̂, M, v̂), or sum the squared overlaps directly",
            norm_sq,
            (m_unit**2).sum(-1),
        ),
    ):
        out += [(code, hint, value) for value in _guards(num, den)]
    return out


def whole_norm_candidates(v: Tensor, name: str = "v", own: str = "v.norm(dim=-1, keepdim=True)") -> list[Mistake]:
    """On v [inst n d]: one norm of the whole instance (or the whole tensor) where each vector's own belongs, in the
    numerator (‖V‖²_F for ‖vᵢ‖²) or in the unit vectors (vᵢ / ‖V‖_F for v̂ᵢ): the two slips give the same values,
    ‖V‖²_F ‖vᵢ‖² / Σⱼ (vᵢ·vⱼ)², so both are listed. `name` is the section's tensor, `own` its per-vector norm."""
    v = v.double()
    norm_sq = (v**2).sum(-1)
    raw = torch.einsum("kid,kjd->kij", v, v).pow(2).sum(-1)
    out = []
    for what, code, whole in (
        ("the whole tensor (every instance)", "", v.pow(2).sum()),
        ("the instance", "dim=(1, 2)", v.pow(2).sum((1, 2))[:, None]),
    ):
        norm = f"{name}.norm({code})" if code else f"{name}.norm() (no dim=)"
        hint = (
            f"your values are ‖{name}‖²_F · ‖{name}ᵢ‖² / Σⱼ ({name}ᵢ·{name}ⱼ)², with ‖{name}‖_F the norm of {what}: "
            f"one norm {norm} used where each vector's own belongs. Two slips give exactly this: the numerator "
            f"‖{name}‖²_F of {what} ({name}.pow(2).sum({'(1, 2)' if code else ''})) where ‖{name}ᵢ‖² is meant, or the "
            f"unit vectors divided by {norm} instead of each vector's own norm. Take the norm over each vector only, "
            f"{own}"
        )
        out += [("one_norm", hint, value) for value in _guards(whole * norm_sq, raw)]
    return out
