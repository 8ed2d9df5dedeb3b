"""Proofs for the one-change diagnosis (`tests/mutants.py`): it names slips written in the learner's own
style, stays silent when it can't be sure, never touches the checker's inputs, and stops runaway mutants."""

from __future__ import annotations

import einops
import pytest
import torch
from torch import Tensor

from tests.checking import CheckFailed, audit_catalogues, expect_matches
from tests.mutants import call, one_change_diagnosis


def solution_loss(h: Tensor, W: Tensor, b: Tensor, importance: Tensor, threshold: float) -> Tensor:
    """A small reference in the style of the exercises: encode, gate, decode, weighted mean squared error."""
    ### BEGIN SOLUTION
    pre = h @ W + b
    acts = pre.relu() * (pre > threshold)
    h_hat = acts @ W.T
    return (importance * (h_hat - h).pow(2)).mean(-1)
    ### END SOLUTION


def _inputs() -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(6, 5, generator=g)
    W = torch.randn(5, 4, generator=g)
    b = torch.randn(4, generator=g) * 0.3
    importance = torch.rand(5, generator=g) + 0.5
    return h, W, b, importance


THRESHOLD = 0.1

# Each mistake is written the way a learner would write it, not as the literal edit the diagnosis makes.
MISTAKES = {
    "sum over d_in": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W + b) * (h @ W + b > t)) @ W.T - h) ** 2).sum(dim=1),
        None,  # d_in × the right loss: the generic diagnosis names the factor and its axis (code `scale`)
    ),
    "mean over the batch": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W + b) * (h @ W + b > t)) @ W.T - h) ** 2).mean(0),
        None,  # a shape error, named by the shape check before any diagnosis
    ),
    "bias forgotten": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W) * (h @ W > t)) @ W.T - h) ** 2).mean(-1),
        "a term left out",
    ),
    "non-strict threshold": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W + b) * (h @ W + b >= t)) @ W.T - h) ** 2).mean(-1),
        None,  # equal to the solution on continuous inputs: must pass, not be named
    ),
    "no ReLU": (
        lambda h, W, b, imp, t: (imp * (((h @ W + b) * (h @ W + b > t)) @ W.T - h) ** 2).mean(-1),
        None,  # with threshold > 0 the ReLU changes nothing: a correct variant
    ),
    "importance forgotten": (
        lambda h, W, b, imp, t: (((torch.relu(h @ W + b) * (h @ W + b > t)) @ W.T - h) ** 2).mean(-1),
        "a factor left out",
    ),
    "gate on the wrong side": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W + b) * (h @ W + b < t)) @ W.T - h) ** 2).mean(-1),
        "another comparison",
    ),
    "root of the mean square": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W + b) * (h @ W + b > t)) @ W.T - h) ** 2).mean(-1).sqrt(),
        "an extra `.sqrt(…)`",
    ),
    "squared after the mean": (
        lambda h, W, b, imp, t: (imp * ((torch.relu(h @ W + b) * (h @ W + b > t)) @ W.T - h)).mean(-1) ** 2,
        None,  # two edits away: no single change fits, so nothing is claimed
    ),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_slip_is_named_by_the_one_edit_that_reproduces_it(name):
    wrong, words = MISTAKES[name]
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    actual = wrong(*inputs, THRESHOLD)
    reference = call(solution_loss, *inputs, THRESHOLD)
    if actual.shape != expected.shape:
        assert one_change_diagnosis(reference, actual, expected) is None
        return
    if torch.allclose(actual, expected, rtol=1e-4, atol=1e-5):
        assert words is None  # a correct variant: expect_matches passes it
        expect_matches(actual, expected, "loss", reference=reference)
        return
    hint = one_change_diagnosis(reference, actual, expected)
    if words is None:
        assert hint is None
    else:
        assert hint is not None and words in hint, hint
        with pytest.raises(CheckFailed) as err:
            expect_matches(actual, expected, "loss", reference=reference)
        assert err.value.code == "one_change" and words in err.value.hint


