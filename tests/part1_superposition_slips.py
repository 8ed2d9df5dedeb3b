"""Named slips of part 1's checks (shared with part 2) that the catalogues and generic diagnoses left unnamed.

* Presence rates on a grid: `torch.randint(0, 100, s) / 100 < p` (or a uniform rounded to 2 decimals) takes only
  100 values, so every rate is p rounded up to a multiple of 1/100. The checks' probabilities are off that grid
  (0.0103, 0.0207, ...), where the rounding moves a small rate by far more than its tolerance.
* Rates borrowed from another feature: feature j present at the rates of feature k (a step slice repeated, an
  index that picks the wrong column), not a permutation (that one is `feature_order`).
* The combined batch's rate tables for the usual slicing mistakes, the correlated and anticorrelated slices passed
  to each other's generators among them.
* A flat result of boolean-mask indexing, `values[present]`: a 1-d tensor of the present entries only.
* A generator's sizes unpacked from p.shape in the wrong order (`n_pairs, n_inst = p.shape`): the learner's own
  variables, read from its failing frame, hold each other's sizes.
* Part 2's signed values all negative: a sign drawn with torch.randint(-1, 1) is -1 or 0.
* Losses with the square left out or misplaced (`target - out ** 2`), and a batch or feature count minus one
  (B - 1, the unbiased-variance habit).
"""

from __future__ import annotations

import linecache

import torch
from torch import Tensor

from tests.checking import fail
from tests.learner_errors import failing_line
from tests.part1_superposition_probes import consistent

RateCandidate = tuple[str, str, Tensor]


def swapped_sizes_failure(err: BaseException, sizes: dict[str, int], method: str) -> None:
    """`err` was raised by the learner's generator, in whose innermost frame an int variable whose name says which
    axis it counts (`n_inst`, `n_pairs`: the first 4 letters of a key of `sizes`) holds another axis's size."""
    frame = failing_line(err)[0]
    if frame is None or len(set(sizes.values())) < len(sizes):
        return
    wrong = [
        (name, value, key, other)
        for name, value in frame.f_locals.items()
        if type(value) is int
        for key, size in sizes.items()
        if key[:4] in name.lower() and value != size
        for other, other_size in sizes.items()
        if other != key and value == other_size
    ]
    if not wrong:
        return
    said = "; ".join(
        f"your `{n}` is {v}, but p's {k} axis has size {sizes[k]} ({v} is the size of its {o} axis)"
        for n, v, k, o in wrong
    )
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    fail(
        f"{method}(n, p) raised {type(err).__name__}: {err}\n  on the line `{line}`\n{said}",
        f"p is [{', '.join(sizes)}] = {list(sizes.values())}: its sizes were unpacked in the wrong order? "
        f"{', '.join(f'n_{k}' for k in sizes)} = p.shape",
        code="sizes_swapped",
    )


# --------------------------------------------------------------------------------------------
# Presence rates
# --------------------------------------------------------------------------------------------
def grid_rate_candidates(p: Tensor, n: int = 20_000) -> list[RateCandidate]:
    """Rate tables of a presence draw that takes only k values (k = 10 or 100): `randint(0, k) / k < p` is present
    at ceil(k p) / k; a uniform rounded to 1/k, `rand().round(decimals=2) < p`, at (ceil(k p) - 1/2) / k.

    Where the grid moves only the smallest p beyond what n draws tell apart, a floor on p (p.clamp(min=…)) gives the
    same rates: the hint then names both."""
    p = p.double().cpu()
    found = []
    for k in (100, 10):
        for table, how in (
            ((p * k).ceil() / k, f"torch.randint(0, {k}, ...) / {k}"),
            (((p * k).ceil() - 0.5) / k, f"a uniform rounded to {len(str(k)) - 1} decimals"),
        ):
            low = float(table.flatten()[int(p.argmin())])
            floor = (
                f"; or p is clamped from below (p.clamp(min={low:.3g})) before the draw, which gives these rates too: "
                "compare with p as it is"
                if consistent(table.clamp(0, 1), p.clamp(min=low), n)
                else ""
            )
            found.append(
                (
                    "presence_grid",
                    f"every rate is p moved onto a grid of 1/{k} (e.g. p = {float(p.min()):.4f} gives "
                    f"{low:.4f}): the uniform compared with p takes only {k} "
                    f"values ({how}?); compare a continuous uniform with p, torch.rand(...) < p" + floor,
                    table.clamp(0, 1),
                )
            )
    return found


