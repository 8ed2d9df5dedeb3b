"""Proofs for part 7 (round AR): the argmax target with its unlabelled rows dropped or labelled from two present
features on, the loss with an eps inside the log (a confident misprediction), softmax applied twice, importance
gathered without an expand, the alignment's max skipping a neuron; correct variants that must pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import solutions.part7_open_problems as sol
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _argmax(fn):
    def compute_target(features, target):
        return fn(features) if target == "argmax" else sol.compute_target(features, target)

    return compute_target


def test_argmax_dropped_rows_named():
    def drop(x):
        present = (x != 0).any(-1)
        return torch.where(present, x.argmax(-1), NO_LABEL)[present]

    failure = assert_fails(checks.test_compute_target, _argmax(drop), code="argmax_dropped_rows")
    assert "as many as the labelled examples" in failure.message and "dropped" in failure.hint


@pytest.mark.parametrize("k", [2, 3])
def test_argmax_min_count_read_back(k):
    fn = lambda x: torch.where(x.count_nonzero(-1) >= k, x.argmax(-1), NO_LABEL)
    failure = assert_fails(checks.test_compute_target, _argmax(fn), code="argmax_min_count")
    assert f"at least {k} features" in failure.message


def test_argmax_count_nonzero_positive_passes():
    fn = lambda x: torch.where(x.count_nonzero(-1) > 0, x.argmax(-1), NO_LABEL)
    assert_passes(checks.test_compute_target, _argmax(fn))


def test_float_cast_of_elementwise_targets_passes():
    """The contract promises the elementwise targets' shape, not the input's dtype; the course's features are
    float32, so `.float()` computes the right thing on every input the course gives: accepted."""

    def compute_target(features, target):
        out = sol.compute_target(features, target)
        return out.float() if target in ("identity", "abs", "square") else out

    assert_passes(checks.test_compute_target, compute_target)


def _loss(log_probs, clamp_importance=False):
    def cross_entropy_loss(logits, labels, importance):
        valid = labels != NO_LABEL
        index = labels.clamp(min=0)[..., None]
        nll = -log_probs(logits).gather(-1, index)[..., 0]
        if clamp_importance:
            weight = importance.gather(-1, labels.clamp(min=0))
        else:
            weight = importance.expand_as(logits).gather(-1, index)[..., 0]
        return (torch.where(valid, weight * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    return cross_entropy_loss


@pytest.mark.parametrize("eps", [1e-8, 1e-6])
def test_eps_inside_the_log_read_back(eps):
    failure = assert_fails(checks.test_cross_entropy_loss, _loss(lambda z: (z.softmax(-1) + eps).log()), code="log_eps")
    assert f"softmax + {eps:.2g}" in failure.message and "capped" in failure.message


def test_clamp_inside_the_log_read_back():
    fn = lambda z: z.softmax(-1).clamp(min=1e-7).log()
    failure = assert_fails(checks.test_cross_entropy_loss, _loss(fn), code="log_eps")
    assert "clamp(min=1e-07)" in failure.message and "softmax + 1e-07" in failure.message


def test_logits_clamped_observed():
    failure = assert_fails(
        checks.test_cross_entropy_loss, _loss(lambda z: z.clamp(-10, 10).log_softmax(-1)), code="confident_mistake"
    )
    assert "confident wrong predictions" in failure.message and "e.g." in failure.hint


@pytest.mark.parametrize(
    "log_probs",
    [lambda z: z.softmax(-1).log(), lambda z: z - z.exp().sum(-1, keepdim=True).log(), lambda z: z.log_softmax(-1)],
)
def test_exact_log_softmax_variants_pass(log_probs):
    assert_passes(checks.test_cross_entropy_loss, _loss(log_probs))


def test_softmax_twice_named():
    def cross_entropy_loss(logits, labels, importance):
        nll = F.cross_entropy(logits.softmax(-1).permute(0, 2, 1), labels, ignore_index=-1, reduction="none")
        valid = labels != NO_LABEL
        weight = importance.expand_as(logits).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        return (torch.where(valid, weight * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    failure = assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, code="softmax_twice")
    assert "softmax" in failure.hint


def test_importance_gathered_without_expand_named():
    failure = assert_fails(
        checks.test_cross_entropy_loss, _loss(lambda z: z.log_softmax(-1), clamp_importance=True), code="gather_index"
    )
    assert "[inst classes]" in failure.message and "expand_as(logits)" in failure.hint


@pytest.mark.parametrize(
    "code, part", [("last_neuron_skipped", slice(None, -1)), ("first_neuron_skipped", slice(1, None))]
)
def test_alignment_max_skipping_a_neuron_named(code, part):
    def basis_alignment(W):
        norms = W.norm(dim=1)
        return torch.where(norms > 0, W[:, part].abs().amax(1) / norms.clamp(min=1e-12), 0.0)

    assert_fails(checks.test_basis_alignment, basis_alignment, code=code)
