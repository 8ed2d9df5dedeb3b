"""Proofs for the part 6b checkers: the kept value of a JumpReLU without b_enc, the embedding or unembedding
matrix normalised, shifts named by what was subtracted, node_influence's sign handling and a series cut short (named
on a graph deeper than the cut), and quantile_examples' out-of-band fill-ins, one example per sequence and the
upper-edge claim (the others are in test_part6b_circuits_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails, assert_passes


def _forward_value_without_b_enc(tc, x):
    lin = x @ tc.W_enc
    pre = lin + tc.b_enc
    acts = lin * (pre > tc.threshold)
    out = acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    return acts, out


def test_transcoder_kept_value_without_b_enc():
    err = assert_fails(checks.test_transcoder_forward, _forward_value_without_b_enc, "value_without_b_enc")
    assert "x @ W_enc, without b_enc" in err.hint and "gate is right" in err.hint


def _de(change):
    return lambda model, tc, latent: change(model.W_E) @ tc.W_enc[:, latent]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda E: F.normalize(E, dim=0), "F.normalize(W_E, dim=0)"),
        (lambda E: (E - E.mean()) / E.std(), "one global mean and std"),
        (lambda E: (E - E.mean(0)) / E.std(0), "standardised over the vocabulary"),
    ],
)
def test_de_embedding_matrix_normalised(change, words):
    err = assert_fails(checks.test_latent_de_embedding, _de(change), "embed_normalised")
    assert words in err.hint and "raw embeddings" in err.hint


def test_de_embedding_other_direction_lists_both_causes():
    """W_E @ v for a v that is no named rescaling: the matrix per coordinate OR the vector, both listed."""

    def de(model, tc, latent):
        scale = 1 + torch.linspace(0, 1, model.cfg.d_model) ** 2
        return model.W_E @ (tc.W_enc[:, latent] * scale)

    err = assert_fails(checks.test_latent_de_embedding, de, "direction")
    assert "possible causes" in err.hint and "per d_model coordinate" in err.hint and "vector changed" in err.hint


def test_logit_effect_unembedding_normalised():
    def le(model, tc, latent):
        return tc.W_dec[latent] @ F.normalize(model.W_U, dim=1)

    err = assert_fails(checks.test_latent_logit_effect, le, "unembed_normalised")
    assert "F.normalize(W_U, dim=1)" in err.hint


def test_logit_effect_shifts_name_or_list_their_causes():
    def log_prob_change(model, tc, latent):
        e = tc.W_dec[latent] @ model.W_U
        return torch.log_softmax(model.b_U + e, -1) - torch.log_softmax(model.b_U, -1)

    def minus_median(model, tc, latent):
        e = tc.W_dec[latent] @ model.W_U
        return e - e.median()

    err = assert_fails(checks.test_latent_logit_effect, log_prob_change, "offset")
    assert "a difference of two softmaxes' logs" in err.hint and "bias added twice or left out" in err.hint
    err = assert_fails(checks.test_latent_logit_effect, minus_median, "offset")
    assert "median" in err.hint and "bias" not in err.hint


def _influence(bug=None, terms=10):
    def node_influence(adjacency, logit_weights):
        a = adjacency if bug == "no_abs" else adjacency.abs()
        if bug == "abs_after":
            a = (adjacency / adjacency.sum(-1, keepdim=True).clamp_min(1e-12)).abs()
        else:
            s = a.sum(-1, keepdim=True)
            a = torch.where(s > 0, a / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(a))
        eye = torch.eye(len(a), dtype=a.dtype)
        if bug == "neumann":
            out, term = torch.zeros_like(logit_weights), logit_weights
            for _ in range(terms):
                term = term @ a
                out = out + term
            return out
        return torch.linalg.solve((eye - a).T, logit_weights) - logit_weights

    return node_influence


def test_node_influence_signs():
    assert_passes(checks.test_node_influence, _influence())
    err = assert_fails(checks.test_node_influence, _influence("no_abs"), "signed_normaliser")
    assert "signs kept, rows whose signed sum is not positive set to 0" in err.message
    err = assert_fails(checks.test_node_influence, _influence("abs_after"), "signed_normaliser")
    assert "right on |adjacency|" in err.message and "|·| taken after normalising" in err.hint


def test_node_influence_series_cut_short():
    """Exact on the first graph (paths of at most 3 edges), caught and named on the 14-edge-deep one; a cut past
    the deepest path is exact there too, and passes."""
    err = assert_fails(checks.test_node_influence, _influence("neumann", 10), "truncated_series")
    assert "stopped after 10 terms" in err.message
    assert_fails(checks.test_node_influence, _influence("neumann", 5), "truncated_series")
    assert_passes(checks.test_node_influence, _influence("neumann", 20))


def _quantile(bug=None):
    def quantile_examples(acts, k, n_bands=4):
        a = acts.clone()
        a[:, 0] = 0
        seq = a.shape[1]
        if bug == "per_seq_max":
            vals, pos = a.max(1)
            seqs = torch.arange(len(vals))
        else:
            vals = a.flatten()
            seqs, pos = torch.arange(vals.numel()) // seq, torch.arange(vals.numel()) % seq
        edges = torch.linspace(0, float(vals.max()), n_bands + 1)
        groups = []
        for j in range(n_bands - 1, -1, -1):
            lo, hi = edges[j], edges[j + 1]
            inb = (vals > lo) & ((vals < hi) if bug == "open_top" else (vals <= hi))
            d = (vals - (lo + hi) / 2).abs().masked_fill(~inb, float("inf"))
            ch = d.argsort()[: k if bug == "always_k" else min(k, int(inb.sum()))]
            ch = ch[vals[ch].argsort(descending=True)]
            groups.append((vals[ch], seqs[ch], pos[ch]))
        return groups

    return quantile_examples


def test_quantile_out_of_band_fill_ins():
    assert_passes(checks.test_quantile_examples, _quantile())
    err = assert_fails(checks.test_quantile_examples, _quantile("always_k"), "short_band")
    assert "outside the band" in err.hint and "min(k, number in the band)" in err.hint


def test_quantile_one_example_per_sequence_is_not_called_an_edge():
    err = assert_fails(checks.test_quantile_examples, _quantile("per_seq_max"), "one_per_sequence")
    assert "largest activation only" in err.message and "a <= hi" not in err.hint


def test_quantile_upper_edge_claimed_only_when_every_band_fits():
    err = assert_fails(checks.test_quantile_examples, _quantile("open_top"), "boundary")
    assert "use a <= hi, not a < hi" in err.hint


def test_band_diagnosis_describes_a_missing_top_value_that_no_open_band_explains():
    """The value on band 1's upper edge missing, the other bands not those of bands open at the top: described, with
    its possible causes, not called an edge slip."""
    from tests import part6b_circuits_hints as hints
    from tests import part6b_circuits_mistakes as known

    acts = checks._quantile_inputs(torch.device("cpu"))
    expected = known.quantile_variant(acts, 3, 4)
    want = expected[1][0].float()
    assert abs(float(want[0]) - 3.375) < 1e-6 and len(want) == 2  # band 1's top edge is expected there
    out = [(g[0][:1], g[1][:1], g[2][:1]) for g in expected]  # every other band cut to its first example
    out[1] = (want[1:], expected[1][1][1:], expected[1][2][1:])  # band 1 without its top-edge value
    hint, code = hints.band_diagnosis(acts, 1, 4, want[1:], want, out, 3)
    assert code == "values" and "possible causes" in hint and "a <= hi" not in hint


def test_right_influence_on_the_deep_graph():
    from tests import part6b_circuits_hints as hints

    A, w, depth = hints.deep_influence_inputs(torch.device("cpu"))
    assert depth == 14 and len(A) == 18
    a = A.abs() / A.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    term, total = w.clone(), torch.zeros_like(w)
    for _ in range(depth):
        term = term @ a
        total = total + term
    assert torch.allclose(total, ref.node_influence(A, w), atol=1e-6)  # every path has at most 14 edges
    assert not torch.allclose(total - term, ref.node_influence(A, w), atol=1e-3)  # the 14-edge paths matter
