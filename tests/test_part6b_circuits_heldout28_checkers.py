"""A held-out part 6b mistake: attribution_edges' adjacency returned as float64 meets the checker's float32
arithmetic first; the dtype clash is named in one line (checking's generic reading), not as the checker's trouble."""

import tests.part6b_circuits as checks
from solutions.part6b_circuits import attribution_edges as reference
from tests.proving import assert_fails


def test_float64_adjacency_is_named_as_a_dtype_clash():
    def attribution_edges(model, tc, frozen, graph):
        return reference(model, tc, frozen, graph).double()  # e.g. torch.zeros(n, n, dtype=torch.float64)

    err = assert_fails(checks.test_attribution_edges, attribution_edges, "dtype")
    assert "\n" not in err.message
