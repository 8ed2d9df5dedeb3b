"""Proofs for the part 5b checkers from the fresh8 held-out trial (the others are in test_part5b_absorption_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import einops
import pytest
import torch

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.part5b_absorption_diagnosis import ref_absorption
from tests.part5b_absorption_mistakes import absorption_variant
from tests.proving import assert_fails


def _absorption(bug):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        n_inst, ar = acts.shape[1], torch.arange(acts.shape[1])
        dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        feat = W_features / W_features.norm(dim=0 if bug == "feat_dim0" else 1, keepdim=True)
        cos = einops.einsum(dec, feat, "i s d, i d f -> i s f")
        res = torch.zeros(n_inst, parent_of.count(-1))
        for j, p in enumerate([q for q, r in enumerate(parent_of) if r == -1]):
            kids = [c for c, r in enumerate(parent_of) if r == p]
            cases = (features[..., p] > 0) & (features[..., kids].sum(-1) > 0)
            lat = cos[:, p].argmax(-1) if bug == "latent_row" else cos[:, :, p].argmax(-1)
            lat = lat[:1].expand(n_inst) if bug == "inst0_latent" else lat
            off = acts[:, ar, lat] == 0
            carriers = cos[:, :, p] >= cos_threshold
            carriers[ar, lat] = False
            if bug == "sum":
                absorbed = (cases & off).float() * ((acts > 0) & carriers).sum(-1).float()
            elif bug == "top":
                top = acts.argmax(-1)
                absorbed = (cases & off & carriers[ar[None].expand_as(top), top] & (acts.amax(-1) > 0)).float()
            else:
                absorbed = (cases & off & ((acts > 0) & carriers).any(-1)).float()
            res[:, j] = absorbed.sum(0) / cases.sum(0).clamp_min(1)
        return res

    return absorption_fraction


@pytest.mark.parametrize(
    "bug, code",
    [
        ("sum", "carriers_counted"),
        ("top", "activation_values"),
        ("latent_row", "latent_order"),
        ("inst0_latent", "instance_latent"),  # fresh11: instance 0's parent latent used for every instance
        ("feat_dim0", "feature_norms"),
    ],
)
def test_absorption_fresh8(bug, code):
    assert_fails(checks.test_absorption_fraction, _absorption(bug), code)


def test_absorption_probes_leave_the_reference_unchanged():
    """Every probe is an exact invariance of the reference on the random inputs (else it could never fire)."""
    import tests.part5b_absorption_diagnosis as diag

    inputs = checks._random_absorption_inputs("cpu")
    seen = []
    real_fail = diag.fail
    try:
        diag.fail = lambda *a, **k: seen.append(k.get("code"))
        diag.absorption_probes(lambda f, a, d, w, po, cos_threshold: ref_absorption(f, a, d, w, po), inputs)
    finally:
        diag.fail = real_fail
    assert seen == []


def test_hand_built_case_has_two_carriers_case():
    case = checks._absorption_case("cpu")
    assert not torch.allclose(
        _absorption("sum")(*case, checks.ABS_PARENT_OF), P.absorption_fraction(*case, checks.ABS_PARENT_OF)
    )


def _gen_divided(cfg, batch_size, device="cpu"):
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.rand(shape, device=device) < cfg.p_parent
    p = cfg.p_child / cfg.p_parent
    if cfg.exclusive:
        u = torch.rand(*shape, 1, device=device)
        lower = torch.arange(cfg.n_children, device=device) * p
        children = (u >= lower) & (u < lower + p)
    else:
        children = torch.rand(*shape, cfg.n_children, device=device) < p
    children = children & parents.unsqueeze(-1)
    return torch.cat([parents, children.flatten(-2)], dim=-1).float()


def test_child_rate_divided_lists_both_causes():
    failure = assert_fails(checks.test_generate_hierarchical_batch, _gen_divided, "shared_draw")
    assert "two possible causes" in failure.hint and "p_child / p_parent" in failure.hint


class _WhereSwapped(P.BatchTopKToySAE):
    def encode(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        if not self.training:
            pre = torch.relu(pre)
            return pre * (pre > self.threshold[:, None])
        acts = P.batch_topk(torch.relu(pre), self.cfg.k)
        with torch.no_grad():
            pos = acts > 0
            target = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
            new = self.threshold + self.THRESHOLD_MOMENTUM * (target - self.threshold)
            self.threshold.copy_(torch.where(pos.any(0).any(-1), self.threshold, new))
        return acts


def test_encode_where_swapped():
    assert_fails(checks.test_batchtopk_encode, _WhereSwapped, "where_swapped")


def _matryoshka_empty(acts, W, b, h, sizes):
    return sum(
        (einops.einsum(acts[..., :m], W[:, :m], "b i m, i m d -> b i d") + b - h).pow(2).mean(-1) for m in (0, *sizes)
    )


def test_matryoshka_empty_prefix():
    assert_fails(checks.test_matryoshka_loss, _matryoshka_empty, "empty_prefix")


# ---- fresh9 held-out trial -------------------------------------------------------------------------------------
def _gen_fresh9(bug):
    def generate_hierarchical_batch(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < (0.25 if bug == "p_parent_fixed" else cfg.p_parent)
        pc = 0.3 if bug == "p_child_fixed" else cfg.p_child
        if cfg.exclusive:
            u = torch.rand(*shape, 1, device=device)
            lower = torch.arange(cfg.n_children, device=device) * pc
            children = (u >= lower) & (u < lower + pc)
            if bug == "last_rest":
                children[..., -1] = (u >= lower[-1]).squeeze(-1)
        else:
            children = torch.rand(*shape, cfg.n_children, device=device) < pc
        children = children & parents.unsqueeze(-1)
        return torch.cat([parents, children.flatten(-2)], dim=-1).float()

    return generate_hierarchical_batch


@pytest.mark.parametrize(
    "bug, code",
    [
        ("last_rest", "exclusive_last_rest"),
        ("p_parent_fixed", "p_parent_ignored"),
        ("p_child_fixed", "p_child_ignored"),
    ],
)
def test_generate_fresh9(bug, code):
    assert_fails(checks.test_generate_hierarchical_batch, _gen_fresh9(bug), code)


def _absorption_fresh9(bug):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        n_inst, ar = acts.shape[1], torch.arange(acts.shape[1])
        dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        cos = einops.einsum(dec, W_features / W_features.norm(dim=1, keepdim=True), "i s d, i d f -> i s f")
        res = torch.zeros(n_inst, parent_of.count(-1))
        for j, p in enumerate([q for q, r in enumerate(parent_of) if r == -1]):
            kids = [c for c, r in enumerate(parent_of) if r == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            lat = cos[:, :, p].argmax(-1)
            score = einops.einsum(dec, dec[ar, lat], "i s d, i d -> i s") if bug == "latent_row" else cos[:, :, p]
            carriers = score >= cos_threshold
            carriers[ar, lat] = False
            absorbed = (acts[:, ar, lat] == 0) & ((acts > 0) & carriers).any(-1)
            if bug == "all_rows":  # numerator over the examples whose parent latent is off, cases or not
                absorbed = absorbed & (features[..., p] > 0)
            elif bug != "numerator":
                absorbed = absorbed & cases
            res[:, j] = absorbed.sum(0) / cases.sum(0).clamp_min(1)
        return res

    return absorption_fraction


@pytest.mark.parametrize(
    "bug, code",
    [("numerator", "numerator_not_cases"), ("latent_row", "carrier_by_latent"), ("all_rows", "non_cases")],
)
def test_absorption_fresh9(bug, code):
    """all_rows (the parent without a child counted as absorbed) is unlisted: the non-cases probe names it."""
    assert_fails(checks.test_absorption_fraction, _absorption_fresh9(bug), code)


def test_absorption_non_cases_probe():
    """Extra examples that are not cases change a numerator that isn't restricted to the cases."""
    import tests.part5b_absorption_diagnosis as diag

    inputs = checks._random_absorption_inputs("cpu")
    with pytest.raises(Exception) as err:
        diag.absorption_probes(_absorption_fresh9("numerator"), inputs)
    assert getattr(err.value, "code", None) == "non_cases"


