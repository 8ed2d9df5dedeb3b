"""Read-back for cross_entropy_loss on confidently wrong logits: a clamp of the logits (symmetric, or from above
only) is tried at a few bounds and named only when it reproduces instance 0 alone, instance 1 alone and the
total; otherwise the reading says what was observed and which causes were ruled out, naming none."""

from __future__ import annotations

import math

from torch import Tensor

from solutions import part7_open_problems as ref

BOUNDS = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)


def loss_with(part: tuple[Tensor, Tensor, Tensor], edit) -> float:
    logits, labels, importance = part
    return float(ref.cross_entropy_loss(edit(logits.double()), labels, importance.double()))


def logit_clamp(parts: list, seen_parts: list[Tensor], whole: tuple, got: Tensor) -> str | None:
    """The first logit clamp (z.clamp(-c, c) or z.clamp(max=c)) whose loss matches every part and the total."""
    pairs = [*zip(seen_parts, parts, strict=True), (got, whole)]
    for c in BOUNDS:
        for text, edit in (
            (f"logits.clamp({-c:g}, {c:g})", lambda z, c=c: z.clamp(-c, c)),
            (f"logits.clamp(max={c:g})", lambda z, c=c: z.clamp(max=c)),
        ):
            if all(math.isclose(o.item(), loss_with(p, edit), rel_tol=1e-4, abs_tol=1e-5) for o, p in pairs):
                return text
    return None


def observed(seen: str, got_parts: list[Tensor], want_parts: list[float]) -> str:
    """What was seen on the confident logits, per instance, with the causes that were ruled out."""
    per = ", ".join(
        f"instance {k}: {g.item():.6g} (expected {w:.6g})"
        for k, (g, w) in enumerate(zip(got_parts, want_parts, strict=True))
    )
    return (
        f"{seen} ({per}; your loss is right on the milder logits). Ruled out: an eps or clamp inside log(softmax) "
        f"(no eps reproduces both instances) and a clamp of the logits at ±c or from above for c in "
        f"{', '.join(f'{c:g}' for c in BOUNDS)}"
    )
