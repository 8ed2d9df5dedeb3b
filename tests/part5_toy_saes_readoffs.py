"""Part 5 (toy SAEs): what a wrong number in the learner's output reads as, told by the checkers' own inputs.

* `reconstruction_factor`: the loss's reconstruction part off by a factor: the size of an axis of h (d_in, batch,
  inst), with the direction of the slip (a sum where the formula takes a mean, or the reverse);
* `live_norm_statistic`: new encoder lengths that follow another statistic of the live latents' encoder columns
  (the median norm, the largest, the norm of the mean column, ...) or divide by it instead of multiplying;
* `fitted_power`: the exponent the resampling picks follow, fitted from the pick frequencies (L_rec^p);
* `divisor_readoff`: decoder rows that point the right way but were divided by another norm than their own (the
  instance's largest row norm, instance 0's row norms, ...);
* `short_draw_failure`: a generate_batch output with more examples than were drawn, its extra examples read back as
  copies (exact, negated, rescaled) of drawn ones.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part4_double_descent_calls import size_one_axis_failure
from tests.sizes import factor_reason


def sparsity_factor(ratios: list[float], batch: int, n_inst: int, d_sae: int) -> str:
    """' (why)' when every instance's sparsity part is the same `factor` × the right one and the factor is a ratio
    of the sizes batch, n_inst, d_sae (all different in the checker); '' otherwise."""
    if not ratios or max(ratios) - min(ratios) > 1e-3 * abs(ratios[0]):
        return ""
    near = lambda v: abs(ratios[0] - v) < 1e-3 * v
    for why, v in (
        (
            f"{batch}/{n_inst} = batch / n_inst: summed over the batch and divided by n_inst, where the mean over the "
            "batch is asked",
            batch / n_inst,
        ),
        (f"{batch} is the batch size: summed over the batch, not averaged", batch),
        (f"1/{batch}: divided by the batch size once more", 1 / batch),
        (f"{n_inst}/{batch} = n_inst / batch: divided by the batch size and multiplied by n_inst", n_inst / batch),
        (f"1/{d_sae}, 1/d_sae: |acts| averaged over the latents where L_sparsity sums them", 1 / d_sae),
        (f"1/{n_inst}, 1/n_inst: the sparsity term averaged over instances instead of summed", 1 / n_inst),
    ):
        if near(v):
            return f" ({why})"
    return ""


def reconstruction_factor(factor: float, batch: int, n_inst: int, d_in: int) -> str:
    """' (why)' for a reconstruction part `factor` × the right one; the sizes batch, n_inst, d_in are all different
    in the checker, so a factor equal to one of them names its axis. '' when none fits."""
    near = lambda v: abs(factor - v) < 1e-3 * v
    for why, v in (
        (f"{d_in} is d_in: the squared error summed over d_in where L_reconstruction takes its mean (.mean(-1))", d_in),
        (f"1/{d_in}, 1/d_in: the squared error averaged twice over d_in (or a mean where a sum is asked)", 1 / d_in),
        (f"{n_inst} is n_inst: summed where a mean was asked", n_inst),
        (f"1/{n_inst}, 1/n_inst: averaged over instances instead of summed", 1 / n_inst),
        (f"{batch} is the batch size: summed over the batch, not averaged", batch),
        (f"1/{batch}, 1/batch: divided by the batch size once more", 1 / batch),
        (
            f"1/{d_in * n_inst} = 1/(d_in · n_inst): e.g. the total divided by h.numel() = batch · n_inst · d_in, "
            "where "
            "the loss is the batch mean summed over instances",
            1 / (d_in * n_inst),
        ),
        (
            f"{batch * d_in} = batch · d_in: summed over the batch and over d_in, both where a mean is asked",
            batch * d_in,
        ),
    ):
        if near(v):
            return f" ({why})"
    reason = factor_reason(factor, {"d_in": d_in, "batch": batch, "inst": n_inst}, [])
    return f" ({reason})" if reason and not reason.startswith("a missing") else ""


def live_norm_statistic(length: Tensor, inst_of: Tensor, W_enc: Tensor, dead: Tensor, scale: float) -> str | None:
    """`length` [n]: the new encoder columns' lengths; `W_enc` [inst d_in d_sae]: the encoder before resampling.
    The message when every length is resample_scale times, or divided by, one statistic of the instance's live
    encoder columns other than the mean of their norms (the right one: its mismatch is told elsewhere)."""
    stats = {}
    for k in range(W_enc.shape[0]):
        columns = W_enc[k][:, ~dead[k]].double()  # [d_in n_live]
        live = columns.norm(dim=0)
        if live.numel() < 2:
            return None
        for name, value in (
            (
                "the norm of the mean live column (W_enc[inst][:, live].mean(-1).norm(): the columns averaged "
                "before the norm, not their norms averaged)",
                columns.mean(-1).norm(),
            ),
            ("the median (torch.median)", live.median()),
            ("the median (quantile 0.5)", live.quantile(0.5)),
            ("the mean", live.mean()),
            ("the largest", live.max()),
            ("the smallest", live.min()),
            ("the root mean square", live.pow(2).mean().sqrt()),
            (
                "the root of the summed squares (= the Frobenius norm of the whole live block, "
                "W_enc[inst][:, live].norm(), √n_live × their root mean square)",
                live.pow(2).sum().sqrt(),
            ),
            ("the sum", live.sum()),
        ):
            stats.setdefault(name, []).append(value)
    got = length.double()
    for name, values in stats.items():
        s = torch.stack(values)[inst_of]
        for how, value in (("times", scale * s), ("divided by", scale / s), ("over resample_scale:", s / scale)):
            if name == "the mean" and how == "times":
                continue
            if torch.allclose(got, value, rtol=1e-3):
                of = "" if name.startswith("the norm of the mean") else " of the live latents' encoder norms"
                rule = (
                    f"{name}{of} divided by resample_scale ({scale:g})"
                    if how.startswith("over")
                    else f"resample_scale {how} {name}{of}"
                )
                return (
                    f"the new encoder columns' lengths are {rule} (per instance), not resample_scale times the mean "
                    "of the live latents' encoder column norms"
                )
    return None


def fitted_power(loss: Tensor, counts: Tensor) -> float:
    """The exponent p that best explains `counts` [inst types] of picks with probability ∝ loss^p (maximum
    likelihood on a grid of step 0.01 over [-6, 8]; types of zero loss are left out)."""
    ok = loss > 0
    log_loss = torch.where(ok, loss.double().clamp_min(1e-300).log(), torch.zeros_like(loss.double()))
    grid = torch.arange(-6.0, 8.0001, 0.01, dtype=torch.float64)
    logits = grid[:, None, None] * log_loss[None]
    logits = torch.where(ok[None], logits, torch.full_like(logits, -math.inf))
    logp = torch.log_softmax(logits, -1).nan_to_num(neginf=0.0)
    ll = (counts.double()[None] * logp).sum((-1, -2))
    return float(grid[int(ll.argmax())])


def divisor_readoff(out: Tensor, W: Tensor) -> str:
    """When the rows of `out` [inst d_sae d_in] point along W's but are not unit: what each row was divided by,
    read off as ‖W_row‖ / ‖out_row‖ and compared with other norms than the row's own. '' when none fits."""
    rows = (W.norm(dim=-1) > 0) & (out.norm(dim=-1) > 0)
    if not rows.any():
        return ""
    divisor = W.norm(dim=-1) / out.norm(dim=-1).clamp_min(1e-30)  # [inst d_sae]
    norms = W.norm(dim=-1)
    for name, value in (
        ("the largest row norm of its instance (W.norm(dim=-1).amax(-1))", norms.amax(-1, keepdim=True)),
        ("the mean row norm of its instance", norms.mean(-1, keepdim=True)),
        ("instance 0's row norms (norm[0]) for every instance", norms[:1]),
        ("the row norms averaged over the instances", norms.mean(0, keepdim=True)),
        ("the largest row norm of the whole tensor", norms.amax().reshape(1, 1)),
    ):
        value = value.expand_as(divisor)
        if not torch.allclose(value, norms) and torch.allclose(divisor[rows], value[rows], rtol=1e-3):
            return f"; each row was divided by {name}, not by its own norm"
    return ""


