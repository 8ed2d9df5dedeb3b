"""Proofs for section 7 (round AW): a presence mask inverted by masked_fill (not by `rand > p`) gets an
observation-first hint that names no comparison; cross_entropy_loss's inputs give one class importance 0 (the
contract allows it), so a count that leaves those examples out is caught and named; the correct variants of the
round still pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from solutions import part7_open_problems as ref
from tests.proving import assert_fails, assert_passes

NO_LABEL = ref.NO_LABEL


def _values(values, shape, device):
    if values == "uniform":
        return torch.rand(shape, device=device)
    if values == "uniform_half":
        return 0.5 + 0.5 * torch.rand(shape, device=device)
    if values == "signed_uniform":
        return 2 * torch.rand(shape, device=device) - 1
    if values == "discrete":
        return torch.randint(1, 4, shape, device=device).float()
    if values in ("constant", "binary"):
        return torch.ones(shape, device=device)
    raise ValueError(values)


def gen_masked_fill_inverted(fp, batch_size, values="uniform"):
    shape = (batch_size, *fp.shape)
    present = torch.rand(shape, device=fp.device) < fp
    return _values(values, shape, fp.device).masked_fill(present, 0.0)


def _ce(logits, labels, importance, count_fn=None):
    valid = labels != NO_LABEL
    index = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(dim=-1).gather(-1, index)[..., 0]
    weight = importance.expand_as(logits).gather(-1, index)[..., 0]
    count = count_fn(valid, weight) if count_fn else valid.sum(0)
    return (torch.where(valid, weight * nll, 0.0).sum(0) / count.clamp(min=1)).sum()


def ce_count_nonzero_weight(logits, labels, importance):
    return _ce(logits, labels, importance, count_fn=lambda valid, w: (valid & (w > 0)).sum(0))


def ce_transposed_gather_correct(logits, labels, importance):
    valid = labels.ge(0)
    lab = torch.where(valid, labels, torch.zeros_like(labels))
    picked = logits.gather(-1, lab.unsqueeze(-1)).squeeze(-1)
    nll = torch.logsumexp(logits, dim=-1) - picked
    w = importance.gather(-1, lab.T).T
    num = (w * nll * valid).sum(0)
    den = valid.sum(0)
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num)).sum()


def ce_flat_cross_entropy_correct(logits, labels, importance):
    b, i, c = logits.shape
    nll = F.cross_entropy(logits.reshape(b * i, c), labels.reshape(-1), ignore_index=NO_LABEL, reduction="none").view(
        b, i
    )
    inst = torch.arange(i, device=logits.device).expand(b, i)
    w = importance[inst, labels.clamp(min=0)]
    valid = (labels != NO_LABEL).to(logits.dtype)
    return ((w * nll * valid).sum(0) / valid.sum(0).clamp(min=1.0)).sum()


def test_masked_fill_inverted_is_described_not_given_rand_gt_p():
    err = assert_fails(checks.test_generate_features, gen_masked_fill_inverted, code="rand_gt_p")
    assert "1 - p" in err.hint
    assert "rand > p" not in err.hint


def test_count_without_zero_importance_caught_and_named():
    err = assert_fails(checks.test_cross_entropy_loss, ce_count_nonzero_weight, code="count_weighted_only")
    assert "importance 0" in err.hint


def test_cross_entropy_correct_variants_pass():
    assert_passes(checks.test_cross_entropy_loss, ce_transposed_gather_correct)
    assert_passes(checks.test_cross_entropy_loss, ce_flat_cross_entropy_correct)
    assert_passes(checks.test_cross_entropy_loss, ref.cross_entropy_loss)
