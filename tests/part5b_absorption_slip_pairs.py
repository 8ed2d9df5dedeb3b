"""Two catalogued slips at once (round BA): each is named alone, but together they gave the bare formula.

matryoshka_loss: the loss is built from four independent choices (the bias in each prefix reconstruction, the
reduction over d_in, how the prefix terms combine, which prefixes are summed), and a learner can get two of them
wrong at once (b_dec dropped AND a sum over d_in, say). `matryoshka_pairs` gives every variant with exactly two
choices changed, named by both, except those equal to the reference or to a one-choice variant on these inputs (a
choice that changes nothing there, e.g. a mean over a single prefix).

BatchTopKToySAE.encode in eval mode: the same for the gate (b_dec subtracted, b_enc added, the kept value or the value
minus the threshold, the threshold per instance or the first instance's): `eval_pairs`."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["eval_pairs", "matryoshka_pairs"]


def _pairs(value, choices: dict, right: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) for every two-choice variant that differs from the right value and every one-choice one."""
    default = {dim: options[0][0] for dim, options in choices.items()}
    singles = []
    for dim, options in choices.items():
        for key, _ in options[1:]:
            singles.append(value(**{**default, dim: key}))
    rows = []
    for (dim_a, opts_a), (dim_b, opts_b) in itertools.combinations(choices.items(), 2):
        for (key_a, slip_a), (key_b, slip_b) in itertools.product(opts_a[1:], opts_b[1:]):
            v = value(**{**default, dim_a: key_a, dim_b: key_b})
            if any(torch.allclose(v, other, rtol=1e-4, atol=1e-5) for other in (right, *singles)):
                continue
            rows.append(("two_slips", f"two slips at once: {slip_a}, and {slip_b}", v))
    return rows


def matryoshka_pairs(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    """The two-slip variants of matryoshka_loss on these inputs (code two_slips)."""

    def value(bias: str, reduce: str, combine: str, terms: str) -> Tensor:
        used = sizes[:-1] if terms == "skip_last" else sizes
        total = torch.zeros_like(h[..., 0])
        for m in used:
            rec = torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m])
            err = {"b_dec": rec + b - h, "none": rec - h, "twice": rec + b - (h - b)}[bias]
            total = total + (err.pow(2).mean(-1) if reduce == "mean" else err.pow(2).sum(-1))
        return total / len(sizes) if combine == "mean" else total

    choices = {
        "bias": [
            ("b_dec", ""),
            ("none", "b_dec is missing from the prefix reconstructions (add b_dec to every prefix)"),
            ("twice", "b_dec counted twice (the reconstruction, which includes b_dec, compared with h - b_dec)"),
        ],
        "reduce": [("mean", ""), ("sum", "the squared error is summed over d_in (average it: .mean(-1))")],
        "combine": [("sum", ""), ("mean", "the prefix losses are averaged (sum them over the prefixes)")],
        "terms": [("all", ""), ("skip_last", "the last prefix (the full width) is left out of the loop")],
    }
    right = value("b_dec", "mean", "sum", "all")
    rows = _pairs(value, choices, right)
    if len(sizes) == h.shape[1]:  # a sum over d_in over len(prefix_sizes) is also a sum over d_in divided by n_inst
        same = value("b_dec", "sum", "mean", "all")
        rows = [
            (
                code,
                hint
                + (
                    "; or, the same values here, the sum over d_in divided by n_inst (h.shape[1]) where d_in belongs"
                    if torch.equal(v, same)
                    else ""
                ),
                v,
            )
            for code, hint, v in rows
        ]
    return rows


def eval_pairs(sae, h: Tensor, th: Tensor) -> list:
    """The two-slip variants of encode in eval mode (code two_slips): `sae` the learner's SAE, `th` [inst]."""
    W_enc, b_enc, b_dec = sae.W_enc.detach(), sae.b_enc.detach(), sae.b_dec.detach()

    def value(centre: str, bias: str, keep: str, scope: str) -> Tensor:
        x = h - b_dec if centre == "b_dec" else h
        pre = torch.einsum("bid,ids->bis", x, W_enc) + (b_enc if bias == "b_enc" else 0)
        pre = F.relu(pre)
        t = th[:, None] if scope == "own" else th[0]
        return pre * (pre > t) if keep == "value" else F.relu(pre - t)

    choices = {
        "centre": [("b_dec", ""), ("none", "b_dec is not subtracted from h before encoding")],
        "bias": [("b_enc", ""), ("none", "b_enc is not added to the pre-activations")],
        "keep": [
            ("value", ""),
            (
                "soft",
                "the threshold is subtracted from the kept values (relu(pre - threshold) shrinks them: keep "
                "pre * (pre > threshold))",
            ),
        ],
        "scope": [
            ("own", ""),
            ("first", "instance 0's threshold is used for every instance (self.threshold[:, None])"),
        ],
    }
    right = value("b_dec", "b_enc", "value", "own")
    return _pairs(value, choices, right)
