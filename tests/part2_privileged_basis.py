"""Checkers for part 2 (superposition in a privileged basis).

Each checker builds a model from the learner's class, sets its parameters to fixed random values (non-zero biases
of both signs, several instances with different weights, weights of both signs), calls only the method being
checked and compares with the formula. A wrong answer is compared with part 1's catalogue of known mistakes
(`tests.part1_superposition_mistakes`: the models differ only by the hidden ReLU and the separate write weights)
plus this section's own, and the mistake that reproduces it is named. The batch generator is tested on the
statistics that define it, with part 1's diagnostics for values in U[-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions.part1_superposition import ToyModelConfig
from solutions.part2_privileged_basis import NeuronComputationModel as RefNeuronComputationModel
from solutions.part2_privileged_basis import NeuronModel as RefNeuronModel
from tests import part1_superposition_loss_extras as loss_extras
from tests import part1_superposition_loss_relations as loss_relations
from tests import part2_privileged_basis_target_readings as target_readings
from tests.checking import CheckFailed, checker, expect_matches, expect_tensor, fail
from tests.loss_penalties import difference_relation
from tests.mutants import Reference, call
from tests.part1_superposition import IMPORTANCE, MATMUL, P_LOSS, check_loss, probe_forward
from tests.part1_superposition_diagnosis import (
    check_leading_dims,
    expect_parameters,
    reference_model,
    returned_hidden_hint,
)
from tests.part1_superposition_draws import check_sign_independence, fresh_draws_failure, scaled_values_failure
from tests.part1_superposition_forward_extras import input_mask_mutants, mixing_source
from tests.part1_superposition_hints import activation_diagnosis, forward_output_failure
from tests.part1_superposition_mistakes import (
    check_independent_features,
    check_input_unchanged,
    forward_mutants,
    two_layer,
)
from tests.part1_superposition_probes import (
    GRID,
    call_naming_axes,
    check_param_gradients,
    hidden_probe,
    importance_candidate,
    input_transform_diagnosis,
    own_feature_diagnosis,
    random_forward,
    relu_placement_mutants,
    sign_sharing_failure,
)
from tests.part1_superposition_slips import flat_masked_failure, grid_rate_candidates, negative_values_failure
from tests.part1_superposition_small_batches import small_batch_failures, zeroed_negatives_failure
from tests.part1_superposition_weight_readings import importance_table_relation
from tests.part1_superposition_weight_transforms import novel, weight_transform_mutants
from tests.part2_privileged_basis_absent_values import shifted_absent_failure
from tests.part2_privileged_basis_axis_statistics import axis_statistic_mutants
from tests.part2_privileged_basis_batch_mixing import batch_mixing_probe
from tests.part2_privileged_basis_constant_values import constant_present_failure
from tests.part2_privileged_basis_contractions import contraction_mutants, regrouped_weight_mutants
from tests.part2_privileged_basis_loss_weights import rate_product_candidates, reduced_then_weighted_failure
from tests.part2_privileged_basis_nonfinite import nan_signs_failure
from tests.part2_privileged_basis_offsets import hidden_offset_diagnosis, hidden_shift_probe
from tests.part2_privileged_basis_saturation import hidden_nonlinearity_note, saturation_probe
from tests.part2_privileged_basis_sign_draws import VALUE_CODES, sign_magnitude_failures

relu = torch.relu


def _check_forward(
    model,
    params: list[str],
    x: Tensor,
    W_in: Tensor,
    W_out: Tensor,
    b: Tensor,
    mistakes,
    d_hidden: int,
    device,
    reference: Reference,
) -> None:
    """The forward pass on x, compared with ReLU(W_outᵀ ReLU(W_in x) + b), its catalogue, then the generic probes.

    `reference` is the solution's forward on x (with the same parameters), for `expect_matches`."""
    x_before = x.clone()
    sizes = {x.shape[0]: "batch", x.shape[1]: "inst", x.shape[2]: "feats", d_hidden: "d_hidden"}
    with torch.no_grad():
        out = call_naming_axes(lambda: model(x), sizes, _axes_advice)
    check_input_unchanged(x_before, x, "features")
    returned_hidden_hint(out, tuple(x.shape[:-2]), x.shape[-2], d_hidden)
    forward_output_failure(out, "model(features)", tuple(x.shape), "batch inst feats")
    expect_tensor(out, "model(features)", shape=x.shape, dims="batch inst feats", dtype=x.dtype, device=device)
    right = two_layer(x, W_in, W_out, b, act=relu)
    diagnosis = activation_diagnosis(out, two_layer(x, W_in, W_out, b, act=relu, out=lambda t: t))
    z = two_layer(x, W_in, W_out, torch.zeros_like(b), act=relu, out=lambda t: t)
    mistakes = mistakes + relu_placement_mutants(x, W_in, W_out, b, act=relu) + input_mask_mutants(x, right, z, b)
    mistakes += _weight_product_relu(x, W_in, W_out, b, params)
    mistakes += novel(axis_statistic_mutants(x, W_in, W_out, b), mistakes)
    names = (params[0], params[1] if len(params) > 2 else params[0])
    mistakes += contraction_mutants(x, W_in, W_out, b, *names)
    mistakes += novel(weight_transform_mutants(x, W_in, W_out, b, relu, names), mistakes)
    random = random_forward(model, x)
    if random is None:
        random = mixing_source(model, params, x)
    code, hint = (
        random
        or batch_mixing_probe(model, x, lambda t: two_layer(t, W_in, W_out, b, act=relu))
        or input_transform_diagnosis(out, lambda t: two_layer(t, W_in, W_out, b, act=relu), x, d_hidden)
        or _output_sign_probe(type(model), params, device)
        or hidden_shift_probe(lambda B, w=1.0: _unit_model(type(model), params, B, device, w), device)
        or hidden_probe(lambda B, w=1.0: _unit_model(type(model), params, B, device, w), device)
        or diagnosis
        or saturation_probe(model, lambda t: two_layer(t, W_in, W_out, b, act=relu), tuple(x.shape), device)
        or own_feature_diagnosis(model, x, lambda t: two_layer(t, W_in, W_out, b, act=relu))
        or hidden_offset_diagnosis(out, x, W_in, W_out, b)
        or hidden_nonlinearity_note(*probe_forward(model, b, (1, *x.shape[1:]), device, out, z, d_hidden))
    )
    expect_matches(
        out, right, "model(features)", mistakes, dims="batch inst feats", hint=hint, code=code, reference=reference
    )
    check_leading_dims(
        model,
        lambda x2: two_layer(x2, W_in, W_out, b, act=relu),
        [(2, 8, *x.shape[1:]), tuple(x.shape[1:]), (1, *x.shape[1:])],
        device,
    )
    W_t = W_out is not W_in  # the computation model's W2 is stored [inst feats d], two_layer takes it transposed
    check_param_gradients(
        model,
        x,
        params,
        lambda P: two_layer(
            x, P[params[0]], P[params[1]].transpose(-1, -2) if W_t else P[params[0]], P["b_final"], act=relu
        ),
    )


