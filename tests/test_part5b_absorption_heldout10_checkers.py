"""Proofs for the part 5b checkers: one child sharing its parent's uniform, carriers read by cosine rank (the
second-best latent only) and a duplicated-latents probe that blames an over-count only when the fraction grew,
the same latents kept in every example by batch_topk, several EMA steps per training call and a target read at
the top-k cut in encode, and a matryoshka prefix whose decoder rows come from the wrong end."""

from __future__ import annotations

import pytest
import torch

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.part5b_absorption_diagnosis import implied_target_note
from tests.part5b_absorption_fractions import copies_verdict
from tests.proving import assert_fails


# ---------------------------------------------------------------- generate_hierarchical_batch
def _generate_child0_shares(cfg, batch_size, device="cpu"):
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    r = torch.rand(*shape, 1 + cfg.n_children, device=device)
    parents = r[..., 0] < cfg.p_parent
    if cfg.exclusive:
        u = torch.rand(*shape, 1, device=device)
        lo = torch.arange(cfg.n_children, device=device) * cfg.p_child
        children = (u >= lo) & (u < lo + cfg.p_child)
    else:  # child 0 compares the parent's uniform r[..., 0] with p_child
        children = torch.cat([r[..., :1], r[..., 2:]], -1) < cfg.p_child
    children = children & parents[..., None]
    return torch.cat([parents, children.flatten(-2)], -1).float()


def test_generate_child_sharing_parent_draw_named():
    err = assert_fails(checks.test_generate_hierarchical_batch, _generate_child0_shares, "child_shares_parent_draw")
    assert "child 0 of every parent" in err.hint and "same uniform" in err.hint


# ---------------------------------------------------------------- absorption_fraction
def _absorption_second_only(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = torch.nn.functional.normalize(W_dec, dim=-1) @ torch.nn.functional.normalize(W_features, dim=1)
    ar, out = torch.arange(acts.shape[1]), []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        lat = cos[..., p].argmax(-1)
        second = cos[..., p].topk(2, dim=-1).indices[:, 1]
        carriers = torch.zeros_like(cos[..., p], dtype=torch.bool)
        carriers[ar, second] = True
        carriers &= cos[..., p] >= cos_threshold
        off = acts[:, ar, lat] == 0
        out.append((cases & off & ((acts > 0) & carriers).any(-1)).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def test_absorption_second_best_carrier_named():
    err = assert_fails(checks.test_absorption_fraction, _absorption_second_only, "carriers_second_only")
    assert "second-best-cosine latent counted as carrier" in err.hint


def test_duplicated_latents_blame_over_count_only_when_it_grew():
    base = torch.tensor([[0.2, 0.5], [0.1, 0.0]])
    assert copies_verdict(base, base * 2, "over")[0] == "carriers_counted"
    code, hint = copies_verdict(base, base * 0, "over")
    assert code == "latent_copies" and "Possible causes" in hint and ".sum" not in hint


# ---------------------------------------------------------------- batch_topk
def _batch_topk_same_latents(pre, k):
    idx = pre.sum(0).topk(k, dim=-1).indices  # [inst k]
    mask = torch.zeros(pre.shape[1:], dtype=torch.bool, device=pre.device).scatter(-1, idx, True)
    return pre * mask


def test_batch_topk_same_latents_every_example_named():
    err = assert_fails(checks.test_batch_topk, _batch_topk_same_latents, "same_latents_every_example")
    assert "largest sum over the batch" in err.hint


# ---------------------------------------------------------------- BatchTopKToySAE.encode
def _encode(bug):
    class BatchTopKToySAE(P.BatchTopKToySAE):
        def encode(self, h):
            pre = torch.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
            if not self.training:
                return torch.where(pre > self.threshold[None, :, None], pre, torch.zeros_like(pre))
            acts = P.batch_topk(pre, self.cfg.k)
            m = self.THRESHOLD_MOMENTUM
            with torch.no_grad():
                if bug == "per_example":
                    for a in acts:
                        low = torch.where(a > 0, a, torch.inf).amin(-1)
                        ok = torch.isfinite(low)
                        self.threshold[ok] += m * (low[ok] - self.threshold[ok])
                elif bug == "twice":
                    low = torch.where(acts > 0, acts, torch.inf).amin(dim=(0, 2))
                    for _ in range(2):
                        self.threshold.copy_(
                            torch.where(
                                torch.isfinite(low), self.threshold + m * (low - self.threshold), self.threshold
                            )
                        )
                else:  # the k·batch-th largest relu(pre): 0 where fewer are positive
                    flat = pre.transpose(0, 1).flatten(1)
                    cut = flat.topk(self.cfg.k * pre.shape[0], dim=-1).values[:, -1]
                    self.threshold += m * (cut - self.threshold)
            return acts

    return BatchTopKToySAE


@pytest.mark.parametrize(
    "bug, code",
    [
        ("per_example", "threshold_steps_per_batch"),
        ("twice", "threshold_steps_per_batch"),
        ("cut", "threshold_cut_value"),
    ],
)
def test_batchtopk_encode_threshold_fresh18(bug, code):
    assert_fails(checks.test_batchtopk_encode, _encode(bug), code)


def test_implied_target_lists_repeated_steps():
    before, after = torch.tensor([0.2]), torch.tensor([0.3])
    acts = torch.tensor([[[0.5, 0.0]], [[0.7, 0.0]]])
    note = implied_target_note(before, after, 0.01, acts, torch.tensor([0.5]))
    assert "stepped more than once per batch" in note


# ---------------------------------------------------------------- matryoshka_loss
def _matryoshka(end):
    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        total = 0
        for m in prefix_sizes:
            a, W = (
                (acts[..., :m], W_dec_normalized[:, -m:])
                if end == "rows"
                else (acts[..., -m:], W_dec_normalized[:, :m])
            )
            total = total + (torch.einsum("bis,isd->bid", a, W) + b_dec - h).pow(2).mean(-1)
        return total

    return matryoshka_loss


@pytest.mark.parametrize("end", ["rows", "acts"])
def test_matryoshka_prefix_ends_mismatched(end):
    err = assert_fails(checks.test_matryoshka_loss, _matryoshka(end), "prefix_ends_mismatched")
    assert ("W_dec[:, -m:]" in err.hint) == (end == "rows")


def test_product_of_fractions_named_not_over_count():
    base = torch.tensor([[0.2, 0.5], [0.1, 0.0]])
    code, hint = copies_verdict(base, base * 2, "over", product=base.clone())
    assert code == "fraction_product" and "both hold" in hint
    assert copies_verdict(base, base * 2, "over", product=base + 0.1)[0] == "carriers_counted"


def _absorption_product(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    from tests.part5b_absorption_fractions import product_fraction

    return product_fraction(features, acts, W_dec, W_features, parent_of).to(acts.dtype)


def test_absorption_product_of_fractions_named():
    err = assert_fails(checks.test_absorption_fraction, _absorption_product, "fraction_product")
    assert "product of two separate fractions" in err.hint
