"""Part 6b slips named by their own candidate: a transcoder input with tokens where no latent fires (the skip term
is added at every token), decoder rows normalised before decoding, a next-token cross-entropy with the shift
reversed or missing, the recovered fraction with a pair of parentheses dropped, the attention OV path added to the
de-embedding, and heads averaged instead of summed in the local replacement model."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part6b_circuits_error_input as error_input
from tests import part6b_circuits_extra_mistakes as extra
from tests import part6b_circuits_forward_readings as readings
from tests import part6b_circuits_head_merge as head_merge
from tests import part6b_circuits_hints as hints
from tests import part6b_circuits_ln_axis as ln_axis
from tests import part6b_circuits_loss_readings as losses
from tests import part6b_circuits_loss_statistics as statistics
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_placement_slips as placement
from tests import part6b_circuits_probes as probes
from tests import part6b_circuits_scale_swaps as scale_swaps
from tests import part6b_circuits_sensitivity as sens
from tests import part6b_circuits_stale_inputs as stale
from tests import part6b_circuits_term_readings as terms
from tests import part6b_circuits_value_readings as vr
from tests.checking import fail
from utils.transcoder import Transcoder

topk_gate, bias_direction = terms.topk_gate, terms.bias_direction
forward_call, forward_tail, linearised_gradient = (
    readings.forward_call,
    readings.forward_tail,
    readings.linearised_gradient,
)
zero_division, replaced_readings = losses.zero_division, losses.replaced_readings
SILENT_AT = ((0, 1), (1, 3), (2, 0), (2, 4))  # (batch, position) of the tokens where no latent fires


def with_silent_tokens(tc: Transcoder, x: Tensor) -> Tensor:
    """A copy of x [3 5 d_in] whose tokens at SILENT_AT are small inputs at which no latent of tc fires (the other
    tokens keep firing): a term added only where some latent fires then differs from the contract there."""
    g = torch.Generator().manual_seed(5)
    candidates = (torch.randn(4096, tc.d_in, generator=g) * 0.3).to(x.device, x.dtype)
    silent = candidates[~((candidates @ tc.W_enc + tc.b_enc) > tc.threshold).any(-1)]
    out = x.clone()
    for k, (b, p) in enumerate(SILENT_AT):
        out[b, p] = silent[k]
    return out


def forward_slips(tc: Transcoder, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of transcoder_forward with the skip term only where a latent fires, or with the
    decoder rows normalised to unit norm before decoding."""
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre > tc.threshold)
    skip = 0 if tc.W_skip is None else x @ tc.W_skip.T
    fires = (acts != 0).any(-1, keepdim=True)
    unit = tc.W_dec / tc.W_dec.norm(dim=-1, keepdim=True)
    silent = int((~fires).sum())
    return [
        (
            "skip_gated",
            f"the skip term is added at every token, also where no latent fires ({silent} such tokens here): yours "
            "leaves it out there. out = acts @ W_dec + b_dec + x @ W_skip.T at every token",
            acts,
            acts @ tc.W_dec + tc.b_dec + skip * fires,
        ),
        (
            "decoder_unit",
            "the decoder rows are used as they are: yours normalises them to unit norm before decoding (an SAE "
            "habit); their norms are part of what each latent writes: out = acts @ W_dec + b_dec (+ x @ W_skip.T)",
            acts,
            acts @ unit + tc.b_dec + skip,
        ),
        *terms.input_bias_slips(tc, x),
        *_bias_in_skip(tc, x, acts),
    ]


def _bias_in_skip(tc: Transcoder, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) with b_dec moved into the skip's input: (x + b_dec) @ W_skip.T, b_dec not added."""
    if tc.W_skip is None or tc.W_skip.shape[1] != tc.b_dec.shape[-1]:
        return []
    hint = (
        "yours equals acts @ W_dec + (x + b_dec) @ W_skip.T: b_dec went into the skip's input instead of being added "
        "to the output; the two terms are separate: out = acts @ W_dec + b_dec + x @ W_skip.T"
    )
    return [("bias_in_skip", hint, acts, acts @ tc.W_dec + (x + tc.b_dec) @ tc.W_skip.T)]


