"""Checkers for part 1 (superposition in a non-privileged basis).

Call them from the notebook as `tests.part1_superposition.test_<exercise>(ToyModel)`, or with
`CorrelatedToyModel` (the subclass that holds the correlated generators) for exercises 4 and 5.
Deterministic exercises are compared with the formula on inputs where every term matters, and a wrong answer is
compared with a catalogue of known mistakes (`tests.part1_superposition_mistakes`) to name it; the generators are
tested on the statistics that define them, never on particular random draws, and a failed statistic is followed
by the tests that tell its usual causes apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from solutions.part1_superposition import CorrelatedToyModel as RefCorrelatedToyModel
from solutions.part1_superposition import ToyModel as RefToyModel
from solutions.part1_superposition import ToyModelConfig
from tests import part1_superposition_blocks as blocks
from tests import part1_superposition_causes as causes
from tests import part1_superposition_forward_extras as forward_extras
from tests import part1_superposition_loss_relations as loss_relations
from tests import part1_superposition_pairs as pair_rates
from tests import part1_superposition_weight_transforms as weights
from tests.checking import (
    checker,
    expect_matches,
    expect_scalar,
    expect_tensor,
    fail,
    generic_diagnosis,
    input_sizes,
)
from tests.mutants import call
from tests.part1_superposition_batch_axis import batch_axis_failures
from tests.part1_superposition_buffers import buffer_edit_failure
from tests.part1_superposition_diagnosis import (
    check_leading_dims,
    expect_parameters,
    generic_importance,
    reference_model,
    returned_hidden_hint,
)
from tests.part1_superposition_draws import (
    batch_drift_failure,
    choice_split_hint,
    fresh_draws_failure,
    ignores_out_failure,
    instance_p_candidates,
    never_partners_failure,
    pair_layout_failure,
    scaled_values_failure,
    with_reference_generators,
)
from tests.part1_superposition_hints import activation_diagnosis, forward_output_failure
from tests.part1_superposition_loss_extras import clip_and_transform_mutants, more_loss_relations
from tests.part1_superposition_mistakes import EQUAL_DRAW_ALLOWANCE as _EQUAL
from tests.part1_superposition_mistakes import (
    ZERO_DRAW_ALLOWANCE,
    check_batch_independence,
    check_independent_features,
    check_input_unchanged,
    check_not_shared_over_batch,
    check_pairwise_independence,
    check_rates,
    check_value_law,
    check_value_support,
    check_values_not_shared,
    check_values_per_cell,
    common_rate_candidates,
    consistent,
    forward_mutants,
    loss_mutants,
    two_layer,
)
from tests.part1_superposition_order_readings import (
    centred_error_mutants,
    cumulative_rate_candidates,
    example_order_choice_failure,
    identical_pair_masks_failure,
)
from tests.part1_superposition_probes import (
    axis_multiple_failure,
    call_naming_axes,
    cat_axis_failure,
    check_param_gradients,
    clipped_input_diagnosis,
    combined_length_failure,
    expect_loss_tensor,
    generator_cfg_failure,
    importance_candidate,
    loss_gradient_diagnosis,
    own_feature_diagnosis,
    probe_forward,
    relu_placement_mutants,
    stationarity_failure,
)
from tests.part1_superposition_slips import (
    buffer_rate_candidates,
    combined_rate_candidates,
    flat_masked_failure,
    grid_rate_candidates,
    loss_slip_mutants,
    negative_loss_note,
    swapped_sizes_failure,
)
from tests.part1_superposition_small_batches import small_batch_failures
from tests.part1_superposition_tied_values import neighbour_presence_failure
from tests.part1_superposition_weight_readings import importance_table_relation
from tests.sizes import note_inputs

N_SAMPLES = 20_000  # examples drawn by each generator check: tolerances of about ±2% on a frequency
GENERATORS = ("generate_correlated_features", "generate_anticorrelated_features", "generate_uncorrelated_features")
FORMULA = "ReLU(WᵀWx + b_final)"
AXES_7352 = {7: "batch", 3: "inst", 5: "feats", 2: "d_hidden"}  # the sizes of test_forward's main input and model


def MATMUL(a: str, b: str) -> str:
    """What two axes of the forward pass meeting usually means."""
    if {a, b} == {"batch", "inst"}:
        return (
            "with @ or matmul, x [batch, inst, feats] @ M [inst, ., .] pairs batch with inst (the last two axes are "
            "the matrix, the others broadcast): use einsum with '...' patterns, or (x.unsqueeze(-2) @ M).squeeze(-2)"
        )
    return "compare each operand's axes with x [..., inst, feats] and W [inst, d_hidden, feats]"


def _expect_methods(cls: type, methods: tuple[str, ...]) -> type:
    """The generators live in a subclass: name it when the learner passed ToyModel (or another class) instead."""
    missing = [name for name in methods if not callable(getattr(cls, name, None))]
    if missing:
        fail(
            f"the class {cls.__name__} has no method {', '.join(f'`{name}`' for name in missing)}",
            "pass CorrelatedToyModel, the ToyModel subclass whose body defines the generators: "
            "test_x(CorrelatedToyModel)",
            code="missing_method",
        )
    return cls


def _set_params(model: torch.nn.Module, seed_shift: int = 0) -> tuple[Tensor, Tensor]:
    """Give W and b_final distinctive values: different per instance, a bias with both signs."""
    n_inst, d_hidden, n_feats = model.W.shape
    g = torch.Generator().manual_seed(100 + seed_shift)
    W = torch.randn(n_inst, d_hidden, n_feats, generator=g)
    b = torch.randn(n_inst, n_feats, generator=g) * 0.5
    with torch.no_grad():
        model.W.copy_(W)
        model.b_final.copy_(b)
    return model.W.detach().clone(), model.b_final.detach().clone()


def _toy(ToyModel: type, cfg: ToyModelConfig, device: torch.device, **kwargs) -> torch.nn.Module:
    model = ToyModel(cfg, device=device, **kwargs)
    expect_parameters(model, {"W": (cfg.n_inst, cfg.d_hidden, cfg.n_features), "b_final": (cfg.n_inst, cfg.n_features)})
    return model


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------
@checker("forward", kind="class")
def test_forward(ToyModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=5, d_hidden=2)
    imp, p = IMPORTANCE.to(device), P_LOSS.to(device)  # neither all 1: either misused in forward changes the output
    model = _toy(ToyModel, cfg, device, importance=imp, feature_probability=p)
    W, b = _set_params(model)
    W, b = W.to(device), b.to(device)
    x = torch.rand(7, 3, 5, device=device) * 2 - 0.5  # some negative inputs so every sign path is exercised
    x_before = x.clone()
    with torch.no_grad():
        out = call_naming_axes(lambda: model(x), AXES_7352, MATMUL)
    check_input_unchanged(x_before, x, "features")
    returned_hidden_hint(out, (7,), cfg.n_inst, cfg.d_hidden)
    forward_output_failure(out, "model(features)", (7, 3, 5), "batch inst feats")
    expect_tensor(out, "model(features)", shape=(7, 3, 5), dims="batch inst feats", dtype=x.dtype, device=device)
    mistakes = forward_mutants(x, W, W, b, hidden_relu=False, formula=FORMULA) + relu_placement_mutants(x, W, W, b)
    mistakes += forward_extras.config_mutants(x, W, b, p, imp, two_layer)
    new = weights.part1_weight_mutants(x, W, b, formula=FORMULA)
    mistakes += weights.novel(new, mistakes)
    pre = two_layer(x, W, W, b, out=lambda t: t)
    code, hint = (
        forward_extras.random_or_input_mixed(model, x)
        or activation_diagnosis(out, pre)
        or own_feature_diagnosis(model, x, lambda t: two_layer(t, W, W, b))
        or clipped_input_diagnosis(out, lambda t: two_layer(t, W, W, b), x, cfg.d_hidden)
        or probe_forward(model, b, (1, *x.shape[1:]), device, out, pre - b, cfg.d_hidden)
    )
    ref = reference_model(RefToyModel, cfg, device, {"W": W, "b_final": b}, importance=imp, feature_probability=p)
    expect_matches(
        out,
        two_layer(x, W, W, b),
        "model(features)",
        mistakes,
        dims="batch inst feats",
        hint=hint,
        code=code,
        reference=call(RefToyModel.forward, ref, x),
    )
    check_leading_dims(model, lambda x2: two_layer(x2, W, W, b), [(2, 4, 3, 5), (3, 5), (1, 3, 5)], device)
    check_param_gradients(model, x, ["W", "b_final"], lambda P: two_layer(x, P["W"], P["W"], P["b_final"]))
    forward_extras.zero_features_check(model, x, W, W, b)

    cfg1 = ToyModelConfig(n_inst=1, n_features=1, d_hidden=1)
    one = _toy(ToyModel, cfg1, device)
    W1, b1 = (t.to(device) for t in _set_params(one, seed_shift=1))
    x1 = torch.rand(4, 1, 1, device=device)
    with torch.no_grad():
        out1 = one(x1)
    what = "model(features) with n_inst=1, n_features=1, d_hidden=1"
    forward_output_failure(out1, what, (4, 1, 1), "batch inst feats")
    expect_tensor(out1, what, shape=(4, 1, 1), dims="batch inst feats", dtype=x1.dtype, device=device)
    ref1 = reference_model(RefToyModel, cfg1, device, {"W": W1, "b_final": b1})
    expect_matches(
        out1,
        two_layer(x1, W1, W1, b1),
        what,
        hint="size-1 axes must work too: avoid .squeeze()",
        code="size_one",
        reference=call(RefToyModel.forward, ref1, x1),
    )
    return "ReLU(WᵀWx + b) for every instance, any leading axes"


# --------------------------------------------------------------------------------------------
# calculate_loss
# --------------------------------------------------------------------------------------------
IMPORTANCE = torch.tensor([[1.0, 0.8, 0.5, 0.3, 0.1], [0.2, 1.5, 0.7, 1.0, 0.4], [2.0, 0.1, 0.9, 0.6, 1.2]])
# feature_probability of the forward and loss checks: per instance and feature, none 1 and unlike IMPORTANCE, so a
# forward pass or a loss that uses it where it has no place shows.
P_LOSS = torch.tensor([[0.35, 0.8, 0.15, 0.6, 0.05], [0.9, 0.25, 0.45, 0.1, 0.7], [0.2, 0.55, 0.75, 0.4, 0.3]])


def check_loss(
    model: torch.nn.Module,
    imp: Tensor,
    target_of: callable,
    make_batch: callable,
    device: torch.device,
    solution: torch.nn.Module,
    extra: Callable | None = None,
    relations: Callable | None = None,
) -> None:
    """calculate_loss(out, batch) = Σ_inst mean_{batch, feats} I (target - out)², its gradient, inputs untouched.

    `target_of(batch)` is the regression target (batch itself in part 1, |batch| in part 2); `solution` is the
    solution's model of the same class (its calculate_loss gives the same value); `extra(out, batch, target)` adds
    the section's own mutants; `relations(loss, grad, out, target)` a (code, hint) for a mistake nobody listed.
    """
    B, n_inst, n_feats = 8, *imp.shape  # 8 and 8 - 1: neither a size nor a product of sizes (3, 5, d_hidden 2)
    batch = make_batch(B, n_inst, n_feats)
    # Mostly positive like a ReLU output, some negative: an |out| or ReLU(out) in the loss formula shows.
    out = (torch.rand(B, n_inst, n_feats, device=device) * 1.7 - 0.2).requires_grad_()
    batch_before, out_before = batch.clone(), out.detach().clone()
    advice = "importance [inst, feats] lines up with the last two axes of out and batch [batch, inst, feats] as it is"
    loss = call_naming_axes(
        lambda: model.calculate_loss(out, batch), {B: "batch", n_inst: "inst", n_feats: "feats"}, advice
    )
    expect_loss_tensor(loss, "calculate_loss(out, batch)")
    check_input_unchanged(batch_before, batch, "batch")
    check_input_unchanged(out_before, out, "out")
    what = "calculate_loss(out, batch)"
    expect_tensor(loss, what, device=device, finite=False)  # the device first: nothing can be read off a meta tensor
    expect_scalar(loss, what)
    expect_tensor(loss, what, dtype=torch.float32)
    target = target_of(batch)
    err = imp * (target - out.detach()) ** 2
    right = err.mean(dim=(0, 2)).sum()
    grad_right = 2 * imp * (out.detach() - target) / (B * n_feats)
    mistakes = loss_mutants(out.detach(), batch, imp, target) + loss_slip_mutants(out.detach(), target, imp)
    mistakes += extra(out.detach(), batch, target) if extra else []
    grad = None
    if loss.requires_grad:
        try:
            (grad,) = torch.autograd.grad(loss, out, allow_unused=True)
        except RuntimeError:
            grad = None
    # The loss is one number; its gradient with respect to `out` is a [batch inst feats] fingerprint, so an unlisted
    # mistake (a constant factor, a sum over a named axis) is named from the gradient.
    if grad is None or not bool(grad.abs().any()):
        right_with = lambda m: (imp * (target - m(batch)) ** 2).mean(dim=(0, 2)).sum()
        ignores_out_failure(lambda y: model.calculate_loss(y, batch), out, loss, right_with, model)
    generic = relations(loss.detach(), grad, out.detach(), target) if relations else None
    if grad is not None and generic is None:
        generic = generic_diagnosis(grad, grad_right, "batch inst feats", sizes=input_sizes(model, batch))
        generic = generic or loss_gradient_diagnosis(grad, out.detach(), target, imp)
    hint = negative_loss_note(loss) + (
        generic[1]
        if generic and generic[1].startswith(("the gradient", "your loss"))
        else f"the gradient with respect to `out` tells: {generic[1]}"
        if generic
        else "Σ over instances of the mean over (batch, feats) of importance · (target - out)²"
    )
    expect_matches(
        loss.detach(),
        right,
        what,
        mistakes,
        hint=hint,
        code=generic[0] if generic else "values",
        reference=call(type(solution).calculate_loss, solution, out.detach(), batch),
    )
    if grad is None:
        seen, hint = loss_relations.autograd_escape_reading(lambda: model.calculate_loss(out, batch))
        fail("the loss does not depend on `out` through autograd" + seen, hint, code="no_grad")
    expect_matches(
        grad,
        grad_right,
        "the gradient of the loss with respect to `out`",
        dims="batch inst feats",
        hint="part of the loss is detached from `out`",
        code="gradient",
    )


@checker("calculate_loss", kind="class")
def test_calculate_loss(ToyModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=5, d_hidden=2)
    imp, p = IMPORTANCE.to(device), P_LOSS.to(device)
    model = _toy(ToyModel, cfg, device, importance=imp, feature_probability=p)
    solution = reference_model(RefToyModel, cfg, device, {}, importance=imp, feature_probability=p)
    tables = {"feature_probability": p, "(1 - feature_probability)": 1 - p}

    def relations(loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor) -> tuple[str, str] | None:
        return loss_relations.reduction_relation(loss, grad, out, target, imp) or (
            loss_relations.weight_table_relation(grad, out, target, imp, tables)
            or importance_table_relation(grad, out, target, imp)
            or more_loss_relations(loss, grad, out, target, imp)
        )

    extra = lambda out, batch, target: (
        loss_relations.model_tensor_mutants(out, target, imp, p)
        + loss_relations.present_mean_mutants(out, batch, imp, target)
        + loss_relations.one_sided_mutants(out, target, imp)
        + centred_error_mutants(out, target, imp)
        + clip_and_transform_mutants(out, target, imp)
    )
    # Sparse like generate_batch's (exact zeros where absent): a mean over the present entries only differs.
    make_batch = lambda *shape: torch.rand(shape, device=device) * (torch.rand(shape, device=device) < p)
    check_loss(model, imp, lambda batch: batch, make_batch, device, solution, extra=extra, relations=relations)
    return "importance-weighted squared error, mean over batch and features, sum over instances"


# --------------------------------------------------------------------------------------------
# generate_batch and the three generators
# --------------------------------------------------------------------------------------------
# Probabilities that differ per instance and per feature, so swapped axes, 1 - p and shared masks show up.
# Off any 0.01 grid, so a presence uniform that takes only 100 values (randint(0, 100) / 100, or rounded) shows at the
# small rates; 0.0011, 0.0103 and 0.9887 show clamps.
P_TABLE = torch.tensor(
    [[0.0103, 0.2047, 0.6931, 0.9887], [0.3019, 0.5963, 0.0011, 0.7462], [0.8049, 0.1487, 0.3507, 0.4013]]
)
P_PAIRS = torch.tensor([[0.1, 0.3], [0.45, 0.05], [0.2, 0.25]])  # [inst pairs], all <= 1/2 for anticorrelation
P_CORR = torch.tensor([[0.1, 0.3], [0.45, 0.05], [0.2, 0.8]])  # correlated pairs: one p > 1/2 shows a clamp at 1/2
# The generators take their probabilities as an argument `p`; their checks build the model with this (otherwise
# unused) feature_probability, so using self.feature_probability instead shows up as its own rate table.
DECOY = {
    "generate_correlated_features": 0.97,
    "generate_anticorrelated_features": 0.37,
    "generate_uncorrelated_features": 0.97,
}


# An importance unlike P_TABLE (and not all 1), so presence drawn against self.importance shows as its own table.
IMP_GEN = torch.tensor([[0.6, 1.0, 0.25, 0.45], [0.95, 0.1, 0.55, 0.35], [0.4, 0.5, 0.65, 0.15]])


def _output(batch: object, what: str, shape: tuple[int, ...], device: torch.device) -> Tensor:
    flat_masked_failure(batch, shape, what)
    axis_multiple_failure(batch, shape, "batch inst feats", what)
    return (
        expect_tensor(batch, what, shape=shape, dims="batch inst feats", dtype=torch.float32, device=device)
        .detach()
        .cpu()
    )


def _ignores_p(table: Tensor, method: str) -> tuple[str, str, Tensor]:
    return ("ignores_p", "use the probabilities passed in as `p`, not self.feature_probability", table)


@checker("generate_batch", kind="class")
def test_generate_batch(ToyModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2)
    model = _toy(ToyModel, cfg, device, feature_probability=P_TABLE.to(device), importance=IMP_GEN.to(device))
    built = {"feature_probability": P_TABLE.to(device, copy=True), "importance": IMP_GEN.to(device, copy=True)}
    batch = _output(model.generate_batch(N_SAMPLES), "generate_batch(n)", (N_SAMPLES, 3, 4), device)
    buffer_edit_failure(model, built, "generate_batch")  # a clamp_ on self.feature_probability, ...
    stationarity_failure(batch != 0, P_TABLE, "the batch")
    neighbour_presence_failure(batch, P_TABLE, "the batch")  # value = another entry's presence uniform
    scaled_values_failure(batch, {"self.importance": IMP_GEN, "1 / p": 1 / P_TABLE}, "the batch")
    extra = [importance_candidate(IMP_GEN), *instance_p_candidates(P_TABLE), *grid_rate_candidates(P_TABLE)]
    check_independent_features(batch, P_TABLE, "the batch", extra=extra)
    fresh_draws_failure(lambda: model.generate_batch(500), "generate_batch(500)")
    small_batch_failures(model, device, importance=IMP_GEN.to(device))
    batch_axis_failures(model, "generate_batch", P_TABLE, device)
    return f"presence rates, U[0, 1] values and independence on {N_SAMPLES} examples"


def _call_generator(CorrelatedToyModel: type, method: str, p: Tensor, device: torch.device) -> Tensor:
    """Call the learner's generator `method` with probabilities p (their model holds the decoy probability)."""
    cls = _expect_methods(CorrelatedToyModel, (method,))
    n_feats = 2 * p.shape[1] if method != "generate_uncorrelated_features" else p.shape[1]
    model = cls(
        ToyModelConfig(n_inst=p.shape[0], n_features=n_feats, d_hidden=5),  # d_hidden = 5: no other size
        feature_probability=DECOY[method],
        importance=generic_importance(p.shape[0], n_feats),  # not 1: values scaled by it show
        device=device,
    )
    p_in = p.clone().to(device)  # a copy: a learner's in-place edit must not reach the module's table
    if method != GENERATORS[2]:  # name the sizes: a feature axis of n_pairs, or n_inst and n_pairs swapped
        note_inputs(n_inst=p.shape[0], n_pairs=p.shape[1])
    field = {GENERATORS[0]: "n_correlated_pairs", GENERATORS[1]: "n_anticorrelated_pairs"}.get(method)
    matching = cls(replace(model.cfg, **{field: p.shape[1]}), device=device) if field else model
    try:
        out = generator_cfg_failure(
            lambda: getattr(model, method)(N_SAMPLES, p_in), lambda: getattr(matching, method)(10, p.to(device)), method
        )
    except Exception as err:  # sizes unpacked from p.shape in the wrong order are named, anything else goes on
        swapped_sizes_failure(err, {"inst": p.shape[0], "pairs" if field else "feats": p.shape[1]}, method)
        raise
    check_input_unchanged(p, p_in, "p")
    pair_rates.block_width_failure(out, method, field, p, N_SAMPLES, model.cfg)
    return _output(out, f"{method}(n, p)", (N_SAMPLES, p.shape[0], n_feats), device)


