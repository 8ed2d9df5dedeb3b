"""What a learner's absorption fraction is made of (`tests.part5b_absorption`): which latents it counts as carriers
(a probe, one latent active at a time, confirmed by recomputing the learner's output with that set), whether the
parent's latent was read as the set of latents whose best feature is the parent, and which counts it divides (an
exact relation on the hand-built case, whose counts are known)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import CheckFailed, expect_matches, expect_tensor, fail
from tests.mutants import call


def _fraction_with(features: Tensor, acts: Tensor, parent_of: list[int], latent: Tensor, carriers: Tensor) -> Tensor:
    """The absorption fraction [inst parents] with the parent latents `latent` [inst parents] and the carrier
    mask `carriers` [inst d_sae parents] given."""
    out = []
    for j, p in enumerate(f for f, q in enumerate(parent_of) if q == -1):
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        off = acts.gather(-1, latent[None, :, j, None].expand(acts.shape[0], -1, 1)).squeeze(-1) == 0
        carried = ((acts > 0) & carriers[None, :, :, j]).any(-1)
        out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def _probed_carriers(impl: Callable, inputs: tuple, th: float) -> Tensor | None:
    """[inst d_sae parents]: whether the learner counts a case as absorbed when only latent s is active (one call
    per latent, one example per parent with the parent and its first child on), or None if a call fails."""
    features, acts, W_dec, W_feat, parent_of = inputs
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    n_inst, d_sae = acts.shape[1], acts.shape[2]
    probe_f = torch.zeros(len(parents), n_inst, features.shape[-1], dtype=features.dtype, device=features.device)
    for j, p in enumerate(parents):
        probe_f[j, :, [p, parent_of.index(p)]] = 1.0
    seen = torch.zeros(n_inst, d_sae, len(parents), dtype=torch.bool, device=acts.device)
    try:
        for s in range(d_sae):
            probe_a = torch.zeros(len(parents), n_inst, d_sae, dtype=acts.dtype, device=acts.device)
            probe_a[..., s] = 1.0
            got = impl(probe_f.clone(), probe_a, W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=th)
            if (
                not isinstance(got, Tensor)
                or got.shape != (n_inst, len(parents))
                or not ((got == 0) | (got == 1)).all()
            ):
                return None
            seen[:, s] = got.detach() > 0.5
    except Exception:
        return None
    return seen


def carrier_inputs(device: torch.device | str) -> tuple:
    """Inputs on which the carrier rules differ: decoder rows mixing both parents strongly into random
    combinations of the features, so many latents are carriers (cos ≥ 0.3) of a parent whose best-matching
    feature is that parent, the other parent, or a child; no parent's latent is the last one (lat + 1 exists).
    The seed was picked for that and for clear margins (argmaxes and the 0.3 threshold, see the pytest suite)."""
    g = torch.Generator().manual_seed(1)
    n_inst, n_parents, n_children, d_in, d_sae, batch = 4, 2, 3, 10, 11, 300
    parent_of = [-1] * n_parents + [p for p in range(n_parents) for _ in range(n_children)]
    n_f = len(parent_of)
    W_feat = torch.linalg.qr(torch.randn(n_inst, d_in, d_in, generator=g))[0][..., :n_f]
    W_feat = W_feat * (0.3 + 2 * torch.rand(1, 1, n_f, generator=g))
    coef = torch.randn(n_inst, d_sae, n_f, generator=g)
    coef[..., :n_parents] = coef[..., :n_parents].abs() * 1.5
    W_dec = torch.einsum("isf,idf->isd", coef, F.normalize(W_feat, dim=1))
    W_dec = W_dec + 0.3 * torch.randn(n_inst, d_sae, d_in, generator=g)
    W_dec = W_dec * (0.5 + 2 * torch.rand(n_inst, d_sae, 1, generator=g))
    parents = torch.rand(batch, n_inst, n_parents, generator=g) < 0.5
    children = (torch.rand(batch, n_inst, n_parents, n_children, generator=g) < 0.4) & parents[..., None]
    features = torch.cat([parents, children.flatten(-2)], -1).float()
    acts = (torch.rand(batch, n_inst, d_sae, generator=g) < 0.3) * (0.5 + torch.rand(batch, n_inst, d_sae, generator=g))
    return (*(t.to(device) for t in (features, acts, W_dec, W_feat)), parent_of)


def carrier_rule(impl: Callable, device: torch.device | str, th: float = 0.3) -> None:
    """Which latents the learner counts as carriers (probed on `carrier_inputs`), named when that set follows a
    rule other than the right one. Reported only when the probed set, put into the right computation, reproduces
    the learner's output on those inputs (so the probe read it right); a set no rule describes is left to the
    failure as it stands."""
    inputs = carrier_inputs(device)
    features, acts, W_dec, W_feat, parent_of = inputs
    all_carriers(impl, inputs)
    parent_latent_set(impl, inputs, th)
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    d_sae = acts.shape[2]
    seen = _probed_carriers(impl, inputs, th)
    if seen is None:
        return
    try:
        out = impl(*(t.clone() for t in inputs[:4]), list(parent_of), cos_threshold=th)
    except Exception:
        return
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_feat, dim=1))
    latent = cos[..., parents].argmax(1)  # [inst parents]
    index = torch.arange(d_sae, device=cos.device)[None, :, None]  # [1 d_sae 1]
    not_own = index != latent[:, None]
    right = (cos[..., parents] >= th) & not_own
    if torch.equal(seen, right) or not isinstance(out, Tensor) or out.shape != latent.shape:
        return
    if not torch.allclose(
        out.detach().to(acts.dtype), _fraction_with(features, acts, parent_of, latent, seen), atol=1e-5
    ):
        return
    best = cos.argmax(-1)[..., None]  # [inst d_sae 1]: the best-matching feature of each latent
    kids = [torch.tensor([f for f, q in enumerate(parent_of) if q == p], device=best.device) for p in parents]
    child_best = torch.cat([torch.isin(best, k) for k in kids], -1)
    p_best = best == torch.tensor(parents, device=best.device)
    any_parent_best = torch.isin(best, torch.tensor(parents, device=best.device))
    rule = "a carrier is any latent other than the parent's own with decoder cosine ≥ cos_threshold with the PARENT"
    rules = [
        (
            child_best & not_own,
            "carriers_child_best",
            "your carriers are exactly the latents whose best-matching feature is a child of the parent: "
            + rule
            + " feature (cos[..., p] >= cos_threshold), whatever feature it matches best",
        ),
        (
            right & ~p_best,
            "carriers_best_parent",
            "your carriers leave out every latent whose best-matching feature is the parent itself, not only the "
            "parent's own latent (its argmax over d_sae): "
            + rule
            + ", whatever feature it matches best. Exclude one latent per (instance, parent), cos[:, :, p].argmax(-1)",
        ),
        (
            right & ~any_parent_best,
            "carriers_best_any_parent",
            "your carriers leave out every latent whose best-matching feature is a parent (this one or another): "
            + rule
            + ", whatever feature it matches best. Exclude only the parent's own latent, cos[:, :, p].argmax(-1)",
        ),
        (
            right & (index != latent[:, None] + 1),
            "carriers_next_latent",
            "your carriers leave out the latent right AFTER the parent's own (index lat + 1), a carrier the right "
            "computation counts: the exclusion of the parent's own latent is off by one (carriers[lat + 1] = False, "
            "or an index shifted by a slice): exclude latent lat = cos[:, :, p].argmax(-1) itself",
        ),
    ]
    kid_cos = torch.stack([cos[..., k].amax(-1) for k in kids], -1)  # [inst d_sae parents]: the best child's cosine
    rules.append(
        (
            right & (cos[..., parents] > kid_cos),
            "carriers_beat_children",
            "your carriers must also have a larger decoder cosine with the parent than with any of its children "
            "(cos[:, :, p] > cos[:, :, children].max), which drops the latents that lean towards a child, exactly "
            "the ones absorption is about (a child's latent that has taken up the parent's direction): "
            + rule
            + ", whatever its cosine with the children",
        )
    )
    second = cos[..., parents].topk(2, dim=1).indices[:, 1]  # [inst parents]: the second-best cosine
    rules.append(
        (
            right & (index == second[:, None]),
            "carriers_second_only",
            "only the second-best-cosine latent counted as carrier: your carriers are, per (instance, parent), the "
            "one latent with the second-highest decoder cosine with the parent (when it reaches cos_threshold), "
            "e.g. topk(2).indices[..., 1]. "
            + rule
            + ": every such latent but the parent's own, (cos[:, :, p] >= cos_threshold) with the parent's latent "
            "cos[:, :, p].argmax(-1) set to False, then ((acts > 0) & carriers).any(-1)",
        )
    )
    top = cos[..., parents].amax(1, keepdim=True)  # [inst 1 parents]: the parent's best cosine (its own latent's)
    rules.append(
        (
            (cos[..., parents] >= th * top) & not_own,
            "carriers_relative_threshold",
            "your carriers are the latents whose cosine reaches cos_threshold TIMES the parent's best cosine "
            "(cos >= cos_threshold * cos.max()): the threshold is absolute, "
            + rule
            + " (cos[:, :, p] >= cos_threshold), whatever the best cosine is",
        )
    )
    child_own = torch.zeros_like(right)  # [inst d_sae parents]: each child's own latent (its argmax over d_sae)
    for j, k in enumerate(kids):
        child_own[..., j].scatter_(1, cos[..., k].argmax(1), True)
    rules.append(
        (
            right & child_own,
            "carriers_children_latents",
            "your carriers are only the children's own latents (for each child, the latent with the largest decoder "
            "cosine with that child, cos[:, :, child].argmax over d_sae): "
            + rule
            + ", whichever feature's own latent it is",
        )
    )
    fits = [(code, hint) for mask, code, hint in rules if torch.equal(seen, mask)]
    if not fits:
        return  # another carrier set is left to the failure as it stands: no mistake that gives it has been seen yet
    ex = lambda mask: "; ".join(
        f"inst {i}, latent {s}, parent {parents[j]}: cosine {cos[i, s, parents[j]]:.2f}, best-matching "
        f"feature {int(best[i, s])}, the parent's latent {int(latent[i, j])}"
        for i, s, j in mask.nonzero().tolist()[:3]
    )
    extra, missing = seen & ~right, right & ~seen
    msg = (
        f"a probe (one example per parent with the parent and a child on, one latent active at a time, "
        f"cos_threshold={th}) shows which latents your code counts as carriers, and that set reproduces your "
        f"output on random inputs: {int(extra.sum())} counted that shouldn't be"
        + (f" ({ex(extra)})" if extra.any() else "")
        + f", {int(missing.sum())} not counted that should be"
        + (f" ({ex(missing)})" if missing.any() else "")
    )
    if len(fits) == 1:
        fail(msg, fits[0][1], code=fits[0][0])
    fail(msg, "several rules give this carrier set here: " + " OR ".join(h for _, h in fits), code="carrier_set")


def parent_latent_set(impl: Callable, inputs: tuple, th: float = 0.3) -> None:
    """The parent's latent read as a SET: every latent whose best-matching feature is the parent (argmax of each
    latent's cosines over the features, instead of the parent's argmax over the latents). The parent counts as off
    when none of them is active and the carriers are the other latents with cosine >= th. Named when the learner's
    output on `carrier_inputs` is that fraction and the right one differs there."""
    features, acts, W_dec, W_feat, parent_of = inputs
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_feat, dim=1))
    best = cos.argmax(-1)  # [inst d_sae]: each latent's best-matching feature
    rows = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        mine = best == p
        off = ~((acts > 0) & mine).any(-1)
        carried = ((acts > 0) & (cos[..., p] >= th) & ~mine).any(-1)
        rows.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    variant = torch.stack(rows, -1).to(acts.dtype)
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, th)
    if torch.allclose(variant, expected, atol=1e-5):
        return
    try:
        out = impl(*(t.clone() for t in inputs[:4]), list(parent_of), cos_threshold=th)
    except Exception:
        return
    if not isinstance(out, Tensor) or out.shape != variant.shape:
        return
    if torch.allclose(out.detach().to(variant.dtype), variant, atol=1e-5):
        fail(
            f"absorption_fraction on probe inputs (cos_threshold={th}) is {[round(v, 4) for v in out[0].tolist()]} "
            f"for instance 0, expected {[round(v, 4) for v in expected[0].tolist()]}: yours equals the fraction with "
            "the parent's latent taken as EVERY latent whose best-matching feature is the parent",
            "the parent's latent is ONE latent per (instance, parent): the one with the largest decoder cosine with "
            "the parent, cos[:, :, p].argmax(-1) (an argmax over the latents). A latent that has absorbed the parent "
            "matches a child best, and an absorbed parent may be no latent's best feature, so 'latents whose "
            "best feature is p' (an argmax over the features) can be empty exactly where absorption happens",
            code="parent_latents_by_best_feature",
        )


def _fraction_groups(inputs: tuple, groups: list[tuple[int, list[int]]], th: float, every: bool = False) -> Tensor:
    """The absorption fraction [inst parents] with the (parent, children) pairs `groups` given (the parents' and
    children's feature indices, however found); `every`: a case is carried only when EVERY carrier is active
    (`.all` where `.any` belongs, vacuously true when the parent has no carrier but its own latent)."""
    features, acts, W_dec, W_feat, _ = inputs
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_feat, dim=1))
    out = []
    for p, kids in groups:
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        latent = cos[..., p].argmax(-1)  # [inst]
        carriers = (cos[..., p] >= th) & (torch.arange(acts.shape[-1], device=cos.device) != latent[:, None])
        off = acts.gather(-1, latent[None, :, None].expand(acts.shape[0], -1, 1)).squeeze(-1) == 0
        on = acts > 0
        carried = (on | ~carriers).all(-1) if every else (on & carriers).any(-1)
        out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def _groups(parent_of: list[int]) -> list[tuple[int, list[int]]]:
    return [(p, [f for f, q in enumerate(parent_of) if q == p]) for p, q in enumerate(parent_of) if q == -1]


def all_carriers(impl: Callable, inputs: tuple) -> None:
    """Named when the learner's output on `inputs` (where many latents carry each parent) is, at two thresholds,
    the fraction in which a case counts as carried only when every carrier is active (`.all` where `.any`
    belongs); the threshold 0.5 leaves a parent with a single carrier, where both agree, and others where they don't."""
    features, acts, W_dec, W_feat, parent_of = inputs
    outs = []
    for th in (0.3, 0.5):
        every = _fraction_groups(inputs, _groups(parent_of), th, every=True)
        try:
            out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=th)
        except Exception:
            return
        if not isinstance(out, Tensor) or out.shape != every.shape or not torch.isfinite(out).all():
            return
        if not torch.allclose(out.detach().to(every.dtype), every, rtol=1e-4, atol=1e-5):
            return
        outs.append(out)
    right = ref.absorption_fraction(*inputs, 0.3)
    fail(
        "on random decoders in which many latents carry each parent, your absorption fraction is, at cos_threshold "
        f"0.3 and 0.5, the fraction of cases in which EVERY carrier is active (at 0.3: {every_shown(outs[0], right)})",
        "a case is absorbed when the parent's latent is off and ANY carrier is active: "
        "carried = ((acts > 0) & carriers).any(-1), not .all (which asks every latent with cosine ≥ cos_threshold "
        "to fire at once, e.g. ((acts > 0) | ~carriers).all(-1))",
        code="carriers_all",
    )


