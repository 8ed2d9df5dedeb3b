"""Part 5's W_dec_normalized (W_dec / (‖W_dec row‖ + eps)) read back row by row, for outputs no catalogue entry
explains:

* `nonfinite_rows_failure`: NaN or inf told apart by WHERE it is: in the all-zero rows only (a 0 / 0: eps
  missing) or in rows that are not zero (the squared norm went negative under a square root: not a sum of squares);
* `divisor_power_failure`: rows that point the right way, each divided by a·‖W_row‖^p, with a and p fitted from
  every row's divisor ‖W_row‖ / ‖out_row‖ (the checker's rows have norms from 0.15 to 2.5, so a and p are
  determined): ‖W‖² / 2 is the precedence slip `** 1/2`;
* `numerator_source_failure`: rows that point along another tensor's rows (W_enc transposed, untied case), with the
  divisor read back and compared with the norms of W_dec and of that tensor;
* `eps_readoff_failure`: rows that point the right way, each divided by ‖W_row‖ + c with one c for every row (read
  back as ‖W_row‖ / ‖out_row‖ − ‖W_row‖) other than cfg.weight_normalize_eps: c is named by the config fields that
  hold it (the checker's config gives its float fields distinct values, so one field fits).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from tests import part5_toy_saes_eps_placement as EP
from tests import part5_toy_saes_offset_readings as OR
from tests.checking import fail

# Each row divided by another statistic of its d_in entries than its L2 norm (the rows keep their direction, only the
# length is off): (code, hint, fn(W, eps)), as M.NORM_MISTAKES. The root mean square (‖W_row‖ / √d_in) is named by the
# scale read-off (code `scale`); std differs from it by the row means, which are not 0 on the checker's rows.
_STAT = "each row was divided by {} over d_in, not by its L2 norm: divide by W.norm(dim=-1, keepdim=True) + eps"
NORM_STATISTICS = [
    (
        "row_statistic",
        _STAT.format("its standard deviation (W.std(-1), unbiased)"),
        lambda W, eps: W / (W.std(-1, keepdim=True) + eps),
    ),
    (
        "row_statistic",
        _STAT.format("its standard deviation (W.std(-1, unbiased=False))"),
        lambda W, eps: W / (W.std(-1, unbiased=False, keepdim=True) + eps),
    ),
    ("row_statistic", _STAT.format("its variance (W.var(-1))"), lambda W, eps: W / (W.var(-1, keepdim=True) + eps)),
    (
        "row_statistic",
        _STAT.format("the mean of its absolute values (W.abs().mean(-1))"),
        lambda W, eps: W / (W.abs().mean(-1, keepdim=True) + eps),
    ),
]

_NORM_FIX = "write the norm as W.norm(dim=-1, keepdim=True) or (W ** 2).sum(-1, keepdim=True).sqrt()"


def _squared_norm_candidates(W: Tensor) -> list[tuple[str, Tensor]]:
    """Wrong "squared norms" [inst d_sae] that can be negative (so their square root is NaN)."""
    return [
        (
            "each row dotted with the sum of all rows of its instance: einsum('isd,itd->is', W, W) sums the second "
            "operand over t separately (write einsum('isd,isd->is', W, W), one index for the row)",
            torch.einsum("isd,itd->is", W, W),
        ),
        (
            "each row dotted with the sum of that latent's rows over the instances: einsum('isd,jsd->is', W, W)",
            torch.einsum("isd,jsd->is", W, W),
        ),
        ("the row's entries summed without squaring them (W.sum(-1))", W.sum(-1)),
    ]


def nonfinite_rows_failure(out: Tensor, W: Tensor, eps: float, sae: Any = None) -> None:
    """Fail when `out` [inst d_sae d_in] has NaN or inf; the message depends on whether the bad rows are the
    all-zero rows of W (eps missing) or rows that are not zero (the norm itself is wrong)."""
    out = out.detach()
    bad = ~torch.isfinite(out).all(-1)
    if not bad.any():
        return
    zero = W.norm(dim=-1) == 0
    if not bool((bad & ~zero).any()):
        good = ~bad & ~zero
        want = W / (W.norm(dim=-1, keepdim=True) + eps)
        err = float((out[good] - want[good]).abs().max()) if good.any() else 0.0
        vanish = [
            n
            for n, dt in (("float16", torch.float16), ("bfloat16", torch.bfloat16))
            if float(torch.tensor(eps, dtype=dt)) == 0
        ]
        EP.eps_after_division_failure(out, W, eps, good, sae)
        low = 1e-6 < err < 3e-2 and vanish
        fail(
            "W_dec_normalized contains NaN or inf for an all-zero decoder row (and only there)"
            + (
                f"; the other rows differ from the float32 result by up to {err:.2g}, a low-precision rounding"
                if low
                else ""
            ),
            f"the norm of a zero row is 0, so 0 / (0 + eps) needs an eps that survives: add cfg.weight_normalize_eps "
            f"({eps:g}) to the norm before dividing, in float32"
            + (
                f". Possible causes: eps missing, or the norm computed in low precision ({' or '.join(vanish)}, "
                f"e.g. W.half()), where {eps:g} rounds to 0 and vanishes"
                if vanish
                else ""
            ),
            code="zero_row",
        )
    n_bad, n_rows, has_nan = int((bad & ~zero).sum()), bad.numel(), bool(torch.isnan(out[bad & ~zero]).any())
    low = float(W.norm(dim=-1)[bad & ~zero].min())
    where = f"{n_bad} of the {n_rows} decoder rows that are NOT zero (rows of norm {low:.3g} and up)"
    for name, sq in _squared_norm_candidates(W.double()):
        if torch.equal(bad & ~zero, (sq < 0) & ~zero) and not OR.divided_by_root(out, W, sq, eps):
            fail(
                f"W_dec_normalized contains NaN in {where}: exactly the rows where {name.split(':')[0]} is "
                "negative, but the finite rows are not divided by its square root",
                "a root, log or fractional power of that quantity is NaN exactly there; each row's divisor must be "
                f"its own L2 norm (+ eps): {_NORM_FIX}",
                code="norm_nan",
            )
        if torch.equal(bad & ~zero, (sq < 0) & ~zero):
            fail(
                f"W_dec_normalized contains NaN in {where}: exactly the rows where {name.split(':')[0]} is negative",
                f"your squared norm looks like {name}; its square root is NaN wherever it is negative. The squared "
                f"norm is the sum of the row's own squared entries, never negative: {_NORM_FIX}",
                code="norm_nan",
            )
    if has_nan:
        found = OR.nan_rows_reading(out, W, eps)
        fail(
            f"W_dec_normalized contains NaN in {where}, so eps is not the problem",
            (
                f"{found}. The divisor of each row must be its own L2 norm (+ eps), a finite number for every row"
                if found
                else "the NaN rows are not the smallest-norm rows with a constant under the root, and not W's "
                "negative entries: find the step that gives NaN for those rows (a NaN needs 0/0, inf − inf, or a "
                "root or log of a negative number)"
            )
            + f": {_NORM_FIX}",
            code="norm_nan",
        )
    fail(
        f"W_dec_normalized contains inf in {where}: those rows were divided by 0",
        f"the norm you divide by is 0 for rows that are not zero: it is not the row's own L2 norm. {_NORM_FIX}",
        code="norm_nan",
    )


def _rows(out: Tensor, W: Tensor) -> Tensor:
    """Rows used for read-backs: finite, W_row not short (eps is negligible there), out_row not zero."""
    return torch.isfinite(out).all(-1) & (W.norm(dim=-1) > 1e-2) & (out.norm(dim=-1) > 0)


def _aligned(out: Tensor, W: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """(out, W in float64, the read-back rows) when at least 3 rows can be read and every one of them points along
    W's row (only the length differs); else None."""
    out, W = out.detach().double(), W.detach().double()
    rows = _rows(out, W)
    if int(rows.sum()) < 3:
        return None
    cos = torch.nn.functional.cosine_similarity(out[rows], W[rows], dim=-1)
    return (out, W, rows) if bool((cos > 1 - 1e-4).all()) else None


