"""Proofs for the readings of an error raised in the learner's code (`tests/learner_errors.py`) that quote the
learner's own expression: a column taken where a row was meant."""

from __future__ import annotations

import torch

from tests.learner_errors import _error_hint


def _hint_of(product, *args) -> str:
    try:
        product(*args)
    except (RuntimeError, TypeError, AttributeError) as e:  # the learner's frame has ended: its line raised
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


def _grad_times_input(x):
    y = (x * 2).sum()  # x is not a leaf that requires grad: backward never fills x.grad
    return x.grad * x, y


def _grad_cloned(x):
    return x.grad.clone()


def _none_times_tensor(x):
    return None * x


def test_a_grad_still_none_is_named():
    for raise_it in (_grad_times_input, _grad_cloned):
        hint = _hint_of(raise_it, torch.randn(3))
        assert "`.grad` read on that line is still None" in hint, hint


def test_a_none_without_grad_keeps_the_general_hint():
    hint = _hint_of(_none_times_tensor, torch.ones(2))
    assert "still None" not in hint and "a value is None" in hint, hint


def _spread_without_new_axis(f, W_dec):
    return f * W_dec[3]  # f [batch seq] times a row [d_in]: f[..., None] was meant


def _transposed_operand(a, b):
    return a + b


def _column_added(acts, W_dec):
    out = acts + W_dec[:, 3]
    return out


def test_the_clashing_operands_are_quoted_with_their_shapes():
    hint = _hint_of(_spread_without_new_axis, torch.randn(4, 16), torch.randn(1024, 64))
    assert "the sizes clash in `f * W_dec[3]`: f is [4, 16], W_dec[3] is [64]" in hint, hint
    assert "`f[..., None] * W_dec[3]` would broadcast" in hint, hint
    hint = _hint_of(_transposed_operand, torch.randn(3, 5), torch.randn(5, 3))
    assert "`(a).mT` or `(b).mT` would broadcast: one operand transposed?" in hint, hint


def test_a_column_gets_no_unsqueeze_fix_only_its_shapes_and_the_row_reading():
    hint = _hint_of(_column_added, torch.randn(6, 5, 64), torch.randn(1024, 64))
    assert "acts is [6, 5, 64], W_dec[:, 3] is [1024]" in hint and "would broadcast" not in hint, hint
    assert "W_dec[:, 3] is column 3 of W_dec [1024, 64]" in hint, hint