def every_shown(out: Tensor, right: Tensor) -> str:
    o, r = out.detach().double().cpu().flatten(), right.detach().double().cpu().flatten()
    return ", ".join(
        f"{a:.4g} where {b:.4g} was expected" for a, b in list(zip(o.tolist(), r.tolist(), strict=True))[:3]
    )


def count_relation(err: CheckFailed, out: Tensor, cases: Tensor, expected: Tensor) -> None:
    """On the hand-built case (cases [inst parents]: the examples with the parent and a child on; expected: the
    right fractions, so absorbed = expected · cases), the learner's fraction is exactly (absorbed + a) / (cases + b)
    for two constants a, b, not both 0: a constant added to the counts (smoothing, or a guard against / 0)."""
    y = out.detach().double().flatten().cpu()
    n = cases.double().flatten().cpu()
    absorbed = (expected.double().flatten().cpu() * n).round()
    if y.numel() < 3 or not torch.isfinite(y).all() or not (n > 0).any():
        return
    # y (n + b) = absorbed + a  <=>  y·b - a = absorbed - y·n: linear in (b, a)
    basis = torch.stack([y, -torch.ones_like(y)], -1)
    b, a = torch.linalg.lstsq(basis, (absorbed - y * n)[:, None]).solution.flatten().tolist()
    a, b = (round(v) if abs(v - round(v)) < 1e-3 else v for v in (a, b))
    if (a == 0 and b == 0) or (n + b == 0).any():
        return
    if not torch.allclose((absorbed + a) / (n + b), y, rtol=1e-4, atol=1e-6):
        return
    shown = lambda v: f"{v:g}" if isinstance(v, int) else f"{v:.4g}"
    form = f"(absorbed{' + ' + shown(a) if a else ''}) / (cases{' + ' + shown(b) if b else ''})".replace("+ -", "- ")
    counts = [[int(v) for v in row] for row in cases.tolist()]
    k = int((n > 0).nonzero()[0])
    turns = form.replace("absorbed", str(int(absorbed[k]))).replace("cases", str(int(n[k])))
    fail(
        err.message + f"\nyour fractions are exactly {form} at every (instance, parent), with the cases {counts}",
        "divide the absorbed count by the number of cases itself, absorbed / cases: a constant added to a count "
        f"moves every fraction (here {int(absorbed[k])}/{int(n[k])} became {turns}). Where there is no case the "
        "fraction is 0: guard with cases.clamp_min(1) (absorbed is 0 there) or torch.where(cases > 0, ..., 0)",
        code="count_offset",
    )


