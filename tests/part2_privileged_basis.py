"""Checkers for part 2 (superposition in a privileged basis).

Each checker builds a model from the learner's class, sets its parameters to fixed random values
(non-zero biases, several instances with different weights, weights of both signs), calls only the
method being checked and compares with the formula written out here. When the output is wrong, the
checker tries the usual mistakes in turn and names the one that reproduces the learner's output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from solutions.part1_superposition import ToyModelConfig
from tests.checking import (
    checker,
    expect_close,
    expect_frequency,
    expect_scalar,
    expect_tensor,
    fail,
    uniform_moments_tolerance,
)

relu = torch.relu


def _down(x: Tensor, W: Tensor) -> Tensor:  # [... inst feats], [inst d feats] -> [... inst d]
    return (x.unsqueeze(-2) * W).sum(-1)


def _up(h: Tensor, W: Tensor) -> Tensor:  # [... inst d], [inst d feats] -> [... inst feats]
    return (h.unsqueeze(-1) * W).sum(-2)


def _matches(actual: Tensor, candidate: Tensor) -> bool:
    return actual.shape == candidate.shape and torch.allclose(actual, candidate.to(actual.dtype), rtol=1e-4, atol=1e-5)


def _check_leading_dims(model: torch.nn.Module, x4: Tensor, expected: Tensor) -> None:
    """The forward pass accepts two leading batch axes and gives the same values as with one."""
    hint = "accept any number of leading batch axes: use '...' in your einsum patterns"
    try:
        out4 = model(x4)
    except Exception as err:
        fail(
            f"model(features) with features of shape {tuple(x4.shape)} raised {type(err).__name__}: {err}",
            hint,
            code="leading_dims",
        )
    if not isinstance(out4, Tensor) or out4.shape != x4.shape or not _matches(out4, expected.reshape(x4.shape)):
        fail(f"model(features) is wrong for features of shape {tuple(x4.shape)}", hint, code="leading_dims")


def _diagnose(actual: Tensor, candidates: list[tuple[str, Tensor, str]]) -> tuple[str, str | None]:
    """The (code, hint) of the first known mistake that reproduces `actual`, else a generic one."""
    for code, value, hint in candidates:
        if _matches(actual, value):
            return code, hint
    return "values", None


def _instances_independent(model, params: list[str], x: Tensor, what: str) -> None:
    """Changing instance 0's input and parameters must leave every other instance's output unchanged."""
    out1 = model(x)
    x2 = x.clone()
    x2[..., 0, :] = x2[..., 0, :].flip(0) * 0.5 + 0.25
    saved = {name: getattr(model, name).detach().clone() for name in params}
    with torch.no_grad():
        for name in params:
            getattr(model, name)[0].mul_(-1.5).add_(0.3)
        out2 = model(x2)
        for name in params:
            getattr(model, name).copy_(saved[name])
    if not torch.allclose(out1[..., 1:, :], out2[..., 1:, :], rtol=1e-5, atol=1e-6):
        fail(
            f"{what}: changing the input and weights of instance 0 changed the output of other instances",
            "instances must not interact: keep the `inst` axis on both inputs of every einsum "
            "(e.g. 'batch inst feats, inst d feats -> batch inst d'), never sum over it",
            code="instances_mixed",
        )


# --------------------------------------------------------------------------------------------
# NeuronModel.forward
# --------------------------------------------------------------------------------------------
def _neuron_model(NeuronModel: type, device: torch.device):
    cfg = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)
    model = NeuronModel(cfg, feature_probability=0.5, device=device)
    with torch.no_grad():
        model.W.copy_(torch.randn(cfg.n_inst, cfg.d_hidden, cfg.n_features) * 0.8)
        # biases of both signs, so both ReLUs clip something and a missing bias is visible
        model.b_final.copy_(torch.randn(cfg.n_inst, cfg.n_features) * 0.6)
    return cfg, model


@checker("NeuronModel.forward")
def test_neuron_forward(NeuronModel: type, device: torch.device) -> str:
    cfg, model = _neuron_model(NeuronModel, device)
    W, b = model.W.detach().clone(), model.b_final.detach().clone()
    # sparse non-negative features, as in training, with at least two on in most examples
    x = torch.rand(16, cfg.n_inst, cfg.n_features, device=device) * (torch.rand(16, 3, 6, device=device) < 0.6)
    with torch.no_grad():
        out = expect_tensor(
            model(x), "model(features)", shape=x.shape, dims="batch inst feats", dtype=x.dtype, device=device
        )
        _instances_independent(model, ["W", "b_final"], x, "model(features)")
        up = _up(relu(_down(x, W)), W)
        expected = relu(up + b)
        if not _matches(out, expected):
            code, hint = _diagnose(
                out,
                [
                    (
                        "no_hidden_relu",
                        relu(_up(_down(x, W), W) + b),
                        "this is part 1's forward: apply a ReLU to the hidden activations W x before going back up",
                    ),
                    ("bias", relu(up), "b_final is missing: add it to the output before the final ReLU"),
                    (
                        "bias_after_relu",
                        relu(up) + b,
                        "b_final is added after the output ReLU: add it first, then apply the ReLU",
                    ),
                    ("no_output_relu", up + b, "the output ReLU is missing: ReLU(Wᵀ h + b_final)"),
                ],
            )
            expect_close(out, expected, "model(features)", hint, code=code, dims="batch inst feats")
        _check_leading_dims(model, x.reshape(2, 8, cfg.n_inst, cfg.n_features), expected)
    return "ReLU(Wᵀ ReLU(W x) + b_final)"


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.forward
# --------------------------------------------------------------------------------------------
def _computation_model(NeuronComputationModel: type, device: torch.device, **kwargs):
    cfg = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)
    model = NeuronComputationModel(cfg, device=device, **kwargs)
    with torch.no_grad():
        model.W1.copy_(torch.randn(cfg.n_inst, cfg.d_hidden, cfg.n_features) * 0.8)
        model.W2.copy_(torch.randn(cfg.n_inst, cfg.n_features, cfg.d_hidden) * 0.8)
        model.b_final.copy_(torch.randn(cfg.n_inst, cfg.n_features) * 0.6)
    return cfg, model


@checker("NeuronComputationModel.forward")
def test_computation_forward(NeuronComputationModel: type, device: torch.device) -> str:
    cfg, model = _computation_model(NeuronComputationModel, device, feature_probability=0.5)
    W1, W2, b = (t.detach().clone() for t in (model.W1, model.W2, model.b_final))
    W2t = W2.transpose(-1, -2)  # [inst d feats]
    mask = torch.rand(16, cfg.n_inst, cfg.n_features, device=device) < 0.6
    x = (2 * torch.rand(16, cfg.n_inst, cfg.n_features, device=device) - 1) * mask  # values of both signs
    with torch.no_grad():
        out = expect_tensor(
            model(x), "model(features)", shape=x.shape, dims="batch inst feats", dtype=x.dtype, device=device
        )
        _instances_independent(model, ["W1", "W2", "b_final"], x, "model(features)")
        hidden = relu(_down(x, W1))
        up = _up(hidden, W2t)
        expected = relu(up + b)
        if not _matches(out, expected):
            code, hint = _diagnose(
                out,
                [
                    (
                        "no_hidden_relu",
                        relu(_up(_down(x, W1), W2t) + b),
                        "apply a ReLU to the hidden activations W1 x before multiplying by W2",
                    ),
                    ("bias", relu(up), "b_final is missing: add it to the output before the final ReLU"),
                    (
                        "bias_after_relu",
                        relu(up) + b,
                        "b_final is added after the output ReLU: add it first, then apply the ReLU",
                    ),
                    ("no_output_relu", up + b, "the output ReLU is missing: ReLU(W2 h + b_final)"),
                    (
                        "tied_weights",
                        relu(_up(hidden, W1) + b),
                        "the output layer uses W1 transposed: this model writes with its own W2 [inst feats d_hidden]",
                    ),
                    (
                        "abs_in_forward",
                        relu(_up(relu(_down(x.abs(), W1)), W2t) + b),
                        "the forward pass takes the raw features (they can be negative); |x| is only the loss's target",
                    ),
                ],
            )
            expect_close(out, expected, "model(features)", hint, code=code, dims="batch inst feats")
        _check_leading_dims(model, x.reshape(4, 4, cfg.n_inst, cfg.n_features), expected)
    return "ReLU(W2 ReLU(W1 x) + b_final)"


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.generate_batch
# --------------------------------------------------------------------------------------------
# Presence probabilities differ across features and instances, so a mask that ignores either axis,
# or that is `rand > p`, shows up in at least one entry.
_PROBS = [[0.9, 0.6, 0.35, 0.2, 0.08], [0.15, 0.45, 0.7, 0.05, 0.3], [0.5, 0.25, 0.1, 0.8, 0.6]]
_BATCH = 20_000


def _rate_hint(obs: float, exp: float) -> str | None:
    if abs(obs - (1 - exp)) < abs(obs - exp):
        return "the rate looks like 1 - p: a feature is present when `rand < p`, not `rand > p`"
    return "each feature of each instance needs its own probability feature_probability[inst, feat]"


@checker("NeuronComputationModel.generate_batch")
def test_computation_generate_batch(NeuronComputationModel: type, device: torch.device) -> str:
    probs = torch.tensor(_PROBS, device=device)
    n_inst, n_feats = probs.shape
    cfg = ToyModelConfig(n_inst=n_inst, n_features=n_feats, d_hidden=2)
    model = NeuronComputationModel(cfg, feature_probability=probs, device=device)
    batch = expect_tensor(
        model.generate_batch(_BATCH),
        f"generate_batch({_BATCH})",
        shape=(_BATCH, n_inst, n_feats),
        dims="batch inst feats",
        dtype=torch.float32,
        device=device,
    )
    batch = batch.detach().double().cpu()
    probs = probs.double().cpu()
    if (batch.abs() > 1).any():
        fail(
            f"some values lie outside [-1, 1] (largest magnitude {batch.abs().max().item():.3g})",
            "present values should be uniform on [-1, 1], e.g. 2 * torch.rand(...) - 1",
            code="value_range",
        )
    present = batch != 0
    # 1) presence per instance and feature: 15 frequencies (plus the tests below, in the union bound)
    n_tests = n_inst * n_feats + 2 * n_inst + 2 * n_inst + n_inst
    expect_frequency(
        present.double().mean(0), probs, _BATCH, "the presence rate", dims="inst feat", hint=_rate_hint, n_tests=n_tests
    )
    # 2) values of present features: both signs, mean 0, mean square 1/3 (per instance)
    for k in range(n_inst):
        values = batch[:, k][present[:, k]]
        n = values.numel()
        negative = (values < 0).double().mean()
        if (values < 0).sum() == 0:
            fail(
                f"instance {k}: no present value is negative",
                "values should be uniform on [-1, 1], not [0, 1]: use 2 * torch.rand(...) - 1",
                code="value_range",
            )
        expect_frequency(
            negative.reshape(1),
            0.5,
            n,
            f"instance {k}: the share of negative values",
            hint="present values should be uniform on [-1, 1], symmetric around 0",
            code="value_distribution",
            n_tests=n_tests,
        )
        tol_mean, tol_sq = uniform_moments_tolerance(n, -1.0, 1.0, n_tests=n_tests)
        mean, mean_sq = values.mean().item(), (values**2).mean().item()
        if abs(mean) > tol_mean or abs(mean_sq - 1 / 3) > tol_sq:
            fail(
                f"instance {k}: present values have mean {mean:.3f} and mean square {mean_sq:.3f}; "
                f"U[-1, 1] has 0 ± {tol_mean:.3f} and 0.333 ± {tol_sq:.3f}",
                "draw values from U[-1, 1] with their own random tensor (reusing the presence draw makes "
                "values depend on p)",
                code="value_distribution",
            )
    # 3) independence: two features of one instance, and one feature of two instances, are present
    #    together with probability p_a * p_b (a shared mask would give min(p_a, p_b))
    for k in range(n_inst):
        both = (present[:, k, 0] & present[:, k, 1]).double().mean().reshape(1)
        expect_frequency(
            both,
            probs[k, 0] * probs[k, 1],
            _BATCH,
            f"instance {k}: the rate at which features 0 and 1 are both present",
            hint="draw presence independently for every feature (one random number per entry)",
            code="independence",
            n_tests=n_tests,
        )
        j = (k + 1) % n_inst
        both = (present[:, k, 2] & present[:, j, 2]).double().mean().reshape(1)
        expect_frequency(
            both,
            probs[k, 2] * probs[j, 2],
            _BATCH,
            f"the rate at which feature 2 is present in both instances {k} and {j}",
            hint="draw presence independently for every instance: the random tensor needs the "
            "full shape [batch, inst, feats]",
            code="independence",
            n_tests=n_tests,
        )
    return f"presence rates, U[-1, 1] values and independence on {_BATCH} examples"


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.calculate_loss
# --------------------------------------------------------------------------------------------
@checker("NeuronComputationModel.calculate_loss")
def test_computation_calculate_loss(NeuronComputationModel: type, device: torch.device) -> str:
    n_inst, n_feats, B = 3, 5, 7
    importance = torch.rand(n_inst, n_feats, device=device) * 1.5 + 0.2  # non-uniform, differs per instance
    cfg = ToyModelConfig(n_inst=n_inst, n_features=n_feats, d_hidden=2)
    model = NeuronComputationModel(cfg, feature_probability=0.5, importance=importance, device=device)
    batch = (2 * torch.rand(B, n_inst, n_feats, device=device) - 1) * (
        torch.rand(B, n_inst, n_feats, device=device) < 0.7
    )
    out = torch.rand(B, n_inst, n_feats, device=device) * 1.2
    loss = expect_scalar(model.calculate_loss(out.clone(), batch.clone()), "calculate_loss(out, batch)")
    if loss.dtype != torch.float32 or loss.device.type != device.type:
        fail(
            f"the loss has dtype {loss.dtype} on {loss.device}, expected float32 on {device}",
            "compute the loss from the given tensors without changing their dtype or device",
            code="dtype",
        )

    def loss_of(target: Tensor, weight: Tensor = importance, per_inst: str = "mean", over: tuple = (0, 2)) -> Tensor:
        err = weight * (target - out) ** 2
        per = err.sum(over) if per_inst == "sum" else err.mean(over)
        return per.sum()

    expected = loss_of(batch.abs())
    if not torch.isclose(loss.detach(), expected, rtol=1e-4, atol=1e-6):
        err_all = importance * (batch.abs() - out) ** 2
        code, hint = _diagnose(
            loss.detach(),
            [
                (
                    "target",
                    loss_of(batch),
                    "the target is |x| (batch.abs()), not x: the model computes absolute values",
                ),
                ("target", loss_of(relu(batch)), "the target is |x| (batch.abs()), not ReLU(x)"),
                (
                    "importance",
                    loss_of(batch.abs(), torch.ones_like(importance)),
                    "weight each squared error by self.importance[inst, feat]",
                ),
                (
                    "importance",
                    loss_of(batch.abs(), importance**2),
                    "multiply the squared error by the importance once: I · (|x| - y)², not (I · (|x| - y))²",
                ),
                ("instance_reduction", err_all.mean(), "sum over instances (mean over batch and features only)"),
                ("batch_reduction", err_all.sum(0).mean(-1).sum(), "take the mean over the batch, not the sum"),
                ("feature_reduction", err_all.mean(0).sum(-1).sum(), "take the mean over features, not the sum"),
            ],
        )
        fail(f"calculate_loss returned {loss.item():.6g}, expected {expected.item():.6g}", hint, code=code)
    return "Σ_inst mean_{batch, feats} I (|x| - y)²"