def test_the_description_quotes_the_changed_code_and_its_line():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    actual = MISTAKES["importance forgotten"][0](*inputs, THRESHOLD)
    hint = one_change_diagnosis(call(solution_loss, *inputs, THRESHOLD), actual, expected)
    assert "`(h_hat - h).pow(2)` instead of `importance * (h_hat - h).pow(2)`" in hint
    assert "in `return (importance * (h_hat - h).pow(2)).mean(-1)`" in hint


def test_a_rescaled_output_is_left_to_the_generic_diagnosis():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    actual = MISTAKES["sum over d_in"][0](*inputs, THRESHOLD)
    with pytest.raises(CheckFailed) as err:
        expect_matches(actual, expected, "loss", dims="batch d_in", reference=call(solution_loss, *inputs, THRESHOLD))
    assert err.value.code == "scale"


def test_a_catalogue_match_comes_first():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    actual = MISTAKES["sum over d_in"][0](*inputs, THRESHOLD)
    with pytest.raises(CheckFailed) as err:
        expect_matches(
            actual,
            expected,
            "loss",
            [("sum_d_in", "listed", actual)],
            reference=call(solution_loss, *inputs, THRESHOLD),
        )
    assert err.value.code == "sum_d_in"


def test_silent_on_constant_nonfinite_or_unrelated_outputs():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    reference = call(solution_loss, *inputs, THRESHOLD)
    for actual in (torch.zeros_like(expected), torch.full_like(expected, float("nan")), torch.randn_like(expected)):
        assert one_change_diagnosis(reference, actual, expected) is None


def test_silent_when_the_reference_does_not_reproduce_expected():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD) + 1  # not what this call gives: the wiring is wrong
    actual = MISTAKES["sum over d_in"][0](*inputs, THRESHOLD)
    assert one_change_diagnosis(call(solution_loss, *inputs, THRESHOLD), actual, expected) is None


def test_the_audit_reports_a_reference_that_does_not_reproduce_expected():
    inputs = _inputs()
    expected = solution_loss(*inputs, THRESHOLD)
    with audit_catalogues() as problems:
        expect_matches(expected, expected, "loss", reference=call(solution_loss, *inputs, THRESHOLD))
    assert problems == []
    with audit_catalogues() as problems:
        expect_matches(expected, expected, "loss", reference=call(solution_loss, *inputs, 0.5))
    assert len(problems) == 1 and "doesn't reproduce" in problems[0]


def solution_with_in_place_edit(x: Tensor, steps: int) -> Tensor:
    ### BEGIN SOLUTION
    i = 0
    while i < steps:
        x.mul_(0.5).add_(1)
        i += 1
    return x
    ### END SOLUTION


def test_mutants_never_touch_the_inputs_and_runaway_loops_are_stopped():
    x = torch.arange(1.0, 7.0)
    before = x.clone()
    expected = solution_with_in_place_edit(x.clone(), 3)
    actual = expected * 3 + 1  # matches no single edit
    # deleting `i += 1` makes a mutant loop forever: the guard stops it
    assert one_change_diagnosis(call(solution_with_in_place_edit, x, 3), actual, expected) is None
    assert torch.equal(x, before)
    # and a slip that one edit explains is still found: one step too many
    one_more = solution_with_in_place_edit(x.clone(), 4)
    hint = one_change_diagnosis(call(solution_with_in_place_edit, x, 3), one_more, expected)
    assert hint is not None and "`i <= steps`" in hint and torch.equal(x, before)


def random_solution(n: int) -> Tensor:
    ### BEGIN SOLUTION
    return torch.rand(n) * 2
    ### END SOLUTION


def test_silent_on_a_random_solution():
    expected = random_solution(8)
    assert one_change_diagnosis(call(random_solution, 8), expected / 2, expected) is None


def test_edits_in_many_places_are_not_named_but_equivalent_edits_in_one_place_are():
    # with b = c = d, leaving out any one of the three terms fits: they sit on three lines, so no claim
    a, same = torch.arange(1.0, 5.0), torch.full((4,), 0.5)
    expected = solution_chain(a, same, same, same)
    assert one_change_diagnosis(call(solution_chain, a, same, same, same), a + 1.0, expected) is None
    # when all the fitting edits are on one line, they are quoted as alternatives there
    ones = torch.ones(4)
    hint = one_change_diagnosis(call(solution_product, a, ones, ones), 3 * a + 1, solution_product(a, ones, ones))
    assert hint is not None and "any one of these changes" in hint and "more equivalent edits there" in hint