def permutation(observed: Tensor, p: Tensor, n: int, dim: int) -> list[int] | None:
    """For each slice of `observed` along `dim`, the slice of p it is consistent with, when that is a permutation."""
    mapping = []
    for i in range(observed.shape[dim]):
        obs = observed.select(dim, i)
        match = [j for j in range(p.shape[dim]) if consistent(obs, p.select(dim, j), n)]
        if len(match) != 1:
            return None
        mapping.append(match[0])
    return mapping if sorted(mapping) == list(range(len(mapping))) and mapping != list(range(len(mapping))) else None


def borrowed_rates(observed: Tensor, p: Tensor, n: int, unit: str) -> tuple[str, str] | None:
    """(code, hint) when every slice of `observed` along one axis has the rates of exactly one slice of p, some of
    them another slice's (feature 2j + 1 at the rates of feature 2j: a step slice repeated, a shifted index)."""
    observed, p = observed.double().cpu(), p.double().cpu()
    for dim, name in ((1, unit), (0, "inst")):
        mapping = []
        for i in range(observed.shape[dim]):
            match = [j for j in range(p.shape[dim]) if consistent(observed.select(dim, i), p.select(dim, j), n)]
            if len(match) != 1:
                break
            mapping.append(match[0])
        if len(mapping) != observed.shape[dim] or mapping == list(range(len(mapping))):
            continue
        moved = [f"{name} {i} at those of {name} {j}" for i, j in enumerate(mapping) if i != j]
        return f"{'instance' if dim == 0 else unit}_rates_borrowed", (
            f"every {name} is present at the rates of one {name} of p, but not always its own: "
            f"{'; '.join(moved)}. Each {name} must use its own probability p[inst, {unit}]: look for an index or "
            "slice of p that picks another column (a step slice such as p[:, ::2] repeated or repeat_interleaved, "
            "an offset, a slice copied from the pair generators)"
        )
    return None


def _block_rates(p: Tensor, corr: slice | list, anti: slice | list, unc: slice | list) -> Tensor:
    """Per-feature presence rates of a batch whose blocks got p[:, corr], p[:, anti] (one per pair) and p[:, unc]."""
    anti_rates = p[:, anti].clamp(max=0.5)  # 2p > 1 makes the pair always active: each feature on half the time
    return torch.cat([p[:, corr].repeat_interleave(2, 1), anti_rates.repeat_interleave(2, 1), p[:, unc]], dim=1)


def buffer_rate_candidates(other: Tensor, name: str, nc: int, na: int) -> list[RateCandidate]:
    """The rates of a combined batch whose blocks slice another [inst, feats] buffer (`name`) the right way."""
    s_anti, s_unc = 2 * nc, 2 * (nc + na)
    table = _block_rates(other.clamp(0, 1), slice(0, s_anti, 2), slice(s_anti, s_unc, 2), slice(s_unc, None))
    hint = (
        f"the presence rates follow {name}, not self.feature_probability: the blocks slice the wrong buffer "
        "(the slices themselves fit); slice self.feature_probability"
    )
    return [("wrong_buffer", hint, table)]


