"""Proofs for the fresh38 held-out cases of part 7: a reshape where a permute belongs, label smoothing, and
magnitudes drawn as rand()**2."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails
from utils.part7_open_problems import NO_LABEL


def _ce(reshape: bool = False, smoothing: float = 0.0):
    def cross_entropy_loss(logits, labels, importance):
        B, n_inst, C = logits.shape
        valid = labels != NO_LABEL
        idx = labels.clamp(min=0)
        w = importance.expand_as(logits).gather(-1, idx[..., None])[..., 0]
        if reshape:
            nll = F.cross_entropy(logits.reshape(B, C, n_inst), idx, reduction="none")
        else:
            nll = F.cross_entropy(logits.permute(0, 2, 1), idx, reduction="none", label_smoothing=smoothing)
        return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    return cross_entropy_loss


def test_reshape_not_permute():
    failure = assert_fails(checks.test_cross_entropy_loss, _ce(reshape=True), "reshape_not_permute")
    assert "permute" in failure.hint


def test_label_smoothing():
    failure = assert_fails(checks.test_cross_entropy_loss, _ce(smoothing=0.1), "label_smoothing")
    assert "0.1" in failure.message


def test_permute_variant_accepted():
    checks.test_cross_entropy_loss(_ce())


def _squared_magnitudes(feature_probability, batch_size, values="uniform"):
    out = ref.generate_features(feature_probability, batch_size, values)
    return out.sign() * out.abs() ** 2 if values == "signed_uniform" else out


def test_signed_squared_magnitudes_named():
    failure = assert_fails(checks.test_generate_features, _squared_magnitudes, "value_spread")
    assert "rand()**2" in failure.hint