def solution_chain(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    x = a + b
    y = x + c
    return y + d
    ### END SOLUTION


def solution_product(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    return a * b * c + a * c + b * c + a * b + c * a
    ### END SOLUTION


def test_silent_on_a_scalar_or_a_rescaled_output():
    # the right output times a factor fits every edit that changes one count: the factor is named elsewhere
    inputs = _inputs()
    reference = call(solution_loss, *inputs, THRESHOLD)
    expected = solution_loss(*inputs, THRESHOLD)
    assert one_change_diagnosis(reference, expected * 5, expected) is None
    scalar = call(solution_scalar_loss, *inputs, THRESHOLD)
    assert one_change_diagnosis(scalar, solution_loss(*inputs, THRESHOLD).sum(), expected.mean()) is None


def solution_scalar_loss(h: Tensor, W: Tensor, b: Tensor, importance: Tensor, threshold: float) -> Tensor:
    ### BEGIN SOLUTION
    return solution_loss(h, W, b, importance, threshold).mean()
    ### END SOLUTION


def solution_doubled_run(model: torch.nn.Linear, x: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    saved = model.weight.detach().clone()
    model.weight.data.mul_(2.0)
    y = model(x)
    model.weight.data.copy_(saved)
    return y
    ### END SOLUTION


def test_a_shared_module_is_restored_after_every_mutant():
    # modules are not copied per mutant: the mutants share them, and whatever one leaves behind is undone
    model = torch.nn.Linear(400, 300)
    before = model.weight.detach().clone()
    x = torch.randn(3, 400)
    expected = solution_doubled_run(model, x)
    with torch.no_grad():
        undoubled = model(x)
    hint = one_change_diagnosis(call(solution_doubled_run, model, x), undoubled, expected)
    assert hint is not None and "left out" in hint and "mul_(2.0)" in hint
    assert torch.equal(model.weight, before)


def solution_root_mean(x: Tensor, W: Tensor, b: Tensor, eps: float) -> Tensor:
    ### BEGIN SOLUTION
    acts = torch.relu(x @ W + b)
    return ((acts + eps) ** 0.5).mean(0)
    ### END SOLUTION


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda x, W, b, eps: ((torch.relu(x @ W) + b + eps).abs() ** 0.5).mean(0), "a term added after this step"),
        (lambda x, W, b, eps: (torch.relu(x @ W + b) + eps).mean(0) ** 0.5, "two steps in the other order"),
        (lambda x, W, b, eps: ((torch.relu(x @ W + b) + eps) ** 0.5).mean(1), None),  # a shape error first
    ],
)
def test_a_step_moved_is_named(wrong, words):
    g = torch.Generator().manual_seed(0)
    x, W, b = torch.randn(7, 5, generator=g), torch.randn(5, 4, generator=g), torch.rand(4, generator=g) + 1
    expected, actual = solution_root_mean(x, W, b, 0.1), wrong(x, W, b, 0.1)
    hint = one_change_diagnosis(call(solution_root_mean, x, W, b, 0.1), actual, expected)
    assert (hint is None) if words is None else (hint is not None and words in hint), hint


def solution_recovered(zero: Tensor, spliced: Tensor, clean: Tensor, W: Tensor, latent: int) -> Tensor:
    ### BEGIN SOLUTION
    recovered = (zero - spliced) / (zero - clean)
    return recovered * W[:, latent]
    ### END SOLUTION


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda z, s, c, W, k: ((z - s) / z - c) * W[:, k], "parentheses left out"),
        (lambda z, s, c, W, k: (z - s) / (z - c) * W[k], "an index on another axis"),
    ],
)
def test_precedence_and_index_slips_are_named(wrong, words):
    g = torch.Generator().manual_seed(1)
    z, s, c = (torch.rand(4, generator=g) + k for k in (3.0, 1.0, 0.0))
    W = torch.randn(4, 4, generator=g)
    expected, actual = solution_recovered(z, s, c, W, 1), wrong(z, s, c, W, 1)
    hint = one_change_diagnosis(call(solution_recovered, z, s, c, W, 1), actual, expected)
    assert hint is not None and words in hint, hint


