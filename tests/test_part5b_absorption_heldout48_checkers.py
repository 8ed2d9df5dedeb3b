"""Proofs for section 5b (round AV, second fixes): exclusive children whose bin lower edges come from
torch.linspace(0, n_children·p_child, n_children) are named with both causes of that law (linspace edges, edges
shifted by one), which no allowed config separates; matryoshka_loss with the mean absolute error per prefix is named
(the error's power family); and the round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes


def _gen_linspace_bins(cfg, batch_size, device="cpu"):
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.rand(shape, device=device) < cfg.p_parent
    if cfg.exclusive:
        u = torch.rand(*shape, 1, device=device)
        lo = torch.linspace(0, cfg.p_child * cfg.n_children, cfg.n_children, device=device)
        children = (u >= lo) & (u < lo + cfg.p_child)
    else:
        children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
    children = children & parents.unsqueeze(-1)
    return torch.cat([parents, children.flatten(-2)], dim=-1).float()


def _gen_cumulative_correct(cfg, batch_size, device="cpu"):
    B, N, P, C = batch_size, cfg.n_inst, cfg.n_parents, cfg.n_children
    parents = (torch.rand(B, N, P, device=device) < cfg.p_parent).float()
    if cfg.exclusive:
        u = torch.rand(B, N, P, device=device)
        idx = (u / cfg.p_child).floor().long()
        children = F.one_hot(idx.clamp(max=C), C + 1)[..., :C].float()
    else:
        children = torch.bernoulli(torch.full((B, N, P, C), cfg.p_child, device=device))
    children = children * parents[..., None]
    out = torch.zeros(B, N, P + P * C, device=device)
    out[..., :P] = parents
    out[..., P:] = children.reshape(B, N, P * C)
    return out


def _mat_abs_error(acts, W, b_dec, h, prefix_sizes):
    total = torch.zeros(h.shape[:2], dtype=h.dtype, device=h.device)
    for m in prefix_sizes:
        hm = einops.einsum(acts[..., :m], W[:, :m], "b i m, i m d -> b i d") + b_dec
        total = total + F.l1_loss(hm, h, reduction="none").mean(-1)
    return total


def _mat_rms_error(acts, W, b_dec, h, prefix_sizes):
    total = 0
    for m in prefix_sizes:
        hm = einops.einsum(acts[..., :m], W[:, :m], "b i m, i m d -> b i d") + b_dec
        total = total + F.mse_loss(hm, h, reduction="none").mean(-1).sqrt()
    return total


def _mat_centred_target_correct(acts, W, b_dec, h, prefix_sizes):
    target = h - b_dec[None]
    out = 0
    for m in sorted(prefix_sizes):
        rec = torch.einsum("bim,imd->bid", acts[:, :, :m], W[:, :m, :])
        out = out + ((target - rec) ** 2).sum(-1) / h.shape[-1]
    return out


def test_linspace_bins_named_with_both_causes():
    failure = assert_fails(checks.test_generate_hierarchical_batch, _gen_linspace_bins, "exclusive_edges_shifted")
    text = str(failure)
    assert "linspace" in text and "shifted up by one" in text


def test_gen_cumulative_correct_passes():
    assert_passes(checks.test_generate_hierarchical_batch, _gen_cumulative_correct)


def test_mat_abs_error_named():
    assert_fails(checks.test_matryoshka_loss, _mat_abs_error, "abs_error")


def test_mat_rms_error_named():
    assert_fails(checks.test_matryoshka_loss, _mat_rms_error, "rms")


def test_mat_centred_target_correct_passes():
    assert_passes(checks.test_matryoshka_loss, _mat_centred_target_correct)