def combined_rate_candidates(p: Tensor, nc: int, na: int) -> tuple[Tensor, list[RateCandidate]]:
    """The right per-feature rates of the combined batch, and those of the usual slicing mistakes."""
    s_anti, s_unc, n_unc = 2 * nc, 2 * (nc + na), p.shape[1] - 2 * (nc + na)
    corr, anti, unc = slice(0, s_anti, 2), slice(s_anti, s_unc, 2), slice(s_unc, None)
    right = _block_rates(p, corr, anti, unc)
    no_step = (
        "pair j of a block uses the probability of the block's feature 2j: slice with a step of 2 (p[:, start:stop:2])"
    )
    unc_hint = (
        "the uncorrelated block uses the probabilities of the last n_uncorrelated features, "
        "p[:, 2 * (n_corr + n_anti):]"
    )
    mistakes = [
        ("no_step", no_step, _block_rates(p, slice(0, nc), slice(nc, nc + na), unc)),
        ("no_step", no_step, _block_rates(p, slice(0, nc), anti, unc)),
        ("no_step", no_step, _block_rates(p, corr, slice(s_anti, s_anti + na), unc)),
        (
            "second_member",
            "each pair uses the probability of its *first* feature: start the step-2 slices at the block's start, "
            "not one after",
            _block_rates(p, slice(1, s_anti, 2), slice(s_anti + 1, s_unc, 2), unc),
        ),
        (
            "anticorrelated_offset",
            "the anticorrelated block starts at feature 2 * n_correlated_pairs, not n_correlated_pairs",
            _block_rates(p, corr, slice(nc, nc + 2 * na, 2), unc),
        ),
        ("uncorrelated_slice", unc_hint, _block_rates(p, corr, anti, slice(0, n_unc))),
        ("uncorrelated_slice", unc_hint, _block_rates(p, corr, anti, slice(nc + na, nc + na + n_unc))),
        (
            "anticorrelated_doubled",
            "the anticorrelated block has twice its rates: its generator doubles p itself (a pair is active with "
            "2p, each feature then on with p), so pass it p[:, 2 * n_corr : 2 * (n_corr + n_anti) : 2] as it is, "
            "not 2 * p",
            torch.cat([right[:, :s_anti], (2 * right[:, s_anti:s_unc]).clamp(max=0.5), right[:, s_unc:]], 1),
        ),
    ]
    if nc == na:  # the two pair slices fit either generator
        mistakes.append(
            (
                "pair_slices_swapped",
                "the correlated pairs have the anticorrelated pairs' probabilities and the reverse: the two pair "
                "slices are passed to each other's generators; generate_correlated_features gets "
                "p[:, 0 : 2 * n_corr : 2], generate_anticorrelated_features p[:, 2 * n_corr : 2 * (n_corr + n_anti) "
                ": 2]",
                _block_rates(p, anti, corr, unc),
            )
        )
    return right, mistakes


# --------------------------------------------------------------------------------------------
# Output shapes
# --------------------------------------------------------------------------------------------
def no_batch_axis_failure(out: object, shape: tuple[int, ...], what: str) -> None:
    """The result has the expected shape less its first (batch) axis, and the batch size is none of the other sizes:
    the random tensors were drawn with the shape (inst, feats), one example's worth. Exact zeros among the values
    (absent features) say it is a draw, not an average over the batch (which is 0 only where p = 0)."""
    if not isinstance(out, Tensor) or len(shape) < 2 or tuple(out.shape) != tuple(shape[1:]) or shape[0] in shape[1:]:
        return
    zeros = out.device.type != "meta" and bool((out.detach() == 0).any())
    fail(
        f"{what} has shape {tuple(out.shape)}: the expected shape {shape} without its batch axis (of {shape[0]})"
        + (", with some values exactly 0 (absent features, as in one draw)" if zeros else ""),
        f"the tensor was drawn without the batch axis: put batch_size first in the shape of every random draw, "
        f"torch.rand(batch_size, n_inst, n_features) (rand_like(p) or rand(p.shape) gives p's shape, {shape[1:]})"
        + ("" if zeros else "; or the batch axis was reduced away (.sum(0), .mean(0)) or indexed ([0])"),
        code="no_batch_axis",
    )


def flat_masked_failure(out: object, shape: tuple[int, ...], what: str) -> None:
    """A 1-d result shorter than the whole batch: boolean-mask indexing (values[present]) keeps the selected entries
    only, flattened."""
    no_batch_axis_failure(out, shape, what)
    full = 1
    for s in shape:
        full *= s
    if not isinstance(out, Tensor) or out.ndim != 1 or len(shape) < 2 or not 0 < out.shape[0] < full:
        return
    nonzero = bool((out.detach() != 0).all()) if out.device.type != "meta" else False
    fail(
        f"{what} has shape {tuple(out.shape)}, a flat tensor of {out.shape[0]} values, expected {shape} "
        f"({full} values)" + (", none of them 0" if nonzero else ""),
        "a 1-d result shorter than the batch is what boolean-mask indexing gives: values[present] keeps only the "
        "entries where the mask is True, flattened. Keep every entry, and zero the absent ones: "
        "torch.where(present, values, 0) or values * present",
        code="boolean_mask_flat",
    )