def solution_ratio(W: Tensor, warmup: int, step: int) -> Tensor:
    ### BEGIN SOLUTION
    ramp = step / warmup
    return ramp * W.shape[1] / W.pow(2).sum(dim=(1, 2))
    ### END SOLUTION


STEPS = torch.tensor([1.0, 2.0, 3.0])  # a ramp that differs per instance: no edit is a pure rescaling
WARMUPS = torch.tensor([5.0, 6.0, 7.0])


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda W, w, s: s / w * W.shape[1] / W.pow(2).sum(dim=(1, 2)).pow(2), "squared again"),
        (lambda W, w, s: (1 - s / w) * W.shape[1] / W.pow(2).sum(dim=(1, 2)), "1 minus it"),
        (lambda W, w, s: s / (w + 1) * W.shape[1] / W.pow(2).sum(dim=(1, 2)), "(warmup + 1)"),
    ],
)
def test_a_reduction_moved_squared_complemented_or_off_by_one_is_named(wrong, words):
    W = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(2))
    expected, actual = solution_ratio(W, WARMUPS, STEPS), wrong(W, WARMUPS, STEPS)
    hint = one_change_diagnosis(call(solution_ratio, W, WARMUPS, STEPS), actual, expected)
    assert hint is not None and words in hint, hint


def test_a_reduction_taken_after_the_division_is_named():
    W = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(2))
    expected, actual = solution_ratio(W, 7, 3), (3 / 7 * W.shape[1] / W.pow(2)).sum(dim=(1, 2))
    hint = one_change_diagnosis(call(solution_ratio, W, 7, 3), actual, expected)
    assert hint is not None and "`.sum(…)` taken after this step instead of before" in hint, hint


def solution_flagged_run(model: torch.nn.Linear, x: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    model.scale = torch.tensor([2.0, 3.0])
    y = model(x) * model.scale
    del model.scale
    return y
    ### END SOLUTION


def test_attributes_a_mutant_leaves_on_a_shared_module_are_removed():
    model = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    expected = solution_flagged_run(model, x)
    with torch.no_grad():
        unscaled = model(x)
    hint = one_change_diagnosis(call(solution_flagged_run, model, x), unscaled, expected)
    assert hint is not None and not hasattr(model, "scale")


def solution_weighted_error(out: Tensor, target: Tensor, importance: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    return (importance * (target - out) ** 2).mean(0).sum()
    ### END SOLUTION


def test_a_scalar_slip_is_named_unless_its_value_is_a_simple_ratio():
    g = torch.Generator().manual_seed(3)
    out, target, importance = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), torch.rand(5) + 0.5
    reference = call(solution_weighted_error, out, target, importance)
    expected = solution_weighted_error(out, target, importance)
    precedence = (importance * (target - out**2)).mean(0).sum()  # a loss below zero: the square reached `out` only
    assert "parentheses left out" in one_change_diagnosis(reference, precedence, expected)
    # a sum where the mean was meant is 6 × the right value: a count, named by the factor diagnosis instead
    assert one_change_diagnosis(reference, (importance * (target - out) ** 2).sum(0).sum(), expected) is None


def solution_masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    return (x * valid).sum(0) / valid.sum(0).clamp(min=1)
    ### END SOLUTION


def test_a_guard_written_as_an_added_constant_is_named():
    g = torch.Generator().manual_seed(4)
    x, valid = torch.randn(9, 4, generator=g), (torch.rand(9, 4, generator=g) < 0.6).float()
    valid[:, 0] = 1.0  # counts differ per column, and none is 0
    wrong, right = (x * valid).sum(0) / (valid.sum(0) + 1), solution_masked_mean(x, valid)
    hint = one_change_diagnosis(call(solution_masked_mean, x, valid), wrong, right)
    assert "a constant added instead of a lower bound" in hint and "`valid.sum(0) + 1`" in hint


def test_norm_slips_keep_the_axes_and_leave_other_norms_alone():
    import ast

    from tests.mutant_edits import _norms

    def edits(src):
        return [ast.unparse(m) for m, _ in _norms(ast.parse(src, mode="eval").body, None)]

    assert edits("W.norm(2, 1)") == ["W.pow(2).sum(1)", "W.sum(1).sqrt()", "W.abs().sum(1)"]
    assert edits("W.norm(1)") == [] and edits("W.norm(p=1)") == []  # an L1 norm: its p is not an axis
    # a sum (an L1 penalty of non-negative values) written as the L2 norm: the axes move to norm's keywords
    assert edits("a.sum(-1)") == ["a.norm(dim=-1)"] and edits("a.sum(1, True)") == ["a.norm(dim=1, keepdim=True)"]
    assert edits("a.sum(dtype=t)") == []


def solution_column_sums(x: Tensor) -> Tensor:
    """A reference whose comprehension unpacks a tuple (`for j, column in ...`)."""
    return torch.stack([column.abs().sum() + j for j, column in enumerate(x.T)])


def test_a_comprehension_with_a_tuple_target_does_not_silence_the_search():
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(5))
    wrong, right = x.sum(0) + torch.arange(4), solution_column_sums(x)
    hint = one_change_diagnosis(call(solution_column_sums, x), wrong, right)
    assert hint is not None and "a step left out (`.abs(…)`)" in hint


