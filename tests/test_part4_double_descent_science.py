"""Science checks for part 4: the fast sweep computes the right thing, and it shows double descent."""

from __future__ import annotations

import pytest
import torch

from solutions.part1_superposition import ToyModelConfig
from solutions.part4_double_descent import DoubleDescentModel, compute_dimensionality
from utils import part4_double_descent as dd


def _sparse_blocks(data: torch.Tensor) -> list[dd.SparseRows]:
    """One SparseRows per instance from a dense [examples, inst, feats] data set."""
    blocks = []
    for k in range(data.shape[1]):
        x = data[:, k]
        row, col = x.nonzero(as_tuple=True)
        blocks.append(dd.SparseRows(x.shape[0], x.shape[1], row, col, x[row, col]))
    return blocks


def test_fast_gradients_match_autograd():
    """The hand-written loss and gradients of the sweep equal autograd on DoubleDescentModel."""
    torch.manual_seed(0)
    cfg = ToyModelConfig(n_inst=3, n_features=40, d_hidden=2)
    model = DoubleDescentModel(cfg, n_train=25, feature_probability=0.1, device="cpu")
    with torch.no_grad():
        model.b_final.copy_(torch.randn(3, 40) * 0.3)  # a bias of both signs, so every ReLU branch is used
    batch = model.generate_batch()
    out = model(batch)
    per_inst = ((batch - out) ** 2).sum(-1).mean(0)
    model.calculate_loss(out, batch).backward()

    data = dd.PackedData.pack(_sparse_blocks(batch))
    Wb = torch.cat([model.W.detach(), model.b_final.detach()[:, None]], 1)
    grad, losses = dd.sweep_loss_and_grad(Wb, data, dd._buffer(25, 40, torch.device("cpu")))
    torch.testing.assert_close(torch.tensor(losses), per_inst.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad[:, :2], model.W.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad[:, 2], model.b_final.grad, rtol=1e-4, atol=1e-6)


def test_gram_dimensionality_matches_reference():
    v = torch.randn(4, 30, 2) * torch.logspace(-1, 1, 30)[None, :, None]
    v[0, 3] = 0
    torch.testing.assert_close(dd.gram_dimensionality(v), compute_dimensionality(v), rtol=1e-4, atol=1e-6)


def test_sparse_unit_rows_are_unit_norm():
    rows = dd.sparse_unit_rows(500, 100, 0.03, torch.Generator().manual_seed(0), torch.device("cpu"), chunk=128)
    norms = rows.to_dense().norm(dim=-1)
    nonzero = norms > 0
    torch.testing.assert_close(norms[nonzero], torch.ones(int(nonzero.sum())))
    # 100 features with p = 0.03: about 3 present per example, so the frequency of present entries is 0.03
    assert abs(rows.val.numel() / (500 * 100) - 0.03) < 0.006  # 6 standard errors (sd = 0.00076)


# The affordable sweep: the notebook's CPU setting (dd.SweepConfig's defaults: 1000 features, p = 0.01, d = 2,
# 2000 full-batch AdamW steps at lr 3e-3) at five sizes: memorising (T = 3), the flat stretch (T = 32), the
# climb and the peak (T = 200, 320) and the second descent (T = 1300), one seed. About 15 s of CPU. Measured with
# the data pools of seeds 0, 1 and 2 (cfg.seed), test loss: 1.15 1.006 1.24 1.80 0.990 / 1.11 1.007 1.47 1.66 0.989 /
# 1.06 1.009 1.71 1.21 0.989; train loss at T = 1300 0.978 each; top-5 data-point dimensionality 0.65-0.66 at T = 3,
# 0.01-0.02 at the peak, 0.04-0.05 at T = 1300; top-5 feature dimensionality 0.09-0.12, 0.03-0.04, 0.25-0.27.
SCIENCE_CFG = dict(sizes=[3, 32, 200, 320, 1300], n_seeds=1)


