"""Probes for part 5 added after the fresh8 held-out measurement: the toy model kept as a copy, which instance's
features generate_batch reads, a per-instance resampling loop that stops at an instance with nothing to do, and
the length of advanced resampling's new encoder columns (the dead latents' mean norm, an unnormalised input)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part5_toy_saes_direction_steps as DS
from tests import part5_toy_saes_offset_readings as OR
from tests.checking import fail
from tests.learner_errors import failing_line
from tests.part5_toy_saes_eps_placement import eps_placement_failure, short_rows_raw_failure
from tests.part5_toy_saes_fallbacks import model_not_module_failure
from tests.part5_toy_saes_loss_readings import coeff_column_failure
from tests.part5_toy_saes_readoffs import fitted_power
from tests.part5_toy_saes_row_norms import read_back_eps
from tests.part5_toy_saes_zeroed_mean import zeroed_dead_mean_failure


# --------------------------------------------------------------------------------------------
# __init__: the toy model itself, or a frozen copy of it
# --------------------------------------------------------------------------------------------
def check_model_optional(impl: type, cfg: Any) -> None:
    """The docstring makes the model optional ("The model (if given)"): ToySAE(cfg) alone must build."""
    try:
        impl(cfg, None)
    except Exception as err:  # any error here is the learner's: named, not a crash
        fail(
            f"ToySAE(cfg, model=None) raised {type(err).__name__}: {err}",
            "the model is optional: guard everything that reads it (`model.requires_grad_(False)`, its device) "
            "with `if model is not None`",
            code="model_none",
        )


def kept_model(sae: Any, model: torch.nn.Module) -> torch.nn.Module | None:
    """The toy model as the SAE keeps it: `model` itself, or a copy with the same weights (the docstring says
    "keep a frozen copy of the toy model"; the SAE only reads from it). None when self.model is neither."""
    kept = getattr(sae, "model", None)
    model_not_module_failure(kept, model)
    if kept is model:
        return model
    if type(kept) is not type(model):
        return None
    mine, theirs = kept.state_dict(), model.state_dict()
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine):
        return None
    return kept


# --------------------------------------------------------------------------------------------
# generate_batch: which instance's features each instance of h is made from
# --------------------------------------------------------------------------------------------
def input_slice_hint(h: Tensor, features: Tensor, W: Tensor) -> None:
    """Fail when instance i of h is W[k] x[:, j] with (j, k) != (i, i) for some i, the same (j, k) fitting no
    other way: name the features (and map) each instance reads. Silent when h is not built that way."""
    x, y, Wd = features.detach().double(), h.detach().double(), W.detach().double()
    n_inst = x.shape[1]
    if y.shape[:2] != x.shape[:2] or n_inst < 2:
        return
    reads: list[tuple[int, int]] = []
    for i in range(n_inst):
        fits = [
            (j, k)
            for j in range(n_inst)
            for k in range(n_inst)
            if torch.allclose(x[:, j] @ Wd[k].T, y[:, i], rtol=1e-4, atol=1e-5)
        ]
        if len(fits) != 1:
            return
        reads.append(fits[0])
    if all(j == i and k == i for i, (j, k) in enumerate(reads)):
        return
    sources = {j for j, _ in reads}
    own_map = all(k == i for i, (_, k) in enumerate(reads))
    if len(sources) == 1 and own_map:
        j = sources.pop()
        fail(
            f"every instance of h is its own W applied to instance {j}'s features: features[:, {j}] is read for all "
            "instances",
            "instance i's h uses instance i's features: index the features with the loop's instance (features[:, i]), "
            "or use one einsum over all instances: einsum(features, self.model.W, 'batch inst feats, inst d_in feats "
            "-> batch inst d_in')",
            code="features_of_one_instance",
        )
    listed = ", ".join(f"instance {i} reads features[:, {j}] with W[{k}]" for i, (j, k) in enumerate(reads))
    fail(
        f"h mixes up instances: {listed}",
        "instance i's h is W[i] applied to instance i's features: keep the inst axis aligned in the einsum",
        code="instances_mixed_up",
    )


# --------------------------------------------------------------------------------------------
# resample_simple: an instance with no dead latent must not end the loop
# --------------------------------------------------------------------------------------------
def spare_instance(frac: Tensor, groups: dict[str, Tensor], k: int) -> None:
    """Make instance k's dead latents fire at every step (in place): instance k has nothing to resample, while
    the instances after it do. A per-instance loop that returns or breaks there leaves them alone."""
    dead = groups["dead"][k].clone()
    frac[:, k, dead] = torch.rand(frac.shape[0], int(dead.sum()), device=frac.device) * 0.2 + 0.01
    groups["dead"][k] = False


def check_loop_stopped(sae: Any, before: dict, dead: Tensor) -> None:
    """Fail when the instances after the first one with no dead latent were skipped entirely, the ones before
    it resampled: a per-instance loop that stops (return, break) where it should go on (continue)."""
    changed = (sae.W_enc.detach() != before["W_enc"]).any(1) | (sae.W_dec.detach() != before["W_dec"]).any(-1)
    has_dead, done = dead.any(-1), (changed & dead).any(-1)
    empty = (~has_dead).nonzero().flatten().tolist()
    if not empty:
        return
    first = empty[0]
    after = torch.arange(dead.shape[0], device=dead.device) > first
    skipped = has_dead & ~done
    if skipped.any() and torch.equal(skipped, has_dead & after) and bool(done[:first].all()) and first > 0:
        fail(
            f"instance {first} has no dead latent; the instances after it "
            f"({', '.join(map(str, skipped.nonzero().flatten().tolist()))}) have dead latents but none was "
            f"resampled, while those before it were",
            "an instance with nothing to resample must be skipped, not end the loop: `continue` there, not `return` "
            "or `break` (or resample all instances at once with the [inst d_sae] dead mask)",
            code="loop_stopped",
        )


# --------------------------------------------------------------------------------------------
# resample_advanced: what the new encoder columns' lengths follow
# --------------------------------------------------------------------------------------------
def group_scales(groups: dict[str, Tensor]) -> Tensor:
    """[inst d_sae] factors for the encoder columns of each latent group of `M.window_groups`, all different
    (dead 2.5, fired at the first step only 3.5, ...), so a mean norm over any other set of latents than the live
    ones (all, fired at the last step, fired at every step, dead) is at least a few % away from the right one."""
    factors = {"dead": 2.5, "first_only": 3.5, "last_only": 0.3, "middle_only": 4.0, "rare": 0.5}
    out = torch.ones_like(groups["dead"], dtype=torch.float32)
    for name, f in factors.items():
        out = torch.where(groups[name], f, out)
    return out


def enc_length_hint(
    enc: Tensor,
    rows: Tensor,
    want: Tensor,
    inst_of: Tensor,
    W_enc: Tensor,
    dead: Tensor,
    scale: float,
    q: Tensor,
    frac: Tensor | None = None,
) -> None:
    """`enc`, `rows` [n d_in]: new encoder columns and decoder rows; `want` [inst]: the right length; `W_enc`:
    the encoder before resampling; `q` [inst types]: the squared norm of each input type (input j of instance k
    is b_dec + sqrt(q[k, j]) e_j, so a row along e_j came from type j). Name a length that follows the dead
    latents' norms or the picked input's norm."""
    length = (enc * rows).sum(-1)
    zeroed_dead_mean_failure(length, want, inst_of, W_enc, dead, scale)
    norms = W_enc.norm(dim=1)
    dead_f = dead.to(norms.dtype)
    dead_mean = (norms * dead_f).sum(-1) / dead_f.sum(-1).clamp_min(1)
    if torch.allclose(length, scale * dead_mean[inst_of], rtol=1e-3):
        fail(
            "the new encoder columns have the mean encoder norm of the *dead* latents (times resample_scale), not "
            "of the live ones",
            "average ‖W_enc[inst, :, j]‖ over the live latents j (~dead): is the mask inverted?",
            code="dead_latents_norm",
        )
    if frac is not None:  # the mean over another set than the live ones (~dead); all latents: code all_norm
        for mask, which in (
            (frac[-1] > 0, "the latents that fired at the last step of the window (frac[-1] > 0)"),
            (frac[0] > 0, "the latents that fired at the first step of the window (frac[0] > 0)"),
            ((frac > 0).all(0), "the latents that fired at every step of the window"),
        ):
            m = mask.to(norms.dtype)
            mean = (norms * m).sum(-1) / m.sum(-1).clamp_min(1)
            if not torch.allclose(mean, want / scale, rtol=1e-3) and torch.allclose(
                length, scale * mean[inst_of], rtol=1e-3
            ):
                fail(
                    f"the new encoder columns have resample_scale times the mean encoder norm over {which}, not "
                    "over the live latents",
                    "live means fired at some step of the window: average ‖W_enc[inst, :, j]‖ over ~dead, with "
                    "dead = (frac_active_in_window <= 0).all(dim=0), the same mask as the latents you resample",
                    code="live_set",
                )
    picked = q.sqrt()[inst_of, rows.abs().argmax(-1)].to(length.dtype)  # ‖h - b_dec‖ of each latent's input
    if not torch.allclose(picked, picked[:1].expand_as(picked)) and torch.allclose(
        length, want[inst_of] * picked, rtol=1e-3
    ):
        fail(
            "each new encoder column's length is the right one times ‖h - b_dec‖ of the input it was resampled from",
            "build the encoder column from the unit direction v = (h - b_dec) / ‖h - b_dec‖ (the same v as the "
            "decoder row), not from h - b_dec itself: v · resample_scale · mean live encoder norm",
            code="enc_unnormalised_input",
        )
    count_factor_hint(length, want, inst_of, dead, W_enc.shape[1])


def count_factor_hint(length: Tensor, want: Tensor, inst_of: Tensor, dead: Tensor, d_in: int) -> None:
    """The new encoder lengths are the right ones times (or divided by) a count: the live or dead latents of the
    instance, d_sae or d_in. The checker's sizes keep these apart (about 100 live, 900 dead, d_sae 1000, d_in 5),
    so the count a ratio matches (rtol 1e-3) is the only one it can be."""
    d_sae = dead.shape[-1]
    ratio = (length / want[inst_of]).double()
    counts = {
        "the number of live latents in that instance (a sum over the live latents where their mean was asked)": (
            (~dead).sum(-1),
            "divide the sum of the live latents' encoder norms by their count: a mean, not a sum",
        ),
        "the number of dead (resampled) latents in that instance": (
            dead.sum(-1),
            "no factor for how many latents are dead: each new column is v · resample_scale · mean live norm",
        ),
    }
    for which, (count, hint) in counts.items():
        for power, how in ((1, "times"), (-1, "divided by")):
            factor = count.double()[inst_of] ** power
            if bool((count[inst_of] > 1).all()) and torch.allclose(ratio, factor, rtol=1e-3):
                fail(
                    f"the new encoder columns' lengths are the right ones {how} {which}", hint, code="enc_count_factor"
                )
    for name, size in (("d_sae", d_sae), ("d_in", d_in), ("√d_in", d_in**0.5), ("√d_sae", d_sae**0.5)):
        for power, how in ((1, "times"), (-1, "divided by")):
            if torch.allclose(ratio, torch.full_like(ratio, size**power), rtol=1e-3):
                fail(
                    f"the new encoder columns' lengths are the right ones {how} {name} = {size:.4g}",
                    "a sum where a mean was asked (or the reverse), or an extra normalisation: encoder column = "
                    "v · resample_scale · mean over live latents j of ‖W_enc[inst, :, j]‖",
                    code="enc_count_factor",
                )


# --------------------------------------------------------------------------------------------
# Advanced resampling: the usual wrong sampling weights (moved from the catalogue, which is near 800 lines)
# --------------------------------------------------------------------------------------------
def power_candidates(loss: Tensor, counts: Tensor | None) -> list[tuple[str, str, Tensor]]:
    """L_rec^p with p the whole exponent fitted from the picks (maximum likelihood; 3 when no counts are given),
    other than the powers listed on their own (0 uniform, 1 linear, 2 right, -2 inverse)."""
    fitted = fitted_power(loss, counts) if counts is not None else 3.0
    p = round(fitted)
    if p in (0, 1, 2, -2) or abs(fitted - p) > 0.3:  # not clearly a whole power: nothing named
        return []
    cause = {
        3: "an extra factor of the loss (L_rec² · L_rec)?",
        4: "the loss squared twice (** 2 applied to losses already squared, or L_rec² · L_rec²)?",
    }.get(p, "check the power the weights are raised to")
    return [
        (
            "sampling_cubed" if p == 3 else "sampling_power",
            f"the picks follow L_reconstruction^{p} (the exponent fitted from the pick frequencies is {fitted:.2f}), "
            f"not L_reconstruction²: {cause} Sample with probability proportional to L_reconstruction ** 2",
            (loss.pow(p) / loss.pow(p).sum(-1, keepdim=True)),
        )
    ]


def fits(observed: Tensor, probs: Tensor, tol: Tensor) -> bool:
    return bool(((observed - probs.to(observed)).abs() <= tol).all())


def weight_candidates(
    loss: Tensor, input_sq_norm: Tensor, d_in: int, counts: Tensor | None = None
) -> list[tuple[str, str, Tensor]]:
    """(code, hint, expected probability of each input type [inst types]) for the usual wrong sampling weights,
    given each type's squared distance from b_dec [inst types] (L_reconstruction · d_in) and ‖h‖² [inst types];
    `counts` [inst types], the picks per type, gives the power of the loss they follow (`power_candidates`)."""

    def normalise(w: Tensor) -> Tensor:
        return w / w.sum(-1, keepdim=True)

    uniform = torch.ones_like(loss)
    return [
        (
            "sampling_linear",
            "sample with probability proportional to the *square* of each example's reconstruction loss, "
            "not the loss itself",
            normalise(loss),
        ),
        (
            "sampling_uniform",
            "weight the examples by their squared reconstruction loss; yours look uniform",
            normalise(uniform),
        ),
        *power_candidates(loss, counts),
        (
            "sampling_inverse",
            "badly reconstructed examples should be *more* likely: weights = L_reconstruction ** 2, not its inverse",
            normalise(loss.pow(-2)),
        ),
        (
            "sampling_input_norm",
            "weight by the squared *reconstruction loss* of each example (from sae.forward), not by the size of h",
            normalise(input_sq_norm.pow(2)),
        ),
        (
            "sampling_input_norm",
            "weight by the squared *reconstruction loss* of each example (from sae.forward), not by the size of h",
            normalise(input_sq_norm),
        ),
        (
            "sampling_first_instance",
            "use each instance's own losses as weights (L_reconstruction[:, inst]), not instance 0's for all",
            normalise(loss[:1].pow(2)).expand_as(loss),
        ),
        (
            "sampling_softmax",
            "sample with probability proportional to L_reconstruction ** 2 (torch.multinomial normalises the weights), "
            "not to a softmax of the losses",
            torch.softmax(loss / d_in, dim=-1),
        ),
        (
            "sampling_sqrt",
            "the picks follow the square root of the loss, i.e. the error's norm ‖h - h_rec‖ (not its square, nor "
            "L_reconstruction itself): weight by L_reconstruction ** 2",
            normalise(loss.sqrt()),
        ),
        (
            "sampling_pooled",
            "use each instance's own losses as weights (L_reconstruction[:, inst]), not losses summed over instances",
            normalise(loss.pow(2).sum(0, keepdim=True)).expand_as(loss),
        ),
        *[
            (
                "sampling_other_batch",
                "each pick follows the loss of a *neighbouring* example type (generate_batch cycles its types and "
                "shifts them on every call): are the losses computed on a second generate_batch call, not on the h "
                "the directions come from? (or an index off by one)",
                normalise(loss.roll(shift, -1).pow(2)),
            )
            for shift in (-1, 1)
        ],
    ]


# --------------------------------------------------------------------------------------------
# Resampling: which latents changed, read as a threshold on a statistic of the window
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# __init__ and W_dec_normalized: fresh values on every call
# --------------------------------------------------------------------------------------------
def check_fresh_init(first: Any, second: Any) -> None:
    """Two SAEs built one after the other from the same config must start from different random weights: equal
    W_enc means __init__ seeds the random state itself (the draws repeat, and so does everything after them)."""
    W1, W2 = getattr(first, "W_enc", None), getattr(second, "W_enc", None)
    if isinstance(W1, Tensor) and isinstance(W2, Tensor) and W1.shape == W2.shape and torch.equal(W1, W2):
        fail(
            "two SAEs built one after the other start with exactly the same W_enc",
            "don't seed inside __init__ (torch.manual_seed, or a torch.Generator seeded there): it resets the random "
            "state, so every SAE and every later draw repeats; seed once, outside the class, when you want "
            "reproducibility",
            code="seeded_init",
        )
    check_own_storage(first)
    check_own_storage(second)


def check_recomputed(sae: Any, param: Tensor, read: Any, before: Tensor) -> None:
    """After the decoder changes (as it does every training step), W_dec_normalized must follow it. `read`
    returns the current W_dec_normalized; `before` is what it returned before the change."""
    with torch.no_grad():
        param.add_(torch.linspace(-0.5, 0.5, param.numel(), device=param.device).reshape(param.shape))
    after = read(sae)
    if isinstance(after, Tensor) and after.shape == before.shape and torch.equal(after.detach(), before.detach()):
        fail(
            "W_dec_normalized returned the same values after the decoder changed",
            "it was computed once and stored (functools.cached_property, or a tensor saved on the object): make it a "
            "plain @property that recomputes from self.W_dec on every access, since training changes W_dec each step",
            code="stale_normalized",
        )


# --------------------------------------------------------------------------------------------
# forward with tied weights: self._W_dec is None, the decoder is the property self.W_dec
# --------------------------------------------------------------------------------------------
def check_tied_forward(run: Any) -> None:
    """`run()` checks the forward of a tied SAE; name a crash on self._W_dec (None when tied)."""
    try:
        run()
    except (TypeError, AttributeError) as err:
        if "NoneType" in str(err):
            fail(
                f"with tied weights (cfg.tied_weights, so self._W_dec is None) forward raised "
                f"{type(err).__name__}: {err}",
                "decode with self.W_dec_normalized (built from the property self.W_dec, which is W_enc transposed "
                "when tied), not from self._W_dec",
                code="used_private_W_dec",
            )
        raise


# --------------------------------------------------------------------------------------------
# Fresh14: an error whose failing line holds a local tensor that is another local reduced over one axis (e.g.
# torch.max(pre, 0).values, a max over the batch, where an elementwise ReLU was meant); the encoder written
# through a reshape of W_enc (the memory reinterpreted, not the axes swapped)
# --------------------------------------------------------------------------------------------
_REDUCTIONS = {
    "max": lambda x, d: x.amax(d),
    "min": lambda x, d: x.amin(d),
    "sum": lambda x, d: x.sum(d),
    "mean": lambda x, d: x.mean(d),
}


def _axis_names(x: Tensor, h: Tensor, sizes: dict[str, int]) -> list[str]:
    """Names of x's axes when x is [batch inst ...] like h and its last size names one config field."""
    names = [f"dim {d}" for d in range(x.ndim)]
    if x.ndim == 3 and x.shape[:2] == h.shape[:2] and h.shape[0] != h.shape[1]:
        names[:2] = ["dim 0, the batch", "dim 1, the instances"]
        fields = [k for k in ("d_in", "d_sae") if sizes.get(k) == x.shape[2]]
        if len(fields) == 1 and x.shape[2] not in h.shape[:2]:
            names[2] = f"dim 2, {fields[0]}"
    return names


