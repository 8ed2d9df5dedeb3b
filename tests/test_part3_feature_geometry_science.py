"""Science checks for part 3: the sticky plateau at 1/2 and per-feature dimensionalities at the named fractions.

One short batched run (50 features in 10 dimensions, uniform importance, the notebook's schedule) with
instances on both sides of and across the 1/2 plateau. Measured values are in the comments.
"""

from __future__ import annotations

import pytest
import torch

from solutions.part1_superposition import ToyModelConfig
from solutions.part3_feature_geometry import GeometryModel, compute_dimensionality, dimensions_per_feature
from utils import part3_feature_geometry as geometry
from utils.training import optimize

# 1/(1-S) of each instance: one before the plateau, four across it, one after it.
INVERSE_P = [1.4, 2.3, 2.6, 3.0, 3.4, 6.0]
PLATEAU = slice(1, 5)


def train_sweep(seed: int = 0):
    """(W, D*, per-feature dimensionality) of the test's sweep, trained from `seed`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is as fast and isn't slowed down by parallel workers
    try:
        torch.manual_seed(seed)
        cfg = ToyModelConfig(n_inst=len(INVERSE_P), n_features=50, d_hidden=10)
        p = 1 / torch.tensor(INVERSE_P)
        model = GeometryModel(cfg, feature_probability=p[:, None], device="cpu")
        optimize(model, batch_size=256, steps=2_000, lr=1e-2, lr_scale=geometry.five_percent_warmup, progress=False)
    finally:
        torch.set_num_threads(threads)
    W = model.W.detach()
    return W, dimensions_per_feature(W), compute_dimensionality(W)


@pytest.fixture(scope="module")
def sweep():
    return train_sweep(seed=0)


@pytest.mark.slow
def test_plateau_at_one_half(sweep):
    _, dstar, _ = sweep
    # Across the plateau the sparsity changes by a factor 1.5 but D* stays at 1/2 (measured 0.485-0.506 over
    # seeds 0-2); +-0.04 leaves room for seed-to-seed noise while excluding the neighbours (measured
    # 0.91-0.92 before and 0.30-0.31 after).
    assert ((dstar[PLATEAU] - 0.5).abs() < 0.04).all(), dstar
    # It is a plateau, not a point on a smooth decline: the curve is well above before and well below after.
    assert dstar[0] > 0.65, dstar
    assert dstar[-1] < 0.4, dstar


@pytest.mark.slow
def test_features_cluster_at_sticky_fractions(sweep):
    W, _, D = sweep
    represented = W.pow(2).sum(1) > 0.5
    share = geometry.share_near_sticky(D[PLATEAU], represented[PLATEAU], tol=0.03)
    # Measured (seeds 0-2): 95-100% of represented features within 0.03 of 1, 3/4, 2/3, 1/2, 2/5 or 3/8.
    # A continuum of dimensionalities would put about 6 * 0.06 / 1 = 36% in these windows; 80% is far above that.
    assert (share >= 0.8).all(), share
    # On the plateau the model represents 2 features per dimension (measured 20 of 50 in every instance and
    # seed), and at least 80% of them sit at 1/2: antipodal pairs (measured 18-20 of 20).
    n_rep = represented[PLATEAU].sum(-1)
    assert ((n_rep >= 18) & (n_rep <= 22)).all(), n_rep
    nearest, dist = geometry.nearest_sticky_fraction(D[PLATEAU])
    pairs = ((nearest == 0.5) & (dist <= 0.03) & represented[PLATEAU]).sum(-1)
    assert (pairs >= 0.8 * n_rep).all(), (pairs, n_rep)
