"""Part 5 readings that compare instances or read back what went into a formula: resample_simple on dead counts
that differ per instance (instance 0 with the fewest), a per-instance value equal to instance 0's for every
instance, a scale equal to another norm of the live encoder columns, and generate_batch's effective W (least
squares) or features (a clamp threshold) read back before the einsum."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part5_toy_saes_batch_edits as BE
from tests.checking import fail
from tests.part5_toy_saes_diagnosis import vanilla_acts_options

# dead latents per instance: instance 0 the fewest (one), the others more, no two counts equal
DEAD_COUNTS = (1, 5, 3, 7)


def dead_count_probe(impl: Callable, make_sae: Callable[..., Any], call_resampler: Callable) -> None:
    """resample_simple on an SAE whose instances have different numbers of dead latents (DEAD_COUNTS, instance 0
    the fewest): every dead latent must get a unit decoder row, whatever instance 0's count is. Then one dead
    latent in the whole SAE (lone_dead_probe), after the counts, so instance 0's count used for all keeps its name."""
    n_inst, d_sae = len(DEAD_COUNTS), 23
    sae = make_sae(n_inst=n_inst, d_in=3, d_sae=d_sae)
    frac = torch.rand(4, n_inst, d_sae, device=sae.W_enc.device) * 0.2 + 0.01
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=frac.device)
    for k, n in enumerate(DEAD_COUNTS):
        dead[k, torch.randperm(d_sae, device=frac.device)[:n]] = True
    frac[:, dead] = 0.0
    W_dec = sae.W_dec.detach().clone()
    call_resampler(lambda: impl(sae, frac.clone(), 0.37))
    new = sae.W_dec.detach()
    unit = ((new.norm(dim=-1) - 1).abs() < 1e-3) & (new != W_dec).any(-1)  # [inst d_sae]: resampled to a unit row
    got = [int(unit[k][dead[k]].sum()) for k in range(n_inst)]
    if got == list(DEAD_COUNTS):
        return lone_dead_probe(impl, make_sae, call_resampler)
    counts = dict(zip(range(n_inst), DEAD_COUNTS, strict=True))
    like0 = all(g == min(n, DEAD_COUNTS[0]) for g, n in zip(got, DEAD_COUNTS, strict=True))
    fail(
        f"with dead latents per instance {counts}, the dead latents resampled to a unit decoder row per instance "
        f"were {got}" + (" — instance 0's count (or fewer) in every instance" if like0 else ""),
        "take the dead latents of each instance separately (dead[inst].nonzero(), or index with the [inst d_sae] "
        "mask): the number of new directions drawn in instance inst is that instance's own dead count"
        + (", not instance 0's" if like0 else ""),
        code="dead_count",
    )


def lone_dead_probe(impl: Callable, make_sae: Callable[..., Any], call_resampler: Callable) -> None:
    """resample_simple with exactly one dead latent in the whole SAE (instance 1 of 3, latent 6 of 11): it must get
    a unit decoder row like any other (a guard such as `if n_dead <= 1`, or a .squeeze() of one index, drops it)."""
    n_inst, d_sae, inst, lat = 3, 11, 1, 6
    sae = make_sae(n_inst=n_inst, d_in=5, d_sae=d_sae)
    frac = torch.rand(4, n_inst, d_sae, device=sae.W_enc.device) * 0.2 + 0.01
    frac[:, inst, lat] = 0.0
    before = sae.W_dec.detach().clone()
    call_resampler(lambda: impl(sae, frac.clone(), 0.37))
    row = sae.W_dec.detach()[inst, lat]
    if (row.norm() - 1).abs() < 1e-3 and not torch.equal(row, before[inst, lat]):
        return
    seen = "left unchanged" if torch.equal(row, before[inst, lat]) else f"given a row of norm {float(row.norm()):.4g}"
    # read-back: the same SAE shape with two dead latents (same instance). Both resampled: the count of one is what
    # is skipped; otherwise a few dead latents fail too and no count guard is named
    sae2 = make_sae(n_inst=n_inst, d_in=5, d_sae=d_sae)
    frac2, pair = frac.clone(), [2, lat]
    frac2[:, inst, 2] = 0.0
    before2 = sae2.W_dec.detach().clone()
    call_resampler(lambda: impl(sae2, frac2, 0.37))
    rows2 = sae2.W_dec.detach()[inst, pair]
    two_ok = bool(((rows2.norm(dim=-1) - 1).abs() < 1e-3).all()) and not (rows2 == before2[inst, pair]).all(-1).any()
    fail(
        f"with exactly one dead latent in the whole SAE (instance {inst}, latent {lat}), it was {seen}; the main "
        "check's many dead latents were resampled, and "
        + (f"so were two dead latents (latents {pair} of instance {inst})" if two_ok else "two dead latents were not"),
        "resample whenever at least one latent is dead: "
        + (
            "only the count of one is skipped, e.g. a guard `if n_dead <= 1: return` (or `< 2`, `> 1`), or a "
            ".squeeze() that turns a single index into a scalar"
            if two_ok
            else "a few dead latents go wrong too, not just a lone one: check the path taken when few latents are "
            "dead against the one taken when many are"
        ),
        code="lone_dead_skipped",
    )


