"""Checkers for part 5b (feature absorption, BatchTopK and Matryoshka SAEs).

Each checker calls the learner's code only for the piece it tests: everything else is the reference
(`solutions.part5b_absorption`). The learner's `encode` is grafted onto a subclass of the reference
`BatchTopKToySAE`, and any call it makes to `batch_topk` is routed to the reference, so an unfinished
`batch_topk` doesn't break the `encode` check.

The hierarchical generator is random: it is tested on the properties that define its distribution
(exact structure, frequencies, independence), with tolerances from Bernstein's inequality
(`tests.checking`), never against the reference's draws. The other exercises are deterministic and
are compared with the reference on inputs where every term matters, with the usual mistakes named.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions import part5b_absorption as ref
from solutions.part5_toy_saes import ToySAEConfig
from tests import part5b_absorption_probes as probes
from tests import part5b_absorption_readbacks as rb
from tests.checking import checker, expect_close, expect_matches, expect_tensor, fail, returned
from tests.mutants import Reference, call
from tests.part5b_absorption_boundaries import boundary_cases
from tests.part5b_absorption_confirmed import hand_built_mistakes
from tests.part5b_absorption_dead_rows import dead_decoder_row, pooled_carriers
from tests.part5b_absorption_diagnosis import (
    absorption_probes,
    all_zero,
    check_independence,
    encode_named,
    floor_division,
    fresh_start,
    front_written,
    graft,
    implied_target_note,
    matryoshka_candidates,
    reseeded,
    routed_batch_topk,
    threshold_change_reference,
    topk_layout,
)
from tests.part5b_absorption_draws import shared_over_batch
from tests.part5b_absorption_ema import recording, topk_unused
from tests.part5b_absorption_fractions import carrier_rule, check_feature_order, check_on_carrier_inputs, count_relation
from tests.part5b_absorption_inputs import activity_level_variants, full_budget, pre_unedited
from tests.part5b_absorption_levels import absorption_unnamed, matryoshka_terms, topk_diagnosis
from tests.part5b_absorption_mistakes import (
    ABSORPTION_MISTAKES,
    RANDOM_ONLY_MISTAKES,
    TOPK_AXIS_HINT,
    absorption_variant,
    check_topk_counts,
    distinct_mistakes,
    threshold_candidates,
    topk_candidates,
)
from tests.part5b_absorption_probes import (
    best_kept_too,
    eval_gate_candidates,
    feature_count,
    kept_pattern,
    matryoshka_slips,
    other_k,
    other_momentum,
    where_swapped,
)
from tests.part5b_absorption_rule_readbacks import carrier_scope, rates_followed
from utils.part5b_absorption import HierarchyConfig


def _float_output(
    x: Any, what: str, shape: tuple[int, ...], dims: str, device: torch.device, finite: bool = True
) -> Tensor:
    """expect_tensor, with a specific hint when the learner returned a mask or indices instead of floats."""
    returned(x, what)
    if isinstance(x, Tensor) and not x.is_floating_point():
        fail(
            f"{what} has dtype {x.dtype}, expected a float tensor",
            "return floats: convert a boolean mask with `.float()`"
            + ("" if x.dtype == torch.bool else "; integer counts divided with // stay integers (floor division)"),
            code="dtype",
        )
    return expect_tensor(x, what, shape=shape, dims=dims, dtype=torch.float32, device=device, finite=finite)


# --------------------------------------------------------------------------------------------
# Exercise 1: generate_hierarchical_batch
# --------------------------------------------------------------------------------------------
N_GEN = 40_000  # examples per configuration: frequencies to about ±1.5% (±2.5% for conditional ones)
# Two layouts with probabilities chosen so that every listed mistake moves some frequency by many
# standard errors: p ≠ 1/2 (so `rand > p` shows), and for the exclusive one p_child, p_child/n_children,
# 1/n_children and p_parent·p_child all differ.
GEN_CONFIGS = (
    HierarchyConfig(n_inst=3, n_parents=3, n_children=2, p_parent=0.3, p_child=0.4, exclusive=False, d_in=9),
    HierarchyConfig(n_inst=3, n_parents=2, n_children=3, p_parent=0.6, p_child=0.26, exclusive=True, d_in=8),
)
# Exclusive: (C + 1)·p = 1.04 > 1, so edges shifted by one child push the last child partly past 1 (rate 0.22, not
# 0.26); C·p = 0.78, not the text's 0.9, so "none" at a fixed 0.1 then a uniform child (0.3 each) shows too.


def _check_structure(x: Tensor, cfg: HierarchyConfig, what: str) -> None:
    """Exact invariants: 0/1 values, no child without its parent, at most one child with exclusive=True."""
    if not ((x == 0) | (x == 1)).all():
        bad = x[(x != 0) & (x != 1)]
        fail(
            f"{what} has values other than 0 and 1 (e.g. {bad[0].item():.3g})",
            "features are binary: 1.0 where the feature fires, 0.0 elsewhere (no magnitudes here)",
            code="not_binary",
        )
    on = x.bool()
    parents, children = on[..., : cfg.n_parents], on[..., cfg.n_parents :]
    grouped = children.unflatten(-1, (cfg.n_parents, cfg.n_children))  # [batch inst parent child]
    orphans = int((grouped & ~parents.unsqueeze(-1)).sum())
    if orphans:
        swapped = children.unflatten(-1, (cfg.n_children, cfg.n_parents)).transpose(-1, -2)
        if not (swapped & ~parents.unsqueeze(-1)).any():
            fail(
                f"{what}: children fire without their parent ({orphans} times) in the documented layout, "
                "but the hierarchy holds if the children are ordered child-major",
                "order the children parent by parent: child c of parent p is feature "
                "n_parents + p·n_children + c (flatten a [..., parent, child] tensor). The same output comes "
                "from ANDing the flat children with `parents.repeat(...)`, which pairs child j with parent "
                "j mod n_parents: use `parents.repeat_interleave(n_children, -1)` or `parents[..., None]`",
                code="child_layout",
            )
        n_kids = cfg.n_parents * cfg.n_children
        last = on[..., n_kids:], on[..., :n_kids].unflatten(-1, (cfg.n_parents, cfg.n_children))
        if not (last[1] & ~last[0].unsqueeze(-1)).any():
            fail(
                f"{what}: children fire without their parent ({orphans} times) in the documented layout, "
                "but the hierarchy holds if the parents are the LAST features",
                "put the parents first: [P0, P1, C0.0, C0.1, ...], i.e. torch.cat([parents, children], dim=-1)",
                code="parents_last",
            )
        rb.layout_or_cleared(x, cfg, what, orphans)  # names another layout the columns follow, or what was observed
    if cfg.exclusive:
        together = int((grouped.sum(-1) > 1).sum())
        if together:
            fail(
                f"{what}: with exclusive=True, two children of the same parent fire together {together} times",
                "with cfg.exclusive at most one child of a parent fires: pick which child (if any) with one "
                "uniform draw per parent, e.g. child j when u lies in [j·p_child, (j + 1)·p_child)",
                code="siblings_together",
            )
    shared_over_batch(on, cfg, what)  # before any rate: a draw shared by the batch makes a rate 0% or 100%


@checker("generate_hierarchical_batch", kind="function")
def test_generate_hierarchical_batch(impl: Callable, device: torch.device) -> str:
    for cfg in GEN_CONFIGS:
        label = f"exclusive={cfg.exclusive}"
        what = f"the batch ({cfg.n_parents} parents × {cfg.n_children} children, {label})"
        out = impl(cfg, N_GEN, device)
        feature_count(impl, cfg, out, N_GEN, f"generate_hierarchical_batch(cfg, {N_GEN}) with {label}", device)
        x = _float_output(
            out,
            f"generate_hierarchical_batch(cfg, {N_GEN}) with {label}",
            (N_GEN, cfg.n_inst, cfg.n_features),
            "batch inst feats",
            device,
        ).cpu()
        _check_structure(x, cfg, what)
        rates_followed(impl, x, cfg, what, device)
        check_independence(x, cfg, what)
        reseeded(x, impl(cfg, N_GEN, device), "generate_hierarchical_batch")
    return f"hierarchy exact, rates and independence on {N_GEN} examples, exclusive and not"


# --------------------------------------------------------------------------------------------
# Exercise 2: absorption_fraction
# --------------------------------------------------------------------------------------------
# A hand-built case on 6 features [P0, P1, C0.0, C0.1, C1.0, C1.1] and 9 latents, each with a role:
#   P0, P1, C01, C10: exactly their feature;  C00 = (P0 + C0.0)/√2 and C11 = (P1 + C1.1)/√2: absorbing
#   children (cosine 0.71 with the parent);  neg: cosine -0.8 with P0;  weak: cosine 0.25 with P0 (below
#   the threshold, but a large dot product when unnormalised);  half: cosine exactly 0.5 with P0.
ABS_PARENT_OF = [-1, -1, 0, 0, 1, 1]
ABS_LATENTS = ["P0", "P1", "C00", "C01", "C10", "C11", "neg", "weak", "half"]
ABS_D_IN = 8
# Example types: (features on, latents on). Comments say what each one tells apart.
ABS_TYPES = [
    (("P0", "C00"), ("C00",)),  # 0: absorbed
    (("P0", "C01"), ("P0", "C01")),  # 1: parent latent on
    (("P0",), ("C00",)),  # 2: parent without a child: not a case (denominator)
    (("P0", "C01"), ("C01",)),  # 3: parent latent off, but no carrier active
    (("P0", "C01"), ("neg", "C01")),  # 4: only an anti-aligned latent (absolute cosine)
    (("P0", "C01"), ("weak",)),  # 5: only a weakly aligned latent with a big norm (unnormalised)
    (("P0", "C00"), ("P0", "C00")),  # 6: parent latent on
    (("P0", "C01"), ("half",)),  # 7: carrier with cosine exactly 0.5 (≥ versus > at threshold 0.5)
    (("P1", "C11"), ("C11",)),  # 8: absorbed for P1
    (("P1", "C10"), ("P1", "C10")),  # 9: P1 latent on
    (("P1",), ("P1",)),  # 10: P1 alone
    ((), ("C10",)),  # 11: nothing
    (("P0", "C00", "P1", "C10"), ("C00", "P1", "C10")),  # 12: absorbed for P0 only
    (("P0", "C00"), ()),  # 13: no latent at all: not absorbed (nobody carries the parent)
    (("C00",), ("C00",)),  # 14: a child without its parent: not a case (the parent is required)
    (("P0", "C00"), ("C00", "half")),  # 15: absorbed, two carriers active (counted once: any, not sum)
]
# How many examples of each type per instance (instance 2 never has P1 with a child: fraction 0, not NaN).
# Types 4 and 5 have different counts, so the absolute-cosine and half-normalised mistakes give different values.
ABS_COUNTS = [
    [3, 2, 2, 2, 1, 2, 1, 2, 2, 1, 1, 1, 1, 3, 2, 1],
    [1, 3, 3, 1, 2, 1, 1, 2, 1, 3, 2, 0, 1, 2, 1, 3],
    [2, 1, 2, 1, 1, 2, 2, 1, 0, 0, 2, 2, 0, 1, 3, 3],
]
ABS_FEATURE_AXES = [[0, 1, 2, 3, 4, 5], [3, 7, 0, 5, 1, 2], [6, 2, 4, 0, 7, 1]]  # feature f -> axis, per instance
ABS_FEATURE_SCALES = [2.0, 0.5, 1.0, 4.0, 0.25, 2.0]  # powers of two: the cosine 0.5 of `half` stays exact
ABS_LATENT_ORDER = [list(range(9)), list(range(8, -1, -1)), [3, 4, 5, 6, 7, 8, 0, 1, 2]]
ABS_ROW_SCALES = {"P0": 0.5, "P1": 1.5, "C00": 0.25, "C01": 2.0, "C10": 0.75, "C11": 3.0, "neg": 1.25, "weak": 4.0}


def _absorption_case(device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """features [batch inst feats], acts [batch inst d_sae], W_dec [inst d_sae d_in], W_features [inst d_in feats]."""
    n_inst, feats = len(ABS_COUNTS), ["P0", "P1", "C00", "C01", "C10", "C11"]
    W_feat = torch.zeros(n_inst, ABS_D_IN, len(feats))
    W_dec = torch.zeros(n_inst, len(ABS_LATENTS), ABS_D_IN)
    for i in range(n_inst):
        e = {name: torch.eye(ABS_D_IN)[ABS_FEATURE_AXES[i][f]] for f, name in enumerate(feats)}
        for f in range(len(feats)):
            W_feat[i, :, f] = ABS_FEATURE_SCALES[f] * e[feats[f]]
        free = next(a for a in range(ABS_D_IN) if a not in ABS_FEATURE_AXES[i])
        rows = {name: e[name] for name in ("P0", "P1", "C01", "C10")}
        rows["C00"] = (e["P0"] + e["C00"]) / math.sqrt(2)
        rows["C11"] = (e["P1"] + e["C11"]) / math.sqrt(2)
        rows["neg"] = -0.8 * e["P0"] + 0.6 * e["C01"]
        rows["weak"] = 0.25 * e["P0"] + math.sqrt(1 - 0.25**2) * e["C10"]
        rows["half"] = 0.5 * (e["P0"] + e["C10"] + e["C11"] + torch.eye(ABS_D_IN)[free])  # norm 1, cosine 0.5
        for name, row in rows.items():
            W_dec[i, ABS_LATENT_ORDER[i][ABS_LATENTS.index(name)]] = row * ABS_ROW_SCALES.get(name, 1.0)
    torch.manual_seed(3)  # activation values (any positive value would do)
    n_batch = max(sum(c) for c in ABS_COUNTS)
    features = torch.zeros(n_batch, n_inst, len(feats))
    acts = torch.zeros(n_batch, n_inst, len(ABS_LATENTS))
    for i, counts in enumerate(ABS_COUNTS):
        b = 0
        for t, ((feat_on, lat_on), count) in enumerate(zip(ABS_TYPES, counts, strict=True)):
            for _ in range(count):
                for name in feat_on:
                    features[b, i, feats.index(name)] = 1.0
                for name in lat_on:  # types 14, 15 (added later) take no random draw: the others keep their values
                    value = 1.0 if t >= 14 else 0.5 + torch.rand(()).item()
                    acts[b, i, ABS_LATENT_ORDER[i][ABS_LATENTS.index(name)]] = value
                b += 1
        # the remaining rows of this instance stay empty: no feature, no latent
    return features.to(device), acts.to(device), W_dec.to(device), W_feat.to(device)


def _count_cases(features: Tensor, parent_of: list[int]) -> Tensor:
    """[inst parents]: the number of examples with the parent and at least one of its children on."""
    counts = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        counts.append(((features[..., p] > 0) & (features[..., children] > 0).any(-1)).sum(0))
    return torch.stack(counts, dim=-1)


def _check_absorption(impl: Callable, inputs: tuple[Tensor, ...], threshold: float | None, what: str) -> None:
    features, acts, W_dec, W_feat = inputs
    args = [t.clone() for t in inputs] + [list(ABS_PARENT_OF)]
    out = impl(*args) if threshold is None else impl(*args, cos_threshold=threshold)
    n_parents = ABS_PARENT_OF.count(-1)
    th = 0.3 if threshold is None else threshold
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, ABS_PARENT_OF, th)
    out = _float_output(out, what, (acts.shape[1], n_parents), "inst parents", acts.device, finite=False)
    # NaN where no example qualifies is a mistake of its own, named before the generic NaN check.
    no_cases = _count_cases(features, ABS_PARENT_OF) == 0  # [inst parents]
    if torch.isnan(out).any() and not torch.isnan(out[~no_cases]).any():
        nan_hint = (
            "where no example has the parent with a child, the fraction is 0 by definition: clamp the count "
            "(cases.sum(0).clamp_min(1)) or use torch.where"
        )
        fail(f"{what} contains NaN", nan_hint, code="nan_no_cases")
    expect_tensor(out, what, finite=True)
    mistakes = hand_built_mistakes(
        impl, inputs, ABS_PARENT_OF, th, threshold is not None, out, _random_absorption_inputs
    )
    carrier_scope(impl, inputs, ABS_PARENT_OF, th, out, absorption_variant, _random_absorption_inputs)
    floor_division(out, expected, what)
    named = any(torch.allclose(out, v.to(out.device), rtol=1e-4, atol=1e-5) for _, _, v in mistakes)
    if not named and not torch.allclose(out, expected, rtol=1e-4, atol=1e-5):
        found = _random_diagnosis(impl, acts.device)
        if found is not None:
            expect_close(out, expected, what, found[1], code=found[0], dims="inst parents")
        carrier_rule(impl, acts.device)  # a carrier set some rule names, else nothing
        absorption_probes(impl, _random_absorption_inputs(acts.device))
    if not named:
        all_zero(out, expected, what)
    with probes.unnamed("values", count_relation, out, _count_cases(features, ABS_PARENT_OF), expected):
        expect_matches(
            out,
            expected,
            what,
            mistakes,
            dims="inst parents",
            hint="among examples with the parent and a child on: parent latent (argmax decoder cosine) off and some "
            "other active latent with cosine ≥ cos_threshold",
            reference=call(ref.absorption_fraction, features, acts, W_dec, W_feat, list(ABS_PARENT_OF), th),
        )


def _random_absorption_inputs(device: torch.device) -> tuple[Tensor, ...]:
    """Reference-generated hierarchical features, decoders mixing parents into children, noisy activations.

    Drawn on the CPU and then moved, so every device checks the same numbers (whose cosines were checked to
    stay clear of the thresholds and of argmax ties, see the pytest suite)."""
    cfg = HierarchyConfig(n_inst=4, n_parents=2, n_children=3, p_parent=0.4, p_child=0.3, exclusive=False, d_in=10)
    torch.manual_seed(5)  # fixed inputs, whatever random numbers the learner's code drew before
    features = ref.generate_hierarchical_batch(cfg, 400, "cpu")
    n_feats, d_sae = cfg.n_features, 11
    W_feat = torch.linalg.qr(torch.randn(cfg.n_inst, cfg.d_in, cfg.d_in))[0][..., :n_feats]
    W_feat = W_feat * (0.3 + 2 * torch.rand(1, 1, n_feats))  # columns of different norms
    W_dec = 0.6 * torch.randn(cfg.n_inst, d_sae, cfg.d_in)
    mix = torch.randn(cfg.n_inst, d_sae, n_feats) * (torch.rand(cfg.n_inst, d_sae, n_feats) < 0.3)
    W_dec = W_dec + torch.einsum("isf,idf->isd", mix, W_feat)
    W_dec = W_dec * (0.5 + 2 * torch.rand(cfg.n_inst, d_sae, 1))  # rows of different norms
    drive = torch.einsum("bif,isf->bis", features, mix.clamp_min(0))
    acts = F.relu(drive + 0.5 * torch.randn(400, cfg.n_inst, d_sae) - 0.3)
    acts = torch.where(acts < 1e-3, torch.zeros_like(acts), acts)  # no activations so small that "on" is ambiguous
    features, acts, W_dec, W_feat = (t.to(device) for t in (features, acts, W_dec, W_feat))
    return features, acts, W_dec, W_feat, cfg.parent_of


def _random_diagnosis(impl: Callable, device: torch.device) -> tuple[str, str] | None:
    """(code, hint) of the mistake in RANDOM_ONLY_MISTAKES that the learner's output on the random inputs matches."""
    features, acts, W_dec, W_feat, parent_of = _random_absorption_inputs(device)
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=0.3)
    if not isinstance(out, Tensor) or out.shape != (acts.shape[1], parent_of.count(-1)):
        return None
    for kwargs, code, hint in RANDOM_ONLY_MISTAKES:
        value = absorption_variant(features, acts, W_dec, W_feat, parent_of, 0.3, **kwargs)
        if torch.allclose(out.detach().to(value.dtype), value, rtol=1e-4, atol=1e-5, equal_nan=True):
            return code, hint
    return None