def _fit_power(divisor: Tensor, norms: Tensor) -> tuple[float, float] | None:
    """(a, p) with divisor = a · norms^p on every row (relative 1e-3), or None."""
    if divisor.numel() < 3 or float(norms.max() / norms.min()) < 1.5:
        return None
    X = torch.stack([torch.ones_like(norms), norms.log()], -1)
    coef = torch.linalg.lstsq(X, divisor.log()[:, None]).solution[:, 0]
    p = float(coef[1])
    p_round = round(p * 2) / 2 if abs(p * 2 - round(p * 2)) < 0.01 else p
    a_fit = float((divisor / norms.pow(p_round)).median())
    if not torch.allclose(divisor, a_fit * norms.pow(p_round), rtol=1e-3):
        return None
    return a_fit, p_round


def divisor_power_failure(out: Tensor, W: Tensor) -> None:
    """Every row points along W's row and was divided by a·‖W_row‖^p with p ≠ 1: name the power (and the
    precedence slip `** 1/2` for a = 1/2, p = 2)."""
    if (aligned := _aligned(out, W)) is None:
        return
    out, W, rows = aligned
    norms = W.norm(dim=-1)[rows]
    fit = _fit_power(norms / out[rows].norm(dim=-1), norms)
    if fit is None or abs(fit[1] - 1) < 0.01:
        return  # p = 1: a constant factor, named by the generic factor diagnosis
    a, p = fit
    if abs(p - 2) < 0.01 and abs(a - 0.5) < 1e-3:
        fail(
            "W_dec_normalized: every row points the right way but was divided by ‖W_row‖² / 2 (its squared norm "
            "halved), not by its norm ‖W_row‖",
            "`x ** 1/2` is `(x ** 1) / 2`: ** binds tighter than /, so (W ** 2).sum(-1) ** 1/2 is half the squared "
            "norm, not its square root. Write ** 0.5, .sqrt(), or W.norm(dim=-1, keepdim=True)",
            code="norm_power",
        )
    scale = "" if abs(a - 1) < 1e-3 else f"{a:.4g} · "
    fail(
        f"W_dec_normalized: every row points the right way but was divided by {scale}‖W_row‖^{p:g} (read back from "
        "every row's ‖W_row‖ / ‖output row‖), not by ‖W_row‖",
        f"divide each row by its norm to the power 1: a power of the norm is off ({p:g} instead of 1: a square root "
        f"missing, or taken twice?){' and a constant factor ' + f'{a:.4g}' if scale else ''}. {_NORM_FIX}",
        code="norm_power",
    )


