"""Independence along the batch axis of a generator's present values, and its presence rates at small p.

Every example is an independent draw, so in each (inst, feature) cell the present values, read in batch order, are
i.i.d. U[0, 1] (given which examples are present: the values don't depend on presence). Two statistics follow:

* trend: the mean of (v - 1/2)(t - 1/2) over present entries, t = example index / (n - 1) in [0, 1]. Each term has
  mean 0, lies in [-1/4, 1/4] (range 1/2) and has variance (1/12)(t - 1/2)^2 given t; values sorted along the batch
  (`torch.rand(...).sort(0)`) give about 1/12;
* serial: over disjoint consecutive pairs (v_2k, v_2k+1) of a cell's present values, the mean of (a - 1/2)(b - 1/2):
  mean 0, range 1/2, variance (1/12)^2; a sort, a running max or values repeated along the batch make it positive.

Each is judged pooled over the cells and in every cell alone, with the Bernstein tolerance at DELTA (part 1's share
of FAILURE_PROBABILITY per statistic: 2 + 2 * cells statistics, well inside GEN_TESTS).

Presence is then drawn at a small p (1e-4 everywhere, where the checks' main tables put few draws): a presence uniform
drawn in low precision (torch.bfloat16 / float16) has coarse steps near 0 (it is 0 with probability ~2e-3 in
bfloat16), so `rand < p` holds far more often than p there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import bernstein_tolerance, fail
from tests.part1_superposition_batch_draws import lagged_neighbour_failure, presence_count_failure
from tests.part1_superposition_probes import DELTA, rate_tolerance

N_ORDER = 20_000  # examples for the order statistics
N_SMALL = 25_000  # examples at small p: every cell pooled, 300_000 draws for 3 instances and 4 features
P_SMALL = 1e-4  # every probability: bfloat16 draws are 0 at rate ~2e-3, float16 at ~2e-4 (tolerance ~1.5e-4)
MIN_CELL = 100  # present values in a cell before it is judged alone


def _cell_stats(batch: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per (inst, unit) cell of a [n inst units] batch: trend sum, its variance, serial sum, count of present values,
    count of disjoint consecutive pairs of them (each [inst units], float64)."""
    n = batch.shape[0]
    tc = (torch.arange(n, dtype=torch.float64) / max(n - 1, 1) - 0.5)[:, None, None]
    d = torch.where(present, batch - 0.5, 0.0)
    m = present.double().sum(0)
    trend, trend_var = (d * tc).sum(0), (present * tc**2).sum(0) / 12
    # pairs (2k, 2k + 1) of each cell's present values in batch order: a value of odd rank times the one before it
    rank = present.long().cumsum(0) - 1
    index = torch.arange(n)[:, None, None].expand_as(present)
    last = torch.where(present, index, -1).cummax(0).values  # the last present example at or before each one
    before = torch.cat([torch.full_like(last[:1], -1), last[:-1]])  # ... strictly before it
    previous = d.gather(0, before.clamp_min(0))
    serial = torch.where(present & (rank % 2 == 1), d * previous, 0.0).sum(0)
    return trend, trend_var, serial, m, torch.div(m, 2, rounding_mode="floor")


def _judge(total: float, var_sum: float, count: float) -> tuple[float, float]:
    """(mean, tolerance) of a sum of `count` independent terms of range 1/2 whose variances add to var_sum."""
    count = max(count, 1.0)
    return total / count, bernstein_tolerance(int(count), max(var_sum / count, 1e-12), 0.5, DELTA)


