"""Science checks for part 5: the SAEs really recover the toy model's features, resampling works,
and both notebooks run headless.

The toy model: 8 instances, 5 features in 2 dimensions, feature probability 0.025, trained with a fixed
seed. Each architecture is trained with exactly the settings the notebook uses
(`solutions.part5_toy_saes.ARCHITECTURES` and `TRAINING`).
"""

from __future__ import annotations

import nbformat
import pytest
import torch
from nbclient.exceptions import CellExecutionError

import solutions.part5_toy_saes as P
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils.notebooks import ROOT, build, execute, section
from utils.sae_training import SAETrainingLog, reset_optimizer_state, train_sae
from utils.training import cosine_decay_lr

SAE_STEPS = P.SAE_STEPS  # what the notebook uses


@pytest.fixture(scope="module")
def toy_model() -> ToyModel:
    torch.set_num_threads(1)  # tiny tensors: one thread is several times faster on a shared CPU
    torch.manual_seed(0)
    model = ToyModel(ToyModelConfig(n_inst=8, n_features=5, d_hidden=2), feature_probability=0.025, device="cpu")
    model.optimize(steps=5_000, lr=5e-3, lr_scale=cosine_decay_lr)
    return model


_TRAINED: dict[str, tuple] = {}


def _train(toy_model: ToyModel, arch: str) -> tuple:
    """Train once per architecture per session (several tests read the same run)."""
    if arch not in _TRAINED:
        torch.manual_seed(1)
        sae, log = P.train_architecture(arch, toy_model, SAE_STEPS, progress=False)
        _TRAINED[arch] = sae, log, P.evaluate(sae)
    return _TRAINED[arch]


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch",
    [
        "vanilla",
        "gated",
        "jumprelu",
        "topk",
    ],
)
def test_architecture_recovers_features(toy_model: ToyModel, arch: str) -> None:
    """Every feature found (best cosine ≥ 0.95) in most instances, and no dead latents at the end.

    JumpReLU (coefficient 0.12, lr 0.01, resample scale 2 every 250 steps) measured 6/8, 8/8, 8/8, 8/8, 6/8
    at SAE seeds 1, 7, 3, 0, 2 with one dead latent over the five runs (seed 2); with the earlier coefficient
    0.04 it was 6/8, 5/8, 6/8 at seeds 1, 7, 3 with a dead latent each time (the run where this test was an
    xfail). The test uses seed 1.

    "Most" is at least 6 of the 8 instances. With 5 latents for 5 features an instance fails when two
    latents settle on one feature while a third sits between two others: nothing is dead then, so
    resampling can't help. The measured counts (with seed 0/1) are in the report; 6/8 leaves room for
    platform differences in float rounding without accepting an architecture that fails broadly.
    """
    W_before = toy_model.W.detach().clone()
    _sae, log, result = _train(toy_model, arch)
    recovered = result["recovery"].min(-1).values >= 0.95
    print(arch, "min recovery per instance", [round(x, 3) for x in result["recovery"].min(-1).values.tolist()])
    print(arch, "dead fraction", result["dead"].tolist(), "L0", result["l0"].tolist(), "FVE", result["fve"].tolist())
    assert int(recovered.sum()) >= 6, f"{arch}: only {int(recovered.sum())}/8 instances recovered every feature"
    assert (result["dead"] == 0).all(), f"{arch}: dead latents remain after resampling: {result['dead'].tolist()}"
    assert torch.equal(toy_model.W.detach(), W_before), "training the SAE changed the frozen toy model"
    assert isinstance(log, SAETrainingLog) and len(log.steps) > 0


@pytest.mark.slow
def test_jumprelu_reconstructs(toy_model: ToyModel) -> None:
    """What JumpReLU achieves here: little shrinkage, L0 below but near the true 5 × 0.025 = 0.125, and a
    reconstruction at least as good as the vanilla SAE's.

    Measured at seed 1: shrinkage slope (Σ t·r / Σ t², single-feature inputs, as in the shrinkage test) 0.89
    against the vanilla SAE's 0.70; L0 0.065-0.081 (values below the threshold, about 0.3, are dropped;
    a JumpReLU stuck at its initial threshold fires on most all-zero inputs, L0 ≥ 1); FVE 0.880-0.915
    (vanilla 0.876-0.885). Thresholds: slope ≥ 0.85, L0 in [0.05, 0.3], FVE ≥ 0.85.
    """
    from utils.sae_metrics import single_feature_magnitudes

    sae, _, result = _train(toy_model, "jumprelu")
    print("jumprelu FVE", result["fve"].tolist(), "L0", result["l0"].tolist())
    assert (result["fve"] >= 0.85).all(), result["fve"]
    assert ((result["l0"] >= 0.05) & (result["l0"] <= 0.3)).all(), result["l0"]
    torch.manual_seed(4)
    t, r = single_feature_magnitudes(sae, toy_model.W, n_per_feature=100)
    slope = float((t * r).sum() / (t * t).sum())
    assert slope >= 0.85, slope


@pytest.mark.slow
def test_shrinkage_is_reduced(toy_model: ToyModel) -> None:
    """Vanilla SAEs shrink (fitted slope of reconstructed vs true magnitude < 0.9); Gated and TopK don't
    (slope ≥ 0.9). Slope = Σ t·r / Σ t² over single-feature inputs of every instance (4000 points)."""
    from utils.sae_metrics import single_feature_magnitudes

    slopes = {}
    for arch in ("vanilla", "gated", "topk"):
        sae = _train(toy_model, arch)[0]
        torch.manual_seed(4)
        t, r = single_feature_magnitudes(sae, toy_model.W, n_per_feature=100)
        slopes[arch] = float((t * r).sum() / (t * t).sum())
    print("shrinkage slopes", slopes)
    assert slopes["vanilla"] < 0.9 and slopes["gated"] >= 0.9 and slopes["topk"] >= 0.9, slopes


