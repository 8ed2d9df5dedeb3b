"""basis_alignment: calls beyond the checker's main W (a small column, one instance, one feature) and an output that
is the same for every instance (W pooled over the instances)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part7_open_problems as ref
from tests.checking import expect_tensor, fail, returned


def small_column(impl: Callable, W: Tensor) -> None:
    """A column small but not zero (‖Wᵢ‖ = 9e-4) keeps its alignment (0.80 here): only exact zeros give 0. Within
    5% of the value, so an epsilon up to 1e-5 in the denominator still passes."""
    W = W.clone()
    W[1, :, 4] = torch.tensor([2e-4, -7e-4, 5e-4], device=W.device)
    got = returned(impl(W.clone()), "basis_alignment(W)")
    want = ref.basis_alignment(W)[1, 4]
    if isinstance(got, Tensor) and got.shape == (4, 6) and not (got[1, 4] - want).abs() < 0.05 * want:
        fail(
            f"basis_alignment(W) is {float(got[1, 4]):.4g} for a feature whose column is small but not zero "
            f"(‖Wᵢ‖ = {float(W[1, :, 4].norm()):.2g}, instance 1, feature 4), expected {float(want):.4g}",
            "only an exactly zero column gets 0: test norm > 0 (not norm > some threshold), and keep any epsilon "
            "far below the norms (a clamp or + eps of 1e-12)",
            code="small_column",
        )


def size_one_calls(impl: Callable, W: Tensor) -> None:
    """The contract takes W [inst, neurons, feats] of any sizes: with one instance (or one feature) the output keeps
    that axis of size 1. A bare `.squeeze()` (after keepdim) drops it there and nowhere else."""
    for what, small, axis in (("one instance", W[1:2], "inst"), ("one feature", W[:, :, 4:5], "feats")):
        want = ref.basis_alignment(small)
        got = returned(impl(small.clone()), f"basis_alignment(W) for W with {what}")
        if isinstance(got, Tensor) and got.shape != want.shape and got.numel() == want.numel():
            fail(
                f"for W with {what}, shape {list(small.shape)}, basis_alignment(W) has shape {tuple(got.shape)}, "
                f"expected (inst, feats) = {tuple(want.shape)}: the `{axis}` axis of size 1 was dropped",
                "a bare .squeeze() drops every axis of size 1, not only the one you kept with keepdim: "
                "squeeze only the neuron axis (.squeeze(1)), or reduce without keepdim",
                code="squeezed",
            )
        got = expect_tensor(got, f"basis_alignment(W) for W with {what}", shape=tuple(want.shape), dims="inst feats")
        if not torch.allclose(got.detach().to(want.dtype), want, rtol=1e-4, atol=1e-5):
            fail(
                f"basis_alignment(W) for W with {what} (shape {list(small.shape)}) differs from the expected values, "
                "though it is right on the larger W",
                "nothing may depend on how many instances or features there are: reduce over dim 1 only",
                code="size_one",
            )


def instances_alike_hint(got: Tensor, expected: Tensor, W: Tensor) -> None:
    """Fail when every instance got the same alignment while the right ones differ between instances: W (or the
    result) pooled over the instance axis. Named exactly when it is the alignment of W.mean(0) (W.sum(0) gives the
    same ratios) or the mean of the right alignments; otherwise the observation and its possible causes."""
    g, e = got.detach().double().cpu(), expected.detach().double().cpu()
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    first = g[:1].expand_as(g)
    if g.shape[0] < 2 or not close(g, first) or close(e, e[:1].expand_as(e)):
        return
    pooled = ref.basis_alignment(W.double().mean(0, keepdim=True)).cpu().expand_as(g)
    if close(g, pooled):
        cause = "they are the alignment of W averaged over the instances (W.mean(0) or W.sum(0)), given to each"
    elif close(g, e.mean(0, keepdim=True).expand_as(e)):
        cause = "they are the mean over the instances of the right alignments, given to each"
    else:
        cause = (
            "possible causes: W reduced over the instance axis (dim 0) before the ratio, one instance's result "
            "broadcast or expanded to all, or an index that ignores the instance"
        )
    fail(
        f"basis_alignment(W) is the same for every one of the {g.shape[0]} instances, while each instance has its "
        f"own W and its own alignments: {cause}",
        "each instance is a separate model: reduce over the neurons (dim 1) only, keeping the inst axis of W "
        "[inst, neurons, feats] all the way through",
        code="instances_pooled",
    )
