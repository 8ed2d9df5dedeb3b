"""Proofs for the part 5b checkers from the fresh16 held-out trial, second round: failures that used to carry only
the exercise's formula are named by generic relations (which prefixes the loss sums, the one example the threshold
follows, the eval output as the right one with entries dropped, the child rate of a random pick among firers)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as ref
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _matryoshka(pick):
    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        total = 0
        for m in pick(tuple(prefix_sizes), W_dec_normalized.shape[1]):
            rec = torch.einsum("bis,isd->bid", acts[..., :m], W_dec_normalized[:, :m]) + b_dec
            total = total + (rec - h).pow(2).mean(-1)
        return total

    return matryoshka_loss


def test_matryoshka_first_and_full_fresh16():
    impl = _matryoshka(lambda sizes, d_sae: (sizes[0], d_sae) if len(sizes) > 1 else sizes)
    err = assert_fails(checks.test_matryoshka_loss, impl, "prefix_terms")
    assert "m = 5 of prefix_sizes left out" in err.hint


def test_matryoshka_middle_twice_and_extra_prefix_fresh16():
    impl = _matryoshka(lambda sizes, d_sae: (*sizes, sizes[1], 1) if len(sizes) > 1 else sizes)
    err = assert_fails(checks.test_matryoshka_loss, impl, "prefix_terms")
    assert "m = 5 counted 2 times" in err.hint and "m = 1, which isn't in prefix_sizes" in err.hint


def _encode(bug):
    class SAE(ref.BatchTopKToySAE):
        def encode(self, h):
            pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            if not self.training:
                out = pre * (pre > self.threshold[:, None])
                return ref.batch_topk(out, self.cfg.k) if bug == "eval_both" else out
            acts = ref.batch_topk(pre, self.cfg.k)
            with torch.no_grad():
                src = acts[:1] if bug == "first_example" else acts
                kept = torch.where(src > 0, src, torch.inf).amin(0).amin(-1)
                m = self.THRESHOLD_MOMENTUM
                self.threshold[:] = torch.where(kept.isfinite(), (1 - m) * self.threshold + m * kept, self.threshold)
            return acts

    return SAE


def test_encode_threshold_first_example_fresh16():
    err = assert_fails(checks.test_batchtopk_encode, _encode("first_example"), "threshold_one_example")
    assert "example 0 alone" in err.message


def test_encode_eval_both_fresh16():
    err = assert_fails(checks.test_batchtopk_encode, _encode("eval_both"), "eval_both")
    assert "INSTEAD of batch_topk" in err.hint


def test_generate_random_one_of_firers_fresh16():
    def generate(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
        if cfg.exclusive:
            score = torch.where(children, torch.rand(children.shape, device=device), -1.0)
            children = children & F.one_hot(score.argmax(-1), cfg.n_children).bool()
        children = children & parents[..., None]
        return torch.cat([parents, children.flatten(-2)], -1).float()

    err = assert_fails(checks.test_generate_hierarchical_batch, generate, "exclusive_random_kept")
    assert "kept at random" in err.hint


def test_absorption_carriers_child_best_fresh16():
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = F.normalize(W_dec, dim=-1) @ F.normalize(W_features, dim=1)  # [inst d_sae feats]
        best, out = cos.argmax(-1), []
        for p in [i for i, q in enumerate(parent_of) if q == -1]:
            kids = [i for i, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            lat = cos[..., p].argmax(-1)
            carriers = torch.isin(best, torch.tensor(kids)) & (torch.arange(acts.shape[-1])[None] != lat[:, None])
            par = acts.gather(2, lat[None, :, None].expand(acts.shape[0], -1, 1)).squeeze(-1)
            absorbed = cases & (par == 0) & ((acts > 0) & carriers).any(-1)
            out.append(absorbed.float().sum(0) / cases.float().sum(0).clamp_min(1))
        return torch.stack(out, -1)

    err = assert_fails(checks.test_absorption_fraction, absorption_fraction, "carriers_child_best")
    assert "best-matching feature is a child" in err.hint


def test_encode_eval_gate_subset_fresh16():
    class SAE(ref.BatchTopKToySAE):
        def encode(self, h):
            pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            if not self.training:
                return pre * (pre > 1.5 * self.threshold[:, None])  # a gate twice as strict as asked
            return ref.BatchTopKToySAE.encode(self, h)

    err = assert_fails(checks.test_batchtopk_encode, SAE, "eval_dropped")
    assert "possible causes" in err.hint