def divisor_source_failure(out: Tensor, W: Tensor, sources: dict[str, Tensor], eps: float) -> None:
    """Every output row points along W's own row but its divisor is the matching row norm of another tensor
    (`sources`: name -> [inst d_sae d_in], e.g. the encoder's columns): the norm was taken of the wrong tensor."""
    out, W = out.detach().double(), W.detach().double()
    rows = _rows(out, W)
    if int(rows.sum()) < 3:
        return
    cos = torch.nn.functional.cosine_similarity(out[rows], W[rows], dim=-1)
    if not bool((cos > 1 - 1e-4).all()):
        return
    divisor = W.norm(dim=-1)[rows] / out[rows].norm(dim=-1)
    for name, S in sources.items():
        norms = S.detach().double().norm(dim=-1)[rows]
        own = torch.allclose(norms, W.norm(dim=-1)[rows], rtol=1e-3)  # tied: the same norms, nothing to name
        if own or not torch.allclose(divisor, norms + eps, rtol=1e-3):
            continue
        fail(
            f"W_dec_normalized: every row points along W_dec's own row, but its length is ‖W_dec row‖ / ‖row of "
            f"{name}‖: each row was divided by the norm of the matching row of {name}, not by its own norm",
            "take the norm of the tensor you divide: self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + eps). "
            "An untied decoder (tied_weights=False) is its own parameter; its row norms differ from the encoder's "
            "column norms",
            code="divisor_source",
        )


