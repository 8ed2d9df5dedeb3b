"""Read-backs that name a rule of absorption_fraction or generate_hierarchical_batch only when the learner's output
is reproduced by that rule on EVERY input tried (the hand-built case and the random one), and a probe of the
exclusive child rate on a config where p_child and (1 - p_child)/n_children are far apart."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import fail
from tests.part5b_absorption_diagnosis import rates_followed as _rates_followed
from tests.part5b_absorption_mistakes import RateStats
from tests.part5b_absorption_probes import carrier_scope as _carrier_scope
from utils.part5b_absorption import HierarchyConfig

# p_child 0.15 with 3 children: a child given its parent at 15%, "p_child is the no-child probability, each child
# (1 - p)/C" at 28.3%, 1/C at 33%: many tolerances apart at the batch size below (tolerance about ±1%).
PROBE_P_CHILD, PROBE_BATCH = 0.15, 20_000


def rates_followed(impl: Callable, x: Tensor, cfg: HierarchyConfig, what: str, device: Any) -> None:
    """The rate checks, then (exclusive layouts) the child rate on a config with p_child far from (1 - p)/C."""
    _rates_followed(impl, x, cfg, what, device)
    if cfg.exclusive and cfg.n_children > 1:
        exclusive_child_rate(impl, cfg, device)


def exclusive_child_rate(impl: Callable, cfg: HierarchyConfig, device: Any) -> None:
    other = dataclasses.replace(cfg, p_child=PROBE_P_CHILD, n_children=3)
    try:
        y = impl(other, PROBE_BATCH, device)
    except Exception:
        return
    if not isinstance(y, Tensor) or y.shape != (PROBE_BATCH, other.n_inst, other.n_features):
        return
    on = y.detach().cpu().bool()
    parents = on[..., : other.n_parents]
    grouped = on[..., other.n_parents :].unflatten(-1, (other.n_parents, other.n_children))
    n = int(parents.sum())
    if n == 0:
        return
    rate = float((grouped & parents[..., None]).sum()) / (n * other.n_children)  # a child's rate given its parent
    p, none_split = other.p_child, (1 - other.p_child) / other.n_children
    # Exclusive siblings are negatively correlated, so the pooled rate varies less than n·C independent draws:
    # the independent Bernstein bound holds; doubled for margin (the two rates tried are 13 points apart).
    tol = RateStats.tolerance(n * other.n_children, p) * 2
    if abs(rate - p) <= tol:
        return
    seen = (
        f"with exclusive=True, n_children=3 and p_child={p}, a child fires in {rate:.1%} of the examples where "
        f"its parent fires, expected p_child = {p:.0%} (± {tol:.1%})"
    )
    if abs(rate - none_split) <= tol:
        fail(
            seen + f"; (1 - p_child)/n_children = {none_split:.1%}: p_child read as the probability of NO child",
            "p_child is each child's probability given its parent (child j when u lies in [j·p_child, (j + 1)·"
            "p_child)); 'no child' has the rest, 1 - n_children·p_child",
            code="p_child_as_none",
        )
    outcomes = 1 / (other.n_children + 1)  # "no child" as one more equally likely outcome (round BA)
    if abs(rate - outcomes) <= tol:
        fail(
            seen + f"; 1/(n_children + 1) = {outcomes:.0%}: 'no child' drawn as one more equally likely outcome",
            "the n_children + 1 outcomes (each child, or none) are not equally likely (randint(0, n_children + 1) "
            "ignores p_child): each child has p_child, 'no child' the rest, 1 - n_children·p_child; child j when u "
            "lies in [j·p_child, (j + 1)·p_child)",
            code="none_as_outcome",
        )
    fail(seen, "each child of a firing parent fires with probability p_child (at most one of them)", code="child_rate")


def carrier_scope(
    impl: Callable, inputs: tuple, parent_of: list[int], th: float, out: Tensor, variant: Any, random_inputs: Callable
) -> None:
    """The carrier-scope probes, then the rule read-backs below (`random_inputs(device)`: the checker's random case)."""
    _carrier_scope(impl, inputs, parent_of, th, out, variant)
    rule_readbacks(impl, inputs, parent_of, th, out, random_inputs)


def fraction_rule(
    features: Tensor, acts: Tensor, W_dec: Tensor, W_feat: Tensor, parent_of: list[int], th: float, rule: str
) -> Tensor:
    """The reference computation with one rule changed (`rule`), [inst parents]."""
    cos = torch.einsum(
        "isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), W_feat / W_feat.norm(dim=1, keepdim=True)
    )
    n_inst, ar = acts.shape[1], torch.arange(acts.shape[1], device=acts.device)
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    out = []
    for p in parents:
        owner = parents[0] if rule == "stale_children" else p
        children = [f for f, q in enumerate(parent_of) if q == owner]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        lat = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= th
        carriers[ar, lat] = False
        if rule == "all_own_excluded":  # every feature's own latent (argmax over the latents) excluded
            own = cos.argmax(1)  # [inst feats]
            for i in range(n_inst):
                carriers[i, own[i]] = False
        par = acts[:, ar, lat]
        if rule == "first_example":  # example 0's parent activation used for every example
            par = par[:1].expand_as(par)
        absorbed = cases & (par == 0) & ((acts > 0) & carriers).any(-1)
        out.append(absorbed.sum(0).float() / cases.sum(0).clamp_min(1).float())
    return torch.stack(out, -1).reshape(n_inst, -1)


RULES = [
    (
        "stale_children",
        "every parent's cases use parent 0's children",
        "the children list was computed once, for the first parent, and reused for every parent: list each "
        "parent's own children inside the loop, [f for f, q in enumerate(parent_of) if q == p]",
    ),
    (
        "children_latents_excluded",
        "the latents excluded from the carriers are the own latent (argmax cosine) of EVERY feature, the "
        "children's included, not only the parent's",
        "only the parent's own latent, cos[:, :, p].argmax(-1), is removed from the carriers: a child's own latent "
        "with cosine ≥ cos_threshold with the parent is exactly the latent that absorbed it, so it must count",
    ),
    (
        "first_example_parent",
        "the parent latent's activation of example 0 is used for every example",
        "take each example's own activation of the parent latent, acts[:, arange(n_inst), lat] (a gather needs an "
        "index expanded to [batch, inst, 1]: lat[None, :, None].expand(batch, -1, 1))",
    ),
]
RULE_CODE = {"stale_children": "stale_children", "children_latents_excluded": "all_own_excluded"}


def rule_readbacks(
    impl: Callable, inputs: tuple, parent_of: list[int], th: float, out: Tensor, random_inputs: Callable
) -> None:
    """Fail naming a rule only when it reproduces the output here AND on the random inputs, where it differs from
    the right fraction on at least one of them."""
    if not isinstance(out, Tensor):
        return
    features, acts, W_dec, W_feat = inputs
    right = ref.absorption_fraction(features, acts, W_dec, W_feat, list(parent_of), th)
    r_feat, r_acts, r_dec, r_wf, r_parent_of = random_inputs(acts.device)
    r_right = ref.absorption_fraction(r_feat, r_acts, r_dec, r_wf, list(r_parent_of), th)
    r_out = None
    same = lambda a, b: a.shape == b.shape and torch.allclose(a.detach().float(), b.float(), rtol=1e-4, atol=1e-5)
    for code, seen, hint in RULES:
        rule = RULE_CODE.get(code, "first_example")
        here = fraction_rule(features, acts, W_dec, W_feat, list(parent_of), th, rule)
        if not same(out, here):
            continue
        there = fraction_rule(r_feat, r_acts, r_dec, r_wf, list(r_parent_of), th, rule)
        if same(here, right) and same(there, r_right):
            continue
        if r_out is None:
            try:
                r_out = impl(
                    r_feat.clone(), r_acts.clone(), r_dec.clone(), r_wf.clone(), list(r_parent_of), cos_threshold=th
                )
            except Exception:
                return
            if not isinstance(r_out, Tensor):
                return
        if same(r_out, there):
            fail(
                f"absorption_fraction: your output equals, on the hand-built case and on random inputs, the fraction "
                f"computed with one rule changed: {seen}",
                hint,
                code=code,
            )
