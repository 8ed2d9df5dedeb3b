"""Proofs for section 5b (round AR): absorption_fraction with parent 0's children reused for every parent, with every
feature's own latent excluded from the carriers, with example 0's parent activation for every example (a gather
without expand); generate_hierarchical_batch reading p_child as the no-child probability; encode adding b_enc
after the ReLU and the top-k."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as sol
import tests.part5b_absorption as checks
from tests.part5b_absorption_rule_readbacks import fraction_rule
from tests.proving import assert_fails


def _absorption(rule):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        return fraction_rule(features, acts, W_dec, W_features, list(parent_of), cos_threshold, rule)

    return absorption_fraction


def test_stale_children_is_named():
    failure = assert_fails(checks.test_absorption_fraction, _absorption("stale_children"), code="stale_children")
    assert "parent 0's children" in failure.message


def test_every_features_latent_excluded_is_named():
    impl = _absorption("all_own_excluded")
    failure = assert_fails(checks.test_absorption_fraction, impl, code="children_latents_excluded")
    assert "EVERY feature" in failure.message


def test_gather_without_expand_is_named():
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        Wd = W_dec / W_dec.norm(dim=-1, keepdim=True)
        Wf = W_features / W_features.norm(dim=1, keepdim=True)
        cos = einops.einsum(Wd, Wf, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
        n_inst, out = acts.shape[1], []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            children = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
            lat = cos[:, :, p].argmax(-1)
            carriers = cos[:, :, p] >= cos_threshold
            carriers[torch.arange(n_inst), lat] = False
            par = acts.gather(-1, lat[None, :, None]).squeeze(-1)  # [1, inst]: example 0's value
            absorbed = cases & (par == 0) & ((acts > 0) & carriers).any(-1)
            out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    assert_fails(checks.test_absorption_fraction, absorption_fraction, code="first_example_parent")


def test_p_child_as_none_probability_is_named():
    def generate_hierarchical_batch(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        if cfg.exclusive:
            u = torch.rand(*shape, 1, device=device)
            w = (1 - cfg.p_child) / cfg.n_children
            lower = cfg.p_child + torch.arange(cfg.n_children, device=device) * w
            children = (u >= lower) & (u < lower + w)
        else:
            children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
        children = children & parents.unsqueeze(-1)
        return torch.cat([parents, children.flatten(-2)], dim=-1).float()

    failure = assert_fails(checks.test_generate_hierarchical_batch, generate_hierarchical_batch, code="p_child_as_none")
    assert "NO child" in failure.message


class _BiasAfterTopk(sol.BatchTopKToySAE):
    def encode(self, h):
        x = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
        if not self.training:
            pre = F.relu(x) + self.b_enc
            return pre * (pre > self.threshold[:, None])
        acts = sol.batch_topk(F.relu(x), self.cfg.k) + self.b_enc
        with torch.no_grad():
            pos = acts > 0
            mn = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
            has = pos.any(0).any(-1)
            step = self.THRESHOLD_MOMENTUM * (mn - self.threshold)
            self.threshold.copy_(torch.where(has, self.threshold + step, self.threshold))
        return acts


def test_bias_after_topk_is_named():
    assert_fails(checks.test_batchtopk_encode, _BiasAfterTopk, code="bias_after_topk")
