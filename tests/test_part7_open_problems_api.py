"""The lab's API (utils/part7_open_problems.py), built with the section's reference functions: it is the
section 1 and 2 models, each option changes what it claims to and nothing else, it is seeded, it runs the
functions it is given, and short trainings reproduce the section's findings."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from solutions import part7_open_problems as ref
from solutions.part1_superposition import ToyModel, ToyModelConfig
from tests.checking import bernstein_tolerance
from utils import part7_open_problems as lab
from utils import part7_open_problems as plots
from utils.part7_open_problems import ExperimentConfig, ExperimentModel, LabFunctions

DELTA = 1e-7  # failure probability per statistical assertion (Bernstein bound, see tests/checking.py)
FUNCTIONS = LabFunctions(ref.generate_features, ref.compute_target, ref.cross_entropy_loss)


def _model(seed: int = 0, p: float | torch.Tensor = 0.3, importance: float | torch.Tensor = 1.0, **options):
    cfg = ExperimentConfig(**{"n_inst": 3, "n_features": 6, "d_hidden": 3, **options})
    model = ExperimentModel(cfg, FUNCTIONS, p, importance, device="cpu", seed=seed)
    with torch.no_grad():  # non-zero biases so every term matters
        model.b_final.copy_(torch.randn(model.b_final.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.3)
        if model.b_hidden is not None:
            model.b_hidden.copy_(torch.randn(model.b_hidden.shape, generator=torch.Generator().manual_seed(seed + 2)))
    return model


def _signed_batch(shape=(64, 3, 6), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * (torch.rand(shape, generator=gen) < 0.5)


# --------------------------------------------------------------------------------------------
# The defaults are section 1's model; a ReLU hidden layer gives section 2's models
# --------------------------------------------------------------------------------------------
def test_defaults_compute_exactly_section_1_toy_model():
    importance = 0.9 ** torch.arange(6.0)
    toy = ToyModel(ToyModelConfig(n_inst=3, n_features=6, d_hidden=3), 0.3, importance, device="cpu")
    model = _model(importance=importance)
    with torch.no_grad():
        toy.W.copy_(model.W)
        toy.b_final.copy_(model.b_final)
    batch = toy.generate_batch(256)
    torch.testing.assert_close(model(batch), toy(batch), rtol=0, atol=0)
    torch.testing.assert_close(model.calculate_loss(model(batch), batch), toy.calculate_loss(toy(batch), batch))
    assert model.feature_probability.shape == toy.feature_probability.shape
    torch.testing.assert_close(model.importance, toy.importance)


def _section2():
    try:
        from solutions import part2_privileged_basis as part2
    except ImportError:  # section 2 is developed in parallel; fall back on its formula
        return None
    return part2


def test_relu_hidden_layer_computes_section_2_neuron_model():
    model = _model(hidden_activation="relu")
    batch = _signed_batch()
    W, b = model.W, model.b_final
    hidden = torch.einsum("bif,idf->bid", batch, W).relu()
    formula = F.relu(torch.einsum("bid,idf->bif", hidden, W) + b)  # ReLU(Wᵀ ReLU(W x) + b)
    torch.testing.assert_close(model(batch), formula)
    part2 = _section2()
    if part2 is not None:
        reference = part2.NeuronModel(ToyModelConfig(n_inst=3, n_features=6, d_hidden=3), device="cpu")
        with torch.no_grad():
            reference.W.copy_(W)
            reference.b_final.copy_(b)
        torch.testing.assert_close(model(batch), reference(batch), rtol=0, atol=0)


def test_untied_abs_model_computes_section_2_computation_model():
    importance = torch.linspace(1.0, 0.2, 6)
    model = _model(hidden_activation="relu", tied=False, values="signed_uniform", target="abs", importance=importance)
    batch = model.generate_batch(128)
    W1, W2, b = model.W, model.W_out, model.b_final
    formula = F.relu(torch.einsum("bid,ifd->bif", torch.einsum("bif,idf->bid", batch, W1).relu(), W2) + b)
    torch.testing.assert_close(model(batch), formula)
    expected_loss = (importance * (batch.abs() - formula) ** 2).mean((0, 2)).sum()
    torch.testing.assert_close(model.calculate_loss(model(batch), batch), expected_loss)
    part2 = _section2()
    if part2 is not None:
        reference = part2.NeuronComputationModel(
            ToyModelConfig(n_inst=3, n_features=6, d_hidden=3), importance=importance, device="cpu"
        )
        with torch.no_grad():
            reference.W1.copy_(W1)
            reference.W2.copy_(W2)
            reference.b_final.copy_(b)
        torch.testing.assert_close(model(batch), reference(batch), rtol=0, atol=0)
        torch.testing.assert_close(
            model.calculate_loss(model(batch), batch), reference.calculate_loss(reference(batch), batch)
        )


# --------------------------------------------------------------------------------------------
# Each option changes what it claims, and nothing else
# --------------------------------------------------------------------------------------------
def test_output_activation_changes_only_the_output_nonlinearity():
    relu, gelu, linear = _model(), _model(output_activation="gelu"), _model(output_activation=None)
    batch = _signed_batch()
    pre = torch.einsum("bid,idf->bif", torch.einsum("bif,idf->bid", batch, relu.W), relu.W) + relu.b_final
    torch.testing.assert_close(relu(batch), F.relu(pre))
    torch.testing.assert_close(gelu(batch), F.gelu(pre))
    torch.testing.assert_close(linear(batch), pre)


def test_hidden_gelu_and_hidden_bias():
    base, model = _model(), _model(hidden_activation="gelu", hidden_bias=True)
    batch = _signed_batch()
    hidden = F.gelu(torch.einsum("bif,idf->bid", batch, model.W) + model.b_hidden[0])
    torch.testing.assert_close(model(batch), F.relu(torch.einsum("bid,idf->bif", hidden, model.W) + model.b_final))
    assert base.b_hidden is None and model.b_hidden.shape == (1, 3, 3)
    torch.testing.assert_close(model.W, base.W)  # the same seed gives the same weights whatever the options


def test_deeper_models_stack_hidden_layers():
    model = _model(n_hidden_layers=3, hidden_activation="relu", tied=False, hidden_bias=True)
    assert model.W_deep.shape == (2, 3, 3, 3) and model.b_hidden.shape == (3, 3, 3)
    batch = _signed_batch()
    h = (torch.einsum("bif,idf->bid", batch, model.W) + model.b_hidden[0]).relu()
    for layer in range(2):
        h = (torch.einsum("bie,ide->bid", h, model.W_deep[layer]) + model.b_hidden[layer + 1]).relu()
    torch.testing.assert_close(model(batch), F.relu(torch.einsum("bid,ifd->bif", h, model.W_out) + model.b_final))


def test_dropout_only_acts_in_training_and_at_the_stated_rate():
    q = 0.3
    plain, dropped = _model(), _model(dropout=q)
    batch = _signed_batch((4000, 3, 6)).abs()
    dropped.eval()
    torch.testing.assert_close(dropped(batch), plain(batch), rtol=0, atol=0)  # off in eval mode
    dropped.train()
    torch.manual_seed(0)
    h_train, h_plain = dropped.hidden(batch), plain.hidden(batch)
    nonzero = h_plain != 0
    zeroed = (h_train[nonzero] == 0).float()
    # fraction of hidden units dropped: Bernoulli(q) over n units, Bernstein tolerance
    n = int(nonzero.sum())
    assert abs(zeroed.mean().item() - q) < bernstein_tolerance(n, q * (1 - q), 1.0, DELTA)
    kept = h_train[nonzero] != 0
    torch.testing.assert_close(h_train[nonzero][kept], h_plain[nonzero][kept] / (1 - q))  # inverted scaling


def test_values_change_only_the_values_not_the_presence():
    p = torch.tensor([[0.1, 0.5, 0.9, 0.3], [0.7, 0.2, 0.4, 0.05]])
    n = 20_000
    masks = {}
    for kind, support, mean in [
        ("uniform", (0.0, 1.0), 0.5),
        ("constant", (1.0, 1.0), 1.0),
        ("binary", (1.0, 1.0), 1.0),
        ("discrete", (1.0, 3.0), 2.0),
        ("uniform_half", (0.5, 1.0), 0.75),
        ("signed_uniform", (-1.0, 1.0), 0.0),
    ]:
        torch.manual_seed(0)
        batch = ref.generate_features(p, n, kind)
        masks[kind] = batch != 0
        values = batch[batch != 0]
        assert support[0] <= values.min() and values.max() <= support[1], kind
        if kind == "discrete":
            assert set(values.unique().tolist()) == {1.0, 2.0, 3.0}
        var = {"uniform": 1 / 12, "discrete": 2 / 3, "uniform_half": 1 / 48, "signed_uniform": 1 / 3}.get(kind, 0.0)
        width = support[1] - support[0]
        assert abs(values.mean().item() - mean) <= bernstein_tolerance(values.numel(), var, width, DELTA) + 1e-6, kind
    for kind in masks:  # presence comes from the same draws whatever the values are
        assert torch.equal(masks[kind], masks["uniform"]), kind
    freq = masks["uniform"].float().mean(0)
    tol = torch.tensor([[bernstein_tolerance(n, q * (1 - q), 1.0, DELTA / 8) for q in row] for row in p.tolist()])
    assert ((freq - p).abs() < tol).all()  # non-uniform per-feature sparsity, per instance


def test_targets_change_only_the_loss():
    batch = _signed_batch()
    for target in ("abs", "square"):
        model = _model(target=target, tied=True)
        base = _model()
        torch.testing.assert_close(model(batch), base(batch))  # the forward pass is untouched
        expected = {"abs": batch.abs(), "square": batch**2}[target]
        torch.testing.assert_close(model.target(batch), expected)
        torch.testing.assert_close(
            model.calculate_loss(model(batch), batch), lab.weighted_mse(model(batch), expected, model.importance)
        )
    pairs = _model(target="max_pairs", tied=False)
    assert pairs(batch).shape == (64, 3, 3) and pairs.importance.shape == (3, 3)
    binary = (batch != 0).float()
    torch.testing.assert_close(ref.compute_target(binary, "and_pairs"), binary[..., 0::2] * binary[..., 1::2])
    torch.testing.assert_close(
        ref.compute_target(binary, "or_pairs"), torch.maximum(binary[..., 0::2], binary[..., 1::2])
    )
    torch.testing.assert_close(
        ref.compute_target(batch, "max_pairs"), torch.maximum(batch[..., 0::2], batch[..., 1::2])
    )
    labels = ref.compute_target(batch, "argmax")
    assert labels.dtype == torch.int64 and ((labels == -1) == (batch == 0).all(-1)).all()


def test_cross_entropy_loss_option():
    model = _model(target="argmax", loss="cross_entropy", output_activation=None, importance=torch.linspace(0.5, 2, 6))
    batch = model.generate_batch(512)
    logits = model(batch)
    labels = ref.compute_target(batch, "argmax")
    expected = 0.0
    for k in range(3):
        valid = labels[:, k] != -1
        nll = F.cross_entropy(logits[valid, k], labels[valid, k], reduction="none")
        expected = expected + (model.importance[k, labels[valid, k]] * nll).mean()
    torch.testing.assert_close(model.calculate_loss(logits, batch), expected)
    metrics = model.evaluate(batch_size=2000)
    assert metrics["accuracy"].shape == (3,) and ((metrics["accuracy"] >= 0) & (metrics["accuracy"] <= 1)).all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"values": "gaussian"}, "values"),
        ({"target": "max_pairs", "n_features": 5, "tied": False}, "even"),
        ({"target": "max_pairs", "n_features": 6}, "tied=False"),
        ({"n_hidden_layers": 2}, "tied"),
        ({"loss": "cross_entropy"}, "argmax"),
        ({"target": "argmax", "loss": "cross_entropy"}, "output_activation=None"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_activation": "tanh"}, "hidden_activation"),
        ({"d_hidden": 0}, "d_hidden"),
    ],
)
def test_bad_options_give_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**{"n_inst": 2, **options})


def test_bad_probability_and_importance_shapes():
    cfg = ExperimentConfig(n_inst=2, n_features=4)
    with pytest.raises(ValueError, match="feature_probability"):
        ExperimentModel(cfg, FUNCTIONS, torch.ones(3), device="cpu")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ExperimentModel(cfg, FUNCTIONS, 1.5, device="cpu")
    with pytest.raises(ValueError, match="importance"):
        ExperimentModel(cfg, FUNCTIONS, 0.5, torch.ones(2, 3), device="cpu")
    with pytest.raises(TypeError, match="LabFunctions"):
        ExperimentModel(cfg, 0.5, device="cpu")  # the functions forgotten


def test_run_experiment_is_seeded_and_leaves_the_global_rng_alone():
    cfg = ExperimentConfig(n_inst=2, n_features=4, d_hidden=2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = lab.run_experiment(cfg, FUNCTIONS, 0.2, steps=20, batch_size=64, device="cpu", progress=False, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = lab.run_experiment(cfg, FUNCTIONS, 0.2, steps=20, batch_size=64, device="cpu", progress=False, seed=3)
    c = lab.run_experiment(cfg, FUNCTIONS, 0.2, steps=20, batch_size=64, device="cpu", progress=False, seed=4)
    assert torch.equal(a.W, b.W) and not torch.equal(a.W, c.W)
    assert len(a.losses) == 2  # steps 0 and 19 with log_freq 100


def test_the_lab_runs_the_functions_it_is_given():
    """Batches, targets and the cross-entropy loss all come from `functions`: editing them changes the run."""
    calls = []

    def doubled(p, batch_size, values):
        calls.append("generate_features")
        return 2 * ref.generate_features(p, batch_size, values)

    def negated(features, target):
        calls.append("compute_target")
        return -ref.compute_target(features, target)

    def scaled_ce(logits, labels, importance):
        calls.append("cross_entropy_loss")
        return 3 * ref.cross_entropy_loss(logits, labels, importance)

    cfg = ExperimentConfig(n_inst=2, n_features=4, d_hidden=2)
    model = ExperimentModel(cfg, LabFunctions(doubled, negated, ref.cross_entropy_loss), 0.5, device="cpu", seed=0)
    torch.manual_seed(0)
    batch = model.generate_batch(1000)
    assert batch.max() > 1.5 and calls == ["generate_features"]  # values 2 U[0, 1]
    torch.testing.assert_close(model.target(batch), -batch)
    ce_cfg = ExperimentConfig(n_inst=2, n_features=4, output_activation=None, target="argmax", loss="cross_entropy")
    plain = ExperimentModel(ce_cfg, FUNCTIONS, 0.5, device="cpu", seed=0)
    tripled = ExperimentModel(ce_cfg, FUNCTIONS._replace(cross_entropy_loss=scaled_ce), 0.5, device="cpu", seed=0)
    batch = plain.generate_batch(256)
    torch.testing.assert_close(
        tripled.calculate_loss(tripled(batch), batch), 3 * plain.calculate_loss(plain(batch), batch)
    )
    torch.testing.assert_close(tripled.evaluate(batch_size=500)["loss"], 3 * plain.evaluate(batch_size=500)["loss"])
    # evaluate's per-instance losses are the loss of each instance alone, and sum to the loss
    loss, per_inst = (
        plain.calculate_loss(plain(batch), batch),
        lab._per_instance(ref.cross_entropy_loss, plain(batch), plain.target(batch), plain.importance),
    )
    torch.testing.assert_close(per_inst.sum(), loss)


def test_the_sections_run_experiment_looks_up_the_functions_when_called(monkeypatch):
    """Re-running an edited exercise cell rebinds the name; the next experiment must use the new function."""
    cfg = ExperimentConfig(n_inst=2, n_features=4, d_hidden=2)
    before = ref.run_experiment(cfg, 0.3, steps=5, batch_size=32, device="cpu", progress=False)
    assert before.functions == FUNCTIONS
    original = ref.generate_features
    edited = lambda p, batch_size, values: 0 * original(p, batch_size, values)
    monkeypatch.setattr(ref, "generate_features", edited)
    after = ref.run_experiment(cfg, 0.3, steps=5, batch_size=32, device="cpu", progress=False)
    assert after.functions.generate_features is edited
    assert not after.generate_batch(10).any()


def test_the_lab_defines_no_exercise_answers():
    """One definition of each answer, in the section's source; the lab imports no section code."""
    for name in ("generate_features", "sample_values", "compute_target", "cross_entropy_loss", "basis_alignment"):
        assert not hasattr(lab, name), name
    source = Path(lab.__file__).read_text(encoding="utf-8")
    assert "import solutions" not in source and "from solutions" not in source and "from tests" not in source
    assert not re.search(r"^NO_LABEL\s*=", Path(ref.__file__).read_text(encoding="utf-8"), re.M)  # given by the lab
    assert ref.NO_LABEL == lab.NO_LABEL == -1