def live_threshold_failure(per_inst: Tensor, active: Tensor, W_enc: Tensor, dead: Tensor, frac: Tensor, scale: float):
    """The mean encoder norm was taken over the latents whose window statistic (mean = sum / window, or max) is
    above one threshold t shared by the instances, a strict subset of the live latents: fail naming it. Per instance
    the latents sorted by the statistic give top-m sets; m must match the lengths in every active instance and the
    t-intervals of those m must overlap (the window's groups have encoder scales set apart: a coincidence is rare)."""
    norms = W_enc.norm(dim=1)  # [inst d_sae]
    for name, stat in (("mean (or sum)", frac.mean(0)), ("max", frac.amax(0))):
        lo, hi, counts = -math.inf, math.inf, []
        for k in active.nonzero().flatten().tolist():
            order = stat[k].argsort(descending=True)
            means = norms[k][order].cumsum(0) / torch.arange(1, norms.shape[1] + 1, device=norms.device)
            hit = torch.isclose(means * scale, per_inst[len(counts)].expand_as(means), rtol=1e-4).nonzero().flatten()
            live = int((~dead[k]).sum())
            ms = [int(m) + 1 for m in hit if int(m) + 1 < live]
            if not ms:
                break
            m, st = ms[0], stat[k][order]
            lo, hi = max(lo, float(st[m])), min(hi, float(st[m - 1]))
            counts.append(m)
        else:
            if counts and lo < hi:
                fail(
                    f"the new encoder columns have lengths {per_inst.tolist()} per instance: resample_scale times the "
                    f"mean encoder norm over only the {counts} latents per instance whose window {name} is above a "
                    f"threshold (between {lo:.3g} and {hi:.3g}), not over all live latents",
                    "live means fired at some step of the window (~dead, dead = (frac_active_in_window <= 0).all(0)): "
                    "no threshold on the window's mean, sum or max; latents that fire rarely are alive too",
                    code="live_threshold",
                )


def enc_length_failure(
    per_inst: Tensor, want: Tensor, active: Tensor, W_enc: Tensor, dead: Tensor, scale: float, frac: Tensor
):
    """resample_advanced: the new encoder columns' lengths per active instance are wrong. Name instance 0's value
    used for every instance, or a scale equal to another norm (L1, L∞, squared L2) of the live columns; else list."""
    expected = want[active]
    hint = "encoder column = v · resample_scale · mean over live latents j of ‖W_enc[inst, :, j]‖ (the L2 norm)"
    first = int(active.nonzero()[0, 0])
    same = torch.allclose(expected, expected[:1].expand_as(expected), rtol=1e-3)
    if len(per_inst) > 1 and not same and torch.allclose(per_inst, want[first].expand_as(per_inst), rtol=1e-3):
        fail(
            f"the new encoder columns have lengths {per_inst.tolist()} per instance: instance {first}'s value "
            f"{float(want[first]):.4g} in every instance (expected {expected.tolist()})",
            "take the mean live encoder norm of each instance from that instance's own columns and live mask "
            "(W_enc[inst][:, ~dead[inst]]), not instance 0's",
            code="enc_instance0",
        )
    live_norms = {
        "the L1 norm (sum of |entries|, norm(p=1))": lambda c: c.abs().sum(0),
        "the L∞ norm (largest |entry|)": lambda c: c.abs().amax(0),
        "the squared L2 norm (sum of squares, no square root)": lambda c: c.pow(2).sum(0),
        "the mean |entry| (abs().mean(), the L1 norm / d_in)": lambda c: c.abs().mean(0),
    }
    live_threshold_failure(per_inst, active, W_enc, dead, frac, scale)
    idx = active.nonzero().flatten().tolist()
    for name, fn in live_norms.items():
        value = torch.stack([fn(W_enc[k][:, ~dead[k]]).mean() for k in idx]) * scale
        if torch.allclose(per_inst, value.to(per_inst), rtol=1e-3):
            fail(
                f"the new encoder columns have lengths {per_inst.tolist()} per instance, expected "
                f"{expected.tolist()}: the lengths read back equal resample_scale · the mean of {name} of the live "
                "encoder columns",
                hint,
                code="enc_norm_kind",
            )
    fail(
        f"the new encoder columns have lengths {per_inst.tolist()} per instance, expected {expected.tolist()}",
        hint,
        code="enc_length",
    )


