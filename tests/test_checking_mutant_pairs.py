"""Proofs for the two-change diagnosis (`tests/mutants.py`): two slips at once are named by the pair of edits that
reproduces them, a single slip still by its one edit, and nothing is claimed for an output no pair explains."""

from __future__ import annotations

import pytest
import torch

from tests.checking import CheckFailed, expect_matches
from tests.mutants import call, one_change_diagnosis, two_change_diagnosis
from tests.test_checking_mutants import THRESHOLD, _inputs, solution_loss


def _bias_forgotten_and_summed(h, W, b, imp, t):
    pre = h @ W  # slip 1: no bias
    return (imp * ((pre.relu() * (pre > t)) @ W.T - h) ** 2).sum(-1)  # slip 2: a sum for the mean


def _gate_flipped_and_importance_forgotten(h, W, b, imp, t):
    pre = h @ W + b
    acts = torch.relu(pre) * (pre < t)  # slip 1: the gate's comparison the wrong way round
    return ((acts @ W.T - h) ** 2).mean(dim=-1)  # slip 2: importance left out


def _check(actual):
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    with pytest.raises(CheckFailed) as err:
        expect_matches(actual, expected, "loss", dims="batch", reference=call(solution_loss, *inputs, THRESHOLD))
    return err.value


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_bias_forgotten_and_summed, ("a term left out", "`sum` where `mean` belongs")),
        (_gate_flipped_and_importance_forgotten, ("another comparison", "a factor left out")),
    ],
)
def test_two_slips_are_named_by_the_pair_of_edits(wrong, words):
    failure = _check(wrong(*_inputs(), THRESHOLD))
    assert failure.code == "two_changes", failure.hint
    assert "two changes" in failure.hint and all(w in failure.hint for w in words), failure.hint


def test_one_slip_is_still_named_by_its_one_edit():
    h, W, _b, imp = _inputs()
    actual = (imp * ((torch.relu(h @ W) * (h @ W > THRESHOLD)) @ W.T - h) ** 2).mean(-1)
    assert _check(actual).code == "one_change"


def test_no_pair_is_claimed_for_an_output_no_pair_explains():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    actual = expected + 0.1 * torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    failure = _check(actual)
    assert failure.code == "values" and "two changes" not in (failure.hint or "")


def test_the_pair_search_answers_only_for_the_output_the_one_change_search_saw():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    reference = call(solution_loss, *inputs, THRESHOLD)
    actual = _bias_forgotten_and_summed(*inputs, THRESHOLD)
    assert one_change_diagnosis(reference, actual, expected) is None
    assert two_change_diagnosis(reference, actual.clone(), expected) is None  # another output: nothing pending
    assert one_change_diagnosis(reference, actual, expected) is None
    assert "two changes" in two_change_diagnosis(reference, actual, expected)
    assert two_change_diagnosis(reference, actual, expected) is None  # answered once


def test_the_pair_search_leaves_the_inputs_alone():
    inputs = _inputs()
    saved = [x.clone() for x in inputs]
    _check(_gate_flipped_and_importance_forgotten(*inputs, THRESHOLD))
    assert all(torch.equal(x, y) for x, y in zip(inputs, saved, strict=True))