def _check_block_shape(CorrelatedToyModel: type, method: str, p: Tensor, device: torch.device) -> None:
    """On a model with 3 more features than p's block, a generator's output has the block's size (read from p)."""
    n_feats = 2 * p.shape[1] if method != "generate_uncorrelated_features" else p.shape[1]
    cfg = ToyModelConfig(n_inst=p.shape[0], n_features=n_feats + 3, d_hidden=2)
    got, expected = None, (10, p.shape[0], n_feats)
    try:
        model = CorrelatedToyModel(cfg, feature_probability=DECOY[method], device=device)
        out = getattr(model, method)(10, p.to(device))
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    except NotImplementedError:
        raise
    except Exception as err:
        got = f"an error ({type(err).__name__}: {err})"
    if got != expected:
        fail(
            f"{method}(n, p) with p of shape {tuple(p.shape)}, on a model with cfg.n_features = {n_feats + 3}, "
            f"returned {got}, expected {expected}",
            "each generator makes one block of the batch (generate_batch passes it a slice of the probabilities): "
            "take its size from p.shape, not from self.cfg or self.feature_probability",
            code="block_shape",
        )
    fresh_draws_failure(lambda: getattr(model, method)(500, p.to(device)), f"{method}(500, p)")
    pair_rates.max_scaled_failure(lambda n: getattr(model, method)(n, p.to(device)), method)
    pair_rates.wide_pair_layout_failure(CorrelatedToyModel, method, device)  # 5 pairs: no two layouts coincide
    batch_axis_failures(model, method, p, device)


