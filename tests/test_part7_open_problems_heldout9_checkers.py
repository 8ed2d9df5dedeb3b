"""Proofs for the round AI (fresh34) part 7 cases: a precedence slip in the signed draw, argmax over the
instance axis, a bare squeeze after gather, and sqrt(d)·mean|W| for the norm; hints for a float mask given to
torch.where and a pooling layer given a 4-d tensor (tests/learner_errors.py)."""

from __future__ import annotations

import torch

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails
from utils.part7_open_problems import NO_LABEL


def test_signed_precedence_slip():
    def generate_features(p, n, values="uniform"):
        shape = (n, *p.shape)
        present = torch.rand(shape) < p
        if values == "signed_uniform":
            s = torch.rand(shape) * torch.randint(0, 2, shape) * 2 - 1
        elif values == "uniform_half":
            s = 0.5 + 0.5 * torch.rand(shape)
        elif values == "discrete":
            s = torch.randint(1, 4, shape).float()
        elif values in ("constant", "binary"):
            s = torch.ones(shape)
        else:
            s = torch.rand(shape)
        return torch.where(present, s, 0.0)

    failure = assert_fails(checks.test_generate_features, generate_features, "value_mean")
    assert "operator precedence" in failure.hint and "50%" in failure.hint


def test_argmax_instance_axis():
    def compute_target(x, target):
        if target == "argmax":
            lab = x.argmax(dim=-2, keepdim=True).expand_as(x)[..., 0]
            return torch.where((x != 0).any(-1), lab, NO_LABEL)
        a, b = x[..., 0::2], x[..., 1::2]
        return {
            "identity": lambda: x.clone(),
            "abs": lambda: x.abs(),
            "square": lambda: x**2,
            "max_pairs": lambda: torch.maximum(a, b),
            "and_pairs": lambda: ((a != 0) & (b != 0)).to(x.dtype),
            "or_pairs": lambda: ((a != 0) | (b != 0)).to(x.dtype),
        }[target]()

    failure = assert_fails(checks.test_compute_target, compute_target, "argmax_instance_axis")
    assert "INSTANCE axis" in failure.hint


def test_bare_squeeze():
    def cross_entropy_loss(logits, labels, importance):
        valid = labels != NO_LABEL
        idx = labels.clamp(min=0).unsqueeze(-1)
        nll = -logits.log_softmax(-1).gather(-1, idx).squeeze()
        w = importance.expand_as(logits).gather(-1, idx).squeeze()
        return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    failure = assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, "size_one_squeeze")
    assert ".squeeze()" in failure.hint


def test_label_tensor_indexing_listed():
    def cross_entropy_loss(logits, labels, importance):
        valid = labels != NO_LABEL
        lab = labels.clamp(min=0)
        nll = -logits.log_softmax(-1)[..., lab]
        w = importance.expand_as(logits).gather(-1, lab[..., None])[..., 0]
        return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    failure = assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, "examples_interact")
    assert "log_probs[..., labels]" in failure.hint


def test_mean_abs_norm():
    def basis_alignment(W):
        den = W.shape[1] ** 0.5 * W.abs().mean(1)
        return torch.where(W.abs().sum(1) > 0, W.abs().amax(1) / den.clamp(min=1e-12), 0.0)

    assert_fails(checks.test_basis_alignment, basis_alignment, "mean_abs_norm")


def test_a_float_mask_in_torch_where_gets_a_hint():
    def generate_features(p, n, values="uniform"):
        present = torch.bernoulli(p.expand(n, *p.shape))  # float 0/1, not a boolean condition
        return torch.where(present, torch.rand(n, *p.shape), 0.0)

    hint = assert_fails(checks.test_generate_features, generate_features, "exception").hint
    assert "mask.bool()" in hint


def test_a_pooling_layer_on_a_4d_tensor_gets_a_hint():
    def compute_target(x, target):
        if target == "max_pairs":
            return torch.nn.functional.max_pool1d(x, 2)  # takes 2-d or 3-d inputs only
        return ref.compute_target(x, target)

    hint = assert_fails(checks.test_compute_target, compute_target, "exception").hint
    assert "amax(dim=...)" in hint
