"""generate_dataset's values shared along an axis: across instances, across examples, or across both at once (round
BB: a value draw of shape [n_features], or [1, 1, n_features], broadcast over every example and instance, was named
as shared across instances only, with the hint naming a [n_examples, 1, n_features] draw it did not make)."""

from __future__ import annotations

from torch import Tensor

import tests.part4_double_descent_mistakes as mistakes
from tests.checking import fail


def shared_values_failure(x: Tensor) -> None:
    """x [examples inst feats] (float64, CPU): present values proportional across instances and/or examples."""
    n_inst = x.shape[1]
    across_examples = mistakes.shared_values(x[0::2], x[1::2])
    for i in range(n_inst):
        for j in range(i + 1, n_inst):
            share = mistakes.shared_values(x[:, i], x[:, j])
            if share > 0.5 and across_examples > 0.5:
                fail(
                    f"a feature's present values are proportional across instances {i} and {j} ({share:.0%} of "
                    f"examples) and across examples ({across_examples:.0%} of example pairs): one value per feature, "
                    "reused by every example and instance",
                    "the values were drawn with shape [n_features] (or [1, 1, n_features]) and broadcast over the "
                    "examples and instances: draw one value per entry, torch.rand(n_examples, n_inst, n_features)",
                    code="values_shared_all",
                )
            if share > 0.5:
                fail(
                    f"where a feature is present in instances {i} and {j} of the same example, its values are "
                    f"proportional ({share:.0%} of examples): the values are shared across instances",
                    "draw the values with the full shape [n_examples, n_inst, n_features], not [n_examples, 1, "
                    "n_features] broadcast over instances",
                    code="values_shared_instances",
                )
    if across_examples > 0.5:
        fail(
            f"features present in two examples have proportional values ({across_examples:.0%} of example pairs): "
            "the values are shared across examples",
            "draw a value for every example: torch.rand(n_examples, n_inst, n_features), not one row reused",
            code="values_shared_examples",
        )
