"""Proofs for the part 5b checkers: the reference and correct variants pass, realistic mistakes fail right.

Function exercises get plain functions; for `encode` the variants subclass the reference
`BatchTopKToySAE` and override only `encode` (the checker grafts exactly that method).
"""

from __future__ import annotations

import math
from dataclasses import replace

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.checking as checking
import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_not_done, assert_passes, stub


def _with(**methods) -> type:
    return type("VariantBatchTopKToySAE", (P.BatchTopKToySAE,), methods)


# --------------------------------------------------------------------------------------------
# generate_hierarchical_batch
# --------------------------------------------------------------------------------------------
def _gen_bernoulli(cfg, batch_size, device="cpu"):
    """Correct: bernoulli draws; exclusive children from a categorical over (n_children + 'none')."""
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.bernoulli(torch.full(shape, cfg.p_parent, device=device))
    if cfg.exclusive:
        probs = torch.tensor([cfg.p_child] * cfg.n_children + [1 - cfg.n_children * cfg.p_child], device=device)
        pick = torch.multinomial(probs.clamp_min(0), math.prod(shape), replacement=True).reshape(shape)
        children = F.one_hot(pick, cfg.n_children + 1)[..., : cfg.n_children].float()
    else:
        children = torch.bernoulli(torch.full((*shape, cfg.n_children), cfg.p_child, device=device))
    children = children * parents[..., None]
    return torch.cat([parents, einops.rearrange(children, "b i p c -> b i (p c)")], dim=-1)


def _gen_loop(cfg, batch_size, device="cpu"):
    """Correct: loops over parents, draws on the CPU with a Categorical, moves to the device at the end."""
    out = torch.zeros(batch_size, cfg.n_inst, cfg.n_features)
    for p in range(cfg.n_parents):
        on = torch.rand(batch_size, cfg.n_inst) < cfg.p_parent
        out[:, :, p] = on.float()
        if cfg.exclusive:
            probs = torch.tensor([cfg.p_child] * cfg.n_children + [1 - cfg.n_children * cfg.p_child])
            choice = torch.distributions.Categorical(probs=probs.clamp_min(0)).sample((batch_size, cfg.n_inst))
        for c, f in enumerate(cfg.children(p)):
            fires = (choice == c) if cfg.exclusive else (torch.rand(batch_size, cfg.n_inst) < cfg.p_child)
            out[:, :, f] = torch.where(on, fires.float(), 0.0)
    return out.to(device)


def _gen_floor(cfg, batch_size, device="cpu"):
    """Correct: exclusive child index = floor(u / p_child) when it is < n_children."""
    parents = torch.rand(batch_size, cfg.n_inst, cfg.n_parents, device=device) < cfg.p_parent
    if cfg.exclusive:
        u = torch.rand(batch_size, cfg.n_inst, cfg.n_parents, device=device)
        idx = torch.floor(u / cfg.p_child).long()
        children = idx[..., None] == torch.arange(cfg.n_children, device=device)
    else:
        children = torch.rand(batch_size, cfg.n_inst, cfg.n_parents, cfg.n_children, device=device) < cfg.p_child
    children = torch.logical_and(children, parents.unsqueeze(-1))
    return torch.cat([parents.float(), children.flatten(2).float()], -1)


