"""Part 6 steering: a hook that added k · W_dec[latent] at every position with k ≠ coeff. The factor k / coeff is
read back and compared with the per-latent and per-model numbers a steering vector could wrongly be scaled by (the
encoder column's norm, the decoder row's norm, their product, d_model, ...); a second call with another coeff
tells whether k follows coeff (an extra constant factor) or not (a coeff other than this call's). When nothing
fits, the observation is reported with the possible causes, none asserted."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _scale_names(model: Any, sae: Any, latent: int) -> list[tuple[str, float]]:
    """(what, value) for each number the steering vector coeff · W_dec[latent] could wrongly be multiplied by."""
    enc, dec = float(sae.W_enc[:, latent].norm()), float(sae.W_dec[latent].norm())
    dot = float(sae.W_enc[:, latent] @ sae.W_dec[latent])
    n = int(sae.W_dec.shape[-1])
    whole = float(sae.W_dec.norm()) or math.inf  # with unit rows, √d_sae
    rows = [
        ("1/‖W_enc[:, latent]‖ (divided by the encoder column's norm)", 1 / enc if enc else math.inf),
        ("‖W_enc[:, latent]‖ (times the encoder column's norm)", enc),
        ("‖W_enc[:, latent]‖² (times the encoder column's squared norm)", enc**2),
        ("1/‖W_enc[:, latent]‖² (divided by the encoder column's squared norm)", enc**-2 if enc else math.inf),
        ("1/‖W_dec[latent]‖ (divided by the decoder row's norm)", 1 / dec if dec else math.inf),
        ("‖W_dec[latent]‖ (times the decoder row's norm)", dec),
        ("‖W_dec[latent]‖² (times the decoder row's squared norm)", dec**2),
        ("W_enc[:, latent] · W_dec[latent] (the encoder column's dot product with the decoder row)", dot),
        ("1/(W_enc[:, latent] · W_dec[latent])", 1 / dot if dot else math.inf),
        (f"√d_model = √{n}", math.sqrt(n)),
        (f"1/√d_model = 1/√{n}", 1 / math.sqrt(n)),
        (f"d_model = {n}", float(n)),
        (f"1/d_model = 1/{n}", 1 / n),
        ("b_enc[latent] (the latent's encoder bias)", float(sae.b_enc[latent])),
        (f"1/‖W_dec‖ = 1/{whole:.4g} (divided by the norm of the WHOLE decoder matrix, not of its row)", 1 / whole),
        (f"‖W_dec‖ = {whole:.4g} (times the norm of the WHOLE decoder matrix)", whole),
    ]
    return [(w, v) for w, v in rows if math.isfinite(v) and abs(v) > 1e-9 and abs(v - 1) > 1e-3]


def _size_names(shape: tuple[int, ...] | None) -> list[tuple[str, float]]:
    """(what, value) for the sizes of the call's tokens [batch, seq] a steering amount could be spread over."""
    if shape is None:
        return []
    b, n = shape
    rows = [(f"seq_len = {n}", n), (f"batch = {b}", b), (f"batch · seq_len = {b * n}", b * n)]
    return [(f"1/{w.split(' = ')[0]} = 1/{v} (coeff spread over the {w.split(' = ')[0]})", 1 / v) for w, v in rows] + [
        (f"{w} (coeff times the {w.split(' = ')[0]})", float(v)) for w, v in rows
    ]


def _factor_of(edits: list) -> Tensor | None:
    """The change [positions d_in] the first recorded hook made, or None when no hook was recorded."""
    if not edits:
        return None
    a, b = edits[0]
    return (b.double() - a.double()).reshape(-1, a.shape[-1])


def steer_scale(
    k: float,
    coeff: float,
    model: Any,
    sae: Any,
    latent: int,
    rerun: Callable[[float], list] | None = None,
    shape: tuple[int, ...] | None = None,
) -> None:
    """The hook added k · W_dec[latent] everywhere, k ≠ coeff (and not coeff², named before): fail naming k / coeff
    when it is one of `_scale_names` (coincident names given together), else with the causes it could have. With
    `rerun(c2)` (the learner's hook edits for another coeff), whether k follows coeff is observed and said."""
    d = sae.W_dec[latent].double()
    ratio = k / coeff
    follows = None  # True: k2 / c2 == k / coeff (an extra factor); False: k2 == k (coeff not used)
    if rerun is not None:
        c2 = round(-0.6 * coeff - 0.7, 3)  # another sign and size: k2 = ratio · c2 only when k is linear in coeff
        delta = _factor_of(rerun(c2))
        if delta is not None:
            k2 = float(delta[0] @ d / (d @ d))
            if torch.allclose(delta, (k2 * d).expand_as(delta), rtol=1e-4, atol=1e-4):
                if abs(k2 - ratio * c2) <= 1e-3 * abs(ratio * c2) + 1e-6:
                    follows = True
                elif abs(k2 - k) <= 1e-3 * abs(k) + 1e-6:
                    follows = False
    seen = (
        f"your hook added {k:.4g} · W_dec[latent] at every position, expected coeff · W_dec[latent] = {coeff} · "
        "W_dec[latent]"
    )
    names = [w for w, v in _scale_names(model, sae, latent) + _size_names(shape) if abs(ratio - v) <= 1e-3 * abs(v)]
    if names and follows is not False:
        fail(
            f"{seen}: {k:.4g} = coeff × {ratio:.4g}, and {ratio:.4g} = "
            + " or ".join(names)
            + (" (these coincide here)" if len(names) > 1 else ""),
            "steering adds coeff · W_dec[latent] itself, with no other factor: drop the "
            + ("extra scale" if len(names) > 1 else names[0].split(" (")[0]),
            code="steer_scaled",
        )
    if follows is False:
        fail(
            f"{seen}; called again with coeff = {round(-0.6 * coeff - 0.7, 3)}, it added the same {k:.4g} · "
            "W_dec[latent]: the amount does not follow this call's coeff",
            "the coefficient is a value other than this call's coeff (a global or a default left from an earlier "
            "cell, a hard-coded number): scale W_dec[latent] by the coeff passed to this call",
            code="steer_coeff",
        )
    grow = (
        f"; called again with another coeff, it added {ratio:.4g} × that coeff too: one extra constant factor "
        f"{ratio:.4g} (= {k:.4g} / {coeff}) on the steering vector, not one of the norms or sizes tried "
        "(‖W_enc[:, latent]‖, ‖W_dec[latent]‖, d_model, ...)"
        if follows
        else f" (a factor {ratio:.4g} = {k:.4g} / {coeff} on coeff · W_dec[latent])"
    )
    fail(
        seen + grow,
        "possible causes: a coefficient other than this call's coeff (a global, a default, a stale value), or an "
        "extra scale on the vector (a norm, a constant, a division); steering adds exactly coeff · W_dec[latent]",
        code="steer_coeff",
    )
