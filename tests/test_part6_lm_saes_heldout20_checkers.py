"""Proofs for part 6's diagnoses added after the fresh37 held-out measurement: top_activations whose values hold the
-inf used to mask position 0 (the BOS entries came back), named by a probe with fewer sequences than k: a ranking by
|acts| after the mask (abs turns -inf into +inf) or an ascending ranking."""

from __future__ import annotations

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _masked_then(acts, k, order):
    m = acts.clone()
    m[:, 0] = -float("inf")
    flat = m.flatten()
    idx = flat.abs().topk(k).indices if order == "abs" else flat.topk(k, largest=False).indices
    return flat[idx], idx // acts.shape[1], idx % acts.shape[1]


def test_top_activations_abs_after_inf_mask_is_named():
    err = assert_fails(checks.test_top_activations, lambda a, k: _masked_then(a, k, "abs"), "abs_ranked")
    assert "position 0" in err.message and "+inf" in err.hint


def test_top_activations_ascending_after_inf_mask_is_named():
    err = assert_fails(checks.test_top_activations, lambda a, k: _masked_then(a, k, "asc"), "smallest")
    assert "LARGEST" in err.hint
