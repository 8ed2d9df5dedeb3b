"""Part 1's pair and block generators: an empty block (a count of 0), p laid out per feature in the wrong order
(tiled where it should be interleaved), and the second feature of an anticorrelated pair never present."""

from __future__ import annotations

import torch
from torch import Tensor

from solutions.part1_superposition import ToyModelConfig
from tests.checking import fail
from tests.part1_superposition_probes import consistent

KEYS = {
    "generate_correlated_features": "n_correlated_pairs",
    "generate_anticorrelated_features": "n_anticorrelated_pairs",
}


def empty_block_failure(cls: type, method: str, device: torch.device) -> None:
    """generate_batch calls each generator with its slice of p, which is empty ([inst, 0]) when the config has no
    such pairs or features (n_correlated_pairs = 0 is the default): the generator must return [n, inst, 0]."""
    k, n = 3, 7
    cfg = ToyModelConfig(n_inst=k, n_features=4, d_hidden=2, **({KEYS[method]: 0} if method in KEYS else {}))
    expected = (n, k, 0)
    try:
        model = cls(cfg, device=device)
        out = getattr(model, method)(n, torch.zeros(k, 0, device=device))
    except NotImplementedError:
        raise
    except Exception as err:
        got = f"raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    else:
        if isinstance(out, Tensor) and tuple(out.shape) == expected:
            return
        got = f"returned {tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}"
    fail(
        f"{method}({n}, p) with p of shape ({k}, 0) (an empty block) {got}, expected an empty tensor of shape "
        f"{expected}",
        "generate_batch calls every generator with its slice of p, and a count of 0 (no pairs, or no uncorrelated "
        "features) gives an empty slice [inst, 0]: an empty block must give an empty [batch, inst, 0] tensor. A loop "
        "over the pairs/features joined with torch.cat or torch.stack fails on an empty list: draw the whole block at "
        "once (torch.rand(n, *p.shape) < p), which handles 0 columns",
        code="empty_block",
    )


def tiled_p_failure(present: Tensor, p: Tensor, what: str, message: str) -> None:
    """(Correlated pairs, partners differ) feature 2j + t follows p.repeat(1, 2)[:, 2j + t] (p tiled, [p0 p1 p0 p1])
    where it should follow p[:, j] (p.repeat_interleave(2, -1), [p0 p0 p1 p1]): read back which layout the per-feature
    rates follow. The two layouts differ on the checker's p, so only one can match."""
    n, m = present.shape[0], p.shape[1]
    rates = present[..., : 2 * m].double().mean(0).cpu()
    tiled, interleaved = p.double().cpu().repeat(1, 2), p.double().cpu().repeat_interleave(2, -1)
    if consistent(interleaved, tiled, 1 << 40) or not consistent(rates, tiled, n):
        return
    # one draw per pair compared with two probabilities: the rarer feature is present only with its partner (a tiled
    # MASK, pairs (j, j + m), has the same rates but independent partners: that is a layout slip, not this one)
    on = present[..., : 2 * m].bool().cpu()
    rarer_first = tiled[:, 0::2] <= tiled[:, 1::2]
    rarer = torch.where(rarer_first, on[..., 0::2], on[..., 1::2])
    other = torch.where(rarer_first, on[..., 1::2], on[..., 0::2])
    if bool((rarer & ~other).any()):
        return
    fail(
        message + f"; the features' rates follow p tiled ({', '.join(f'{float(r):.0%}' for r in rates[0])} in "
        f"instance 0 for p = {', '.join(f'{float(r):.0%}' for r in p[0])})",
        "the presence draw is shared by the pair, but the probability it is compared with is laid out per feature as "
        "p.repeat(1, 2) (tiled: p0 p1 p0 p1), while the draw is repeat_interleave'd (u0 u0 u1 u1): the two features of "
        "a pair meet different probabilities. Compare one draw per pair with p itself ([batch, inst, pairs] < p), "
        "then repeat the mask; or lay p out with repeat_interleave(2, dim=-1) like the draw",
        code="p_tiled",
    )


def second_rate_hint(rates: Tensor, first_ok: bool) -> str:
    """(Anticorrelated pairs, exactly one feature of every pair at its rate p) which one is wrong; a second feature
    never present (0 in every pair) is named as observed before any guess about why."""
    a, b = ("first", "second") if first_ok else ("second", "first")
    should = "present exactly when the pair is active (probability 2p) and the choice (a fair coin) picked it"
    if first_ok and bool((rates[:, 1::2] == 0).all()):
        return (
            "the first feature of every pair is present at the right rate p, the second is never present (0% in every "
            "pair): the probability it is drawn with evaluates to 0 or below, e.g. p / 1 - p, which Python reads as "
            f"(p / 1) - p = 0 (write p / (1 - p)), its mask never written, or a condition that is never true (such "
            f"as which == 2 for a coin that is 0 or 1). It should be {should}"
        )
    right, wrong = (rates[:, 0::2], rates[:, 1::2]) if first_ok else (rates[:, 1::2], rates[:, 0::2])
    ratios = (wrong / right)[right > 0.02]  # a capped rate (an interval past 1) leaves a minority off the line
    k = float(ratios.median()) if ratios.numel() >= 3 else 1.0
    if abs(k - 1) > 0.25 and float(((ratios - k).abs() <= 0.1 * k).double().mean()) >= 0.6:
        return (
            f"the {a} feature of every pair is present at the right rate p, the {b} at about {k:.2g}·p (in most "
            "pairs): the draw "
            f"that makes it present has {k:.2g} times the probability it should (e.g. an interval of the uniform "
            f"{k:.2g}p wide, such as p < u < {1 + k:.2g}p, or 'active' not split by the choice coin). It should be "
            f"{should}"
        )
    return f"the {a} feature of every pair is present at the right rate p, the {b} is not: it should be {should}"