# W_dec_normalized: `W.norm(-1, keepdim=True)`: Tensor.norm's first positional argument is p, not dim, so this is
# the p = -1 "norm" (Σ |w|⁻¹)⁻¹ of the WHOLE tensor, one number, 0 as soon as one entry is 0 (the checker's decoder
# has a zero row): the output is then W / eps.
NORM_P_POSITIONAL = (
    "norm_p_positional",
    "your output is W_dec divided by one number for the whole tensor, not each row by its own norm: here "
    "W / (W.norm(-1, keepdim=True) + eps), where norm(-1) is the p = -1 'norm' (Σ|w|⁻¹)⁻¹ of every entry, which "
    "is 0 when any entry is 0, so the output is W / eps. Possible causes: the norm's arguments: "
    "Tensor.norm(p, dim): a positional -1 is p, not dim (write norm(dim=-1, keepdim=True)); any reduction "
    "without dim (over the whole tensor)",
    lambda W, eps: W / (W.norm(-1, keepdim=True) + eps),
)


def repeated_examples_failure(h: Tensor, drawn: list[Tensor], W: Tensor | None = None) -> None:
    """Fail when two examples of one instance of generate_batch's output are the same non-zero vector. Features are
    drawn independently with continuous values, so two equal non-zero examples never happen by chance (all-zero
    examples can, and are left out, as are as many repeats as
    the draws have all-zero feature vectors): the same draw was repeated over the batch (`.expand`, `.repeat`)."""
    h = h.detach()
    if h.ndim != 3 or h.shape[0] < 2:
        return
    n_repeated = 0
    for i in range(h.shape[1]):
        rows = h[:, i][h[:, i].abs().amax(-1) > 0]
        n_repeated = max(n_repeated, rows.shape[0] - torch.unique(rows, dim=0).shape[0])
    # an all-zero feature draw gives the same h in a correct generator too (0, or a bias added, named later): allow
    # as many repeats as the recorded draws have all-zero examples
    allowed = sum(int((d == 0).flatten(2).all(-1).sum()) for d in drawn if d.ndim == 3)
    if n_repeated > allowed:
        asked = sorted({d.shape[0] for d in drawn if d.ndim >= 1})
        fail(
            f"generate_batch({h.shape[0]}) returned examples that are exact copies of each other ({n_repeated} "
            "repeated non-zero examples in one instance): the examples of a batch must be independent draws"
            + (f"; it asked the toy model for {', '.join(map(str, asked))} example(s)" if asked else ""),
            "one draw repeated over the batch (an .expand/.repeat of a smaller batch): draw all batch_size examples "
            "at once with self.model.generate_batch(batch_size)",
            code="repeated_examples",
        )
    if W is not None:
        short_draw_failure(h, drawn, W)


