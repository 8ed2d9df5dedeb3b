"""Part 5a: readings of a step function's value exactly at the tie x == θ, and of an index read where a value
belongs in dead_latent_fraction.

* `step_forward` runs ahead of the smooth-step reading: when the forward output is wrong only at the inputs that
  sit exactly on θ, it says so, and reads back the value there: `torch.heaviside(x - θ, values)` with `values`
  θ itself (the second argument misread as the threshold) or one constant (0.5, ...). A tie value strictly between
  0 and the step's value is not a smooth step: only the ties are off, every x inside the window is right. The
  step's full value at the ties (`x >= θ`) is left to the catalogue and the exact-diff reading (one comparison).
* `dead_max_indices`: `acts.max(0)[1] == 0` (or argmax) compares the position of the largest activation with 0, not
  the largest activation itself: a catalogue entry read back on the checker's own acts.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail
from tests.part5a_sae_architectures_diagnosis import smooth_step


def _tie_readback(got: Tensor, x: Tensor, th: Tensor, jump: bool) -> tuple[str, str] | None:
    """(what the step holds at the ties, the `values` argument) when torch.heaviside(x - θ, values) (times x for
    JumpReLU) reproduces `got` exactly, else None."""
    candidates = [("θ itself", "threshold", th)]
    ties = x == th
    step = got[ties] / x[ties] if jump else got[ties]
    if step.unique().numel() == 1:
        c = float(step[0])
        candidates.append((f"{c:g}", f"{c:g}", torch.full_like(th, c)))
    for label, arg, values in candidates:
        h = torch.heaviside(x - th, values)
        if torch.equal(got, x * h if jump else h):
            return label, arg
    return None


def step_forward(out: Tensor, want: Tensor, on: Tensor, x: Tensor, th: Tensor, bw: float, name: str, step: str) -> None:
    """Fail naming the tie x == θ when only the ties are wrong (read back through torch.heaviside's `values`), else
    fail on a smooth or partial step (code forward_not_step) when that reading fires."""
    got, jump = out.detach().to(want.dtype), name != "Heaviside"
    wrong, ties = got != want, x == th
    non_strict = torch.equal(got[ties], on.to(got.dtype)[ties])  # x >= θ: the exact-diff reading names it
    if ties.any() and wrong.any() and not (wrong & ~ties).any() and not non_strict:
        n = f"{int(wrong.sum())} of the {int(ties.sum())} inputs with x == θ exactly"
        rule = f"the step is strict: at x == θ the output is 0 ({step} · 1[x > θ] with x > θ false)"
        read = _tie_readback(got, x, th, jump)
        if read is not None:
            label, arg = read
            fail(
                f"{name} forward differs only at the ties x == θ ({n}; every other input is right): there yours "
                f"holds {'x times ' if jump else ''}{label}, the expected value is 0. Read back: "
                f"{'x * ' if jump else ''}torch.heaviside(x - θ, {arg}) reproduces yours",
                f"{rule}. torch.heaviside's second argument is the value it returns where x - θ == 0, not the "
                "threshold or a midpoint: pass torch.zeros_like(x), or use (x > θ).to(x.dtype)",
                code="tie_value",
            )
        i = int((wrong & ties).flatten().nonzero()[0])
        fail(
            f"{name} forward differs only at the ties x == θ ({n}; every other input is right): e.g. "
            f"{float(got.flatten()[i]):.4g} where 0 is expected",
            f"{rule}: check what your step returns when x - θ is exactly 0",
            code="tie_value",
        )
    smooth = smooth_step(out, want, on, (x - th) / bw, name, step)
    if smooth is not None:
        fail(*smooth, code="forward_not_step")


def dead_max_indices(acts: Tensor) -> list:
    """Per instance, the fraction of latents whose largest activation sits at example 0: `acts.max(0)[1] == 0`
    (max(dim) returns (values, indices); [1] is the index) or argmax compared with 0."""
    hint = (
        "read back: the position of each latent's largest activation compared with 0 (acts.max(0)[1] or argmax == 0) "
        "reproduces yours: max(dim) returns (values, indices), [1] is the index: compare the values, "
        "acts.max(0).values == 0 (or (acts == 0).all(0))"
    )
    out = [("max_indices", hint, (acts.max(0).indices == 0).to(acts.dtype).mean(-1))]
    arg = (acts.argmax(0) == 0).to(acts.dtype).mean(-1)
    return out + [("max_indices", hint, arg)] * (not torch.equal(arg, out[0][2]))