def _gen_bug(
    condition=True,
    parent_from_child=False,
    exclusive="right",
    share_inst=False,
    share_batch=False,
    share_parents=False,
    share_siblings=False,
    flip=False,
    layout="pc",
    child_p="p_child",
    out="float",
):
    """The reference written with one knob turned to a realistic mistake."""

    def generate(cfg, batch_size, device="cpu"):
        b = 1 if share_batch else batch_size
        i = 1 if share_inst else cfg.n_inst
        n_par = 1 if share_parents else cfg.n_parents

        def draw(*shape):
            return torch.rand(b, i, *shape, device=device).expand(batch_size, cfg.n_inst, *shape[:-1], -1)

        def less(u, p):
            return u > p if flip else u < p

        parents = less(draw(n_par).expand(batch_size, cfg.n_inst, cfg.n_parents), cfg.p_parent)
        pc = {"double": cfg.p_child * cfg.p_parent, "low": 0.8 * cfg.p_child}.get(child_p, cfg.p_child)
        # "always_exclusive": exclusive children even when cfg.exclusive is False
        mode = "right" if exclusive == "always_exclusive" else (exclusive if cfg.exclusive else "ignored")
        if mode == "right":
            u = draw(cfg.n_parents, 1)
            lower = torch.arange(cfg.n_children, device=device) * pc
            children = (u >= lower) & (u < lower + pc)
        elif mode == "ignored":
            if share_siblings:
                children = less(draw(cfg.n_parents, 1), pc).expand(-1, -1, -1, cfg.n_children)
            else:
                children = less(draw(cfg.n_parents, cfg.n_children), pc)
        elif mode == "split":  # pick a child uniformly, then let it fire with p_child
            pick = torch.randint(cfg.n_children, (batch_size, cfg.n_inst, cfg.n_parents), device=device)
            fire = torch.rand(batch_size, cfg.n_inst, cfg.n_parents, device=device) < pc
            children = F.one_hot(pick, cfg.n_children).bool() & fire[..., None]
        elif mode == "always_one":  # always exactly one child when the parent fires
            pick = torch.randint(cfg.n_children, (batch_size, cfg.n_inst, cfg.n_parents), device=device)
            children = F.one_hot(pick, cfg.n_children).bool()
        elif mode == "first":  # independent draws, keep only the first firing child
            draws = torch.rand(batch_size, cfg.n_inst, cfg.n_parents, cfg.n_children, device=device) < pc
            first = draws & (draws.cumsum(-1) == 1)
            children = first
        if condition:
            children = children & parents[..., None]
        if parent_from_child:
            parents = parents | children.any(-1)
        flat = children.transpose(-1, -2).flatten(-2) if layout == "cp" else children.flatten(-2)
        x = torch.cat([parents, flat], dim=-1)
        return {"float": x.float(), "bool": x, "long": x.long(), "magnitude": x * torch.rand(x.shape, device=device)}[
            out
        ]

    return generate


GEN_GOOD = [P.generate_hierarchical_batch, _gen_bernoulli, _gen_loop, _gen_floor]
GEN_BUGS = {
    "child_without_parent": _gen_bug(condition=False),
    "parent_frequency": _gen_bug(condition=False, parent_from_child=True),
    "siblings_together": _gen_bug(exclusive="ignored"),
    "exclusive_split": _gen_bug(exclusive="split"),
    "exclusive_always_one": _gen_bug(exclusive="always_one"),
    "shared_over_instances": _gen_bug(share_inst=True),
    "rand_gt_p": _gen_bug(flip=True),
    "dtype": _gen_bug(out="bool"),
    "child_layout": _gen_bug(layout="cp"),
    "child_double_conditioned": _gen_bug(child_p="double"),
    "siblings_dependent": _gen_bug(exclusive="always_exclusive"),
    "parents_dependent": _gen_bug(share_parents=True),
    "shared_over_batch": _gen_bug(share_batch=True),
    "not_binary": _gen_bug(out="magnitude"),
    "exclusive_one_kept": _gen_bug(exclusive="first"),
    "child_frequency": _gen_bug(child_p="low"),
}


@pytest.mark.parametrize("fn", GEN_GOOD)
def test_generate_hierarchical_batch_variants(fn):
    assert_passes(checks.test_generate_hierarchical_batch, fn)


@pytest.mark.parametrize("code", list(GEN_BUGS))
def test_generate_hierarchical_batch_bugs(code):
    assert_fails(checks.test_generate_hierarchical_batch, GEN_BUGS[code], code)


def test_generate_hierarchical_batch_more_bugs():
    assert_fails(checks.test_generate_hierarchical_batch, _gen_bug(out="long"), "dtype")
    # the tolerances are tight enough to see probabilities off by 0.05
    for field, code in (("p_parent", "parent_frequency"), ("p_child", "child_frequency")):

        def shifted(cfg, batch_size, device="cpu", field=field):
            return P.generate_hierarchical_batch(
                replace(cfg, **{field: getattr(cfg, field) + 0.05}), batch_size, device
            )

        assert_fails(checks.test_generate_hierarchical_batch, shifted, code)

    def swapped(cfg, batch_size, device="cpu"):
        return P.generate_hierarchical_batch(
            replace(cfg, p_parent=cfg.p_child, p_child=cfg.p_parent), batch_size, device
        )

    assert_fails(checks.test_generate_hierarchical_batch, swapped, "swapped_probabilities")
    # siblings sharing one draw (non-exclusive config): together with p_child instead of p_child²
    assert_fails(checks.test_generate_hierarchical_batch, _gen_bug(share_siblings=True), "siblings_dependent")
    assert_not_done(checks.test_generate_hierarchical_batch, stub)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_generate_hierarchical_batch_no_false_failures(monkeypatch, seed):
    """The checker seeds itself; under other seeds the reference and a variant must still pass."""
    monkeypatch.setattr(checking, "CHECK_SEED", seed)
    assert_passes(checks.test_generate_hierarchical_batch, P.generate_hierarchical_batch)
    assert_passes(checks.test_generate_hierarchical_batch, _gen_bernoulli)


