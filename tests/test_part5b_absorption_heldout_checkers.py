"""More proofs for the part 5b checkers: mistakes and correct variants from a held-out trial (mistakes nobody
had listed), each named by its own code. The main proofs are in test_part5b_absorption_checkers.py."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.part5b_absorption_mistakes import RANDOM_ONLY_MISTAKES, absorption_variant
from tests.proving import assert_fails, assert_passes


# --------------------------------------------------------------------------------------------
# generate_hierarchical_batch
# --------------------------------------------------------------------------------------------
def _gen(parents_mask="index", exclusive="right", reuse_u=False, parents_last=False):
    def generate(cfg, batch_size, device="cpu"):
        u_par = torch.rand(batch_size, cfg.n_inst, cfg.n_parents, device=device)
        parents = u_par < cfg.p_parent
        if cfg.exclusive and exclusive == "right":
            u = u_par[..., None] if reuse_u else torch.rand(*u_par.shape, 1, device=device)
            lower = torch.arange(cfg.n_children, device=device) * cfg.p_child
            children = (u >= lower) & (u < lower + cfg.p_child)
        else:
            children = torch.rand(*u_par.shape, cfg.n_children, device=device) < cfg.p_child
            if cfg.exclusive:  # "last": keep the last child that fired in independent draws
                children = children & (children.flip(-1).cumsum(-1).flip(-1) == 1)
        flat = children.flatten(-2)
        mask = (
            parents.repeat(1, 1, cfg.n_children)
            if parents_mask == "repeat"
            else parents.repeat_interleave(cfg.n_children, -1)
        )
        flat = flat & mask
        parts = [flat, parents] if parents_last else [parents, flat]
        return torch.cat(parts, -1).float()

    return generate


def _gen_multinomial(cfg, batch_size, device="cpu"):
    """Correct: multinomial over [p, ..., p, 1 - n·p] for exclusive children; bernoulli elsewhere."""
    parents = torch.bernoulli(torch.full((batch_size, cfg.n_inst, cfg.n_parents), cfg.p_parent, device=device))
    if cfg.exclusive:
        probs = torch.tensor([cfg.p_child] * cfg.n_children + [1 - cfg.n_children * cfg.p_child], device=device)
        pick = torch.multinomial(probs, batch_size * cfg.n_inst * cfg.n_parents, replacement=True)
        children = F.one_hot(pick.view(parents.shape), cfg.n_children + 1)[..., : cfg.n_children].float()
    else:
        children = torch.bernoulli(torch.full((*parents.shape, cfg.n_children), cfg.p_child, device=device))
    children = children * parents[..., None]
    return torch.cat([parents, einops.rearrange(children, "b i p c -> b i (p c)")], -1)


def test_generate_heldout_variants():
    assert_passes(checks.test_generate_hierarchical_batch, _gen_multinomial)
    assert_passes(checks.test_generate_hierarchical_batch, _gen())


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("child_layout", _gen(parents_mask="repeat")),
        ("parents_last", _gen(parents_last=True)),
        ("shared_draw", _gen(reuse_u=True)),
        ("exclusive_one_kept", _gen(exclusive="last")),
    ],
)
def test_generate_heldout_bugs(code, impl):
    assert_fails(checks.test_generate_hierarchical_batch, impl, code)


# --------------------------------------------------------------------------------------------
# absorption_fraction
# --------------------------------------------------------------------------------------------
def _abs(**kwargs):
    def fn(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        return absorption_variant(features, acts, W_dec, W_features, parent_of, cos_threshold, **kwargs)

    return fn


def _abs_fixed_threshold(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    return P.absorption_fraction(features, acts, W_dec, W_features, parent_of)  # cos_threshold not passed on


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("normalise_axis", _abs(normalise="dec_axis")),
        ("normalise_axis", _abs(normalise="feat_axis")),
        ("all_children", _abs(cases_rule="all")),
        ("parent_latent_argmin", _abs(parent_latent="argmin")),
        ("threshold_ignored", _abs_fixed_threshold),
    ],
)
def test_absorption_heldout_bugs(code, impl):
    assert_fails(checks.test_absorption_fraction, impl, code)


def test_absorption_random_only_mistakes_are_separable():
    """The mistakes named from the random inputs differ there from the reference and from each other."""
    features, acts, W_dec, W_feat, parent_of = checks._random_absorption_inputs(torch.device("cpu"))
    expected = P.absorption_fraction(features, acts, W_dec, W_feat, parent_of)
    values = [
        absorption_variant(features, acts, W_dec, W_feat, parent_of, 0.3, **kw) for kw, _, _ in RANDOM_ONLY_MISTAKES
    ]
    for i, value in enumerate(values):
        assert not torch.allclose(value, expected, rtol=1e-4, atol=1e-5)
        for other in values[i + 1 :]:
            assert not torch.allclose(value, other, rtol=1e-4, atol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------------------------
# batch_topk
# --------------------------------------------------------------------------------------------
def _topk(pattern_in="i (b s)", pattern_out="i (b s)", budget=None, per_example_mixed=False):
    def fn(pre, k):
        b, i, s = pre.shape
        if per_example_mixed:  # top k·n_inst of each example over (inst, d_sae)
            flat = einops.rearrange(pre, "b i s -> b (i s)")
            top = flat.topk(k * i, dim=-1)
            return einops.rearrange(
                torch.zeros_like(flat).scatter(-1, top.indices, top.values), "b (i s) -> b i s", i=i
            )
        flat = einops.rearrange(pre, f"b i s -> {pattern_in}")
        n = {"d_sae": k * s, "plus_one": k * b + 1}.get(budget, k * b)
        top = flat.topk(n, dim=-1)
        kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
        return einops.rearrange(kept, f"{pattern_out} -> b i s", b=b)

    return fn


def test_batch_topk_heldout_variants():
    assert_passes(checks.test_batch_topk, _topk("i (s b)", "i (s b)"))


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("axis_order", _topk("i (b s)", "i (s b)")),
        ("off_by_one", _topk(budget="plus_one")),
        ("budget", _topk(budget="d_sae")),
        ("mixed_instances", _topk(per_example_mixed=True)),
    ],
)
def test_batch_topk_heldout_bugs(code, impl):
    assert_fails(checks.test_batch_topk, impl, code)


# --------------------------------------------------------------------------------------------
# BatchTopKToySAE.encode
# --------------------------------------------------------------------------------------------
def _enc(soft_eval=False, min_of_pre=False, per_example=False, geq=False):
    def encode(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        if not self.training:
            if soft_eval:
                return F.relu(pre - self.threshold[:, None])
            return pre * (pre >= self.threshold[:, None] if geq else pre > self.threshold[:, None])
        acts = P.batch_topk(pre, self.cfg.k)
        src = (pre if min_of_pre else acts).detach()
        pos = src > 0
        if per_example:
            low = torch.where(pos, src, torch.inf).amin(-1)
            low = torch.where(torch.isfinite(low), low, torch.nan).nanmean(0)
        else:
            low = torch.where(pos, src, torch.inf).amin(dim=(0, 2))
        new = self.threshold + self.THRESHOLD_MOMENTUM * (low - self.threshold)
        with torch.no_grad():
            self.threshold.copy_(torch.where(pos.any(0).any(-1), new, self.threshold))
        return acts

    return type("HeldoutBatchTopKToySAE", (P.BatchTopKToySAE,), {"encode": encode})


def test_batchtopk_encode_heldout_variants():
    assert_passes(checks.test_batchtopk_encode, _enc(geq=True))


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("soft_threshold", _enc(soft_eval=True)),
        ("threshold_from_pre", _enc(min_of_pre=True)),
        ("threshold_per_example", _enc(per_example=True)),
    ],
)
def test_batchtopk_encode_heldout_bugs(code, impl):
    assert_fails(checks.test_batchtopk_encode, impl, code)


# --------------------------------------------------------------------------------------------
# matryoshka_loss
# --------------------------------------------------------------------------------------------
def _rec(acts, W, lo, hi):
    return torch.einsum("bis,isd->bid", acts[..., lo:hi], W[:, lo:hi])


def _mat_residual(acts, W, b, h, sizes):
    """Correct (the same sum): each group of latents reconstructs what the previous prefix left."""
    total, target, prev = torch.zeros(h.shape[:2]), h - b, 0
    for m in sizes:
        rec = _rec(acts, W, prev, m)
        total = total + (rec - target).pow(2).mean(-1)
        target, prev = target - rec, m
    return total


def _mat(kind):
    def fn(acts, W, b, h, sizes):
        d_sae, total, end = acts.shape[-1], torch.zeros(h.shape[:2]), 0
        for m in sizes:
            end = min(end + m, d_sae) if kind == "cumulative_sizes" else m
            err = _rec(acts, W, 0, end) + b - (h - b if kind == "b_dec_twice" else h)
            if kind == "mean_all":
                total = total + F.mse_loss(err, torch.zeros_like(err))
            else:
                total = total + (m / d_sae if kind == "weighted" else 1.0) * err.pow(2).mean(-1)
        return total

    return fn


def test_matryoshka_loss_heldout_variants():
    assert_passes(checks.test_matryoshka_loss, _mat_residual)


@pytest.mark.parametrize("code", ["weighted", "mean_all", "cumulative_sizes", "b_dec_twice"])
def test_matryoshka_loss_heldout_bugs(code):
    assert_fails(checks.test_matryoshka_loss, _mat(code), code)


# --------------------------------------------------------------------------------------------
# Fresh held-out round: mistakes named by measured properties (layout, family independence, negative inputs)
# --------------------------------------------------------------------------------------------
def _gen_fresh(bug=None):
    def generate(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        if cfg.exclusive:
            u_shape = (batch_size, cfg.n_inst, 1, 1) if bug == "u_shared" else (*shape, 1)
            idx = (torch.rand(u_shape, device=device).expand(*shape, 1).squeeze(-1) / cfg.p_child).floor().long()
            children = F.one_hot(idx.clamp(max=cfg.n_children), cfg.n_children + 1)[..., : cfg.n_children].bool()
        else:
            children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
        if bug != "no_and":
            children = children & parents.unsqueeze(-1)
        if bug == "per_family":
            return torch.cat([parents.unsqueeze(-1), children], -1).flatten(-2).float()
        return torch.cat([parents, children.flatten(-2)], -1).float()

    return generate


def test_generate_fresh_variants():
    assert_passes(checks.test_generate_hierarchical_batch, _gen_fresh())


@pytest.mark.parametrize(
    ("code", "bug"),
    [("layout", "per_family"), ("families_dependent", "u_shared"), ("child_without_parent", "no_and")],
)
def test_generate_fresh_bugs(code, bug):
    assert_fails(checks.test_generate_hierarchical_batch, _gen_fresh(bug), code)


@pytest.mark.parametrize(
    ("code", "kwargs"),
    [
        ("cases_two_children", {"cases_rule": "two"}),
        ("children_of_all", {"children_rule": "all"}),
        ("carrier_by_child", {"carriers": "child_cosine"}),
        ("parent_not_top", {"off_rule": "not_top"}),
        ("parent_not_top", {"off_rule": "not_top_incl"}),
        ("pooled_instances", {"pooled": True}),
    ],
)
def test_absorption_fresh_bugs(code, kwargs):
    assert_fails(checks.test_absorption_fraction, _abs(**kwargs), code)


def _abs_two_children(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    """A learner's own code with `sum(-1) > 1` for the cases (not the catalogue's builder)."""
    dec, feat = F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1)
    cos = torch.einsum("isd,idf->isf", dec, feat)
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & ((features[..., kids] > 0).sum(-1) > 1)
        latent = cos[:, :, p].argmax(-1)
        off = acts[:, torch.arange(acts.shape[1]), latent] == 0
        absorbed = cases & off & ((acts > 0) & (cos[:, :, p] >= cos_threshold)).any(-1)
        out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1)


def test_absorption_fresh_learner_code():
    assert_fails(checks.test_absorption_fraction, _abs_two_children, "cases_two_children")


def _topk_fresh(bug=None):
    def fn(pre, k):
        if bug == "dim0":  # the top k examples of every latent
            idx = pre.topk(k, dim=0).indices
            return torch.zeros_like(pre).scatter(0, idx, pre.gather(0, idx))
        b = pre.shape[1] if bug == "batch_from_inst" else pre.shape[0]
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        idx = (flat.abs() if bug == "abs" else flat).topk(k * b, -1).indices
        kept = torch.zeros_like(flat).scatter(-1, idx, flat.gather(-1, idx))
        out = einops.rearrange(kept, "i (b s) -> b i s", b=pre.shape[0])
        return F.relu(out) if bug == "relu" else out

    return fn


def _topk_mask_permute(pre, k):
    """Correct: a boolean mask scattered per instance, permute/reshape, multiplied (keeps negative entries)."""
    b, i, s = pre.shape
    flat = pre.permute(1, 0, 2).reshape(i, -1)
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, flat.topk(k * b, -1).indices, True)
    return (flat * mask).reshape(i, b, s).permute(1, 0, 2)


def test_batch_topk_fresh_variants():
    assert_passes(checks.test_batch_topk, _topk_mask_permute)
    assert_passes(checks.test_batch_topk, _topk_fresh())


@pytest.mark.parametrize(
    ("code", "bug"),
    [("abs_topk", "abs"), ("relu_inside", "relu"), ("budget", "batch_from_inst"), ("per_latent", "dim0")],
)
def test_batch_topk_fresh_bugs(code, bug):
    assert_fails(checks.test_batch_topk, _topk_fresh(bug), code)


def test_batch_topk_inputs_are_generic():
    """The first shape tells every budget apart, and it has negatives kept and larger in magnitude than the top."""
    batch, n_inst, d_sae, k = 7, 3, 5, 2
    sizes = [k * batch, k * n_inst, k * d_sae, batch, n_inst, d_sae, k * batch * d_sae]
    assert len(set(sizes)) == len(sizes)
    pre = checks._distinct_pre(batch, n_inst, d_sae, torch.device("cpu"))
    kept = P.batch_topk(pre, k)
    assert (pre != 0).all() and (kept < 0).any()  # no zeros; a ReLU inside batch_topk changes the output
    assert pre.flatten().unique().numel() == pre.numel()  # no ties


def _enc_fresh(bug):
    def encode(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        if not self.training:
            return pre * (pre > self.threshold[:, None])
        acts = P.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            pos = acts > 0
            if bug == "max_of_min":
                per_ex = torch.where(pos, acts, torch.inf).amin(-1)
                low = torch.where(torch.isfinite(per_ex), per_ex, torch.zeros_like(per_ex)).amax(0)
            else:
                low = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
            new = self.threshold + self.THRESHOLD_MOMENTUM * (low - self.threshold)
            self.threshold.copy_(torch.where(pos.any(0).any(-1), new, self.threshold))
        if bug == "train_masked":
            acts = acts * (acts > self.threshold[:, None])
        return acts

    return type("FreshBatchTopKToySAE", (P.BatchTopKToySAE,), {"encode": encode})


@pytest.mark.parametrize(
    ("code", "bug"), [("threshold_max_of_min", "max_of_min"), ("train_thresholded", "train_masked")]
)
def test_batchtopk_encode_fresh_bugs(code, bug):
    assert_fails(checks.test_batchtopk_encode, _enc_fresh(bug), code)


def _mat_fresh(bug):
    def fn(acts, W, b, h, sizes):
        recs = [_rec(acts, W, 0, m) + b for m in sizes]
        if bug == "sum_of_reconstructions":
            return (sum(recs) - h).pow(2).mean(-1)
        return sum((r - h).pow(2).mean(-1).sqrt() for r in recs)  # rms

    return fn


@pytest.mark.parametrize("code", ["rms", "sum_of_reconstructions"])
def test_matryoshka_loss_fresh_bugs(code):
    assert_fails(checks.test_matryoshka_loss, _mat_fresh(code), code)


# --------------------------------------------------------------------------------------------
# Fourth fresh measurement: mistakes that were misleading, not caught or unnamed
# --------------------------------------------------------------------------------------------
def _gen_f4(bug):
    def generate(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        draw = torch.randn if bug == "randn" else torch.rand
        parents = draw(shape, device=device) < cfg.p_parent
        C = cfg.n_children
        if cfg.exclusive:
            u = torch.rand(*shape, 1, device=device)
            start = 1 if bug == "edges" else 0
            lower = torch.arange(start, start + C, device=device) * cfg.p_child
            children = (u >= lower) & (u < lower + cfg.p_child)
        else:
            children = torch.rand(*shape, C, device=device) < cfg.p_child
        children = children & parents.unsqueeze(-1)
        return torch.cat([parents, children.flatten(-2)], dim=-1).float()

    return generate


@pytest.mark.parametrize(("code", "bug"), [("randn_not_rand", "randn"), ("exclusive_edges_shifted", "edges")])
def test_generate_f4_bugs(code, bug):
    assert_fails(checks.test_generate_hierarchical_batch, _gen_f4(bug), code)


def _abs_exclude_broadcast(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    """A learner's own code with `carriers[:, lat] = False` (every instance's parent latent, in every instance)."""
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1))
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        lat = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[:, lat] = False
        off = acts[:, torch.arange(acts.shape[1]), lat] <= 0
        absorbed = cases & off & ((acts > 0) & carriers).any(-1)
        out.append(absorbed.sum(0).float() / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1)


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("parent_not_required", _abs(cases_rule="child_only")),
        ("cases_or", _abs(cases_rule="or")),
        ("exclude_all_instances", _abs_exclude_broadcast),
    ],
)
def test_absorption_f4_bugs(code, impl):
    assert_fails(checks.test_absorption_fraction, impl, code)


def _topk_f4(bug):
    def topk(pre, k):
        B = pre.shape[0]
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        top = flat.topk(k + B if bug == "k_plus_batch" else k * B, dim=-1)
        if bug == "into_pre":
            kept = flat.scatter(-1, top.indices, top.values)
        elif bug == "zeros_f32":
            kept = torch.zeros(flat.shape, device=pre.device).scatter(-1, top.indices, top.values.float())
        else:
            kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
        return einops.rearrange(kept, "i (b s) -> b i s", b=B)

    return topk


@pytest.mark.parametrize(
    ("code", "bug"), [("nothing_zeroed", "into_pre"), ("dtype", "zeros_f32"), ("budget", "k_plus_batch")]
)
def test_topk_f4_bugs(code, bug):
    assert_fails(checks.test_batch_topk, _topk_f4(bug), code)


def _encode_global_skip(self, h):
    """Skips the threshold update for every instance as soon as one instance kept nothing."""
    pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
    if not self.training:
        return pre * (pre > self.threshold[:, None])
    acts = P.batch_topk(pre, self.cfg.k)
    with torch.no_grad():
        mk = torch.where(acts > 0, acts, torch.inf).amin(dim=(0, 2))
        if torch.isfinite(mk).all():
            self.threshold += self.THRESHOLD_MOMENTUM * (mk - self.threshold)
    return acts


def test_encode_f4_global_skip():
    cls = type("GlobalSkip", (P.BatchTopKToySAE,), {"encode": _encode_global_skip})
    assert_fails(checks.test_batchtopk_encode, cls, "skip_all_instances")


def _mat_mean_batch(acts, W, b, h, sizes):
    losses = [((torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m]) + b - h) ** 2).mean(0) for m in sizes]
    return torch.stack(losses).sum(0)


def test_matryoshka_f4_mean_over_batch():
    assert_fails(checks.test_matryoshka_loss, _mat_mean_batch, "mean_over_batch")


def _gen_reseeded(cfg, batch_size, device="cpu"):
    torch.manual_seed(0)  # same batch on every call
    return _gen_multinomial(cfg, batch_size, device)


def _absorption_floor_division(features, acts, W_dec, W_features, parent_of, cos_threshold=0.5):
    right = P.absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold)
    return right.floor()  # absorbed // cases


def _topk_front(pre, k):
    flat = einops.rearrange(pre, "b i s -> i (b s)")
    kept = torch.zeros_like(flat)
    kept[:, : k * pre.shape[0]] = flat.topk(k * pre.shape[0], dim=-1).values  # not scattered to the indices
    return einops.rearrange(kept, "i (b s) -> b i s", b=pre.shape[0])


def test_fresh6_variants():
    assert_fails(checks.test_generate_hierarchical_batch, _gen_reseeded, "reseeded")
    assert "//" in str(assert_fails(checks.test_absorption_fraction, _absorption_floor_division, "all_zero"))
    int_counts = lambda *a, **kw: (_absorption_floor_division(*a, **kw)).long()
    assert "//" in str(assert_fails(checks.test_absorption_fraction, int_counts, "dtype"))
    assert_fails(checks.test_batch_topk, _topk_front, "front_written")
