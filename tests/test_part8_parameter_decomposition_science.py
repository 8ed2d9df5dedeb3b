"""Science checks for part 8: what the notebook says about the SVD, SPD and an SAE on three toy models.

Each fixture trains the models and decompositions with the notebook's own settings and functions
(`ref.SPD_FUNCTIONS`), on one CPU thread, and is shared by the tests of one model. Measured values (and the
seeds they were measured on) are in the comments; tolerances leave room for other seeds and machines.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

import solutions.part8_parameter_decomposition as ref
import utils.part8_parameter_decomposition as spd
from solutions.part5_toy_saes import ToySAE, ToySAEConfig, resample_advanced

N_TMS = 8


def _one_thread(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is as fast and isn't slowed down by parallel workers
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tms_run():
    """8 TMS models, each decomposed twice (all 16 runs kept), the best run of each, and an SAE on each model."""

    def run():
        model = ref.train_tms(n_inst=N_TMS, seed=0, n_steps=3_000)
        chain, restarts = spd.chain_from_tms(model), ref.TMS_RESTARTS
        every, history = spd.decompose_all(chain, ref.TMS_SPD, ref.SPD_FUNCTIONS, model.generate_batch, restarts,
                                           progress=False)  # fmt: skip
        losses = spd.restart_losses(every, model.generate_batch, restarts)  # [restarts inst]
        best = every.select(losses.argmin(0) * N_TMS + torch.arange(N_TMS))  # what `decompose` keeps
        torch.manual_seed(0)
        ev = spd.evaluate_decomposition(best, model.generate_batch, spd.one_hot_inputs(5, N_TMS, 0.5))
        ev_every = spd.evaluate_decomposition(
            every,
            lambda n: model.generate_batch(n).repeat(1, restarts, 1),
            spd.one_hot_inputs(5, N_TMS * restarts, 0.5),
        )
        torch.manual_seed(0)
        sae = ToySAE(ToySAEConfig(n_inst=N_TMS, d_in=2, d_sae=5, sparsity_coeff=0.2), model)
        sae.optimize(steps=4_000, batch_size=512, lr=1e-2, resampler=partial(resample_advanced, batch_size=512),
                     resample_freq=500, resample_window=250, resample_scale=0.5, progress=False)  # fmt: skip
        return {"model": model, "best": best, "ev": ev, "every_ev": ev_every, "losses": losses, "history": history,
                "sae": sae}  # fmt: skip

    return _one_thread(run)


@pytest.mark.slow
def test_svd_terms_are_not_mechanisms(tms_run):
    # Removing one SVD term of W hurts most one-hot inputs; removing one column W_i e_iᵀ hurts exactly input i.
    # Measured: 4.1 of 5 inputs per SVD term on average (4 models of the notebook), 1.0 per column.
    chain = spd.chain_from_tms(tms_run["model"])
    x = spd.one_hot_inputs(5, N_TMS, 1.0)
    with torch.no_grad():
        svd = spd.inputs_hurt(ref.ablation_losses(chain, ref.svd_terms(chain.weights[0]), x))
        columns = ref.ablation_losses(chain, spd.column_terms(chain.weights[0]), x)
    assert svd.mean() >= 3.5, svd
    assert (spd.inputs_hurt(columns) == 1).all()
    assert (columns.argmax(-1) == torch.arange(5)).all()  # column i hurts input i


@pytest.mark.slow
def test_tms_one_piece_per_feature(tms_run):
    # In both matrices, every feature gets its own piece: importance above 0.9 on its one-hot input (at 0.5)
    # and on no other. Measured with the notebook's settings (best of 2 restarts, 8 models): 8 of 8 at seed 0,
    # 7 of 8 at seed 1, 8 of 8 at seed 2; the notebook's 4 models: 3 of 4. "Most seeds": at least 6 of 8.
    matched = tms_run["ev"]["matched"].all(0)
    assert int(matched.sum()) >= 6, tms_run["ev"]["matched"]


@pytest.mark.slow
def test_tms_alive_pieces_equal_features(tms_run):
    # 20 pieces per matrix, 5 features: the rest end dead (importance <= 0.1 on every one of 20 000 inputs).
    alive = tms_run["ev"]["alive"]
    assert int((alive == 5).all(0).sum()) >= 6, alive


@pytest.mark.slow
def test_tms_reconstructs_the_output(tms_run):
    # Measured: 1.8-2.3% relative error with masks equal to the importances (unimportant pieces off, no delta) and
    # 0.01-0.02% with every piece whole. Tolerances: 4% and 0.2%.
    ev = tms_run["ev"]
    assert (ev["recon_error"] < 0.04).all(), ev["recon_error"]
    assert (ev["sum_error"] < 0.002).all(), ev["sum_error"]


@torch.no_grad()
def _pieces(dec: spd.Decomposition, layer: int, k: int) -> torch.Tensor:
    """The piece of each feature in matrix `layer` of model k: the most important one on its one-hot input."""
    return dec.importances_on(spd.one_hot_inputs(5, dec.chain.n_inst, 0.5))[layer][:, k].argmax(-1)


@pytest.mark.slow
def test_tms_pieces_are_the_columns_and_the_readouts(tms_run):
    # In W the piece of feature i writes the column W_i (cosine > 0.99) at its full length (no shrinkage: measured
    # length ratios 1.00-1.01; 0.9-1.1 asked) and reads feature i; in Wᵀ it reads along W_i and writes output i.
    model, dec, ev = tms_run["model"], tms_run["best"], tms_run["ev"]
    W = model.W.detach()
    for k in ev["matched"].all(0).nonzero().flatten().tolist():
        piece = _pieces(dec, 0, k)
        writes = spd.piece_writes(dec.U[0][k], dec.V[0][k], piece.tolist())  # [feats 2]
        best, index = spd.best_cosines(W[k].T, writes)
        assert (best > 0.99).all() and (index == torch.arange(5)).all(), (k, best)
        assert ((writes.norm(dim=-1) / W[k].norm(dim=0) - 1).abs() < 0.1).all(), k
        assert (dec.V[0][k][piece].abs().argmax(-1) == torch.arange(5)).all(), k  # reads feature i
        piece = _pieces(dec, 1, k)
        reads = spd.cosines(dec.V[1][k][piece], W[k]).abs()  # [feats feats]: read direction against the W_i
        assert (reads.diagonal() > 0.99).all(), (k, reads)
        writes_to = dec.U[1][k][:, piece].abs()  # [outputs feats]
        assert (writes_to.argmax(0) == torch.arange(5)).all() and (
            writes_to.max(0).values / writes_to.norm(dim=0) > 0.98
        ).all()


@pytest.mark.slow
def test_tms_loss_curves_behave_as_described(tms_run):
    # The notebook's loss-curve bullets, on the history of the 16 runs (per instance). Measured (seed 0): the
    # reconstruction losses end 60x (full) and 50x (layerwise) below their start; minimality ends at 0.45 (< 0.5 =
    # pieces per input if every feature on needed one per matrix); faithfulness peaks about 1000x above its start
    # and ends within 10x of it.
    terms = tms_run["history"].terms
    for name in ("stochastic_recon", "stochastic_recon_layerwise"):
        assert 1e-3 < terms[name][-1] / terms[name][0] < 0.1, (name, terms[name][0], terms[name][-1])
    assert terms["importance_minimality"][0] > 1.0 and 0.2 < terms["importance_minimality"][-1] < 0.5
    faith = terms["faithfulness"]
    assert max(faith) > 100 * faith[0] and faith[-1] < max(faith) / 100, (faith[0], max(faith), faith[-1])


@pytest.mark.slow
def test_tangles_lose_to_clean_runs(tms_run):
    # Of the 16 runs (2 restarts of 8 models), wherever one restart is clean (one piece per feature in both
    # matrices) and the other is not, the clean one has the lower training loss: so keeping the restart with the
    # lower loss never keeps a tangle over a clean run, and the selected runs match at least as often as either
    # restart alone. Measured (seed 0): restarts clean in 7 and 6 of 8 models, 8 of 8 selected.
    clean = tms_run["every_ev"]["matched"].all(0).view(ref.TMS_RESTARTS, N_TMS)  # [restarts models]
    losses = tms_run["losses"]
    disagree = clean.any(0) & ~clean.all(0)
    assert disagree.any() or clean.all(), clean  # at least one model where the restarts differ, or nothing to lose
    for k in disagree.nonzero().flatten().tolist():
        assert losses[clean[:, k], k].max() < losses[~clean[:, k], k].min(), (k, losses[:, k], clean[:, k])
    assert int(tms_run["ev"]["matched"].all(0).sum()) >= int(clean.sum(1).max())


@pytest.mark.slow
def test_sae_finds_the_directions_with_shrinkage(tms_run):
    # Section 5's SAE on the same 8 models: its decoder directions match the five features (best cosine > 0.99 for
    # every feature, measured 1.000 on the notebook's model 0), and its reconstruction of a one-hot input's h is
    # shorter than h (measured 0.50-0.53 of the length; below 0.8 asked), where SPD's pieces have full length.
    model, sae = tms_run["model"], tms_run["sae"]
    h, _, h_rec = spd.sae_on_one_hot(sae, model.W.detach(), spd.one_hot_inputs(5, N_TMS, 0.5))
    good = 0
    for k in range(N_TMS):
        best, _ = spd.best_cosines(model.W.detach()[k].T, sae.W_dec_normalized[k].detach())
        good += int((best > 0.99).all())
    assert good >= 6, good
    assert (h_rec.norm(dim=-1) / h.norm(dim=-1) < 0.8).float().mean() > 0.9


# --------------------------------------------------------------------------------------------
# The |x| model: one piece of W1 per half (feature and sign) the model computes, reading that feature only
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def abs_run():
    def run():
        model = ref.train_abs_model(n_inst=2, seed=0, n_steps=3_000)
        dec, _ = ref.decompose(spd.chain_from_computation(model), ref.ABS_SPD, model.generate_batch, progress=False)
        torch.manual_seed(0)
        inputs = spd.signed_one_hot_inputs(20, 2, 0.5)
        ev = spd.evaluate_decomposition(dec, model.generate_batch, inputs)
        alive = [(c > 0.1).any(0) for c in dec.importances_on(model.generate_batch(20_000))]  # [inst C] per matrix
        return model, dec, alive, ev

    return _one_thread(run)


@pytest.mark.slow
def test_abs_model_computes_few_features_mostly_one_sign(abs_run):
    # Measured at seed 0: 12 and 16 of the 40 signed inputs computed, by 0 and 2 features for both signs.
    halves = spd.computed_halves(abs_run[0])
    both = (halves[:, :20] & halves[:, 20:]).sum(-1)
    one = (halves[:, :20] ^ halves[:, 20:]).sum(-1)
    assert (both <= 3).all() and (one > both).all(), halves


@pytest.mark.slow
def test_abs_pieces_are_the_computed_halves(abs_run):
    # Measured at seed 0 (the notebook's): W1 has 12 and 15 live pieces for 12 and 16 computed halves, every one
    # important on the inputs of a single feature, every computed half covered by one, and no piece for a half the
    # model does not compute. (Seed 1: 15 pieces for 15 halves, and 13 for 15 halves, one piece reading two.)
    model, dec, alive, _ = abs_run
    labels = spd.signed_labels(20)
    ci = dec.importances_on(spd.signed_one_hot_inputs(20, 2, 0.5))[0]  # W1, [40 inst C]
    halves = spd.computed_halves(model)
    for k in range(2):
        rows = spd.describe_pieces(ci[:, k], dec.U[0][k], dec.V[0][k], labels, alive[0][k])
        computed = {labels[i] for i in halves[k].nonzero().flatten().tolist()}
        covered = {label for r in rows for label in r["important_on"]}
        assert computed == covered, (k, computed ^ covered)
        n_features = len({label[1:] for label in computed})
        assert n_features <= len(rows) <= len(computed), (k, len(rows), n_features, len(computed))
        assert all(len({label[1:] for label in r["important_on"]}) <= 1 for r in rows), rows


@pytest.mark.slow
def test_abs_pieces_read_features_not_neurons(abs_run):
    # W1's pieces read one input feature (concentration >= 0.99 measured; 0.95 asked) but write to a pattern of
    # neurons: median write concentration 0.86 and 0.76 measured (below 0.95 asked), where a piece writing one neuron
    # would give 1; and several pieces share their main neuron (measured: 3 neurons shared by two pieces each).
    _model, dec, alive, _ = abs_run
    for k in range(2):
        rows = spd.describe_pieces(torch.zeros(1, dec.cfg.C), dec.U[0][k], dec.V[0][k], ["x"], alive[0][k])
        reads = torch.tensor([r["read_concentration"] for r in rows])
        writes = torch.tensor([r["write_concentration"] for r in rows])
        assert (reads >= 0.95).all(), reads
        assert writes.median() < 0.95, writes
        neurons = [r["write_axis"] for r in rows]
        assert len(set(neurons)) < len(neurons), neurons


@pytest.mark.slow
def test_abs_reconstructs_worse_than_tms(abs_run, tms_run):
    # Relative output error with the unimportant pieces off: measured 7.5-7.7% for |x|, 1.8-2.3% for TMS.
    assert abs_run[3]["recon_error"].min() > tms_run["ev"]["recon_error"].max()


# --------------------------------------------------------------------------------------------
# AND of pairs: each mechanism is a conjunction, important only when both features of its pair are on
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_and_pieces_are_conjunctions():
    # Measured at seed 0: each model computes 2 of the 3 ANDs, and each matrix has 2 live pieces, each important
    # (> 0.9) on exactly one pair input and below 0.1 on every one-hot input; a piece of W reads the two features of
    # its pair (the two largest entries of v, each at least half the largest).
    def run():
        model = ref.train_and_model(n_inst=2, seed=0, n_steps=3_000)
        dec, _ = ref.decompose(spd.chain_from_experiment(model), ref.AND_SPD, model.generate_batch, progress=False)
        return model, dec

    model, dec = _one_thread(run)
    x = spd.pair_inputs(6, 2)
    with torch.no_grad():
        computed = torch.stack([model(x)[6 + j, :, j] > 0.5 for j in range(3)], dim=-1)  # [inst pairs]
    for layer, ci in enumerate(dec.importances_on(x)):  # [9 inst C] per matrix
        live = ci.amax(0) > 0.1  # [inst C]
        for k in range(2):
            pieces = ci[:, k, live[k]]  # [9 inputs, live pieces]
            assert pieces.shape[1] == int(computed[k].sum()), (k, pieces.shape, computed[k])
            assert (pieces[:6] < 0.1).all(), pieces
            on_pairs = pieces[6:] > 0.9  # [pairs pieces]
            assert (on_pairs.sum(0) == 1).all() and (on_pairs.any(1) == computed[k]).all(), (pieces, computed[k])
            if layer == 0:
                for c, j in zip(live[k].nonzero().flatten().tolist(), on_pairs.float().argmax(0).tolist(), strict=True):
                    v = dec.V[0][k][c].abs()
                    top = v.topk(2)
                    assert set(top.indices.tolist()) == {2 * j, 2 * j + 1} and top.values[1] > 0.5 * top.values[0], v
