"""Science checks for part 5a: the claims the notebook makes, with the notebook's settings and seeds.

The toy model: 8 instances, 5 features in 2 dimensions, feature probability 0.025, trained with a fixed
seed. Each architecture is trained with exactly the settings the notebook uses
(`solutions.part5a_sae_architectures.ARCHITECTURES` and `TRAINING`, seed 1; the frontier with
`FRONTIER_COEFFS`, `FRONTIER_TARGET_L0`, `FRONTIER_STEPS`, seed 3).

Summary claim -> test:
* the L1 penalty shrinks; Gated, JumpReLU and TopK shrink much less -> test_shrinkage_is_reduced,
  test_jumprelu_reconstructs (and every architecture finds the features: test_architecture_recovers_features);
* TopK's L0 is stuck at k on sparse data; with an inference threshold it can be compared at the true L0 ->
  test_topk_l0_is_stuck_at_k, test_thresholded_topk_at_the_true_l0;
* at the true L0 the vanilla SAE leaves the most variance unexplained (and below the true L0 the unexplained
  variance rises steeply) -> test_frontier_at_the_true_l0;
* prose: AuxK barely changes the number of dead TopK latents here -> test_auxk_barely_changes_dead_latents.
"""

from __future__ import annotations

import pytest
import torch

import solutions.part5a_sae_architectures as A
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils.part5a_sae_architectures import frontier_sweep, fvu_at_l0, single_feature_magnitudes
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
    # the notebook: "its fraction of variance explained is close to the vanilla SAE's" (0.897 vs 0.879 measured;
    # gated and TopK reach 0.97-0.98)
    vanilla_fve = _train(toy_model, "vanilla")[2]["fve"].mean()
    assert abs(result["fve"].mean() - vanilla_fve) < 0.05, (result["fve"].mean(), vanilla_fve)
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


@pytest.mark.slow
def test_topk_l0_is_stuck_at_k(toy_model: ToyModel) -> None:
    """TopK (k = 1) fires a latent on every input, so its L0 is ≈ 1 on every instance although 88% of inputs are
    empty; in most instances the latent that fires on an empty input is tiny (measured: 6 of 8 below 0.012), and
    the instances where it is large (measured: 0.97 and 1.15, instances 1 and 2) are the ones that miss features."""
    sae, _, result = _train(toy_model, "topk")
    assert (result["l0"] >= 0.99).all(), result["l0"]
    torch.manual_seed(6)
    h = sae.generate_batch(20_000)
    empty = (h.abs().sum(-1) == 0).float().mean()
    assert abs(empty - 0.975**5) < 0.01, empty
    with torch.no_grad():
        on_empty = sae(torch.zeros(1, 8, 2))[2].amax(-1)[0]
    print("TopK activation on an empty input", on_empty.tolist())
    tiny, large = on_empty < 0.05, on_empty > 0.5
    assert int(tiny.sum()) >= 5, on_empty
    assert (tiny | large).all(), on_empty  # nothing in between, so "tiny" and "large" are clear-cut
    assert (result["recovery"].amin(-1)[large] < 0.95).all(), result["recovery"]


@pytest.mark.slow
def test_thresholded_topk_at_the_true_l0(toy_model: ToyModel) -> None:
    """With a per-instance threshold, TopK's L0 is the true 0.125; where its empty-input activation is tiny the
    FVU stays small (measured 0.038-0.047), where it is large the FVU explodes (measured 25 and 33)."""
    sae = _train(toy_model, "topk")[0]
    with torch.no_grad():
        on_empty = sae(torch.zeros(1, 8, 2))[2].amax(-1)[0]
    torch.manual_seed(7)
    r = A.evaluate_at_l0(sae, torch.full((8,), 0.125))
    fvu = 1 - r["fve"]
    print("thresholded TopK FVU", fvu.tolist())
    assert torch.allclose(r["l0"], torch.full_like(r["l0"], 0.125), atol=1e-3), r["l0"]
    assert (fvu[on_empty < 0.05] < 0.1).all(), fvu
    assert (fvu[on_empty > 0.5] > 1.0).all(), fvu


@pytest.mark.slow
def test_frontier_at_the_true_l0(toy_model: ToyModel) -> None:
    """The notebook's frontier (seed 3): at the true L0 (0.125) the vanilla SAE's FVU is the largest of the curves
    that reach it (measured: vanilla 0.187, gated 0.016, JumpReLU 0.028, thresholded TopK 0.048), and every
    coefficient-swept curve's FVU at its smallest L0 (all below 0.06) is at least 3 times its FVU at the true L0."""
    torch.manual_seed(3)
    frontier, _ = frontier_sweep(
        lambda arch, **kw: A.train_architecture(arch, toy_model, A.FRONTIER_STEPS, progress=False, **kw),
        A.evaluate,
        A.FRONTIER_COEFFS,
        evaluate_at_l0=A.evaluate_at_l0,
        target_l0=A.FRONTIER_TARGET_L0,
    )
    at = {name: fvu_at_l0(l0, fvu, 0.125) for name, (l0, fvu) in frontier.items()}
    print("FVU at L0 = 0.125", at)
    reached = {name: v for name, v in at.items() if v is not None}
    assert {"vanilla", "gated", "jumprelu", "topk (k = 1), thresholded"} <= set(reached), at
    assert max(reached, key=reached.get) == "vanilla", reached
    for name in A.FRONTIER_COEFFS:
        l0, fvu = frontier[name]
        assert l0.min() < 0.06 and fvu[l0.argmin()] > 3 * reached[name], (name, l0, fvu)


@pytest.mark.slow
def test_auxk_barely_changes_dead_latents(toy_model: ToyModel) -> None:
    """The notebook's AuxK comparison (TopK, k = 1, no resampling, seed 2): plain TopK ends with several dead
    latents and AuxK changes the count by at most 2 (measured 9 -> 8 of 40)."""
    dead = {}
    for name, cls, extra in [("plain", A.TopKToySAE, {}), ("auxk", A.TopKAuxToySAE, dict(aux_k=1))]:
        torch.manual_seed(2)
        sae = cls(A.ToySAEConfig(n_inst=8, d_in=2, d_sae=5, sparsity_coeff=0.0, k=1, **extra), toy_model)
        log = sae.optimize(steps=SAE_STEPS, batch_size=512, lr=3e-3, progress=False)
        dead[name] = int((log.frac_active[-1] == 0).sum())
    print("dead latents", dead)
    assert dead["plain"] >= 4 and abs(dead["auxk"] - dead["plain"]) <= 2, dead


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
        lambda show: figures.plot_frontier({"a": (torch.rand(8), torch.rand(8))}, true_l0=0.1, show=show),
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