@checker("generate_uncorrelated_features", kind="class")
def test_generate_uncorrelated_features(CorrelatedToyModel: type, device: torch.device) -> str:
    batch = _call_generator(CorrelatedToyModel, "generate_uncorrelated_features", P_TABLE, device)
    decoy = _ignores_p(torch.full_like(P_TABLE, DECOY["generate_uncorrelated_features"]), "uncorrelated")
    extra = [decoy, *instance_p_candidates(P_TABLE), *grid_rate_candidates(P_TABLE)]
    check_independent_features(batch, P_TABLE, "the batch", extra=extra + cumulative_rate_candidates(P_TABLE))
    _check_block_shape(CorrelatedToyModel, "generate_uncorrelated_features", P_TABLE, device)
    return "presence rates, U[0, 1] values and independence"


def _pair_states(present: Tensor, n_pairs: int) -> tuple[Tensor, Tensor]:
    """Per pair: how often the two features differ, and how often both are on ([inst pairs] counts), adjacent layout."""
    first, second = present[..., 0 : 2 * n_pairs : 2], present[..., 1 : 2 * n_pairs : 2]
    return (first != second).sum(0), (first & second).sum(0)


def _independent_pairs(present: Tensor, p_pairs: Tensor) -> bool:
    """Both features of every pair are on together at the rate p_a p_b of independent draws."""
    n = present.shape[0]
    first, second = present[..., 0::2].double(), present[..., 1::2].double()
    return consistent((first * second).mean(0), first.mean(0) * second.mean(0), n)


