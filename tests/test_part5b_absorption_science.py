"""Science checks for part 5b: absorption appears in a vanilla SAE on hierarchical features, Matryoshka
removes most of it, the inference threshold of BatchTopK matches its training behaviour, and the
helpers behave. Trained with exactly the notebook's settings (`train_sae_kind`, `ABSORPTION_STEPS`)."""

from __future__ import annotations

import pytest
import torch

import solutions.part5b_absorption as P
from utils.part5b_absorption import (
    HierarchyConfig,
    cooccurrence,
    decoder_feature_cosines,
    feature_labels,
    parent_latent_firing,
)

_TRAINED: dict[str, tuple] = {}


def _trained(name: str) -> tuple:
    """(sae, data, features, acts) for one SAE kind, trained once per session exactly as the notebook does."""
    if name not in _TRAINED:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        data = P.HierarchicalData(HierarchyConfig(n_inst=8))
        sae = P.train_sae_kind(name, data, P.ABSORPTION_STEPS, progress=False)
        with torch.no_grad():
            features, h = data.sample(20_000)
            acts = sae(h)[2]
        _TRAINED[name] = sae, data, features, acts
    return _TRAINED[name]


def _absorption(name: str) -> torch.Tensor:
    sae, data, features, acts = _trained(name)
    return P.absorption_fraction(features, acts, sae.W_dec_normalized, data.W, data.cfg.parent_of)


@pytest.mark.slow
def test_vanilla_sae_absorbs_parents() -> None:
    # Measured here: mean 0.87 (pairs of instance and parent from 0.66 to 1.0); with other seeds of the same
    # settings 0.83-0.94. The L1 penalty prefers one latent of norm sqrt(2) over two of norm 1 for every
    # parent+child input, so absorption is the optimum, not an accident; 0.6 leaves a wide margin. The
    # parent's latent fires on 100% of "parent alone" examples and 13-25% of "parent + child" ones.
    absorption = _absorption("vanilla")
    assert absorption.mean() >= 0.6, absorption
    sae, data, features, acts = _trained("vanilla")
    rates = parent_latent_firing(data.cfg, features, acts, sae.W_dec_normalized, data.W)
    alone, *with_child = rates.values()
    assert alone > 0.9 and max(with_child) < 0.5, rates


@pytest.mark.slow
def test_matryoshka_removes_most_absorption() -> None:
    # Measured here: Matryoshka 0.08 (against 0.87 for vanilla and 0.35 for BatchTopK); with seeds 0-3 of
    # the notebook's order 0.02-0.14. Its 2-latent prefix must reconstruct alone, so those latents take the
    # parents and fire on every example with the parent; what remains is an occasional family whose child
    # latents still mix in a sibling. 0.25 leaves room for that.
    matryoshka = _absorption("Matryoshka")
    assert matryoshka.mean() <= 0.25, matryoshka
    assert matryoshka.mean() < _absorption("vanilla").mean() - 0.4


@pytest.mark.slow
def test_absorption_leaves_the_reconstruction_good() -> None:
    # The summary: absorption costs the reconstruction nothing visible, so only a ground-truth metric shows it.
    # Measured here: vanilla variance explained 0.97 with absorption 0.87 and L0 0.5 (below the true 0.95).
    sae, data, features, acts = _trained("vanilla")
    with torch.no_grad():
        h = P.hidden_activations(features, data.W)
        h_rec = sae(h)[3]
    fve = 1 - (h_rec - h).pow(2).sum() / (h - h.mean(0)).pow(2).sum()
    assert fve > 0.9, fve
    assert (acts > 0).float().sum(-1).mean() < data.cfg.marginal_probabilities().sum()


@pytest.mark.slow
def test_matryoshka_inner_prefix_holds_the_parents() -> None:
    # Measured here: in 6 of 8 instances the two inner latents are the two parents (cosine 0.86-0.90, absorption
    # 0.00 in those instances); in the other two both inner latents went to one parent (absorption 0.26-0.66).
    # The parent latents keep firing with a child on (87-100% of such examples).
    sae, data, features, acts = _trained("Matryoshka")
    inner = decoder_feature_cosines(sae.W_dec_normalized, data.W)[:, :2, :2]
    split = (inner.argmax(-1)[:, 0] != inner.argmax(-1)[:, 1]) & (inner.amax(-1) > 0.7).all(-1)
    assert split.sum() >= 5, inner
    assert _absorption("Matryoshka")[split].mean() < 0.1
    rates = parent_latent_firing(data.cfg, features, acts, sae.W_dec_normalized, data.W)
    assert min(rates.values()) > 0.7, rates


@pytest.mark.slow
def test_batchtopk_threshold_matches_training_sparsity() -> None:
    # At inference the learned threshold replaces the batch competition: the L0 should stay near k = 1
    # (measured 0.94 here).
    sae, _, _, acts = _trained("BatchTopK")
    l0 = (acts > 0).float().sum(-1).mean()
    assert 0.7 <= l0 <= 1.3, l0
    assert (sae.threshold > 0).all()


def test_hierarchy_config_and_helpers() -> None:
    cfg = HierarchyConfig(n_inst=2, n_parents=2, n_children=2, p_parent=0.5, p_child=0.5)
    assert cfg.parent_of == [-1, -1, 0, 0, 1, 1]
    assert feature_labels(cfg) == ["P0", "P1", "C0.0", "C0.1", "C1.0", "C1.1"]
    assert torch.allclose(cfg.marginal_probabilities(), torch.tensor([0.5, 0.5, 0.25, 0.25, 0.25, 0.25]))
    features = P.generate_hierarchical_batch(cfg, 4000)
    cond = cooccurrence(features)
    assert torch.allclose(cond[2:4, 0], torch.ones(2)) and cond[2, 3] == 0  # child implies parent; siblings exclusive
    with pytest.raises(ValueError, match="n_children"):
        HierarchyConfig(n_children=4, p_child=0.3)
    with pytest.raises(ValueError, match="d_in"):
        HierarchyConfig(d_in=4)
    with pytest.raises(ValueError, match="probability"):
        HierarchyConfig(p_parent=1.5)
    with pytest.raises(ValueError, match="kind"):
        P.train_sae_kind("topk", P.HierarchicalData(cfg), 10)
    with pytest.raises(ValueError, match="prefix_sizes"):
        P.MatryoshkaConfig(n_inst=1, d_in=2, d_sae=4, prefix_sizes=(2, 3))


def test_plot_helpers_show_or_return(monkeypatch: pytest.MonkeyPatch) -> None:
    import plotly.graph_objects as go
    import plotly.io

    from utils import part5b_absorption as absorption_plots

    shown: list[go.Figure] = []
    monkeypatch.setattr(plotly.io, "show", lambda fig, *a, **k: shown.append(fig))  # what Figure.show calls
    cos = torch.rand(8, 8)
    calls = [
        lambda show: absorption_plots.plot_cooccurrence(torch.rand(8, 8), [str(i) for i in range(8)], show=show),
        lambda show: absorption_plots.plot_decoder_cosines({"a": cos, "b": cos}, [str(i) for i in range(8)], show=show),
        lambda show: absorption_plots.plot_parent_latent_firing({"a": {"x": 0.5, "y": 0.1}}, show=show),
        lambda show: absorption_plots.plot_absorption({"a": torch.rand(8, 2), "b": torch.rand(8, 2)}, show=show),
    ]
    before = cos.clone()
    for call in calls:
        assert call(True) is None
        assert isinstance(call(False), go.Figure)
    assert len(shown) == len(calls)
    assert torch.equal(cos, before)