def numerator_source_failure(out: Tensor, W: Tensor, sources: dict[str, Tensor], eps: float) -> None:
    """Every output row is parallel to the same row of another tensor (`sources`: name -> [inst d_sae d_in], not W):
    the numerator came from there; the divisor is read back and compared with W's and that tensor's row norms."""
    out, W = out.detach().double(), W.detach().double()
    for name, S in sources.items():
        S = S.detach().double()
        rows = _rows(out, W) & (S.norm(dim=-1) > 1e-2)
        if int(rows.sum()) < 3 or torch.allclose(S, W):
            continue
        cos = torch.nn.functional.cosine_similarity(out[rows], S[rows], dim=-1)
        if not bool((cos > 1 - 1e-4).all()):
            continue
        divisor = S.norm(dim=-1)[rows] / out[rows].norm(dim=-1)
        for den_name, den in (("W_dec's own row norms (+ eps)", W), (f"the row norms of {name} (+ eps)", S)):
            if torch.allclose(divisor, den.norm(dim=-1)[rows] + eps, rtol=1e-3):
                by = den_name
                break
        else:
            by = f"something else (row divisors from {float(divisor.min()):.3g} to {float(divisor.max()):.3g})"
        fail(
            f"W_dec_normalized: every row points along the same row of {name}, not of W_dec, and was divided by "
            f"{by}: the numerator is {name}",
            f"normalise the decoder itself: self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + eps), numerator and "
            f"norm from the same tensor. With an untied decoder (tied_weights=False) W_dec is its own parameter, "
            f"not {name}",
            code="numerator_source",
        )


def eps_readoff_failure(out: Tensor, W: Tensor, cfg) -> None:
    """Every row points along W's and was divided by ‖W_row‖ + c, the same c for every row, c clearly not
    cfg.weight_normalize_eps: name c by the config fields equal to it (a wrong field), else report it."""
    out, W = out.detach().double(), W.detach().double()
    norms = W.norm(dim=-1)
    rows = torch.isfinite(out).all(-1) & (norms > 0) & (out.norm(dim=-1) > 0)
    if int(rows.sum()) < 3:
        return
    cos = torch.nn.functional.cosine_similarity(out[rows], W[rows], dim=-1)
    if not bool((cos > 1 - 1e-4).all()):
        return
    # float32 outputs: ‖out_row‖ is right to ~1e-6 relative, so each row's c to ~1e-6 · ‖W_row‖ (norms up to 2.5)
    c = norms[rows] / out[rows].norm(dim=-1) - norms[rows]
    fit = float(c.median())
    eps = float(cfg.weight_normalize_eps)
    if not bool(((c - fit).abs() <= 1e-5 + 1e-3 * abs(fit)).all()) or abs(fit - eps) <= 1e-5 + 1e-2 * abs(eps):
        return
    fields = [
        f.name
        for f in dataclasses.fields(cfg)
        if type(getattr(cfg, f.name)) in (int, float)
        and f.name != "weight_normalize_eps"
        and abs(getattr(cfg, f.name) - fit) <= 1e-3 * abs(fit) + 1e-7
    ]
    observed = (
        f"W_dec_normalized: every row points the right way and was divided by ‖W_row‖ + {fit:.4g} (the same "
        f"{fit:.4g} on every row, read back as ‖W_row‖ / ‖output row‖ − ‖W_row‖): an eps of {fit:.4g} where "
        f"cfg.weight_normalize_eps = {eps:g} belongs"
    )
    if fields:
        named = " or ".join(f"cfg.{name}" for name in fields)
        fail(
            f"{observed}; {fit:.4g} is {named}: the wrong config field",
            f"read the eps from cfg.weight_normalize_eps, not {named}: divide by (norm + "
            "self.cfg.weight_normalize_eps)",
            code="eps_field",
        )
    fail(
        f"{observed}; no config field holds {fit:.4g}",
        "divide by (norm + self.cfg.weight_normalize_eps). Possible causes: an eps hard-coded (or computed) instead "
        "of read from the config, the config's eps scaled, or a constant added to the norm",
        code="eps_value",
    )


