"""Checkers for part 3 (feature geometry).

Both exercises are deterministic functions of W, so each checker compares the learner's output with
the formula computed here in float64 on the same inputs (columns of different norms, several
instances, overlapping features), then tests the edge cases the exercise promises: one instance,
float64 input, and a feature whose column is zero. When the values are wrong, the usual mistakes are
tried in turn and the one that reproduces the learner's output is named.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import checker, expect_close, expect_matches, expect_tensor, fail


def _weights(device: torch.device, n_inst: int = 3, d: int = 4, n_feats: int = 7) -> Tensor:
    """Random columns with norms between 0.3 and 1.7, so every normalisation and square matters."""
    W = torch.randn(n_inst, d, n_feats)
    W = W / W.norm(dim=1, keepdim=True) * (0.3 + 1.4 * torch.rand(n_inst, 1, n_feats))
    return W.to(device)


# --------------------------------------------------------------------------------------------
# dimensions_per_feature
# --------------------------------------------------------------------------------------------
@checker("dimensions_per_feature")
def test_dimensions_per_feature(dimensions_per_feature: Callable, device: torch.device) -> str:
    W = _weights(device, n_inst=3, d=5, n_feats=8)  # three different sizes, so a wrong axis shows
    out = expect_tensor(
        dimensions_per_feature(W.clone()),
        "dimensions_per_feature(W)",
        shape=(3,),
        dims="inst",
        dtype=W.dtype,
        device=device,
    )
    W64 = W.double()
    frob_sq = W64.pow(2).sum((1, 2))
    expected = 5 / frob_sq
    mistakes = [
        ("frobenius_square", "divide by the *squared* Frobenius norm: sum of W², no sqrt", 5 / frob_sq.sqrt()),
        ("inverted", "it's d_hidden / ‖W‖²_F, not ‖W‖²_F / d_hidden", frob_sq / 5),
        ("numerator", "the numerator is d_hidden = W.shape[1], not the number of features", 8 / frob_sq),
        ("numerator", "the numerator is d_hidden = W.shape[1], not the number of instances", 3 / frob_sq),
        ("numerator", "the numerator is d_hidden = W.shape[1], not 1", 1 / frob_sq),
    ]
    expect_matches(out, expected, "dimensions_per_feature(W)", mistakes, dims="inst")
    out1 = dimensions_per_feature(W[:1].clone())
    if isinstance(out1, Tensor) and out1.shape != (1,):
        fail(
            f"for W with one instance the output has shape {tuple(out1.shape)}, expected (1,)",
            "keep the inst axis: reduce over dims (1, 2) only, and don't .squeeze() or .item()",
            code="squeezed",
        )
    return "d_hidden / ‖W‖²_F per instance"


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def _reference(W: Tensor) -> Tensor:
    """‖W_i‖⁴ / Σ_j (W_i·W_j)² in float64, 0 for a zero column."""
    W = W.double()
    norms_sq = W.pow(2).sum(1)
    den = torch.einsum("kdi,kdj->kij", W, W).pow(2).sum(-1)
    return torch.where(den > 0, norms_sq**2 / den, torch.zeros_like(den))


def _mistakes(W: Tensor) -> list[tuple[str, str, Tensor]]:
    W = W.double()
    norms_sq = W.pow(2).sum(1)  # [inst feats]
    W_hat = W / W.norm(dim=1, keepdim=True)
    dots = torch.einsum("kdi,kdj->kij", W_hat, W)  # Ŵ_i · W_j
    W_row = W / W.norm(dim=2, keepdim=True)  # normalised along the feature axis (wrong)
    dots_row = torch.einsum("kdi,kdj->kij", W_row, W)
    dots_both = torch.einsum("kdi,kdj->kij", W_hat, W_hat)
    dots_raw = torch.einsum("kdi,kdj->kij", W, W)
    eye = torch.eye(W.shape[-1], dtype=torch.bool)
    mistakes = [  # (code, candidate value, hint)
        (
            "denominator_square",
            norms_sq / dots.abs().sum(-1),
            "square each dot product in the denominator: Σ_j (Ŵ_i·W_j)², not Σ_j |Ŵ_i·W_j|",
        ),
        (
            "denominator_square",
            norms_sq / dots.sum(-1).pow(2),
            "square each dot product before summing: Σ_j (Ŵ_i·W_j)², not (Σ_j Ŵ_i·W_j)²",
        ),
        (
            "self_term",
            norms_sq / dots.pow(2).masked_fill(eye, 0).sum(-1),
            "the sum runs over every j *including* j = i (a feature alone then has dimensionality 1)",
        ),
        (
            "normalise_axis",
            norms_sq / dots_row.pow(2).sum(-1),
            "normalise each feature's column W[:, :, i]: take the norm over d_hidden (dim=1), not over features",
        ),
        (
            "normalise_both",
            norms_sq / dots_both.pow(2).sum(-1),
            "normalise only the first vector of each dot product: Ŵ_i · W_j, not Ŵ_i · Ŵ_j",
        ),
        (
            "normalise",
            norms_sq / dots_raw.pow(2).sum(-1),
            "the denominator uses the unit vector Ŵ_i = W_i / ‖W_i‖ in each dot product",
        ),
        ("numerator_square", norms_sq.sqrt() / dots.pow(2).sum(-1), "the numerator is the *squared* norm ‖W_i‖²"),
    ]
    return [(code, hint, value) for code, value, hint in mistakes]


@checker("compute_dimensionality")
def test_compute_dimensionality(compute_dimensionality: Callable, device: torch.device) -> str:
    # 1) values: 3 instances, 4 dimensions, 7 features of different norms
    W = _weights(device)
    out = expect_tensor(
        compute_dimensionality(W.clone()),
        "compute_dimensionality(W)",
        shape=(3, 7),
        dims="inst feats",
        dtype=torch.float32,
        device=device,
    )
    expected = _reference(W)
    expect_matches(out, expected, "compute_dimensionality(W)", _mistakes(W), dims="inst feats")
    # 2) one instance: the inst axis must stay
    out1 = compute_dimensionality(W[:1].clone())
    if isinstance(out1, Tensor) and out1.shape == (7,):
        fail(
            "for W of shape (1, 4, 7) the output has shape (7,), expected (inst=1, feats=7)",
            "keep the inst axis: don't .squeeze() (it drops the inst axis when there is one instance)",
            code="squeezed",
        )
    out1 = expect_tensor(out1, "compute_dimensionality(W[:1])", shape=(1, 7), dims="inst feats")
    expect_close(out1, expected[:1], "compute_dimensionality(W[:1])", code="values", dims="inst feats")
    # 3) known configurations: an orthogonal feature (1), an antipodal pair (1/2), a triangle (2/3)
    angles = torch.tensor([0.0, 2.0944, 4.1888])
    plane = torch.stack([angles.cos(), angles.sin()])  # [2, 3], a triangle in dims 0-1
    W_known = torch.zeros(1, 4, 6)
    W_known[0, :2, :3] = plane * 0.9
    W_known[0, 2, 3], W_known[0, 2, 4] = 1.1, -1.1
    W_known[0, 3, 5] = 0.7
    known = compute_dimensionality(W_known.to(device))
    expect_tensor(known, "compute_dimensionality(W) with one instance", shape=(1, 6), dims="inst feats")
    expect_close(
        known,
        torch.tensor([[2 / 3] * 3 + [0.5, 0.5, 1.0]]),
        "dimensionality of a triangle, an antipodal pair and a lone feature",
        "expected 2/3, 1/2 and 1: compare your formula with the definition",
        code="values",
        rtol=1e-3,
        atol=1e-4,
    )
    # 4) float64 in, float64 out
    out64 = compute_dimensionality(W.double())
    expect_tensor(
        out64, "compute_dimensionality(W.double())", shape=(3, 7), dims="inst feats", dtype=torch.float64, finite=False
    )
    # 5) a zero feature: defined as 0, and the other features are unaffected
    W_zero = W.clone()
    W_zero[1, :, 2] = 0
    W_zero[0, :, 6] = 0
    out0 = compute_dimensionality(W_zero)
    out0 = expect_tensor(
        out0, "compute_dimensionality(W) with a zero feature", shape=(3, 7), dims="inst feats", finite=False
    )
    at_zero = out0[[1, 0], [2, 6]]
    if not torch.isfinite(out0).all():
        fail(
            f"a feature whose column is all zeros gets {at_zero.tolist()}, expected 0 "
            f"({int((~torch.isfinite(out0)).sum())} non-finite values in the output)",
            "normalising a zero column divides by zero: return 0 for it, e.g. clamp the norm with "
            "clamp_min(1e-12) and use torch.where(denominator > 0, ..., 0)",
            code="zero_feature",
        )
    if not torch.allclose(at_zero.double().cpu(), torch.zeros(2, dtype=torch.float64), atol=1e-6):
        fail(
            f"a feature whose column is all zeros gets {at_zero.tolist()}, expected 0",
            "a dropped feature has no share of any dimension: define its dimensionality as 0",
            code="zero_feature",
        )
    expect_close(
        out0,
        _reference(W_zero),
        "compute_dimensionality(W) with a zero feature",
        "a zero feature contributes nothing to other features' sums: the others should not change",
        code="zero_feature",
        dims="inst feats",
    )
    return "values, known polytopes, one instance, float64, zero features"
