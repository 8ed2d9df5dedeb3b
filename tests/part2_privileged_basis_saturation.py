"""Whether the learner's forward pass stops growing when one feature grows: a capped activation (F.relu6,
clamp(max=…), hardtanh) or a bounded one (sigmoid, tanh) where the plain ReLU belongs.

The right model ReLU(W_outᵀ ReLU(W_in x) + b_final) is piecewise linear: with one feature at a large value s (all
others 0), every output that is on keeps growing in proportion to s. `saturation_probe` feeds each feature alone at
two large values and compares the learner's change with the right one; it names a cap only when the learner's
output responds to the features at small values (so a forward that ignores them is not called capped) and barely
moves at large ones where the right output moves a lot. `hidden_nonlinearity_note` adds the hidden nonlinearity to the
possible causes of the generic 'weights term' reading, for the models that have one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

SMALL, LARGE = (0.25, 0.5), (60.0, 120.0)  # 120 · |W| far beyond 6 (relu6) or 1 (hardtanh) for the checker's weights


def _one_hot(shape: tuple[int, ...], s: float, device) -> Tensor:
    """[feats, inst, feats]: row f has feature f at s in every instance."""
    n_inst, n_feats = shape[-2], shape[-1]
    eye = torch.eye(n_feats, device=device) * s
    return eye[:, None, :].expand(n_feats, n_inst, n_feats).contiguous()


def saturation_probe(
    model: Callable, right: Callable[[Tensor], Tensor], shape: tuple[int, ...], device
) -> tuple[str, str] | None:
    """('capped_activation', hint) when the learner's output saturates as one feature grows (module docstring)."""
    try:
        with torch.no_grad():
            got = {s: model(_one_hot(shape, s, device)) for s in SMALL + LARGE}
            want = {s: right(_one_hot(shape, s, device)) for s in SMALL + LARGE}
        if not all(isinstance(v, Tensor) and v.shape == want[s].shape for s, v in got.items()):
            return None
        got = {s: v.detach().double() for s, v in got.items()}
        want = {s: v.detach().double() for s, v in want.items()}
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    if not all(bool(torch.isfinite(v).all()) for v in got.values()):
        return None
    change = lambda d, a, b: float((d[b] - d[a]).abs().sum())
    small_got, small_want = change(got, *SMALL), change(want, *SMALL)
    large_got, large_want = change(got, *LARGE), change(want, *LARGE)
    if small_want <= 0 or large_want <= 0 or small_got < 0.3 * small_want or large_got > 0.05 * large_want:
        return None
    top = float(got[LARGE[1]].abs().max())
    return "capped_activation", (
        f"your output stops growing when one feature grows: with a single feature at {LARGE[0]:g} and then at "
        f"{LARGE[1]:g} (all others 0) your outputs change by {large_got:.3g} in all, where the right ones change by "
        f"{large_want:.3g} (the right model is piecewise linear, so its outputs that are on keep growing with the "
        f"feature; yours stay below {top:.3g}). Something in your forward pass is bounded (F.relu6, clamp(max=…), "
        "hardtanh, sigmoid / tanh, …): where it sits (input, hidden layer or output) is not read back. The right "
        "model has no upper bound anywhere: torch.relu (or clamp(min=0)) for each ReLU"
    )


def hidden_nonlinearity_note(code: str, hint: str) -> tuple[str, str]:
    """The generic 'weights term' reading with the hidden nonlinearity among its possible causes."""
    if code != "weights_term":
        return code, hint
    return code, hint + "; or the hidden nonlinearity is not a plain ReLU (capped, leaky, GELU, …)"
