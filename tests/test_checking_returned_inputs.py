"""Proofs for tests/returned_inputs.py: an output that is one of the call's own tensors (an argument, a parameter or
buffer of a model it was given or whose method it is) is named as that tensor (code returned_input); a constant
output, or one equal to no input, is not claimed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.checking import CheckFailed, expect_matches
from tests.mutants import call


class Scaler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rate", torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
        self.weight = nn.Parameter(torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.rate


def combine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).relu()


X = torch.tensor([[1.0, 2.0, -3.0], [0.5, -0.5, 4.0]])
Y = torch.tensor([[0.2, 2.5, 1.0], [-1.0, 0.0, 2.0]])


def failure(actual: torch.Tensor, expected: torch.Tensor, reference) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        expect_matches(actual, expected, "out", reference=reference)
    return info.value


def test_an_argument_handed_back_is_named_by_its_name():
    err = failure(Y.clone(), combine(X, Y), call(combine, X, Y))
    assert err.code == "returned_input"
    assert "the input `y`" in err.hint


def test_a_buffer_of_the_model_whose_method_was_called_is_named():
    model = Scaler()
    err = failure(model.rate.clone(), model(X), call(model.forward, X))
    assert err.code == "returned_input"
    assert "`self.rate`" in err.hint


def test_a_parameter_of_a_model_passed_as_an_argument_is_named():
    model = Scaler()
    err = failure(model.weight.detach().clone(), Scaler.forward(model, X), call(Scaler.forward, model, X))
    assert err.code == "returned_input"
    assert "`self.weight`" in err.hint


def test_a_constant_output_is_not_claimed_even_when_an_input_is_constant():
    zeros = torch.zeros(2, 3)
    err = failure(torch.zeros(2, 3), combine(X, zeros) + 1.0, call(combine, X, zeros))
    assert err.code != "returned_input"


def test_a_wrong_output_that_is_no_input_is_not_claimed():
    err = failure(combine(X, Y) + torch.tensor([[0.0, 0.3, 0.0], [0.0, 0.0, 0.1]]), combine(X, Y), call(combine, X, Y))
    assert err.code != "returned_input"
