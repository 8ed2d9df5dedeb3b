"""A constant added inside the hidden layer of part 2's two-layer models, fitted from the learner's output.

ReLU(W_outᵀ ReLU(W_in x + c) + b) with an unknown c [inst, d_hidden] (one constant per hidden neuron; a scalar or a
per-instance constant is a special case) is fitted to the learner's output by least squares (L-BFGS in float64 from
c = 0). When the fitted model reproduces the output on every entry, the learner's forward pass adds an extra term to
the hidden pre-activation. With c <= 0 the ReLU hides it when every feature is 0, so the zero-input probe alone reads
such an output as "the bias is right, the weights term differs".

`hidden_shift_probe` reads a fixed constant (one not built from b_final) off a one-feature model with weights 1: its
hidden layer is ReLU(x + c), a shifted ReLU, which the nonlinearity probe would otherwise call "not a ReLU".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.part1_superposition_mistakes import down, up
from tests.part1_superposition_probes import GRID


def _model(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.relu(up(torch.relu(down(x, W_in) + c), W_out) + b)


def hidden_offset_diagnosis(out: object, x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor) -> tuple[str, str] | None:
    """(code, hint) when `out` is the forward pass with a constant added to the hidden pre-activation, else None."""
    if not isinstance(out, Tensor) or out.shape != x.shape or not out.is_floating_point():
        return None
    o = out.detach().double().cpu()
    xs, Wi, Wo, bb = (t.detach().double().cpu() for t in (x, W_in, W_out, b))
    if not torch.isfinite(o).all() or torch.allclose(o, _model(xs, Wi, Wo, bb, 0.0), rtol=1e-4, atol=1e-5):
        return None
    c = torch.zeros(Wi.shape[0], Wi.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([c], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = ((_model(xs, Wi, Wo, bb, c) - o) ** 2).sum()
        loss.backward()
        return loss

    try:
        opt.step(closure)
    except RuntimeError:
        return None
    c = c.detach()
    if float(c.abs().max()) < 1e-3 or not torch.allclose(_model(xs, Wi, Wo, bb, c), o, rtol=1e-4, atol=1e-5):
        return None
    per_inst = bool((c - c[:, :1]).abs().max() < 1e-3)
    shown = ", ".join(f"{v:.3g}" for v in (c[:, 0] if per_inst else c.flatten()[:6]).tolist())
    what = f"one per instance: {shown}" if per_inst else f"one per hidden neuron, e.g. {shown}"
    named = ""
    for label, t in (("b_final.mean(-1)", bb.mean(-1)), ("b_final.sum(-1)", bb.sum(-1))):
        if per_inst and torch.allclose(c[:, 0], t, atol=1e-3):
            named = f" (it equals {label})"
    return "hidden_bias", _shift_hint(
        f"your output is ReLU(W2 ReLU(W1 x + c) + b_final) with a constant c added to the hidden pre-activation "
        f"({what}){named}"
    )


def _shift_hint(what: str) -> str:
    return (
        f"{what}: an extra term (a bias) is added inside the hidden layer (or the ReLU is shifted, ReLU(h + c)). This "
        "model's only bias is b_final, added to the output pre-activation, before the output ReLU; the hidden layer "
        "is ReLU(W1 x) alone"
    )


def hidden_shift_probe(build: Callable[..., torch.nn.Module], device: torch.device) -> tuple[str, str] | None:
    """(code, hint) when the hidden layer of the one-feature model `build(B, w)` (every weight w = 1, b_final = B;
    its output is ReLU(g(x) + B)) is ReLU(x + c) with a constant c != 0, else None. B = 10 and 20 must give outputs
    10 apart, so that g = out - 10 is the hidden layer."""
    x = torch.tensor(GRID, device=device).reshape(-1, 1, 1)
    try:
        with torch.no_grad():
            out10, out20 = build(10.0)(x), build(20.0)(x)
        if not all(isinstance(o, Tensor) and o.shape == x.shape for o in (out10, out20)):
            return None
        if not torch.allclose((out20 - out10).double(), torch.full_like(x, 10.0).double(), atol=1e-4):
            return None
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    g, xs = (out10.double() - 10).flatten().cpu(), x.double().flatten().cpu()
    on = g > 1e-4
    if int(on.sum()) < 2:
        return None
    c = float((g - xs)[on].mean())
    if abs(c) < 1e-3 or not torch.allclose(g, torch.relu(xs + c), atol=1e-4):
        return None
    table = ", ".join(f"{v:g} → {float(gv):.3g}" for v, gv in zip(GRID, g, strict=True))
    return "hidden_bias", _shift_hint(
        f"on a one-feature model with weights 1 (and b_final = 10 taken off) your hidden layer maps {table}: that is "
        f"ReLU(x + c) with a constant c = {c:.4g}"
    )