def clean_shift(model: Any, tokens: Tensor, got: float, close: Callable) -> None:
    """The clean loss computed by hand with the next-token shift reversed or missing, or another statistic of the
    per-token losses than their mean: say which."""
    logits = model(tokens).float()
    ce = lambda lg, tk: F.cross_entropy(lg.flatten(0, 1), tk.flatten()).item()
    candidates = (
        (ce(logits[:, 1:], tokens[:, :-1]), "reversed: logits[:, 1:] against tokens[:, :-1]"),
        (ce(logits, tokens), "missing: logits[:, t] against tokens[:, t], the token already seen"),
    )
    for value, what in candidates:
        if close(got, value):
            fail(
                f"clean loss {got:.5f}: that is the cross-entropy with the next-token shift {what}",
                "the logits at position t predict the token at t + 1: logits[:, :-1] against tokens[:, 1:] (or "
                "model(tokens, return_type='loss'), which does the shift for you)",
                code="shift_reversed",
            )
    statistics.clean_statistic(model, tokens, got, close)


def recovered_precedence(c: float, r: float, z: float) -> list[tuple[float, str, str]]:
    """The recovered fraction with a pair of parentheses dropped (operator precedence), upside down, its sign flipped,
    or rounded, as (value, code, why)."""
    forms = {
        "(zero - replaced) / zero - clean": (z - r) / z - c,
        "zero - replaced / (zero - clean)": z - r / (z - c),
        "zero - replaced / zero - clean": z - r / z - c,
        "1 - (replaced - clean) / zero - clean": 1 - (r - c) / z - c,
        "1 - replaced - clean / (zero - clean)": 1 - r - c / (z - c),
    }
    why = "operator precedence: yours computes {} (/ binds tighter than -): write both differences in parentheses: "
    precedence = [(v, "recovered_precedence", why.format(f)) for f, v in forms.items()]
    upside = "the fraction is upside down, (zero - clean) / (zero - replaced), the inverse of the recovered one: "
    precedence.append(((z - c) / (z - r), "recovered_inverted", upside))
    precedence += vr.recovered_scales(c, r, z)
    return precedence + terms.recovered_sign(c, r, z) + statistics.recovered_rounded(c, r, z)


def de_embedding_paths(model: Any, tc: Transcoder, i: int) -> list[tuple[str, str, Tensor]]:
    """The de-embedding with the layer's attention OV path added to the direct path (the OV path alone is the
    catalogue's `attention`)."""
    ov = torch.einsum("hde,hem->dm", model.W_V[0], model.W_O[0])
    enc = tc.W_enc[:, i]
    return [
        (
            "ov_path",
            "yours is the direct path plus the OV path of the layer's heads, W_E (I + Σ_h W_V W_O) W_enc: the "
            "de-embedding is the direct path only, W_E @ W_enc[:, latent] (attention mixes positions; it is not "
            "part of the token's own direct effect)",
            model.W_E @ enc + model.W_E @ (ov @ enc),
        ),
        *terms.threshold_factor(model, tc, i, "de"),
        *losses.de_shares(model, tc, i),
        *_token_ranking(model.W_E @ enc),
    ]


