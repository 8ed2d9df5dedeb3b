"""Name a sign slip on one parameter of a module: the learner's outputs are the solution's with that parameter negated.

`exp(-r_mag)` where `exp(r_mag)` belongs, `h + b_dec` where `h - b_dec` belongs, `- b_enc` for `+ b_enc`: each gives
exactly what the solution gives on a copy of the module whose parameter is negated. `negated_parameter` reruns the
reference forward once per parameter with that parameter negated (in place on the reference, restored in a
`finally`; negation is exact in floating point) and names the one parameter whose negation reproduces EVERY output
the learner returned, when the unchanged reference does not. It says nothing when several parameters fit, when a
negation changes nothing (a zero parameter), or when anything fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from tests.checking import fail


def _close(a: Tensor, b: Tensor) -> bool:
    return (
        isinstance(a, Tensor)
        and a.shape == b.shape
        and a.is_floating_point()
        and bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=1e-4, atol=1e-5))
    )


def negated_parameter(
    got: Sequence[Tensor], reference: torch.nn.Module, run: Callable[[torch.nn.Module], Sequence[Tensor]]
) -> str | None:
    """The name of the one own parameter of `reference` (not its submodules') whose negation makes `run(reference)`
    equal to `got` output by output, or None. `run` returns the outputs in the same order as `got`."""
    try:
        with torch.no_grad():
            want = list(run(reference))
            if len(want) != len(got) or all(_close(g, w) for g, w in zip(got, want, strict=True)):
                return None
            fits = []
            for name, p in reference.named_parameters(recurse=False):
                if not p.is_floating_point() or not p.any():
                    continue
                p.neg_()
                try:
                    flipped = list(run(reference))
                finally:
                    p.neg_()
                if all(_close(g, w) for g, w in zip(got, flipped, strict=True)):
                    fits.append(name)
    except Exception:  # a diagnosis never crashes a checker
        return None
    return fits[0] if len(fits) == 1 else None


def negated_parameter_hint(name: str) -> str:
    return (
        f"your outputs are exactly the solution's with `{name}` negated: a sign slip where `{name}` is used, e.g. "
        f"`exp(-{name})` where `exp({name})` belongs, `- {name}` for `+ {name}` (or the reverse), or `-{name}` "
        "passed on. Check the sign of every use of it against the formula"
    )


def _tensors(out: object) -> list[Tensor]:
    """Every tensor in a forward's return value (tuples, lists, dicts in key order), in order."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out, key=str) for t in _tensors(out[k])]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _tensors(item)]
    return []


def check_negated_parameter(learner: torch.nn.Module, reference: torch.nn.Module, x: Tensor, what: str) -> None:
    """Fail (code `negated_parameter`) when `learner(x)` returns exactly what `reference` returns with one of its own
    parameters negated. `learner`: a copy of the learner's module (called once more, on a copy of x, without
    gradients); `reference`: a copy of the solution's module with the same parameters. Does nothing otherwise."""
    try:
        with torch.no_grad():
            got = _tensors(learner(x.clone()))
    except Exception:  # a malformed return or an error: the main check names it
        return
    name = negated_parameter(got, reference, lambda module: _tensors(module(x.clone())))
    if name is not None:
        hint = negated_parameter_hint(name)
        fail(f"{what}: every output equals the solution's with `{name}` negated", hint, code="negated_parameter")
