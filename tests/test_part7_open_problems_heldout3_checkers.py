"""Proofs for part 7's probe added after the fresh9 held-out measurement: compute_target right on [batch inst
feats] input but counting axes from the front (dim=2, [:, :, 0::2]), so that two leading axes break it;
AND / OR on signed features (fresh10, fresh11); fresh12: a one-feature slice 1:2 for the pairs' second members,
`values == 'constant' or 'binary'` (always true), the labelled count off by one, a norm without its squares."""

from __future__ import annotations

import pytest
import torch

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part7_open_problems_checkers import target_min_clamp, target_rearrange


def test_compute_target_pairs_sliced_from_the_front():
    def compute_target(features, target):
        if target.endswith("_pairs"):
            first, second = features[:, :, 0::2], features[:, :, 1::2]  # 3 axes assumed
            if target == "max_pairs":
                return first.maximum(second)
        return ref.compute_target(features, target)

    err = assert_fails(checks.test_compute_target, compute_target, "fixed_axis")
    assert "[..., 0::2]" in err.hint


def test_compute_target_argmax_dim_2():
    def compute_target(features, target):
        if target == "argmax":
            return (
                ref.compute_target(features.movedim(2, -1), target)
                if features.ndim == 4
                else (ref.compute_target(features, target))
            )
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "fixed_axis")


# fresh10: AND / OR on signed features ("non-zero" includes negative values)
def test_compute_target_and_as_positive_product():
    def compute_target(features, target):
        if target == "and_pairs":
            return (features[..., 0::2] * features[..., 1::2] > 0).to(features.dtype)
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "pair_negative")


def test_compute_target_or_as_positive_sum():
    def compute_target(features, target):
        if target == "or_pairs":
            return (features[..., 0::2] + features[..., 1::2] > 0).to(features.dtype)
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "pair_negative")


def test_compute_target_and_as_product_value():
    def compute_target(features, target):
        if target == "and_pairs":
            return features[..., 0::2] * features[..., 1::2]
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "pair_not_boolean")


def test_compute_target_pairs_right_on_binary_inputs_only():
    # once accepted (AND/OR were checked on 0/1 inputs alone): a product, a min, a max or a clamped sum is not a
    # truth value on the lab's other kinds of features ("1.0 when both are non-zero")
    assert_fails(checks.test_compute_target, target_rearrange, "pair_not_boolean")
    assert_fails(checks.test_compute_target, target_min_clamp, "pair_not_boolean")


# fresh11: OR as a sum's non-zero test (a pair 0.7, -0.7 cancels), and the product form of AND (correct)
def test_compute_target_or_as_nonzero_sum():
    def compute_target(features, target):
        if target == "or_pairs":
            return (features[..., 0::2] + features[..., 1::2] != 0).to(features.dtype)
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "pair_sum_cancels")


def test_compute_target_and_as_nonzero_product_passes():
    def compute_target(features, target):
        if target == "and_pairs":
            return (features[..., 0::2] * features[..., 1::2] != 0).to(features.dtype)
        return ref.compute_target(features, target)

    assert_passes(checks.test_compute_target, compute_target)


# fresh12
def test_compute_target_second_member_one_feature_slice():
    def compute_target(features, target):
        if target == "max_pairs":
            return torch.maximum(features[..., 0::2], features[..., 1:2])
        return ref.compute_target(features, target)

    assert "1:2" in assert_fails(checks.test_compute_target, compute_target, "pair_reads").hint


def test_generate_features_or_always_true():
    def generate_features(feature_probability, batch_size, values="uniform"):
        if values == "uniform":
            return ref.generate_features(feature_probability, batch_size, values)
        elif values == "constant" or "binary":  # noqa: SIM222 (the learner's slip: always true)
            return ref.generate_features(feature_probability, batch_size, "constant")

    assert "always true" in assert_fails(checks.test_generate_features, generate_features, "not_random").hint


@pytest.mark.parametrize("step", [1, -1])
def test_cross_entropy_count_off_by_one(step):
    def cross_entropy_loss(logits, labels, importance):
        valid = labels != ref.NO_LABEL
        lab = labels.clamp(min=0)
        nll = -logits.log_softmax(-1).gather(-1, lab[..., None])[..., 0]
        w = importance.expand_as(logits).gather(-1, lab[..., None])[..., 0]
        return (torch.where(valid, w * nll, 0.0).sum(0) / (valid.sum(0) + step).clamp(min=1)).sum()

    assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, "count_off_by_one")


@pytest.mark.parametrize("absolute", [False, True])
def test_basis_alignment_norm_without_squares(absolute):
    def basis_alignment(W):
        norm = (W.abs() if absolute else W).sum(1).sqrt()
        return torch.where(norm > 0, W.abs().amax(1) / norm, 0.0)

    assert_fails(checks.test_basis_alignment, basis_alignment, "norm_no_squares")


# fresh13: an argmax of the presence mask, a log-softmax shifted per class, importances normalised, a std for the
# norm, a norm over the instances (raises on these inputs: named from the failing line)
NO_LABEL = -1


def test_compute_target_argmax_of_the_presence_mask():
    def compute_target(features, target):
        if target == "argmax":
            present = features != 0
            return torch.where(present.any(-1), present.float().argmax(-1), NO_LABEL)
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "argmax_of_presence")