@pytest.mark.slow
def test_resampling_revives_dead_latents(toy_model: ToyModel) -> None:
    """Latents killed on purpose (huge negative encoder bias) are resampled and fire again."""
    torch.manual_seed(2)
    sae = P.ToySAE(P.ToySAEConfig(n_inst=8, d_in=2, d_sae=5, sparsity_coeff=0.2), toy_model)
    with torch.no_grad():
        sae.b_enc[:, :2] = -100.0
    log = sae.optimize(
        steps=700,
        batch_size=512,
        lr=3e-3,
        resample_method="advanced",
        resample_freq=300,
        resample_window=100,
        resample_scale=0.5,
        progress=False,
    )
    assert log.resample_steps == [300, 600]
    assert (log.n_resampled[0] >= 2).all(), log.n_resampled[0]
    assert (log.frac_active[-1][:, :2] > 0).all(), "resampled latents should fire again"


def test_reset_optimizer_state_zeroes_only_dead_latents() -> None:
    sae = P.ToySAE(P.ToySAEConfig(n_inst=2, d_in=3, d_sae=4), ToyModel(ToyModelConfig(2, 5, 3), device="cpu"))
    opt = torch.optim.Adam([p for p in sae.parameters() if p.requires_grad], lr=1e-3)
    h = torch.randn(8, 2, 3)
    sae(h)[1].backward()
    opt.step()
    dead = torch.tensor([[True, False, False, True], [False, False, True, False]])
    reset_optimizer_state(opt, sae, dead)
    for name, axis in P.ToySAE.LATENT_AXES.items():
        state = opt.state[getattr(sae, name)]
        for key in ("exp_avg", "exp_avg_sq"):
            moved = state[key].movedim(axis % state[key].ndim, 1)
            assert (moved[dead] == 0).all(), (name, key)
            assert (moved[~dead] != 0).any(), (name, key)


def test_train_sae_accepts_any_activation_source() -> None:
    """Section 6's use: one instance, d_in of a few hundred, activations from a function."""
    torch.manual_seed(3)
    cfg = P.ToySAEConfig(n_inst=1, d_in=256, d_sae=512, sparsity_coeff=1e-3)
    sae = P.ToySAE(cfg, model=None)
    directions = torch.nn.functional.normalize(torch.randn(1024, 256), dim=-1)
    sae.generate_batch = lambda n: (torch.rand(n, 1024).lt(0.01).float() @ directions)[:, None, :]
    log = train_sae(
        sae,
        steps=30,
        batch_size=64,
        lr=1e-3,
        log_freq=10,
        resample_method="advanced",
        resample_freq=20,
        resample_window=10,
        progress=False,
    )
    assert len(log.loss) == 3 and log.loss[-1] < log.loss[0]


# --------------------------------------------------------------------------------------------
# Notebooks
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_exercise_notebook_stops_at_first_stub() -> None:
    sec = section("part5_toy_saes")
    nb = build(sec, exercise=True)
    with pytest.raises(CellExecutionError) as info:
        execute(nb, cwd=ROOT / "exercises", env={"CURRICULUM_FAST": "1"}, timeout=300)
    text = str(info.value)
    assert "not implemented yet" in text and "init" in text, text[-2000:]
    assert "NameError" not in text


@pytest.mark.slow
def test_solution_notebook_runs_fast() -> None:
    sec = section("part5_toy_saes")
    done = execute(build(sec, exercise=False), cwd=ROOT / "solutions", env={"CURRICULUM_FAST": "1"}, timeout=600)
    outputs = [o for c in done.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert isinstance(done, nbformat.NotebookNode)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def test_plot_helpers_show_or_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each helper shows and returns None, or (show=False) returns the figure unshown: never both, which
    would display the figure twice when the call ends a notebook cell. Inputs are left unchanged."""
    import plotly.graph_objects as go

    from utils import sae_plots

    shown: list[go.Figure] = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: shown.append(self))
    torch.manual_seed(5)
    W = torch.randn(2, 2, 5)
    W_dec = torch.nn.functional.normalize(torch.randn(3, 2, 5, 2), dim=-1)
    frac = torch.rand(4, 2, 5)
    pair = (torch.rand(50), torch.rand(50))
    calls = [
        lambda show: sae_plots.animate_sae_directions(W, torch.randn(20, 2, 2), W_dec, [0, 10, 20], show=show),
        lambda show: sae_plots.plot_frac_active(frac, [0, 1, 2, 3], feature_probability=0.025, show=show),
        lambda show: sae_plots.plot_shrinkage({"a": pair}, show=show),
        lambda show: sae_plots.plot_frontier({"a": (torch.rand(8), torch.rand(8))}, show=show),
        lambda show: sae_plots.plot_feature_recovery({"a": torch.rand(2, 5)}, show=show),
    ]
    before = [t.clone() for t in (W, W_dec, frac, *pair)]
    for call in calls:
        fig = call(False)
        assert isinstance(fig, go.Figure) and fig.layout.title.text and not shown
        assert call(True) is None and len(shown) == 1
        shown.clear()
    for b, t in zip(before, (W, W_dec, frac, *pair), strict=True):
        assert torch.equal(b, t), "a plot helper modified its input"