def row_failures(out: Tensor, expected: Tensor, W: Tensor, mistakes: list, sources: dict[str, Tensor], cfg):
    """The row read-backs above, run only when `out` is wrong and no catalogue mistake matches it."""
    eps = cfg.weight_normalize_eps
    close = lambda v: v.shape == out.shape and torch.allclose(out, v, rtol=1e-4, atol=1e-5)
    if close(expected) or any(close(value) for _, _, value in mistakes):
        return
    scrambled_failure(out, expected)
    rounded_failure(out, expected)
    unit_row_relation_failure(out, expected)
    transform_failure(out, W, eps)
    partial_norm_failure(out, W, eps)
    divisor_power_failure(out, W)
    root_ratio_failure(out, W, cfg)
    divisor_source_failure(out, W, sources, eps)
    numerator_source_failure(out, W, sources, eps)
    eps_readoff_failure(out, W, cfg)


def rounded_failure(out: Tensor, expected: Tensor) -> None:
    """Every entry of W_dec_normalized is a whole number where the right quotient is fractional: the division
    rounded its result. Named as floor / trunc / round when that rounding of the right quotient reproduces it."""
    if out.shape != expected.shape or not torch.isfinite(out).all() or not torch.equal(out, out.round()):
        return
    if torch.equal(expected, expected.round()):
        return
    hows = {"floor": torch.floor, "trunc": torch.trunc, "round": torch.round}
    hit = [n for n, f in hows.items() if torch.allclose(out, f(expected), atol=1e-6)]
    how = (
        f"the right quotient rounded with {hit[0]} (e.g. torch.div(..., rounding_mode={hit[0]!r})"
        + (" or //)" if hit[0] == "floor" else ")")
        if len(hit) == 1
        else "rounded, e.g. // or torch.div(..., rounding_mode=...)"
    )
    fail(
        f"every entry of W_dec_normalized is a whole number ({sorted(set(out.flatten().tolist()))[:6]}...): "
        f"the division's result was {how}",
        "divide with true division, W_dec / (norm + eps) (torch.div without rounding_mode): the entries of a unit "
        "row are fractions",
        code="rounded_quotient",
    )


def scrambled_failure(out: Tensor, expected: Tensor) -> None:
    """Each instance holds exactly the right values, but in other positions: a reshape/view where a transpose
    belonged (e.g. rows normalised, then reshaped to [inst d_in d_sae] and transposed)."""
    if out.shape != expected.shape or out.ndim != 3 or not torch.isfinite(out).all():
        return
    a, b = out.detach().flatten(1).sort(-1).values, expected.detach().flatten(1).sort(-1).values
    if torch.allclose(a, b, rtol=1e-4, atol=1e-5):
        fail(
            "W_dec_normalized holds exactly the right values in each instance, but in the wrong positions: the "
            "[d_sae d_in] entries are rearranged",
            "a reshape/view (or .view after a transpose) scrambles the rows: keep W_dec's [inst d_sae d_in] layout "
            "and divide each row by its norm, W_dec / (W_dec.norm(dim=-1, keepdim=True) + eps)",
            code="rows_scrambled",
        )


def partial_norm_failure(out: Tensor, W: Tensor, eps: float) -> None:
    """Every row points along W's row but was divided by the norm of only some of its d_in coordinates (+ eps), the
    same ones for every row: a slice such as W[..., :-1] or W[..., 1:] inside the norm. All subsets are tried."""
    out, W = out.detach().double(), W.detach().double()
    d_in = W.shape[-1]
    rows = _rows(out, W)
    if d_in > 10 or int(rows.sum()) < 3:
        return
    o, w = out[rows], W[rows]
    cos = torch.nn.functional.cosine_similarity(o, w, dim=-1)
    if not bool((cos > 1 - 1e-4).all()):
        return
    divisor = w.norm(dim=-1) / o.norm(dim=-1)
    for mask in range(1, 2**d_in - 1):
        keep = [j for j in range(d_in) if mask >> j & 1]
        if torch.allclose(divisor, w[:, keep].norm(dim=-1) + eps, rtol=1e-4, atol=1e-6):
            left = [j for j in range(d_in) if j not in keep]
            fail(
                f"W_dec_normalized: every row points the right way, but was divided by the norm of its d_in "
                f"coordinates {keep} only, not of all {d_in} (coordinate(s) {left} left out of the norm)",
                "the norm is over the whole row, every d_in coordinate: W_dec.norm(dim=-1, keepdim=True) + eps; a "
                "slice inside the norm (W[..., :-1], W[..., 1:]) is an off-by-one",
                code="norm_partial_row",
            )