def reduced_local_on_error(fn: Callable[[], Any], h: Tensor, sizes: dict[str, int], what: str = "forward") -> Any:
    """fn(); when it raises a RuntimeError, look at the tensors named on the learner's failing line: one that is
    another local tensor of that frame reduced over one axis (max, min, sum or mean) names the lost axis. Otherwise
    the error goes on to the generic description."""
    try:
        return fn()
    except RuntimeError as err:
        frame, line, names = failing_line(err)
        if frame is None:
            raise
        coeff_column_failure(err, frame, line, names, sizes.get("n_inst", -1), h.shape[0])
        local = {k: v for k, v in frame.f_locals.items() if isinstance(v, Tensor) and v.is_floating_point()}
        for name in names:
            value = local.get(name)
            if value is None or value.ndim == 0 or value.shape == h.shape[:2]:
                continue  # [batch inst] is what the forward's per-example losses rightly reduce to
            for source, x in local.items():
                usable = x.numel() > 0 and x.dtype == value.dtype and x.device == value.device != torch.device("meta")
                if x.ndim != value.ndim + 1 or source == name or not usable:
                    continue
                for d in range(x.ndim):
                    if (x.amax(d) == x.amin(d)).all():
                        continue  # constant along d: any reduction gives it back, nothing to name
                    for how, reduce in _REDUCTIONS.items():
                        want = reduce(x.detach(), d)
                        if want.shape != value.shape or not torch.allclose(value.detach(), want, rtol=1e-5):
                            continue
                        axis = _axis_names(x, h, sizes)[d]
                        hint = (
                            f"`torch.max(x, {d})` / `x.max({d})` is a reduction along dim {d} (it returns values and "
                            "indices), not an elementwise max with 0: for ReLU use F.relu(x), x.clamp(min=0) or "
                            "torch.maximum(x, torch.zeros_like(x))"
                            if how == "max"
                            else f"keep that axis: a {how} over {axis} removed it (was another axis meant, or none?)"
                        )
                        fail(
                            f"{what} raised {type(err).__name__}: {str(err).splitlines()[0]}; on that line, `{name}` "
                            f"{list(value.shape)} is `{source}` {list(x.shape)} with a {how} over {axis}",
                            hint,
                            code="reduced_axis",
                        )
        raise


