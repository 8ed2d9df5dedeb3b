"""The catalogue of known mistakes for part 5's checkers (`tests.part5_toy_saes`).

Deterministic exercises: each entry is (code, hint, mutant), where the mutant computes what a realistic buggy
implementation returns on the checker's inputs (the reference with one thing changed). Resampling: the rules a
buggy implementation might use to pick latents, the distributions it might draw directions from, and the
sampling weights it might follow, each with the statistic that tells it apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part5_toy_saes_faint_latents as FL
from tests import part5_toy_saes_old_directions as OD
from tests import part5_toy_saes_probes as P
from tests import part5_toy_saes_resample_draws as RD
from tests import part5_toy_saes_resample_readbacks as RB
from tests import part5_toy_saes_row_scales as RS
from tests import part5_toy_saes_same_input as SI
from tests.checking import FAILURE_PROBABILITY, bernstein_tolerance, expect_frequency, fail
from tests.part5_toy_saes_readoffs import NORM_P_POSITIONAL, divisor_readoff, negated_direction_hint, window_slice_rule

# --------------------------------------------------------------------------------------------
# W_dec_normalized: mutants of W / (‖W‖ + eps), as functions of (W_dec, eps)
# --------------------------------------------------------------------------------------------
NORM_MISTAKES: list[tuple[str, str, Callable[[Tensor, float], Tensor]]] = [
    NORM_P_POSITIONAL,
    (
        "wrong_axis",
        "a latent's direction runs along d_in (the last axis): normalise with norm(dim=-1), not dim=-2",
        lambda W, eps: W / (W.norm(dim=-2, keepdim=True) + eps),
    ),
    (
        "whole_matrix_norm",
        "divide each latent's row by its own norm, not by the norm of the instance's whole decoder matrix",
        lambda W, eps: W / (W.norm(dim=(-2, -1), keepdim=True) + eps),
    ),
    (
        "global_norm",
        "divide each latent's row by its own norm, not by one norm of the whole tensor",
        lambda W, eps: W / (W.norm() + eps),
    ),
    (
        "squared_norm",
        "divide by the norm, not the squared norm (sum of squares without the square root)",
        lambda W, eps: W / (W.pow(2).sum(-1, keepdim=True) + eps),
    ),
    (
        "eps_in_sqrt",
        "add eps to the norm, sqrt(sum of squares) + eps, not inside the square root: sqrt(sum of squares + eps) "
        "shortens every short row (a row of norm 5e-4 came out about 2% short)",
        lambda W, eps: W / (W.pow(2).sum(-1, keepdim=True) + eps).sqrt(),
    ),
    (
        "l1_norm",
        "use the Euclidean (L2) norm of each row, not the sum of absolute values",
        lambda W, eps: W / (W.abs().sum(-1, keepdim=True) + eps),
    ),
    (
        "max_norm",
        "use the Euclidean (L2) norm of each row, not its largest entry",
        lambda W, eps: W / (W.abs().amax(-1, keepdim=True) + eps),
    ),
    (
        "instance_axis",
        "a latent's direction runs along d_in (the last axis): you normalised over the instances (dim=0)",
        lambda W, eps: W / (W.norm(dim=0, keepdim=True) + eps),
    ),
    (
        "standardised",
        "scale each row to unit length (divide by its norm); don't subtract the mean or divide by the standard "
        "deviation",
        lambda W, eps: (W - W.mean(-1, keepdim=True)) / (W.std(-1, keepdim=True) + eps),
    ),
]


def norm_hint(out: Tensor, W: Tensor) -> str:
    """The fallback hint of W_dec_normalized: what the rows of a wrong output look like (length, direction)."""
    rows = W.norm(dim=-1) > 0
    norms = out.detach().norm(dim=-1)[rows]
    cos = torch.nn.functional.cosine_similarity(out.detach()[rows], W[rows], dim=-1)
    unit = bool(torch.isclose(norms, torch.ones_like(norms), atol=1e-4).all())
    if bool((cos > 1 - 1e-4).all()) and not unit:
        return (
            f"every row points the right way but its length is between {norms.min():.3g} and {norms.max():.3g}, not 1"
            f"{divisor_readoff(out.detach(), W)}: divide each row by its own norm (+ eps) and nothing else (no clamp, "
            "no extra factor)"
        )
    if unit:
        return "your rows have unit length but point elsewhere: divide W_dec itself by its row norms, don't change it"
    return "divide each row of W_dec by (its L2 norm over d_in + eps): rows of unit length along the same direction"


# --------------------------------------------------------------------------------------------
# generate_batch: mutants of h = W x, as functions of (features [batch inst feats], W [inst d_in feats])
# --------------------------------------------------------------------------------------------
def hidden(features: Tensor, W: Tensor) -> Tensor:
    return torch.einsum("bif,idf->bid", features, W)


GEN_MISTAKES: list[tuple[str, str, Callable[[Tensor, Tensor], Tensor]]] = [
    ("relu", "no ReLU here: the SAE reads the hidden vector h = W x itself", lambda x, W: hidden(x, W).relu()),
    (
        "instance_mixing",
        "use each instance's own W (keep the inst axis in the einsum): every instance got instance 0's W",
        lambda x, W: torch.einsum("bif,df->bid", x, W[0]),
    ),
    (
        "normalized_h",
        "don't normalise h: the SAE must see the hidden activations at their real scale",
        lambda x, W: torch.nn.functional.normalize(hidden(x, W), dim=-1),
    ),
    (
        "centred_h",
        "don't subtract the batch mean: b_dec is the SAE's own job",
        lambda x, W: hidden(x, W) - hidden(x, W).mean(0, keepdim=True),
    ),
    (
        "centred_d_in",
        "don't subtract each example's mean over d_in: the SAE reads h = W x itself",
        lambda x, W: hidden(x, W) - hidden(x, W).mean(-1, keepdim=True),
    ),
    (
        "contracted_d_in",
        "contract the feats axis: einsum(features, W, 'batch inst feats, inst d_in feats -> batch inst d_in'); "
        "yours summed W over d_in, kept feats and cut it to the first d_in features",
        lambda x, W: torch.einsum("bif,idf->bif", x, W)[..., : W.shape[1]],
    ),
    (
        "W_reshaped",
        "W is [inst d_in feats]: contract its last axis with the features (or transpose it); reshape scrambles it",
        lambda x, W: torch.einsum("bif,ifd->bid", x, W.reshape(W.shape[0], W.shape[2], W.shape[1])),
    ),
    (
        "unit_feature_directions",
        "map through self.model.W as it is: yours normalised each feature's direction W[inst, :, feat] to unit "
        "length first (the features' norms are part of the toy model's h)",
        lambda x, W: hidden(x, torch.nn.functional.normalize(W, dim=1)),
    ),
]


# --------------------------------------------------------------------------------------------
# forward: the vanilla SAE with one thing changed
# --------------------------------------------------------------------------------------------
def vanilla_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """The reference forward pass, or (with `bug`) one realistic mistake. Differentiable in sae's parameters."""
    W_hat = sae.W_dec_normalized
    b_dec_in = sae.b_dec.detach() if bug.get("b_dec_detached") else sae.b_dec
    x = h if bug.get("no_b_dec_subtraction") else h - b_dec_in
    W_enc = W_hat.transpose(-1, -2) if bug.get("encoder_from_decoder") else sae.W_enc
    pre = torch.einsum("bid,ids->bis", x, W_enc)
    bias = 0.0 if bug.get("no_b_enc") else (-sae.b_enc if bug.get("b_enc_subtracted") else sae.b_enc)
    if bug.get("relu_before_bias"):
        acts = pre.relu() + bias
    elif bug.get("no_relu"):
        acts = pre + bias
    else:
        acts = (pre + bias).relu()
    W_dec = sae.W_dec if bug.get("unnormalized_decoder") else W_hat
    W_dec = sae.W_enc.transpose(-1, -2) if bug.get("decoder_is_encoder") else W_dec
    W_dec = W_dec.detach() if bug.get("decoder_detached") else W_dec
    h_rec = torch.einsum("bis,isd->bid", acts.detach() if bug.get("acts_detached") else acts, W_dec)
    if not bug.get("no_b_dec_add"):
        h_rec = h_rec + sae.b_dec
    if bug.get("b_dec_twice"):
        h_rec = h_rec + sae.b_dec
    err = h_rec - (x if bug.get("rec_target_centred") else h)
    rec = bug.get("rec", "mean")
    L_rec = {
        "mean": lambda: err.pow(2).mean(-1),
        "sum": lambda: err.pow(2).sum(-1),
        "norm": lambda: err.norm(dim=-1),
        "norm_over_d": lambda: err.norm(dim=-1) / err.shape[-1],
        "abs": lambda: err.abs().mean(-1),
    }[rec]()
    sp_acts = acts.detach() if bug.get("sparsity_detached") else acts
    L_sp = {
        "l1": lambda: sp_acts.abs().sum(-1),
        "l2": lambda: sp_acts.norm(dim=-1),
        "sq": lambda: sp_acts.pow(2).sum(-1),
        "mean": lambda: sp_acts.abs().mean(-1),
        "pre": lambda: (pre + bias).abs().sum(-1),
        "relu_no_b_enc": lambda: pre.relu().sum(-1),
        "h_rec": lambda: h_rec.abs().sum(-1),
    }[bug.get("sparsity", "l1")]()
    coeff = sae.sparsity_coeff[0] if bug.get("first_coeff") else sae.sparsity_coeff
    if bug.get("coeff_in_L_sparsity"):
        L_sp = coeff * L_sp
        coeff = 1.0
    per = {
        "standard": lambda: L_rec + coeff * L_sp,
        "no_coeff": lambda: L_rec + L_sp,
        "coeff_squared": lambda: L_rec + coeff**2 * L_sp,
        "coeff_on_rec": lambda: coeff * L_rec + L_sp,
        "no_sparsity": lambda: L_rec,
        "rec_detached": lambda: L_rec.detach() + coeff * L_sp,
    }[bug.get("terms", "standard")]()
    loss = {
        "standard": lambda: per.mean(0).sum(),
        "mean_all": lambda: per.mean(),
        "sum_all": lambda: per.sum(),
        "swapped": lambda: per.sum(0).mean(),
    }[bug.get("reduce", "standard")]()
    return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec


