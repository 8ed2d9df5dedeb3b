"""Probes for part 7 added after the fresh8 held-out measurement: what absent features are set to, which features
each output of a pair target reads (a behavioural probe), and an alignment that is an affine rescaling of the
right one."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from tests.checking import CheckFailed, fail
from tests.learner_errors import failing_line
from tests.part7_open_problems_mistakes import name_distribution
from tests.part7_open_problems_pair_readings import pair_reading
from tests.part7_open_problems_pair_values import pair_value_readback
from tests.sizes import note_inputs


# --------------------------------------------------------------------------------------------
# generate_features: absent entries must be exactly 0
# --------------------------------------------------------------------------------------------
def absent_value_hint(batch: Tensor, kind: str, p: Tensor) -> None:
    """Fail when far fewer entries are 0 than features should be absent while one non-zero value fills about
    that share: the absent entries hold that value. With the checker's rates about 55% of entries are absent;
    a correct batch of 96 000 entries has far more than half of that as zeros (its share is within ±0.01 with
    probability > 1 - 1e-9), and a continuous draw never repeats one value in a quarter of the entries."""
    absent = 1 - float(p.double().mean())
    zeros = float((batch == 0).double().mean())
    if zeros >= absent / 2:
        return
    values, counts = batch.unique(return_counts=True)
    top = int(counts.argmax())
    value, share = float(values[top]), float(counts[top]) / batch.numel()
    if value == 0 or share < absent / 2:
        return
    fail(
        f"with values={kind!r}, {share:.0%} of the entries are exactly {value:g} and only {zeros:.1%} are 0, while "
        f"about {absent:.0%} of the features should be absent: absent entries are {value:g}, not 0",
        "an absent feature is exactly 0: mask last, torch.where(present, values, 0.0). A shift or rescale "
        "applied after masking (such as 2x - 1) moves the zeros too, and values that are never masked are never 0",
        code="absent_not_zero",
    )


# --------------------------------------------------------------------------------------------
# compute_target: which features each output of a pair target reads
# --------------------------------------------------------------------------------------------
def pair_reads_hint(impl: Callable, features: Tensor, target: str, got: Tensor, listed: list[Tensor]) -> None:
    """For a pair target whose output is wrong and uncatalogued: set each feature in turn to 0 and to a value
    larger than any other (every example), and record which outputs change. Fail when output j does not read
    exactly features 2j and 2j+1, naming the features it reads. Silent when the probe errs or the layout is
    right (the mistake is then in how a pair is combined)."""
    if not target.endswith("_pairs") or any(v.shape == got.shape and torch.allclose(got, v) for v in listed):
        return
    n, m = features.shape[-1], got.shape[-1]
    reads: list[set[int]] = [set() for _ in range(m)]
    try:
        with torch.no_grad():
            base = impl(features.clone(), target)
            for i in range(n):
                for value in (0.0, float(features.abs().max()) + 1.37):
                    probe = features.clone()
                    probe[..., i] = value
                    changed = (impl(probe, target) != base).reshape(-1, m).any(0)
                    for j in changed.nonzero().flatten().tolist():
                        reads[j].add(i)
    except Exception:  # a probe that fails says nothing
        return
    # An output that reads no feature is constant under the probe (a test on the values, such as a + b == 2, that
    # no single change flips): it says nothing about the layout, so only the outputs that read something count.
    wrong = [j for j in range(m) if reads[j] and reads[j] != {2 * j, 2 * j + 1}]
    if not wrong:
        return
    shown = "; ".join(
        f"out {j} reads features {sorted(reads[j]) if reads[j] else 'none'} (expected [{2 * j}, {2 * j + 1}])"
        for j in wrong[:3]
    )
    common = set.intersection(*reads) if m > 1 else set()
    single = (
        f"; every output reads feature {sorted(common)[0]}: a slice of one feature (like 1:2 or 0:1) where every "
        "second feature (1::2, 0::2) was meant, broadcast to every pair"
        if len(common) == 1
        else ""
    )
    fail(
        f"compute_target(features, {target!r}): changing one feature at a time shows {shown}",
        "pair j is features 2j and 2j+1: features[..., 0::2] and features[..., 1::2] (not features j and j+1, "
        f"nor the two halves{single})",
        code="pair_reads",
    )


def pair_sign_hint(features: Tensor, target: str, got: Tensor, expected: Tensor, listed: list[Tensor]) -> None:
    """For AND / OR on signed features with an uncatalogued wrong output of the right shape: fail when it is not 0/1
    (a value, not a truth value), or when it is right wherever both members of a pair are >= 0 and wrong only on
    pairs with a negative member (negative values read as absent: > 0, a product's or a sum's sign)."""
    if target not in ("and_pairs", "or_pairs") or not isinstance(got, Tensor) or got.shape != expected.shape:
        return
    if any(v.shape == got.shape and torch.allclose(got, v) for v in listed):
        return
    g = got.detach().to(expected.dtype)
    a, b = features[..., 0::2], features[..., 1::2]
    name = "AND" if target == "and_pairs" else "OR"
    other = (g != 0) & (g != 1)
    if other.any() and (features.abs() != 1).any():
        seen = [round(v, 3) for v in g[other].unique()[:4].tolist()]
        fail(
            f"compute_target(features, {target!r}) returned values other than 0 and 1 (e.g. {seen}) for features "
            "whose present values are not 1",
            f"{name} depends only on whether each feature is non-zero, not on its value: compare with 0 first "
            f"((a != 0), (b != 0)){pair_value_readback(g, a, b)}",
            code="pair_not_boolean",
        )
    op = "&" if name == "AND" else "|"
    wrong = g != expected
    cancel = (a != 0) & (a + b == 0)
    if wrong.any() and bool((wrong == cancel).all()):
        fail(
            f"compute_target(features, {target!r}) is wrong exactly on the {int(wrong.sum())} pairs whose two present "
            "values cancel (a + b = 0, e.g. 0.7 and -0.7)",
            f"a sum of the pair's values is 0 when they cancel, though both are present: test each member, "
            f"(a != 0) {op} (b != 0)",
            code="pair_sum_cancels",
        )
    tiny = lambda v: (v != 0) & (v.abs() < 1e-6)  # a tiny pair (2e-12, 3e-12): wrong under a tolerance test
    nonneg = (a >= 0) & (b >= 0) & ~(tiny(a) | tiny(b))
    if wrong.any() and not (wrong & nonneg).any():
        reading = pair_reading(g, a, b, expected)  # a min / max / product / sum of the values, named when it fits
        fail(
            f"compute_target(features, {target!r}) is right wherever both features of a pair are >= 0 and wrong on "
            f"{int(wrong.sum())} pairs with a negative member",
            f"{reading}'non-zero' includes negative values: {name} tests (a != 0) {op} (b != 0)"
            + (
                ""
                if reading
                else ". A test such as a > 0, a·b > 0 or a + b > 0 reads a negative feature as absent "
                "(or depends on the signs)"
            ),
            code="pair_negative",
        )
    value_reads(g, a, b, expected, target)


def value_reads(g: Tensor, a: Tensor, b: Tensor, expected: Tensor, target: str) -> None:
    """AND / OR with 0/1 outputs, right on the checker's binary inputs (checked first) but wrong on values other than
    1: the test reads the values where presence (!= 0) is meant. Named exactly when a usual value test reproduces
    the output, else described with the family (round BB: AND as (a + b) == 2)."""
    wrong = g != expected
    if not wrong.any() or not bool(((g == 0) | (g == 1)).all()):
        return
    name, op = ("AND", "&") if target == "and_pairs" else ("OR", "|")
    one_a, one_b = a == 1, b == 1
    tests = {
        "and_pairs": (("a + b == 2", a + b == 2), ("a * b == 1", a * b == 1), ("(a == 1) & (b == 1)", one_a & one_b)),
        "or_pairs": (("a + b >= 1", a + b >= 1), ("(a == 1) | (b == 1)", one_a | one_b), ("a + b == 1", a + b == 1)),
    }[target]
    found = next((expr for expr, value in tests if torch.equal(g, value.to(g.dtype))), None)
    said = f"your output is {found}" if found else "your test reads the VALUES"
    fail(
        f"compute_target(features, {target!r}) was right on 0/1 features but is wrong on {int(wrong.sum())} pairs "
        "of these, whose present values are not all 1",
        f"{said}, which agrees with 'present' only when every present value is exactly 1"
        + ("" if found else f" (such as {' or '.join(expr for expr, _ in tests)})")
        + f": a feature is present when it is non-zero, so {name} is (a != 0) {op} (b != 0)",
        code="pair_value_test",
    )


# --------------------------------------------------------------------------------------------
# basis_alignment: an affine rescaling of the right values
# --------------------------------------------------------------------------------------------
def affine_alignment_hint(got: Tensor, expected: Tensor, W: Tensor) -> None:
    """Fail when, on every non-zero feature, got = α · alignment + β with β != 0 (a pure factor or offset is named
    by the generic diagnosis): say so, and name the rescaling of [1/√d, 1] onto [0, 1] when that is it."""
    nz = (W.norm(dim=1) > 0).cpu()
    power_alignment_hint(got, W)
    y, x = got.detach().double().cpu()[nz], expected.detach().double().cpu()[nz]
    if y.numel() < 3 or not torch.isfinite(y).all() or float(x.max() - x.min()) < 1e-6:
        return
    A = torch.stack([x, torch.ones_like(x)], -1)
    alpha, beta = torch.linalg.lstsq(A, y[:, None]).solution.flatten().tolist()
    if abs(alpha) < 1e-3:  # a constant output is no rescaling of the alignment (named as a constant elsewhere)
        return
    if abs(beta) < 1e-4 or not torch.allclose(alpha * x + beta, y, rtol=1e-4, atol=1e-5):
        return
    lo = 1 / math.sqrt(W.shape[1])
    if math.isclose(alpha, 1 / (1 - lo), rel_tol=1e-3) and math.isclose(beta, -lo / (1 - lo), rel_tol=1e-3):
        fail(
            f"basis_alignment(W) is (a - 1/√d) / (1 - 1/√d) of the alignment a (d = {W.shape[1]} neurons): "
            "rescaled from [1/√d, 1] onto [0, 1]",
            "the alignment is max_k |W_ki| / ‖Wᵢ‖ itself (it lies in [1/√d, 1]): don't rescale it",
            code="alignment_rescaled",
        )
    fail(
        f"basis_alignment(W) is {alpha:.4g} × the alignment {beta:+.4g} on every non-zero feature (an affine "
        "rescaling)",
        "the alignment is max_k |W_ki| / ‖Wᵢ‖ itself: no factor or offset",
        code="alignment_affine",
    )


def power_alignment_hint(got: Tensor, W: Tensor) -> None:
    """Fail when got = max_k |W_ki| / ‖Wᵢ‖^k on every non-zero feature for one exponent k != 1 (fitted by least
    squares on log(max|W_ki| / got) = k · log ‖Wᵢ‖ over the columns whose norm is away from 1, where k shows):
    the denominator raised to a power, whatever the code (a power written without parentheses, a square kept)."""
    W = W.detach().double().cpu()
    norm, top = W.norm(dim=1), W.abs().amax(1)
    g = got.detach().double().cpu()
    use = (norm > 0) & ((norm.log()).abs() > 0.1) & (g > 0) & torch.isfinite(g)
    if int(use.sum()) < 4:
        return
    x, y = norm[use].log(), (top[use] / g[use]).log()
    k = float((x * y).sum() / (x * x).sum())
    if abs(k - 1) < 0.02 or abs(k - 2) < 1e-3 or not torch.allclose(k * x, y, rtol=1e-4, atol=1e-6):
        return
    named = next((f" = {n}" for n, v in (("√2", 2**0.5), ("1/2", 0.5), ("3", 3.0)) if abs(k - v) < 1e-3), "")
    fail(
        f"basis_alignment(W) is max_k |W_ki| / ‖Wᵢ‖^{k:.4g}{named} on every non-zero feature: the denominator is "
        "the norm raised to a power",
        "divide by ‖Wᵢ‖ itself (power 1). Possible causes: operator precedence in a hand-written norm (`x ** 2 ** "
        "0.5` is x ** (2 ** 0.5) = x^√2, since ** groups right to left: write (x ** 2) ** 0.5, or W.norm(dim=1)); "
        "a power or square root applied to an already-taken norm",
        code="norm_power",
    )


# --------------------------------------------------------------------------------------------
# compute_target: right on [batch inst feats], wrong shape with more leading axes
# --------------------------------------------------------------------------------------------
_PAIR_OPS = {
    "max_pairs": lambda a, b: torch.maximum(a, b),
    "and_pairs": lambda a, b: ((a != 0) & (b != 0)).to(a.dtype),
    "or_pairs": lambda a, b: ((a != 0) | (b != 0)).to(a.dtype),
}


def overlapping_pairs(got: object, features: Tensor, target: str, what: str) -> None:
    """A pair target with n_feats - 1 outputs that are the pair operation on the overlapping windows (x_j, x_j+1) for
    every j: pairs taken with step 1 (unfold(-1, 2, 1), or features[..., :-1] with features[..., 1:])."""
    n = features.shape[-1]
    if target not in _PAIR_OPS or not isinstance(got, Tensor) or tuple(got.shape) != (*features.shape[:-1], n - 1):
        return
    windows = _PAIR_OPS[target](features[..., :-1], features[..., 1:])
    if got.is_floating_point() and torch.allclose(got.detach().to(windows.device, windows.dtype), windows):
        fail(
            f"{what} has shape {tuple(got.shape)}, expected {(*features.shape[:-1], n // 2)}: your {n - 1} outputs are "
            f"the pair operation on the overlapping windows (x_j, x_j+1) for j = 0 .. {n - 2}",
            "the pairs don't overlap: pair j is features 2j and 2j+1, so there are n_feats / 2 of them. Take "
            "features[..., 0::2] and features[..., 1::2] (or unfold(-1, 2, 2), step 2), not a step of 1",
            code="overlapping_pairs",
        )


def fixed_axis_hint(
    got: object, expected: Tensor, what: str, shape: tuple, features: Tensor | None = None, target: str = ""
) -> None:
    """Called on the input with two leading axes, after the 3-axis input of the same target passed: a wrong shape
    here means the code counts axes from the front (or unpacks three sizes). First (on every input), a pair target
    computed on overlapping windows (`overlapping_pairs`)."""
    if features is not None:
        overlapping_pairs(got, features, target, what)
    if len(shape) <= 3 or not isinstance(got, Tensor) or tuple(got.shape) == tuple(expected.shape):
        return
    fail(
        f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}; with [batch inst feats] input "
        "(3 axes) your result was right",
        "your code assumes exactly 3 axes: an axis position counted from the front (dim=2, or a slice like "
        "[:, :, 0::2], which on 4 axes slices inst), or a reshape/unpacking of three sizes. Count from the end so "
        "extra leading axes pass through: dim=-1, [..., 0::2], features.shape[:-1]",
        code="fixed_axis",
    )


# --------------------------------------------------------------------------------------------
# basis_alignment: an error whose failing line holds W reduced over another axis than the neurons
# --------------------------------------------------------------------------------------------
_AXES = ("the instances (dim 0)", "the neurons (dim 1)", "the features (dim 2)")
_REDUCTIONS = {
    "norm": lambda W, d: W.norm(dim=d),
    "max |W|": lambda W, d: W.abs().amax(d),
    "sum": lambda W, d: W.sum(d),
    "mean": lambda W, d: W.mean(d),
    "std": lambda W, d: W.std(d),
}


def alignment_call(impl: Callable, W: Tensor) -> object:
    """impl(W); when it raises, look at the tensors named on the learner's failing line: one that is W reduced over
    another axis than the neurons (W.norm(dim=0), a max over the features, ...) names the mistake. Otherwise the
    error goes on to the generic description (its sizes and the line's shapes)."""
    try:
        return impl(W)
    except RuntimeError as err:
        frame, line, names = failing_line(err)
        if frame is None:
            raise
        _like_of_wrong_tensor(err, frame, line, W)
        for name in names:
            value = frame.f_locals.get(name)
            if not isinstance(value, Tensor) or value.ndim != 2 or value.is_complex():
                continue
            for what, reduce in _REDUCTIONS.items():
                for d in (0, 2):
                    want = reduce(W, d)
                    if want.shape == value.shape and torch.allclose(value.detach().to(want.dtype), want, rtol=1e-4):
                        fail(
                            f"basis_alignment(W) raised {type(err).__name__}: {str(err).splitlines()[0]}; on that "
                            f"line, `{name}` {list(value.shape)} is W's {what} over {_AXES[d]}",
                            f"reduce over the neurons only, dim 1 of W [inst, neurons, feats]: max_k |W_ki| and ‖Wᵢ‖ "
                            f"are both [inst, feats]; yours, over {_AXES[d]}, has shape {list(value.shape)}",
                            code="reduced_wrong_axis",
                        )
        raise


# --------------------------------------------------------------------------------------------
# basis_alignment: the per-instance results joined along an existing axis; the all-zero columns
# --------------------------------------------------------------------------------------------
def merged_axes_hint(got: object, expected: Tensor, name: str, dims: str) -> None:
    """Fail when `got` holds the right values in the right order but two adjacent expected axes are one axis of
    their product's size: what torch.cat of per-slice results gives where torch.stack was needed (or a flatten)."""
    if not isinstance(got, Tensor) or got.shape == expected.shape or got.numel() != expected.numel():
        return
    names, shape = dims.split(), tuple(expected.shape)
    for a in range(len(shape) - 1):
        merged = (*shape[:a], shape[a] * shape[a + 1], *shape[a + 2 :])
        if tuple(got.shape) != merged:
            continue
        flat = got.detach().reshape(shape).to(expected.device, expected.dtype)
        if not torch.allclose(flat, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
            return
        want = ", ".join(f"{n}={s}" for n, s in zip(names, shape, strict=False))
        fail(
            f"{name} has shape {tuple(got.shape)}, expected ({want}); its values, in order, are the right ones with "
            f"[{names[a]} {names[a + 1]}] joined into one axis of {shape[a]}·{shape[a + 1]} = {merged[a]}",
            f"the per-{names[a]} results were concatenated (torch.cat extends an existing axis) where a stack was "
            f"needed (torch.stack adds the new {names[a]} axis), or a flatten/reshape merged the two axes",
            code="concatenated",
        )


def zero_column_hint(got: Tensor, expected: Tensor, W: Tensor) -> None:
    """Fail when the alignment is wrong exactly at the features whose column Wᵢ is all zero (several, in
    different instances) and right everywhere else: the zero-column rule, whatever value was put there."""
    zero = W.norm(dim=1) == 0
    g, e = got.detach().to(expected.dtype), expected.detach()
    wrong = ~torch.isclose(g, e, rtol=1e-4, atol=1e-5)
    if not bool(zero.any()) or not torch.equal(wrong, zero):
        return
    values = g[zero].unique()
    where = ", ".join(f"instance {i} feature {f}" for i, f in zero.nonzero().tolist())
    said = (
        f"{float(values[0]):.5g}" if values.numel() == 1 else "values " + ", ".join(f"{v:.4g}" for v in values.tolist())
    )
    d = W.shape[1]
    if values.numel() == 1 and math.isclose(float(values[0]), d**-0.5, rel_tol=1e-4):
        said += f" = 1/√d (d = {d})"
    fail(
        f"basis_alignment(W) is {said} for every feature whose column Wᵢ is all zero ({where}), expected 0; "
        "every other value is right",
        "a feature with Wᵢ = 0 has no direction, so its alignment must be 0 (not a fill value): "
        "torch.where(norm > 0, max|W_ki| / norm, 0.0)",
        code="zero_norm",
    )


# --------------------------------------------------------------------------------------------
# cross_entropy_loss: each labelled example alone (a behavioural probe)
# --------------------------------------------------------------------------------------------
@contextmanager
def examples_alone(
    loss_of: Callable, solution: Callable, args: tuple[Tensor, Tensor, Tensor], got: Tensor, want: Tensor
) -> Iterator[None]:
    """Around the per-instance comparison (`got`/`want` [inst]: each instance's loss alone, the learner's and the
    solution's): when it fails with no diagnosis (code `values`), run the learner's loss on single labelled
    examples of instance 0 (batch 1, one instance). If every one is right, the per-example term is right and the
    error is in how the examples are combined: say that, with the usual causes, rather than the formula hint."""
    try:
        yield
    except CheckFailed as err:
        if err.code != "values":
            raise
        close = lambda a, b: bool(torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5))
        logits, labels, importance = (t.detach() for t in args)
        rows = (labels[:, 0] >= 0).nonzero()[:, 0][:4].tolist()
        one = lambda b: (logits[b : b + 1, :1].clone(), labels[b : b + 1, :1].clone(), importance[:1].clone())
        if len(rows) < 2 or close(got[0], want[0]):
            raise
        if not all(close(loss_of(*one(b)).detach(), solution(*one(b)).detach()) for b in rows):
            raise
        fail(
            f"the loss of instance 0 alone is {got[0].item():.6g}, expected {want[0].item():.6g}, yet each of its "
            f"labelled examples alone (a batch of 1) gets the right loss: the examples interact",
            "the per-example term is right; what goes wrong is how the examples are combined: a softmax or logsumexp "
            "over the batch axis as well as the classes, a sum where the mean over labelled examples was asked, a "
            "mean over the wrong examples (the unlabelled ones included), or a per-example term that broadcast to "
            "[batch, ..., batch]: indexing with the label tensor (log_probs[..., labels] pairs every example with "
            "every label: use gather(-1, labels[..., None]) or take_along_dim), or a bare .squeeze() that also "
            "dropped a size-1 axis (use squeeze(-1) or [..., 0])?",
            code="examples_interact",
        )


# --------------------------------------------------------------------------------------------
# compute_target("argmax"): rows whose present values are all negative still have a label
# --------------------------------------------------------------------------------------------
def argmax_negative_rows(impl: Callable, device: torch.device) -> None:
    """Rows (batch 9, 4 instances, 7 features) whose present values are all negative, next to absent ones: a
    feature is present, so the label is not NO_LABEL = -1, though max over the features is 0 (an absent one). Which
    index is "largest" there (an absent 0, or the largest present value) is accepted either way; NO_LABEL on such a
    row, or an index that is largest under neither reading, fails. The all-zero rows keep NO_LABEL."""
    gen = torch.Generator().manual_seed(29)
    shape = (9, 4, 7)
    values = -torch.empty(shape).uniform_(0.1, 1.5, generator=gen)
    present = torch.rand(shape, generator=gen) < 0.5
    present[..., 0], present[..., 1] = True, False  # every row has a present feature and an absent one
    x = torch.where(present, values, 0.0)
    x[0, 1] = 0.0  # one all-zero row: NO_LABEL
    x = x.to(device)
    saved = x.clone()
    what = "compute_target(features [9, 4, 7], 'argmax') on rows whose present values are all negative"
    got = impl(x, "argmax")
    if not torch.equal(x, saved):
        fail(f"{what} changed its input in place", "compute the target without writing into `features`", "in_place")
    if not isinstance(got, Tensor) or tuple(got.shape) != (9, 4):
        fail(f"{what} returned {type(got).__name__} {tuple(getattr(got, 'shape', ()))}, expected shape (9, 4)")
    got = got.to(x.device).long()
    has = (x != 0).any(-1)
    if bool((got[has] == -1).any()):
        n = int((got[has] == -1).sum())
        fail(
            f"{what}: {n} row(s) with a present feature got NO_LABEL = -1",
            "a row with only negative present values has max 0: test presence with != 0 / any, not max == 0 "
            "(NO_LABEL only where no feature is non-zero: (features != 0).any(-1))",
            code="argmax_negative_present",
        )
    if not bool((got[~has] == -1).all()):
        fail(f"{what}: an all-zero row did not get NO_LABEL = -1", "argmax of an all-zero row is 0: mark it -1")
    idx = got[has].clamp(0, 6)
    rows, picked = x[has], x[has].gather(-1, idx[:, None])[:, 0]
    present_max = rows.masked_fill(rows == 0, float("-inf")).amax(-1)
    ok = (got[has] >= 0) & (got[has] < 7) & ((picked == rows.amax(-1)) | ((picked == present_max) & (picked != 0)))
    if not bool(ok.all()):
        fail(
            f"{what}: {int((~ok).sum())} row(s) got an index that is not the largest feature",
            "the label is the index of the largest feature (argmax over the last axis)",
            code="argmax",
        )


# --------------------------------------------------------------------------------------------
# cross_entropy_loss: each instance alone right, all of them together wrong
# --------------------------------------------------------------------------------------------
def instances_combined_failure(value: Callable, solution: Callable, args: tuple, got: Tensor, want: Tensor) -> None:
    """Fail for a loss whose one-instance slices are right but whose total over the instances is not. Two kinds of
    slip do that: how the instances' terms are combined (examples pooled, a mean over instances), and where the
    importances are read (a reshape or transpose of importance [inst, classes], which a one-instance slice hides).
    A probe tells them apart: the learner's loss with every importance 1, where no lookup can go wrong."""
    logits, labels, importance = (t.detach() for t in args)
    n = logits.shape[1]
    batch, _, classes = logits.shape
    # F.cross_entropy wants the classes on axis 1: logits.reshape(B, C, I) moves the numbers, not the axes, so each
    # example's class scores are mixed with other instances' (a one-instance slice, where I = 1, hides it).
    mixed = logits.reshape(batch, classes, n).transpose(1, 2)
    if torch.allclose(got.detach().double(), solution(mixed, labels, importance).double(), rtol=1e-4, atol=1e-5):
        fail(
            f"each instance alone gets the right loss, but with {n} instances together the loss is "
            f"{got.item():.6g}, not {want.item():.6g}: it equals the loss of logits.reshape({batch}, {classes}, {n}) "
            "read as [batch, classes, inst], so the class and instance axes are mixed",
            "a reshape/view keeps the memory order and does not swap axes: to put the classes on axis 1 for "
            "F.cross_entropy use logits.permute(0, 2, 1) (or .movedim(-1, 1) / .transpose(1, 2))",
            code="reshape_not_permute",
        )
    ones = torch.ones_like(importance)
    uniform = value(logits, labels, ones)
    if torch.allclose(uniform.double(), solution(logits, labels, ones).double(), rtol=1e-4, atol=1e-5):
        fail(
            f"each instance alone gets the right loss, and with every importance set to 1 the {n} instances together "
            f"do too; with the checker's importances they give {got.item():.6g}, not {want.item():.6g}: the "
            "importances are read at the wrong entries when several instances are together",
            "importance is [inst, classes]: weight example b of instance k by importance[k, labels[b, k]]. Possible "
            "causes: importance reshaped or transposed to [classes, inst] (a reshape is not a transpose), indexed "
            "[label, inst], or one instance's row used for all (a one-instance slice hides each of these)",
            code="importance_lookup",
        )
    fail(
        f"each instance alone gets the right loss, but with {n} instances together the loss is {got.item():.6g}, not "
        f"the sum of their losses {want.item():.6g} (with every importance 1 it is wrong too)",
        "L = Σ_k L_k: compute each instance's mean over its own labelled examples, then sum over instances "
        "(no pooling of examples across instances, no mean over instances). Possible causes: examples pooled "
        "across instances, a mean over instances, or a reshape/view where a permute/movedim belongs (the class and "
        "instance axes mixed)",
        code="instances_combined",
    )


def one_instance_only(total_right: bool, got: Tensor, want: Tensor) -> None:
    """The loss with all instances is right, yet an instance alone (a [batch, 1, classes] slice) is wrong: the code
    depends on the instance axis having size > 1, most often a bare .squeeze() that drops it when it is 1."""
    if not total_right or bool(torch.allclose(got.detach().to(want.dtype), want.detach(), rtol=1e-4, atol=1e-5)):
        return
    fail(
        f"with all {len(want)} instances the loss is right, but each instance alone (logits [batch, 1, classes]) gets "
        f"{[round(v, 4) for v in got.tolist()]}, expected {[round(v, 4) for v in want.tolist()]}",
        "something breaks when an axis has size 1: a bare .squeeze() (after gather, say) also drops the instance "
        "axis when n_inst = 1, and the [batch] term then broadcasts against a [batch, 1] mask. Squeeze only the axis "
        "you mean (.squeeze(-1) or [..., 0])",
        code="size_one_squeeze",
    )


def whole_number_losses(got: Tensor, want: Tensor) -> None:
    """Every loss the learner returned is a whole number where the right ones are not: something rounded or
    divided as integers. Said as observed, with the usual causes (no single one asserted)."""
    g, w = got.detach().double(), want.detach().double()
    if bool(torch.allclose(g, w, rtol=1e-4, atol=1e-5)) or not bool((g == g.round()).all()):
        return
    if bool((w == w.round()).all()):
        return
    shown = ", ".join(f"{v:g}" for v in g.flatten().tolist()[:4])
    fail(
        f"the loss of each instance alone is a whole number ({shown}), expected {', '.join(f'{v:.6g}' for v in w)}",
        "a whole number where the right value has a fraction: integer (floor) division `//` (use `/`), a count "
        "or a sum kept as an integer tensor and divided with rounding_mode, or a .round() / int() / .long() "
        "conversion on the way",
        code="whole_number",
    )


def label_smoothing_failure(logits: Tensor, labels: Tensor, importance: Tensor, got: Tensor, want: Tensor) -> None:
    """Each instance's loss is (1 − ε)·(the right loss) + ε·(the same weighted mean of −log p averaged over all the
    classes), with one ε in (0, 1) for every instance: label smoothing (F.cross_entropy(..., label_smoothing=ε)).
    ε is read back from the learner's numbers; nothing is named unless every instance gives the same ε."""
    g, w = got.detach().double(), want.detach().double()
    if bool(torch.allclose(g, w, rtol=1e-4, atol=1e-5)):
        return
    logits, importance = logits.detach().double(), importance.detach().double()
    valid = labels != -1
    index = labels.clamp(min=0)[..., None]
    weight = importance.expand_as(logits).gather(-1, index)[..., 0]
    spread = -logits.log_softmax(-1).mean(-1)
    u = torch.where(valid, weight * spread, 0.0).sum(0) / valid.sum(0).clamp(min=1)
    gap = u - w
    if bool((gap.abs() < 1e-3).any()):
        return
    eps = (g - w) / gap
    e = float(eps.mean())
    if not 0 < e < 1 or not torch.allclose(g, (1 - e) * w + e * u, rtol=1e-4, atol=1e-5):
        return
    fail(
        f"each instance's loss is (1 − {e:.3g})·(the right loss) + {e:.3g}·(the mean of −log p over all classes): "
        f"label smoothing with ε ≈ {e:.3g} (first instance: got {g[0]:.6g}, expected {w[0]:.6g})",
        "the loss is the plain cross-entropy at the label: no label_smoothing (drop label_smoothing= from "
        "F.cross_entropy, or don't mix in the other classes' log-probabilities)",
        code="label_smoothing",
    )


def power_law_seen(values: Tensor, low: float, high: float) -> str:
    """Magnitudes drawn as rand()**k (k ≠ 1) instead of rand(): said when the first two moments of the scaled
    magnitudes t agree with E[t] = 1/(k+1) and E[t²] = 1/(2k+1) for one k. For U[0, h] and U[-h, h] t is |x| / h;
    for U[low, high] with 0 < low, low + (high - low)·rand()**k, t is (x - low) / (high - low)."""
    if low == 0:
        t = values.detach().double() / high
    elif low == -high:
        t = values.detach().double().abs() / high
    elif 0 < low < high:
        t = (values.detach().double() - low) / (high - low)
    else:
        return ""
    m1, m2 = float(t.mean()), float((t**2).mean())
    if not 0 < m1 < 1:
        return ""
    k = 1 / m1 - 1
    # The mean square of n draws has standard deviation below 1/(2 sqrt n) (t in [0, 1]); 5 of them as tolerance.
    if abs(k - 1) < 0.25 or abs(m2 - 1 / (2 * k + 1)) > 2.5 / len(t) ** 0.5:
        return ""
    sign = "± " if low == -high else ""
    where = "piled toward 0" if k > 1 else "pushed toward the ends"
    if low > 0:
        where = f"piled toward {low:g}" if k > 1 else f"pushed toward {high:g}"
        return f"your values look like {low:g} + {high - low:g} · rand()**{k:.2g} ({where}), not a plain rand(); "
    return f"your values' magnitudes look like {sign}rand()**{k:.2g} ({where}), not rand(); "


def float64_probability(impl, p: Tensor, batch: int) -> None:
    """generate_features with float64 probabilities (the contract allows any float p; it returns float32 always)."""
    out = impl(p.detach().double().clone(), batch, "uniform")
    if isinstance(out, Tensor) and out.dtype == torch.float64:
        fail(
            f"generate_features(p.double(), {batch}, 'uniform') has dtype torch.float64 (float32 with float32 p)",
            "return float32 whatever feature_probability's dtype: the output followed p's dtype, e.g. values drawn "
            "with dtype=p.dtype, torch.rand_like on p, or arithmetic with p before the draw",
            code="dtype_follows_p",
        )


# --------------------------------------------------------------------------------------------
# generate_features: the sign of a signed distribution; compute_target: the axes' counts named
# --------------------------------------------------------------------------------------------
def value_mean_failure(message: str, batch: Tensor, present: Tensor, low: float, high: float, draw: str) -> None:
    """The mean of the present values is off: say what the values look like and, for a signed distribution, whether
    some feature's present values all have one sign (observed: with an independent fair sign, n >= 40 present values
    of one sign have probability 2 · 2^-40 < 1e-11 per feature)."""
    looks = name_distribution(batch[present], continuous=True)
    seen = f"your values look like {looks[0]} ({looks[1]}); " if looks else ""
    seen = power_law_seen(batch[present], low, high) or seen
    if low < 0 < high:
        n, neg = present.sum(0), (present & (batch < 0)).sum(0)
        one_sign = (n >= 40) & ((neg == 0) | (neg == n))
        if bool(one_sign.any()):
            k, i = (int(v) for v in one_sign.nonzero()[0])
            sign = "negative" if int(neg[k, i]) else "positive"
            seen = (
                f"every present value of instance {k}, feature {i} ({int(n[k, i])} of them) is {sign}, and "
                f"{int(one_sign.sum())} of {one_sign.numel()} features have a single sign: the sign is not drawn "
                "independently of presence (e.g. the presence draw u < p reused as u < 0.5 for the sign, or a sign "
                f"drawn once per feature); {seen}"
            )
    fail(message, f"{seen}present values should be U[{low:g}, {high:g}]: {draw}", code="value_mean")


def noted_axes(features: Tensor) -> Tensor:
    """`features` [... inst feats], with its instance and feature counts noted so a size in an error names its axis."""
    note_inputs(n_instances=features.shape[-2], n_features=features.shape[-1])
    return features


def _like_of_wrong_tensor(err: BaseException, frame: object, line: str, W: Tensor) -> None:
    """A size error on a line with `torch.zeros_like(X)` (ones_/full_/empty_like) where X has W's shape [inst neurons
    feats] and another tensor on the line has the output's shape [inst feats]: the filler has the wrong shape."""
    if "must match the size" not in str(err):
        return
    for fn, name in re.findall(r"\b(zeros_like|ones_like|full_like|empty_like)\(\s*([A-Za-z_]\w*)", line):
        value = frame.f_locals.get(name)
        if not isinstance(value, Tensor) or tuple(value.shape) != tuple(W.shape):
            continue
        out = (W.shape[0], W.shape[2])
        others = [n for n in re.findall(r"\b[A-Za-z_]\w*\b", line) if n != name]
        if any(isinstance(v := frame.f_locals.get(n), Tensor) and tuple(v.shape) == out for n in others):
            fail(
                f"basis_alignment(W) raised {type(err).__name__}: {str(err).splitlines()[0]}; on that line, "
                f"torch.{fn}({name}) has {name}'s shape {list(value.shape)} [inst neurons feats], where the ratio's "
                f"(and the norm's) shape {list(out)} [inst feats] belongs",
                f"the value for the zero columns must have the output's shape [inst feats]: a scalar 0.0 "
                f"(torch.where(norm > 0, ratio, 0.0)) or torch.{fn} of the norm, not of {name}",
                code="like_wrong_tensor",
            )