def encoder_through_reshape(sae: Any, before: dict, dead: Tensor, scale: float) -> None:
    """Fail naming it when the encoder is exactly the dead latents' new decoder rows × scale written through
    W_enc.reshape(n_inst, d_sae, d_in) (or .view): a reshape keeps the memory order, it doesn't swap the axes."""
    n_inst, d_in, d_sae = before["W_enc"].shape
    rows, unit = sae.W_dec.detach()[dead], lambda m: bool(((m.norm(dim=0) - 1).abs() < 1e-4).all())
    if (
        dead.any()
        and not unit(rows.T)
        and (
            unit(rows.reshape(d_in, -1))
            or all(
                unit(r.reshape(d_in, -1)) for r in (sae.W_dec.detach()[k][dead[k]] for k in range(n_inst)) if r.numel()
            )
        )
    ):
        fail(
            "the new decoder rows are not unit vectors, but read in memory order as a [d_in, n_dead] matrix their "
            "columns are: unit directions drawn as columns, then .reshape(n_dead, d_in) (or .view) where .T belongs",
            "reshape keeps the memory order, it doesn't swap axes: transpose the [d_in, n_dead] directions (.T), or "
            "draw them as [n_dead, d_in] and normalise each row over d_in",
            code="directions_reshaped",
        )
    enc = sae.W_enc.detach().reshape(n_inst, d_sae, d_in)
    if not dead.any() or torch.equal(sae.W_enc.detach(), before["W_enc"]):
        return
    same_rest = torch.equal(enc[~dead], before["W_enc"].reshape(n_inst, d_sae, d_in)[~dead])
    if same_rest and torch.allclose(enc[dead], sae.W_dec.detach()[dead] * scale, rtol=1e-4, atol=1e-6):
        fail(
            "the encoder holds the new directions × resample_scale written through W_enc.reshape(n_inst, d_sae, "
            "d_in): its entries are scrambled over the latents and input dimensions, live latents included",
            "reshape (or view) reinterprets the memory in order, it doesn't swap axes: write the dead latents' "
            "encoder columns through W_enc.transpose(-1, -2) (or .mT), e.g. W_enc.data.transpose(-1, -2)[dead] = ...",
            code="reshape_not_transpose",
        )


