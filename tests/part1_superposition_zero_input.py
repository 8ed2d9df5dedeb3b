"""The forward pass on an all-zero input, which must give ReLU(b_final) whatever the weights. When it doesn't, a
cause is named only when its output on zeros is read back (within rtol 1e-4, atol 1e-5 of the learner's): b_final
without the ReLU, doubled, negated, 0, or another instance's or feature's b_final (reversed, rolled or averaged along an
axis); a NaN there is a division by something that is 0 on an all-zero input. Otherwise the hint reports what was
observed and names no cause."""

from __future__ import annotations

import torch
from torch import Tensor


def zero_input_reading(got: Tensor | None, b: Tensor) -> tuple[str, str]:
    """(code, hint) for the learner's output on zeros: `nonfinite_on_zeros` for a NaN or inf there, `bias_moved`
    for another instance's or feature's b_final, else `bias_term` with `zero_input_hint`."""
    if got is not None and not bool(torch.isfinite(got).all()):
        return "nonfinite_on_zeros", zero_input_hint(got, b)
    if got is not None and _moved_bias(got.double().cpu(), b.double().cpu()):
        return "bias_moved", zero_input_hint(got, b)
    return "bias_term", zero_input_hint(got, b)


def zero_input_hint(got: Tensor | None, b: Tensor) -> str:
    """The bias_term hint for the learner's output `got` on zeros (None when it isn't a float tensor of the right
    shape), b_final `b` expanded to that shape."""
    head = "with every feature 0 your output should be ReLU(b_final), and it isn't"
    if got is None:
        return head + "; compare how b_final and the output ReLU enter with the formula"
    if not bool(torch.isfinite(got).all()):
        return (
            f"{head}: it holds NaN or inf. Something divides by a quantity that is 0 when every feature is 0 (the "
            "input or the hidden vector normalised, x / x.norm() or x / x.sum()): the forward "
            "pass has no division, ReLU(WᵀWx + b_final) of the features as they are"
        )
    moved = _moved_bias(got.double().cpu(), b.double().cpu())
    if moved:
        return f"{head}; read back on zeros, your output is ReLU of b_final {moved}: add b_final [inst, feats] as it is"
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
        (
            -b,
            "-b_final, negative entries kept: b_final subtracted after the output ReLU (ReLU(…) - b_final), where it "
            "is added before the ReLU",
        ),
        (torch.relu(-b), "ReLU(-b_final): b_final subtracted before the ReLU (ReLU(WᵀWx - b_final)) where it is added"),
    )
    for value, label in candidates:
        if not same(value) or same(want):
            continue
        return f"{head}{seen}; read back on zeros, your output is {label}"
    return (
        f"{head}{seen}; it is none of b_final without the ReLU, 2 × ReLU(b_final), ReLU(2 · b_final), ReLU(b_final) + "
        "b_final, -b_final, ReLU(-b_final) or 0 (each "
        "was compared), so no cause is named. With zero features the weights contribute nothing: look at how "
        "b_final, any bias inside the hidden layer and the output nonlinearity enter"
    )


def _moved_bias(got: Tensor, b: Tensor) -> str | None:
    """How b_final [..., inst, feats] was moved along an axis when ReLU of that is the output on zeros, else None."""
    if b.dim() < 2 or got.shape != b.shape:
        return None
    edits = (
        ("with the instances in reverse order (b_final.flip(0))", lambda t: t.flip(-2)),
        ("rolled along the instances (instance k gets k - 1's: b_final.roll(1, 0))", lambda t: t.roll(1, -2)),
        (
            "rolled along the instances (instance k gets instance k + 1's: b_final.roll(-1, 0))",
            lambda t: t.roll(-1, -2),
        ),
        ("averaged over the instances (b_final.mean(0))", lambda t: t.mean(-2, keepdim=True).expand_as(t)),
        ("with the features in reverse order (b_final.flip(-1))", lambda t: t.flip(-1)),
        ("averaged over the features (b_final.mean(-1))", lambda t: t.mean(-1, keepdim=True).expand_as(t)),
        (
            "transposed and reshaped back (b_final.T.reshape(...)), which scrambles it",
            lambda t: t.transpose(-1, -2).reshape(t.shape),
        ),
    )
    want = torch.relu(b)
    for what, edit in edits:
        moved = torch.relu(edit(b))
        if not torch.allclose(moved, want, rtol=1e-4, atol=1e-5) and torch.allclose(got, moved, rtol=1e-4, atol=1e-5):
            return what
    return None
