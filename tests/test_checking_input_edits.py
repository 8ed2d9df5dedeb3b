"""Proofs for tests/input_edits.py's copy-free reading: when the solution, re-run on the call's inputs after the
learner's call, no longer reproduces the expected values, the call wrote into an input (code in_place); a call
that left its inputs alone is never told so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.checking import CheckFailed, expect_matches
from tests.mutants import call


def solution(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).sum(-1)


def edits_x(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x -= y  # the slip: x is the caller's tensor
    return x.pow(2).sum(-1) + 0.5


def wrong_but_clean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x + y).pow(2).sum(-1)


def check(impl) -> None:
    x = torch.tensor([[1.0, 2.0, -3.0], [0.5, -0.5, 4.0]])
    y = torch.tensor([[0.2, 2.5, 1.0], [-1.0, 0.0, 2.0]])
    expected = solution(x, y)  # computed before the learner's call, as the checkers do
    out = impl(x, y)
    expect_matches(out, expected, "out", reference=call(solution, x, y))


def test_an_input_written_into_is_named():
    with pytest.raises(CheckFailed) as info:
        check(edits_x)
    assert info.value.code == "in_place"
    assert "changed one of its inputs in place" in info.value.hint


def test_a_wrong_call_that_leaves_its_inputs_alone_is_not_told_so():
    with pytest.raises(CheckFailed) as info:
        check(wrong_but_clean)
    assert info.value.code != "in_place"


class Shift(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b


def test_a_parameter_of_a_given_model_edited_in_place_is_named():
    model, x = Shift(), torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    expected = model(x).detach()
    with torch.no_grad():
        model.b.mul_(2)  # what a learner's function given `model` did
    with pytest.raises(CheckFailed) as info:
        expect_matches(model(x).detach(), expected, "out", reference=call(Shift.forward, model, x))
    assert info.value.code == "in_place"
