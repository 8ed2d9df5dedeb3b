"""W_dec_normalized read-back: the config's eps put somewhere other than the norm (added to every entry before the
norm, inside the square root, squared ...), each candidate recomputed from W_dec with the checker's eps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

BIG_EPS = 1e-2  # eps·W far above float32 rounding: where eps goes shows on every row


def eps_placement_failure(got: Tensor, W: Tensor, eps: float) -> None:
    """`got`: W_dec_normalized read with cfg.weight_normalize_eps = eps; `W`: W_dec [..., d_in] (float64)."""
    norms = W.norm(dim=-1, keepdim=True)
    right = W / (norms + eps)
    candidates = (
        (
            "eps added to every entry before the norm: W / (W + eps).norm(dim=-1)",
            W / (W + eps).norm(dim=-1, keepdim=True),
        ),
        ("eps added to every entry, numerator too: (W + eps) / (W + eps).norm(dim=-1)", None),
        ("eps inside the square root: W / sqrt(‖W‖² + eps)", W / (norms.pow(2) + eps).sqrt()),
        ("eps squared inside the square root: W / sqrt(‖W‖² + eps²)", W / (norms.pow(2) + eps**2).sqrt()),
        ("eps added to the squared entries: W / sqrt(Σ (W² + eps))", W / (W.pow(2) + eps).sum(-1, True).sqrt()),
    )
    for what, cand in candidates:
        if cand is None:
            shifted = W + eps
            cand = shifted / shifted.norm(dim=-1, keepdim=True)
        if not torch.allclose(cand, right, rtol=1e-5, atol=1e-9) and torch.allclose(got, cand, rtol=1e-5, atol=1e-8):
            fail(
                f"with cfg.weight_normalize_eps = {eps:g}, W_dec_normalized equals {what} (read back on every row)",
                "add the eps to the row's norm, once, after the square root: W_dec / (W_dec.norm(dim=-1, "
                "keepdim=True) + self.cfg.weight_normalize_eps)",
                code="eps_placement",
            )


def short_rows_raw_failure(got: Tensor, W: Tensor, eps: float) -> None:
    """Rows whose norm is at most eps came back unchanged (W itself, not normalised) and the others are W / ‖W‖
    without eps: a guard such as torch.where(norm > eps, W / norm, W) in place of dividing by norm + eps."""
    norms = W.norm(dim=-1, keepdim=True)
    short = (norms <= eps).squeeze(-1) & (norms > 0).squeeze(-1)
    if not short.any() or not torch.allclose(got[short], W[short], rtol=1e-5, atol=1e-12):
        return
    rest = ~short & (norms > 0).squeeze(-1)
    plain = torch.allclose(got[rest], (W / norms)[rest], rtol=1e-5, atol=1e-8)
    fail(
        f"with cfg.weight_normalize_eps = {eps:g}, the {int(short.sum())} decoder row(s) of norm at most eps came back "
        f"unchanged (W_dec itself, length = their norm, e.g. {float(norms[short].max()):.3g}), read back exactly"
        + ("; the other rows are W / ‖W‖ with no eps" if plain else ""),
        "don't branch on the norm (torch.where(norm > eps, W / norm, W) leaves short rows unnormalised): divide "
        "every row by (norm + self.cfg.weight_normalize_eps)",
        code="short_rows_raw",
    )


def eps_after_division_failure(got: Tensor, W: Tensor, eps: float, rows: Tensor, sae: Any = None) -> None:
    """On the nonzero rows `rows`, `got` equals W / ‖W‖ with eps added after the division (to the reciprocal,
    W · (1/‖W‖ + eps), or to the quotient, W / ‖W‖ + eps) or multiplying the norm (‖W‖ · (1 + eps))
    rather than added to it. With the learner's `sae`, the
    output is read again with cfg.weight_normalize_eps = BIG_EPS (config restored), where eps·W is far above
    rounding: with the default 1e-8 these mistakes and a missing eps give the same rows."""
    if not rows.any():
        return
    if sae is not None:
        try:
            sae.cfg.weight_normalize_eps = BIG_EPS
            got = sae.W_dec_normalized
        except Exception:
            return
        finally:
            sae.cfg.weight_normalize_eps = eps
        if not isinstance(got, Tensor) or got.shape != W.shape:
            return
        eps = BIG_EPS
    W, got = W.double(), got.detach().double()
    norms = W.norm(dim=-1, keepdim=True)
    right = W / (norms + eps)
    err_right = float((got[rows] - right[rows]).abs().max())
    err_plain = float((got[rows] - (W / norms)[rows]).abs().max())  # no eps at all: told apart from these
    for what, cand, code in (
        ("W · (1 / ‖W‖ + eps): eps added to the reciprocal", W * (1 / norms + eps), "eps_after_division"),
        ("W / ‖W‖ + eps: eps added to the quotient", W / norms + eps, "eps_after_division"),
        # round BB: eps as a factor of the norm (zero row still 0 / 0)
        ("W / (‖W‖ · (1 + eps)): eps multiplying the norm, not added to it", W / (norms * (1 + eps)), "eps_factor"),
    ):
        err = float((got[rows] - cand[rows]).abs().max())
        if err < 1e-5 and err * 10 < min(err_right, err_plain):
            fail(
                f"W_dec_normalized is NaN or inf on the all-zero decoder row, and with cfg.weight_normalize_eps = "
                f"{eps:g} every other row equals {what} (read back to {err:.2g}; dividing by ‖W‖ + eps is "
                f"{err_right:.2g} away, no eps {err_plain:.2g})",
                "add the eps to the norm before dividing: W_dec / (W_dec.norm(dim=-1, keepdim=True) + "
                "self.cfg.weight_normalize_eps); a zero row then gives 0 / eps = 0",
                code=code,
            )