@checker("absorption_fraction", kind="function")
def test_absorption_fraction(impl: Callable, device: torch.device) -> str:
    case = _absorption_case(device)
    features, acts, W_dec, W_feat, parent_of = inputs = _random_absorption_inputs(device)
    pooled_carriers(impl, inputs)  # read back before the hand-built case, whose diagnoses cannot tell it
    _check_absorption(impl, case, None, "absorption_fraction on a hand-built case")
    _check_absorption(impl, case, 0.5, "absorption_fraction on a hand-built case with cos_threshold=0.5")
    for threshold in (0.3, 0.6):
        args = (features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of))
        out = _float_output(
            impl(*args, cos_threshold=threshold),
            f"absorption_fraction on random inputs (cos_threshold={threshold})",
            (acts.shape[1], parent_of.count(-1)),
            "inst parents",
            device,
        )
        expected = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, threshold)
        mistakes = [
            (code, hint, absorption_variant(features, acts, W_dec, W_feat, parent_of, threshold, **kw))
            for kw, code, hint in ABSORPTION_MISTAKES[1:] + RANDOM_ONLY_MISTAKES
        ]
        ignored = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, 0.3)  # the fixed 0.3 kept
        mistakes.append(("threshold_ignored", "use the cos_threshold argument, not a fixed 0.3", ignored))
        mistakes += activity_level_variants(features, acts, W_dec, W_feat, parent_of, threshold)
        with absorption_unnamed(impl, device, threshold, inputs):  # a carrier set or an activity level, named
            expect_matches(
                out,
                expected,
                f"absorption_fraction on random inputs (cos_threshold={threshold})",
                distinct_mistakes(mistakes, expected),
                dims="inst parents",
                hint="the hand-built case passed, so look at what it doesn't cover: several children per parent, "
                "latents that are carriers for several parents",
                reference=call(ref.absorption_fraction, features, acts, W_dec, W_feat, list(parent_of), threshold),
            )
    check_on_carrier_inputs(impl, device)
    check_feature_order(impl, device)
    rb.childless_parent(impl, device)
    dead_decoder_row(impl, inputs, device)
    boundary_cases(impl, case, ABS_PARENT_OF, device, _random_absorption_inputs)  # orphans, tiny parent, default
    return "hand-built cases (every rule matters) and random decoders, several instances"


