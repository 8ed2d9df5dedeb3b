"""A held-out part 5 mistake: generate_batch's h cast to half precision meets the checker's own float32 arithmetic
first; the dtype clash is named in one line (checking's generic reading), not reported as the checker's trouble."""

import einops

import tests.part5_toy_saes as checks
from solutions.part5_toy_saes import ToySAE
from tests.proving import assert_fails


def test_half_precision_batch_is_named_as_a_dtype_clash():
    def generate_batch(self, batch_size):
        features = self.model.generate_batch(batch_size)
        return einops.einsum(features, self.model.W, "b i f, i d f -> b i d").half()

    err = assert_fails(checks.test_generate_batch, type("S", (ToySAE,), {"generate_batch": generate_batch}), "dtype")
    assert "\n" not in err.message and ".half()" in err.hint