def _effective_maps(h: Tensor, x: Tensor) -> Tensor | None:
    """A [inst d_in feats] with h[:, i] = x[:, i] @ A[i].T by least squares (NaN where a feature never fires), or
    None when h is not linear in the features."""
    maps = []
    for i in range(x.shape[1]):
        cols = (x[:, i] != 0).any(0).nonzero().flatten()
        if cols.numel() == 0:
            return None
        sol = torch.linalg.lstsq(x[:, i][:, cols], h[:, i]).solution
        if not torch.allclose(x[:, i][:, cols] @ sol, h[:, i], rtol=1e-4, atol=1e-4):
            return None
        full = torch.full((x.shape[2], h.shape[2]), float("nan"), dtype=x.dtype)
        full[cols] = sol
        maps.append(full.T)
    return torch.stack(maps)


def transformed_inputs_failure(h: Tensor, features: Tensor, W: Tensor) -> None:
    """generate_batch: read back what went into the einsum. When h is linear in the features, the effective W
    (least squares per instance) named when it is W transformed (|W|, W with rows or columns normalised, -W);
    when it is not, the features clamped at a threshold read back from a grid."""
    x, y, Wd = features.detach().double().cpu(), h.detach().double().cpu(), W.detach().double().cpu()
    if y.shape[:2] != x.shape[:2] or y.shape[2] != Wd.shape[1]:
        return
    BE.running_sum_failure(y, torch.einsum("bif,idf->bid", x, Wd))
    BE.features_dropped_failure(y, x, Wd)
    fix = "h = einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> batch inst d_in'), W as it is"
    A = _effective_maps(y, x)
    if A is not None:
        known = ~A.isnan()
        if torch.allclose(A[known], Wd[known], rtol=1e-3, atol=1e-4):
            return
        BE.permuted_features_failure(A, Wd)
        for name, value in (
            ("|W| (W.abs(): the signs of W lost)", Wd.abs()),
            ("W with each row normalised over feats (W / ‖W[inst, d, :]‖, e.g. F.normalize(W, dim=-1))",
             F.normalize(Wd, dim=-1)),
            ("W with each feature's column normalised over d_in (F.normalize(W, dim=-2))", F.normalize(Wd, dim=-2)),
            ("-W (the sign flipped)", -Wd),
            ("W with each row centred over feats (W - W.mean(-1))", Wd - Wd.mean(-1, keepdim=True)),
            ("W with each feature's column centred over d_in (W - W.mean(-2))", Wd - Wd.mean(-2, keepdim=True)),
        ):  # fmt: skip
            if torch.allclose(A[known], value[known], rtol=1e-3, atol=1e-5):
                fail(
                    f"your h is linear in the drawn features, but the map read back by least squares is {name}, "
                    "not self.model.W",
                    fix + ": the weights are not transformed before mapping",
                    code="weights_transformed",
                )
        return
    grid = torch.arange(1, 100, dtype=torch.float64) / 100
    for op, kw in (("max", "max"), ("min", "min")):
        for c in grid.tolist():
            if torch.allclose(torch.einsum("bif,idf->bid", x.clamp(**{kw: c}), Wd), y, rtol=1e-4, atol=1e-5):
                fail(
                    f"your h equals W x for the drawn features clamped with {op}={c:g} (read back): the features "
                    "were changed before the map",
                    fix + "; the features go in as self.model.generate_batch drew them (no clamp)",
                    code="features_clamped",
                )
    for c in grid.tolist():  # thresholded to 0/1 (x > c; round() is c = 0.5): the values are part of h
        if torch.allclose(torch.einsum("bif,idf->bid", (x > c).double(), Wd), y, rtol=1e-4, atol=1e-5):
            fail(
                f"your h equals W (features > {c:g}) for the drawn features (threshold read back): each feature was "
                "made 0 or 1 (a comparison, round(), or a mask) before the map",
                fix + "; the features go in with their values in [0, 1] as drawn, not thresholded to 0/1",
                code="features_thresholded",
            )