def short_draw_failure(h: Tensor, drawn: list[Tensor], W: Tensor) -> None:
    """Fail (too_few_draws) when generate_batch returned more examples than it drew from the toy model in all: the
    batch was filled up from fewer draws (the draw with a negated, flipped or rescaled copy of it appended, or
    something else that is not a draw). Each output example is read back as c · (W x) of a drawn example x."""
    if h.ndim != 3 or any(x.ndim != 3 or x.shape[1:] != drawn[0].shape[1:] for x in drawn):
        return
    total = sum(x.shape[0] for x in drawn)
    if total >= h.shape[0] or drawn[0].shape[1] != h.shape[1] or drawn[0].shape[2] != W.shape[-1]:
        return
    hx = torch.einsum("bif,idf->bid", torch.cat(drawn).to(W.dtype), W).flatten(1)  # [drawn, inst·d_in]
    y = h.detach().to(W.dtype).flatten(1)  # [batch, inst·d_in]
    kinds = {"exact copies": 0, "negated copies": 0, "rescaled copies": 0}
    live = hx.norm(dim=-1) > 1e-6
    for row in y[y.norm(dim=-1) > 1e-6]:
        scale = row.norm()
        if bool(((row[None] - hx).norm(dim=-1) < 1e-4 * scale).any()):  # a copy first: colinear draws are common
            kinds["exact copies"] += 1
        elif bool(((row[None] + hx).norm(dim=-1) < 1e-4 * scale).any()):
            kinds["negated copies"] += 1
        else:
            c = (hx @ row) / hx.pow(2).sum(-1).clamp_min(1e-12)  # the best multiple of each drawn example
            err = (row[None] - c[:, None] * hx).norm(dim=-1).masked_fill(~live, float("inf"))
            kinds["rescaled copies"] += int(float(err.min()) < 1e-4 * scale)
    kinds["exact copies"] = max(0, kinds["exact copies"] - total)  # each drawn example is expected once
    extra = h.shape[0] - total
    seen = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
    fail(
        f"generate_batch({h.shape[0]}) returned {h.shape[0]} examples, but drew only {total} from the toy model "
        f"(self.model.generate_batch called with {', '.join(str(x.shape[0]) for x in drawn)})"
        + (f"; of the {extra} examples beyond the draws, read back: {seen} of drawn ones" if seen else ""),
        "every example of the batch must be its own draw: call self.model.generate_batch(batch_size) for the whole "
        "batch and map it through W; don't fill the batch up with copies of drawn examples (negated, flipped, "
        "rescaled) or with anything that is not a draw",
        code="too_few_draws",
    )


