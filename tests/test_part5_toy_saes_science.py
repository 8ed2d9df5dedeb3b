"""Science checks for part 5: resampling revives dead latents, the training loop's bookkeeping, and the
section's figures.

The toy model: 8 instances, 5 features in 2 dimensions, feature probability 0.025, trained with a fixed
seed, as in the notebook.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

import solutions.part5_toy_saes as P
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils.sae_training import reset_optimizer_state, train_sae
from utils.schedules import cosine_decay_lr


@pytest.fixture(scope="module")
def toy_model() -> ToyModel:
    torch.set_num_threads(1)  # tiny tensors: one thread is several times faster on a shared CPU
    torch.manual_seed(0)
    model = ToyModel(ToyModelConfig(n_inst=8, n_features=5, d_hidden=2), feature_probability=0.025, device="cpu")
    model.optimize(steps=5_000, lr=5e-3, lr_scale=cosine_decay_lr)
    return model


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
        resampler=partial(P.resample_advanced, batch_size=512),
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
        resampler=partial(P.resample_advanced, batch_size=64),
        resample_freq=20,
        resample_window=10,
        progress=False,
    )
    assert len(log.loss) == 3 and log.loss[-1] < log.loss[0]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def test_plot_helpers_show_or_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each helper shows and returns None, or (show=False) returns the figure unshown: never both, which
    would display the figure twice when the call ends a notebook cell. Inputs are left unchanged."""
    import plotly.graph_objects as go
    import plotly.io

    from utils import part5_toy_saes as figures

    shown: list[go.Figure] = []
    monkeypatch.setattr(plotly.io, "show", lambda fig, *a, **k: shown.append(fig))  # what Figure.show calls
    torch.manual_seed(5)
    W = torch.randn(2, 2, 5)
    W_dec = torch.nn.functional.normalize(torch.randn(3, 2, 5, 2), dim=-1)
    frac = torch.rand(4, 2, 5)
    pair = (torch.rand(50), torch.rand(50))
    calls = [
        lambda show: figures.animate_sae_directions(W, torch.randn(20, 2, 2), W_dec, [0, 10, 20], show=show),
        lambda show: figures.plot_frac_active(frac, [0, 1, 2, 3], feature_probability=0.025, show=show),
    ]
    before = [t.clone() for t in (W, W_dec, frac, *pair)]
    for call in calls:
        fig = call(False)
        assert isinstance(fig, go.Figure) and fig.layout.title.text and not shown
        assert call(True) is None and len(shown) == 1
        shown.clear()
    for b, t in zip(before, (W, W_dec, frac, *pair), strict=True):
        assert torch.equal(b, t), "a plot helper modified its input"