# --------------------------------------------------------------------------------------------
# resample_simple: the dead mask pooled over instances
# --------------------------------------------------------------------------------------------
def pooled_dead_probe(impl: Callable, make_sae: Callable[..., Any]) -> None:
    """Fail when, on a small window whose instances have different, partly overlapping dead sets (their union
    is not every latent), the resampled set in every instance is the union of the dead sets: a latent dead in
    any instance was resampled in all of them. The main check's dead sets cover every latent between them, so
    there this looks like "all resampled"."""
    n_inst, d_sae = 4, 40
    sae = make_sae(n_inst=n_inst, d_in=3, d_sae=d_sae)
    device = sae.W_enc.device
    frac = torch.rand(6, n_inst, d_sae, device=device) * 0.2 + 0.01
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device)
    for k in range(n_inst):
        dead[k, 4 * k : 4 * k + 6] = True  # 6 per instance, 2 shared with the next: union 18 of 40
    frac[:, dead] = 0.0
    W_enc, W_dec, b_enc = (t.detach().clone() for t in (sae.W_enc, sae.W_dec, sae.b_enc))
    try:
        with torch.no_grad():
            impl(sae, frac, 0.37)
    except Exception:  # a crash here is left to the main check, which names it
        return
    changed = (
        (sae.W_enc.detach() != W_enc).any(1) | (sae.W_dec.detach() != W_dec).any(-1) | (sae.b_enc.detach() != b_enc)
    )
    union = dead.any(0, keepdim=True).expand_as(dead)
    if torch.equal(changed, union):
        fail(
            f"with instances whose dead latents differ (6 each, {int(union[0].sum())} in their union), every "
            "instance resampled the union: a latent dead in any instance was resampled in all of them",
            "keep the inst axis in the dead mask: dead = (frac_active_in_window <= 0).all(dim=0) is [inst d_sae], "
            "one set per instance; an .any() over instances, or one list of latent indices used for every "
            "instance, pools them",
            code="dead_pooled",
        )


