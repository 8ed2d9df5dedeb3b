"""Generic edge inputs for the part 5a checkers, and the readings they expose.

- `single_instance`: a metric called with n_inst = 1 must still return shape [1] (a trailing `.squeeze()` returns a
  0-d tensor there, which no n_inst = 3 input shows).
- `small_threshold`: a step function's θ-gradient for thresholds below ε/2, where the rectangle window reaches
  below x = 0 (a backward that reads ReLU(x) in place of x differs only there).
- `small_threshold_latent`: one latent of the JumpReLU SAE gets θ < ε/2, so ReLU(pre) fed to JumpReLU/Heaviside
  shows in the threshold's gradient.
- catalogue readings: AuxK's top k_aux over the flattened batch × d_sae, or each chosen latent decoded alone; L0 as
  the L1/L∞ ratio; the dead fraction counted from nonzero()'s example column; the angular similarity."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail, returned


def single_instance(impl: Callable, args: tuple, what: str) -> None:
    """Call a per-instance metric on instance 0 alone (n_inst = 1): the result must keep shape (1,)."""
    out = returned(impl(*(a[:, :1].clone() for a in args)), what)
    if isinstance(out, Tensor) and tuple(out.shape) != (1,):
        cause = (
            "a .squeeze() drops the instance axis when n_inst = 1: squeeze only the axes you kept yourself (e.g. "
            ".squeeze(-1)), or reduce without keepdim"
            if out.dim() == 0
            else "the result's shape must follow n_inst, whatever its size"
        )
        fail(
            f"{what} with n_inst = 1 (inputs shaped {tuple(args[0][:, :1].shape)}) returned shape {tuple(out.shape)}, "
            "expected (1,) (inst)",
            cause,
            code="squeezed" if out.dim() == 0 else "single_instance_shape",
        )


def small_threshold(impl: Any, name: str, dth: Callable, bandwidth: float) -> None:
    """θ-gradient of `impl` at thresholds below ε/2 with x on both sides of 0 inside the window (no x on an edge)."""
    th0 = torch.tensor([0.02, 0.035], dtype=torch.float64)[:, None].expand(2, 9).contiguous().float()
    x0 = th0 + bandwidth * torch.tensor([-0.43, -0.31, -0.17, -0.06, 0.08, 0.21, 0.37, 0.62, -0.85])
    g = torch.linspace(0.6, 1.4, 18).reshape(2, 9)
    x, th = x0.clone().requires_grad_(True), th0.clone().requires_grad_(True)
    out = impl.apply(x, th, bandwidth)
    if not isinstance(out, Tensor) or not out.requires_grad:
        return
    (grad_th,) = torch.autograd.grad((out * g).sum(), (th,), allow_unused=True)
    grad_th = torch.zeros_like(th0) if grad_th is None else grad_th.detach()
    want = dth(x0, th0, bandwidth) * g
    if grad_th.shape != want.shape or torch.allclose(grad_th, want, rtol=1e-4, atol=1e-5):
        return
    bad = (~torch.isclose(grad_th, want, rtol=1e-4, atol=1e-5)).nonzero()[0].tolist()
    seen = (
        f"the gradient of {name} with respect to threshold is right on the checker's thresholds above ε/2 but differs "
        f"for θ < ε/2 = {bandwidth / 2:g}: at x = {x0[tuple(bad)]:.4g}, θ = {th0[tuple(bad)]:.4g} (ε = {bandwidth:g}) "
        f"got {grad_th[tuple(bad)]:.6g}, expected {want[tuple(bad)]:.6g}"
    )
    if torch.allclose(grad_th, dth(x0.relu(), th0, bandwidth) * g, rtol=1e-4, atol=1e-5):
        hint = (
            "your backward reads ReLU(x) where it needs x (e.g. ctx.save_for_backward(F.relu(x), ...)): the window "
            "K((x - θ)/ε) then sees every negative x at 0, inside the window when θ < ε/2. Save x itself"
        )
        fail(seen, hint, code="saved_relu")
    fail(seen, "the window K((x - θ)/ε) applies to x as given, negative x included", code="small_threshold")


def small_threshold_latent(sae: Any, bandwidth: float) -> None:
    """Give latent 0 of every instance a threshold below ε/2 (θ = ε/6), where pre < 0 lies inside the window."""
    with torch.no_grad():
        sae.log_threshold[:, 0] = math.log(bandwidth / 6)


THRESHOLD_GRAD_HINT = (
    "the threshold's gradient differs. Possible causes: θ = exp(log_threshold) not passed (or detached) to "
    "JumpReLU or Heaviside; a bandwidth other than cfg.jumprelu_bandwidth given to either; pre "
    "passed through a ReLU before JumpReLU/Heaviside (that moves every negative pre to 0, inside the window "
    "of a threshold below ε/2: the checker's latent 0 has θ = ε/6)"
)


def auxk_readings(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list:
    """(code, hint, value): top k_aux over the flattened batch × d_sae of each instance; each chosen dead latent
    decoded alone, the per-latent squared errors averaged."""
    masked = torch.where(dead, pre, -torch.inf)
    b, i, s = masked.shape
    flat = masked.permute(1, 0, 2).reshape(i, b * s)
    top = flat.topk(k_aux, dim=-1)
    vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(flat).scatter(-1, top.indices, vals).reshape(i, b, s).permute(1, 0, 2)
    flat_loss = (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2).mean(-1)
    top = masked.topk(k_aux, dim=-1)
    vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    rows = W_dec[torch.arange(i)[None, :, None], top.indices]  # [batch inst k_aux d_in]
    alone = (residual[:, :, None] - vals[..., None] * rows).pow(2).mean(-1).mean(-1)
    return [
        (
            "auxk_flattened",
            "your top k_aux is taken over the whole batch × d_sae of each instance (flattened): choose the k_aux "
            "largest dead pre-activations of each example separately, topk over the d_sae axis (dim=-1)",
            flat_loss.detach(),
        ),
        (
            "auxk_each_alone",
            "each chosen dead latent is decoded alone and the per-latent errors averaged: the auxiliary "
            "reconstruction is the sum of the chosen latents' contributions, one error per example",
            alone.detach(),
        ),
    ]


def l0_smooth(acts: Tensor) -> list:
    ratio = acts.abs().sum(-1) / acts.abs().amax(-1).clamp(min=1e-12)
    hint = "that is a smooth L0 (L1/L∞ per example): L0 counts the non-zero latents, (acts != 0).sum(-1), averaged"
    return [("l1_linf_ratio", hint, ratio.mean(0))]


def dead_example_column(acts: Tensor) -> list:
    """Per instance, 1 - (number of examples with any non-zero latent) / d_sae: nonzero()[:, 0] is the example; and
    the fraction of latents zero on the first and last example only."""
    firing = (acts != 0).any(-1).to(acts.dtype).sum(0)
    hint = (
        "your count of alive latents is a count of examples: in acts[:, i].nonzero(), column 0 is the example "
        "index and column 1 the latent; count the distinct latents (column 1), or use (acts == 0).all(0)"
    )
    edges = ((acts[0] == 0) & (acts[-1] == 0)).to(acts.dtype).mean(-1)
    edge_hint = (
        "your dead latents are those zero on the first and the last example (acts[0] and acts[-1]): a latent is dead "
        "when it is zero on *every* example of the batch, (acts == 0).all(dim=0), then averaged over the latents"
    )
    return [("example_column", hint, 1 - firing / acts.shape[-1]), ("edge_examples_only", edge_hint, edges)]


def recovery_angular(cos: Tensor) -> list:
    hint = "that is the angular similarity 1 - arccos(cos)/π: return the (max) cosine similarity itself"
    return [("angular", hint, 1 - torch.arccos(cos.clamp(-1, 1)) / math.pi)]


def recovery_size_one(impl: Callable, W_feat: Tensor, W_dec: Tensor, what: str) -> None:
    """feature_recovery with one instance, then with one feature (both allowed by the contract): the result keeps
    shape (inst, feats). A .squeeze() without a dim (e.g. after max(keepdim=True)) drops every size-1 axis."""
    for label, args in (
        ("n_inst = 1", (W_feat[:1].clone(), W_dec[:1].clone())),
        ("n_feats = 1", (W_feat[..., :1].clone(), W_dec.clone())),
    ):
        want = (args[0].shape[0], args[0].shape[-1])
        try:
            out = impl(*args)
        except Exception as err:  # the learner's function failing on a size-1 axis is the finding
            fail(
                f"{what} with {label} (W_features shaped {tuple(args[0].shape)}) raised {type(err).__name__}: {err}",
                "every size may be 1, one instance or one feature included: read the sizes from the inputs' shapes "
                "and reduce over named dims only (no .squeeze() without a dim, no hard-coded sizes)",
                code="size_one_error",
            )
        out = returned(out, what)
        if not isinstance(out, Tensor) or tuple(out.shape) == want:
            continue
        fail(
            f"{what} with {label} (W_features shaped {tuple(args[0].shape)}) returned shape {tuple(out.shape)}, "
            f"expected {want} (inst feats)",
            "an axis of size 1 was dropped: a .squeeze() without a dim (e.g. after max(..., keepdim=True)) removes "
            "every axis of size 1, not only the one you reduced; squeeze that axis alone (.squeeze(1)), or take "
            ".max(dim=1).values without keepdim",
            code="squeezed",
        )
