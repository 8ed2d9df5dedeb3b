"""Proofs for the round AM held-out part 4 mistakes: generate_batch editing the fixed training set in place."""

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def test_batch_clamped_in_place_is_named():
    def gb(self, batch_size=None):
        return self.train_data.clamp_(min=1e-6)

    err = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "modified"
    )
    assert "self.train_data" in err.message