def test_generate_hierarchical_batch_uses_the_device():
    def cpu_only(cfg, batch_size, device="cpu"):
        return P.generate_hierarchical_batch(cfg, batch_size, "cpu")

    assert_passes(checks.test_generate_hierarchical_batch, cpu_only, device="cpu")
    if torch.cuda.is_available():
        assert_fails(checks.test_generate_hierarchical_batch, cpu_only, "device", device="cuda")
        assert_passes(checks.test_generate_hierarchical_batch, P.generate_hierarchical_batch, device="cuda")


# --------------------------------------------------------------------------------------------
# absorption_fraction
# --------------------------------------------------------------------------------------------
def _abs_loop(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    """Correct: F.cosine_similarity, loops over instances and parents, nan_to_num for empty cases."""
    n_inst = acts.shape[1]
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    out = torch.zeros(n_inst, len(parents), device=acts.device)
    for i in range(n_inst):
        cos = F.cosine_similarity(W_dec[i][:, :, None], W_features[i][None], dim=1)  # [d_sae feats]
        for j, p in enumerate(parents):
            kids = [f for f, q in enumerate(parent_of) if q == p]
            lat = int(cos[:, p].argmax())
            others = cos[:, p] >= cos_threshold
            others[lat] = False
            case = (features[:, i, p] == 1) & (features[:, i, kids].sum(-1) > 0)
            absorbed = case & (acts[:, i, lat] <= 0) & (acts[:, i, others] > 0).any(-1)
            out[i, j] = torch.nan_to_num(absorbed.sum() / case.sum(), nan=0.0)
    return out


def _abs_vectorised(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    """Correct: F.normalize, a parent/child matrix, torch.where for empty cases."""
    parent_of_t = torch.tensor(parent_of, device=acts.device)
    parents = (parent_of_t == -1).nonzero().squeeze(-1)
    is_child = (parent_of_t[None, :] == parents[:, None]).float()  # [parents feats]
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1))
    cos_p = cos[:, :, parents]  # [inst d_sae parents]
    lat = cos_p.argmax(1)  # [inst parents]
    carrier = (cos_p >= cos_threshold) & (
        torch.arange(acts.shape[-1], device=acts.device)[None, :, None] != lat[:, None]
    )
    has_child = torch.einsum("bif,pf->bip", features, is_child) > 0
    cases = (features[:, :, parents] > 0) & has_child  # [batch inst parents]
    lat_act = torch.gather(acts, 2, lat.unsqueeze(0).expand(acts.shape[0], -1, -1))  # [batch inst parents]
    carried = torch.einsum("bis,isp->bip", (acts > 0).float(), carrier.float()) > 0
    absorbed = (cases & (lat_act == 0) & carried).float().sum(0)
    n = cases.float().sum(0)
    return torch.where(n > 0, absorbed / n.clamp_min(1), torch.zeros_like(n))


def _abs_keep_parent_latent(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    """Correct although it doesn't exclude the parent's own latent from the carriers: that latent must be off,
    so it can never be an *active* carrier. (The "forgot to exclude it" mistake is therefore unobservable.) The
    eps keeps a dead latent's cosine 0 (round AX: without it, 0/0 = NaN is argmax's pick, code dead_latent)."""
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    W_feat_hat = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    cos = einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
    cols = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids].amax(-1) > 0)
        lat = cos[:, :, p].argmax(-1)
        off = acts[:, torch.arange(acts.shape[1]), lat] == 0
        carried = ((acts > 0) & (cos[:, :, p] >= cos_threshold)).any(-1)
        cols.append((cases & off & carried).float().sum(0) / cases.float().sum(0).clamp(min=1))
    return torch.stack(cols, -1)