def moved_entries(base: Tensor, out: Tensor) -> str:
    """Up to three [inst parents] entries that moved, with their values before and after."""
    b, o = base.detach().double().cpu(), out.detach().double().cpu()
    where = (~torch.isclose(o, b, rtol=1e-4, atol=1e-5)).nonzero().tolist()[:3]
    return "; ".join(f"inst {i}, parent {j}: {b[i, j]:.4g} before, {o[i, j]:.4g} after" for i, j in where)


def check_on_carrier_inputs(impl: Callable, device: torch.device | str, th: float = 0.3) -> None:
    """The fraction on `carrier_inputs`, where the carrier rules differ: a rule that the other inputs can't tell
    from the right one (e.g. the latent after the parent's own excluded, when no such latent was a carrier there)
    shows here. Run after the other inputs, so the output's type and shape are known to be right."""
    features, acts, W_dec, W_feat, parent_of = carrier_inputs(device)
    what = f"absorption_fraction on random decoders in which many latents carry each parent (cos_threshold={th})"
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=th)
    expect_tensor(out, what, shape=(acts.shape[1], parent_of.count(-1)))
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, th)
    if torch.allclose(out.detach().to(expected.dtype), expected, rtol=1e-4, atol=1e-5):
        return
    carrier_rule(impl, device, th)
    expect_matches(
        out.detach().to(expected.dtype),
        expected,
        what,
        dims="inst parents",
        hint="the other inputs passed, so look at the carriers: here many latents have cosine ≥ cos_threshold with "
        "a parent, some matching best the parent itself, the other parent or a child, some right next to the "
        "parent's own latent. Every one of them except the parent's own latent (cos[:, :, p].argmax(-1)) is a carrier",
        reference=call(ref.absorption_fraction, features, acts, W_dec, W_feat, list(parent_of), th),
    )