def root_ratio_failure(out: Tensor, W: Tensor, cfg) -> None:
    """Every row points along W's row and was divided by a·‖W_row‖ with a = √(cfg.f / cfg.g) for two integer config
    fields: a root-mean-square scaled back by the wrong count (√(mean(W²)·cfg.d_sae) where cfg.d_in belongs)."""
    if (aligned := _aligned(out, W)) is None:
        return
    out, W, rows = aligned
    ratio = 1 / out[rows].norm(dim=-1)  # the divisor over ‖W_row‖: ‖W_row‖ / ‖out_row‖ / ‖W_row‖
    a = float(ratio.median())
    if abs(a - 1) < 1e-3 or not torch.allclose(ratio, torch.full_like(ratio, a), rtol=1e-3):
        return
    fields = {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if type(getattr(cfg, f.name)) is int and getattr(cfg, f.name) > 1
    }
    if len(set(fields.values())) != len(fields):
        return  # two fields of one size: which one was used can't be told apart
    row_len = W.shape[-1]
    for f, vf in fields.items():
        for g, vg in fields.items():
            if f != g and abs(a - (vf / vg) ** 0.5) < 1e-3 * a:
                belongs = f"cfg.{g} (the length of a row, {row_len})" if vg == row_len else f"cfg.{g}"
                fail(
                    f"W_dec_normalized: every row points the right way but was divided by {a:.4g} · ‖W_row‖, and "
                    f"{a:.4g} = √(cfg.{f} / cfg.{g}) = √({vf}/{vg})",
                    f"a count inside the root is the wrong config field: cfg.{f} where {belongs} belongs (e.g. "
                    f"√(mean(W²) · cfg.{f}) for the norm √(mean(W²) · cfg.{g}) = ‖W_row‖). {_NORM_FIX}",
                    code="norm_wrong_field",
                )


def norms_returned(out: object, W: Tensor, eps: float) -> object:
    """The rows' norms (or norms + eps) returned in place of the normalised rows: size 1 on d_in, the values the
    divisor. Returns `out` unchanged otherwise, for the shape check that follows."""
    if not isinstance(out, Tensor) or out.shape != (*W.shape[:-1], 1) or out.shape == W.shape:
        return out
    norms = W.detach().norm(dim=-1, keepdim=True)
    got = out.detach().to(norms.dtype)
    for divisor, what in ((norms + eps, "‖row‖ + eps"), (norms, "‖row‖"), (norms.clamp_min(eps), "max(‖row‖, eps)")):
        if torch.allclose(got, divisor, rtol=1e-5, atol=1e-7):
            fail(
                f"W_dec_normalized has shape {tuple(out.shape)} (size 1 on d_in) and holds each decoder row's {what}",
                "you returned the rows' norms, not the rows divided by them: return W_dec / (norm + eps), "
                "shape [inst d_sae d_in]",
                code="returned_norms",
            )
    return out


def read_back_eps(norms: Tensor, lengths: Tensor, eps: float, default: float) -> None:
    """Fail naming it when every row's length is norm / (norm + c) for one constant c (read back per row as
    norm / length - norm), and c is a simple function of the config's eps: -eps (a sign typo), 2 eps, eps²..."""
    c = norms / lengths - norms
    if not bool((lengths != 0).all()) or not torch.allclose(c, c.median().expand_as(c), rtol=1e-3, atol=1e-7):
        return
    c0 = float(c.median())
    names = [("-eps (norm - eps: the sign of eps flipped)", -eps, "eps_sign"), ("2·eps", 2 * eps, "eps_twice")]
    names += [("eps²", eps**2, "eps_squared"), ("eps + the default eps", eps + default, "eps_hard_coded_too")]
    named = [(n, code) for n, v, code in names if abs(c0 - v) <= 1e-3 * abs(v) and abs(c0 - eps) > 1e-3 * eps]
    if named:
        fail(
            f"with cfg.weight_normalize_eps = {eps:g}, every W_dec_normalized row has length norm / (norm + c) for "
            f"c = {c0:.4g}, read back from the rows: c = {named[0][0]}",
            "divide by (norm + self.cfg.weight_normalize_eps): the eps is added to the norm, once, as it is",
            code=named[0][1],
        )