# (code, hint, the output the mistake first shows in, the bug)
FORWARD_MISTAKES: list[tuple[str, str, str, dict]] = [
    ("no_b_dec_subtraction", "subtract b_dec from h before the encoder", "acts", {"no_b_dec_subtraction": True}),
    ("no_b_enc", "add b_enc to the pre-activation before the ReLU", "acts", {"no_b_enc": True}),
    ("b_enc_subtracted", "add b_enc to the pre-activation, don't subtract it", "acts", {"b_enc_subtracted": True}),
    (
        "relu_before_bias",
        "add b_enc before the ReLU: ReLU(x @ W_enc + b_enc), not ReLU(x @ W_enc) + b_enc",
        "acts",
        {"relu_before_bias": True},
    ),
    ("no_relu", "apply the ReLU: latent activations are never negative", "acts", {"no_relu": True}),
    (
        "encoder_from_decoder",
        "encode with self.W_enc; the (normalised) decoder is only for decoding",
        "acts",
        {"encoder_from_decoder": True},
    ),
    (
        "unnormalized_decoder",
        "decode with self.W_dec_normalized, not self.W_dec",
        "h_reconstructed",
        {"unnormalized_decoder": True},
    ),
    ("no_b_dec_add", "add b_dec back after decoding", "h_reconstructed", {"no_b_dec_add": True}),
    ("b_dec_added_twice", "add b_dec once, after decoding", "h_reconstructed", {"b_dec_twice": True}),
    (
        "rec_target_centred",
        "compare h_reconstructed with h itself, not with h - b_dec (h_reconstructed already has b_dec added back)",
        "L_reconstruction",
        {"rec_target_centred": True},
    ),
    (
        "coeff_in_L_sparsity",
        "L_sparsity is the plain L1 norm; multiply by sparsity_coeff only in the loss",
        "L_sparsity",
        {"coeff_in_L_sparsity": True},
    ),
    (
        "first_instance_coeff",
        "each instance has its own coefficient: multiply by self.sparsity_coeff ([inst]), not sparsity_coeff[0]",
        "loss",
        {"first_coeff": True},
    ),
    (
        "decoder_is_encoder",
        "decode with the decoder, self.W_dec_normalized, not with the encoder transposed",
        "h_reconstructed",
        {"decoder_is_encoder": True},
    ),
    ("rec_sum", "take the mean over d_in of the squared error, not the sum", "L_reconstruction", {"rec": "sum"}),
    (
        "rec_norm",
        "use the mean squared error, not the Euclidean norm of the error (no square root)",
        "L_reconstruction",
        {"rec": "norm"},
    ),
    (
        "rec_abs",
        "square the error: mean over d_in of (h_rec - h)², not of |h_rec - h|",
        "L_reconstruction",
        {"rec": "abs"},
    ),
    (
        "sparsity_l2",
        "the sparsity loss is the L1 norm (sum of |acts|), not the L2 norm",
        "L_sparsity",
        {"sparsity": "l2"},
    ),
    (
        "sparsity_sq",
        "the sparsity loss is the L1 norm (sum of |acts|), not a sum of squares",
        "L_sparsity",
        {"sparsity": "sq"},
    ),
    ("sparsity_mean", "sum |acts| over the latents, don't average", "L_sparsity", {"sparsity": "mean"}),
    (
        "sparsity_of_reconstruction",
        "L_sparsity is the L1 norm of the latent activations acts_post, not of h_reconstructed",
        "L_sparsity",
        {"sparsity": "h_rec"},
    ),
    (
        "sparsity_no_b_enc",
        "penalise acts_post itself, ReLU(x W_enc + b_enc): your L_sparsity left b_enc out (ReLU(x W_enc) only)",
        "L_sparsity",
        {"sparsity": "relu_no_b_enc"},
    ),
    (
        "sparsity_pre_relu",
        "penalise acts_post (after the ReLU), not the pre-activations",
        "L_sparsity",
        {"sparsity": "pre"},
    ),
    (
        "loss_mean_inst",
        "sum over instances (each SAE gets its own gradient), don't average over them",
        "loss",
        {"reduce": "mean_all"},
    ),
    ("loss_sum_batch", "average over the batch, then sum over instances", "loss", {"reduce": "sum_all"}),
    (
        "loss_reductions_swapped",
        "average over the batch and sum over instances (you summed over the batch and averaged over instances)",
        "loss",
        {"reduce": "swapped"},
    ),
    ("no_coeff", "multiply L_sparsity by self.sparsity_coeff (one value per instance)", "loss", {"terms": "no_coeff"}),
    (
        "coeff_on_rec",
        "the coefficient weights the sparsity term: L_reconstruction + coeff · L_sparsity",
        "loss",
        {"terms": "coeff_on_rec"},
    ),
    ("no_sparsity_in_loss", "add the weighted sparsity term to the loss", "loss", {"terms": "no_sparsity"}),
    (
        "decoder_detached",
        "don't detach the decoder: the reconstruction must train it",
        "grad",
        {"decoder_detached": True},
    ),
    (
        "sparsity_detached",
        "don't detach acts_post in L_sparsity: the penalty must push the encoder",
        "grad",
        {"sparsity_detached": True},
    ),
    (
        "b_dec_detached",
        "don't detach b_dec where you subtract it: its gradient comes from both places it appears",
        "grad",
        {"b_dec_detached": True},
    ),
    (
        "acts_detached",
        "don't detach acts_post before decoding: the reconstruction error must train the encoder too",
        "grad",
        {"acts_detached": True},
    ),
]