def _token_ranking(drive: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the token ids ranked by the expected values (argsort), as floats, instead of them."""
    hint = (
        "yours equals {}: the token ids ranked by drive, not the drive itself; return the d_vocab "
        "values W_E @ W_enc[:, latent] (rank them afterwards, e.g. with topk, when you look at the top tokens)"
    )
    return [
        ("token_ranking", hint.format(f"{call}.float()"), drive.argsort(descending=d).to(drive.dtype))
        for call, d in (("drive.argsort(descending=True)", True), ("drive.argsort()", False))
    ]


class _HeadsAveraged:
    """The model seen with W_O[0] divided by n_heads: every head's output (b_V included) averaged, not summed."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.W_O = [model.W_O[0] / model.cfg.n_heads]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


LINEARISED_SLIPS = {
    "recorded_output": terms.RECORDED_HINT,
    "ln1_at_query": "LN1 normalises each *key* position's embedding before W_V (x1 = (embeds - mean) / "
    "frozen.ln1_scale, row k by its own scale): yours divides the attention output by the *query* position's scale "
    "instead (the scale applied after the pattern mixes positions); normalise first, then v = x1 @ W_V + b_V",
    "error_twice": "the error term enters once, inside the MLP output (mlp_out = f @ W_dec + b_dec + skip + error): "
    "yours has it counted twice (added again to resid_mid + mlp_out, or 2 × the error)",
    "pos_again": "`embeds` already hold the residual stream r_0 = W_E[tokens] + W_pos (positions included): yours adds "
    "model.W_pos[:seq] to them again; use embeds as they are",
    "embed_again": "`embeds` already hold the residual stream r_0 = W_E[tokens] + W_pos: yours adds the token "
    "embeddings model.W_E[tokens] to them again; use embeds as they are",
    "one_head_pattern": "each head mixes positions with its OWN attention pattern, frozen.pattern[h]: yours uses head "
    "0's pattern for every head (frozen.pattern[0], or an index that never moves with the head); z_h = pattern[h] v_h",
    "pattern_summed": "each head mixes positions with its OWN attention pattern, frozen.pattern[h]: yours applies "
    "the patterns summed over the heads (pattern.sum(0)) to every head's values; z_h = pattern[h] v_h",
    "pattern_averaged": "each head mixes positions with its OWN attention pattern, frozen.pattern[h]: yours applies "
    "the patterns averaged over the heads (pattern.mean(0)) to every head's values; z_h = pattern[h] v_h",
    "heads_mean": "the heads' outputs are summed, not averaged: yours has a factor 1/n_heads on the attention output "
    "(e.g. per-head outputs .mean(0) instead of .sum(0)); resid_mid = embeds + Σ_h z_h W_O[h] + b_O",
}
LINEARISED_MISTAKES = {
    **known.LINEARISED_MISTAKES,
    **known.LINEARISED_TERM_MISTAKES,
    **extra.LINEARISED_EXTRA,
    **probes.LINEARISED_PROBED,
    **hints.LINEARISED_HINTS,
    **LINEARISED_SLIPS,
    **placement.ERROR_PLACEMENT,
    **placement.SKIP_PLACEMENT,
    **readings.LINEARISED_FROZEN_SLIPS,
    **ln_axis.LN_AXIS_MISTAKES,
    **error_input.ERROR_INPUT,
    **stale.STALE_INPUTS,
    **scale_swaps.SCALE_SWAPS,
    **head_merge.HEAD_MERGE,
}


def variant_forward(model, tc, frozen, embeds, latents=None, error=None, **bug) -> tuple[Tensor, Tensor]:
    """known.variant_forward, plus the slips of LINEARISED_SLIPS and readings.LINEARISED_FROZEN_SLIPS."""
    for code in ln_axis.LN_AXIS_MISTAKES:
        if bug.pop(code, False):
            return ln_axis.forward(model, tc, frozen, embeds, latents, error, code)
    for code in scale_swaps.SCALE_SWAPS:
        if bug.pop(code, False):
            return scale_swaps.forward(model, tc, frozen, embeds, latents, error, code=code)
    for code in stale.STALE_INPUTS:
        if bug.pop(code, False):
            return stale.forward(model, tc, frozen, embeds, latents, error, code=code)
    if bug.pop("heads_reshaped", False):
        return head_merge.forward(model, tc, frozen, embeds, latents, error)
    if bug.pop("error_in_mlp_input", False):
        return error_input.forward(model, tc, frozen, embeds, latents, error)
    if bug.pop("final_scale_recomputed", False):
        return readings.final_recomputed(known.variant_forward, model, tc, frozen, embeds, latents, error)
    for code in readings.LINEARISED_FROZEN_SLIPS:
        if bug.pop(code, False):
            frozen = readings.with_frozen_slip(frozen, code)
    if bug.pop("heads_mean", False):
        model = _HeadsAveraged(model)
    if bug.pop("one_head_pattern", False):  # head 0's pattern for every head
        frozen = dataclasses.replace(frozen, pattern=frozen.pattern[:1].expand_as(frozen.pattern))
    for code, merge in (("pattern_summed", torch.sum), ("pattern_averaged", torch.mean)):
        if bug.pop(code, False):  # every head mixes with the heads' patterns merged
            frozen = dataclasses.replace(frozen, pattern=merge(frozen.pattern, 0, True).expand_as(frozen.pattern))
    if bug.pop("pos_again", False):
        embeds = embeds + model.W_pos[: embeds.shape[0]]
    if bug.pop("embed_again", False):
        embeds = embeds + model.W_E[frozen.tokens]
    if bug.pop("error_twice", False):  # the error enters only through mlp_out: twice = an error of 2e given once
        return known.variant_forward(model, tc, frozen, embeds, latents, 2 * (frozen.error if error is None else error))
    if bug.pop("recorded_output", False):  # frozen's own recordings: they don't depend on embeds
        return frozen.acts, frozen.logits
    if bug.pop("skip_ln2_embeds", False):  # the skip term reads LN2 of r₀ (the embeddings), not of resid_mid
        tc = placement.SkipFed(tc, (embeds - embeds.mean(-1, keepdim=True)) / frozen.ln2_scale)
    if bug.pop("ln1_at_query", False):
        return _ln1_at_query(model, tc, frozen, embeds, latents, error)
    return known.variant_forward(model, tc, frozen, embeds, latents, error, **bug)


def _ln1_at_query(model, tc, frozen, embeds, latents=None, error=None) -> tuple[Tensor, Tensor]:
    """The local replacement model with LN1's scale applied after attention: the centred embeddings go through W_V
    unscaled and the mixed values are divided by the query position's ln1 scale (b_V added after)."""
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    v = torch.einsum("kd,hde->hke", embeds - embeds.mean(-1, keepdim=True), model.W_V[0])
    z = torch.einsum("hqk,hke->hqe", frozen.pattern, v) / frozen.ln1_scale[None] + model.b_V[0][:, None]
    mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
    x = ln(mid, frozen.ln2_scale)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    e = frozen.error if error is None else error
    resid = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x) + e
    return pre, ln(resid, frozen.final_scale) @ model.W_U + model.b_U


