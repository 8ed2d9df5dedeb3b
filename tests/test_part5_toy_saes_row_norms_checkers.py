"""Proofs for part 5's W_dec_normalized row read-backs (tests/part5_toy_saes_row_norms.py): the precedence slip
`** 1/2` and another power of the norm (norm_power), NaN in rows that are not zero told apart from the all-zero row
(norm_nan vs zero_row), and a numerator taken from W_enc transposed over W_dec's norms (numerator_source)."""

from __future__ import annotations

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _norm(fn):
    class S(P.ToySAE):
        @property
        def W_dec_normalized(self):
            return fn(self.W_dec, self.cfg.weight_normalize_eps, self)

    return S


def test_precedence_half_squared_norm():
    impl = _norm(lambda W, eps, s: W / ((W**2).sum(-1, keepdim=True) ** 1 / 2 + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_power")
    assert "‖W_row‖² / 2" in failure.message and "** 0.5" in failure.hint


def test_square_root_taken_twice():
    impl = _norm(lambda W, eps, s: W / ((W**2).sum(-1, keepdim=True).sqrt().sqrt() + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_power")
    assert "‖W_row‖^0.5" in failure.message


def test_row_dotted_with_sum_of_rows_is_nan_in_nonzero_rows():
    impl = _norm(lambda W, eps, s: W / (torch.einsum("isd,itd->is", W, W).sqrt()[..., None] + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "NOT zero" in failure.message and "isd,itd->is" in failure.hint and "add eps" not in failure.hint


def test_nan_in_nonzero_rows_without_a_known_cause_lists_causes():
    impl = _norm(lambda W, eps, s: W / ((W**2).sum(-1, keepdim=True) - 0.5).sqrt().add(eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "square root of a negative" in failure.hint


def test_nan_only_in_the_zero_row_still_asks_for_eps():
    impl = _norm(lambda W, eps, s: W / W.norm(dim=-1, keepdim=True))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "zero_row")
    assert "weight_normalize_eps" in failure.hint


def test_numerator_from_encoder_over_decoder_norms():
    impl = _norm(lambda W, eps, s: s.W_enc.transpose(-1, -2) / (W.norm(dim=-1, keepdim=True) + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "numerator_source")
    assert "W_enc transposed" in failure.message and "W_dec's own row norms" in failure.message