# --------------------------------------------------------------------------------------------
# Resampling: which latents a buggy rule picks
# --------------------------------------------------------------------------------------------
def window_groups(n_inst: int, d_sae: int, n_dead: int, device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
    """frac_active_in_window [window inst d_sae] with, per instance (a different random choice in each), groups
    of latents that tell the usual rules apart. Returns (window, {group: [inst d_sae] bool mask})."""
    window = 23  # longer than any slice a rule might read (a last-10 slice of a 6-step window is all of it)
    frac = torch.rand(window, n_inst, d_sae, device=device) * 0.2 + 0.01
    names = ("dead", "first_only", "last_only", "middle_only", "rare")
    groups = {name: torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device) for name in names}
    for k in range(n_inst):
        perm = torch.randperm(d_sae, device=device)
        cut = [0, n_dead, n_dead + 3, n_dead + 6, n_dead + 9, n_dead + 12]
        for name, lo, hi in zip(names, cut, cut[1:], strict=False):
            groups[name][k, perm[lo:hi]] = True
        frac[:, k, perm[:n_dead]] = 0.0
        frac[1:, k, perm[cut[1] : cut[2]]] = 0.0  # fired at the first step only: alive
        frac[:-1, k, perm[cut[2] : cut[3]]] = 0.0  # fired at the last step only: alive
        steps = [1 + (3 * k + r) * (window - 2) // (3 * n_inst) for r in range(3)]  # each at one step: alive
        frac[:, k, perm[cut[3] : cut[4]]] = 0.0  # (spread over the window, so a slice read shows its bounds)
        frac[steps, k, perm[cut[3] : cut[4]]] = torch.rand(3, device=device) * 0.2 + 0.01
        frac[:, k, perm[cut[4] : cut[5]]] = 2e-4  # fires rarely but at every step: alive
    return frac, groups


def selection_rules(frac: Tensor, groups: dict[str, Tensor]) -> list[tuple[str, str, Tensor]]:
    """(code, hint, mask) for every wrong rule of which latents to resample, on the window `frac`."""
    dead = groups["dead"]
    first_inst = dead[:1].expand_as(dead)
    return [
        (
            "last_step_only",
            "a latent is dead only if it fired at *no* step of the window: `(frac_active_in_window <= 0).all(dim=0)`, "
            "not just the last row",
            frac[-1] <= 0,
        ),
        ("first_step_only", "a latent is dead if it fired at no step of the window, not just the first", frac[0] <= 0),
        (
            "any_step",
            "a latent is dead if it fired at *no* step of the window (all steps zero), not if it was silent at "
            "some step: use .all(dim=0), not .any(dim=0)",
            (frac <= 0).any(0),
        ),
        (
            "rate_threshold",
            "a latent that fires rarely is alive: dead means exactly zero at every step, not a small rate",
            frac.mean(0) < 1e-3,
        ),
        ("inverted", "you resampled the live latents and kept the dead ones: the mask is inverted", ~dead),
        ("all_resampled", "resample only the dead latents, not all of them", torch.ones_like(dead)),
        (
            "first_instance_mask",
            "each instance has its own dead latents: use dead[inst], not instance 0's mask for all",
            first_inst,
        ),
    ]


# --------------------------------------------------------------------------------------------
# Advanced resampling: what the sampling weights might follow
# --------------------------------------------------------------------------------------------
def scale_candidates(
    W_enc: Tensor, dead: Tensor, resample_scale: float, W_dec: Tensor | None = None
) -> list[tuple[str, str, Tensor]]:
    """(code, hint, the encoder length each rule gives, per instance [inst]) for the new encoder columns."""
    norms = W_enc.norm(dim=1)  # [inst d_sae]
    alive = (~dead).to(norms.dtype)
    alive_mean = (norms * alive).sum(-1) / alive.sum(-1).clamp_min(1)
    extra = []
    if W_dec is not None:
        dec_mean = (W_dec.norm(dim=-1) * alive).sum(-1) / alive.sum(-1).clamp_min(1)
        extra.append(
            (
                "decoder_norm",
                "scale by the mean norm of the live latents' *encoder* columns (W_enc[inst, :, j]), not decoder rows",
                resample_scale * dec_mean,
            )
        )
    sq_mean = (norms.pow(2) * alive).sum(-1) / alive.sum(-1).clamp_min(1)
    extra.append(
        (
            "squared_norm",
            "use the norm of each live encoder column (with the square root), not its squared norm",
            resample_scale * sq_mean,
        )
    )
    pooled = (norms * alive).sum() / alive.sum().clamp_min(1)
    row_norms = W_enc.norm(dim=-1).mean(-1)  # norms over d_sae: one per input dimension, averaged
    live_row_norms = (W_enc * alive[:, None, :]).norm(dim=-1).mean(-1)  # the same over the live latents only
    alive_max = (norms * alive).amax(-1)
    return [
        ("scale_ignored", "multiply by resample_scale too", alive_mean),
        (
            "no_alive_norm",
            "scale by the mean norm of the live latents' encoder columns too",
            torch.full_like(alive_mean, resample_scale),
        ),
        (
            "all_norm",
            "average the encoder norms of the *live* latents only, not all latents",
            resample_scale * norms.mean(-1),
        ),
        (
            "pooled_norm",
            "average the live latents' encoder norms within each instance, not over all instances",
            resample_scale * pooled.expand_as(alive_mean),
        ),
        (
            "enc_norm_axis",
            "a latent's encoder column is W_enc[inst, :, j]: take its norm over d_in (dim=1), not over d_sae",
            resample_scale * row_norms,
        ),
        (
            "enc_norm_axis",
            "a latent's encoder column is W_enc[inst, :, j]: take each live column's norm over d_in (dim 0 of "
            "W_enc[inst], dim 1 of W_enc), not the norm over the latents (one per input dimension)",
            resample_scale * live_row_norms,
        ),
        (
            "max_norm",
            "use the *mean* norm of the live latents' encoder columns, not the largest",
            resample_scale * alive_max,
        ),
        (
            "rms_norm",
            "use the plain mean of the live encoder columns' norms, not their root mean square (√ mean of ‖·‖²)",
            resample_scale * sq_mean.sqrt(),
        ),
        (
            "scale_inverted",
            "multiply by resample_scale, don't divide",
            alive_mean / resample_scale,
        ),
        *extra,
    ]


# --------------------------------------------------------------------------------------------
# Resampling: the checks that name what went wrong
# --------------------------------------------------------------------------------------------
def check_which_latents(sae: Any, before: dict, expected: Tensor, frac: Tensor, groups: dict, active: Tensor) -> None:
    """The latents whose parameters changed are exactly `expected`; otherwise name the rule that was used.
    `active` [inst]: the instances where resampling is expected at all."""
    for name, p in before["params"].items():
        if getattr(sae, name) is not p:
            fail(
                f"sae.{name} was replaced by a new tensor",
                "write into the existing parameters (`sae.W_enc.data[...] = ...`): the optimiser holds the old ones",
                code="replaced_parameter",
            )
    if not torch.equal(sae.b_dec.detach(), before["b_dec"]):
        fail(
            "resampling changed b_dec",
            "resampling changes only the dead latents' own parameters (encoder column, decoder row, encoder bias)",
            code="b_dec_touched",
        )
    changed = (
        (sae.W_enc.detach() != before["W_enc"]).any(1)
        | (sae.W_dec.detach() != before["W_dec"]).any(-1)
        | (sae.b_enc.detach() != before["b_enc"])
    ) & active[:, None]  # the other instances are checked separately
    if torch.equal(changed, expected):
        return
    RB.renormalised_live_rows(sae, before, expected, active)
    RB.live_encoder_columns(sae, before, expected, active)
    weights_changed = (sae.W_enc.detach() != before["W_enc"]).any(1) | (sae.W_dec.detach() != before["W_dec"]).any(-1)
    if torch.equal(weights_changed & active[:, None], expected) and ((changed & ~expected).any()):
        fail(
            f"the encoder bias b_enc of {int((changed & ~expected).sum())} latents that are not dead changed, while "
            "their encoder columns and decoder rows were left alone (those of the dead latents are right)",
            "change b_enc for the dead latents only, setting it to 0 with the same [inst d_sae] mask: "
            "`b_enc[dead] = 0` (a mask reduced over d_sae, or a slice over whole instances, reaches live latents too)",
            code="alive_touched",
        )
    for code, hint, rule in selection_rules(frac, groups):
        if torch.equal(changed, rule & active[:, None]):
            fail(
                f"{int(changed.sum())} latents were resampled, expected the {int(expected.sum())} dead ones", hint, code
            )
    if not changed.any():
        fail(
            f"no entry of W_enc, W_dec or b_enc changed, while {int(expected.sum())} latents are dead",
            "dead = `(frac_active_in_window <= 0).all(dim=0)` (one flag per instance and latent; the window is dim "
            "0), then write into the parameters themselves (.data[...] = ...; an indexed copy edits only the copy)",
            code="nothing_resampled",
        )
    FL.threshold_rule(changed, expected, frac, active)
    window_slice_rule(changed, frac, active)
    if (changed & ~expected).any() and not (changed & expected).any():
        every = torch.equal(changed, (frac > 0).all(0) & active[:, None])
        fail(
            f"none of the {int(expected.sum())} dead latents was changed, and {int(changed.sum())} live ones were",
            "the dead latents were left alone and live ones resampled: your mask selects live latents "
            + ("(it is (frac > 0).all(dim=0): the latents that fired at every step)" if every else "(some of them)")
            + ". Dead means it fired at no step of the window: `(frac_active_in_window <= 0).all(dim=0)`",
            code="only_live_resampled",
        )
    if (changed & ~expected).any():
        fail(
            f"{int((changed & ~expected).sum())} latents that are not dead were changed",
            "change only the dead latents' encoder columns, decoder rows and encoder biases",
            code="alive_touched",
        )
    RB.skipped_instances(changed, expected, active, before.get("q"))
    fail(
        f"{int((expected & ~changed).sum())} of {int(expected.sum())} dead latents were not resampled",
        "resample every latent that is dead over the window, in every instance",
        code="dead_not_resampled",
    )


def check_encoder_bias(sae: Any, dead: Tensor, before: dict | None = None) -> None:
    if (sae.b_enc.detach()[dead] != 0).any():
        if before is not None:
            RD.bias_write_lost(sae, before, dead)
        fail("the encoder bias of resampled latents is not zero", "set b_enc to 0 for them", code="b_enc_not_reset")


def unit_columns(rows: Tensor) -> bool:
    """Each coordinate normalised over the latents (dim 0) instead of each row."""
    return bool(torch.isclose(rows.pow(2).sum(0), torch.ones(rows.shape[1], device=rows.device), rtol=1e-3).all())


def unit_rows(sae: Any, before: dict, dead: Tensor, resample_scale: float, drawn: bool = False) -> Tensor:
    """The new decoder rows of the dead latents [n d_in], after checking they are unit vectors (`drawn`: they are
    normalised Gaussian draws, as in resample_simple, so a normalisation over another axis can be read back)."""
    rows = sae.W_dec.detach()[dead]
    if torch.equal(rows, before["W_dec"][dead]):
        fail(
            "the dead latents' decoder rows were not changed",
            "write the new direction into sae.W_dec",
            code="dec_untouched",
        )
    norms = rows.norm(dim=-1)
    if torch.isclose(norms, torch.ones_like(norms), atol=1e-4).all():
        if drawn:  # random, not the old direction (nor old + noise)
            OD.old_direction_failure(rows, before, dead)
        return rows
    zero, inst_of = norms < 1e-6, dead.nonzero()[:, 0]
    if zero.any():
        fail(
            f"{int(zero.sum())} of {norms.numel()} resampled decoder rows are zero vectors"
            + (
                f" (the others have norms between {norms[~zero].min():.3g} and {norms.max():.3g})"
                if (~zero).any()
                else ""
            ),
            "the vector you normalised was already zero (normalising a zero vector with a clamped or eps'd norm "
            "leaves it zero): check where the direction comes from. Each should be (h - b_dec) for a chosen input h "
            "from sae.generate_batch (nonzero here); e.g. h_reconstructed - b_dec is zero when no latent fires",
            code="dec_zero",
        )
    if torch.isclose(norms, torch.full_like(norms, resample_scale), rtol=1e-4).all():
        hint, code = "the decoder row is the unit direction v; only the encoder column is scaled", "dec_scaled"
    elif unit_columns(rows) or all(unit_columns(rows[inst_of == k]) for k in inst_of.unique()):
        hint, code = (
            "normalise each direction (each row, dim=-1), not each coordinate over the dead latents",
            "normalized_wrong_axis",
        )
    else:
        RS.not_unit_readings(rows, norms, inst_of, before["b_dec"])
        if drawn:
            RD.draw_axis(sae, norms), RD.length_law(norms, rows.shape[-1])
        hint, code = "normalise each new direction to unit length before writing it into the decoder", "dec_not_unit"
    fail(f"resampled decoder rows have norms between {norms.min():.3g} and {norms.max():.3g}, expected 1", hint, code)


def check_isotropic(rows: Tensor) -> None:
    """Uniform on the sphere in 3D: every coordinate is U[-1, 1] (Archimedes), so each coordinate's sign is a fair
    coin, its mean is 0, and its empirical CDF stays within the DKW bound of the uniform one."""
    RB.corner_directions(rows)
    n, d_in = rows.shape
    n_tests = 3 * d_in
    positive = (rows > 0).double().mean(0)
    expect_frequency(
        positive,
        0.5,
        n,
        "the fraction of new directions with a positive coordinate",
        dims="d_in",
        n_tests=n_tests,
        code="not_isotropic",
        hint=RD.sign_hint(positive),
    )
    tol = bernstein_tolerance(n, 1 / d_in, 2.0, FAILURE_PROBABILITY / n_tests)  # coordinates in [-1, 1], var 1/d_in
    mean = rows.double().mean(0)
    if (mean.abs() > tol).any():
        fail(
            f"the mean of the new directions is {[round(m, 4) for m in mean.tolist()]}, expected 0 ± {tol:.3f}",
            "directions must be uniform on the sphere: normalise a torch.randn vector",
            code="not_isotropic",
        )
    # DKW: P(sup |F_n - F| > eps) <= 2 exp(-2 n eps^2) for n i.i.d. draws, per coordinate.
    eps = math.sqrt(math.log(2 * n_tests / FAILURE_PROBABILITY) / (2 * n))
    for j in range(d_in):
        x = rows[:, j].double().sort().values
        cdf = torch.arange(1, n + 1, dtype=torch.float64, device=x.device) / n
        gap = torch.maximum((cdf - (x + 1) / 2).abs(), (cdf - 1 / n - (x + 1) / 2).abs()).max()
        if gap > eps:
            RD.not_sphere_failure(rows, j, float(gap), eps)  # where the mass went: the cube's corners, the axes


def rate_tolerance(n: int, p: float, n_tests: int) -> float:
    """Bernstein tolerance on a frequency from n Bernoulli(p) draws, one of n_tests tested at once."""
    return bernstein_tolerance(max(n, 1), p * (1 - p), 1.0, FAILURE_PROBABILITY / n_tests)


def normalise(w: Tensor) -> Tensor:
    return w / w.sum(-1, keepdim=True)


# names of other_losses' entries that are not loss_dict keys
ALT = {
    "input_minus_b_dec": "the L_reconstruction of sae.forward(h - b_dec) (b_dec subtracted twice: pass h itself)",
    "total": "the per-example total loss (L_reconstruction + sparsity_coeff · L_sparsity)",
}


def check_sampling(
    rows: Tensor,
    dead: Tensor,
    q: Tensor,
    b_dec: Tensor,
    active: Tensor,
    is_random: Callable[[], None] = lambda: None,
    alt: dict[str, Tensor] | None = None,
) -> None:
    """Each new direction is one input type's e_j; per instance, type j must be picked with probability ∝ q_j².
    `is_random`: checks that the choice is random at all, before the frequencies are compared. `alt`: other
    per-example losses per input type [inst types] (e.g. L_sparsity), that wrong weights might follow."""
    alt = alt or {}
    best = rows.abs().max(-1)
    if (best.values < 1 - 1e-4).any() or (rows.gather(-1, best.indices[:, None]) < 0).any():
        protos = torch.nn.functional.normalize(b_dec[:, None, :] + torch.diag_embed(q.sqrt()), dim=-1)
        inst_of = dead.nonzero()[:, 0]
        raw = torch.stack([(protos[int(k)] @ r).max() for k, r in zip(inst_of, rows, strict=True)])
        if (raw > 1 - 1e-4).all():
            fail(
                "new decoder directions are the chosen inputs without b_dec subtracted",
                "use the input minus b_dec (what the encoder sees), normalised",
                code="b_dec_not_subtracted",
            )
        negated_direction_hint(rows)
        P.other_b_dec_hint(rows, dead, q, b_dec)
        fail(
            "new decoder directions are not (input - b_dec) of examples from sae.generate_batch",
            "pick examples of h = sae.generate_batch(batch_size); the direction is (h[i] - b_dec) / ‖h[i] - b_dec‖",
            code="not_from_inputs",
        )
    inst_of = dead.nonzero()[:, 0]
    insts = active.nonzero().flatten().tolist()
    SI.same_input_failure(rows, best.indices, inst_of, insts, q, alt)
    is_random()
    counts = torch.stack([torch.bincount(best.indices[inst_of == k], minlength=q.shape[1]) for k in insts]).double()
    n = counts.sum(-1, keepdim=True)
    observed = counts / n
    loss, sq_norm = (
        q[insts].double(),
        (b_dec[insts, None, :] + torch.diag_embed(q[insts].sqrt())).pow(2).sum(-1).double(),
    )
    expected = loss.pow(2) / loss.pow(2).sum(-1, keepdim=True)
    n_tests = observed.numel()
    tol = torch.tensor(
        [[rate_tolerance(int(n[i]), float(p), n_tests) for p in row] for i, row in enumerate(expected.tolist())],
        dtype=torch.float64,
    )
    if ((observed - expected.to(observed)).abs() <= tol).all():
        return
    others = [
        (
            f"sampling_{name}",
            f"the picks follow {ALT.get(name, name)}{power}: weight by L_reconstruction² instead",
            normalise(v),
        )
        for name, value in alt.items()
        for power, v in (("²", value[insts].pow(2)), ("", value[insts]))
        if (v.sum(-1) > 0).all()
    ]
    others += [  # weights read along the other axis of L_reconstruction [batch inst] (row `inst`: l2[inst])
        (
            "sampling_other_axis",
            f"the picks follow example `inst`'s losses across the instances{power}, i.e. L_reconstruction read along "
            "the other axis (l2[inst] instead of l2[:, inst]): weight instance inst's examples by l2[:, inst] ** 2",
            normalise(q.T[insts].double() ** p),
        )
        for power, p in (("", 1), (" squared", 2))
        if q.shape[0] == q.shape[1] and (q.T[insts].sum(-1) > 0).all()
    ]
    fits = [
        (c, h)
        for c, h, p in P.weight_candidates(loss, sq_norm, rows.shape[1], counts) + others
        if P.fits(observed, p, tol)
    ]
    if fits:  # two rules the frequencies can't tell apart: list both
        hint = fits[0][1] if len(fits) == 1 else "either of: " + "; or ".join(h for _, h in fits)
        fail(
            f"per instance, the inputs were picked with frequencies {observed.round(decimals=2).tolist()}",
            hint,
            fits[0][0],
        )
    fail(
        f"per instance, the inputs were picked with frequencies {observed.round(decimals=2).tolist()}, expected "
        f"{expected.round(decimals=2).tolist()} (∝ L_reconstruction²)",
        "use torch.multinomial(L_reconstruction[:, inst] ** 2, n_dead, replacement=True), instance by instance",
        code="sampling",
    )


# --------------------------------------------------------------------------------------------
# Resampling: the inputs of the advanced check, and the usual indexing crash
# --------------------------------------------------------------------------------------------
# Loss profiles of the four input types per instance: instance k's examples of type j have squared distance
# Q[k, j] from b_dec (so L_reconstruction ∝ Q, nothing fires). Every instance has its own profile, so weights
# taken from another instance or pooled over instances show; instance 1's inputs are b_dec itself (loss 0).
Q = [[1.0, 1.0, 2.0, 4.0], [0.0, 0.0, 0.0, 0.0], [4.0, 2.0, 1.0, 1.0], [1.0, 4.0, 1.0, 2.0]]
# (the all-zero instance comes early: a `return` where `continue` was meant skips the instances after it)


def prototype_batch(b_dec: Tensor, q: Tensor) -> Callable[[int], Tensor]:
    """generate_batch for the advanced-resampling check: on its c-th call, example i of instance k is
    b_dec[k] + sqrt(q[k, j]) e_j with j = (i + c) % 4: each call is a different batch (as a random one would be),
    so losses from one call and directions from another show. `generate.rewind()` replays the same batches."""
    calls = [0]

    def generate(batch_size: int) -> Tensor:
        idx = (torch.arange(batch_size, device=b_dec.device) + calls[0]) % q.shape[1]
        calls[0] += 1
        proto = torch.zeros(batch_size, q.shape[0], q.shape[1], device=b_dec.device)
        proto[torch.arange(batch_size), :, idx] = q.sqrt()[:, idx].T
        return proto + b_dec.detach()

    generate.rewind = lambda: calls.__setitem__(0, 0)  # type: ignore[attr-defined]
    return generate