def batch_of_one_failure(sae) -> None:
    """generate_batch(1): the contract allows any batch_size, and an output whose batch axis of size 1 is gone (a
    .squeeze() without dim) is named by the axis it dropped."""
    out = sae.generate_batch(1)
    n_inst, d_in = sae.cfg.n_inst, sae.cfg.d_in
    size_one_axis_failure(out, (1, n_inst, d_in), ("batch", "inst", "d_in"), "generate_batch(1)")


def window_slice_rule(changed: Tensor, frac: Tensor, active: Tensor) -> None:
    """Fail when the changed latents are exactly those silent on one contiguous part of the window (steps a..b-1,
    not all of it): dead judged on a slice of frac_active_in_window. Every slice is tried (the window is short);
    all slices that give the same latents are listed (the checker's window may not tell them apart)."""
    n = frac.shape[0]
    slices = [
        f"[{a}:{b}]"
        for a in range(n)
        for b in range(a + 1, n + 1)
        if (a, b) != (0, n) and torch.equal(changed, (frac[a:b] <= 0).all(0) & active[:, None])
    ]
    lasts = [s for s in slices if s.endswith(f":{n}]")]
    if slices and len(lasts) == len(slices):
        ms = sorted(n - int(s[1:].split(":")[0]) for s in lasts)
        fail(
            f"the latents you resampled are exactly those that fired at no step of only the last m steps of the "
            f"{n}-step window (frac_active_in_window[-m:], m = {' or '.join(map(str, ms))} here), not of the whole "
            "window: latents that fired only at an earlier step were treated as dead",
            "a latent is dead if it fired at no step of the WHOLE window: (frac_active_in_window <= 0).all(dim=0), "
            "not the last few rows (the notebook's window is 250 steps long, whatever slice you took)",
            code="window_slice",
        )
    if slices:
        fail(
            f"the latents you resampled are exactly those that fired at no step of a part of the {n}-step window "
            f"(frac_active_in_window{' or '.join(slices)} gives them), not of the whole window: latents that fired "
            "only at the other steps were treated as dead (or the other way round)",
            "a latent is dead if it fired at no step of the WHOLE window: (frac_active_in_window <= 0).all(dim=0) "
            "over every row, not a slice of the window (such as its last half)",
            code="window_slice",
        )


def negated_direction_hint(rows: Tensor) -> None:
    """Fail when every new direction is minus a right one (unit, on one input type's axis, but pointing the
    other way): the direction was b_dec - h, not h - b_dec (or negated later)."""
    best = rows.abs().max(-1)
    signs = rows.gather(-1, best.indices[:, None])
    if rows.numel() and bool((best.values > 1 - 1e-4).all()) and bool((signs < 0).all()):
        fail(
            "every new decoder direction points exactly opposite to (input - b_dec) of an example from "
            "sae.generate_batch: a negated direction",
            "the direction is (h[i] - b_dec) / ‖h[i] - b_dec‖. Possible causes: the subtraction reversed (b_dec - h); "
            "a minus sign on the direction, or the residual taken as ĥ - h instead of h - ĥ",
            code="direction_negated",
        )


