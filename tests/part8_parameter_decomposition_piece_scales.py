"""masked_product: pieces u_c v_cᵀ rescaled, read back (round BA).

A learner who normalises V's rows or U's columns first ("v_c is a read direction"), or scales the inner
activations, computes the formula with every piece u_c v_cᵀ multiplied by a factor s_c of its own. The output is
linear in those factors, so they are fitted by least squares per instance (6 examples × 4 output dims = 24 equations
for C = 7 unknowns), under two readings: the delta from the same rescaled pieces (W - U diag(s) V: U or V replaced
throughout) or from the given U V (only the pieces' path changed). A fit that reproduces the output to float
precision, with factors that differ between the subcomponents (one constant is a scalar slip, which the
product's catalogues name), is reported with what the factors are: 1/‖v_c‖, 1/‖u_c‖ or their product.
"""

from __future__ import annotations

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def _fit(design: Tensor, target: Tensor) -> Tensor | None:
    """Least-squares factors [inst C] for target [batch inst d_out] = Σ_c s[i, c] design[b, i, o, c]; None when the
    fit does not reproduce the target (relative residual above 1e-5) or the system is not well posed."""
    X = design.permute(1, 0, 2, 3).reshape(design.shape[1], -1, design.shape[-1])  # [inst (batch d_out) C]
    y = target.permute(1, 0, 2).reshape(target.shape[1], -1, 1)
    if X.shape[1] <= X.shape[2] or bool((torch.linalg.matrix_rank(X) < X.shape[2]).any()):
        return None
    s = torch.linalg.lstsq(X, y).solution  # [inst C 1]
    fitted = (X @ s).squeeze(-1)
    if float((fitted - y.squeeze(-1)).norm()) > 1e-5 * float(y.norm().clamp_min(1e-30)):
        return None
    return s.squeeze(-1)


def _describe(s: Tensor, U: Tensor, V: Tensor) -> str:
    close = lambda t: torch.allclose(s, t.expand_as(s), rtol=1e-3, atol=1e-5)
    v_norm, u_norm = V.norm(dim=-1), U.norm(dim=-2)  # [inst C]
    if close(1 / v_norm):
        return "1/‖v_c‖: V's rows normalised to unit norm (V / V.norm(dim=-1, keepdim=True))"
    if close(1 / u_norm):
        return "1/‖u_c‖: U's columns normalised to unit norm (U / U.norm(dim=-2, keepdim=True))"
    if close(1 / (u_norm * v_norm)):
        return "1/(‖u_c‖ ‖v_c‖): both U's columns and V's rows normalised"
    if close(v_norm) or close(u_norm):
        return "‖v_c‖ or ‖u_c‖: a piece multiplied by its own norm"
    return "factors that differ between the subcomponents"


def piece_scales(p: dict[str, Tensor], out: Tensor) -> Mistakes:
    """[(pieces_rescaled, hint, out)] when out is the formula with every piece u_c v_cᵀ scaled by a factor s_c."""
    a, W, U, V = (p[k].detach().double() for k in ("a", "W", "U", "V"))
    mask, dm = p["mask"].detach().double(), p["delta_mask"].detach().double()
    y = out.detach().double()
    if y.shape != (a.shape[0], a.shape[1], W.shape[1]) or not bool(torch.isfinite(y).all()):
        return []
    inner = torch.einsum("bid,icd->bic", a, V)
    piece = torch.einsum("ioc,bic->bioc", U, inner)  # u_c (v_c · a)  [batch inst d_out C]
    readings = {
        "in the pieces and in the delta alike (W - U V computed from the rescaled U or V too)": (
            piece * (mask - dm[..., None])[:, :, None, :],
            y - dm[..., None] * torch.einsum("bid,iod->bio", a, W),
        ),
        "in the pieces only (the delta from the given U V)": (
            piece * mask[:, :, None, :],
            y - dm[..., None] * torch.einsum("bid,iod->bio", a, W - U @ V),
        ),
    }
    for where, (design, target) in readings.items():
        s = _fit(design, target)
        if s is None or float(s.max() - s.min()) < 1e-3 * float(s.abs().max()):
            continue  # all 1 (right), or one constant: a scalar factor, named by the product catalogues
        shown = ", ".join(f"{float(v):.3g}" for v in s[0])
        hint = (
            f"your output is U (mask ⊙ V a) + delta_mask · (W - U V) a with every piece u_c v_cᵀ scaled by a factor "
            f"of its own, {where}: instance 0's factors are {shown}, which are {_describe(s, U, V)}. Use U and V "
            "as they are given (no normalisation or rescaling): the masked product is "
            "U (mask ⊙ V a) + delta_mask · (W - U V) a"
        )
        return [("pieces_rescaled", hint, out.detach())]
    return []