@checker("generate_correlated_features", kind="class")
def test_generate_correlated_features(CorrelatedToyModel: type, device: torch.device) -> str:
    batch = _call_generator(CorrelatedToyModel, "generate_correlated_features", P_CORR, device)
    what = "the batch"
    present = check_value_support(batch, what, 0.0, 1.0)
    check_not_shared_over_batch(present, what, P_CORR.repeat_interleave(2, dim=1))
    differ, _ = _pair_states(present, P_CORR.shape[1])
    if int(differ.sum()) > ZERO_DRAW_ALLOWANCE:
        message = f"{what}: in {int(differ.sum())} cases one feature of a pair is present without the other"
        pair_rates.correlated_pair_failure(present, P_CORR, what, ZERO_DRAW_ALLOWANCE)
        pair_layout_failure(present, "together", what)
        pair_rates.unwritten_columns_failure(present, message, ZERO_DRAW_ALLOWANCE)
        pair_rates.twins_elsewhere(present, message, ZERO_DRAW_ALLOWANCE)
        if _independent_pairs(present, P_CORR):
            fail(
                message,
                "the two features of a pair are drawn independently: draw one presence per pair "
                "([batch, inst, pairs]) and give it to both features",
                code="not_together",
            )
        fail(
            message,
            "both features of a correlated pair share one presence draw (draw [batch, inst, pairs], then repeat)",
            code="pair_presence",
        )
    first = present[..., 0::2]
    candidates = [
        _ignores_p(torch.full_like(P_CORR, DECOY["generate_correlated_features"]), "correlated"),
        *common_rate_candidates(P_CORR, "pair"),
    ]
    batch_drift_failure(first, P_CORR, what)
    check_rates(first.double().mean(0), P_CORR, N_SAMPLES, f"{what}: presence", candidates, unit="pair")
    check_pairwise_independence(
        first,
        P_CORR,
        what,
        "pair",
        "draw presence independently for every pair: the random tensor needs the shape [batch, inst, pairs]",
        "draw presence independently for every instance: the random tensor needs the shape [batch, inst, pairs]",
        ("shared_over_pairs", "shared_over_instances"),
    )
    check_batch_independence(first, P_CORR, what, "pair")
    same = int(((batch[..., 0::2] == batch[..., 1::2]) & first).sum())
    if same > _EQUAL:
        fail(
            f"{what}: in {same} examples both features of a pair have exactly the same value",
            "the two features of a pair share presence, not values: draw the values with the full "
            "[batch, inst, 2 * pairs] shape",
            code="shared_values",
        )
    check_values_per_cell(batch, present, what, 0.0, 1.0, "feature", P_CORR.repeat_interleave(2, dim=1))
    pair_rates.pair_sum_failure(batch, first, what)
    check_value_law(batch, present, what, 0.0, 1.0)
    check_values_not_shared(batch[..., 0::2], first, what, "pair")
    pair_rates.pair_values_independent_failure(batch, first, what)
    _check_block_shape(CorrelatedToyModel, "generate_correlated_features", P_CORR, device)
    return "pairs on together with probability p, independent values, independent pairs"