def pooled_features_failure(h: Tensor, features: Tensor, W: Tensor) -> None:
    """generate_batch: fail when every instance's h is its own W applied to one weighted sum Σ_j c_j x[:, j] of the
    instances' features, the weights c fitted by least squares per instance (batch · d_in equations for n_inst
    unknowns), exactly, and not the instance's own features: the features pooled over the inst axis. One-hot c
    (another instance's features) is left to the instance-slice diagnosis."""
    x, y, Wd = features.detach().double(), h.detach().double(), W.detach().double()
    n_inst = x.shape[1]
    if y.shape[:2] != x.shape[:2] or y.shape[2] != Wd.shape[1] or n_inst < 2:
        return
    weights = []
    for i in range(n_inst):
        design = torch.stack([(x[:, j] @ Wd[i].T).flatten() for j in range(n_inst)], -1)  # [batch·d_in n_inst]
        c = torch.linalg.lstsq(design, y[:, i].flatten()[:, None]).solution[:, 0]
        if not torch.allclose(design @ c, y[:, i].flatten(), rtol=1e-4, atol=1e-4):
            return
        weights.append(c)
    C = torch.stack(weights)  # [inst j]
    eye = torch.eye(n_inst, dtype=C.dtype)
    one_hot = ((C - C.round()).abs() < 1e-3).all() and (C.round().abs().sum(-1) == 1).all()
    if bool(((C * (1 - eye)).abs() < 1e-3).all()) or one_hot:
        return  # each instance its own features only (maybe scaled: told elsewhere), or another instance's
    for name, value in (
        ("averaged over the instances (features.mean(1) or mean over the inst axis)", 1 / n_inst),
        ("summed over the instances (features.sum(1))", 1.0),
    ):
        if torch.allclose(C, torch.full_like(C, value), atol=1e-3):
            fail(
                f"every instance's h is its own W applied to the same features, {name}: each instance must see its "
                "own features",
                "keep the inst axis of the features: h = einsum(features, self.model.W, 'batch inst feats, inst d_in "
                "feats -> batch inst d_in'), with no reduction over instances",
                code="features_pooled",
            )
    rows = "; ".join(f"instance {i}: {[round(v, 3) for v in C[i].tolist()]}" for i in range(n_inst))
    fail(
        "every instance's h is its own W applied to a mix of ALL instances' features (weights per instance read back "
        f"by least squares: {rows}), not to its own features",
        "each instance's h uses its own features only: keep the inst axis aligned in the einsum, no reduction or "
        "mixing over instances",
        code="features_pooled",
    )


def _model_fields(model: Any, shape: torch.Size) -> list[tuple[str, Tensor]]:
    """Per-feature tensors of the toy model (buffers broadcastable to [inst feats]), and simple functions of them."""
    out = []
    for name, t in model.named_buffers():
        t = t.detach().double().cpu()
        if t.ndim > 2 or name.startswith("_"):
            continue
        try:
            t = t.expand(shape)
        except RuntimeError:
            continue
        out += [
            (f"self.model.{name}", t),
            (f"1 / self.model.{name}", 1 / t),
            (f"1 - self.model.{name}", 1 - t),
            (f"self.model.{name} squared", t**2),
            (f"the square root of self.model.{name}", t.clamp_min(0).sqrt()),
        ]
    return out