# --------------------------------------------------------------------------------------------
# W_dec_normalized: reading the property, and a short row that shows where eps went
# --------------------------------------------------------------------------------------------
# The norm of one decoder row in the checker (eps = cfg.weight_normalize_eps = 1e-8). Dividing by norm + eps, by
# max(norm, eps) (F.normalize, clamp_min) or by the bare norm differs from the reference there by about eps / norm
# = 2e-5 relative, inside expect_matches' rtol 1e-4; eps inside the square root, sqrt(norm² + eps), is off by
# sqrt(1 + eps / norm²) - 1 = 2% (eps / norm² = 0.04), 200 times the tolerance.
SHORT_ROW = 5e-4


def read_normalized(sae: Any) -> Any:
    """Read sae.W_dec_normalized, naming a tied decoder read from _W_dec, a lost keepdim, a self-reading property."""
    attr = inspect.getattr_static(type(sae), "W_dec_normalized", None)
    try:
        # through the property's getter: nn.Module would turn an AttributeError inside it into "no attribute"
        return attr.fget(sae) if isinstance(attr, property) else sae.W_dec_normalized
    except (TypeError, AttributeError) as err:
        if "NoneType" in str(err) and sae._W_dec is None:
            fail(
                f"with tied weights W_dec_normalized raised TypeError: {err}",
                "use the property self.W_dec (W_enc transposed when tied), not self._W_dec, which is None then",
                code="used_private_W_dec",
            )
        raise
    except RuntimeError as err:
        recursion_hint(err)
        if "must match the size" in str(err):
            fail(
                f"W_dec_normalized raised RuntimeError: {err}",
                "keep the reduced axis: norm(dim=-1, keepdim=True), so [inst d_sae 1] broadcasts over d_in",
                code="no_keepdim",
            )
        raise