def transform_failure(out: Tensor, W: Tensor, eps: float) -> None:
    """Each (non-tiny) row read back as another row-wise transform of W_dec than W / (‖W‖ + eps)."""
    rows = W.norm(dim=-1) > 1e-2
    f = torch.nn.functional
    for what, fn in (
        ("a softmax over d_in (F.softmax(W_dec, dim=-1))", lambda: f.softmax(W, dim=-1)),
        (
            "a layer norm over d_in (centred, unit variance: F.layer_norm)",
            lambda: f.layer_norm(W, W.shape[-1:], eps=eps),
        ),
        ("a layer norm over d_in (centred, unit variance: F.layer_norm)", lambda: f.layer_norm(W, W.shape[-1:])),
        (
            "each row standardised ((W - mean) / std over d_in)",
            lambda: (W - W.mean(-1, True)) / W.std(-1, keepdim=True),
        ),
        ("each row divided by its sum (W / W.sum(-1))", lambda: W / W.sum(-1, keepdim=True)),
        ("each row divided by its L1 norm (W / |W|.sum(-1))", lambda: W / W.abs().sum(-1, keepdim=True)),
        ("each row divided by its largest entry (W / W.max(-1))", lambda: W / W.amax(-1, keepdim=True)),
        ("each row divided by its largest |entry| (W / |W|.max(-1))", lambda: W / W.abs().amax(-1, keepdim=True)),
    ):
        if torch.allclose(out[rows], fn()[rows], rtol=1e-4, atol=1e-5):
            fail(
                f"W_dec_normalized is {what} (read back on every non-zero row)",
                "normalise = divide each row by its L2 norm over d_in (plus eps): W_dec / (W_dec.norm(dim=-1, "
                "keepdim=True) + eps), rows of unit length along the same direction",
                code="row_transform",
            )


def unit_row_relation_failure(out: Tensor, expected: Tensor) -> None:
    """Rows read back against the right unit rows: some of them negated (a sign flipped per row, e.g. a sign made
    canonical), or each shifted by one constant along d_in (centred: the row's mean over d_in subtracted)."""
    if out.shape != expected.shape or not torch.isfinite(out).all():
        return
    rows = expected.norm(dim=-1) > 0.5
    o, e = out[rows].double(), expected[rows].double()
    same = (o - e).abs().amax(-1) < 1e-5
    flipped = (o + e).abs().amax(-1) < 1e-5
    if bool((same | flipped).all()) and flipped.any():
        fail(
            f"{int(flipped.sum())} of W_dec_normalized's {int(rows.sum())} rows are the right unit rows negated (sign "
            "flipped), the others are right (read back)",
            "keep each row's sign: W_dec / (norm + eps) points along W_dec itself (a sign made canonical per row, e.g. "
            "by the sign of its sum or of its largest entry, flips some latents' directions)",
            code="rows_negated",
        )
    shift = o - e
    if bool(((shift - shift.mean(-1, keepdim=True)).abs().amax(-1) < 1e-5).all()) and shift.abs().amax() > 1e-4:
        centred = bool((o.mean(-1).abs() < 1e-5).all())
        fail(
            "each row of W_dec_normalized is the right unit row plus one constant along d_in (read back)"
            + (": the rows are centred, their mean over d_in is 0" if centred else ""),
            "divide each row by its norm (+ eps) and nothing else: "
            + ("don't subtract the row's mean (a centring, as in a layer norm)" if centred else "no constant added"),
            code="rows_centred" if centred else "row_offset",
        )