def feature_scale_failure(h: Tensor, features: Tensor, W: Tensor, model: Any) -> None:
    """generate_batch: fail when h = W (s ⊙ x), each feature scaled by a factor s[inst, feat] ≠ 1 fitted by least
    squares per instance (the features seen in the batch), named when s equals a per-feature field of the toy model
    (feature_probability, importance) or a simple function of one; else the factors are listed."""
    x, y, Wd = features.detach().double().cpu(), h.detach().double().cpu(), W.detach().double().cpu()
    if y.shape[:2] != x.shape[:2] or y.shape[2] != Wd.shape[1]:
        return
    n_inst, n_feats = x.shape[1], x.shape[2]
    s = torch.full((n_inst, n_feats), float("nan"), dtype=torch.float64)
    for i in range(n_inst):
        cols = (x[:, i] != 0).any(0).nonzero().flatten()
        if cols.numel() == 0:
            return
        design = torch.stack([(x[:, i, f, None] * Wd[i, :, f]).flatten() for f in cols.tolist()], -1)
        c = torch.linalg.lstsq(design, y[:, i].flatten()[:, None]).solution[:, 0]
        if not torch.allclose(design @ c, y[:, i].flatten(), rtol=1e-4, atol=1e-4):
            return
        s[i, cols] = c
    seen = ~s.isnan()
    if torch.allclose(s[seen], torch.ones_like(s[seen]), atol=1e-3):
        return
    if torch.allclose(s[seen], s[seen][:1].expand_as(s[seen]), rtol=1e-3, atol=1e-6):
        return  # one constant factor: the generic factor diagnosis names it
    for name, value in _model_fields(model, s.shape):
        if torch.allclose(s[seen], value[seen], rtol=1e-3, atol=1e-5):
            fail(
                f"h = W (s ⊙ x): each feature was multiplied by its own factor before W (factors read back per "
                f"instance and feature by least squares), and the factors are {name}",
                "the features go into W as drawn: h = einsum(features, self.model.W, 'batch inst feats, inst d_in "
                f"feats -> batch inst d_in'); {name} is no part of h (generate_batch already drew the features with "
                "their probabilities)",
                code="feature_scaled",
            )
    shown = [[None if v != v else round(v, 3) for v in row] for row in s.tolist()]
    fail(
        f"h = W (s ⊙ x): each feature was multiplied by its own factor before W, the factors per [inst, feat] read "
        f"back by least squares: {shown}",
        "the features go into W as drawn: h = einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> "
        "batch inst d_in'); the factors that are not 1 show where. They are not the toy model's per-feature "
        "fields ("
        + ", ".join(n for n, _ in _model_fields(model, s.shape) if n.startswith("self"))
        + ") or the functions of them tried"
        + (
            f"; {int((s[seen].abs() < 1e-6).sum())} features have factor 0 (left out)"
            if (s[seen].abs() < 1e-6).any()
            else ""
        ),
        code="feature_scaled",
    )


def pooled_live_set(length: Tensor, inst_of: Tensor, W_enc: Tensor, dead: Tensor, scale: float) -> None:
    """The new encoder columns' `length` [n] equal to resample_scale × the mean live norm taken over a live set shared
    by every instance (live in every instance, ~dead.any(0), or in any, ~dead.all(0)) instead of each instance's own."""
    got = length.double()
    for mask, how in ((~dead.any(0), "~dead.any(0): live in every instance"), (~dead.all(0), "~dead.all(0)")):
        if not mask.any() or torch.equal(mask.expand_as(dead), ~dead):
            continue
        means = torch.stack([W_enc[k][:, mask].double().norm(dim=0).mean() for k in range(W_enc.shape[0])])
        if torch.allclose(got, scale * means[inst_of], rtol=1e-3):
            fail(
                "the new encoder columns have the length of a mean live encoder norm taken over the wrong latents: "
                f"one live set shared by every instance ({how}, {int(mask.sum())} latent(s)) instead of each "
                "instance's own live latents",
                "take the live mask per instance: ~dead[inst], and average ‖W_enc[inst, :, j]‖ over those j",
                code="live_set_pooled",
            )


def left_alone(sae: Any, before: dict, skipped: Tensor) -> None:
    """Every parameter of the `skipped` instances [inst] (all reconstruction losses 0: nothing to resample towards)
    equal to its value `before` the call: W_enc, W_dec, then the biases b_enc and b_dec."""
    W_enc, W_dec = sae.W_enc.detach()[skipped], sae.W_dec.detach()[skipped]
    if (W_dec != before["W_dec"][skipped]).any() or (W_enc != before["W_enc"][skipped]).any():
        fail(
            "latents of an instance whose reconstruction losses are all 0 were resampled",
            "an instance with nothing left to explain has no input to resample towards: leave it alone when its "
            "weights sum to 0, and weight by the reconstruction loss alone (L_rec², no sparsity term, which isn't 0)",
            code="zero_loss_instance",
        )
    for name in ("b_enc", "b_dec"):
        now, was = getattr(sae, name).detach()[skipped], before[name][skipped]
        if (now != was).any():
            changed = now != was
            fail(
                f"{name} changed in an instance whose reconstruction losses are all 0 (nothing is resampled there: its "
                f"W_enc and W_dec are untouched): {int(changed.sum())} entries, e.g. {was[changed][0].item():.4g} → "
                f"{now[changed][0].item():.4g}",
                "every parameter of a skipped instance stays as it was: set b_enc to 0 only for the latents you "
                "resample, inside the per-instance loop after the skip (not for every dead latent before it)",
                code="skipped_instance_bias",
            )