def product_fraction(features: Tensor, acts: Tensor, W_dec: Tensor, W_feat: Tensor, parent_of: list[int]) -> Tensor:
    """The mistake fraction(parent latent off) × fraction(carried), each among the cases, [inst parents]."""
    cos = F.normalize(W_dec.double(), dim=-1) @ F.normalize(W_feat.double(), dim=-2)  # [inst d_sae feats]
    out = []
    for p in [q for q, pp in enumerate(parent_of) if pp == -1]:
        ch = [q for q, pp in enumerate(parent_of) if pp == p]
        cases = (features[..., p] > 0) & (features[..., ch] > 0).any(-1) if ch else features[..., p] < -1
        lat = cos[..., p].argmax(-1)  # [inst]
        off = acts.gather(-1, lat.view(1, -1, 1).expand(acts.shape[0], -1, 1))[..., 0] == 0
        carriers = (cos[..., p] >= 0.3) & (torch.arange(cos.shape[1], device=cos.device) != lat[:, None])
        carried = ((acts > 0) & carriers).any(-1)
        n = cases.sum(0).clamp_min(1).double()
        out.append((cases & off).sum(0) / n * (cases & carried).sum(0) / n)
    return torch.stack(out, -1).cpu()


# A parent latent counted "off" while still active: its duplicate twin (cosine 1, active with it) is then a carrier.
THRESHOLD_CAUSE = (
    "; or the parent's latent counted off while it is still active: an off test with a threshold above 0 (e.g. "
    "act < 1.0, or act < the parent feature's value) where act == 0 belongs (an active latent with a small "
    "activation is on; duplicating the latents gives it an active twin, a carrier, so such examples became absorbed)"
    "; or more latents than the parent's own excluded from the carriers (their twins now count); or another rule "
    "that a twin of each latent undoes"
)


