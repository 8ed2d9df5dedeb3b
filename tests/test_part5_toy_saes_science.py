"""Science checks for part 5: the claims of the section's summary, the training loop's bookkeeping, and the
section's figures.

The toy model: 8 instances, 5 features in 2 dimensions, feature probability 0.025, trained with a fixed
seed, as in the notebook; the SAEs are trained with the notebook's settings and seed, so the numbers the
notebook prints are the ones tested here.

Summary claim -> test:
* the SAE's decoder rows match the true features -> test_latents_die_without_resampling_and_come_back
  (with resampling, every instance recovers every feature);
* the decoder is normalised, so scaling a decoder row changes nothing -> test_decoder_scale_changes_nothing;
* latents die without resampling (and their feature goes unlearned), and come back with it ->
  test_latents_die_without_resampling_and_come_back, test_resampling_revives_dead_latents.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

import solutions.part5_toy_saes as P
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils.part5_toy_saes import dead_at_end
from utils.sae_training import reset_optimizer_state, train_sae
from utils.schedules import cosine_decay_lr

SAE_SEED, SAE_LR, SAE_STEPS = 2, 1e-2, 4_000  # the notebook's settings


@pytest.fixture(scope="module")
def toy_model() -> ToyModel:
    torch.set_num_threads(1)  # tiny tensors: one thread is several times faster on a shared CPU
    torch.manual_seed(0)
    model = ToyModel(ToyModelConfig(n_inst=8, n_features=5, d_hidden=2), feature_probability=0.025, device="cpu")
    model.optimize(steps=5_000, lr=5e-3, lr_scale=cosine_decay_lr)
    return model


def _best_cosines(sae: P.ToySAE, W: torch.Tensor) -> torch.Tensor:
    """[inst feats]: the largest cosine between each true feature and a decoder row."""
    dec = torch.nn.functional.normalize(sae.W_dec_normalized.detach(), dim=-1)
    feats = torch.nn.functional.normalize(W.detach(), dim=1)
    return torch.einsum("isd,idf->isf", dec, feats).amax(1)


@pytest.mark.slow
def test_latents_die_without_resampling_and_come_back(toy_model: ToyModel) -> None:
    """The notebook's three runs (same seed, so the same initial SAE): without resampling at least one latent is
    dead at the end and its instance misses a feature (best cosine < 0.95); with either resampling scheme nothing is
    dead at the end, and with advanced resampling every instance recovers every feature (best cosine ≥ 0.95).

    Measured at seed 2: latent 1 of instance 2 dies in the first 50 steps (that instance's worst feature has
    cosine 0.74); simple resampling revives 2 latents, advanced 1; with advanced resampling all 40 best cosines
    are above 0.99. Seed 0 behaves the same way (instance 1). At lr 3e-3 no latent died at seeds 0 and 1, which
    is why the notebook trains with 1e-2."""
    cfg = P.ToySAEConfig(n_inst=8, d_in=2, d_sae=5, sparsity_coeff=0.2)
    runs = {}
    for name, resampler in [
        ("none", None),
        ("simple", P.resample_simple),
        ("advanced", partial(P.resample_advanced, batch_size=512)),
    ]:
        torch.manual_seed(SAE_SEED)
        sae = P.ToySAE(cfg, toy_model)
        kw = dict(resampler=resampler, resample_freq=500, resample_window=250, resample_scale=0.5) if resampler else {}
        log = sae.optimize(steps=SAE_STEPS, batch_size=512, lr=SAE_LR, progress=False, **kw)
        runs[name] = (sae, log, torch.as_tensor(dead_at_end(log)))
    _, _, dead = runs["none"]
    died = dead.any(-1)
    print("dead per instance without resampling", dead.sum(-1).tolist())
    assert died.any(), "no latent died without resampling: the notebook's story needs one"
    cos_none = _best_cosines(runs["none"][0], toy_model.W)
    assert (cos_none[died].amin(-1) < 0.95).all(), cos_none
    for name in ("simple", "advanced"):
        print(name, "resampled", torch.stack(runs[name][1].n_resampled).sum().item(), "dead", runs[name][2].sum())
        assert not runs[name][2].any(), f"{name}: latents still dead at the end"
        assert len(runs[name][1].n_resampled) > 0 and torch.stack(runs[name][1].n_resampled).sum() > 0
    cos_adv = _best_cosines(runs["advanced"][0], toy_model.W)
    print("worst best-cosine per instance with advanced resampling", cos_adv.amin(-1).tolist())
    assert (cos_adv >= 0.95).all(), cos_adv


def test_decoder_scale_changes_nothing(toy_model: ToyModel) -> None:
    """With the normalised decoder, multiplying decoder rows by positive factors leaves every output unchanged,
    so the SAE can't shrink its L1 penalty by growing the decoder."""
    torch.manual_seed(3)
    sae = P.ToySAE(P.ToySAEConfig(n_inst=8, d_in=2, d_sae=5, sparsity_coeff=0.2), toy_model)
    h = sae.generate_batch(256)
    before = sae(h)
    with torch.no_grad():
        sae._W_dec.mul_(torch.rand(8, 5, 1) * 10 + 0.1)
    after = sae(h)
    torch.testing.assert_close(after[1], before[1])
    torch.testing.assert_close(after[3], before[3])
    torch.testing.assert_close(after[0]["L_sparsity"], before[0]["L_sparsity"])


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
        lambda show: figures.plot_frac_active_runs(
            {"a": (frac, [0, 1, 2, 3], [2]), "b": (frac, [0, 1, 2, 3], [])}, 0.025, instances=[1], show=show
        ),
    ]
    before = [t.clone() for t in (W, W_dec, frac, *pair)]
    for call in calls:
        fig = call(False)
        assert isinstance(fig, go.Figure) and fig.layout.title.text and not shown
        assert call(True) is None and len(shown) == 1
        shown.clear()
    for b, t in zip(before, (W, W_dec, frac, *pair), strict=True):
        assert torch.equal(b, t), "a plot helper modified its input"