# a ReLU written as where(gate > 0, value, 0) with the gate or the value read before b_enc is added: (pre, pre + b)
GATES: dict[str, tuple[str, Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]]] = {
    "relu_gate_before_bias": (
        "gates on the value before b_enc is added: where(x @ W_enc > 0, x @ W_enc + b_enc, 0), where ReLU tests "
        "the biased pre-activation itself, where(acts_pre > 0, acts_pre, 0) with acts_pre = x @ W_enc + b_enc",
        lambda pre, biased: (pre, biased),
    ),
    "relu_value_before_bias": (
        "keeps the value before b_enc is added: where(x @ W_enc + b_enc > 0, x @ W_enc, 0), where ReLU keeps the "
        "biased pre-activation it tested, where(acts_pre > 0, acts_pre, 0) with acts_pre = x @ W_enc + b_enc",
        lambda pre, biased: (biased, pre),
    ),
}


def acts_options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list[list[Any]]]:
    """vanilla_acts_options plus the encoder's input centred with a b_dec shared by every instance (the bias averaged
    over instances, or instance 0's for all): b_dec is [inst, d_in], each instance subtracts its own row."""
    base, options = vanilla_acts_options(sae, h)
    b_dec = sae.b_dec

    def combine(x: Tensor, W: Tensor, bias: Tensor | float, nonlin: str) -> Tensor:
        if nonlin not in GATES:
            return base(x, W, bias, nonlin)
        pre = torch.einsum("bid,ids->bis", x, W)
        gate, value = GATES[nonlin][1](pre, pre + bias)
        return torch.where(gate > 0, value, torch.zeros_like(value))

    options[3] = [*options[3], *[(n, f"the ReLU {what}", lambda n=n: n) for n, (what, _) in GATES.items()]]
    options[0] = [
        *options[0],
        (
            "b_dec_pooled_over_inst",
            "the encoder reads h - b_dec.mean(0): b_dec averaged over the instances (one bias shared by all), where "
            "each instance subtracts its own row, h - b_dec ([inst, d_in] broadcasts over the batch)",
            lambda: h - b_dec.mean(0),
        ),
        (
            "b_dec_first_inst",
            "the encoder reads h - b_dec[0]: instance 0's bias for every instance, where each instance subtracts "
            "its own row, h - b_dec",
            lambda: h - b_dec[0],
        ),
    ]
    options[2] = [
        *options[2],
        (
            "b_enc_twice",
            "b_enc is added twice (e.g. once into acts_pre and again before the ReLU): the pre-activations are "
            "(h - b_dec) @ W_enc + b_enc, with b_enc added once",
            lambda: 2 * sae.b_enc,
        ),
    ]
    d_in = sae.W_enc.shape[-2]
    options[1] = [
        *options[1],
        (
            "encoder_mean_over_d_in",
            f"the pre-activations are 1/d_in = 1/{d_in} × (h - b_dec) @ W_enc: the products averaged over d_in "
            "(e.g. (x[..., None] * W_enc).mean(-2)) where the matmul sums them",
            lambda: sae.W_enc / d_in,
        ),
    ]
    return combine, options


def unfilled_instances_failure(h: Tensor, expected: Tensor, what: str = "h") -> None:
    """Fail when some instances of `h` [batch inst ...] are all zero while every other instance is exactly right:
    those instances were never written (e.g. a per-instance loop one short into a zeros tensor)."""
    if h.shape != expected.shape or h.ndim < 2 or h.shape[1] < 2:
        return
    y, want = h.detach(), expected.detach()
    zero = [i for i in range(y.shape[1]) if (y[:, i] == 0).all() and (want[:, i] != 0).any()]
    right = [i for i in range(y.shape[1]) if torch.allclose(y[:, i], want[:, i], rtol=1e-4, atol=1e-5)]
    if not zero or len(zero) + len(right) != y.shape[1]:
        return
    last = zero == [y.shape[1] - 1]
    fail(
        f"instance(s) {zero} of {what} are all zero, while the other instances {right} are exactly right: "
        + ("the last instance was never filled in" if last else "those instances were never filled in"),
        "write every instance: e.g. a per-instance loop "
        + ("one short (range(n_inst - 1), a slice [:-1]) " if last else "that skips some ")
        + "into a zeros tensor leaves them 0; loop over range(cfg.n_inst), or map all instances at once with one "
        "einsum",
        code="instance_unfilled",
    )