def _output_sign_probe(cls: type, params: list[str], device: torch.device) -> tuple[str, str] | None:
    """(code, hint) when, on the one-feature model with weights 1, the output reads B - ReLU(x) where it should read
    ReLU(ReLU(x) + B) (B = 10 keeps the output ReLU out of play): the hidden term enters with a minus sign. Checked
    before hidden_probe, which would read the negated hidden layer as a wrong hidden nonlinearity."""
    x = torch.tensor(GRID, device=device).reshape(-1, 1, 1)
    try:
        with torch.no_grad():
            got = _unit_model(cls, params, 10.0, device)(x)
        if not isinstance(got, Tensor) or got.shape != x.shape:
            return None
        g, h = (got.double() - 10).flatten().cpu(), torch.relu(x.double()).flatten().cpu()
        if not (torch.allclose(g, -h, atol=1e-4) and bool((h > 0).any())):
            return None
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    table = ", ".join(f"{v:g} → {float(o):.3g}" for v, o in zip(GRID, got.flatten().cpu(), strict=True))
    return "output_term_sign", (
        f"on a one-feature model with weights 1 and b_final = 10 your output maps {table}: that is 10 - ReLU(x), "
        "expected 10 + ReLU(x). The hidden ReLU looks right; the hidden term enters the output with a minus sign "
        "(b_final - W h, a negated weight or einsum result?): the output is ReLU(W h + b_final)"
    )


