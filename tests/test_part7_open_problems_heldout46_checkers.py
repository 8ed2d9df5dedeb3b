"""Proofs for section 7 (round AU): signed_uniform values drawn as tanh(randn) (bounded, mean 0, a second moment
inside the mean-square band) are caught by a Kolmogorov-Smirnov distance to U[-1, 1] with the DKW bound and named as
a squashed normal; AND as min(a, b) != 0 names the min-of-the-pair reading; and the round's correct variants pass."""

from __future__ import annotations

import torch

import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _gen(feature_probability, batch_size, values, signed):
    shape = (batch_size, *feature_probability.shape)
    dev = feature_probability.device
    present = torch.rand(shape, device=dev) < feature_probability
    if values == "uniform":
        s = torch.rand(shape, device=dev)
    elif values == "uniform_half":
        s = 0.5 + 0.5 * torch.rand(shape, device=dev)
    elif values == "signed_uniform":
        s = signed(shape, dev)
    elif values == "discrete":
        s = torch.randint(1, 4, shape, device=dev).float()
    elif values in ("constant", "binary"):
        s = torch.ones(shape, device=dev)
    else:
        raise ValueError(values)
    return torch.where(present, s, 0.0)


def _ct(features, target, **over):
    if target in over:
        return over[target](features)
    if target == "identity":
        return features.clone()
    if target == "abs":
        return features.abs()
    if target == "square":
        return features**2
    if target == "argmax":
        return torch.where((features != 0).any(-1), features.argmax(-1), NO_LABEL)
    a, b = features[..., 0::2], features[..., 1::2]
    if target == "max_pairs":
        return torch.maximum(a, b)
    if target == "and_pairs":
        return ((a != 0) & (b != 0)).to(features.dtype)
    if target == "or_pairs":
        return ((a != 0) | (b != 0)).to(features.dtype)
    raise ValueError(target)


def test_signed_tanh_of_normal_is_named():
    def generate_features(fp, batch_size, values="uniform"):
        return _gen(fp, batch_size, values, lambda sh, d: torch.randn(sh, device=d).tanh())

    failure = assert_fails(checks.test_generate_features, generate_features, code="value_shape")
    assert "Kolmogorov-Smirnov" in failure.message and "tanh of a normal" in (failure.hint or "")


def test_and_as_min_of_the_pair_is_named():
    def compute_target(features, target):
        return _ct(features, target, and_pairs=lambda f: (torch.minimum(f[..., 0::2], f[..., 1::2]) != 0).to(f.dtype))

    failure = assert_fails(checks.test_compute_target, compute_target, code="pair_negative")
    assert "min(a, b) != 0" in (failure.hint or "")


def test_bernoulli_random_sign_passes():
    def generate_features(fp, batch_size, values="uniform"):
        shape = (batch_size, *fp.shape)
        present = torch.bernoulli(fp.expand(shape)).bool()
        if values == "signed_uniform":
            s = torch.rand(shape) * (2 * torch.randint(0, 2, shape) - 1)
        elif values == "uniform_half":
            s = torch.empty(shape).uniform_(0.5, 1.0)
        elif values == "uniform":
            s = torch.empty(shape).uniform_()
        elif values == "discrete":
            n = shape[0] * shape[1] * shape[2]
            s = torch.multinomial(torch.ones(3), n, replacement=True).view(shape).float() + 1
        elif values in ("constant", "binary"):
            s = torch.ones(shape)
        else:
            raise ValueError(values)
        out = s.float().to(fp.device)
        out[~present] = 0.0
        return out

    assert_passes(checks.test_generate_features, generate_features)


def test_identity_without_copy_passes():
    assert_passes(checks.test_compute_target, lambda features, target: _ct(features, target, identity=lambda f: f))


def test_logical_ops_on_unflattened_pairs_pass():
    def compute_target(features, target):
        if target == "argmax":
            lab = features.argmax(-1)
            lab[features.abs().amax(-1) == 0] = NO_LABEL
            return lab
        if target in ("max_pairs", "and_pairs", "or_pairs"):
            p = features.unflatten(-1, (-1, 2))
            if target == "max_pairs":
                return p.amax(-1)
            op = torch.logical_and if target == "and_pairs" else torch.logical_or
            return op(p[..., 0], p[..., 1]).to(features.dtype)
        return {"identity": lambda f: f + 0, "abs": torch.abs, "square": torch.square}[target](features)

    assert_passes(checks.test_compute_target, compute_target)


def test_loop_logsumexp_cross_entropy_passes():
    def cross_entropy_loss(logits, labels, importance):
        total = logits.new_zeros(())
        for i in range(logits.shape[1]):
            v = labels[:, i] >= 0
            if not v.any():
                continue
            lg, lb = logits[v, i], labels[v, i]
            nll = lg.logsumexp(-1) - lg[torch.arange(len(lb)), lb]
            total = total + (importance[i, lb] * nll).mean()
        return total

    assert_passes(checks.test_cross_entropy_loss, cross_entropy_loss)


def test_vector_norm_nan_to_num_alignment_passes():
    def basis_alignment(W):
        inf_norm = torch.linalg.vector_norm(W, ord=float("inf"), dim=1)
        return torch.nan_to_num(inf_norm / torch.linalg.vector_norm(W, dim=1), nan=0.0)

    assert_passes(checks.test_basis_alignment, basis_alignment)