def test_metrics():
    W = torch.zeros(1, 3, 3)
    W[0, :, 0] = torch.tensor([0.0, -2.0, 0.0])
    W[0, :, 1] = torch.tensor([1.0, 1.0, 1.0])
    torch.testing.assert_close(ref.basis_alignment(W), torch.tensor([[1.0, 1 / math.sqrt(3), 0.0]]))
    torch.testing.assert_close(lab.neurons_per_feature(W)[0, :2], torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(lab.n_represented(W), torch.tensor([2.0]))
    # mean of max(|cos|, |sin|) for a uniform angle is 2√2/π; 100k draws: standard error < 0.0002
    assert abs(lab.random_alignment_baseline(ref.basis_alignment, 2) - 2 * math.sqrt(2) / math.pi) < 2e-3
    probability = lab.two_class_probability(5, 2, 0.3, 0.01)
    assert probability.tolist() == pytest.approx([0.3, 0.3, 0.01, 0.01, 0.01])


def test_plot_helpers_return_figures_and_leave_inputs_alone():
    a, x = torch.rand(2, 5), torch.linspace(-1, 1, 11)
    before = (a.clone(), x.clone())
    figs = [
        plots.plot_distributions({"one": a[0], "two": a[1]}, "t", "y", reference=0.5, show=False),
        plots.plot_lines([1, 2, 4, 8, 16], {"s": a[0]}, "t", "x", "y", log_y=True, show=False),
        plots.plot_functions(x, {"x²": x**2}, "t", show=False),
        plots.plot_weight_heatmaps([a, -a], ["a", "-a"], "t", show=False),
    ]
    assert all(fig.layout.title.text == "t" for fig in figs)
    assert torch.equal(a, before[0]) and torch.equal(x, before[1])
    with pytest.raises(ValueError, match="2D"):
        plots.plot_weight_heatmaps([torch.rand(2, 2, 2)], ["x"], "t", show=False)


# --------------------------------------------------------------------------------------------
# Science: short trainings that reproduce the section's findings
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_abs_is_solved_by_two_neurons_but_square_is_not():
    """One feature, U[-1, 1], 2 hidden ReLU neurons, best of 8 seeds.

    |x| = ReLU(x) + ReLU(-x) is exact with 2 neurons: we saw 2e-5 in the notebook's run, so 1e-4 leaves room.
    x² with two kinks is at best a 3-piece linear fit, with an error of order 1e-3 (we saw 1.5e-3 after
    1500 steps, 5.8e-2 in the notebook's shorter run), so it stays above 1e-4.
    """
    best = {}
    for target in ("abs", "square"):
        cfg = ExperimentConfig(
            n_inst=8,
            n_features=1,
            d_hidden=2,
            hidden_activation="relu",
            tied=False,
            hidden_bias=True,
            values="signed_uniform",
            target=target,
        )
        model = ref.run_experiment(cfg, 1.0, steps=800, batch_size=256, lr=1e-2, device="cpu", progress=False)
        best[target] = model.evaluate(batch_size=4000)["loss"].min().item()
    assert best["abs"] < 1e-4 < best["square"], best


@pytest.mark.slow
def test_dropout_pushes_features_off_the_neuron_axes():
    """8 features in 4 dims, p = 0.1, 8 seeds: dropout 0.3 lowers mean alignment of represented features.

    In the notebook's run (same settings, 1000 steps) the mean was 0.72 without dropout (random directions
    in 4 dims: 0.78) and 0.60 with dropout 0.3. The run is seeded, so the result is fixed on a
    given platform; the margin 0.07 (about half the gap) leaves room for other platforms' rounding.
    """
    means = []
    for q in (0.0, 0.3):
        cfg = ExperimentConfig(n_inst=8, n_features=8, d_hidden=4, dropout=q)
        model = ref.run_experiment(cfg, 0.1, steps=1000, batch_size=512, device="cpu", progress=False)
        W = model.W.detach()
        means.append(ref.basis_alignment(W)[W.norm(dim=1) > 0.5].mean().item())
    assert means[1] < means[0] - 0.07, means
