"""Held-out part 4 mistakes: generate_batch editing the fixed training set in place, or returning it sparse."""

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


def test_sparse_batch_is_named_in_one_line():
    """A sparse tensor met inside the checker (torch's dispatcher error lists every backend) is named as sparse in
    one line, not reported as the checker's own trouble."""

    def gb(self, batch_size=None):
        return self.train_data.to_sparse()

    err = assert_fails(checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "sparse")
    assert "\n" not in err.message and ".to_dense()" in err.hint
