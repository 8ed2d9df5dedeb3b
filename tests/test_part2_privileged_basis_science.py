"""Science checks for part 2: with a ReLU hidden layer, dense features get monosemantic neurons and sparse
features get polysemantic ones. Short batched runs; measured values (seeds 0-2) are in the comments.

Statistics are pooled over four instances per regime, because a single instance can lose a neuron early
in training (all its weights negative: it never fires again), which says nothing about superposition.
"""

from __future__ import annotations

import pytest
import torch

from solutions.part1_superposition import ToyModelConfig
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from utils import part2_privileged_basis as neurons
from utils.schedules import cosine_decay_lr
from utils.training import optimize

# Four dense-ish instances (half the features on in each example) and four sparse ones (1 in 100).
PROBABILITY = torch.tensor([0.5] * 4 + [0.01] * 4)
DENSE, SPARSE = slice(0, 4), slice(4, 8)
N_FEATURES, D_HIDDEN = 8, 4


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is as fast and isn't slowed down by parallel test workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(model_class: type, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ToyModelConfig(n_inst=len(PROBABILITY), n_features=N_FEATURES, d_hidden=D_HIDDEN)
    importance = 0.8 ** torch.arange(N_FEATURES)
    model = model_class(cfg, PROBABILITY[:, None], importance[None, :], device="cpu")
    optimize(model, batch_size=512, steps=2_000, lr=1e-2, lr_scale=cosine_decay_lr, progress=False)
    return model


def summary(W: torch.Tensor) -> dict[str, float]:
    """Pooled over each regime's instances: share of neurons that are monosemantic (>= 90% of their squared
    weight on one feature), and the mean number of features represented (‖W_i‖² > 0.5)."""
    mono = neurons.neuron_monosemanticity(W) >= 0.9
    represented = (W.detach() ** 2).sum(1) > 0.5
    return {
        "dense_mono": mono[DENSE].float().mean().item(),
        "sparse_mono": mono[SPARSE].float().mean().item(),
        "dense_represented": represented[DENSE].sum(-1).float().mean().item(),
        "sparse_represented": represented[SPARSE].sum(-1).float().mean().item(),
    }


@pytest.mark.slow
def test_neuron_model_dense_monosemantic_sparse_polysemantic():
    s = summary(train(NeuronModel).W)
    # Dense: measured 100%, 62.5% and 100% of the 16 neurons monosemantic (seeds 0, 1, 2); "mostly" = more
    # than half. (Seed 1 keeps a few neurons reading a second feature weakly after 2000 steps.)
    assert s["dense_mono"] > 0.5, s
    # Sparse: measured 0% monosemantic in every seed; at most 15% (2 of 16 neurons).
    assert s["sparse_mono"] <= 0.15, s
    # Superposition: sparse models represent more features than neurons (measured 7.0-7.75 of 8 features on
    # average, with 4 neurons), dense models one per neuron (measured 4.0-4.25).
    assert s["sparse_represented"] > D_HIDDEN + 1, s
    assert s["dense_represented"] <= D_HIDDEN + 0.5, s


@pytest.mark.slow
def test_abs_model_dense_monosemantic_sparse_polysemantic():
    s = summary(train(NeuronComputationModel).W1)
    # |x| model (W1: what each neuron reads). Dense: measured 100% monosemantic in seeds 0-2 (each neuron reads
    # one sign of one feature, two neurons per feature). Sparse: measured 6.25%, 12.5%, 6.25% (1-2 of 16
    # neurons); at most 25%.
    assert s["dense_mono"] > 0.5, s
    assert s["sparse_mono"] <= 0.25, s
    # Sparse models compute more features with the same 4 neurons: features read with ‖W1_i‖² > 0.5,
    # measured 2.25-3.0 (dense) vs 4.5-5.5 (sparse) on average; require a gap of at least 1.
    assert s["sparse_represented"] >= s["dense_represented"] + 1, s