# --------------------------------------------------------------------------------------------
# Exercise 3: batch_topk
# --------------------------------------------------------------------------------------------
def _distinct_pre(
    batch: int, n_inst: int, d_sae: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Pre-activations with no ties and no zeros, on a different scale and offset per instance.

    The last instance (of several) lies in (-2, 1]: a third of its entries are positive, fewer than the k·batch
    kept when k/d_sae > 1/3, so a ReLU inside batch_topk shows (the contract keeps the k·batch largest entries,
    negative or not), and its most negative entries are larger in magnitude than its positive ones, so a top-k
    by |pre| shows."""
    torch.manual_seed(batch * 100 + d_sae)  # fixed inputs, whatever random numbers the learner's code drew before
    # (r + ½)/N: the last instance's 3·v - 2 is 0 only if r + ½ = 2N/3, never a half-integer: no exact zeros
    values = (torch.randperm(batch * n_inst * d_sae).float() + 0.5) / (batch * n_inst * d_sae)
    pre = values.reshape(batch, n_inst, d_sae)
    scale = torch.linspace(0.5, 3.0, n_inst)[:, None]
    offset = torch.linspace(2.0, -2.0, n_inst)[:, None]  # instances overlap only partly: mixing them shows
    return (pre * scale + offset).to(device, dtype)


@checker("batch_topk", kind="function")
def test_batch_topk(impl: Callable, device: torch.device) -> str:
    # (batch, inst, d_sae, k). The first shape is generic: k·batch = 14, k·n_inst = 6, k·d_sae = 10, batch = 7,
    # n_inst = 3 and d_sae = 5 all differ, so a wrong budget is identified by its size; k/d_sae = 0.4 > 1/3.
    # The last shape is in float64: the output keeps pre's dtype (a torch.zeros without dtype= shows).
    shapes = [(7, 3, 5, 2), (5, 2, 6, 1), (4, 1, 9, 3)]
    for batch, n_inst, d_sae, k in shapes:
        dtype = torch.float64 if (batch, n_inst, d_sae, k) == shapes[-1] else torch.float32
        pre = _distinct_pre(batch, n_inst, d_sae, device, dtype).requires_grad_()
        what = f"batch_topk(pre [{batch}, {n_inst}, {d_sae}], k={k})"
        before, out = pre.detach().clone(), impl(pre, k)
        pre_unedited(pre, before, what)
        if isinstance(out, tuple | list):
            fail(
                f"{what} returned a {type(out).__name__}",
                "return one tensor shaped like pre: the kept values in place, zeros elsewhere (not topk's "
                "(values, indices))",
                code="not_tensor",
            )
        returned(out, what)
        if isinstance(out, Tensor) and out.dtype == torch.bool:
            fail(f"{what} returned a boolean mask", "return the kept values (pre * mask), not the mask", code="mask")
        if isinstance(out, Tensor) and not out.is_floating_point():
            fail(
                f"{what} returned an integer tensor of shape {tuple(out.shape)}",
                "those look like topk's indices: scatter the values back into a zero tensor shaped like pre",
                code="indices",
            )
        if isinstance(out, Tensor) and out.dtype == torch.float32 and pre.dtype == torch.float64:
            fail(
                f"{what} is float32 for a float64 pre",
                "keep pre's dtype: a tensor made without dtype= is float32 (torch.zeros(shape)); use "
                "torch.zeros_like(...) or dtype=pre.dtype",
                code="dtype",
            )
        out = expect_tensor(out, what, shape=pre.shape, dims="batch inst d_sae", dtype=pre.dtype, device=device)
        expected = ref.batch_topk(pre.detach(), k)
        candidates = topk_candidates(pre.detach(), k)
        if not torch.allclose(out.detach(), expected):
            others = [
                (_distinct_pre(b, i, s, device), kk)
                for b, i, s, kk in shapes
                if (b, i, s, kk) != (batch, n_inst, d_sae, k)
            ]
            found = topk_diagnosis(impl, out.detach(), pre.detach(), k, others)
            if found is not None:
                fail(f"{what} is not the top k·batch of each instance", found[1], code=found[0])
            topk_layout(out.detach(), pre.detach(), k, what)
            best_kept_too(out.detach(), pre.detach(), expected, what)
            kept_pattern(impl, out.detach(), pre.detach(), expected, k, what, lambda *s: _distinct_pre(*s, device))
            probes.topk_cut_rank(out, pre, k, what)
            check_topk_counts(out, k, what)
            kept = out.detach() != 0
            if torch.equal(out.detach()[kept].sort().values, expected[expected != 0].sort().values):
                front_written(out.detach(), what)
                fail(f"{what} keeps the right values in the wrong places", TOPK_AXIS_HINT, code="axis_order")
            if not torch.equal(out.detach()[kept], pre.detach()[kept]):
                fail(
                    f"{what}: the kept entries don't have their original values",
                    "keep the values of pre unchanged where they are kept (scatter topk's values back, or pre * mask)",
                    code="values_changed",
                )
        expect_matches(
            out.detach(),
            expected,
            what,
            candidates,
            dims="batch inst d_sae",
            hint="keep, per instance, the k·batch largest entries of pre over all examples and latents",
            reference=call(ref.batch_topk, pre.detach(), k),
        )
        if not out.requires_grad:
            fail(
                f"{what} has no gradient",
                "don't detach or use torch.no_grad(): the kept entries must train",
                code="no_grad",
            )
        weights = torch.randn_like(out)
        (grad,) = torch.autograd.grad((out * weights).sum(), pre, allow_unused=True)
        grad = torch.zeros_like(pre) if grad is None else grad
        expect_close(
            grad,
            weights * (expected != 0),
            f"the gradient of {what} with respect to pre",
            "gradient should flow to the kept entries (unchanged) and nowhere else",
            code="gradient",
            dims="batch inst d_sae",
        )
    full_budget(impl, _distinct_pre(3, 2, 4, device))  # k = d_sae: every entry kept
    return "k·batch largest per instance, values in place, gradient to the kept entries"


# --------------------------------------------------------------------------------------------
# Exercise 4: BatchTopKToySAE.encode
# --------------------------------------------------------------------------------------------
N_INST, D_IN, D_SAE, K = 3, 4, 8, 2
THRESHOLD_START = [0.2, 0.5, 0.8]  # a non-zero starting threshold per instance: EMA weights matter


def _batchtopk_sae(cls: type, device: torch.device) -> ref.BatchTopKToySAE:
    cfg = ToySAEConfig(n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, k=K)
    sae = cls(cfg, None).to("cpu")  # parameters drawn on the CPU, so every device checks the same numbers
    torch.manual_seed(10)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn_like(sae.W_enc) * (0.5 + torch.rand_like(sae.W_enc)))
        sae._W_dec.copy_(torch.randn_like(sae._W_dec))
        sae.b_enc.copy_(0.4 * torch.randn_like(sae.b_enc))
        sae.b_enc[0] -= 2.5  # instance 0 has few positive pre-activations: a missing ReLU shows
        sae.b_dec.copy_(0.5 * torch.randn_like(sae.b_dec) + 0.5)
        sae.threshold.copy_(torch.tensor(THRESHOLD_START))
    return sae.to(device)


def _encode_inputs() -> tuple[Tensor, list[Tensor], Tensor]:
    """Hidden activations for the encode check: a first training batch, four more, an eval batch (CPU, fixed).

    Seeded here, so they don't depend on random numbers the learner's code may have drawn; the pytest suite
    checks that every training batch keeps a positive activation in every instance (min_kept is defined)."""
    torch.manual_seed(11)
    first = torch.randn(16, N_INST, D_IN) + 0.3
    more = [torch.randn(8 + 4 * step, N_INST, D_IN) * (1 + step / 2) for step in range(4)]
    return first, more, torch.randn(24, N_INST, D_IN)


def _pre(
    sae: ref.BatchTopKToySAE, h: Tensor, sub_b_dec: bool = True, relu: bool = True, add_b_enc: bool = True
) -> Tensor:
    x = h - sae.b_dec.detach() if sub_b_dec else h
    pre = torch.einsum("bid,ids->bis", x, sae.W_enc.detach())
    if add_b_enc:
        pre = pre + sae.b_enc.detach()
    return F.relu(pre) if relu else pre


def _check_threshold(
    sae: ref.BatchTopKToySAE,
    before: Tensor,
    expected: Tensor,
    mistakes: list,
    what: str,
    kept: Tensor,
    reference: Reference,
) -> None:
    """Compare the *change* of the threshold: one EMA step moves it by about 1e-3, so the usual mistakes differ
    from the right update by a large relative amount, while float32 rounding of th ± m·(...) is ~1e-7."""
    th = expect_tensor(sae.threshold, f"self.threshold {what}", shape=(N_INST,), dims="inst", finite=False)
    if th.requires_grad:
        fail(
            f"self.threshold requires grad {what}",
            "update the threshold under torch.no_grad() (or from detached values): it is a buffer, not trained",
            code="threshold_grad",
        )
    if not torch.isfinite(th).all():
        fail(
            f"self.threshold is {th.tolist()} {what}",
            "an instance that kept no positive activation has min_kept = inf: leave its threshold as it is "
            "(torch.where(has_any, updated, self.threshold))",
            code="threshold_inf",
        )
    m = ref.BatchTopKToySAE.THRESHOLD_MOMENTUM
    other_momentum(before, th.detach(), expected, m, what, kept)
    with probes.unnamed("threshold", probes.threshold_one_example, before, th, kept, m, what):
        expect_matches(
            th.detach() - before,
            expected - before,
            f"the change of self.threshold {what}",
            [(code, hint, value - before) for code, hint, value in mistakes],
            rtol=1e-3,
            atol=1e-6,
            dims="inst",
            hint="threshold ← threshold + THRESHOLD_MOMENTUM · (min positive kept activation − threshold), per "
            "instance; " + implied_target_note(before, th.detach(), m, kept, before + (expected - before) / m),
            code="threshold",
            reference=reference,
        )


@checker("batchtopk_encode", kind="class")
def test_batchtopk_encode(impl: type, device: torch.device) -> str:
    calls: list = []  # the k of every batch_topk call
    routed = recording(routed_batch_topk(K, ref.batch_topk), calls)
    cls = graft(ref.BatchTopKToySAE, impl, "encode", {"batch_topk": routed})
    sae = _batchtopk_sae(cls, device)
    reference = _batchtopk_sae(ref.BatchTopKToySAE, device)
    reference.load_state_dict(sae.state_dict())
    m = ref.BatchTopKToySAE.THRESHOLD_MOMENTUM
    sae.train()
    reference.train()

    # Training mode, one call: batch top-k of relu(pre), and one EMA step of the threshold.
    first, more, h_eval = _encode_inputs()
    h = first.to(device)
    th0 = reference.threshold.clone()
    first_call = threshold_change_reference(reference, h)
    untrained = copy.deepcopy(reference)  # as it was before the call (the threshold moves)
    acts = encode_named(sae, h, D_SAE, N_INST)
    acts = _float_output(acts, "encode(h) in training mode", (16, N_INST, D_SAE), "batch inst d_sae", device)
    expected = reference.encode(h)
    topk_unused(acts.detach(), expected.detach(), _pre(sae, h), _pre(sae, h, relu=False), K, calls)
    expect_matches(
        acts.detach(),
        expected.detach(),
        "encode(h) in training mode",
        [
            ("no_b_dec", "subtract b_dec from h before encoding", ref.batch_topk(_pre(sae, h, sub_b_dec=False), K)),
            *rb.pre_entries(sae, h, K),
            ("no_b_enc", "add b_enc to the pre-activations", ref.batch_topk(_pre(sae, h, add_b_enc=False), K)),
            (
                "uses_threshold",
                "in training mode, use batch_topk (the threshold is for eval mode)",
                _pre(sae, h) * (_pre(sae, h) > th0[:, None]),
            ),
            (
                "per_example",
                "use batch_topk over the whole batch, not a per-example top-k",
                next(v for c, _, v in topk_candidates(_pre(sae, h), K) if c == "per_example"),
            ),
            *[
                (
                    "train_thresholded",
                    "in training mode return batch_topk's output as it is: the threshold only masks in eval mode",
                    expected.detach() * (expected.detach() > t[:, None]),
                )
                for t in (th0, threshold_candidates(th0, expected.detach(), m, _pre(sae, h), K)[0])
            ],
            *other_k(_pre(sae, h), K, ref.batch_topk, sae.cfg, calls),
        ],
        dims="batch inst d_sae",
        hint="acts = batch_topk(relu((h - b_dec) @ W_enc + b_enc), k)",
        code="train_acts",
        reference=call(ref.BatchTopKToySAE.encode, untrained, h, pick=lambda out: out.detach()),
    )
    if not acts.requires_grad:
        fail("encode's output has no gradient", "don't compute the activations under torch.no_grad()", code="no_grad")
    right, mistakes = threshold_candidates(th0, expected.detach(), m, _pre(sae, h), K)
    where_swapped(sae, th0, right, more[0].to(device), reference.b_dec.detach()[0])
    _check_threshold(sae, th0, right, mistakes, "after one training call", expected.detach(), first_call)

    # Several calls: the EMA keeps going from where it is.
    for step, h_next in enumerate(more):
        h_next = h_next.to(device)
        before = reference.threshold.clone()
        change = threshold_change_reference(reference, h_next)
        sae.encode(h_next)
        kept = reference.encode(h_next).detach()
        right, mistakes = threshold_candidates(before, kept, m, _pre(sae, h_next), K)
        _check_threshold(sae, before, right, mistakes, f"after {step + 2} training calls", kept, change)

    # A batch in which instance 0 keeps nothing positive (h = b_dec there, so pre = b_enc < 0): its
    # threshold stays, the others move.
    silent = more[0].to(device).clone()
    silent[:, 0] = reference.b_dec.detach()[0]
    before = reference.threshold.clone()
    change = threshold_change_reference(reference, silent)
    sae.encode(silent)
    kept = reference.encode(silent).detach()
    right, mistakes = threshold_candidates(before, kept, m, _pre(sae, silent), K)
    _check_threshold(
        sae, before, right, mistakes, "after a batch in which instance 0 kept nothing positive", kept, change
    )

    fresh_start(lambda c: _batchtopk_sae(c, device), cls, ref.BatchTopKToySAE, first.to(device))

    # Eval mode: a fixed per-instance threshold, whatever the batch; the threshold stays put.
    sae.eval()
    reference.eval()
    with torch.no_grad():
        for model in (sae, reference):
            model.threshold.copy_(torch.tensor([0.3, 0.05, 0.6], device=device))
    h = h_eval.to(device)
    th = reference.threshold.clone()
    acts = _float_output(sae.encode(h), "encode(h) in eval mode", (24, N_INST, D_SAE), "batch inst d_sae", device)
    expected = reference.encode(h).detach()
    pre = _pre(sae, h)
    if not torch.equal(sae.threshold.detach(), th):
        fail(
            "encode changed self.threshold in eval mode",
            "update the threshold only when self.training is True",
            code="updated_in_eval",
        )
    with probes.unnamed("eval_acts", probes.eval_subset, acts, expected, K, "encode(h) in eval mode"):
        expect_matches(
            acts.detach(),
            expected,
            "encode(h) in eval mode",
            [
                (
                    "eval_uses_batch",
                    "in eval mode use the threshold, not batch_topk (check self.training)",
                    ref.batch_topk(pre, K),
                ),
                (
                    "shared_threshold",
                    "use each instance's own threshold: self.threshold[:, None] against [batch inst d_sae]",
                    pre * (pre > th[0]),
                ),
                ("shared_threshold", "use each instance's own threshold", pre * (pre > th.mean())),
                (
                    "soft_threshold",
                    "keep the activation itself where it is above the threshold (pre * (pre > threshold)), don't "
                    "subtract the threshold (relu(pre - threshold) shrinks every kept value)",
                    F.relu(pre - th[:, None]),
                ),
                (
                    "no_b_dec",
                    "subtract b_dec from h before encoding",
                    _pre(sae, h, sub_b_dec=False) * (_pre(sae, h, sub_b_dec=False) > th[:, None]),
                ),
                *eval_gate_candidates(pre, _pre(sae, h, relu=False, add_b_enc=False), th, (sae, h, acts)),
            ],
            dims="batch inst d_sae",
            hint="eval mode: relu(pre) where relu(pre) > threshold (per instance), 0 elsewhere",
            code="eval_acts",
            reference=call(ref.BatchTopKToySAE.encode, reference, h, pick=lambda out: out.detach()),
        )
    part = sae.encode(h[:5])
    expect_close(
        part.detach(),
        acts.detach()[:5],
        "encode(h[:5]) in eval mode",
        "in eval mode each example's activations must not depend on the rest of the batch",
        code="batch_dependent",
        dims="batch inst d_sae",
    )
    return "training: batch top-k and per-instance EMA threshold; eval: fixed threshold, batch-independent"


# --------------------------------------------------------------------------------------------
# Exercise 5: matryoshka_loss
# --------------------------------------------------------------------------------------------
def _matryoshka_inputs(batch: int, n_inst: int, d_sae: int, d_in: int, device: torch.device) -> tuple[Tensor, ...]:
    torch.manual_seed(batch * 100 + d_sae)  # fixed inputs, whatever random numbers the learner's code drew before
    acts = F.relu(torch.randn(batch, n_inst, d_sae) + 0.3)
    W = torch.randn(n_inst, d_sae, d_in)
    W_hat = W / W.norm(dim=-1, keepdim=True)
    b_dec = 0.7 * torch.randn(n_inst, d_in) + 0.4
    h = torch.randn(batch, n_inst, d_in) + b_dec
    return tuple(t.to(device) for t in (acts, W_hat, b_dec, h))


@checker("matryoshka_loss", kind="function")
def test_matryoshka_loss(impl: Callable, device: torch.device) -> str:
    cases = [
        ((2, 5, 8), 12, 3, 8, 5),
        ((1, 3, 4, 7), 9, 2, 7, 6),
        ((6,), 5, 2, 6, 3),
    ]  # sizes, batch, inst, d_sae, d_in
    for sizes, batch, n_inst, d_sae, d_in in cases:
        acts, W_hat, b_dec, h = _matryoshka_inputs(batch, n_inst, d_sae, d_in, device)
        leaves = [t.clone().requires_grad_() for t in (acts, W_hat, b_dec)]
        what = f"matryoshka_loss with prefix_sizes={sizes}"
        out = rb.unedited(impl, leaves, h, sizes, (acts, W_hat, b_dec), what, n_inst, (batch, d_sae, d_in))
        if isinstance(out, Tensor) and out.shape == (n_inst, d_in) and (n_inst, d_in) != (batch, n_inst):
            fail(
                f"{what} has shape {tuple(out.shape)} = (inst, d_in), expected (batch={batch}, inst={n_inst})",
                "the squared error was averaged over the batch axis where d_in was meant: mean over the LAST "
                "axis (d_in) of each prefix's squared error, keeping [batch inst]",
                code="mean_over_batch",
            )
        out = _float_output(out, what, (batch, n_inst), "batch inst", device)
        expected = ref.matryoshka_loss(acts, W_hat, b_dec, h, sizes)
        with probes.unnamed("values", matryoshka_terms, impl, out, (acts, W_hat, b_dec, h), sizes):
            expect_matches(
                out.detach(),
                expected,
                what,
                matryoshka_candidates(acts, W_hat, b_dec, h, sizes) + matryoshka_slips(acts, W_hat, b_dec, h, sizes),
                dims="batch inst",
                hint="sum over m in prefix_sizes of mean over d_in of (acts[..., :m] · W_dec[:, :m] + b_dec - h)²",
                reference=call(ref.matryoshka_loss, acts, W_hat, b_dec, h, sizes),
            )
        if not out.requires_grad:
            fail(
                f"{what} has no gradient",
                "don't detach anything: the loss trains the encoder and decoder",
                code="no_grad",
            )
        weights = torch.rand_like(out) + 0.5
        grads = torch.autograd.grad((out * weights).sum(), leaves, allow_unused=True)
        ref_leaves = [t.clone().requires_grad_() for t in (acts, W_hat, b_dec)]
        ref_grads = torch.autograd.grad((ref.matryoshka_loss(*ref_leaves, h, sizes) * weights).sum(), ref_leaves)
        for name, g, g_ref in zip(("acts", "W_dec_normalized", "b_dec"), grads, ref_grads, strict=True):
            expect_close(
                torch.zeros_like(g_ref) if g is None else g,
                g_ref,
                f"the gradient of {what} with respect to {name}",
                "every prefix reconstruction must stay in the autograd graph (no .detach(), no torch.no_grad())",
                code="gradient",
                rtol=1e-3,
                dims=None,
            )
    return "sum over prefixes of the prefix reconstruction losses, gradients to acts, W_dec and b_dec"
