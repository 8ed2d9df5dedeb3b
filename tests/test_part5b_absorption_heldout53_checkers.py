"""Proofs for part 5b after held-out round AZ (fresh53).

* absorption_fraction that reads the parent's latent as off while its activation is below a small cut (acts < 1e-3)
  instead of exactly 0: on the hand-built case with every off parent latent given the activation 1e-4, read back as
  the right rule with "off" = activation <= 1e-4 (`off_below_level`).
* absorption_fraction whose carriers are only the children's own latents (each child's argmax over d_sae) with
  cosine >= cos_threshold: the carrier probe names that set (`carriers_children_latents`), where a one-change
  reading of norm edits that fit the hand-built case by coincidence was reported before.
* absorption_fraction with the parent's latent read as every latent whose best-matching feature is the parent
  (`parent_latents_by_best_feature`, was "no example counts as absorbed" with four other causes).
* BatchTopKToySAE.encode's threshold update read back (tests/part5b_absorption_ema_targets.py): (1 - m)·threshold +
  min_kept (`ema_new_unweighted`, was a list of causes none of which fit), threshold + m·min_kept
  (`ema_old_unweighted`), an instance that kept nothing reset to 0 (`threshold_reset`, was blamed on a missing ReLU),
  the average of each latent's smallest kept activation (`threshold_latent_mins`) and the largest dropped activation
  (`threshold_largest_dropped`); the new readings differ from the right update and from each other on the inputs of
  a first training call.
* generate_hierarchical_batch drawing the exclusive child with torch.multinomial weights [p_child, ..., p_child,
  1 - p_child] (`none_weight`: every child at p / (n·p + 1 - p)), and matryoshka_loss with ‖e‖ / d_in per prefix
  (`norm_over_d_in`): read back, were the formula restated.
* batch_topk that keeps the right entries with values moved by one constant: ranked after a shift pre - pre.min()
  whose values are returned (`values_shifted`), or every kept value doubled (`values_scaled`); were "the kept
  entries don't have their original values" (tests/part5b_absorption_kept_values.py).
* the correct variants the round wrote differently from the reference still pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes


def _cos(W_dec, W_features):
    a = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    b = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    return einops.einsum(a, b, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")


def _encode(rule):
    """BatchTopKToySAE with the threshold update `rule(self, acts, pre, min_kept, has_any)` -> new threshold."""

    def encode(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        if not self.training:
            return pre * (pre > self.threshold[:, None])
        acts = P.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            positive = acts > 0
            min_kept = torch.where(positive, acts, torch.inf).amin(dim=(0, 2))
            self.threshold.copy_(rule(self, acts, pre, min_kept, positive.any(0).any(-1)))
        return acts

    return type("EncodeV", (P.BatchTopKToySAE,), {"encode": encode})


M = P.BatchTopKToySAE.THRESHOLD_MOMENTUM


def _right(self, min_kept, has_any):
    return torch.where(has_any, self.threshold + M * (min_kept - self.threshold), self.threshold)


def _dropped_max(self, acts, pre, min_kept, has_any):
    dropped = (acts == 0) & (pre > 0)
    top = torch.where(dropped, pre, -torch.inf).amax(dim=(0, 2))
    ok = dropped.any(0).any(-1)
    return torch.where(ok, self.threshold + M * (torch.where(ok, top, 0.0) - self.threshold), self.threshold)


def _latent_mins(self, acts, pre, min_kept, has_any):
    per_latent = torch.where(acts > 0, acts, torch.inf).amin(0)
    finite = per_latent.isfinite()
    mean = torch.where(finite, per_latent, 0.0).sum(-1) / finite.sum(-1).clamp(min=1)
    return torch.where(has_any, self.threshold + M * (mean - self.threshold), self.threshold)


ENCODE_BUGS = {
    "ema_new_unweighted": _encode(lambda s, a, p, mk, ok: torch.where(ok, (1 - M) * s.threshold + mk, s.threshold)),
    "ema_old_unweighted": _encode(lambda s, a, p, mk, ok: torch.where(ok, s.threshold + M * mk, s.threshold)),
    "threshold_reset": _encode(lambda s, a, p, mk, ok: torch.where(ok, _right(s, mk, ok), 0.0)),
    "threshold_largest_dropped": _encode(_dropped_max),
    "threshold_latent_mins": _encode(_latent_mins),
}


def test_threshold_update_readings_named():
    for code, cls in ENCODE_BUGS.items():
        assert_fails(checks.test_batchtopk_encode, cls, code)


def test_threshold_readings_separated_on_the_first_call():
    from tests.part5b_absorption_ema_targets import ema_target_candidates

    torch.manual_seed(0)
    th = torch.rand(3) * 0.5
    pre = F.relu(torch.randn(16, 3, 8))
    acts = P.batch_topk(pre, 2)
    acts[:, 0] = 0.0  # an instance that kept nothing: the reset readings show
    right = torch.where(
        (acts > 0).any(2).any(0), th + M * (torch.where(acts > 0, acts, torch.inf).amin((0, 2)) - th), th
    )
    values = [value for _, _, value in ema_target_candidates(th, acts, M, pre)]
    for i, value in enumerate(values):
        assert not torch.allclose(value, right)
        assert all(not torch.allclose(value, other) for other in values[i + 1 :])


def test_right_update_written_differently_passes():
    assert_passes(checks.test_batchtopk_encode, _encode(lambda s, a, p, mk, ok: _right(s, mk, ok)))


def _absorption(off_level=None):
    def fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = _cos(W_dec, W_features)
        n_inst = acts.shape[1]
        out = []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            children = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
            own = cos[:, :, p].argmax(-1)
            carriers = cos[:, :, p] >= cos_threshold
            carriers[torch.arange(n_inst), own] = False
            parent = acts[:, torch.arange(n_inst), own]
            off = parent < off_level if off_level is not None else parent == 0
            absorbed = cases & off & ((acts > 0) & carriers).any(-1)
            out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    return fraction


def _absorption_child_latents(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = _cos(W_dec, W_features)
    n_inst = acts.shape[1]
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        own = cos[:, :, p].argmax(-1)
        child_latent = torch.zeros(cos.shape[:2], dtype=torch.bool, device=cos.device)
        child_latent.scatter_(1, cos[:, :, children].argmax(1), True)
        carriers = (cos[:, :, p] >= cos_threshold) & child_latent
        carriers[torch.arange(n_inst), own] = False
        off = acts[:, torch.arange(n_inst), own] == 0
        absorbed = cases & off & ((acts > 0) & carriers).any(-1)
        out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def _absorption_loop_correct(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    n_inst = acts.shape[1]
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    result = torch.zeros(n_inst, len(parents), dtype=acts.dtype, device=acts.device)
    for i in range(n_inst):
        cos = F.normalize(W_dec[i], dim=-1) @ F.normalize(W_features[i], dim=0)
        for j, p in enumerate(parents):
            children = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[:, i, p] != 0) & (features[:, i, children] != 0).any(-1)
            own = int(cos[:, p].argmax())
            carriers = cos[:, p] >= cos_threshold
            carriers[own] = False
            absorbed = cases & (acts[:, i, own] == 0) & (acts[:, i][:, carriers] > 0).any(-1)
            n = int(cases.sum())
            result[i, j] = absorbed.sum() / n if n else 0.0
    return result


def test_parent_off_below_a_small_cut_named():
    failure = assert_fails(checks.test_absorption_fraction, _absorption(off_level=1e-3), "off_below_level")
    assert "exactly 0" in failure.hint


def test_carriers_only_children_latents_named():
    failure = assert_fails(checks.test_absorption_fraction, _absorption_child_latents, "carriers_children_latents")
    assert "children's own latents" in failure.hint


def _hierarchy_none_weight(cfg, batch_size, device="cpu"):
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.rand(shape, device=device) < cfg.p_parent
    if cfg.exclusive:
        weights = torch.tensor([cfg.p_child] * cfg.n_children + [1 - cfg.p_child], device=device)
        j = torch.multinomial(weights, batch_size * cfg.n_inst * cfg.n_parents, replacement=True).reshape(shape)
        children = F.one_hot(j, cfg.n_children + 1)[..., : cfg.n_children].bool()
    else:
        children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
    children = children & parents.unsqueeze(-1)
    return torch.cat([parents, children.flatten(-2)], -1).float()


def _matryoshka_norm_over_d_in(acts, W_dec_normalized, b_dec, h, prefix_sizes):
    total = 0
    for m in prefix_sizes:
        h_m = einops.einsum(acts[..., :m], W_dec_normalized[:, :m], "b i m, i m d -> b i d") + b_dec
        total = total + (h_m - h).norm(dim=-1) / h.shape[-1]
    return total


def test_none_weight_and_norm_over_d_in_named():
    assert_fails(checks.test_generate_hierarchical_batch, _hierarchy_none_weight, "none_weight")
    assert_fails(checks.test_matryoshka_loss, _matryoshka_norm_over_d_in, "norm_over_d_in")


def _absorption_best_feature_latents(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = _cos(W_dec, W_features)
    best = cos.argmax(-1)
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        mine = best == p
        off = ~((acts > 0) & mine).any(-1)
        carried = ((acts > 0) & (cos[:, :, p] >= cos_threshold) & ~mine).any(-1)
        out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def test_parent_latents_by_best_feature_named():
    assert_fails(checks.test_absorption_fraction, _absorption_best_feature_latents, "parent_latents_by_best_feature")


def _topk_moved(move):
    def batch_topk(pre, k):
        batch = pre.shape[0]
        flat = einops.rearrange(move(pre), "b i d -> i (b d)")
        top = flat.topk(k * batch, dim=-1)
        kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
        return einops.rearrange(kept, "i (b d) -> b i d", b=batch)

    return batch_topk


def test_kept_values_moved_named():
    failure = assert_fails(checks.test_batch_topk, _topk_moved(lambda pre: pre - pre.min()), "values_shifted")
    assert "-pre.min()" in str(failure)
    assert_fails(checks.test_batch_topk, _topk_moved(lambda pre: 2 * pre), "values_scaled")


def test_round_correct_variants_pass():
    assert_passes(checks.test_absorption_fraction, _absorption())
    assert_passes(checks.test_absorption_fraction, _absorption_loop_correct)
    assert_passes(checks.test_batch_topk, P.batch_topk)