def _abs_bug(kind):
    """The reference with one rule changed."""

    def fn(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        dec = W_dec if kind in ("raw", "raw_dec") else W_dec / W_dec.norm(dim=-1, keepdim=True)
        feat = W_features if kind in ("raw", "raw_feat") else W_features / W_features.norm(dim=1, keepdim=True)
        cos = torch.einsum("isd,idf->isf", dec, feat)
        if kind == "abs":
            cos = cos.abs()
        cols = []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            kids = [f for f, q in enumerate(parent_of) if q == p]
            parent_on = features[..., p] > 0
            cases = parent_on & (features[..., kids] > 0).any(-1)
            # by_activation: the most active latent of each example instead of the best-aligned decoder row
            by_act = kind == "by_activation"
            lat = acts.argmax(-1) if by_act else cos[:, :, p].argmax(-1).expand(acts.shape[0], -1)
            if kind == "by_mean_activation":  # the latent most active, on average, where the parent fires
                lat = (acts * parent_on[..., None]).sum(0).argmax(-1).expand(acts.shape[0], -1)
            carriers = (cos[:, :, p] > cos_threshold) if kind == "strict" else (cos[:, :, p] >= cos_threshold)
            carriers = carriers.expand(acts.shape[0], -1, -1).clone()
            carriers.scatter_(-1, lat.unsqueeze(-1), False)
            off = acts.gather(-1, lat.unsqueeze(-1)).squeeze(-1) == 0
            carried = ((acts > 0) & carriers).any(-1)
            if kind == "any_active":  # any other active latent, whatever its direction
                carried = ((acts > 0) & (torch.arange(acts.shape[-1]) != lat.unsqueeze(-1))).any(-1)
            if kind == "parent_on_too":
                off = torch.ones_like(off)
            absorbed = cases & off & (True if kind == "no_carrier" else carried)
            denom = parent_on if kind in ("denominator", "parent_only") else cases
            if kind == "batch":
                cols.append(absorbed.float().sum(0) / acts.shape[0])
                continue
            if kind == "count":
                cols.append(absorbed.float().sum(0))
                continue
            if kind == "parent_only":  # no "with a child" condition anywhere
                absorbed = parent_on & off & carried
            if kind == "nan":
                cols.append(absorbed.float().sum(0) / denom.float().sum(0))
            else:
                cols.append(absorbed.float().sum(0) / denom.float().sum(0).clamp_min(1))
        return torch.stack(cols, -1)

    return fn


ABS_GOOD = [P.absorption_fraction, _abs_loop, _abs_vectorised, _abs_keep_parent_latent]
ABS_BUGS = {
    "denominator": _abs_bug("denominator"),
    "no_carrier": _abs_bug("no_carrier"),
    "abs_cosine": _abs_bug("abs"),
    "unnormalised": _abs_bug("raw"),
    "all_zero": _abs_bug("by_activation"),
    "parent_latent_by_activation": _abs_bug("by_mean_activation"),
    "strict_threshold": _abs_bug("strict"),
    "nan_no_cases": _abs_bug("nan"),
    "any_active_carrier": _abs_bug("any_active"),
    "parent_latent_on": _abs_bug("parent_on_too"),
    "batch_denominator": _abs_bug("batch"),
    "count": _abs_bug("count"),
}


@pytest.mark.parametrize("fn", ABS_GOOD)
def test_absorption_fraction_variants(fn):
    assert_passes(checks.test_absorption_fraction, fn)


@pytest.mark.parametrize("code", list(ABS_BUGS))
def test_absorption_fraction_bugs(code):
    assert_fails(checks.test_absorption_fraction, ABS_BUGS[code], code)


def test_absorption_fraction_more_bugs():
    assert_fails(checks.test_absorption_fraction, _abs_bug("raw_dec"), "unnormalised")
    assert_fails(checks.test_absorption_fraction, _abs_bug("raw_feat"), "unnormalised")
    assert_fails(checks.test_absorption_fraction, _abs_bug("parent_only"), "denominator")
    assert_not_done(checks.test_absorption_fraction, stub)


def test_absorption_hand_built_case_by_hand():
    """The reference gives the fractions counted by hand from the example types (see ABS_TYPES)."""
    case = checks._absorption_case("cpu")
    got = P.absorption_fraction(*case, checks.ABS_PARENT_OF)
    # P0: absorbed types 0, 7, 12, 15 among types 0, 1, 3, 4, 5, 6, 7, 12, 13, 15. P1: absorbed type 8 among 8, 9, 12.
    expected = torch.tensor([[7 / 18, 2 / 4], [7 / 17, 1 / 5], [6 / 14, 0.0]])
    torch.testing.assert_close(got, expected)
    strict = _abs_bug("strict")(*case, checks.ABS_PARENT_OF, 0.5)  # `half` (cosine exactly 0.5) no longer counts
    torch.testing.assert_close(strict, torch.tensor([[5 / 18, 2 / 4], [5 / 17, 1 / 5], [5 / 14, 0.0]]))


# --------------------------------------------------------------------------------------------
# batch_topk
# --------------------------------------------------------------------------------------------
def _topk_threshold(pre, k):
    """Correct: the (k·batch)-th largest value per instance as a threshold, then a mask."""
    batch = pre.shape[0]
    flat = pre.transpose(0, 1).flatten(1)  # [inst batch*d_sae]
    kth = flat.sort(dim=-1, descending=True).values[:, k * batch - 1]
    return pre * (pre >= kth[None, :, None])


def _topk_loop(pre, k):
    """Correct: a loop over instances with torch.where."""
    out = []
    for i in range(pre.shape[1]):
        x = pre[:, i]
        idx = x.flatten().topk(k * pre.shape[0]).indices
        mask = torch.zeros(x.numel(), dtype=torch.bool, device=pre.device)
        mask[idx] = True
        out.append(torch.where(mask.view_as(x), x, torch.zeros_like(x)))
    return torch.stack(out, dim=1)


def _topk_permute(pre, k):
    """Correct: permute, reshape, topk, scatter, and permute back."""
    b, i, s = pre.shape
    flat = pre.permute(1, 0, 2).reshape(i, b * s)
    vals, idx = flat.topk(k * b, dim=1)
    kept = flat.new_zeros(flat.shape).scatter(1, idx, vals)
    return kept.reshape(i, b, s).permute(1, 0, 2)


def _topk_bug(kind):
    def fn(pre, k):
        b, i, s = pre.shape
        if kind == "per_example":
            top = pre.topk(k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        if kind == "mixed_instances":
            flat = pre.flatten()
            top = flat.topk(k * b * i)
            return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(pre)
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        n = k if kind == "k_not_k_batch" else k * b
        top = flat.topk(n, dim=-1, largest=kind != "smallest")
        if kind == "indices":
            return top.indices
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, top.indices, True)
        if kind == "mask":
            return einops.rearrange(mask, "i (b s) -> b i s", b=b)
        if kind == "ones":
            return einops.rearrange(mask.float(), "i (b s) -> b i s", b=b)
        kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
        if kind == "axis_order":
            return kept.reshape(b, i, s)
        if kind == "detached":
            kept = kept.detach()
        return einops.rearrange(kept, "i (b s) -> b i s", b=b)

    return fn


TOPK_GOOD = [P.batch_topk, _topk_threshold, _topk_loop, _topk_permute]
TOPK_BUGS = {
    "per_example": _topk_bug("per_example"),
    "mixed_instances": _topk_bug("mixed_instances"),
    "k_not_k_batch": _topk_bug("k_not_k_batch"),
    "smallest": _topk_bug("smallest"),
    "axis_order": _topk_bug("axis_order"),
    "indices": _topk_bug("indices"),
    "mask": _topk_bug("mask"),
    "values_changed": _topk_bug("ones"),
    "no_grad": _topk_bug("detached"),
}


@pytest.mark.parametrize("fn", TOPK_GOOD)
def test_batch_topk_variants(fn):
    assert_passes(checks.test_batch_topk, fn)


@pytest.mark.parametrize("code", list(TOPK_BUGS))
def test_batch_topk_bugs(code):
    assert_fails(checks.test_batch_topk, TOPK_BUGS[code], code)


def test_batch_topk_more_bugs():
    def reshape_without_transpose(pre, k):  # groups memory chunks of [batch inst d_sae] as "instances"
        b, i, s = pre.shape
        flat = pre.reshape(i, b * s)
        top = flat.topk(k * b, dim=-1)
        return torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(b, i, s)

    assert_fails(checks.test_batch_topk, reshape_without_transpose, "axis_order")
    assert_not_done(checks.test_batch_topk, stub)


# --------------------------------------------------------------------------------------------
# BatchTopKToySAE.encode
# --------------------------------------------------------------------------------------------
def _encode(
    sub_b_dec=True,
    add_b_enc=True,
    relu=True,
    update="min",
    ema="right",
    train_in_eval=False,
    eval_mode="threshold",
    no_grad=True,
    shared=False,
    skip_empty=True,
):
    """The reference encode with one knob turned."""

    def encode(self, h):
        x = h - self.b_dec if sub_b_dec else h
        pre = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        if add_b_enc:
            pre = pre + self.b_enc
        if relu:
            pre = F.relu(pre)
        if not self.training or eval_mode == "always_threshold":
            if eval_mode == "batch":
                return P.batch_topk(pre, self.cfg.k)
            th = self.threshold.mean() if shared else self.threshold[:, None]
            acts = pre * (pre > th)
            if not train_in_eval:
                return acts
        else:
            acts = P.batch_topk(pre, self.cfg.k)
        if update == "none":
            return acts
        src = acts if not no_grad else acts.detach()
        positive = src > 0
        has_any = positive.any(0).any(-1) | (not skip_empty)
        if update == "min":
            stat = torch.where(positive, src, torch.inf).amin(dim=(0, 2))
            if shared:
                stat = torch.where(positive, src, torch.inf).amin().expand(self.cfg.n_inst)
        elif update == "max":
            stat = src.amax(dim=(0, 2))
        elif update == "mean":
            stat = src.sum((0, 2)) / positive.sum((0, 2))
        elif update == "zeros":
            stat = src.amin(dim=(0, 2))
        m = self.THRESHOLD_MOMENTUM
        if ema == "right":
            new = self.threshold + m * (stat - self.threshold)
        elif ema == "swapped":
            new = (1 - m) * stat + m * self.threshold
        else:  # replaced
            new = stat
        new = torch.where(has_any, new, self.threshold)
        if no_grad:
            with torch.no_grad():
                self.threshold.copy_(new)
        else:
            self.threshold.copy_(new)
        return acts

    return encode


def _encode_loop(self, h):
    """Correct: matmul per instance, own top-k, a loop for the threshold, buffer reassigned."""
    pre = torch.stack([(h[:, i] - self.b_dec[i]) @ self.W_enc[i] + self.b_enc[i] for i in range(h.shape[1])], 1)
    pre = pre.clamp(min=0)
    if not self.training:
        return torch.where(pre > self.threshold.view(1, -1, 1), pre, torch.zeros_like(pre))
    b = pre.shape[0]
    flat = pre.transpose(0, 1).reshape(pre.shape[1], -1)
    top = flat.topk(self.cfg.k * b, dim=-1)
    acts = torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(pre.shape[1], b, -1).transpose(0, 1)
    new = self.threshold.clone()
    for i in range(pre.shape[1]):
        kept = acts[:, i][acts[:, i] > 0].detach()
        if kept.numel():
            new[i] = (1 - self.THRESHOLD_MOMENTUM) * new[i] + self.THRESHOLD_MOMENTUM * kept.min()
    self.threshold = new
    return acts


def _encode_inplace(self, h):
    """Correct: batch_topk from the module, in-place EMA with lerp_, mask by multiplication."""
    pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
    if self.training:
        acts = batch_topk(pre, self.cfg.k)  # noqa: F821 (resolved to the reference by the checker)
        with torch.no_grad():
            kept_min = acts.masked_fill(acts <= 0, float("inf")).flatten(start_dim=2).amin(-1).amin(0)
            live = torch.isfinite(kept_min)
            self.threshold[live] = self.threshold[live].lerp(kept_min[live], self.THRESHOLD_MOMENTUM)
        return acts
    return pre * (pre > self.threshold.unsqueeze(-1)).float()


def _encode_needing_stubbed_topk():
    """Correct encode, defined where `batch_topk` is a stub (an unfinished earlier exercise)."""
    namespace = {"batch_topk": stub, "torch": torch, "F": F}
    exec(  # the learner's notebook globals, simulated
        "def encode(self, h):\n"
        "    pre = F.relu(torch.einsum('bid,ids->bis', h - self.b_dec, self.W_enc) + self.b_enc)\n"
        "    if not self.training:\n"
        "        return pre * (pre > self.threshold[:, None])\n"
        "    acts = batch_topk(pre, self.cfg.k)\n"
        "    with torch.no_grad():\n"
        "        low = torch.where(acts > 0, acts, torch.inf).amin((0, 2))\n"
        "        step = torch.nan_to_num(self.THRESHOLD_MOMENTUM * (low - self.threshold), posinf=0.0)\n"
        "        self.threshold += step\n"
        "    return acts\n",
        namespace,
    )
    return namespace["encode"]


ENCODE_GOOD = [P.BatchTopKToySAE.encode, _encode(), _encode_loop, _encode_inplace, _encode_needing_stubbed_topk()]
ENCODE_BUGS = {
    "no_b_dec": _encode(sub_b_dec=False),
    "no_relu": _encode(relu=False),
    "threshold_not_updated": _encode(update="none"),
    "threshold_max": _encode(update="max"),
    "threshold_mean": _encode(update="mean"),
    "threshold_zeros": _encode(update="zeros"),
    "ema_swapped": _encode(ema="swapped"),
    "no_ema": _encode(ema="replaced"),
    "updated_in_eval": _encode(train_in_eval=True),
    "eval_uses_batch": _encode(eval_mode="batch"),
    "shared_threshold": _encode(shared=True),
    "threshold_grad": _encode(no_grad=False),
    "uses_threshold": _encode(eval_mode="always_threshold"),
    "no_b_enc": _encode(add_b_enc=False),
    "threshold_inf": _encode(skip_empty=False),
}


@pytest.mark.parametrize("fn", ENCODE_GOOD)
def test_batchtopk_encode_variants(fn):
    assert_passes(checks.test_batchtopk_encode, _with(encode=fn))


@pytest.mark.parametrize("code", list(ENCODE_BUGS))
def test_batchtopk_encode_bugs(code):
    assert_fails(checks.test_batchtopk_encode, _with(encode=ENCODE_BUGS[code]), code)


def test_batchtopk_encode_more_bugs():
    def shared_in_eval_only(self, h):
        if self.training:
            return P.BatchTopKToySAE.encode(self, h)
        pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        return pre * (pre > self.threshold[0])

    def per_example_topk(self, h):
        if not self.training:
            return P.BatchTopKToySAE.encode(self, h)
        pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        top = pre.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        with torch.no_grad():
            self.threshold += 0.01 * (torch.where(acts > 0, acts, torch.inf).amin((0, 2)) - self.threshold)
        return acts

    assert_fails(checks.test_batchtopk_encode, _with(encode=shared_in_eval_only), "shared_threshold")
    assert_fails(checks.test_batchtopk_encode, _with(encode=per_example_topk), "per_example")
    assert_fails(checks.test_batchtopk_encode, type("NoEncode", (), {}), "missing")
    assert_not_done(checks.test_batchtopk_encode, _with(encode=stub))


def test_batchtopk_encode_inputs_keep_a_positive_activation():
    """Every training batch of the check keeps a positive activation in every instance (min_kept is defined),
    except the `silent` one, where instance 0 (only) keeps nothing; and instance 0 has fewer positive
    pre-activations than k·batch (so a missing ReLU changes the output)."""
    sae = checks._batchtopk_sae(P.BatchTopKToySAE, torch.device("cpu"))
    first, more, _ = checks._encode_inputs()
    for h in [first, *more]:
        assert (sae.encode(h) > 0).any(-1).any(0).all()
    silent = more[0].clone()
    silent[:, 0] = sae.b_dec.detach()[0]
    assert not (sae.encode(silent)[:, 0] > 0).any() and (sae.encode(silent)[:, 1:] > 0).any(-1).any(0).all()
    assert int((checks._pre(sae, first) > 0)[:, 0].sum()) < checks.K * first.shape[0]


def test_absorption_random_inputs_are_clear_of_ties():
    """No cosine within 1e-3 of a threshold the check uses, and a clear best latent per parent: a correct
    implementation that rounds differently (another normalisation, eps or order) gets the same answer."""
    features, acts, W_dec, W_feat, parent_of = checks._random_absorption_inputs(torch.device("cpu"))
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_feat, dim=1))
    cos_p = cos[:, :, [f for f, q in enumerate(parent_of) if q == -1]]
    for threshold in (0.3, 0.6):
        assert (cos_p - threshold).abs().min() > 1e-3
    top2 = cos_p.topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 1e-3
    # the check is not trivial: some fractions are non-zero and they differ between instances
    out = P.absorption_fraction(features, acts, W_dec, W_feat, parent_of)
    assert (out > 0).sum() >= 4 and out.std() > 0.01