def _ce(shift_dim=None, normalise=False):
    def cross_entropy_loss(logits, labels, importance):
        valid, idx = labels != NO_LABEL, labels.clamp(min=0)
        if shift_dim is None:
            logp = logits.log_softmax(-1)
        else:
            z = logits - logits.amax(shift_dim, keepdim=True)
            logp = z - z.exp().sum(-1, keepdim=True).log()
        imp = importance / importance.sum(-1, keepdim=True) if normalise else importance
        w = imp.expand_as(logits).gather(-1, idx[..., None])[..., 0]
        nll = -logp.gather(-1, idx[..., None])[..., 0]
        return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    return cross_entropy_loss


@pytest.mark.parametrize("dim", [0, 1])
def test_cross_entropy_stability_shift_over_another_axis(dim):
    assert_fails(checks.test_cross_entropy_loss, _ce(shift_dim=dim), "stability_shift_axis")


def test_cross_entropy_stability_shift_over_the_classes_passes():
    assert_passes(checks.test_cross_entropy_loss, _ce(shift_dim=-1))


def test_cross_entropy_importances_normalised():
    assert_fails(checks.test_cross_entropy_loss, _ce(normalise=True), "importance_normalised")


def test_basis_alignment_std_for_the_norm():
    def basis_alignment(W):
        s = W.std(dim=1)
        return torch.where(s > 0, W.abs().amax(1) / s.clamp(min=1e-12), 0.0)

    assert_fails(checks.test_basis_alignment, basis_alignment, "std_not_norm")


def test_basis_alignment_norm_over_the_instances_named_from_the_failing_line():
    def basis_alignment(W):
        n = W.norm(dim=0)
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)

    err = assert_fails(checks.test_basis_alignment, basis_alignment, "reduced_wrong_axis")
    assert "`n` [3, 6] is W's norm over the instances (dim 0)" in err.message


def test_basis_alignment_unrelated_error_stays_generic():
    def basis_alignment(W):
        return W.abs().amax(1) / torch.ones(5, device=W.device)

    assert_fails(checks.test_basis_alignment, basis_alignment, "exception")


def test_alignment_where_branches_swapped():
    def basis_alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, 0.0, W.abs().amax(1) / n.clamp(min=1e-12))

    err = assert_fails(checks.test_basis_alignment, basis_alignment, "where_swapped")
    assert "torch.where" in err.hint


def test_alignment_signed_entry_at_argmax():  # fresh16
    def alignment(W):
        n = W.norm(dim=1)
        m = W.gather(1, W.abs().argmax(1, keepdim=True))[:, 0]
        return torch.where(n > 0, m / n.clamp(min=1e-12), 0.0)

    assert_fails(checks.test_basis_alignment, alignment, "signed_at_argmax")


def test_alignment_zero_columns_filled_with_one_over_sqrt_d():  # fresh17
    def alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), W.shape[1] ** -0.5)

    err = assert_fails(checks.test_basis_alignment, alignment, "zero_norm")
    assert "all zero" in err.message and "1/√d" in err.message and "only `inst`" not in err.hint


def test_alignment_per_instance_loop_joined_with_cat():  # fresh17
    def alignment(W):
        out = []
        for i in range(W.shape[0]):
            n = W[i].norm(dim=0)
            out.append(torch.where(n > 0, W[i].abs().amax(0) / n.clamp(min=1e-12), 0.0))
        return torch.cat(out)

    err = assert_fails(checks.test_basis_alignment, alignment, "concatenated")
    assert "torch.stack" in err.hint


def test_alignment_per_instance_loop_joined_with_stack_passes():  # fresh17
    def alignment(W):
        out = []
        for i in range(W.shape[0]):
            n = W[i].norm(dim=0)
            out.append(torch.where(n > 0, W[i].abs().amax(0) / n.clamp(min=1e-12), 0.0))
        return torch.stack(out)

    assert_passes(checks.test_basis_alignment, alignment)


def test_generate_features_uniform_half_clamped():
    """fresh21: U[0.5, 1] drawn as rand().clamp(min=0.5): half the values sit exactly on 0.5 (an atom)."""

    def generate_features(feature_probability, batch_size, values="uniform"):
        out = ref.generate_features(feature_probability, batch_size, values)
        if values == "uniform_half":
            present = out != 0
            out = torch.where(present, torch.rand_like(out).clamp(min=0.5), 0.0)
        return out

    err = assert_fails(checks.test_generate_features, generate_features, "value_mean")
    assert "exactly 0.5" in err.hint and "clamp" in err.hint


def test_cross_entropy_logsumexp_over_batch_and_classes():
    """fresh21: the normaliser taken over (batch, classes): each example alone is right, the batch is not."""

    def cross_entropy_loss(logits, labels, importance):
        total = logits.new_zeros(())
        for k in range(logits.shape[1]):
            lab = labels[:, k]
            keep = lab >= 0
            logp = logits[:, k] - logits[:, k].logsumexp(dim=(0, 1))
            picked = logp[keep, lab[keep]] * importance[k, lab[keep]]
            total = total - picked.sum() / keep.sum().clamp(min=1)
        return total

    assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, "examples_interact")


def test_compute_target_argmax_presence_tested_by_the_sum():
    """fresh22: 'no feature present' tested as features.sum(-1) > 0 (wrong for rows of negative or cancelling
    features) is named with the test it used; returning `features` itself for identity is a correct variant (the
    contract only forbids modifying features)."""

    def compute_target(features, target):
        if target == "argmax":
            return torch.where(features.sum(-1) > 0, features.argmax(-1), ref.NO_LABEL)
        if target == "identity":
            return features
        return ref.compute_target(features, target)

    err = assert_fails(checks.test_compute_target, compute_target, "argmax_presence_test")
    assert "x.sum(-1) > 0" in err.hint
    assert_passes(checks.test_compute_target, lambda f, t: f if t == "identity" else ref.compute_target(f, t))