def _fresh9_encode(bug):
    class BatchTopKToySAE(P.BatchTopKToySAE):
        def encode(self, h):
            pre = torch.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            if not self.training:
                return pre * (pre > self.threshold[:, None])
            acts = P.batch_topk(pre, self.cfg.k)
            with torch.no_grad():
                pos = acts > 0
                target = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
                new = self.threshold + self.THRESHOLD_MOMENTUM * (target - self.threshold)
                start = target if bug == "warm_start" else target / 2  # the first step special-cased
                new = torch.where(self.threshold == 0, start, new)
                self.threshold.copy_(torch.where(pos.any(0).any(-1), new, self.threshold))
            return acts

    return BatchTopKToySAE


def test_encode_fresh_start():
    assert_fails(checks.test_batchtopk_encode, _fresh9_encode("warm_start"), "warm_start")
    assert_fails(checks.test_batchtopk_encode, _fresh9_encode("half"), "fresh_threshold")


@pytest.mark.parametrize(
    "kwargs, code", [({"combine": "or"}, "or_not_and"), ({"cases_rule": "one"}, "exactly_one_child")]
)
def test_absorption_fresh10(kwargs, code):
    """OR where AND was meant in the numerator, and cases needing exactly one child."""

    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        return absorption_variant(features, acts, W_dec, W_features, parent_of, cos_threshold, **kwargs)

    assert_fails(checks.test_absorption_fraction, absorption_fraction, code)
