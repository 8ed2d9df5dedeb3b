"""Part 6 reading of a logit effect that equals the right one plus a combination of the biases' own effects
(b_dec through W_out[0] and W_U, b_out through W_U, b_U), with any coefficients: b_dec subtracted from the row
(−1), b_out added to every row of W_out (sum of the row's entries), a bias counted twice. The catalogue names the
common ones with coefficient 1; this reads the coefficients off whatever the combination is."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _describe(name: str, c: float, row_sum: float) -> str:
    if name == "b_dec" and abs(c + 1) < 1e-3:
        return "−1 × the effect of b_dec (W_dec[latent] − b_dec pushed through W_out[0] and W_U)"
    if name == "b_out" and abs(c - row_sum) < 1e-3 * max(1.0, abs(row_sum)):
        return (
            f"{c:.4g} × the effect of b_out, where {c:.4g} = sum(W_dec[latent]): b_out added to every row of W_out "
            "before the product (W_dec[latent] @ (W_out[0] + b_out))"
        )
    return f"{c:.4g} × the effect of {name}"


def logit_bias_terms(out: Tensor, expected: Tensor, model: Any, sae: Any, latent: int) -> None:
    """out − expected = Σ c_b · (effect of bias b), fitted by least squares on the d_vocab entries; named when the
    fit is exact (residual < 1e-3 of the difference) and some coefficient is not ~0."""
    y = (out.detach().double() - expected.detach().double()).flatten().cpu()
    if not bool(torch.isfinite(y).all()) or float(y.norm()) < 1e-6 * (float(expected.double().norm()) + 1e-12):
        return
    W_out, W_U = model.W_out[0].double().cpu(), model.W_U.double().cpu()
    terms = {
        "b_dec": sae.b_dec.detach().double().cpu() @ W_out @ W_U,
        "b_out": model.b_out[0].detach().double().cpu() @ W_U,
        "b_U": model.b_U.detach().double().cpu(),
    }
    terms = {k: v for k, v in terms.items() if float(v.norm()) > 1e-9}
    if not terms or y.shape != next(iter(terms.values())).shape:
        return
    basis = torch.stack(list(terms.values()), -1)
    coef = torch.linalg.lstsq(basis, y[:, None]).solution[:, 0]
    if float((basis @ coef - y).norm()) > 1e-3 * float(y.norm()):
        return
    row_sum = float(sae.W_dec[latent].detach().double().sum())
    named = [
        _describe(name, float(c), row_sum)
        for (name, v), c in zip(terms.items(), coef, strict=True)
        if float(c.abs()) * float(v.norm()) > 1e-3 * float(y.norm())
    ]
    if not named:
        return
    fail(
        f"the logit effect of latent {latent} equals the right effect plus " + " plus ".join(named),
        "a bias entered the path: the latent's effect is its decoder row alone, W_dec[latent] @ W_out[0] @ W_U; "
        "b_dec, b_out and b_U are there whether or not the latent fires, so leave them out (no bias subtracted "
        "from the row or added to W_out's rows)",
        code="bias_terms",
    )
