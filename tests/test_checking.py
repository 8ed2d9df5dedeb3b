"""The checker framework itself: outcomes, messages, seeding, statistics."""

from __future__ import annotations

import math

import pytest
import torch

from tests.checking import (
    CheckFailed,
    NotDone,
    bernstein_tolerance,
    checker,
    expect_close,
    expect_frequency,
    expect_scalar,
    expect_tensor,
)


@checker("demo")
def check_demo(impl, device):
    return impl(device)


def test_success_prints_one_line(capsys):
    check_demo(lambda d: "fine")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "demo: passed" in out[0]


def test_stub_is_one_line():
    def impl(device):
        raise NotImplementedError

    with pytest.raises(NotDone) as info:
        check_demo(impl)
    assert str(info.value).count("\n") == 0 and "not implemented yet" in str(info.value)
    rendered = info.value._render_traceback_()
    assert len(rendered) == 1


def test_learner_exception_is_named_with_learner_frames_only():
    def impl(device):
        return {}["missing"]

    with pytest.raises(CheckFailed) as info:
        check_demo(impl)
    assert info.value.code == "exception"
    assert "your code raised KeyError" in str(info.value) and "impl" in str(info.value)
    assert "tests/checking.py" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "kwargs", "code"),
    [
        (None, {}, "returned_none"),
        ([1.0], {}, "not_tensor"),
        (torch.zeros(3, 2), {"shape": (2, 3), "dims": "a b"}, "shape"),
        (torch.zeros(3, dtype=torch.float64), {"dtype": torch.float32}, "dtype"),
        (torch.zeros(3), {"device": torch.device("meta")}, "device"),
        (torch.tensor([1.0, float("nan")]), {}, "not_finite"),
    ],
)
def test_expect_tensor_names_each_problem(value, kwargs, code):
    with pytest.raises(CheckFailed) as info:
        expect_tensor(value, "out", **kwargs)
    assert info.value.code == code


def test_shape_message_names_axes_and_spots_transposes():
    with pytest.raises(CheckFailed) as info:
        expect_tensor(torch.zeros(3, 2), "out", shape=(2, 3), dims="inst feats")
    assert "inst=2, feats=3" in str(info.value) and "wrong order" in info.value.hint


def test_expect_scalar_and_close():
    with pytest.raises(CheckFailed):
        expect_scalar(torch.zeros(2), "loss")
    expect_close(torch.ones(3) + 1e-7, torch.ones(3), "x")
    with pytest.raises(CheckFailed) as info:
        expect_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), "x", dims="feat")
    assert "feat 1" in str(info.value)


def test_bernstein_tolerance_is_a_valid_bound():
    # For n Bernoulli(p) draws the bound must exceed the exact two-sided 1e-7 quantile (normal approx: 5.3 sd).
    n, p, delta = 10_000, 0.2, 1e-7
    t = bernstein_tolerance(n, p * (1 - p), 1.0, delta)
    assert t > 5.3 * math.sqrt(p * (1 - p) / n)
    assert t < 8 * math.sqrt(p * (1 - p) / n)  # and not uselessly loose
    assert bernstein_tolerance(4 * n, p * (1 - p), 1.0, delta) < t


def test_expect_frequency_hint_function():
    with pytest.raises(CheckFailed) as info:
        expect_frequency(torch.tensor([0.8]), 0.2, 10_000, "rate", hint=lambda o, e: f"saw {o:.1f}")
    assert info.value.hint == "saw 0.8"
    expect_frequency(torch.tensor([0.201]), 0.2, 10_000, "rate")


def test_checker_seeds_and_restores_rng():
    draws = []
    check_demo(lambda d: draws.append(torch.rand(1).item()))
    check_demo(lambda d: draws.append(torch.rand(1).item()))
    assert draws[0] == draws[1], "checks run seeded"
    torch.manual_seed(5)
    a = torch.rand(1)
    torch.manual_seed(5)
    check_demo(lambda d: torch.rand(100))
    assert torch.equal(torch.rand(1), a), "the learner's RNG state is left alone"
