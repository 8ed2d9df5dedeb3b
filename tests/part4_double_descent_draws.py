"""generate_dataset readings about how the data were drawn (`tests.part4_double_descent`): values computed in a
low-precision dtype (float16 / bfloat16) and cast to float32 at the end, which leaves the norms off by the format's
rounding; and a number of present features per example that barely varies (a fixed count of features drawn per
example: argsort / randperm / topk / multinomial ranks), where independent Bernoulli(p) presence gives a
Binomial(n_features, p) count."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail
from tests.precision import LOW_DTYPES, on_grid


def low_precision_failure(x: Tensor, what: str) -> None:
    """x [examples inst feats] (float64): every non-zero value is exactly a bfloat16 (float16) number. A float32
    value in [0, 1] has 24 significant bits; one computed in float32 is a float16 number with probability about
    2^-13, so thousands of them all being one never happens by chance."""
    values = x[x != 0]
    if values.numel() < 100:
        return
    for dtype, name in LOW_DTYPES.items():
        if on_grid(values, dtype):
            bits = round(-math.log2(torch.finfo(dtype).eps)) + 1  # significant bits: 8 and 11
            norms = x.norm(dim=-1)
            off = (norms[norms > 0] - 1).abs().max().item()
            fail(
                f"every non-zero value of {what} is exactly a {name} number (all {values.numel()} of them), and the "
                f"examples' L2 norms are off from 1 by up to {off:.2g}: {name} keeps {bits} significant bits "
                f"(relative rounding ~{2.0**-bits:.0e})",
                f"the data were drawn or normalised in {name} and cast to float32 at the end (torch.rand(..., "
                f"dtype=torch.{name}), .half(), .to(torch.{name})): draw and normalise in float32, torch.rand's "
                "default dtype",
                code="low_precision",
            )


def fixed_count_failure(present: Tensor, what: str) -> None:
    """present [examples inst feats] (bool): the number k of present features per (example, instance) has a
    variance far below n_features·q·(1 - q), the Binomial variance at the observed rate q, which independent draws
    give whatever the rate. Over the checker's 18,000 rows the sample variance is within a few % of it (its relative
    standard deviation is about sqrt(2 / rows) ≈ 1%), so half of it is some 50 standard deviations away."""
    k = present.double().sum(-1)
    n_feats = present.shape[-1]
    q = k.mean().item() / n_feats
    if not 0 < q < 1:
        return
    binomial = n_feats * q * (1 - q)
    var = k.var().item()
    if var >= 0.5 * binomial:
        return
    counts = k.unique()
    if counts.numel() == 1:
        seen = f"every example has exactly {int(counts.item())} features present"
    else:
        seen = f"the number of present features per example takes only the values {counts.int().tolist()[:6]}"
    fail(
        f"{seen} (variance {var:.3g} over the examples; independent draws at this rate, {q:.2%}, give a "
        f"Binomial({n_feats}, {q:.3g}) count with variance {binomial:.3g})",
        "a fixed number of features was chosen per example (round(p · n_features) of them by argsort / randperm / "
        "topk ranks, or torch.multinomial without replacement): each feature is present independently with "
        "probability feature_probability, torch.rand(shape) < feature_probability, so the count varies from one "
        "example to the next (an example may even have none)",
        code="fixed_count",
    )
