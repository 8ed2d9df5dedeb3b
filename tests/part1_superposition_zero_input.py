"""The forward pass on an all-zero input, which must give ReLU(b_final) whatever the weights. When it doesn't, a
cause is named only when its output on zeros is read back (within rtol 1e-4, atol 1e-5 of the learner's); otherwise
the hint reports what was observed and names no cause."""

from __future__ import annotations

import torch
from torch import Tensor


def zero_input_hint(got: Tensor | None, b: Tensor) -> str:
    """The bias_term hint for the learner's output `got` on zeros (None when it isn't a float tensor of the right
    shape), b_final `b` expanded to that shape."""
    head = "with every feature 0 your output should be ReLU(b_final), and it isn't"
    if got is None:
        return head + "; compare how b_final and the output ReLU enter with the formula"
    got, b = got.double().flatten().cpu(), b.double().flatten().cpu()
    want = torch.relu(b)
    i = int((got - want).abs().argmax())
    seen = f" (e.g. {float(got[i]):.4g} where ReLU(b_final) = {float(want[i]):.4g})"
    same = lambda t: torch.allclose(got, t, rtol=1e-4, atol=1e-5)
    candidates = (
        (b, "b_final itself, negative entries kept: no ReLU after b_final (the output ReLU missing or moved)"),
        (
            2 * want,
            "exactly 2 × ReLU(b_final) everywhere: the pass run twice and added (f(x) + f(-x), a "
            "symmetrised output), or b_final's term doubled after the ReLU",
        ),
        (torch.relu(2 * b), "ReLU(2 · b_final): b_final added twice before the ReLU"),
        (want + b, "ReLU(b_final) + b_final: b_final added again after the output ReLU, ReLU(… + b_final) + b_final"),
        (torch.zeros_like(b), "all 0: b_final not added"),
    )
    for value, label in candidates:
        if not same(value) or same(want):
            continue
        return f"{head}{seen}; read back on zeros, your output is {label}"
    return (
        f"{head}{seen}; it is none of b_final without the ReLU, 2 × ReLU(b_final), ReLU(2 · b_final), ReLU(b_final) + "
        "b_final or 0 (each "
        "was compared), so no cause is named. With zero features the weights contribute nothing: look at how "
        "b_final, any bias inside the hidden layer and the output nonlinearity enter"
    )