def _axes_advice(a: str, b: str) -> str:
    """What two axes of a forward pass with a hidden layer meeting usually means (see part 1's MATMUL)."""
    if {a, b} == {"d_hidden", "feats"}:
        return (
            "a hidden-layer tensor [..., inst, d_hidden] (h) met a feature-axis one [..., inst, feats] (x, b_final or "
            "the output): one of the two is not the tensor meant (zeros_like(x) or b_final where h's shape belongs?), "
            "or a weight is read with its feats and d_hidden axes swapped"
        )
    return MATMUL(a, b)


def _weight_product_relu(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, params: list[str]) -> list:
    """The hidden ReLU moved onto the product of the weights: ReLU(ReLU(W_outᵀ W_in) x + b), no ReLU on W x."""
    product = torch.einsum("idf,idg->ifg", W_out, W_in)  # [inst feats feats]: what x is multiplied by
    names = "WᵀW" if len(params) < 3 else "W2 W1"
    value = relu(torch.einsum("...ig,ifg->...if", x, relu(product)) + b)
    return [
        (
            "relu_on_weights",
            f"the ReLU is applied to the weight product {names} (a [feats feats] matrix), not to the hidden layer: "
            f"compute h = ReLU({'W' if len(params) < 3 else 'W1'} x) [..., inst, d_hidden] first, then go back up",
            value,
        )
    ]


def _unit_model(cls: type, params: list[str], B: float, device: torch.device, w: float = 1.0) -> torch.nn.Module:
    """The learner's model with one instance, feature and neuron: every weight w, b_final = B (for `hidden_probe`)."""
    model = cls(ToyModelConfig(n_inst=1, n_features=1, d_hidden=1), feature_probability=0.5, device=device)
    with torch.no_grad():
        for name in params:
            getattr(model, name).fill_(B if name == "b_final" else w)
    return model


def _inputs(device: torch.device, shape=(16, 3, 6)) -> Tensor:
    """Sparse features, mostly non-negative as in training, with some negative values so a ReLU on the input shows,
    and large ones in the last examples (see `_large_examples`)."""
    mask = torch.rand(shape, device=device) < 0.6
    return _large_examples((torch.rand(shape, device=device) * 1.4 - 0.3) * mask)


def _large_examples(x: Tensor) -> Tensor:
    """x with its last 3 examples scaled by 9, so some output pre-activations are far above 1 and 6 (up to ~30): a
    capped output nonlinearity (ReLU6, hardtanh, a clamp with max=) differs there from the ReLU."""
    x[-3:] *= 9
    return x


# Generic per-(inst, feature) importance and probability for the forward checkers: with the defaults (all 1, or one
# scalar) a forward pass that multiplies by either is indistinguishable from the right one.
FWD_IMPORTANCE = torch.tensor(
    [[1.3, 0.7, 0.45, 1.9, 0.25, 1.1], [0.6, 1.45, 0.85, 0.35, 2.2, 0.95], [1.75, 0.15, 1.2, 0.55, 0.8, 1.6]]
)
FWD_PROBABILITY = torch.tensor(
    [[0.31, 0.47, 0.12, 0.66, 0.23, 0.58], [0.09, 0.72, 0.38, 0.27, 0.51, 0.19], [0.44, 0.16, 0.63, 0.35, 0.07, 0.82]]
)


def _forward_kwargs(device: torch.device) -> dict[str, Tensor]:
    return {"feature_probability": FWD_PROBABILITY.to(device), "importance": FWD_IMPORTANCE.to(device)}


def _bias_reduced_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor) -> list[tuple[str, str, Tensor]]:
    """b_final reduced over one of its axes (the mean or sum over instances, or over features) before it is added."""
    out = []
    for axis, dim in (("instances", 0), ("features", 1)):
        for how in ("mean", "sum"):
            red = getattr(b, how)(dim, keepdim=True).expand_as(b)
            out.append(
                (
                    "bias_reduced",
                    f"b_final was reduced over its {axis} (b_final.{how}({dim})) before being added: each instance "
                    "and feature adds its own bias, b_final [inst feats] as it is",
                    two_layer(x, W_in, W_out, red, act=relu),
                )
            )
    return out