def science_sweep(**changes):
    cfg = dd.SweepConfig(**{**SCIENCE_CFG, **changes})
    result = dd.train_sweep(cfg, device="cpu", progress=False)
    test, train = result.test_loss.mean(-1), result.train_loss.mean(-1)
    data_top, feat_top = (x.mean(-1) for x in dd.dimensionality_summary(result))
    msg = (
        f"test {test.tolist()}\ntrain {train.tolist()}\ndata dims {data_top.tolist()}\nfeature dims {feat_top.tolist()}"
    )
    return cfg, result, test, train, data_top, feat_top, msg


@pytest.fixture(scope="module")
def sweep():
    return science_sweep()


@pytest.mark.slow
def test_double_descent_bump(sweep):
    cfg, result, test, _, _, _, msg = sweep
    _, peak = dd.find_loss_peak(result.test_loss)
    # Down, up to an interior peak, down again below the zero-output loss of 1. Measured: the peak at T = 320 (seeds
    # 0 and 1) or 200 (seed 2), 1.65 to 1.79 times the lowest point before it; a factor 1.3 leaves room for another
    # seed or machine.
    assert 0 < peak < len(cfg.sizes) - 1 and cfg.sizes[peak] in (200, 320), msg
    assert test[peak] > 1.3 * test[:peak].min(), msg
    assert test[-1] < 1 and test[-1] < 0.8 * test[peak], msg


@pytest.mark.slow
def test_memorising_then_generalising(sweep):
    _, _, test, train, data_top, feat_top, msg = sweep
    # Memorising at small T: the 3 training examples are fitted exactly (train loss measured below 1e-7) and
    # hold large dimensionalities (a triangle: about 2/3 each), the features little.
    assert train[0] < 1e-4 and test[0] >= 1, msg
    assert data_top[0] > 0.5 and feat_top[0] < 0.2, msg
    # Generalising at large T: training and test loss meet (measured within 0.012) below 1, and the features hold
    # the large dimensionalities, the data points little.
    assert abs(test[-1] - train[-1]) < 0.03, msg
    assert feat_top[-1] > 0.15 and data_top[-1] < 0.1, msg


@pytest.mark.slow
def test_neither_at_the_peak(sweep):
    _, result, _, _, data_top, feat_top, msg = sweep
    _, peak = dd.find_loss_peak(result.test_loss)
    # At the peak both are small (measured 0.01-0.02 for data points, 0.03-0.04 for features): neither regime has won.
    assert data_top[peak] < 0.1 and feat_top[peak] < 0.1, msg


@pytest.mark.slow
def test_a_smaller_learning_rate_gives_a_small_bump():
    # At the paper's lr of 1e-3, 2000 steps don't overfit far enough: measured (seed 0) test loss 1.007 at T = 32,
    # at most 1.020 after it (a bump of 1.3%, against 79% at lr 3e-3 on the same data).
    _, _, test, _, _, _, msg = science_sweep(lr=1e-3)
    assert test[2:-1].max() < 1.05 * test[1], msg


@pytest.mark.slow
def test_most_small_models_memorise_and_the_others_drop_one_example():
    """The notebook's T = 5 run: instances that memorise all five examples, and ones that give one up."""
    torch.manual_seed(0)
    model = DoubleDescentModel(ToyModelConfig(n_inst=8, n_features=1000, d_hidden=2), 5, 0.01, device="cpu")
    model.optimize(steps=3_000, warmup_steps=150)
    with torch.inference_mode():
        data = model.generate_batch()
        per_example = ((data - model(data)) ** 2).sum(-1)  # [examples inst]
        hidden = torch.einsum("eif,idf->ied", data, model.W).norm(dim=-1)  # [inst examples]
    train = per_example.mean(0)
    memorised = train < 0.01
    # Measured (seed 0): 5 of 8 memorise (train loss below 0.008); the other 3 keep four examples and give up the
    # fifth, whose hidden vector is 0.08-0.25 long against 1.03-1.12 for the others, and whose loss is 68-78% of
    # the instance's.
    assert memorised.sum() >= 4, train
    for k in (~memorised).nonzero().flatten().tolist():
        short = hidden[k] < 0.5 * hidden[k].max()
        assert short.sum() == 1, hidden[k]
        assert per_example[short.nonzero()[0, 0], k] > 0.5 * per_example[:, k].sum(), per_example[:, k]
