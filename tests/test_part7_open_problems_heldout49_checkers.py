"""Proofs for section 7 (audit 49): cross_entropy_loss wrong only on confidently wrong logits names a logit clamp
only when the clamp read back reproduces the output; a mistake of the same shape with another cause (logits
above 20 in size compressed by half, not clamped) is described by what was seen, naming no cause."""

from __future__ import annotations

import torch

import tests.part7_open_problems as checks
from solutions import part7_open_problems as ref
from tests.proving import assert_fails


def _loss(logp):
    def cross_entropy_loss(logits, labels, importance):
        lp = logp(logits)
        valid = labels != ref.NO_LABEL
        index = labels.clamp(min=0)[..., None]
        nll = -lp.gather(-1, index)[..., 0]
        weight = importance.expand_as(lp).gather(-1, index)[..., 0]
        per = torch.where(valid, weight * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)
        return per.sum()

    return cross_entropy_loss


def test_logit_clamp_read_back_and_named():
    err = assert_fails(
        checks.test_cross_entropy_loss, _loss(lambda z: z.clamp(-10, 10).log_softmax(-1)), code="confident_mistake"
    )
    assert "logits.clamp(-10, 10)" in err.message


def test_compressed_logits_not_given_a_clamp_cause():
    err = assert_fails(
        checks.test_cross_entropy_loss,
        _loss(lambda z: z.where(z.abs() <= 20, z.sign() * (20 + (z.abs() - 20) / 2)).log_softmax(-1)),
        code="confident_mistake",
    )
    assert "clamp(" not in err.message.split("Ruled out")[0]
    assert "under/overflow" not in err.hint and "eps or clamp inside" not in err.hint
    assert "Ruled out" in err.message


def _pair_target(combine):
    def compute_target(features, target):
        if target == "and_pairs":
            return combine(features[..., 0::2], features[..., 1::2])
        return ref.compute_target(features, target)

    return compute_target


def test_pair_product_read_back_and_named():
    err = assert_fails(checks.test_compute_target, _pair_target(lambda a, b: a * b), code="pair_not_boolean")
    assert "equals a·b of the pair's values" in err.hint


def test_pair_other_product_not_given_a_listed_cause():
    """a·b² (right on 0/1 inputs) matches no read-back combination: the hint states the contract, no value rule."""
    err = assert_fails(checks.test_compute_target, _pair_target(lambda a, b: a * b * b), code="pair_not_boolean")
    assert "your output equals" not in err.hint and "agrees only on 0/1 inputs" not in err.hint


def test_fresh46_and_min_named_as_min():
    """fresh46 ct_and_min (close to misleading then): the hint now reads back min(a, b) != 0 and says 'present'."""
    err = assert_fails(
        checks.test_compute_target,
        _pair_target(lambda a, b: (torch.minimum(a, b) != 0).to(a.dtype)),
        code="pair_negative",
    )
    assert "min(a, b) != 0" in err.hint and "reads as present" in err.hint