ZEROED_ELSEWHERE = {
    "blocks.0.hook_attn_out": "the attention output",
    "blocks.0.hook_resid_mid": "the residual stream before the MLP (resid_mid)",
    "blocks.0.hook_resid_post": "the whole residual stream after the block (resid_post)",
    "blocks.0.hook_resid_pre": "the embeddings (resid_pre)",
}


def zero_ablated_elsewhere(model, tc, tokens, got: float, want: float, close: Callable, loss: Callable) -> None:
    """The zero-ablated loss with another hook point than the MLP's output zeroed: say which one."""
    for where, what in ZEROED_ELSEWHERE.items():
        if where != tc.hook_name_out and close(
            got, loss(model, tokens, [(where, lambda a, hook: torch.zeros_like(a))])
        ):
            fail(
                f"zero-ablated loss {got:.5f}, expected {want:.5f}: that is the loss with {what} zeroed ({where})",
                f"zero-ablation removes the MLP's output, the part the transcoder replaces: zero it at "
                f"tc.hook_name_out ({tc.hook_name_out}), with `torch.zeros_like(act)`",
                code="ablation_elsewhere",
            )


def token_view_error(err: Exception, model: Any, tc: Transcoder, side: str) -> None:
    """A shape error of latent_logit_effect / latent_de_embedding: the MLP's own matrices (sens.through_mlp_weights),
    or a vector over the latents (d_sae long, e.g. the column W_dec[:, i]) where a d_model vector belongs."""
    sens.through_mlp_weights(err, model, side)
    d_sae, d_model = tc.d_sae, model.cfg.d_model
    if not isinstance(err, RuntimeError) or d_sae == d_model:
        return
    shapes = [(int(a), int(b)) for a, b in re.findall(r"(\d+)x(\d+)", str(err))]
    if side != "logit" or not shapes or shapes[0] != (1, d_sae) or (d_model, model.cfg.d_vocab) not in shapes[1:]:
        return
    fail(
        f"your code raised RuntimeError: {err}: the vector multiplied into W_U [d_model d_vocab] is {d_sae} long, "
        f"d_sae (the number of latents), where d_model = {d_model} belongs",
        f"W_dec[:, i] is a column over the latents (d_sae = {d_sae}): the latent's decoder row is W_dec[i] "
        "([d_sae d_model] has one row per latent), so the logit effect is tc.W_dec[latent] @ model.W_U",
        code="dec_column",
    )