def anticorrelated_rate_candidates(p: Tensor, decoy: float) -> list[tuple[str, str, Tensor]]:
    """Rate tables [inst 2*pairs] of the usual mistakes in drawing anticorrelated pairs with probabilities p."""

    def pairwise(a: Tensor, b: Tensor) -> Tensor:
        return torch.stack([a.expand_as(p), b.expand_as(p)], dim=-1).flatten(-2)

    half = torch.full_like(p, 0.5)
    return [
        _ignores_p(torch.full_like(pairwise(p, p), decoy), "anticorrelated"),
        (
            "second_given_first_absent",
            "the second feature's probability is p(1 - p): it is only drawn when the first is absent. "
            "Draw 'pair active' with probability 2p, then pick one of the two with probability 1/2",
            pairwise(p, p * (1 - p)),
        ),
        (
            "active_with_p",
            "each feature is present with p/2: the pair should be active with probability 2p, not p",
            pairwise(p / 2, p / 2),
        ),
        (
            "active_either",
            'each feature is present with (1 - (1 - p)²) / 2: the pair is active with 1 - (1 - p)² ("one of two '
            'p-features on"); it is active with probability 2p (then each feature is on with p)',
            pairwise((1 - (1 - p) ** 2) / 2, (1 - (1 - p) ** 2) / 2),
        ),
        (
            "active_one_minus",
            "each feature is present with (1 - 2p)/2: the pair is active when `rand > 2p`; it should be `rand < 2p`",
            pairwise((1 - 2 * p) / 2, (1 - 2 * p) / 2),
        ),
        (
            "second_one_minus_p",
            "the second feature is present with probability 1 - p, whenever the first is absent: u > p with one "
            "uniform u (give it an interval of width p: p <= u < 2p), or the complement ~first / ~(active & first) "
            "(the second needs the pair active and the first absent: active & ~first)",
            pairwise(p, 1 - p),
        ),
        (
            "second_ignores_active",
            "the second feature is present half the time whatever p: it must also need the pair to be "
            "active (active & ~first)",
            pairwise(p, half),
        ),
        (
            "choice_coin_p",
            "the draw that picks which feature of an active pair is on should be a fair coin (rand < 0.5), "
            "not rand < p",
            pairwise(2 * p * p, 2 * p * (1 - p)),
        ),
        *[
            (
                "one_feature_own_draw",
                f"the {a} feature is present with p and the {b} with 2p(1 - p): as when the {a} is drawn on its own "
                f"(rand < p, not tied to 'pair active') and the {b} is active & ~{a}. Draw 'pair active' (2p) and one "
                "fair coin, then first = active & coin, second = active & ~coin",
                pairwise(p, 2 * p * (1 - p)) if a == "first" else pairwise(2 * p * (1 - p), p),
            )
            for a, b in (("first", "second"), ("second", "first"))
        ],
        (
            "always_active",
            "each feature is present half the time: the pair is always active. Draw 'active' with probability "
            "2p and AND it into both features",
            pairwise(half, half),
        ),
        *[
            (c, h, t.repeat_interleave(2, dim=1))
            for c, h, t in common_rate_candidates(p, "pair")
            if c not in ("presence_ignores_p", "presence_half_p")
        ],
        *pair_rates.active_law_candidates(p),
    ]


