"""NeuronComputationModel.generate_batch: readings of a value-law failure that split a present value v into its
sign and its magnitude |v|. A right draw (2 * rand - 1) gives every (inst, feat) cell a fair sign and |v| ~ U[0, 1]
independently of p. Two families break one half only:

- a biased sign coin: |v| is U[0, 1] in every cell but the share of negative values is not 1/2 (it follows p when
  the feature probability was reused for the coin, 1 - p when the comparison was flipped, one value in every cell
  when the coin has a fixed bias);
- the magnitude also decided presence: each cell's |v| fills [1 - p, 1] (|v| > 1 - p on v = 2 * rand - 1, or the
  presence uniform u > 1 - p reused as the magnitude); |v| in [0, p] is part 1's values_reuse_mask reading.

Both run only after check_independent_features has failed on the values, so a right batch never meets them.
"""

from __future__ import annotations

from torch import Tensor

from tests.checking import bernstein_tolerance, fail
from tests.part1_superposition_probes import DELTA, rate_tolerance

VALUE_CODES = ("values_depend_on_cell", "value_distribution")


def _cells(batch: Tensor, minimum: int) -> list[tuple[int, int, Tensor]]:
    present = batch != 0
    counts = present.sum(0)
    return [(a, c, batch[:, a, c][present[:, a, c]].double()) for a, c in (counts >= minimum).nonzero().tolist()]


def biased_sign_failure(batch: Tensor, p: Tensor, what: str) -> None:
    """Fail naming a sign coin that isn't fair, when every cell's magnitudes are U[0, 1]."""
    cells = _cells(batch, 100)
    if not cells:
        return
    p = p.double().cpu()
    shares, off = [], False
    for a, c, v in cells:
        n = v.numel()
        mag = v.abs()
        if abs(float(mag.mean()) - 0.5) > bernstein_tolerance(n, 1 / 12, 1.0, DELTA):
            return  # the magnitudes are off too: not (only) the sign
        q = float((v < 0).double().mean())
        shares.append((a, c, n, q))
        off |= abs(q - 0.5) > float(rate_tolerance(n, 0.5))
    if not off:
        return
    a, c, _, q = max(shares, key=lambda s: abs(s[3] - 0.5))
    observed = (
        f"{what}: the present values' magnitudes are U[0, 1] in every cell, but their signs are not a fair coin: "
        f"inst {a}, feature {c} (p = {float(p[a, c]):.4g}) has {q:.1%} negative values"
    )
    follows = lambda table: all(
        abs(q - float(table[a, c])) <= float(rate_tolerance(n, float(table[a, c]))) for a, c, n, q in shares
    )
    for table, name in (
        (p.clamp(max=0.5) / p, "min(p, 1/2) / p (all negative where p ≤ 1/2)"),
        ((p - 0.5).clamp(min=0) / p, "max(p - 1/2, 0) / p (none negative where p ≤ 1/2)"),
    ):
        if follows(table):
            fail(
                observed + f"; in every cell the negative share follows {name}: the share a sign u < 1/2 has "
                "among the u that passed u < p",
                "the sign is read off the same uniform as the presence (u < p decides presence, u < 0.5 the sign), "
                "so it is tied to presence, not a coin: draw the sign from a fresh uniform, "
                "torch.where(torch.rand(...) < 0.5, -1.0, 1.0), or draw the value as 2 * torch.rand(...) - 1",
                code="sign_from_presence_draw",
            )
    for table, name, fix in (
        (p, "p", "the feature probability reused for the sign coin (rand < p)"),
        (1 - p, "1 - p", "the sign coin drawn against the feature probability (rand > p or rand < 1 - p)"),
    ):
        if follows(table):
            fail(
                observed + f"; in every cell the negative share follows {name}",
                f"the sign is negative with probability {name}: {fix}. The sign is a fair coin, independent of p: "
                "torch.where(torch.rand(...) < 0.5, -1.0, 1.0), or draw the value as 2 * torch.rand(...) - 1",
                code="sign_coin_biased",
            )
    overall = sum(n * q for _, _, n, q in shares) / sum(n for _, _, n, _ in shares)
    if follows(p * 0 + overall):  # one biased coin for every cell, whatever p
        fail(
            observed + f"; in every cell about {overall:.1%} of the present values are negative, whatever p",
            f"the sign is a coin with a fixed bias (negative with probability ≈ {overall:.2f}: e.g. rand < "
            f"{overall:.2g}, or torch.randint(0, k) compared with one value) where a fair coin belongs: "
            "torch.where(torch.rand(...) < 0.5, -1.0, 1.0), or draw the value as 2 * torch.rand(...) - 1",
            code="sign_coin_fixed_bias",
        )
    fail(
        observed + "; independent fair signs give 50% in every cell",
        "the negative share follows none of p, 1 - p or the presence draw's u < 1/2 among u < p (each was read "
        "back and gives other shares), so no cause is named: each present value's sign must be a fair coin, "
        "independent of p and of presence: torch.where(torch.rand(...) < 0.5, -1.0, 1.0), or draw the value as "
        "2 * torch.rand(...) - 1",
        code="sign_coin_biased",
    )


def magnitude_presence_failure(batch: Tensor, p: Tensor, what: str) -> None:
    """Fail naming a magnitude that also decided presence: every cell's |v| fills [1 - p, 1]."""
    cells = _cells(batch, 200)
    if not cells:
        return
    p = p.double().cpu()
    spans = []
    for a, c, v in cells:
        mag = v.abs()
        lo, hi, pc = float(mag.min()), float(mag.max()), float(p[a, c])
        if abs((hi - lo) - pc) > 0.05:
            return
        spans.append((a, c, lo, hi, pc))
    if min(s[3] - s[2] for s in spans) > 0.9:
        return  # every cell spans (nearly) all of [0, 1]: nothing to read
    if not all(abs(s[2] - (1 - s[4])) <= 0.05 for s in spans):
        return  # a width-p span elsewhere ([0, p]: the presence uniform as the value) is values_reuse_mask's
    a, c, lo, hi, pc = min(spans, key=lambda s: s[3] - s[2])
    fail(
        f"{what}: in every (inst, feature) cell the present magnitudes |v| lie in [1 - p, 1]: inst {a}, feature {c} "
        f"(p = {pc:.4g}) has |v| in [{lo:.3f}, {hi:.3f}]; U[-1, 1] values give |v| all over [0, 1]",
        "the magnitude also decided presence: presence decided by thresholding the value itself (present where "
        "|v| > 1 - p for v = 2 * rand - 1), or the presence uniform (u > 1 - p) reused as the magnitude. Draw "
        "presence (torch.rand(...) < p) and the value (2 * torch.rand(...) - 1) with two separate rand calls",
        code="magnitude_decides_presence",
    )


def sign_magnitude_failures(batch: Tensor, p: Tensor, what: str) -> None:
    biased_sign_failure(batch, p, what)
    magnitude_presence_failure(batch, p, what)