# --------------------------------------------------------------------------------------------
# matryoshka_loss
# --------------------------------------------------------------------------------------------
def _mat_mse(acts, W_dec_normalized, b_dec, h, prefix_sizes):
    """Correct: F.mse_loss per prefix, torch.stack and sum."""
    losses = []
    for m in prefix_sizes:
        h_m = torch.einsum("bis,isd->bid", acts[..., :m], W_dec_normalized[:, :m]) + b_dec
        losses.append(F.mse_loss(h_m, h, reduction="none").mean(-1))
    return torch.stack(losses).sum(0)


def _mat_incremental(acts, W_dec_normalized, b_dec, h, prefix_sizes):
    """Correct: the reconstruction grows group by group (each group adds its latents' contributions)."""
    rec = b_dec.expand_as(h)
    total, start = 0.0, 0
    for m in prefix_sizes:
        rec = rec + einops.einsum(acts[..., start:m], W_dec_normalized[:, start:m], "b i s, i s d -> b i d")
        total = total + ((rec - h) ** 2).sum(-1) / h.shape[-1]
        start = m
    return total


def _mat_masks(acts, W_dec_normalized, b_dec, h, prefix_sizes):
    """Correct: one masked matmul per prefix, with matmul instead of einsum."""
    idx = torch.arange(acts.shape[-1], device=acts.device)
    out = torch.zeros(h.shape[:2], device=h.device)
    for m in prefix_sizes:
        masked = acts * (idx < m)
        h_m = (masked.transpose(0, 1) @ W_dec_normalized).transpose(0, 1) + b_dec
        out += (h_m - h).square().mean(dim=2)
    return out