def copies_verdict(base: Tensor, out: Tensor, hint: str, product: Tensor | None = None) -> tuple[str, str]:
    """(code, hint) for a fraction that moved when every latent was duplicated: `product` (the fraction of cases
    with the parent latent off times that of cases carried) named when it is the learner's answer; an over-count
    (`hint`, code carriers_counted) only when every moved entry grew; else the causes."""
    b, o = base.detach().double().cpu(), out.detach().double().cpu()
    if product is not None and product.shape == b.shape and torch.allclose(b, product.double(), atol=1e-6):
        return (
            "fraction_product",
            "your fraction equals fraction(parent latent off) × fraction(carried), each among the cases: a product "
            "of two separate fractions instead of the share of cases where both hold. Count the cases that are "
            "absorbed, (cases & off & carried).sum(0), and divide by the number of cases (duplicating the latents "
            "gives the parent's latent an active twin, a carrier, which raised your fraction(carried))",
        )
    if (o >= b - 1e-5).all():
        return "carriers_counted", hint.rstrip(".") + THRESHOLD_CAUSE
    return (
        "latent_copies",
        "with every latent duplicated, the parent's own latent has a twin with the same cosine, and so has every "
        "carrier; the right fraction stays (the twin of the parent's latent is off whenever it is, the carriers are "
        "the same latents twice). Your fraction dropped, so your carriers or the parent's latent depend on the "
        "latents' ranks or their number. Possible causes: carriers chosen by rank (e.g. only the second-best-cosine "
        "latent, now the parent latent's twin), a fixed number of carriers (topk), a count divided by the number "
        "of latents, or .all where .any belongs (every carrier required active: the twin of the parent's own latent "
        "is then a carrier, off whenever the parent's latent is); a carrier is every latent but the parent's own "
        "with cosine ≥ cos_threshold",
    )


