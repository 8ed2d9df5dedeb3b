"""Proofs for part 6 after the fresh39 measurement: top_activations whose indices are right but whose values were
read one position off (`values_index_shifted`) or elsewhere (`values_not_at_indices`)."""

from __future__ import annotations

import tests.part6_lm_saes as p6
from tests.proving import assert_fails


def test_values_read_before_the_shift():
    def top_activations(acts, k):
        S = acts.shape[1]
        _, flat = acts[:, 1:].flatten().topk(k)
        seq, pos = flat // (S - 1), flat % (S - 1)
        return acts[seq, pos], seq, pos + 1

    failure = assert_fails(p6.test_top_activations, top_activations, "values_index_shifted")
    assert "pos_idx -1" in failure.message


def test_values_from_elsewhere():
    def top_activations(acts, k):
        S = acts.shape[1]
        vals, flat = acts[:, 1:].flatten().topk(k)
        return vals * 0.5, flat // (S - 1), flat % (S - 1) + 1

    assert_fails(p6.test_top_activations, top_activations, "values_not_at_indices")
