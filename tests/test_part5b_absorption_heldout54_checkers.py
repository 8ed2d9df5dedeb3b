"""Proofs for part 5b after held-out round BA (fresh54).

* generate_hierarchical_batch with exclusive edges built from p_child / p_parent: the same child rates as a draw
  shared with the parent, so `shared_draw`'s exclusive hint names both causes (it named only the shared draw); and
  'no child' drawn as one more equally likely outcome, randint(0, n_children + 1) (`none_as_outcome`, was the rate
  restated).
* absorption_fraction with another default cos_threshold (`default_threshold`): not caught before, since the
  hand-built case, the only call relying on the default, gives the same fractions at 0.3 and 0.5.
* BatchTopKToySAE.encode whose threshold moves in an instance that kept nothing (a 1e9 fill where torch.inf belongs,
  no has_any guard): `silent_instance_moved` (was "only inst 0 is wrong"); eval mode gated by one threshold for
  every instance, here the largest (`shared_threshold`, was "a top-k or another mask applied as well", misleading);
  eval mode with two catalogued slips at once, b_dec not subtracted and relu(pre - threshold) (`two_slips`).
* matryoshka_loss with two catalogued slips at once (`two_slips`, tests/part5b_absorption_slip_pairs.py): b_dec
  dropped and a sum over d_in (was the formula restated); a mean over the prefixes and a sum over d_in (was "divided
  by 3 (n_inst ...)", misleading: the 3 was len(prefix_sizes); now both readings are named).
* the correct variants the round wrote differently from the reference still pass.
"""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes


def _gen(children):
    """generate_hierarchical_batch with the children drawn by `children(cfg, shape, device)` (then ANDed)."""

    def generate(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        kids = children(cfg, shape, device) & parents.unsqueeze(-1)
        return torch.cat([parents, kids.flatten(-2)], dim=-1).float()

    return generate


def _independent(cfg, shape, device):
    return torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child


def _edges(width):
    def children(cfg, shape, device):
        if not cfg.exclusive:
            return _independent(cfg, shape, device)
        u = torch.rand(*shape, 1, device=device)
        lower = torch.arange(cfg.n_children, device=device) * width(cfg)
        return (u >= lower) & (u < lower + width(cfg))

    return children


def _uniform_with_none(cfg, shape, device):
    if not cfg.exclusive:
        return _independent(cfg, shape, device)
    which = torch.randint(0, cfg.n_children + 1, shape, device=device)
    return F.one_hot(which, cfg.n_children + 1)[..., :-1].bool()


def test_exclusive_child_rate_readings():
    failure = assert_fails(
        checks.test_generate_hierarchical_batch, _gen(_edges(lambda c: c.p_child / c.p_parent)), "shared_draw"
    )
    assert "p_child / p_parent" in failure.hint
    assert_fails(checks.test_generate_hierarchical_batch, _gen(_uniform_with_none), "none_as_outcome")


def test_round_generators_pass():
    def bucketized(cfg, shape, device):
        if not cfg.exclusive:
            return _independent(cfg, shape, device)
        edges = torch.arange(1, cfg.n_children + 1, device=device, dtype=torch.float32) * cfg.p_child
        idx = torch.bucketize(torch.rand(shape, device=device), edges, right=True)
        return F.one_hot(idx, cfg.n_children + 1)[..., :-1].bool()

    def any_then_which(cfg, shape, device):
        if not cfg.exclusive:
            return _independent(cfg, shape, device)
        some = torch.rand(shape, device=device) < cfg.n_children * cfg.p_child
        which = torch.randint(0, cfg.n_children, shape, device=device)
        return F.one_hot(which, cfg.n_children).bool() & some.unsqueeze(-1)

    for children in (bucketized, any_then_which):
        assert_passes(checks.test_generate_hierarchical_batch, _gen(children))


def _fraction(default=0.3):
    def fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=default):
        return P.absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold)

    return fraction


def test_default_threshold_named():
    assert_fails(checks.test_absorption_fraction, _fraction(0.5), "default_threshold")


def _cos(W_dec, W_features):
    return einops.einsum(F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1), "i s d, i d f -> i s f")


def _fraction_with(cases_of=None, carried_of=None):
    """absorption_fraction with the cases `cases_of(features, p, kids)` or "carried" `carried_of(acts, carriers,
    cos_p, th)` changed."""

    def fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = _cos(W_dec, W_features)
        ar, out = torch.arange(acts.shape[1]), []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            kids = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            cases = cases_of(features, p, kids) if cases_of else cases
            own = cos[:, :, p].argmax(-1)
            carriers = cos[:, :, p] >= cos_threshold
            carriers[ar, own] = False
            carried = ((acts > 0) & carriers).any(-1)
            carried = carried_of(acts, carriers, cos[:, :, p], cos_threshold) if carried_of else carried
            absorbed = cases & (acts[:, ar, own] == 0) & carried
            out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    return fraction


def test_cases_from_one_child_named():
    first_child = _fraction_with(cases_of=lambda x, p, kids: (x[..., p] > 0) & (x[..., kids[0]] > 0))
    assert_fails(checks.test_absorption_fraction, first_child, "cases_one_child")