# A feature order other than the standard layout [parents, children of parent 0, children of parent 1, ...]: new
# position k holds feature ORDER[k] of `carrier_inputs` (P0 P1 C00 C01 C02 C10 C11 C12), so the parents sit at 1 and
# 5 (in the same order) and each parent's children are apart: the right fraction is the same as on those inputs.
ORDER = [5, 0, 2, 6, 3, 1, 7, 4]


def reordered_inputs(device: torch.device | str) -> tuple:
    """`carrier_inputs` with the features listed in ORDER and parent_of to match."""
    features, acts, W_dec, W_feat, parent_of = carrier_inputs(device)
    new = {old: k for k, old in enumerate(ORDER)}
    reordered = [-1 if parent_of[old] == -1 else new[parent_of[old]] for old in ORDER]
    return features[..., ORDER], acts, W_dec, W_feat[..., ORDER], reordered


def check_feature_order(impl: Callable, device: torch.device | str, th: float = 0.3) -> None:
    """The fraction on `reordered_inputs`, where parent_of is not the standard layout. Run after
    `check_on_carrier_inputs` (the same inputs in the standard order passed): a difference here is the order."""
    inputs = reordered_inputs(device)
    features, acts, W_dec, W_feat, parent_of = inputs
    expected = ref.absorption_fraction(*inputs, th)  # before the learner's call, from the checker's own tensors
    n_p = parent_of.count(-1)
    n_c = (len(parent_of) - n_p) // n_p
    blocks = [list(range(n_p + j * n_c, n_p + (j + 1) * n_c)) for j in range(n_p)]
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    what = (
        f"absorption_fraction with the features in another order, parent_of = {parent_of} (parents at "
        f"{parents}, each one's children apart; cos_threshold={th})"
    )
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=th)
    expect_tensor(out, what, shape=(acts.shape[1], n_p))
    rule = "the children of parent p are the features f with parent_of[f] == p, wherever they are"
    mistakes = [
        (
            "layout_children",
            f"you found the children by the standard layout (parent j's children at {n_p} + j·{n_c} onwards), not "
            f"from parent_of: {rule}, e.g. [f for f, q in enumerate(parent_of) if q == p]",
            _fraction_groups(inputs, list(zip(parents, blocks, strict=True)), th),
        ),
        (
            "layout_parents",
            f"you took the first {n_p} features as the parents (and the children in blocks after them): the parents "
            f"are the features with parent_of[f] == -1 and {rule}",
            _fraction_groups(inputs, list(zip(range(n_p), blocks, strict=True)), th),
        ),
        (
            "parent_ordinal",
            "you matched the children by the parent's position among the parents (parent_of[f] == j, j = 0, 1, ...) "
            f"instead of its feature index: parent_of holds the parent's FEATURE index, so {rule}",
            _fraction_groups(
                inputs, [(p, [f for f, q in enumerate(parent_of) if q == j]) for j, p in enumerate(parents)], th
            ),
        ),
    ]
    expect_matches(
        out.detach().to(expected.dtype),
        expected,
        what,
        mistakes,
        dims="inst parents",
        hint="the same inputs in the standard order (parents first, then each parent's children together) passed, "
        "and the right fraction doesn't depend on the order; so something assumes that layout: where the parents "
        f"are (parent_of[f] == -1), where their children are ({rule}), or an index into parent_of",
        code="feature_order",
        reference=call(ref.absorption_fraction, features, acts, W_dec, W_feat, list(parent_of), th),
    )


