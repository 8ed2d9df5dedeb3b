"""Part 6 readings named from the latent's own numbers: the logit effect times a per-latent factor (one unit fed
through the encoder, ReLU(b_enc[latent] + 1); the encoder column's norm, its inverse or square), and an ablation
whose latent activation was computed by hand with another nonlinearity than the SAE's ReLU (GELU, SiLU, none)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor


def _logit_factors(sae: Any, latent: int) -> list[tuple[str, float]]:
    """(what, value) for each per-latent number a logit effect could wrongly be scaled by."""
    b, enc = float(sae.b_enc[latent]), float(sae.W_enc[:, latent].norm())
    return [
        ("ReLU(b_enc[latent] + 1): one unit of pre-activation fed through the encoder's bias and ReLU", max(b + 1, 0)),
        ("1/ReLU(b_enc[latent] + 1): divided by one unit fed through the encoder", 1 / max(b + 1, 1e-12)),
        ("‖W_enc[:, latent]‖, the encoder column's norm", enc),
        ("1/‖W_enc[:, latent]‖, divided by the encoder column's norm", 1 / enc),
        ("‖W_enc[:, latent]‖², the encoder column's squared norm", enc**2),
    ]


def logit_latent_factors(sae: Any, latent: int, right: Tensor) -> list[tuple[str, str, Tensor]]:
    """Catalogue rows: the right effect times each per-latent factor; factors within 1e-3 of each other are named
    together (so no reading picks one of two equal candidates), factors within 1e-3 of 1 are left out."""
    groups: list[list[tuple[str, float]]] = []
    for what, value in _logit_factors(sae, latent):
        if value != value or abs(value - 1) <= 1e-3 or value in (0.0, float("inf")):
            continue
        same = next((g for g in groups if abs(g[0][1] - value) <= 1e-3 * abs(value)), None)
        (same.append((what, value)) if same is not None else groups.append([(what, value)]))
    return [
        (
            "latent_factor",
            f"your values are {g[0][1]:.4g} × the expected ones, and {g[0][1]:.4g} = "
            + " or ".join(w for w, _ in g)
            + (" (these coincide here)" if len(g) > 1 else "")
            + ": the logit effect is that of one unit of the latent's *activation* (f = 1), W_dec[latent] @ W_out[0]"
            " @ W_U, with no factor from the encoder",
            right * g[0][1],
        )
        for g in groups
    ]


ACTIVATIONS = (("GELU", F.gelu), ("SiLU", F.silu), ("no activation at all (the pre-activation)", lambda p: p))


def ablate_activations(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """The ablation with f computed by hand from the latent's pre-activation through another nonlinearity."""
    d = sae.W_dec[latent]
    out = []
    for name, act in ACTIVATIONS[:2]:  # the pre-activation alone is named by the catalogue already

        def hook(a: Tensor, hook: Any, act=act) -> Tensor:
            return a - act((a - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent])[..., None] * d

        out.append(
            (
                "ablate_activation",
                f"that removes f · W_dec[latent] with f = {name}((act − b_dec) @ W_enc[:, latent] + b_enc[latent]): "
                "the SAE's activation is a ReLU: f = relu(...) (or sae.encode(act)[..., latent])",
                model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]),
            )
        )
    return out
