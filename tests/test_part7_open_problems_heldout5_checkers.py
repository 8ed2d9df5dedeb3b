"""Proofs for part 7 after the fresh26 measurement: the importance multiplied into the logits (and not weighting the
loss) is named; the docstring's −log softmax written literally as softmax(...).log() passes, as do logsumexp - logit
and F.cross_entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _ce(log_probs, weighted=True, scale_logits=False):
    def f(logits, labels, importance):
        valid = labels != NO_LABEL
        idx = labels.clamp(min=0)[..., None]
        z = logits * importance if scale_logits else logits
        nll = -log_probs(z).gather(-1, idx)[..., 0]
        w = importance.expand_as(logits).gather(-1, idx)[..., 0] if weighted else torch.ones_like(nll)
        return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    return f


def test_importance_only_on_logits_is_named():
    err = assert_fails(
        checks.test_cross_entropy_loss,
        _ce(lambda z: z.log_softmax(-1), weighted=False, scale_logits=True),
        "importance_on_logits",
    )
    assert "softmax(importance · logits)" in err.hint


def test_log_of_softmax_and_its_stable_forms_pass():
    """The docstring's −log softmax(logits)[label] may be written literally: softmax(...).log() is accepted (the
    checker's logits are moderate), as are logsumexp - logit and F.cross_entropy."""
    assert_passes(checks.test_cross_entropy_loss, _ce(lambda z: z.softmax(-1).log()))
    assert_passes(checks.test_cross_entropy_loss, _ce(lambda z: z - z.logsumexp(-1, keepdim=True)))

    def f_ce(logits, labels, importance):
        total = logits.new_zeros(())
        for k in range(logits.shape[1]):
            m = labels[:, k] != NO_LABEL
            if m.any():
                y = labels[m, k]
                total = total + (importance[k, y] * F.cross_entropy(logits[m, k], y, reduction="none")).mean()
        return total

    assert_passes(checks.test_cross_entropy_loss, f_ce)