def short_row_hint(out: Tensor, expected: Tensor, W: Tensor, mistakes: list, eps: float) -> None:
    """Only the short row is off, pointing the right way, and no catalogue mutant fits: say what eps did there."""
    short = (W.norm(dim=-1) > 0) & (W.norm(dim=-1) < 1e-2)
    close = torch.isclose(out, expected, rtol=1e-4, atol=1e-5).all(-1)
    if not short.any() or bool(close[short].all()) or not bool(close[~short].all()):
        return
    if any(torch.allclose(out, value, rtol=1e-4, atol=1e-5) for _, _, value in mistakes if value.shape == out.shape):
        return  # a catalogue mistake (eps inside the square root) names it
    cos = torch.nn.functional.cosine_similarity(out[short], W[short], dim=-1)
    if bool((cos > 1 - 1e-4).all()):
        lengths = ", ".join(f"{x:.4g}" for x in out[short].norm(dim=-1).tolist())
        fail(
            f"W_dec_normalized is right on every row except the short one (norm {SHORT_ROW:g}), which points the "
            f"right way but has length {lengths}, not 1 - eps / norm = {1 - eps / SHORT_ROW:.6g}",
            "eps changes short rows more than it should: divide by (norm + cfg.weight_normalize_eps), the config's "
            f"eps ({eps:g}); a larger hard-coded eps or clamp, or eps inside the square root, shortens them",
            code="short_row",
        )


def recursion_hint(err: BaseException, name: str = "W_dec_normalized") -> None:
    """Name a RecursionError raised by reading a property: the property reads itself."""
    if isinstance(err, RecursionError):
        fail(
            f"reading {name} raised RecursionError (maximum recursion depth exceeded)",
            f"the property {name} reads itself (self.{name} inside its own body), so it calls itself forever: "
            "use the underlying decoder, self.W_dec (the parameter, or W_enc transposed when tied)",
            code="recursion",
        )