PRESENCE_MISTAKE = (
    "feature_presence",
    "h = W x with the features' values as drawn: yours replaced each feature by its presence (0/1, e.g. "
    "(x > 0).float()), dropping how large it is",
    lambda x, W: torch.einsum("bif,idf->bid", (x > 0).to(x.dtype), W),
)


def batch_count_failure(h: Tensor, batch_size: int, drawn: list[Tensor], W: Tensor) -> None:
    """Fail when generate_batch returned another number of examples than asked; when that number is another size
    of the inputs (n_inst, d_in, n_feats), say so, and name a per-instance loop that indexed the batch axis (x[i]
    where x[:, i] was meant) when h[k, i] = W[i] x[i, k] reproduces the output."""
    n = h.shape[0]
    if n == batch_size:
        return
    n_inst, d_in, n_feats = W.shape
    sizes = {"n_inst": n_inst, "d_in": d_in, "n_feats": n_feats}
    same = [name for name, size in sizes.items() if size == n]
    x = next((d for d in drawn if d.shape[0] == batch_size and d.shape[1:] == (n_inst, n_feats)), None)
    if x is not None and n == n_inst and h.shape[1:] == (n_inst, d_in) and n_inst <= batch_size:
        swapped = torch.einsum("ikf,idf->kid", x[:n_inst].to(W), W)  # h[k, i] = W[i] x[i, k]
        if torch.allclose(h.detach().to(W), swapped, rtol=1e-4, atol=1e-5):
            fail(
                f"generate_batch({batch_size}) returned {n} examples, which is n_inst: its row k, instance i is "
                f"W[i] @ x[i, k], the features of example i (not of example k, instance i)",
                "x[i] indexes the batch axis (axis 0) of the features x [batch inst feats]: in a per-instance loop "
                "take x[:, i] (instance i of every example), or do all instances at once with einsum",
                code="batch_axis_indexed",
            )
    fail(
        f"generate_batch({batch_size}) returned {n} examples"
        + (f" ({n} is {' and '.join(same)}: an axis of that size ended up first?)" if same else ""),
        "draw exactly batch_size examples with self.model.generate_batch(batch_size), and keep its batch axis first",
        code="batch_size",
    )


def combined_draws_failure(h: Tensor, drawn: list[Tensor], W: Tensor) -> None:
    """Fail (draws_combined) when h is, over the whole batch, a combination c_1 · W x_1 + c_2 · W x_2 + ... of two or
    more of the toy model's draws (read back by least squares): draws added or averaged into one batch."""
    same = [x for x in drawn if x.ndim == 3 and x.shape[0] == h.shape[0] and x.shape[1:] == drawn[0].shape[1:]]
    if h.ndim != 3 or len(same) < 2 or same[0].shape[1] != h.shape[1] or same[0].shape[2] != W.shape[-1]:
        return
    A = torch.stack([torch.einsum("bif,idf->bid", x.to(W.dtype), W).flatten() for x in same], -1).double()
    y = h.detach().double().flatten()
    if A.shape[0] != y.shape[0] or y.norm() == 0:
        return
    c = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    used = [(i, float(v)) for i, v in enumerate(c.tolist()) if abs(v) > 1e-3]
    if len(used) < 2 or float((A @ c - y).norm() / y.norm()) > 1e-4:
        return
    terms = " + ".join(f"{v:.4g} · W x_{i + 1}" for i, v in used)
    fail(
        f"generate_batch's h is {terms}, a combination of {len(used)} of the {len(same)} feature batches it drew "
        "from the toy model (read back)",
        "draw once and map that draw: h = W x for x = self.model.generate_batch(batch_size); added or averaged draws "
        "don't follow the model's feature distribution (more features present at once, other values)",
        code="draws_combined",
    )
