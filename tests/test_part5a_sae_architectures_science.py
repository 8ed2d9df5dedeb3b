"""Science checks for part 5a: the SAE architectures really recover the toy model's features, and
Gated, JumpReLU and TopK shrink less than the vanilla SAE.

The toy model: 8 instances, 5 features in 2 dimensions, feature probability 0.025, trained with a fixed
seed. Each architecture is trained with exactly the settings the notebook uses
(`solutions.part5a_sae_architectures.ARCHITECTURES` and `TRAINING`).
"""

from __future__ import annotations

import pytest
import torch

import solutions.part5a_sae_architectures as A
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils.part5a_sae_architectures import single_feature_magnitudes
from utils.sae_training import SAETrainingLog
from utils.schedules import cosine_decay_lr

SAE_STEPS = A.SAE_STEPS  # what the notebook uses


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
        sae, log = A.train_architecture(arch, toy_model, SAE_STEPS, progress=False)
        _TRAINED[arch] = sae, log, A.evaluate(sae)
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
    slopes = {}
    for arch in ("vanilla", "gated", "topk"):
        sae = _train(toy_model, arch)[0]
        torch.manual_seed(4)
        t, r = single_feature_magnitudes(sae, toy_model.W, n_per_feature=100)
        slopes[arch] = float((t * r).sum() / (t * t).sum())
    print("shrinkage slopes", slopes)
    assert slopes["vanilla"] < 0.9 and slopes["gated"] >= 0.9 and slopes["topk"] >= 0.9, slopes


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def test_plot_helpers_show_or_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each helper shows and returns None, or (show=False) returns the figure unshown: never both, which
    would display the figure twice when the call ends a notebook cell. Inputs are left unchanged."""
    import plotly.graph_objects as go
    import plotly.io

    from utils import part5a_sae_architectures as figures

    shown: list[go.Figure] = []
    monkeypatch.setattr(plotly.io, "show", lambda fig, *a, **k: shown.append(fig))  # what Figure.show calls
    torch.manual_seed(5)
    W = torch.randn(2, 2, 5)
    W_dec = torch.nn.functional.normalize(torch.randn(3, 2, 5, 2), dim=-1)
    frac = torch.rand(4, 2, 5)
    pair = (torch.rand(50), torch.rand(50))
    calls = [
        lambda show: figures.plot_shrinkage({"a": pair}, show=show),
        lambda show: figures.plot_frontier({"a": (torch.rand(8), torch.rand(8))}, show=show),
        lambda show: figures.plot_feature_recovery({"a": torch.rand(2, 5)}, show=show),
    ]
    before = [t.clone() for t in (W, W_dec, frac, *pair)]
    for call in calls:
        fig = call(False)
        assert isinstance(fig, go.Figure) and fig.layout.title.text and not shown
        assert call(True) is None and len(shown) == 1
        shown.clear()
    for b, t in zip(before, (W, W_dec, frac, *pair), strict=True):
        assert torch.equal(b, t), "a plot helper modified its input"
