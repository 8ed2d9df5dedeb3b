"""Held-out round AX, second fix round (fresh49), part 6b: trials the checkers failed without naming the mistake.
transcoder_forward with b_dec moved into the skip's input is read back (bias_in_skip); latent_de_embedding that
returns the argsort of the drive is read back (token_ranking); latent_logit_effect with W_skip @ W_enc[:, latent]
added to the decoder row is read back (skip_direction); quantile_examples that skips a band is told which band is
missing (band_left_out), and one that reads the values from acts.T.flatten() at row-major indices is read back
(values_layout)."""

import torch

import solutions.part6b_circuits as R
import tests.part6b_circuits as checks
from tests.proving import assert_fails


# ------------------------------------------------------------------------------------------- transcoder_forward
def _tf_bdec_inside_skip(tc, x):
    pre = x @ tc.W_enc + tc.b_enc
    acts = torch.where(pre > tc.threshold, pre, torch.zeros_like(pre))
    skip = (x + tc.b_dec) @ tc.W_skip.T if tc.W_skip is not None else tc.b_dec
    return acts, acts @ tc.W_dec + skip


def test_fresh49_bdec_inside_skip_named():
    err = assert_fails(checks.test_transcoder_forward, _tf_bdec_inside_skip, "bias_in_skip")
    assert "(x + b_dec) @ W_skip.T" in str(err)


# ------------------------------------------------------------------------------------------- token views
def _de_rank(model, tc, latent):
    return (model.W_E @ tc.W_enc[:, latent]).argsort(descending=True).float()


def test_fresh49_de_embedding_token_ranking_named():
    err = assert_fails(checks.test_latent_de_embedding, _de_rank, "token_ranking")
    assert "argsort" in str(err)


def _le_skip(model, tc, latent):
    d = tc.W_dec[latent] + (tc.W_skip @ tc.W_enc[:, latent] if tc.W_skip is not None else 0)
    return d @ model.W_U


def test_fresh49_logit_effect_skip_of_encoder_named():
    err = assert_fails(checks.test_latent_logit_effect, _le_skip, "skip_direction")
    assert "W_skip @ W_enc[:, latent]" in str(err)


# ------------------------------------------------------------------------------------------- quantile_examples
def _qe(bug: str = ""):
    def f(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, seq = flat.max(), acts.shape[1]
        out = []
        for j in range(1, n_bands) if bug == "range1" else range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            inb = (flat > lo) & (flat <= hi)
            n = min(k, int(inb.sum()))
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            values = acts.T.flatten()[ch] if bug == "values_from_acts_T" else flat[ch]
            out.append((values, ch // seq, ch % seq))
        return out

    return f


def test_fresh49_band_loop_from_one_named():
    err = assert_fails(checks.test_quantile_examples, _qe("range1"), "band_left_out")
    assert "top band" in str(err) and "range(n_bands)" in err.hint


def test_fresh49_values_read_column_major_named():
    err = assert_fails(checks.test_quantile_examples, _qe("values_from_acts_T"), "values_layout")
    assert "acts.T.flatten()" in str(err)


# ------------------------------------------------------------------------------------------- attribution_edges
def _ae_strict(model, tc, frozen, graph):
    A = R.attribution_edges(model, tc, frozen, graph)
    lat = torch.arange(graph.n_nodes)[graph.nodes("latent")]
    for row, p in zip(lat.tolist(), graph.latent_pos.tolist(), strict=True):
        A[row, graph.nodes("token").start + int(p) : graph.nodes("token").stop] = 0
    return A


def test_fresh49_token_edges_strictly_earlier_named():
    err = assert_fails(checks.test_attribution_edges, _ae_strict, "strictly_earlier")
    assert "own position" in str(err)