@checker("generate_anticorrelated_features", kind="class")
def test_generate_anticorrelated_features(CorrelatedToyModel: type, device: torch.device) -> str:
    batch = _call_generator(CorrelatedToyModel, "generate_anticorrelated_features", P_PAIRS, device)
    what = "the batch"
    present = check_value_support(batch, what, 0.0, 1.0)
    check_not_shared_over_batch(present, what)
    pairs = present[..., 0::2] | present[..., 1::2]  # 'pair active': one of its two features present
    check_not_shared_over_batch(pairs, what, 2 * P_PAIRS, unit="pair", state="active (one of its features present)")
    _, both = _pair_states(present, P_PAIRS.shape[1])
    if int(both.sum()) > 0:
        message = f"{what}: in {int(both.sum())} cases both features of a pair are present"
        pair_rates.anticorrelated_pair_failure(present, P_PAIRS, what, message)
        pair_layout_failure(present, "never", what)
        pair_rates.unwritten_columns_failure(present, message, ZERO_DRAW_ALLOWANCE)
        never_partners_failure(present, message)
        identical_pair_masks_failure(present, message)
        if _independent_pairs(present, P_PAIRS):
            fail(
                message,
                "the two features are drawn independently, so both are sometimes on: an anticorrelated pair "
                "never is. Draw 'pair active' (2p), then which one of the two (1/2)",
                code="independent_pair",
            )
        fail(
            message,
            "an anticorrelated pair is never on together: make the second feature's presence exclude the first's",
            code="both_present",
        )
    p = P_PAIRS.repeat_interleave(2, dim=1)
    rates = present.double().mean(0)
    lower, upper = torch.minimum(rates[:, 0::2], rates[:, 1::2]), torch.maximum(rates[:, 0::2], rates[:, 1::2])
    if consistent(lower, 0.0, N_SAMPLES) and consistent(upper, 2 * P_PAIRS, N_SAMPLES):
        k, m = P_PAIRS.shape  # fresh calls tell a constant coin from one drawn once per call
        cfg = ToyModelConfig(n_inst=k, n_features=2 * m, d_hidden=5, n_anticorrelated_pairs=m)
        model = CorrelatedToyModel(cfg, feature_probability=DECOY["generate_anticorrelated_features"], device=device)
        causes.constant_choice_failure(
            present, what, lambda: model.generate_anticorrelated_features(50, P_PAIRS.to(device))
        )
    example_order_choice_failure(present, what)
    candidates = anticorrelated_rate_candidates(P_PAIRS, DECOY["generate_anticorrelated_features"])
    rates = present.double().mean(0)
    first_ok, second_ok = consistent(rates[:, 0::2], P_PAIRS, N_SAMPLES), consistent(rates[:, 1::2], P_PAIRS, N_SAMPLES)
    default = choice_split_hint(present, P_PAIRS, N_SAMPLES)
    if first_ok != second_ok:
        default = blocks.second_rate_hint(rates, first_ok)
    check_rates(rates, p, N_SAMPLES, f"{what}: presence", candidates, default_hint=default)
    active = present[..., 0::2] | present[..., 1::2]
    check_pairwise_independence(
        active,
        2 * P_PAIRS,
        what,
        "pair",
        "draw 'pair active' independently for every pair: the random tensor needs the shape [batch, inst, pairs]",
        "draw 'pair active' independently for every instance: the random tensor needs the shape [batch, inst, pairs]",
        ("shared_over_pairs", "shared_over_instances"),
    )
    check_batch_independence(active, 2 * P_PAIRS, what, "pair")
    check_pairwise_independence(
        present[..., 0::2],
        P_PAIRS,
        what,
        "pair",
        "the draw that picks which feature of a pair is on is shared by the pairs: draw it with the shape "
        "[batch, inst, pairs]",
        "the draw that picks which feature of a pair is on is shared by the instances: draw it with the shape "
        "[batch, inst, pairs]",
        ("choice_shared_over_pairs", "choice_shared_over_instances"),
    )
    check_values_per_cell(batch, present, what, 0.0, 1.0, "feature", p)
    check_value_law(batch, present, what, 0.0, 1.0)
    check_values_not_shared(batch, present, what, "feature")
    _check_block_shape(CorrelatedToyModel, "generate_anticorrelated_features", P_PAIRS, device)
    return "never both on, each feature on with probability p, independent pairs"


