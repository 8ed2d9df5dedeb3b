"""Proofs for part 5b's diagnoses added after the fresh24 held-out measurement: exclusive children whose rates given
the parent depend on the child's index (reported per index, every one should be p_child), and absorption carriers
also required to beat the children's cosine (named by the carrier probe)."""

from __future__ import annotations

import einops
import torch

import tests.part5b_absorption as checks
from tests.part5b_absorption_draws import rates_by_child_index
from tests.proving import assert_fails
from utils.part5b_absorption import HierarchyConfig


def _narrowing_bins(cfg, batch_size, device="cpu"):
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.rand(shape, device=device) < cfg.p_parent
    if cfg.exclusive:
        u = torch.rand(*shape, 1, device=device)
        lower = torch.arange(cfg.n_children, device=device) * cfg.p_child
        children = (u >= lower) & (u < lower + cfg.p_child * (1 - lower))  # widths p·(1 - j·p)
    else:
        children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
    children = children & parents.unsqueeze(-1)
    return torch.cat([parents, children.flatten(-2)], dim=-1).float()


def test_exclusive_rates_falling_with_the_child_index():
    failure = assert_fails(checks.test_generate_hierarchical_batch, _narrowing_bins, "child_rate_by_index")
    assert "falls with the child's index" in failure.hint and "child 0: " in failure.hint
    assert "p_child = 26%" in failure.hint and "Possible causes" in failure.hint


def test_rates_by_child_index_silent_when_every_child_is_right():
    cfg = HierarchyConfig(n_inst=2, n_parents=3, n_children=3, p_parent=0.3, p_child=0.3, exclusive=True, d_in=16)
    counts = torch.full((2, 3, 3), 10000)
    assert rates_by_child_index(torch.full((2, 3, 3), 0.3), counts, cfg) is None
    mixed = torch.tensor([0.3, 0.2, 0.1]).expand(2, 3, 3).clone()
    mixed[0, 0] = 0.3  # one (instance, parent) differs from the others: not a pattern in the index alone
    assert rates_by_child_index(mixed, counts, cfg) is None


def _carriers_beat_children(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = einops.einsum(
        W_dec / W_dec.norm(dim=-1, keepdim=True),
        W_features / W_features.norm(dim=1, keepdim=True),
        "i s d, i d f -> i s f",
    )
    ar = torch.arange(acts.shape[1])
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        lat = cos[:, :, p].argmax(-1)
        carrier = (cos[:, :, p] >= cos_threshold) & (cos[:, :, p] > cos[:, :, kids].amax(-1))
        carrier[ar, lat] = False
        hit = cases & (acts[:, ar, lat] == 0) & ((acts > 0) & carrier).any(-1)
        out.append(hit.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def test_carriers_required_to_beat_the_children():
    failure = assert_fails(checks.test_absorption_fraction, _carriers_beat_children, "carriers_beat_children")
    assert "not counted that should be" in failure.message and "any of its children" in failure.hint


def _absorption_feature_index(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    Wd = W_dec / W_dec.norm(dim=-1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", Wd, W_features / W_features.norm(dim=1, keepdim=True))
    out = []
    for p in [i for i, q in enumerate(parent_of) if q == -1]:
        ch = [i for i, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., ch].sum(-1) > 0)
        pl = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[:, p] = False  # the parent's FEATURE index, not its latent
        off = acts[:, torch.arange(acts.shape[1]), pl] == 0
        absorbed = cases & off & ((acts > 0) & carriers).any(-1)
        out.append(absorbed.float().sum(0) / cases.float().sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def test_absorption_feature_index_excluded_from_the_carriers():
    failure = assert_fails(checks.test_absorption_fraction, _absorption_feature_index, "feature_index_latent")
    assert "latent number p" in failure.message and "a feature index used where a latent index" in failure.hint
