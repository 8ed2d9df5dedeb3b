"""Confidence audit (part 6b, node_influence): the readings that named a cause from one statistic now name it only
when re-running it reproduces the output, and otherwise say what was observed. An influence 1000 × too large no
longer guesses "a division by a clamped zero total, or softmax / an offset"; a deep-graph or long-chain failure that
no cut of the series reproduces no longer guesses "a series stopped early / a fixed loop / a sign kept"; an output
wrong only at the logit-weighted nodes names "a term ± I" only when every such node is shifted by the same multiple
of its weight."""

import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _right(adjacency, w):
    a = adjacency.abs()
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return w @ (torch.linalg.inv(eye - a) - eye)


# ------------------------------------------------------------------------------------------- past misleading trials
def test_fresh45_row_sums_without_keepdim_not_blamed_on_a_clamp_or_softmax():
    def ni_no_keepdim(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, ni_no_keepdim, "keepdim")
    assert "division by a total that is 0" not in str(err) and "softmax" not in err.hint


def test_fresh47_F_normalize_without_abs_names_the_normaliser():
    def ni_normalize_signed(adjacency, w):
        a = F.normalize(adjacency, p=1, dim=-1)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, ni_normalize_signed, "signed_normaliser")
    assert "F.normalize" in str(err)


# ------------------------------------------------------------------------------------ changed readings, new variants
def test_weighted_nodes_zeroed_are_not_called_an_identity_term():
    """Wrong only at the logit-weighted nodes, but not by one multiple of the weight: observed, no ± I named."""

    def ni(adjacency, w):
        return _right(adjacency, w) + w * (1 + torch.arange(len(w), dtype=w.dtype))

    err = assert_fails(checks.test_node_influence, ni, "identity_term")
    assert "a term ± I (the identity) added" not in err.hint and "different multiple" in err.message


def test_a_constant_identity_term_is_still_named():
    def ni(adjacency, w):
        return _right(adjacency, w) + 1.5 * w

    err = assert_fails(checks.test_node_influence, ni, "identity_term")
    assert "a term ± I (the identity) added or subtracted" in err.hint


def test_a_huge_influence_from_a_near_identity_shift_is_observed_not_blamed_on_a_clamp():
    """Â with 0.99999 added on its diagonal: I - Â nearly singular, the influence huge; the hint says where and how
    large, and names neither a clamped zero total nor softmax nor an offset on every entry."""

    def ni(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a - 0.99999 * eye) - eye)

    err = assert_fails(checks.test_node_influence, ni, "values")
    assert "observed: the influence reaches" in err.message and "nodes differ" in err.message
    assert "clamped to a tiny number" not in str(err) and "an offset added" not in str(err)


def _deep_only(wrong):
    def ni(adjacency, w):
        out = _right(adjacency, w)
        return wrong(out) if len(adjacency) == 18 else out

    return ni


def test_a_deep_graph_failure_no_cut_explains_is_observed():
    ni = _deep_only(lambda out: out * (1 + 0.01 * torch.arange(len(out), dtype=out.dtype)))
    err = assert_fails(checks.test_node_influence, ni, "deep_graph")
    assert "stopped after a fixed number" not in err.hint and "nodes differ" in err.message
    assert "not a series cut after" in err.message


def test_a_chain_failure_no_cut_explains_is_observed():
    def ni(adjacency, w):
        out = _right(adjacency, w)
        return out * 1.02 if len(adjacency) == 24 else out

    err = assert_fails(checks.test_node_influence, ni, "deep_graph")
    assert "a sign kept" not in err.hint and "series stopped early" not in err.hint and "nodes differ" in err.message
