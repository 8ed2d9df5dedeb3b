"""generate_batch: an output of the training set's shape whose examples are all the same row in each instance, e.g.
train_data.mean(0, keepdim=True).expand_as(train_data) (the mean example), one training example repeated, or another
statistic over the examples (sum, max, median). Full-batch training needs every training example as it is."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def collapsed_rows_failure(got: Tensor, data: Tensor) -> None:
    """Fail (code one_row_repeated) when every example of `got` [n inst feats] is the same row per instance."""
    if got.shape != data.shape or got.shape[0] < 2 or not bool(torch.isfinite(got).all()):
        return
    if not torch.allclose(got, got[:1].expand_as(got), rtol=1e-5, atol=1e-7):
        return
    row = got[0]
    stats = {
        "the mean example, train_data.mean(0)": data.mean(0),
        "the sum of the examples, train_data.sum(0)": data.sum(0),
        "the largest value per feature over the examples, train_data.amax(0)": data.amax(0),
        "the median over the examples, train_data.median(0)": data.median(0).values,
    }
    what = next((name for name, value in stats.items() if torch.allclose(row, value, rtol=1e-5, atol=1e-7)), None)
    if what is None:
        same = [i for i in range(data.shape[0]) if torch.allclose(row, data[i], rtol=1e-5, atol=1e-7)]
        what = f"training example {same[0]} (train_data[{same[0]}])" if same else "one row that is no training example"
    fail(
        f"generate_batch returned {data.shape[0]} copies of one example per instance: every row is {what}",
        "a reduction or an index over the examples axis, broadcast back to the full shape? Training is full batch on "
        "every training example: return self.train_data itself, unchanged",
        code="one_row_repeated",
    )
