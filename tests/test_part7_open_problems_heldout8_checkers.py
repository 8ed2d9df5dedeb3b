"""Proofs for part 7 after the fresh33 measurement: importance read through a reshape to [classes, inst] (each
one-instance slice right, the total wrong, and right again with every importance 1), and a smooth max (logsumexp)
in basis_alignment's numerator."""

from __future__ import annotations

import torch

import tests.part7_open_problems as checks
from tests.proving import assert_fails
from utils.part7_open_problems import NO_LABEL


def _loss(logits, labels, weight):
    valid = labels != NO_LABEL
    nll = -logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return (torch.where(valid, weight * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()


def test_importance_reshaped():
    def cross_entropy_loss(logits, labels, importance):
        b, n_inst, n_classes = logits.shape
        inst = torch.arange(n_inst, device=logits.device).expand(b, n_inst)
        return _loss(logits, labels, importance.reshape(n_classes, n_inst)[labels.clamp(min=0), inst])

    failure = assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, "importance_lookup")
    assert "reshaped or transposed to [classes, inst]" in failure.hint
    assert "with every importance set to 1" in failure.message


def test_logsumexp_numerator():
    def basis_alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, torch.logsumexp(W.abs(), dim=1) / n.clamp(min=1e-12), 0.0)

    failure = assert_fails(checks.test_basis_alignment, basis_alignment, "numerator_reading")
    assert "logsumexp over neurons of |W_ki|" in failure.message