def solution_overlaps(W: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    return einops.einsum(W, W, "inst d feat_i, inst d feat_j -> inst feat_i feat_j").pow(2).sum(-1)
    ### END SOLUTION


def solution_overlaps_packed(W: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    return torch.einsum("kdi,kdj->kij", W, W).pow(2).sum(-1)
    ### END SOLUTION


@pytest.mark.parametrize("solution", [solution_overlaps, solution_overlaps_packed])
def test_an_axis_spelled_differently_in_one_einsum_input_is_named(solution):
    """A typo in one input's axis name makes einsum sum each copy on its own: (Σ_d W)(Σ_d W), not Σ_d W W."""
    W = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(3))
    actual = (W.sum(1)[:, :, None] * W.sum(1)[:, None, :]).pow(2).sum(-1)
    hint = one_change_diagnosis(call(solution, W), actual, solution(W))
    assert hint is not None and "spelled differently in one input" in hint and "`d`" in hint, hint


def solution_long_line(activations: Tensor, decoder_weights: Tensor) -> Tensor:
    ### BEGIN SOLUTION
    reconstruction = einops.einsum(activations, decoder_weights, "batch latent, latent d_model -> batch d_model")
    return reconstruction.pow(2).mean(-1)
    ### END SOLUTION


def test_an_edit_at_the_end_of_a_long_line_is_still_tried():
    """Edits are told apart by their full text: one past the quoted width (here a `.relu()` appended to a line
    longer than 90 characters) used to look like the unedited line and was skipped."""
    g = torch.Generator().manual_seed(4)
    acts, W = torch.rand(6, 5, generator=g), torch.randn(5, 7, generator=g)
    actual = (acts @ W).relu().pow(2).mean(-1)
    hint = one_change_diagnosis(call(solution_long_line, acts, W), actual, solution_long_line(acts, W))
    assert hint is not None and ".relu()" in hint, hint


def test_the_search_budget_grows_with_the_load_within_bounds(monkeypatch):
    """On a machine busier than its cores the one-edit search gets more CPU time (up to MAX_LOAD_FACTOR times), so
    a heavily loaded test run names the same slips an idle one does; idle or unknown load keeps the 1 s budget."""
    import os

    import tests.mutants as mutants

    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (100.0 * cores, 0.0, 0.0))
    assert mutants._load_factor() == mutants.MAX_LOAD_FACTOR
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5 * cores, 0.0, 0.0))
    assert mutants._load_factor() == 1.0
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5 * cores, 0.0, 0.0))
    assert mutants._load_factor() == 2.5

    def unavailable():
        raise OSError

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert mutants._load_factor() == 1.0
