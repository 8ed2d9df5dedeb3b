"""Proofs for part 7 after held-out round BB (fresh55).

* AND / OR that read the pair's values where presence is meant (AND as a + b == 2, as a + b > 1.5): right on the
  checker's 0/1 inputs, wrong on signed ones. The layout probe (`pair_reads`) read such an AND as "reads no feature"
  and named the pair layout, which was right; an output that no single change flips now says nothing about the
  layout, and `value_reads` names the value test (read back exactly when it is a usual one).
* argmax labels where the "some feature present" test also holds on a row of zeros ((x >= 0).any(-1)): the
  `argmax_empty` hint now names both causes (no test, or one true on zeros).
* basis_alignment upside down (‖Wᵢ‖ / max|W_ki|): `alignment_inverted`, was a restated formula.
* the round's correct variants pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part7_open_problems as P
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part7_open_problems_heldout10_checkers import _alignment
from tests.test_part7_open_problems_heldout15_checkers import _argmax
from tests.test_part7_open_problems_heldout49_checkers import _pair_target
from utils.part7_open_problems import NO_LABEL


def test_and_as_value_sum_names_the_value_test_not_the_layout():
    summed = _pair_target(lambda a, b: ((a + b) == 2).to(a.dtype))
    err = assert_fails(checks.test_compute_target, summed, "pair_value_test")
    assert "a + b == 2" in err.hint and "!= 0" in err.hint


def test_and_as_other_value_test_described():
    above = _pair_target(lambda a, b: ((a + b) > 1.5).to(a.dtype))
    err = assert_fails(checks.test_compute_target, above, "pair_value_test")
    assert "reads the VALUES" in err.hint


def test_argmax_presence_true_on_zero_rows_named():
    fn = lambda x: torch.where((x >= 0).any(-1), x.argmax(-1), NO_LABEL)
    err = assert_fails(checks.test_compute_target, _argmax(fn), "argmax_empty")
    assert "(x >= 0).any(-1)" in err.hint


def test_alignment_upside_down_named():
    inverted = _alignment(lambda W: W.norm(dim=1) / W.abs().amax(1).clamp_min(1e-12))
    assert_fails(checks.test_basis_alignment, inverted, "alignment_inverted")


def test_round_correct_variants_pass():
    def targets(features, target):
        if target == "max_pairs":
            a, b = features[..., ::2], features[..., 1::2]
            return (a + b + (a - b).abs()) / 2
        if target == "or_pairs":
            return features.unflatten(-1, (-1, 2)).ne(0).any(-1).to(features.dtype)
        if target == "argmax":
            label = features.topk(1, dim=-1).indices[..., 0]
            return torch.where(features.count_nonzero(-1) > 0, label, torch.full_like(label, NO_LABEL))
        return P.compute_target(features, target)

    assert_passes(checks.test_compute_target, targets)
    assert_passes(checks.test_basis_alignment, lambda W: F.normalize(W, dim=1).abs().amax(dim=1))