def _mat_prefix_b_dec(acts, W_dec_normalized, b_dec, h, prefix_sizes):
    """b_dec added only to the full reconstruction, not to the smaller prefixes."""
    total = 0
    for m in prefix_sizes:
        h_m = einops.einsum(acts[..., :m], W_dec_normalized[:, :m], "b i s, i s d -> b i d")
        if m == prefix_sizes[-1]:
            h_m = h_m + b_dec
        total = total + (h_m - h).pow(2).mean(-1)
    return total


def _mat_bug(kind):
    def fn(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        d_sae = acts.shape[-1]
        sizes = list(prefix_sizes)[:-1] if kind == "skipped_last" else list(prefix_sizes)
        total, prev = torch.zeros(h.shape[:2]), 0
        for m in sizes:
            lo, hi = {
                "all_latents": (0, d_sae),
                "last_latents": (d_sae - m, d_sae),
                "groups": (prev, m),
                "off_by_one": (0, m - 1),
            }.get(kind, (0, m))
            prev = m
            h_m = einops.einsum(acts[..., lo:hi], W_dec_normalized[:, lo:hi], "b i s, i s d -> b i d")
            if kind != "no_b_dec":
                h_m = h_m + b_dec
            err = h_m - h
            per = {
                "sum_d_in": lambda e: e.pow(2).sum(-1),
                "norm": lambda e: e.norm(dim=-1),
                "mean_then_square": lambda e: e.mean(-1) ** 2,
            }.get(kind, lambda e: e.pow(2).mean(-1))
            total = total + per(err)
        if kind == "mean_over_prefixes":
            total = total / len(sizes)
        if kind == "detached":
            total = total.detach()
        if kind == "batch_mean":
            total = total.mean(0)
        return total

    return fn


MAT_GOOD = [P.matryoshka_loss, _mat_mse, _mat_incremental, _mat_masks]
MAT_BUGS = {
    "no_b_dec": _mat_bug("no_b_dec"),
    "prefix_b_dec": _mat_prefix_b_dec,
    "all_latents": _mat_bug("all_latents"),
    "last_latents": _mat_bug("last_latents"),
    "groups": _mat_bug("groups"),
    "mean_over_prefixes": _mat_bug("mean_over_prefixes"),
    "skipped_last": _mat_bug("skipped_last"),
    "sum_d_in": _mat_bug("sum_d_in"),
    "norm": _mat_bug("norm"),
    "mean_then_square": _mat_bug("mean_then_square"),
    "off_by_one": _mat_bug("off_by_one"),
    "no_grad": _mat_bug("detached"),
    "shape": _mat_bug("batch_mean"),
}


@pytest.mark.parametrize("fn", MAT_GOOD)
def test_matryoshka_loss_variants(fn):
    assert_passes(checks.test_matryoshka_loss, fn)


@pytest.mark.parametrize("code", list(MAT_BUGS))
def test_matryoshka_loss_bugs(code):
    assert_fails(checks.test_matryoshka_loss, MAT_BUGS[code], code)


def test_matryoshka_loss_stub():
    assert_not_done(checks.test_matryoshka_loss, stub)


# --------------------------------------------------------------------------------------------
# Every checker: the reference passes (speed is measured by `make bench`, not asserted here)
# --------------------------------------------------------------------------------------------
REFERENCE = [
    (checks.test_generate_hierarchical_batch, P.generate_hierarchical_batch),
    (checks.test_absorption_fraction, P.absorption_fraction),
    (checks.test_batch_topk, P.batch_topk),
    (checks.test_batchtopk_encode, P.BatchTopKToySAE),
    (checks.test_matryoshka_loss, P.matryoshka_loss),
]


@pytest.mark.parametrize(("check", "impl"), REFERENCE)
def test_reference_passes(check, impl):
    assert_passes(check, impl)


def test_checkers_leave_the_learners_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    checks.test_generate_hierarchical_batch(P.generate_hierarchical_batch, device="cpu")
    assert torch.equal(torch.rand(3), expected)