def _config_factor_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor) -> list[tuple[str, str, Tensor]]:
    """The forward pass with the model's importance or feature probability multiplied in (on the output, on the
    input, or on the bias): those belong to the loss and to generate_batch, never to the forward pass."""
    out = []
    for name, t in (("self.importance", FWD_IMPORTANCE), ("self.feature_probability", FWD_PROBABILITY)):
        t = t.to(x.device)
        where = {
            "the output": two_layer(x, W_in, W_out, b, act=relu) * t,
            "the input features": two_layer(x * t, W_in, W_out, b, act=relu),
            "b_final": two_layer(x, W_in, W_out, b * t, act=relu),
        }
        use = "it weights the loss" if name == "self.importance" else "it only sets how often generate_batch draws"
        for part, value in where.items():
            out.append(
                (
                    "config_factor",
                    f"{part} is multiplied by {name}: the forward pass does not use it ({use} a feature)",
                    value,
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# NeuronModel.forward
# --------------------------------------------------------------------------------------------
@checker("NeuronModel.forward", kind="class")
def test_neuron_forward(NeuronModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)
    model = NeuronModel(cfg, device=device, **_forward_kwargs(device))
    expect_parameters(model, {"W": (3, 4, 6), "b_final": (3, 6)})
    W = torch.randn(cfg.n_inst, cfg.d_hidden, cfg.n_features, device=device) * 0.8
    b = torch.randn(cfg.n_inst, cfg.n_features, device=device) * 0.6  # both signs: both ReLUs clip something
    with torch.no_grad():
        model.W.copy_(W)
        model.b_final.copy_(b)
    x = _inputs(device)
    mistakes = forward_mutants(x, W, W, b, hidden_relu=True, formula="ReLU(Wᵀ ReLU(W x) + b_final)")
    mistakes += _config_factor_mutants(x, W, W, b) + _bias_reduced_mutants(x, W, W, b)
    ref = reference_model(RefNeuronModel, cfg, device, {"W": W, "b_final": b}, **_forward_kwargs(device))
    reference = call(RefNeuronModel.forward, ref, x)
    _check_forward(model, ["W", "b_final"], x, W, W, b, mistakes, cfg.d_hidden, device, reference)
    return "ReLU(Wᵀ ReLU(W x) + b_final)"


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.forward
# --------------------------------------------------------------------------------------------
def _computation_model(NeuronComputationModel: type, device: torch.device, cfg: ToyModelConfig, **kwargs):
    model = NeuronComputationModel(cfg, device=device, **kwargs)
    expect_parameters(
        model,
        {
            "W1": (cfg.n_inst, cfg.d_hidden, cfg.n_features),
            "W2": (cfg.n_inst, cfg.n_features, cfg.d_hidden),
            "b_final": (cfg.n_inst, cfg.n_features),
        },
    )
    return model


@checker("NeuronComputationModel.forward", kind="class")
def test_computation_forward(NeuronComputationModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)
    model = _computation_model(NeuronComputationModel, device, cfg, **_forward_kwargs(device))
    W1 = torch.randn(cfg.n_inst, cfg.d_hidden, cfg.n_features, device=device) * 0.8
    W2 = torch.randn(cfg.n_inst, cfg.n_features, cfg.d_hidden, device=device) * 0.8
    b = torch.randn(cfg.n_inst, cfg.n_features, device=device) * 0.6
    with torch.no_grad():
        model.W1.copy_(W1)
        model.W2.copy_(W2)
        model.b_final.copy_(b)
    mask = torch.rand(16, cfg.n_inst, cfg.n_features, device=device) < 0.6
    x = _large_examples((2 * torch.rand(16, cfg.n_inst, cfg.n_features, device=device) - 1) * mask)  # both signs
    W2t = W2.transpose(-1, -2)  # [inst d feats]: the read layout two_layer takes
    formula = "ReLU(W2 ReLU(W1 x) + b_final)"
    mistakes = [
        *forward_mutants(x, W1, W2t, b, hidden_relu=True, formula=formula),
        (
            "tied_weights",
            "the output layer uses W1 transposed: this model writes with its own W2 [inst feats d_hidden]",
            two_layer(x, W1, W1, b, act=relu),
        ),
        (
            "reshaped_W2",
            "W2 was reshaped (or viewed) to [inst d_hidden feats]: that scrambles it; transpose it, or name its "
            "axes in the einsum ('inst feats d_hidden')",
            two_layer(x, W1, W2.reshape(W2t.shape), b, act=relu),
        ),
        (
            "abs_in_forward",
            "the forward pass takes the raw features (they can be negative); |x| is only the loss's target",
            two_layer(x.abs(), W1, W2t, b, act=relu),
        ),
        (
            "abs_hidden",
            "the hidden nonlinearity is a ReLU, not |.|: each neuron computes ReLU(W1 x), and two neurons of "
            "opposite signs make |x| together",
            two_layer(x, W1, W2t, b, act=torch.abs),
        ),
        (
            "roles_swapped",
            "W1 and W2 swapped roles: W1 [inst d_hidden feats] reads the features, W2 [inst feats d_hidden] writes "
            "the output",
            two_layer(x, W2t, W1, b, act=relu),
        ),
        (
            "tied_to_W2",
            "both layers use W2: the hidden layer reads with W1 ('... inst feats, inst d_hidden feats -> ... inst "
            "d_hidden')",
            two_layer(x, W2t, W2t, b, act=relu),
        ),
        (
            "abs_output",
            f"the output nonlinearity is a ReLU, not |.|: {formula}",
            two_layer(x, W1, W2t, b, act=relu, out=torch.abs),
        ),
        *[
            (
                "weights_normalised",
                f"{name} was normalised over its {axis} axis (F.normalize({name}, dim={dim}), or divided by a norm): "
                "the forward pass uses the weights as they are, no normalisation",
                two_layer(x, F.normalize(W1, dim=dim), W2t, b, act=relu)
                if name == "W1"
                else two_layer(x, W1, F.normalize(W2, dim=dim).transpose(-1, -2), b, act=relu),
            )
            for name, axes in (("W1", ("feats", "d_hidden")), ("W2", ("d_hidden", "feats")))
            for dim, axis in zip((-1, -2), axes, strict=True)
        ],
        *_bias_reduced_mutants(x, W1, W2t, b),
        (
            "residual",
            f"the input x is added to the output (a residual connection): this model has none, {formula}",
            two_layer(x, W1, W2t, b + x, act=relu),
        ),
    ]
    mistakes += _config_factor_mutants(x, W1, W2t, b) + regrouped_weight_mutants(x, W1, W2t, b)
    params = {"W1": W1, "W2": W2, "b_final": b}
    ref = reference_model(RefNeuronComputationModel, cfg, device, params, **_forward_kwargs(device))
    reference = call(RefNeuronComputationModel.forward, ref, x)
    _check_forward(model, ["W1", "W2", "b_final"], x, W1, W2t, b, mistakes, cfg.d_hidden, device, reference)
    return "ReLU(W2 ReLU(W1 x) + b_final)"


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.generate_batch
# --------------------------------------------------------------------------------------------
# Presence probabilities differ across features and instances, so a mask that ignores either axis, or that is
# `rand > p`, shows up in at least one entry.
# Off any 0.01 grid (0.0103 small), so a presence uniform that takes only 100 values shows; 0.0011 shows a floor
# such as p.clamp(min=0.01) (the notebook trains at p = 0.003).
PROBS = torch.tensor(
    [
        [0.9013, 0.6047, 0.3519, 0.2031, 0.0813],
        [0.1487, 0.4519, 0.6963, 0.0103, 0.2987],
        [0.5021, 0.2513, 0.0011, 0.7987, 0.6031],
    ]
)
N_SAMPLES = 20_000
# Two independent presence draws of probability p/2, one for the positive and one for the negative values, added:
# an entry is present when either fires, 1 - (1 - p/2)² = p - p²/4.
TWO_SIGN_COINS = (
    "sign_coins_independent",
    "each feature is present at rate 1 - (1 - p/2)² = p - p²/4: the positive and the negative values come from two "
    "independent presence draws of p/2 each (added, so both can fire at once); draw one presence (rand < p) and "
    "one sign, or split one uniform u: positive when u < p/2, negative when p/2 <= u < p",
    1 - (1 - PROBS / 2) ** 2,
)


def _absent_not_zero_failure(batch: Tensor) -> None:
    """No entry is exactly 0 although some features have p near 0.01 (about 99% of their entries should be 0): the
    absent entries are not zeroed. Whether no mask was drawn or the mask picks between two non-zero values (where(
    present, v, -v)) cannot be told from the batch (both give U[-1, 1] everywhere), so both causes are listed."""
    zeros = int((batch == 0).sum())
    if batch.ndim != 3 or zeros > 1e-3 * batch.numel():
        return
    shifted_absent_failure(batch, PROBS, -1.0, 1.0)
    lo, hi = float(batch.min()), float(batch.max())
    i, c = (int(v) for v in divmod(int(PROBS.argmin()), PROBS.shape[1]))
    seen = f"values in [{lo:.3g}, {hi:.3g}]" + (
        ", spread like U[-1, 1]" if lo >= -1 and hi <= 1 and abs(float(batch.abs().mean()) - 0.5) < 0.02 else ""
    )
    fail(
        f"the batch: {zeros} of its {batch.numel()} entries are 0 ({seen}), though inst {i}, feature {c} has "
        f"p = {float(PROBS[i, c]):.4g}: about {100 * (1 - float(PROBS[i, c])):.0f}% of its entries should be 0",
        "absent entries are not zero. Possible causes: no presence mask drawn at all, or the mask choosing between "
        "two non-zero values (torch.where(present, v, -v), or v kept where absent), or a shift or rescale applied "
        "after the mask (the absent entries then all share one value). An absent feature is exactly 0: "
        "torch.where(rand < p, v, 0.0)",
        code="always_present",
    )


def _dropout_failure(batch: Tensor) -> None:
    """The present values fill [-m, m] with m = 1 / (the share of present entries), and every feature is present at
    about that one share: F.dropout(U[-1, 1], 1 - q) keeps each entry with one rate q and divides the kept ones by q.
    Per-feature rates from N = 20000 draws have standard deviation <= 0.0036; 0.03 is over 8 of them, and the
    probabilities PROBS differ by far more than that, so a correct batch never has one shared rate."""
    present = batch != 0
    q, top = float(present.double().mean()), float(batch.abs().max())
    if batch.ndim != 3 or q <= 0 or top < 1.05 or abs(top * q - 1) > 0.03:
        return
    rates = present.double().mean(0)
    one_rate = bool(((rates - q).abs() < 0.03).all())
    fail(
        f"the batch: present values reach |{top:.3g}| ≈ 1 / {q:.3g}, and {100 * q:.1f}% of the entries are present"
        + (" (about that share for every feature)" if one_rate else ""),
        f"the kept values are divided by the keep rate {q:.3g}: F.dropout (or nn.Dropout) rescales what it keeps by "
        "1 / (1 - dropout probability)"
        + (
            ", and it uses one rate for every feature (the mean of p?) where each feature has its own p"
            if one_rate
            else ""
        )
        + ". Draw the mask yourself, present where torch.rand(...) < self.feature_probability, and keep U[-1, 1] "
        "values as they are",
        code="dropout_rescaled",
    )


@checker("NeuronComputationModel.generate_batch", kind="class")
def test_computation_generate_batch(NeuronComputationModel: type, device: torch.device) -> str:
    n_inst, n_feats = PROBS.shape
    cfg = ToyModelConfig(n_inst=n_inst, n_features=n_feats, d_hidden=2)
    imp = IMPORTANCE.to(device)  # not all 1: presence drawn against self.importance shows as its own rate table
    model = _computation_model(
        NeuronComputationModel, device, cfg, feature_probability=PROBS.to(device), importance=imp
    )
    try:
        batch = model.generate_batch(N_SAMPLES)
    except AttributeError as err:
        if "'W'" not in str(err):
            raise
        fail(
            f"generate_batch({N_SAMPLES}) raised AttributeError: {err}",
            "NeuronComputationModel has no W (it has W1 and W2): part 1's generate_batch (called through super(), "
            "or copied) reads self.W, e.g. for its device. Draw the features here as the exercise says: present "
            "where rand < p, values 2 * rand - 1 (U[-1, 1]), on self.b_final.device",
            code="part1_generate_batch",
        )
    flat_masked_failure(batch, (N_SAMPLES, n_inst, n_feats), f"generate_batch({N_SAMPLES})")
    nan_signs_failure(batch, f"generate_batch({N_SAMPLES})")
    batch = expect_tensor(
        batch,
        f"generate_batch({N_SAMPLES})",
        shape=(N_SAMPLES, n_inst, n_feats),
        dims="batch inst feats",
        dtype=torch.float32,
        device=device,
    )
    # Per-example norms first: every nonzero example at one norm means the examples were normalised (a correct batch
    # has norms spread over (0, sqrt(n_feats)]), which would otherwise show only as values piled on ±1.
    norms = batch.detach().cpu().double().norm(dim=-1)
    norms = norms[norms > 0]
    if norms.numel() > 100 and bool(((norms - norms[0]).abs() <= 1e-4 * norms[0]).all()):
        fail(
            f"the batch: every nonzero example (over feats, per instance) has norm {float(norms[0]):.4g}",
            "the examples are normalised (x / x.norm(...)): give each present feature its own U[-1, 1] value and "
            "leave the examples unscaled",
            code="normalised_examples",
        )
    _absent_not_zero_failure(batch.detach().cpu())
    _dropout_failure(batch.detach().cpu())
    scaled_values_failure(batch.detach().cpu(), {"self.importance": IMPORTANCE, "1 / p": 1 / PROBS}, "the batch")
    constant_present_failure(batch.detach().cpu(), "the batch")
    negative_values_failure(batch.detach().cpu(), PROBS, "the batch")
    zeroed_negatives_failure(batch.detach().cpu(), PROBS, "the batch")
    try:
        check_independent_features(
            batch.detach().cpu(),
            PROBS,
            "the batch",
            low=-1.0,
            high=1.0,
            extra=[
                importance_candidate(IMPORTANCE),
                *rate_product_candidates(PROBS, IMPORTANCE),
                TWO_SIGN_COINS,
                *grid_rate_candidates(PROBS),
            ],
        )
    except CheckFailed as err:
        sign_sharing_failure(batch.detach().cpu(), "the batch")
        if err.code in VALUE_CODES:
            sign_magnitude_failures(batch.detach().cpu(), PROBS, "the batch")
        raise
    check_sign_independence(batch.detach().cpu(), "the batch")
    fresh_draws_failure(lambda: model.generate_batch(500), "generate_batch(500)")
    small_batch_failures(model, device, importance=imp)
    return f"presence rates, U[-1, 1] values and independence on {N_SAMPLES} examples"


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.calculate_loss
# --------------------------------------------------------------------------------------------
def _target_mutants(out: Tensor, batch: Tensor, target: Tensor) -> list[tuple[str, str, Tensor]]:
    imp = IMPORTANCE.to(out.device)

    def loss(t: Tensor, y: Tensor = out) -> Tensor:
        return (imp * (t - y) ** 2).mean(dim=(0, 2)).sum()

    as_is = "only the target is |batch|: the output enters the loss as it is, (|batch| - out)²"
    return [
        ("out_transformed", f"|out| is used in the loss: {as_is}", loss(target, out.abs())),
        (
            "absent_masked",
            "the errors of absent features (batch == 0) are multiplied by 0 ((batch != 0) as a mask) while the mean "
            "still divides by every (batch, feat) cell: an absent feature's target is 0 and its output must learn 0, "
            "so its error counts like any other",
            (imp * (target - out) ** 2 * (batch != 0)).mean(dim=(0, 2)).sum(),
        ),
        ("out_transformed", f"ReLU(out) is used in the loss: {as_is}", loss(target, relu(out))),
        *[
            (
                "out_clipped",
                f"equals the loss with the output clipped to {rng} ({how}) before the error: outputs beyond it then "
                f"cost nothing and get no gradient, so the model is never pushed back; {as_is}, unclipped",
                loss(target, y),
            )
            for rng, how, y in (
                ("at most 1", "out.clamp(max=1)", out.clamp(max=1)),
                ("[0, 1]", "out.clamp(0, 1)", out.clamp(0, 1)),
            )
        ],
        *[
            (
                "abs_on_output",
                f"the loss is ({name} - {shown})²: a nonlinearity on the output, where the absolute value belongs on "
                "the target. The model learns to compute |x|, so the target is |batch| and the output enters as it "
                "is: (batch.abs() - out)²",
                loss(t, f(out)),
            )
            for name, t in (("batch", batch), ("ReLU(batch)", relu(batch)))
            for shown, f in (("|out|", torch.abs), ("ReLU(out)", relu))
        ],
        (
            "importance_on_output",
            "the importance multiplies the output inside the square, (|batch| - I · out)²: it weights the squared "
            "error, I · (|batch| - out)²",
            ((target - imp * out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "precedence",
            "the loss is I · |batch| - out²: `**` binds tighter than `-` and `*`, so only out is squared. Put the "
            "difference in parentheses: self.importance * (batch.abs() - out) ** 2",
            (imp * target - out**2).mean(dim=(0, 2)).sum(),
        ),
        ("target_not_abs", "the target is |x| (batch.abs()), not x: the model computes absolute values", loss(batch)),
        ("target_relu", "the target is |x| (batch.abs()), not ReLU(x)", loss(relu(batch))),
        ("target_squared", "the target is |x| (batch.abs()), not x²", loss(batch**2)),
        ("target_relu", "the target is |x| (batch.abs()), not ReLU(-x) (the negative part only)", loss(relu(-batch))),
        *[
            (
                "mixed_error_factors",
                f"the squared error is a product of two different errors, (|batch| - out) · ({name} - out): one "
                "factor uses another target. Square the one error, (|batch| - out)²",
                (imp * (target - out) * (alt - out)).mean(dim=(0, 2)).sum(),
            )
            for name, alt in (("batch", batch), ("ReLU(batch)", relu(batch)), ("-batch", -batch))
        ],
        (
            "one_sided_error",
            "only under-prediction is penalised ((|batch| - out).clamp(min=0) squared): the loss squares the error "
            "in both directions, (|batch| - out)²",
            (imp * (target - out).clamp(min=0) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "one_sided_error",
            "only over-prediction is penalised ((out - |batch|).clamp(min=0) squared): the loss squares the error "
            "in both directions, (|batch| - out)²",
            (imp * (out - target).clamp(min=0) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "huber_loss",
            "that is the Huber (smooth L1) loss, F.huber_loss / F.smooth_l1_loss: ½ err² for small errors and linear "
            "for large ones. The loss is the plain squared error (|batch| - out)², weighted by the importance",
            (imp * F.huber_loss(out, target, reduction="none")).mean(dim=(0, 2)).sum(),
        ),
    ]


@checker("NeuronComputationModel.calculate_loss", kind="class")
def test_computation_calculate_loss(NeuronComputationModel: type, device: torch.device) -> str:
    n_inst, n_feats = IMPORTANCE.shape
    imp, p = IMPORTANCE.to(device), P_LOSS.to(device)  # p per (inst, feat), never 0.5: a p in the loss shows
    cfg = ToyModelConfig(n_inst=n_inst, n_features=n_feats, d_hidden=2)
    model = _computation_model(NeuronComputationModel, device, cfg, feature_probability=p, importance=imp)

    def make_batch(*shape: int) -> Tensor:
        return (2 * torch.rand(shape, device=device) - 1) * (torch.rand(shape, device=device) < 0.7)

    if not hasattr(model, "calculate_loss"):
        fail(
            "the model has no calculate_loss", "define calculate_loss in NeuronComputationModel", code="missing_method"
        )
    solution = reference_model(RefNeuronComputationModel, cfg, device, {}, feature_probability=p, importance=imp)
    tables = {"feature_probability": p, "(1 - feature_probability)": 1 - p}
    seen: dict[str, Tensor] = {}  # the batch check_loss drew (`extra` runs first): the target is read against it

    def relations(loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor) -> tuple[str, str] | None:
        return (
            loss_relations.reduction_relation(loss, grad, out, target, imp)
            or loss_relations.weight_table_relation(grad, out, target, imp, tables)
            or importance_table_relation(grad, out, target, imp)
            or difference_relation(loss, grad, out, target, imp, "|batch|")
            or target_readings.target_relation(loss, grad, out, target, imp, seen.get("batch"))
            or loss_extras.extra_term_relation(loss, grad, out, target, imp)
            or loss_extras.repeated_division_relation(loss, grad, out, target, imp)
        )

    def extra(out: Tensor, batch: Tensor, target: Tensor) -> list[tuple[str, str, Tensor]]:
        seen["batch"] = batch
        present = loss_relations.present_mean_mutants(out, batch, imp, target)  # absent_masked covers the last
        return (
            _target_mutants(out, batch, target)
            + loss_relations.model_tensor_mutants(out, target, imp, p)
            + [m for m in present if m[0] == "mean_over_present"]
        )

    reduced_then_weighted_failure(model.calculate_loss, imp, make_batch, torch.abs, device)
    check_loss(model, imp, torch.abs, make_batch, device, solution, extra=extra, relations=relations)
    return "Σ_inst mean_{batch, feats} I (|x| - y)²"
