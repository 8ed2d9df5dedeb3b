"""The checker framework itself: outcomes, messages, seeding, statistics, diagnosis."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tests.checking import (
    CheckFailed,
    NotDone,
    _describe_error,
    audit_catalogues,
    bernstein_tolerance,
    checker,
    expect_close,
    expect_frequency,
    expect_matches,
    expect_scalar,
    expect_tensor,
    generic_diagnosis,
    input_sizes,
)
from tests.sizes import note_inputs


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
        (torch.eye(3).to_sparse(), {"shape": (3, 3)}, "sparse"),
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


@pytest.mark.parametrize(
    ("got", "shape", "words"),
    [
        ((3,), (3, 5), "an axis is missing (one of feats=5)"),
        ((3, 5, 1), (3, 5), "keepdim=True"),
        ((3, 5, 7), (3, 5), "an extra axis of size 7"),
        ((5,), (3,), "axis inst has size 5, not 3"),
        ((3, 4), (3, 5), "axis feats has size 4, not 5"),
        ((15,), (3, 5), "the right number of elements"),
        ((2, 2, 2), (3, 5), "compare your result's axes one by one"),
    ],
)
def test_shape_hint_says_what_a_wrong_shape_suggests(got, shape, words):
    with pytest.raises(CheckFailed) as info:
        expect_tensor(torch.zeros(got), "out", shape=shape, dims=" ".join(["inst", "feats"][: len(shape)]))
    assert info.value.code == "shape" and words in info.value.hint, info.value.hint


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


# --------------------------------------------------------------------------------------------
# Diagnosis: catalogues of mutants, generic relations, audits, the kind of object passed
# --------------------------------------------------------------------------------------------
def _code(actual, expected, mistakes=(), dims=None):
    with pytest.raises(CheckFailed) as info:
        expect_matches(actual, expected, "out", mistakes, dims=dims, hint="the formula", code="values")
    return info.value


def test_catalogue_names_the_matching_mutant_and_both_when_two_fit():
    expected = torch.tensor([1.0, 2.0, 3.0])
    wrong = torch.tensor([1.0, 2.0, 4.0])
    err = _code(wrong, expected, [("no_bias", "add the bias", wrong), ("other", "x", expected * 7)])
    assert err.code == "no_bias" and err.hint == "add the bias"
    both = _code(wrong, expected, [("a", "hint a", wrong), ("b", "hint b", wrong.clone())])
    assert both.code == "a" and "hint a" in both.hint and "hint b" in both.hint


@dataclasses.dataclass
class _Config:
    n_features: int
    d_hidden: int
    n_instances: int


def test_generic_diagnosis_names_unlisted_mistakes():
    torch.manual_seed(0)
    e = torch.randn(4, 3, 5) + 0.1
    dims = "batch inst feats"
    assert _code(2 * e, e, dims=dims).code == "scale"
    assert "`inst`" in _code(3 * e, e, dims=dims).hint  # a factor equal to an axis size names the axis
    rms = _code(e / 5**0.5, e, dims=dims)  # divided by a norm where a root-mean-square was asked: √5 = √feats
    assert rms.code == "scale" and "√5" in rms.hint and "`feats`" in rms.hint and "root-mean-square" in rms.hint
    # a factor that is no output axis but a ratio of two input sizes: a division by the wrong count
    ratio = generic_diagnosis(e * 7 / 8, e, dims, sizes=(8, 7, 4))
    assert ratio is not None and ratio[0] == "scale" and "7/8" in ratio[1] and "divided by 8 where 7" in ratio[1]
    assert "a missing or extra constant factor" in generic_diagnosis(e * 1.37, e, dims, sizes=(8, 7))[1]
    # a factor 2 or ½ is also the ½·MSE convention: both causes are listed when 2 is a size too
    odd = torch.randn(3, 5, 7) + 0.1  # no axis whose size or root is 2
    half = generic_diagnosis(odd / 2, odd, "inst feats d", sizes=(2, 7))[1]
    assert "½ convention" in half and "1/2, a size of your inputs" in half
    # the direction of a size factor is named: divided once too often (a mean, then ÷ n again) or not divided at all
    assert "once too often" in _code(e / 3, e, dims=dims).hint and "`inst`" in _code(e / 3, e, dims=dims).hint
    assert "left out" in _code(3 * e, e, dims=dims).hint
    assert "divided by that count once too often" in generic_diagnosis(odd / 9, odd, "inst feats d", sizes=(9,))[1]
    assert "½ convention" in generic_diagnosis(e * 2, e, dims)[1]
    # sizes named by config fields (every field of that size is listed: no guess between them)
    model = torch.nn.Linear(2, 2)
    model.cfg = _Config(n_features=7, d_hidden=8, n_instances=8)
    named = generic_diagnosis(e * 7 / 8, e, dims, sizes=input_sizes(model))[1]
    assert "7 (cfg.n_features)" in named and "8 (cfg.d_hidden or cfg.n_instances)" in named
    assert _code(-e, e, dims=dims).code == "sign"
    assert _code(e + 0.5, e, dims=dims).code == "offset"
    # a shift by a statistic of the right values is named; any other shift lists every cause
    assert "their max" in _code(e - e.max(), e, dims=dims).hint
    assert "logsumexp" in _code(e - e.flatten().logsumexp(0), e, dims=dims).hint
    assert "their median" in _code(e - e.median(), e, dims=dims).hint
    other = _code(e + 0.5, e, dims=dims).hint
    assert "a bias added twice" in other and "log_softmax" in other and "their max" not in other
    assert "an eps" not in other and "an eps" in _code(e + 1e-3, e, dims=dims).hint  # an eps-sized shift: a stray eps
    assert _code(e[:, :1].expand_as(e).clone(), e, dims=dims).code == "first_slice_for_all"
    # a constant output (all 0) is not read as "slice 0 for all" even where the right slice 0 is all 0 too
    zero_first = e.clone()
    zero_first[:, 0] = 0.0
    assert _code(torch.zeros_like(e), zero_first, dims=dims).code != "first_slice_for_all"
    square = torch.randn(3, 3)
    assert _code(square.T.clone(), square).code == "transposed"
    one = e.clone()
    one[:, 2] += 1.0
    err = _code(one, e, dims=dims)
    assert err.code == "one_slice" and "`inst` 2" in err.hint
    clamped = e.clone()
    clamped[:, 0] = e[:, 1]  # max(i, 1): slice 0 computed as slice 1
    assert "an index clamped to 1" in _code(clamped, e, dims=dims).hint
    assert _code(torch.randn(4, 3, 5), e, dims=dims).code == "values"  # nothing recognisable: the formula's hint


def test_audit_reports_mutants_that_the_inputs_cannot_separate():
    expected = torch.ones(3)
    with audit_catalogues() as problems:
        expect_matches(expected.clone(), expected, "out", [("same_as_reference", "h", expected.clone())])
        expect_matches(expected.clone(), expected, "out", [("a", "h", 2 * expected), ("b", "h", 2 * expected)])
    assert len(problems) == 2 and "same_as_reference" in problems[0] and "'a' and 'b'" in problems[1]
    with audit_catalogues() as problems:
        expect_matches(expected.clone(), expected, "out", [("a", "h", 2 * expected), ("b", "h", 3 * expected)])
    assert problems == []


@checker("kinds", kind="class")
def check_class(impl, device):
    return "ok"


@checker("kinds", kind="function")
def check_function(impl, device):
    return "ok"


class _Model:
    pass


@pytest.mark.parametrize(
    ("check", "impl", "code"),
    [
        (check_class, None, "passed_none"),
        (check_class, _Model(), "not_a_class"),
        (check_class, lambda x: x, "not_a_class"),
        (check_function, _Model, "not_a_function"),
        (check_function, 3, "not_a_function"),
    ],
)
def test_the_wrong_kind_of_object_is_named(check, impl, code):
    with pytest.raises(CheckFailed) as info:
        check(impl)
    assert info.value.code == code and len(str(info.value).splitlines()) <= 2


def test_a_meta_tensor_is_named_not_crashed_on():
    with pytest.raises(CheckFailed) as info:
        expect_scalar(torch.empty((), device="meta"), "loss")
    assert info.value.code == "device"


def _broadcast_mismatch():
    return torch.zeros(3, 7) + torch.zeros(2, 7)


def _chained_comparison():
    x = torch.tensor([0.5, 2.0])
    return 0 <= x <= 1


def _tuple_from_max():
    return torch.ones(2, 3).abs().max(dim=1) / 2


def _in_place_on_leaf():
    return torch.ones(3, requires_grad=True).add_(1)


def _grad_without_autograd():
    x = torch.ones(3, requires_grad=True)
    with torch.no_grad():
        y = (x * 2).sum()
    return torch.autograd.grad(y, x)


def _flat_index():
    scores = torch.arange(33.0).reshape(3, 11)  # the flat argmax is 32
    return scores[0, scores.argmax()]


def _topk_too_many():
    return torch.rand(2, 5).topk(7, dim=-1)


def _number_as_tensor():
    alpha, x = torch.ones(3), 0.5  # forward(ctx, alpha, x) called as forward(ctx, x, alpha)
    return x.clamp(0, 1) * alpha


def _maximum_with_int():
    return torch.maximum(torch.ones(3), 0)


def _cat_mismatch():
    return torch.cat([torch.ones(2, 3), torch.ones(2, 4)])


def _unknown_error():
    raise ValueError("something particular to this exercise")


@pytest.mark.parametrize(
    ("raise_it", "words"),
    [
        (_broadcast_mismatch, "sizes 3 and 2"),
        (_chained_comparison, "(x >= 0) & (x <= 1)"),
        (_tuple_from_max, "max(dim=...) returns a (values, indices) pair"),
        (_in_place_on_leaf, "changed in place"),
        (_grad_without_autograd, "computed without autograd"),
        (_flat_index, "a flat index"),
        (_topk_too_many, "more entries than the axis has"),
        (_number_as_tensor, "another order than the signature"),
        (_maximum_with_int, "x.clamp(min=...)"),
        (_cat_mismatch, "torch.cat joins along dim 0"),
    ],
)
def test_a_common_error_in_learner_code_gets_a_hint(raise_it, words):
    with pytest.raises(Exception) as info:
        raise_it()
    described = _describe_error(info.value)
    assert described.code == "exception" and words in described.hint, described.hint


def test_an_unrecognised_error_keeps_its_own_message_only():
    with pytest.raises(ValueError) as info:
        _unknown_error()
    described = _describe_error(info.value)
    assert described.code == "exception" and described.hint is None and "particular" in str(described)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (torch.ones(3, dtype=torch.bool), ".float()"),
        (torch.ones(3, dtype=torch.int64), "integer"),
        (torch.ones(3, dtype=torch.float64), "upcast"),
        (torch.ones(3, dtype=torch.float16), "lowers the precision"),
    ],
)
def test_a_wrong_dtype_gets_the_hint_of_its_direction(value, words):
    with pytest.raises(CheckFailed) as err:
        expect_tensor(value, "x", dtype=torch.float32)
    assert err.value.code == "dtype" and words in err.value.hint


# --------------------------------------------------------------------------------------------
# Noted inputs: a wrong size, or a size in an error, named by the input it comes from
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _SizesConfig:
    n_inst: int = 3
    d_model: int = 128


@checker("sizes_demo")
def check_sizes_demo(impl, device):
    note_inputs(_SizesConfig(), terms=torch.zeros(3, 5), n_tokens=470)
    expect_tensor(impl(), "out", shape=(5,), dims="k")


def test_wrong_size_named_by_the_noted_input():
    with pytest.raises(CheckFailed) as err:
        check_sizes_demo(lambda: torch.zeros(3))
    assert "3 is cfg.n_inst or terms.shape[0]" in err.value.hint
    with pytest.raises(CheckFailed) as err:
        check_sizes_demo(lambda: torch.zeros(470))
    assert "470 is n_tokens" in err.value.hint
    with pytest.raises(CheckFailed) as err:  # a size no input has: the generic hint, nothing invented
        check_sizes_demo(lambda: torch.zeros(7))
    assert "check which axis" in err.value.hint and " is " not in err.value.hint.split(":")[0]


def test_sizes_in_an_error_are_named_and_notes_end_with_the_run():
    def impl():
        return torch.zeros(3) + torch.zeros(5)

    with pytest.raises(CheckFailed) as err:
        check_sizes_demo(impl)
    assert (
        err.value.code == "exception"
        and "3 is cfg.n_inst" in err.value.hint
        and "5 is terms.shape[1]" in err.value.hint
    )
    with pytest.raises(CheckFailed) as err:  # another checker, no notes: nothing named from the last run
        check_demo(lambda d: torch.zeros(3) + torch.zeros(5))
    assert "cfg.n_inst" not in (err.value.hint or "")


def test_factor_named_by_a_noted_count():
    @checker("factor_demo")
    def check(impl, device):
        note_inputs(n_tokens=470)
        expected = torch.linspace(1, 2, 6)
        expect_matches(impl(expected), expected, "out", [], dims="k")

    with pytest.raises(CheckFailed) as err:
        check(lambda e: e / 470)
    assert "470 (n_tokens)" in err.value.hint


def test_shape_error_shows_the_shapes_on_the_failing_line():
    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W_enc = torch.nn.Parameter(torch.zeros(2, 2))

        def encode(self, x, U):
            return torch.einsum("ioc,icd->iod", x, U) @ self.W_enc

    @checker("line_shapes_demo")
    def check(impl, device):
        impl(torch.zeros(7, 4, 5), torch.zeros(3, 5, 6))

    with pytest.raises(CheckFailed) as err:
        check(Encoder().encode)
    assert "on that line, x: [7, 4, 5], U: [3, 5, 6], self.W_enc: [2, 2]" in err.value.hint


def test_a_checkers_own_variables_name_sizes_but_not_the_output_under_judgement():
    @checker("locals_demo")
    def check(impl, device):
        features = torch.zeros(4, 3, 6)
        out = impl(features)
        expect_tensor(out, "out", shape=(4, 3), dims="batch inst")

    with pytest.raises(CheckFailed) as err:
        check(lambda features: features.sum(1))  # the instance axis reduced where the features' belongs
    assert "6 is features.shape[2]" in err.value.hint and "out.shape" not in err.value.hint


def test_generic_hints_for_a_borrowed_slice_a_normalisation_and_an_index_left_out():
    e = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    borrowed = e.clone()
    borrowed[:, 2] = e[:, 0]  # instance 2 computed from instance 0's values (a stale loop variable)
    err = _code(borrowed, e, dims="batch inst feats")
    assert err.code == "one_slice" and "`inst` 2 got the values `inst` 0 should have" in err.hint
    assert "divided by their largest |value|" in _code(e / e.abs().max(), e).hint
    assert "divided by their L2 norm" in _code(e / e.norm(), e).hint

    @checker("index_demo")
    def check(impl, device):
        W_dec, W_U = torch.zeros(1024, 16), torch.zeros(16, 50)
        expect_tensor(impl(W_dec, W_U), "effect", shape=(50,), dims="d_vocab")

    with pytest.raises(CheckFailed) as failure:
        check(lambda W_dec, W_U: W_dec @ W_U)  # `[latent]` forgotten: every latent's effect
    assert "1024 is W_dec.shape[0]" in failure.value.hint and "an index that picks one entry" in failure.value.hint


def test_a_missing_attribute_lists_what_the_object_has_and_common_type_errors_get_hints():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W = torch.nn.Parameter(torch.zeros(2, 2))
            self.b_final = torch.nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return x @ self.W1  # the name from another exercise's model

    @checker("error_demo")
    def check(impl, device):
        impl(torch.ones(3, 2))

    hints = {}
    for name, impl in {
        "attribute": Model(),
        "method": lambda x: x.abs - 1,
        "called": lambda x: x(),
    }.items():
        with pytest.raises(CheckFailed) as failure:
            check(impl)
        hints[name] = failure.value.hint
    assert "`Model` has no `W1`; it has `W`, `b_final`" in hints["attribute"] and "training" not in hints["attribute"]
    assert "`x.abs()`" in hints["method"]
    assert "a tensor was called like a function" in hints["called"]


def test_a_count_off_by_one_is_named():
    @checker("count_demo")
    def check(impl, device):
        acts = torch.rand(40, 3, 7, generator=torch.Generator().manual_seed(0))
        expected = (acts > 0.5).double().sum((0, 2)) / 7
        expect_matches(impl(acts).double(), expected, "fraction", [], dims="inst")

    with pytest.raises(CheckFailed) as failure:
        check(lambda acts: (acts > 0.5).double().sum((0, 2)) / 6)  # divided by d_sae - 1
    assert "7/6: divided by 6 where 7 belongs, a count off by one" in failure.value.hint


def test_axes_computed_in_another_order_then_reshaped_are_named():
    e = torch.randn(6, 3, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    wrong = e.permute(1, 0, 2).reshape(6, 3, 5)  # computed as [inst batch d_in], then reshaped
    err = _code(wrong, e, dims="batch inst d_in")
    assert err.code == "reshaped_not_permuted" and "[inst batch d_in]" in err.hint


def test_axes_read_backwards_are_named():
    e = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    err = _code(e.flip(0), e, dims="inst r d")  # an ascending order undone on the wrong axis
    assert err.code == "axes_reversed" and "`inst` (axis 0) reversed" in err.hint and ".flip(0)" in err.hint
    err = _code(e.flip(0, 1), e, dims="inst r d")
    assert err.code == "axes_reversed" and "`inst` (axis 0) and `r` (axis 1)" in err.hint


def test_a_scalar_with_an_axis_left_names_it_and_a_function_object_gets_apply():
    @dataclasses.dataclass
    class Cfg:
        n_inst: int = 3

    @checker("scalar_demo")
    def check(impl, device):
        cfg = Cfg()
        expect_scalar(impl(torch.ones(5, cfg.n_inst)), "loss")

    with pytest.raises(CheckFailed) as failure:
        check(lambda x: x.mean(0))  # the sum over instances forgotten
    assert "3 is cfg.n_inst" in failure.value.message and "left unreduced" in failure.value.hint
    with pytest.raises(CheckFailed) as failure:
        check(lambda x: x.mean().reshape(1))
    assert "[1]-shaped start" in failure.value.hint

    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(CheckFailed) as failure:
        expect_tensor(Step, "importances")
    assert "`Step.apply(z, ...)`" in failure.value.hint


def test_a_not_implemented_error_from_torch_is_an_error_not_a_stub():
    @checker("torch_not_implemented_demo")
    def check(impl, device):
        impl(torch.zeros(4, 3))

    def draws_from_a_mask(x):
        return torch.rand_like(x > 0)  # torch has no uniform draw for booleans

    with pytest.raises(CheckFailed) as failure:
        check(draws_from_a_mask)
    assert failure.value.code == "exception" and "on a Bool tensor" in failure.value.hint

    def stub(x):
        raise NotImplementedError("not implemented yet")

    with pytest.raises(NotDone):
        check(stub)


def test_a_name_not_defined_in_backward_points_at_ctx():
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            return x * alpha

        @staticmethod
        def backward(ctx, grad):
            return grad * alpha, None  # noqa: F821  (forward's local, never stored on ctx)

    @checker("name_demo")
    def check(impl, device):
        impl(torch.ones(3, requires_grad=True)).sum().backward()

    with pytest.raises(CheckFailed) as failure:
        check(lambda x: Step.apply(x, 0.5))
    assert "`ctx.alpha = alpha`" in failure.value.hint


def test_a_missing_key_lists_the_keys_the_dict_had():
    @checker("key_demo")
    def check(impl, device):
        impl(torch.ones(3))

    def impl(x):
        cache = {"h": x}
        return cache["x"]

    with pytest.raises(CheckFailed) as failure:
        check(impl)
    assert "no key 'x'; `cache` has 'h'" in failure.value.hint


def test_an_attribute_missing_on_a_tuple_gets_a_hint_and_never_crashes_the_check():
    @checker("tuple_demo")
    def check(impl, device):
        impl(torch.ones(3, requires_grad=True))

    def impl(x):
        grads = torch.autograd.grad(x.pow(2).sum(), [x])
        return grads.sign()  # the tuple torch.autograd.grad returns, used as the tensor

    with pytest.raises(CheckFailed) as failure:
        check(impl)
    assert failure.value.code == "exception" and "torch.autograd.grad" in failure.value.hint


def test_an_error_that_cannot_even_be_printed_still_gives_one_line():
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no text")

    @checker("unprintable_demo")
    def check(impl, device):
        impl()

    def impl():
        raise Unprintable()

    with pytest.raises(CheckFailed) as failure:
        check(impl)
    assert failure.value.code == "exception" and "Unprintable" in failure.value.message


def test_a_factor_equal_to_the_root_of_an_input_size_is_named():
    from tests.sizes import factor_reason

    assert "1/√128 (cfg.d_model)" in factor_reason(128**-0.5, {"d_vocab": 2048}, [("cfg.d_model", 128)])


def test_an_unnamed_mistake_is_described_by_how_and_where_it_is_wrong():
    e = torch.linspace(-2, 3, 24).reshape(4, 6)
    e[1, 2] = e[3, 4] = 0.0
    relu = _code(e.clamp(min=0), e, dims="inst feats")
    assert relu.code == "values" and "every negative value set to 0" in relu.hint and "the formula" in relu.hint
    assert "absolute values" in _code(e.abs(), e).hint
    assert "1 − the right ones" in _code(1 - e, e).hint
    at_zeros = e.clone()
    at_zeros[e == 0] = 0.1
    assert "only entries whose right value is 0 are wrong (2 of the 2 zeros" in _code(at_zeros, e).hint
    filled = e.clone()
    filled[e > 1] = 1.0
    assert "values above 1 were lowered to 1" in _code(filled, e).hint
    schedule = torch.linspace(0, 1, 20)
    warm = schedule.clone()
    warm[1:5] = warm[1:5].sqrt()
    assert (
        "only `step` 1–4 are wrong (4 of 20); `step` below 1 and above 4 are all right"
        in _code(warm, schedule, dims="step").hint
    )
    assert _code(torch.randn(4, 6), e).hint == "the formula"  # nothing recognisable: the formula alone


def test_a_lone_wrong_slice_says_what_sets_it_apart():
    e = torch.linspace(0.5, 3, 24).reshape(4, 6)
    e[2, 3] = 0.0  # the only zero sits in `inst` 2
    wrong = e.clone()
    wrong[2, 3] = 0.41
    err = _code(wrong, e, dims="inst feats")
    assert err.code == "one_slice" and "only `inst` 2 is wrong" in err.hint and "right value is 0" in err.hint


def test_a_wrong_axis_size_is_named_by_how_it_follows_from_the_right_one():
    from tests.sizes import clear_notes, note_inputs, reset_notes

    token = clear_notes()
    try:
        note_inputs(n_inst=3, d_model=48)
        cases = [
            ((6666, 3), "6666 = 20000 // 3 (n_inst)"),
            ((20001, 3), "20001 is one more than 20000: a count off by one"),
            ((60000, 3), "60000 = 20000 × 3 (n_inst)"),
        ]
        for got, words in cases:
            with pytest.raises(CheckFailed) as info:
                expect_tensor(torch.zeros(got), "batch", shape=(20000, 3), dims="batch inst")
            assert words in info.value.hint, info.value.hint
        with pytest.raises(CheckFailed) as info:  # an input's size off by one is too weak a sign: not named
            expect_tensor(torch.zeros(49, 3), "x", shape=(20, 3), dims="pos inst")
        assert "48" not in info.value.hint
    finally:
        reset_notes(token)


def test_a_range_covering_most_of_an_axis_is_not_described():
    # 'only `batch` 1–63 are wrong, `batch` 0 right' points at an index range that is right by coincidence
    e = torch.linspace(1, 2, 64)
    wrong = e.clone()
    wrong[1:] += 0.3 * torch.linspace(0.1, 1, 63)
    assert "only `batch`" not in _code(wrong, e, dims="batch").hint


def test_a_wrong_axis_of_size_one_is_not_read_as_a_division():
    from tests.sizes import clear_notes, note_inputs, reset_notes

    token = clear_notes()
    try:
        note_inputs(d_hidden=2)
        with pytest.raises(CheckFailed) as info:
            expect_tensor(torch.zeros(4, 1), "x", shape=(4, 3), dims="batch inst")
        assert "//" not in info.value.hint and "has size 1, not 3" in info.value.hint
    finally:
        reset_notes(token)


def test_a_percentage_and_fractions_rounded_down_are_listed_among_the_causes():
    """A factor of exactly 100 reads first as a percentage (even where a size is 100); fractions that came out 0
    list an integer division among the causes."""
    e = torch.rand(4, 5, generator=torch.Generator().manual_seed(5)) * 0.9 + 0.05
    percent = generic_diagnosis(100 * e, e, "a b", sizes=(("cfg.width", 100),))
    assert percent is not None and percent[1].index("a percentage") < percent[1].index("cfg.width")
    floored = e.clone()
    floored[:, 1] = 0.0
    _, hint = generic_diagnosis(floored, e, "a b")
    assert "integer division" in hint, hint


def test_a_logarithm_in_another_base_is_named():
    from tests.sizes import factor_reason

    assert "base 2 (bits)" in factor_reason(1 / math.log(2), {"batch": 9}, [("cfg.n_classes", 4)])
    assert "base 10" in factor_reason(1 / math.log(10), {"batch": 9}, [])


def test_an_in_place_edit_met_by_the_checkers_backward_is_the_learners():
    x = torch.ones(2, 3, requires_grad=True)
    norm = x.norm(dim=-1, keepdim=True)
    out = x / norm.add_(1e-8)  # the learner's in-place edit of a tensor autograd saved
    with pytest.raises(RuntimeError) as info:
        out.sum().backward()
    failure = _describe_error(info.value.with_traceback(None))  # raised in the checker's call: no learner frame
    assert failure.code == "inplace_autograd" and "a norm" in failure.message and "norm + eps" in failure.hint


def test_a_catalogue_given_as_a_function_is_built_only_for_a_wrong_answer_or_an_audit():
    expected = torch.tensor([1.0, 2.0, 3.0])
    built = []

    def catalogue():
        built.append(1)
        return [("doubled", "you doubled it", 2 * expected)]

    expect_matches(expected.clone(), expected, "x", catalogue)
    assert not built  # a right answer: the catalogue was never needed
    with pytest.raises(CheckFailed) as err:
        expect_matches(2 * expected, expected, "x", catalogue)
    assert err.value.code == "doubled" and len(built) == 1
    with audit_catalogues() as problems:
        expect_matches(expected.clone(), expected, "x", catalogue)
    assert len(built) == 2 and not problems  # audited even for the right answer


def test_a_values_indices_pair_is_named_with_its_values_field():
    x = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    for pair, words in ((x.max(dim=1), "torch.amax"), (x.topk(1, dim=1), ".values"), (x.sort(dim=1), ".values")):
        with pytest.raises(CheckFailed) as err:
            expect_tensor(pair, "out", shape=(2,))
        assert err.value.code == "not_tensor" and "(values, indices) pair" in err.value.hint and words in err.value.hint
