"""Part 8 runs in float64, and rounded penalties. svd_terms and ablation_losses return W's (x's) dtype, so a float64
input must give float64 values (a .float() cast inside shows only there). The float64 W of svd_terms has an all-zero
instance: every σ is exactly 0 there and the reference's terms are 0, so a u_k rebuilt as W v_k / σ_k shows as NaN.
The minimality readings name a penalty rounded to an integer (a batch mean written with //)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_float64 as f64
from tests import part8_parameter_decomposition_penalty_reads as penalty_reads
from tests import part8_parameter_decomposition_probes as probes
from tests.checking import expect_matches, expect_tensor, fail, returned
from tests.mutants import call
from utils.part8_parameter_decomposition import WeightChain


def _dtype(out: Any, what: str, given: str) -> None:
    if isinstance(out, Tensor) and out.dtype != torch.float64:
        fail(
            f"{what} is {out.dtype}, the input is float64",
            f"keep {given}'s dtype: no .float() (or dtype=torch.float32) inside; work in the dtype you are given",
            code="float32_result",
        )


def _divided_by_sigma(W: Tensor) -> Tensor:
    """Terms with u_k rebuilt as W v_k / σ_k: 0 / 0 where σ_k = 0."""
    _, S, Vh = torch.linalg.svd(W, full_matrices=False)
    U = (W @ Vh.mT) / S[:, None, :]
    return torch.einsum("ior,ir,irj->iroj", U, S, Vh)


def svd_float64(svd_terms: Callable, device: Any) -> None:
    """float64 W (3 instances, 4 x 6) whose instance 1 is all zeros: float64 terms, finite, 0 for instance 1."""
    W = probes._randn(3, 4, 6, seed=91, device=device).double()
    W[1] = 0.0
    what = "svd_terms(W) for a float64 W of shape (3, 4, 6) whose instance 1 is all zeros (every σ = 0 there)"
    out = returned(svd_terms(W.clone()), what)
    _dtype(out, what, "W")
    right = sol.svd_terms(W)
    if isinstance(out, Tensor) and out.shape == right.shape and not out.isfinite().all():
        where = sorted({int(i) for i in (~out.isfinite()).nonzero()[:, 0]})
        seen = f"{what} has NaN or inf terms in instance(s) {where}; the expected terms are finite (0 where σ = 0)"
        mutant = _divided_by_sigma(W)
        if torch.equal(mutant.isnan(), out.isnan()) and torch.allclose(
            out.nan_to_num(), mutant.nan_to_num(), 1e-6, 1e-8
        ):
            fail(
                seen + ", exactly as u_k = W v_k / σ_k gives (0 / 0 where σ_k = 0)",
                "take u_k from the SVD's U (or form the term as (W v_k) v_kᵀ): never divide by σ_k",
                code="divided_by_sigma",
            )
        fail(seen, "a term with σ_k = 0 is 0: don't divide by σ_k (or by a norm that can be 0)", code="nan_terms")
    out = expect_tensor(out, what, shape=(3, 4, 4, 6), dims="inst r d_out d_in", dtype=W.dtype, device=device)
    expect_matches(out, right, what, dims="inst r d_out d_in", reference=call(sol.svd_terms, W))


def ablation_float64(ablation_losses: Callable, chain: WeightChain, terms: Tensor, x: Tensor) -> None:
    """The main chain, terms and x in float64: the losses come back float64 and equal the reference."""
    chain, terms, x, device = f64.double_chain(chain), terms.double(), x.double(), x.device
    what = "ablation_losses(chain, terms, x) with a float64 chain, terms and x"
    with torch.no_grad():
        out = returned(ablation_losses(chain, terms, x), what)
    _dtype(out, what, "x")
    out = expect_tensor(out, what, shape=(3, 10, 13), dims="inst k batch", dtype=x.dtype, device=device)
    reference = call(sol.ablation_losses, chain, terms, x, pick=Tensor.detach)
    expect_matches(out, sol.ablation_losses(chain, terms, x), what, dims="inst k batch", reference=reference)


def minimality_rounded(ci: list[Tensor], p: float, eps: float) -> list[tuple[str, str, Tensor]]:
    """The penalty with the batch mean written as floor division (per.sum(0) // batch), and the total floored; then
    `penalty_reads` (p and eps swapped, one example's penalty)."""
    per = sum((g.detach() + eps).pow(p).sum(-1) for g in ci)  # [batch inst]
    total = per.mean(0).sum()
    return [
        *penalty_reads.minimality_reads(ci, p, eps),
        (
            "floor_division",
            "your value equals the penalty with the batch mean taken by floor division, per.sum(0) // batch: a "
            "whole number per instance. Divide with / (or use .mean(0)), not //",
            (per.sum(0) // per.shape[0]).sum(),
        ),
        (
            "rounded_penalty",
            "your value equals the penalty rounded down to a whole number (floor, // 1, int() or .long()): keep "
            "the float value",
            total.floor(),
        ),
    ]