def negative_values_failure(batch: Tensor, p: Tensor, what: str) -> None:
    """Part 2's signed values: every present value negative. With the rates at p / 2 as well, the sign draw gives
    -1 or 0 (torch.randint(-1, 1): the upper bound is excluded), which zeroes half the present entries."""
    values = batch[batch != 0]
    if values.numel() < 100 or not bool((values < 0).all()):
        return
    half = consistent((batch != 0).double().mean(0), p.double() / 2, batch.shape[0])
    fail(
        f"{what}: all {values.numel()} nonzero values are negative (in [{float(values.min()):.3g}, "
        f"{float(values.max()):.3g}])" + (", and every feature is present at about half its rate p" if half else ""),
        "present values are U[-1, 1], both signs. "
        + (
            "A sign drawn as torch.randint(-1, 1) is -1 or 0 (the upper bound is excluded): it zeroes half the "
            "present entries and makes the rest negative; draw the sign with torch.randint(0, 2) * 2 - 1, or the "
            "value as 2 * torch.rand(...) - 1"
            if half
            else "Something makes every value negative: a sign that is always -1, a value drawn as -rand, or a "
            "misplaced parenthesis (2 * (rand - 1) spans [-2, 0]; 2 * rand - 1 spans [-1, 1])?"
        ),
        code="values_all_negative",
    )


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def loss_slip_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[RateCandidate]:
    """The importance-weighted loss with its square left out or misplaced, and with a count minus one."""
    B, _, n_feats = out.shape
    loss = lambda err: (imp * err).mean(dim=(0, 2)).sum()
    right = loss((target - out) ** 2)
    unsquared = (
        "the error is not squared: your loss is the mean of importance · (target - out), a signed error that can be "
        "negative (positive and negative errors cancel); square it, importance · (target - out) ** 2"
    )
    precedence = (
        "** binds tighter than -: `target - out ** 2` squares only one side (a missing pair of parentheses); square "
        "the difference, (target - out) ** 2"
    )
    mutants = [
        ("loss_not_squared", unsquared, loss(target - out)),
        ("loss_not_squared", unsquared, loss(out - target)),
        ("square_precedence", precedence, loss(target - out**2)),
        ("square_precedence", precedence, loss(out - target**2)),
        ("square_precedence", precedence, loss(target**2 - out)),
        ("square_precedence", precedence, loss(out**2 - target)),
    ]
    # (I · target - out)² is loss_mutants' importance_on_target; its mirror on the output side:
    on_output = (
        "your loss is the mean of (target - importance · out)²: the importance multiplies the output inside the "
        "difference instead of weighting the squared error; weight it outside the square, importance · (target - out) "
        "** 2"
    )
    mutants.append(("importance_on_output", on_output, ((target - imp * out) ** 2).mean(dim=(0, 2)).sum()))
    for size, axis in ((B, "batch"), (n_feats, "feats")):
        if size > 2:
            mutants.append(
                (
                    "count_minus_one",
                    f"your loss is {size}/{size - 1} × the right one: the sum over `{axis}` is divided by {axis} "
                    f"size - 1 = {size - 1} (an unbiased, Bessel-style count as in torch.var), where the mean divides "
                    f"by {size}: average with .mean() over `{axis}`",
                    right * size / (size - 1),
                )
            )
    return mutants


def negative_loss_note(loss: Tensor) -> str:
    """A prefix for a loss that came out negative: no weighted sum of squares is."""
    value = float(loss.detach().double().cpu()) if loss.numel() == 1 and loss.device.type != "meta" else 0.0
    if not value < 0:
        return ""
    return (
        f"your loss is negative ({value:.4g}), which a weighted sum of squared errors never is: something is "
        "subtracted, or an error is left unsquared. "
    )