FEATURE_INDEX_CAUSE = (
    "; or a feature index used where a latent index belongs (the parent's latent is cos[:, :, p].argmax(-1), one "
    "per instance, not p itself: carriers[:, p] = False excludes latent number p)"
)


def feature_index_excluded(
    base: Tensor,
    features: Tensor,
    acts: Tensor,
    W_dec: Tensor,
    W_feat: Tensor,
    parent_of: list[int],
    right: Tensor,
    change: str = "",
) -> None:
    """Names a learner's fraction (on these inputs, cos_threshold 0.3) equal to the reference's with latent number
    p (the parent's FEATURE index) excluded from the carriers instead of the parent's latent, when that differs
    from the right fraction. `change`: how these inputs were made from the random ones, if they were."""
    instance0_carriers(base, features, acts, W_dec, W_feat, parent_of, right)
    dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", dec, W_feat / W_feat.norm(dim=1, keepdim=True))
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        latent = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= 0.3
        if p < carriers.shape[-1]:
            carriers[:, p] = False
        off = acts[:, torch.arange(acts.shape[1], device=acts.device), latent] == 0
        absorbed = cases & off & ((acts > 0) & carriers).any(-1)
        out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    variant = torch.stack(out, -1).double().cpu()
    b, r = base.detach().double().cpu(), right.detach().double().cpu()
    if variant.shape != b.shape or torch.allclose(variant, r, atol=1e-6) or not torch.allclose(b, variant, atol=1e-6):
        return
    where = (~torch.isclose(b, r, atol=1e-6)).nonzero().tolist()[:3]
    moved = "; ".join(f"inst {i}, parent {j}: {b[i, j]:.4g}, expected {r[i, j]:.4g}" for i, j in where)
    made = f" in which {change}" if change else ""
    fail(
        f"on random inputs{made}, your absorption fraction is the one obtained when latent number p (the parent's "
        f"feature index) is excluded from the carriers instead of the parent's own latent ({moved})",
        "a feature index used where a latent index belongs: the parent's latent is the argmax of the decoder "
        "cosines, cos[:, :, p].argmax(-1) (one per instance), not p; exclude THAT latent from the carriers "
        "(carriers[torch.arange(n_inst), parent_latent] = False)",
        code="feature_index_latent",
    )