def check_own_storage(sae: Any) -> None:
    """Every parameter needs its own memory, one entry per element: a tensor made by `.expand` (stride 0 along an
    axis) or parameters that overlap in memory make every instance (or both parameters) one shared number, and an
    optimiser step on it raises (or moves all of them at once)."""
    params = [(n, p) for n, p in sae.named_parameters() if not n.startswith("model.")]
    for name, p in params:
        shared = [i for i, (s, n) in enumerate(zip(p.stride(), p.shape, strict=True)) if s == 0 and n > 1]
        if shared:
            axis = "the inst axis (0)" if shared == [0] else f"axes {shared}"
            fail(
                f"self.{name} (shape {tuple(p.shape)}, strides {p.stride()}) has stride 0 along {axis}: its "
                "entries there share one storage, so every instance holds the same numbers",
                f"build self.{name} at its full shape (torch.zeros(cfg.n_inst, ...)), or add .clone() after "
                ".expand(...): an expanded view is not a copy, and optimizer.step() can't update it in place",
                code="shared_storage",
            )
    spans = {n: (p.data_ptr(), p.data_ptr() + p.numel() * p.element_size()) for n, p in params if p.numel()}
    names = list(spans)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]:
                fail(
                    f"self.{a} and self.{b} share memory: changing one changes the other",
                    f"give each parameter its own tensor: .clone() the one {b} is made from",
                    code="shared_storage",
                )


def batch_scaling_hint(h: Tensor, want: Tensor) -> None:
    """h against W x of its own features: whole examples zeroed (the rest right), or every hidden coordinate
    multiplied by one factor shared by all examples (a statistic of the batch), named when it is one."""
    g, w = h.detach().double(), want.detach().double()
    if g.shape != w.shape or torch.allclose(g, w, rtol=1e-4, atol=1e-5):
        return
    right = torch.isclose(g, w, rtol=1e-4, atol=1e-5).all(-1)  # [batch inst]
    zeroed = (g == 0).all(-1) & ~right
    if zeroed.any() and (right | zeroed).all():
        fail(
            f"{int(zeroed.sum())} of the {zeroed.numel()} (example, instance) rows of h are all 0 where W x is not; "
            "every other row is exactly W x; " + OR.zeroed_rows_reading(zeroed, (g == 0).all(-1)),
            "h = W x of the drawn features for every example and instance, nothing else",
            code="examples_zeroed",
        )
    known = w.abs() > 1e-6
    ratio = torch.where(known, g / w.where(known, 1.0), float("nan"))  # [batch inst d_in]
    factor = ratio.nanmean(0, keepdim=True)  # per (inst, d_in)
    if not (known.any(0).all() and torch.allclose(ratio[known], factor.expand_as(ratio)[known], rtol=1e-4)):
        return
    stats = {
        "h.std(0) (each coordinate's std over the batch)": w.std(0, keepdim=True),
        "h.std(0, unbiased=False)": w.std(0, unbiased=False, keepdim=True),
        "h.norm(dim=0) (each coordinate's norm over the batch)": w.norm(dim=0, keepdim=True),
        "h.abs().max(0) (each coordinate's largest value over the batch)": w.abs().amax(0, keepdim=True),
        "h.mean(0)": w.mean(0, keepdim=True),
        "h.var(0)": w.var(0, keepdim=True),
    }
    named = [n for n, s in stats.items() if torch.allclose(factor * s, torch.ones_like(s), rtol=1e-3)]
    if not named and torch.allclose(factor, factor.flatten()[0].expand_as(factor), rtol=1e-4):
        return  # one constant everywhere: not a batch statistic
    fail(
        "every coordinate of h is W x times a factor shared by all examples of the batch (one per instance and "
        "d_in coordinate)" + (f": h was divided by {named[0]}" if named else ""),
        "don't normalise h with statistics of the batch: the SAE reads h = W x at its real scale (each batch would "
        "otherwise be rescaled differently)",
        code="batch_scaled",
    )


def other_b_dec_hint(rows: Tensor, dead: Tensor, q: Tensor, b_dec: Tensor) -> None:
    """New directions that are (input - b_dec) with one other instance's b_dec (or the mean over instances)
    subtracted in every instance: the instance index is missing where b_dec is read."""
    inst_of = dead.nonzero()[:, 0]
    spikes = torch.diag_embed(q.sqrt())  # [inst types d_in]: input type j of instance k is b_dec[k] + spikes[k, j]
    options = [(f"instance {j}'s b_dec (b_dec[{j}])", b_dec[j]) for j in range(b_dec.shape[0])]
    options.append(("the mean of b_dec over instances", b_dec.mean(0)))
    for name, other in options:
        if all(torch.equal(other, b_dec[int(k)]) for k in inst_of.unique()):
            continue  # the right b_dec wherever it matters
        protos = torch.nn.functional.normalize(b_dec[:, None, :] + spikes - other, dim=-1)
        raw = torch.stack([(protos[int(k)] @ r).max() for k, r in zip(inst_of, rows, strict=True)])
        if (raw > 1 - 1e-4).all():
            fail(
                f"new decoder directions are (input - {name}) in every instance, not input - that instance's b_dec",
                "subtract the instance's own b_dec (sae.b_dec[inst]): h[i, inst] - b_dec[inst], normalised",
                code="b_dec_other_instance",
            )
    other_instance_inputs(rows, inst_of, spikes, b_dec)
    DS.direction_steps_failure(rows, inst_of, spikes, b_dec)  # steps in another order, b_dec used twice


