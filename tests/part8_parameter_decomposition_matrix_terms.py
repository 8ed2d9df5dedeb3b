"""Behavioural probes that localise a wrong importance_minimality_loss: where eps goes (probed by eps = 0) and
which matrix's part of the penalty disagrees (probed by changing one matrix at a time). Each returns (code, hint)
or None; they describe what was observed and list the possible causes rather than asserting one."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from tests import part8_parameter_decomposition_diagnosis as diag


def _value(fn: Callable, ci: list[Tensor], p: float, eps: float) -> float | None:
    try:
        out = fn([g.detach().clone() for g in ci], p, eps)
    except Exception:  # a probe only
        return None
    if not isinstance(out, Tensor) or out.numel() != 1:
        return None
    return float(out.detach().double())


def _ref(ci: list[Tensor], p: float, eps: float) -> float:
    return float(sum((g.detach().double() + eps).pow(p).sum(-1) for g in ci).mean(0).sum())


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * max(1.0, abs(b))


def eps_placement(fn: Callable, ci: list[Tensor], p: float, eps: float):
    """The learner's penalty matches at eps = 0 but not at the given eps: eps enters some other way."""
    at_zero = _value(fn, ci, p, 0.0)
    if at_zero is None or not _close(at_zero, _ref(ci, p, 0.0)):
        return None
    return "eps_placement", (
        f"with eps = 0 your penalty is right (Σ g^p), with eps = {eps} it is not: eps must be added to every "
        "importance inside the power, (g + eps)^p (is it multiplied in, e.g. (g·(1 + eps))^p, put outside the "
        "power, or added to only some entries?)"
    )


def matrix_parts(fn: Callable, ci: list[Tensor], p: float, eps: float):
    """Change one matrix's importances at a time (scaled by 0.6): the change of the penalty must be that matrix's
    change of Σ(g + eps)^p. Named when some matrices' parts agree and others' don't."""
    base = _value(fn, ci, p, eps)
    if base is None or len(ci) < 2:
        return None
    wrong = []
    for n in range(len(ci)):
        moved = [g * 0.6 if m == n else g for m, g in enumerate(ci)]
        got = _value(fn, moved, p, eps)
        if got is None:
            return None
        want = _ref(moved, p, eps) - _ref(ci, p, eps)
        if abs((got - base) - want) > 1e-4 * max(1e-3, abs(want)):
            wrong.append(n)
    if not wrong or len(wrong) == len(ci):
        return None
    names = ", ".join(str(n) for n in wrong)
    right = ", ".join(str(n) for n in range(len(ci)) if n not in wrong)
    return "matrix_term", (
        f"how your penalty changes with matrix {right}'s importances is right, with matrix {names}'s it is not: "
        f"every matrix's term is Σ_c (g + eps)^p the same way (was matrix {names} handled apart, e.g. a running "
        "sum started from cis[0].sum(-1) without the power or eps, or a loop that skips or repeats it?)"
    )


def minimality_probe(fn: Callable, ci: list[Tensor], p: float, eps: float):
    return eps_placement(fn, ci, p, eps) or matrix_parts(fn, ci, p, eps)


def unnamed(fn: Callable, ci: list[Tensor], p: float, eps: float, loss: Tensor):
    """For a value no listed mistake explains: an ignored p or eps first, then the probes above."""
    changed = {1: ("p", 0.3), 2: ("eps", 0.02)}
    base = loss.detach().reshape(1)
    rooted = root_count(float(base.double()), _ref(ci, p, eps), ci)
    return rooted or diag.ignored_argument(fn, (ci, p, eps), base, changed) or minimality_probe(fn, ci, p, eps)


def root_count(got: float, want: float, ci: list[Tensor]):
    """(root_count, hint) when got = want · √n or want / √n for a count n the reductions use (round BA)."""
    batch, n_inst = ci[0].shape[0], ci[0].shape[1]
    counts = {"the batch": batch, "the instances": n_inst, "the matrices": len(ci), "batch × instances": batch * n_inst}
    for name, n in counts.items():
        for factor, how in ((n**-0.5, "divided by"), (n**0.5, "multiplied by")):
            if n < 2 or not _close(got, want * factor):
                continue
            why = f" (a sum over {name} divided by √{n}, where the mean divides by {n})" if factor > 1 else ""
            return "root_count", (
                f"your value is the expected one {how} √{n}, the square root of the size of {name}{why}: a mean over "
                "the batch divides by the count itself (mean_batch), and the sums over instances, matrices and "
                "subcomponents are plain sums: Σ_inst mean_batch Σ_l Σ_c (g + eps)^p"
            )
    return None