def value_order_over_batch_failure(batch: Tensor, what: str, unit: str = "feature") -> None:
    """Fails (values_ordered_over_batch / values_dependent_over_batch) when the present values of a [n inst units]
    batch trend along the batch axis, or consecutive present values of a cell are correlated."""
    batch = batch.detach().double().cpu()
    present = batch != 0
    trend, trend_var, serial, m, k = _cell_stats(batch, present)
    pooled = [float(trend.sum()), float(trend_var.sum()), float(serial.sum()), float(k.sum())]
    worst: dict[str, tuple[float, float, int, int, int]] = {}  # kind -> (excess, mean, i, j, m)
    for i, j in (m >= MIN_CELL).nonzero().tolist():
        for kind, (mean, tol) in (
            ("trend", _judge(float(trend[i, j]), float(trend_var[i, j]), float(m[i, j]))),
            ("serial", _judge(float(serial[i, j]), float(k[i, j]) / 144, float(k[i, j]))),
        ):
            if abs(mean) - tol > worst.get(kind, (0.0,))[0]:
                worst[kind] = (abs(mean) - tol, mean, i, j, int(m[i, j]))
    n_present = float(present.sum())
    for kind, (mean, tol) in (
        ("trend", _judge(pooled[0], pooled[1], n_present)),
        ("serial", _judge(pooled[2], pooled[3] / 144, pooled[3])),
    ):
        if abs(mean) > tol and kind not in worst:
            worst[kind] = (abs(mean) - tol, mean, -1, -1, int(n_present))
    if not worst:
        return
    kind = "trend" if "trend" in worst else "serial"
    _, mean, i, j, m = worst[kind]
    where = f"inst {i}, {unit} {j}" if i >= 0 else f"pooled over all cells ({m} present values)"
    if i < 0:
        i, j = divmod(int(present.sum(0).flatten().argmax()), present.shape[2])
    mask = present[:, i, j]
    values = batch[:, i, j][mask]
    q = max(values.numel() // 4, 1)
    quarters = f"the first quarter of its present values (in batch order) has mean {float(values[:q].mean()):.2f}, "
    quarters += f"the last quarter {float(values[-q:].mean()):.2f}"
    if kind == "trend":
        trend = "rise" if mean > 0 else "fall"
        fail(
            f"{what}: the present values {trend} along the batch axis ({where}: their covariance with the example's "
            f"position is {mean:+.4f}, independent examples give 0; inst {i}, {unit} {j}: {quarters}, U[0, 1]: 0.50 "
            "each)",
            "every example is its own independent draw, but later examples have "
            + ("larger" if mean > 0 else "smaller")
            + " values: the values are ordered along the batch axis (sorted over dim 0, e.g. torch.rand(...).sort(0)"
            " or torch.sort(..., dim=0), or a cumulative max/sum along the batch). Don't sort or reorder the values "
            "along the batch axis",
            code="values_ordered_over_batch",
        )
    fail(
        f"{what}: consecutive present values of one cell are correlated ({where}: the mean of (a - 1/2)(b - 1/2) over "
        f"neighbouring present values is {mean:+.4f}; independent examples give 0)",
        "every example is its own independent draw: a value follows from the previous example's (values sorted or "
        "reordered along the batch axis, repeated with repeat_interleave over dim 0, or a running mean/max over the "
        "batch). Draw the values with the batch axis, [batch, inst, ...], and leave their order alone",
        code="values_dependent_over_batch",
    )


def small_p_failure(draw: Callable[[int, Tensor], object], p_shape: tuple[int, int], what: str) -> None:
    """Draws `draw(N_SMALL, p)` with every probability of p [inst, units] P_SMALL and compares the presence rate,
    pooled over every entry, with P_SMALL (Bernstein at DELTA)."""
    out = _probe(draw, N_SMALL, torch.full(p_shape, P_SMALL))
    if not isinstance(out, Tensor) or out.ndim != 3 or out.shape[0] != N_SMALL or out.numel() == 0:
        return
    m = out.numel()
    rate = float((out.detach() != 0).sum()) / m
    tol = float(rate_tolerance(m, P_SMALL))
    if abs(rate - P_SMALL) <= tol:
        return
    fail(
        f"{what} with every probability p = {P_SMALL:g}: {rate:.3%} of {m} entries are present, expected "
        f"{P_SMALL:.3%} ± {tol:.3%}",
        (
            "at small p the rate is too high: the presence uniform has coarse steps near 0, as one drawn in low "
            "precision has (torch.rand(..., dtype=torch.bfloat16) is exactly 0 in about 0.2% of draws, float16 in "
            "about 0.02%), so rand < p holds more often than p. Draw the presence uniform in float32"
        )
        if rate > P_SMALL
        else "the presence rate is off at small p: draw presence as torch.rand(...) < p, in float32",
        code="small_p_rates",
    )


def batch_axis_failures(model: torch.nn.Module, method: str, p: Tensor, device: torch.device) -> None:
    """The learner's generator `method` on `model` (generate_batch: a fresh model of its class holding p as its
    feature_probability; a block generator: called with p [inst, pairs or features]): values independent along the
    batch axis (a fresh batch of N_ORDER examples at `p`), then presence rates right at small p."""
    if method == "generate_batch":
        draw = lambda n, q: type(model)(model.cfg, feature_probability=q.to(device), device=device).generate_batch(n)
        what = "generate_batch(n)"
    else:
        draw, what = lambda n, q: getattr(model, method)(n, q.to(device)), f"{method}(n, p)"
    batch = _probe(draw, N_ORDER, p)
    if isinstance(batch, Tensor) and batch.ndim == 3 and batch.shape[0] == N_ORDER:
        value_order_over_batch_failure(batch, f"{what} (a fresh batch)")
        lagged_neighbour_failure(batch, f"{what} (a fresh batch)")
        paired = method in ("generate_correlated_features", "generate_anticorrelated_features")
        presence_count_failure(batch, p, f"{what} (a fresh batch of {N_ORDER})", paired)
    small_p_failure(draw, tuple(p.shape), what)


def _probe(draw: Callable[[int, Tensor], object], n: int, p: Tensor) -> object:
    """`draw(n, p)`, or None when the learner's code fails on the probe (the main check has called it already and
    said what failed); a stub's NotImplementedError goes through."""
    try:
        return draw(n, p)
    except NotImplementedError:
        raise
    except Exception:
        return None
