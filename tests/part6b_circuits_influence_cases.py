"""node_influence on two further inputs: every row of the adjacency scaled down (row sums below 1) and the first
graph in float64 (the influence keeps the input's dtype, like every tensor function of the section)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail, returned


def scaled_rows(impl: Callable, A: Tensor, weights: Tensor, reference: Callable) -> None:
    """Each row scaled by 0.05..0.5: normalising must undo the scale (a row sum clamped to >= 1 does not)."""
    small = A * torch.linspace(0.05, 0.5, len(A), device=A.device)[:, None]  # every row sum below 1
    scaled = returned(impl(small.clone(), weights.clone()), "node_influence(adjacency with row sums < 1, ...)")
    if not torch.allclose(torch.as_tensor(scaled, device=A.device), reference(small, weights), 1e-4, 1e-6):
        fail(
            "the influence changed when each row of the adjacency was scaled down (row sums below 1)",
            "normalising makes every nonzero row sum to 1, whatever its scale: clamp the row sums only against "
            "0 (clamp_min(1e-12), or skip zero rows), not to at least 1 (clamp_min(1), max(sum, 1))",
            code="row_scale",
        )


def float64_inputs(impl: Callable, A: Tensor, weights: Tensor, reference: Callable) -> None:
    """The first graph again in float64: the output must come back float64 with the float64 values."""
    if A.device.type == "mps":  # no float64 there
        return
    A64, w64 = A.double(), weights.double()
    out = returned(impl(A64.clone(), w64.clone()), "node_influence(float64 adjacency, float64 logit_weights)")
    out = torch.as_tensor(out)
    if out.dtype != torch.float64:
        fail(
            f"with a float64 adjacency and float64 logit_weights, node_influence returned {out.dtype} (on the "
            "float32 graph it was right)",
            "keep the input's dtype throughout: no .float() on the inputs, and tensors you create take it from "
            "the input (torch.eye(n, dtype=a.dtype, device=a.device), torch.zeros_like(...))",
            code="float64_dtype",
        )
    want = reference(A64, w64)
    if out.shape != want.shape or not torch.allclose(out.to(want.device), want, rtol=1e-6, atol=1e-9):
        fail(
            "with a float64 adjacency and float64 logit_weights the influence differs from the float64 reference "
            f"by up to {float((out.to(want.device) - want).abs().max()) if out.shape == want.shape else 'a shape'}"
            " (on the float32 graph it was right at float32 precision)",
            "compute in the input's dtype: a float32 step inside (a .float() copy, a float32 torch.eye or buffer) "
            "caps the precision at float32",
            code="float64_values",
        )
