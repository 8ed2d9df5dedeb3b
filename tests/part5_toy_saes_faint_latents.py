"""Threshold rules for the resamplers' dead latents: latents that fired only faintly, or rarely, are alive.

`threshold_rule`: on the main window, the latents resampled are exactly those whose window statistic (sum or mean,
max, last value) lies below some threshold: every statistic that fits is named, not only the first.
`faint_latents_probe`: a second window for thresholds too small to show on the main one.

The main window (`part5_toy_saes_mistakes.window_groups`) has no latent whose total over the window is below its
rarely-firing group's, so a threshold on the sum or mean with a small threshold (`frac.mean(0) < 1e-4`,
`frac.sum(0) < 1e-3`) picks exactly the dead latents there. Here two latents fire at one step only, on one example
in 4096 and one in 512 (the notebook's batch size): fractions a real batch gives. A rule that resamples either is a
threshold, and the message says which statistic of the window it read and the largest threshold that explains it.
A float guard far below any real fraction (`frac.sum(0) < 1e-6`) is not called a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
from tests.checking import fail
from tests.part5_toy_saes_instance_union import pooled_instance_indices

WINDOW, FAINT = 20, (1 / 4096, 1 / 512)


def faint_latents_probe(
    impl: Callable, args: tuple, device: torch.device, reference_sae: Callable[..., Any], call_resampler: Callable
) -> None:
    """impl(sae, frac, *args) on a reference SAE (`reference_sae(cls, device, **cfg)`, the checker's builder), run
    through `call_resampler`. Fails with `faint_threshold` when a latent that fired at one step was resampled."""
    n_inst, d_in, d_sae = 2, 3, 12
    sae = reference_sae(ref.ToySAE, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
    device = sae.W_enc.device
    frac = torch.rand(WINDOW, n_inst, d_sae, device=device) * 0.2 + 0.01
    frac[:, :, :4] = 0.0  # dead in both instances
    faint = {4: FAINT[0], 5: FAINT[1]}
    for lat, value in faint.items():
        frac[:, :, lat] = 0.0
        frac[7 + lat, :, lat] = value  # one step, one faint value: alive
    before = {n: getattr(sae, n).detach().clone() for n in ("W_dec", "b_enc")}
    call_resampler(lambda: impl(sae, frac.clone(), *args))
    changed = (sae.W_dec.detach() != before["W_dec"]).any(-1) | (sae.b_enc.detach() != before["b_enc"])
    hit = [lat for lat in faint if bool(changed[:, lat].any())]
    if not hit:
        return
    value = max(faint[lat] for lat in hit)  # the threshold is above the largest resampled one
    kept = [faint[lat] for lat in faint if lat not in hit]
    bound = f" (and at most {min(kept):.3g})" if kept and min(kept) > value else ""
    fail(
        f"a latent that fired at one step of the window (on a fraction {value:.3g} of the examples there, 0 at "
        f"every other step) was resampled: it is alive. Your rule treats a window whose sum (or max) is {value:.3g}, "
        f"or whose mean is {value / WINDOW:.3g}, as dead: a threshold above that{bound}",
        "a latent is dead only if it fired on no example at any step of the window: "
        "`(frac_active_in_window <= 0).all(dim=0)`, no threshold on the window's sum, mean or max (a threshold "
        "also resamples latents that fire rarely)",
        code="faint_threshold",
    )


def threshold_rule(changed: Tensor, expected: Tensor, frac: Tensor, active: Tensor) -> None:
    """Fail naming the rule when the changed latents are exactly those whose window statistic (sum, largest or
    last value of frac_active_in_window [window inst d_sae]) lies below some threshold, and that catches live ones.
    Every statistic that separates them is listed (on this window a max and a sum threshold can pick the same set)."""
    if torch.equal(changed, expected) or not (changed & ~expected).any():
        return
    pooled_instance_indices(changed, expected, frac, active)
    stats = (
        ("frac_active_in_window.sum(0) (or its mean)", frac.sum(0)),
        ("frac_active_in_window.amax(0)", frac.amax(0)),
        ("frac_active_in_window[-1]", frac[-1]),
    )
    act = active[:, None].expand_as(changed)
    fits, counts = [], ""
    for name, stat in stats:
        below, above = stat[changed & act], stat[~changed & act]
        if below.numel() == 0 or above.numel() == 0 or below.max() >= above.min():
            continue
        lo, hi = float(below.max()), float(above.min())
        fits.append(f"{name} below a threshold between {lo:.4g} and {hi:.4g}")
        if lo < 1 <= hi:
            counts = " (e.g. `< 1`: are the fractions read as counts? they lie in [0, 1])"
    if fits:
        fail(
            f"{int(changed.sum())} latents were resampled, expected the {int(expected.sum())} dead ones: exactly "
            f"those with {' (or, equally here, '.join(fits)}{')' * (len(fits) - 1)}{counts}, live latents included",
            "a latent is dead only if its fraction is 0 at every step of the window: "
            "`(frac_active_in_window <= 0).all(dim=0)`",
            code="threshold_rule",
        )