def other_instance_inputs(rows: Tensor, inst_of: Tensor, spikes: Tensor, b_dec: Tensor) -> None:
    """New directions of instance k that are (an input of ANOTHER instance m) - b_dec[k], normalised: the picked
    example read from the wrong instance of the batch (h[picked, 0] where h[picked, inst] was meant)."""
    n_inst = b_dec.shape[0]
    inputs = b_dec[:, None, :] + spikes  # [inst types d_in]
    source = []
    for k, r in zip(inst_of.tolist(), rows, strict=True):
        protos = torch.nn.functional.normalize(inputs - b_dec[k], dim=-1)  # [m types d_in]
        match = ((protos @ r) > 1 - 1e-4).any(-1).nonzero().flatten().tolist()
        if not match:
            return
        source.append((k, match))
    if all(k in m for k, m in source):
        return
    fixed = [m for m in range(n_inst) if all(m in ms for _, ms in source)]
    read = f"instance {fixed[0]}'s inputs (h[i, {fixed[0]}])" if len(fixed) == 1 else "another instance's inputs"
    fail(
        f"new decoder directions are {read} minus that instance's b_dec, for instances whose own inputs they are not: "
        "the picked examples were read from the wrong instance of the batch",
        "read each picked example from its own instance: h[picked, inst] - b_dec[inst], normalised (the sampling "
        "weights, the example index and the input must all belong to the same instance)",
        code="other_instance_input",
    )


# A non-default eps, twice the short row's norm (SHORT_ROW = 5e-4): there dividing by norm + eps gives length
# n / (n + eps) = 1/3 and a clamp at eps (F.normalize(eps=...), clamp_min(eps)) gives n / eps = 1/2, both far from the
# ≈ 1 of an eps hard-coded at the default 1e-8 (or F.normalize's 1e-12); on the other rows (norms ≥ 0.05) the right
# output moves by eps / norm ≥ 4e-4, 40× float32's rounding, so an output that does not move at all ignores the config.
OTHER_EPS = 1e-3


def config_eps_failure(sae: Any, read: Callable[[Any], Any]) -> None:
    """Read W_dec_normalized with the default eps, then again with cfg.weight_normalize_eps = OTHER_EPS (the same
    weights, the config restored afterwards); name an output that doesn't change (a hard-coded eps), else describe
    rows whose length lies outside what dividing by norm + eps (or a clamp at eps) gives."""
    cfg = sae.cfg
    default = cfg.weight_normalize_eps
    out = read(sae)
    if not isinstance(out, Tensor):
        return
    try:
        cfg.weight_normalize_eps = OTHER_EPS
        got = read(sae)
    finally:
        cfg.weight_normalize_eps = default
    if not isinstance(got, Tensor) or got.shape != out.shape or not got.is_floating_point():
        return
    got, before, W = got.detach().double(), out.detach().double(), sae.W_dec.detach().double()
    norms = W.norm(dim=-1)
    right = W / (norms[..., None] + OTHER_EPS)
    if torch.allclose(got, before, rtol=1e-6, atol=1e-9) and not torch.allclose(right, before, rtol=1e-5, atol=0):
        fail(
            f"W_dec_normalized is the same with cfg.weight_normalize_eps = {OTHER_EPS:g} as with the default "
            f"{default:g}: the row of norm {SHORT_ROW:g} keeps length "
            f"{float(got[(norms - SHORT_ROW).abs() < 1e-6 * SHORT_ROW + 1e-9].norm(dim=-1).max()):.5g}, where "
            f"dividing by norm + eps gives {SHORT_ROW / (SHORT_ROW + OTHER_EPS):.4g}",
            "the eps is hard-coded (1e-8, or F.normalize's default 1e-12) instead of read from the config: divide by "
            "(norm + self.cfg.weight_normalize_eps), so a config with another eps is honoured",
            code="hard_coded_eps",
        )
    lengths = got.norm(dim=-1)
    lo = norms / (norms + OTHER_EPS)  # norm + eps
    hi = torch.maximum(lo, (norms / OTHER_EPS).clamp(max=1))  # a clamp at eps
    live = norms > 0
    outside = live & ((lengths < lo * (1 - 1e-4) - 1e-6) | (lengths > hi * (1 + 1e-4) + 1e-6))
    if bool(outside.any()):
        idx = tuple(int(i) for i in outside.nonzero()[0])
        eps_placement_failure(got, W, OTHER_EPS)
        short_rows_raw_failure(got, W, OTHER_EPS)
        read_back_eps(norms[live], ((got * W).sum(-1)[live] / norms[live]), OTHER_EPS, default)  # signed lengths
        fail(
            f"with cfg.weight_normalize_eps = {OTHER_EPS:g}, W_dec_normalized row {list(idx)} (norm "
            f"{float(norms[idx]):.4g}) has length {float(lengths[idx]):.5g}; dividing by norm + eps gives "
            f"{float(lo[idx]):.5g} ({int(outside.sum())} row(s) off, all right with the default eps)",
            "the config's eps is not used as asked: divide by (norm + self.cfg.weight_normalize_eps). The rows are "
            "not norm / (norm + c) for one constant c; e.g. an eps inside a square root, or a clamp and an eps both",
            code="config_eps",
        )
