"""Proofs for the readings of an error raised in the learner's code (`tests/learner_errors.py`) that quote the
learner's own expression: a column taken where a row was meant."""

from __future__ import annotations

import torch

from tests.learner_errors import _error_hint


def _hint_of(product, *args) -> str:
    try:
        product(*args)
    except RuntimeError as e:  # the learner's frame has ended: its failing line is the one that raised
        return _error_hint(e)
    raise AssertionError("no error")


def test_a_column_where_a_row_was_meant_is_quoted_as_a_question():
    acts, W_dec = torch.randn(6, 5, 64), torch.randn(1024, 64)
    added = lambda acts, W_dec: acts + 2.0 * W_dec[:, 3]  # broadcast error: 64 against 1024
    hint = _hint_of(added, acts, W_dec)
    assert "W_dec[:, 3] is column 3 of W_dec [1024, 64] (length 1024)" in hint and "W_dec[3] (length 64)" in hint


def test_the_column_reading_needs_both_sizes_in_the_error():
    acts, W_dec = torch.randn(6, 5, 48), torch.randn(1024, 64)
    added = lambda acts, W_dec: acts + W_dec[:, 3]  # 48 against 1024: the row length 64 plays no part
    assert "is column 3" not in (_hint_of(added, acts, W_dec) or "")