# --------------------------------------------------------------------------------------------
# The combined batch
# --------------------------------------------------------------------------------------------
# The combined batch's config and p (see part1_superposition_pairs): no two of its sizes coincide.
P_COMBINED, N_CORR, N_ANTI, D_HIDDEN = pair_rates.P_COMBINED, pair_rates.N_CORR, pair_rates.N_ANTI, pair_rates.D_HIDDEN


def _pair_kinds(present: Tensor, n_pairs: int) -> list[str]:
    """For each adjacent pair of features: 'together', 'never' (both on) or 'independent'."""
    differ, both = _pair_states(present, n_pairs)
    kinds = []
    for j in range(n_pairs):
        if int(differ[:, j].sum()) <= ZERO_DRAW_ALLOWANCE:
            kinds.append("together")
        elif int(both[:, j].sum()) == 0:
            kinds.append("never")
        else:
            kinds.append("independent")
    return kinds


def _with_reference_generators(CorrelatedToyModel: type) -> type:
    """A subclass of the learner's class with the reference generators as its methods, to test only the combination."""
    return with_reference_generators(CorrelatedToyModel, GENERATORS, RefCorrelatedToyModel)


@checker("generate_combined_batch", kind="class")
def test_generate_combined_batch(CorrelatedToyModel: type, device: torch.device) -> str:
    Probe = _with_reference_generators(_expect_methods(CorrelatedToyModel, GENERATORS))
    what = "the batch"
    n_inst, n_feats = P_COMBINED.shape
    cfg = ToyModelConfig(
        n_inst=n_inst, n_features=n_feats, d_hidden=D_HIDDEN, n_correlated_pairs=N_CORR, n_anticorrelated_pairs=N_ANTI
    )
    imp = generic_importance(n_inst, n_feats).to(device)  # not 1: a batch scaled by it shows
    model = Probe(cfg, feature_probability=P_COMBINED.to(device), importance=imp, device=device)
    try:
        out = model.generate_batch(N_SAMPLES)
    except RuntimeError as err:
        cat_axis_failure(err, "generate_batch(n)", 2)
        loss_relations.cat_instances_failure(err, "generate_batch(n)", n_inst, N_SAMPLES, pair_rates.BLOCK_SIZES)
        raise
    combined_length_failure(out, (N_SAMPLES, n_inst, n_feats), N_CORR, N_ANTI, what, _pair_kinds)
    batch = _output(out, "generate_batch(n)", (N_SAMPLES, n_inst, n_feats), device)
    present = check_value_support(batch, what, 0.0, 1.0)
    kinds = _pair_kinds(present, N_CORR + N_ANTI)
    expected = ["together"] * N_CORR + ["never"] * N_ANTI
    if kinds != expected:
        seen = ", ".join(f"{2 * j}-{2 * j + 1}: {k}" for j, k in enumerate(kinds))
        message = (
            f"{what}: the first {2 * (N_CORR + N_ANTI)} features should be {N_CORR} correlated then {N_ANTI} "
            f"anticorrelated pairs; seen {seen}"
        )
        pair_rates.pair_layout_failure(present, N_CORR, N_ANTI, message, _pair_kinds)
        if sorted(kinds) == sorted(expected):
            fail(
                message,
                "concatenate the blocks in the order [correlated | anticorrelated | uncorrelated]",
                code="block_order",
            )
        fail(
            message,
            "call generate_correlated_features for the first 2 * n_correlated_pairs features and "
            "generate_anticorrelated_features for the next 2 * n_anticorrelated_pairs",
            code="pair_structure",
        )
    right, mistakes = combined_rate_candidates(P_COMBINED, N_CORR, N_ANTI)
    mistakes += buffer_rate_candidates(imp.cpu(), "self.importance", N_CORR, N_ANTI)
    rates, s_anti, s_unc = present.double().mean(0), 2 * N_CORR, 2 * (N_CORR + N_ANTI)
    blocks = {
        "correlated": (0, s_anti, "p[:, 0 : 2 * n_corr : 2]"),
        "anticorrelated": (s_anti, s_unc, "p[:, 2 * n_corr : 2 * (n_corr + n_anti) : 2]"),
        "uncorrelated": (s_unc, n_feats, "p[:, 2 * (n_corr + n_anti) :]"),
    }
    default = causes.block_rate_notes(rates, right, P_COMBINED, blocks, N_SAMPLES)
    check_rates(rates, right, N_SAMPLES, f"{what}: presence", mistakes, default_hint=default)
    check_values_per_cell(batch, present, what, 0.0, 1.0, "feature", right)  # e.g. not scaled by self.importance

    # Unequal counts (1 correlated, 2 anticorrelated pairs), so each count must come from its own config field.
    cfg = ToyModelConfig(n_inst=3, n_features=7, d_hidden=2, n_correlated_pairs=1, n_anticorrelated_pairs=2)
    out = Probe(cfg, feature_probability=P_COMBINED[:, 4:11].clamp(max=0.45).to(device), device=device)
    what_u = "generate_batch(n) with 1 correlated, 2 anticorrelated pairs"
    out = out.generate_batch(N_SAMPLES)
    pair_rates.count_mixup_failure(out, cfg, what_u, ZERO_DRAW_ALLOWANCE)
    out = _output(out, what_u, (N_SAMPLES, 3, 7), device)
    kinds = _pair_kinds(out.detach().cpu() != 0, 3)
    if kinds != ["together", "never", "never"]:
        fail(
            f"{what} with n_correlated_pairs=1, n_anticorrelated_pairs=2: pairs 0-1, 2-3, 4-5 should be together, "
            f"never, never; seen {', '.join(kinds)}",
            "read n_correlated_pairs and n_anticorrelated_pairs each from its own field of self.cfg (swapped?)"
            if kinds == ["together", "together", "never"]
            else "size the blocks from self.cfg.n_correlated_pairs and self.cfg.n_anticorrelated_pairs",
            code="pair_counts",
        )
    # With no pairs, the combined batch must behave like the original generate_batch.
    plain = Probe(
        ToyModelConfig(n_inst=3, n_features=4, d_hidden=2), feature_probability=P_TABLE.to(device), device=device
    )
    batch = _output(plain.generate_batch(N_SAMPLES), "generate_batch(n) with no pairs", (N_SAMPLES, 3, 4), device)
    check_independent_features(batch, P_TABLE, f"{what} with no pairs")
    # With no uncorrelated features (allowed: n_features = 2 * (n_corr + n_anti)), the uncorrelated block is empty.
    cfg = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2, n_correlated_pairs=1, n_anticorrelated_pairs=1)
    out = Probe(cfg, feature_probability=P_COMBINED[:, :4].to(device), device=device).generate_batch(N_SAMPLES)
    combined_length_failure(out, (N_SAMPLES, 3, 4), 1, 1, f"{what} with n_uncorrelated = 0", _pair_kinds)
    _output(out, "generate_batch(n) with n_uncorrelated = 0", (N_SAMPLES, 3, 4), device)
    draw = lambda c, p: Probe(c, feature_probability=p.to(device), device=device).generate_batch(N_SAMPLES)
    pair_rates.zero_count_failure(draw, ToyModelConfig, P_COMBINED, what, _pair_kinds)
    fresh_draws_failure(lambda: plain.generate_batch(500), "generate_batch(500)")
    return "blocks in order with the right probabilities; no pairs = independent features"