def test_hand_built_coincidence_not_named():
    """A projection of the active latents onto the parent (Σ acts · cos ≥ cos_threshold) equals "off = not the most
    active latent" on the hand-built case only: the random case contradicts that reading, which is no longer named."""
    projected = _fraction_with(carried_of=lambda a, c, cos_p, th: (a * cos_p.clamp(min=0)).sum(-1) >= th)
    failure = assert_fails(checks.test_absorption_fraction, projected, "carriers_counted")
    assert "not the most active" not in failure.hint


def test_round_fractions_pass():
    def weighted_carriers(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = einops.einsum(F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1), "i s d, i d f -> i s f")
        out = []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            kids = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            own = cos[:, :, p].argmax(-1)
            carriers = (cos[:, :, p] >= cos_threshold).clone()
            carriers.scatter_(1, own[:, None], False)
            par = acts[:, :, own].diagonal(dim1=1, dim2=2)
            absorbed = cases & (par <= 0) & ((acts * carriers).sum(-1) > 0)
            out.append((absorbed.float().mean(0) / cases.float().mean(0)).nan_to_num(0.0))
        return torch.stack(out, -1).to(acts.dtype)

    assert_passes(checks.test_absorption_fraction, weighted_carriers)


def _encode(update=None, gate=None):
    """BatchTopKToySAE with the threshold update `update(self, acts)` and the eval output `gate(self, h, pre)`."""

    def encode(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        if not self.training:
            return gate(self, h, pre) if gate else pre * (pre > self.threshold[:, None])
        acts = P.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            if update:
                update(self, acts.detach())
            else:
                positive = acts > 0
                low = torch.where(positive, acts, torch.inf).amin(dim=(0, 2))
                moved = self.threshold + self.THRESHOLD_MOMENTUM * (low - self.threshold)
                self.threshold.copy_(torch.where(positive.any(0).any(-1), moved, self.threshold))
        return acts

    return type("EncodeV", (P.BatchTopKToySAE,), {"encode": encode})


def _sentinel(self, acts):
    low = torch.where(acts > 0, acts, 1e9).amin(dim=(0, 2))
    self.threshold.copy_(self.threshold + self.THRESHOLD_MOMENTUM * (low - self.threshold))


def _largest_threshold(self, h, pre):
    return pre * (pre > self.threshold.max())


def _soft_uncentred(self, h, pre):
    x = F.relu(einops.einsum(h, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
    return F.relu(x - self.threshold[:, None])


def test_encode_readings_named():
    assert_fails(checks.test_batchtopk_encode, _encode(update=_sentinel), "silent_instance_moved")
    assert_fails(checks.test_batchtopk_encode, _encode(gate=_largest_threshold), "shared_threshold")
    failure = assert_fails(checks.test_batchtopk_encode, _encode(gate=_soft_uncentred), "two_slips")
    assert "b_dec" in failure.hint and "relu(pre - threshold)" in failure.hint


def test_round_encoders_pass():
    def loop_update(self, acts):
        m = self.THRESHOLD_MOMENTUM
        for i in range(acts.shape[1]):
            kept = acts[:, i][acts[:, i] > 0]
            if kept.numel():
                self.threshold[i].mul_(1 - m).add_(m * kept.min())

    def raw_gate(self, h, pre):
        raw = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        return raw * (raw > self.threshold[:, None])  # equal to the ReLU'd gate: the threshold is >= 0

    assert_passes(checks.test_batchtopk_encode, _encode(update=loop_update))
    assert_passes(checks.test_batchtopk_encode, _encode(gate=raw_gate))


def _mat(per_prefix, combine=lambda total, sizes: total):
    def loss(acts, W, b_dec, h, prefix_sizes):
        total = sum(per_prefix(torch.einsum("bim,imd->bid", acts[..., :m], W[:, :m]), b_dec, h) for m in prefix_sizes)
        return combine(total, prefix_sizes)

    return loss


def test_matryoshka_two_slips_named():
    no_bias_summed = _mat(lambda r, b, h: (r - h).pow(2).sum(-1))
    failure = assert_fails(checks.test_matryoshka_loss, no_bias_summed, "two_slips")
    assert "b_dec" in failure.hint and "summed over d_in" in failure.hint
    averaged_summed = _mat(lambda r, b, h: (r + b - h).pow(2).sum(-1), lambda total, sizes: total / len(sizes))
    failure = assert_fails(checks.test_matryoshka_loss, averaged_summed, "two_slips")
    assert "averaged" in failure.hint and "n_inst" in failure.hint  # both readings of the factor 5/3


def test_round_matryoshka_losses_pass():
    def running(acts, W, b_dec, h, prefix_sizes):
        total, rec, start = 0, b_dec.expand_as(h), 0
        for m in prefix_sizes:
            rec = rec + einops.einsum(acts[..., start:m], W[:, start:m], "b i s, i s d -> b i d")
            total, start = total + ((rec - h) ** 2).mean(-1), m
        return total

    def masked(acts, W, b_dec, h, prefix_sizes):
        idx = torch.arange(acts.shape[-1], device=acts.device)
        terms = [
            F.mse_loss(((acts * (idx < m)).unsqueeze(-2) @ W.unsqueeze(0)).squeeze(-2) + b_dec, h, reduction="none")
            for m in prefix_sizes
        ]
        return torch.stack([t.mean(-1) for t in terms]).sum(0)

    for loss in (running, masked, _mat(lambda r, b, h: (r - (h - b)).norm(dim=-1) ** 2 / math.prod(h.shape[-1:]))):
        assert_passes(checks.test_matryoshka_loss, loss)
