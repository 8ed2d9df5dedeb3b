"""Loss catalogue entries for a clip inside the squared error: the error (target - out) clamped to [-1, 1] (a
"gradient clipping" on the error), or the output clamped to at most 1 / to [0, 1] before the error. The checker's
outputs reach 1.5 and -0.2, so every clip changes the loss."""

from __future__ import annotations

from torch import Tensor


def clipped_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, loss) with the error or the output clipped, the rest of the loss as the reference."""

    def loss(err: Tensor) -> Tensor:
        return (imp * err**2).mean(dim=(0, 2)).sum()

    tail = (
        ": errors beyond the clip then cost a constant and get no gradient, so large mistakes are never corrected. "
        "Square the error as it is, importance · (target - out)²"
    )
    return [
        (
            "error_clipped",
            "equals the loss with the error clamped to [-1, 1] ((target - out).clamp(-1, 1))" + tail,
            loss((target - out).clamp(-1, 1)),
        ),
        (
            "out_clipped",
            "equals the loss with the output clamped to at most 1 (out.clamp(max=1))" + tail,
            loss(target - out.clamp(max=1)),
        ),
        (
            "out_clipped",
            "equals the loss with the output clamped to [0, 1] (out.clamp(0, 1))" + tail,
            loss(target - out.clamp(0, 1)),
        ),
    ]