def instance0_carriers(
    base: Tensor, features: Tensor, acts: Tensor, W_dec: Tensor, W_feat: Tensor, parent_of: list[int], right: Tensor
) -> None:
    """Names a learner's fraction (cos_threshold 0.3) equal to the reference's with instance 0's carrier set
    (cos[0, :, p] >= 0.3) used for every instance, each instance still excluding its own parent latent."""
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_feat, dim=1))
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    latent = cos[:, :, parents].argmax(1)  # [inst parents]
    carriers = (cos[:1, :, parents] >= 0.3).expand_as(cos[:, :, parents]).clone()  # [inst d_sae parents]
    carriers.scatter_(1, latent[:, None], False)
    variant = _fraction_with(features, acts, parent_of, latent, carriers).double().cpu()
    b, r = base.detach().double().cpu(), right.detach().double().cpu()
    if variant.shape != b.shape or torch.allclose(variant, r, atol=1e-6) or not torch.allclose(b, variant, atol=1e-6):
        return
    where = (~torch.isclose(b, r, atol=1e-6)).nonzero().tolist()[:3]
    moved = "; ".join(f"inst {i}, parent {j}: {b[i, j]:.4g}, expected {r[i, j]:.4g}" for i, j in where)
    fail(
        f"on random inputs, your absorption fraction is the one obtained when instance 0's carriers (its latents "
        f"with cosine ≥ cos_threshold with the parent) are used for every instance ({moved})",
        "the carriers of instance 0 used for every instance: each instance has its own cosines, so its own carrier "
        "set, cos[:, :, p] >= cos_threshold of shape [inst d_sae] (not cos[0, :, p] expanded over the instances)",
        code="instance0_carriers",
    )
