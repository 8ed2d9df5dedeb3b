"""Part 6b readings of transcoder_forward and linearised_forward slips that no fixed catalogue value shows: code
hard-coded for a 3-D x (the contract's x is `... d_in`), acts rescaled per latent by a norm of the latent's own
vectors, a computation in a reduced-precision dtype cast back, and the latents' gradient path cut (a detach) in the
local replacement model; plus frozen-scale slips of linearised_forward (an eps added to the frozen scales, position
0's or the last position's scale used for every position)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_extra_mistakes as extra
from tests import part6b_circuits_term_readings as terms
from tests import part6b_circuits_value_readings as vr
from tests.checking import fail


def forward_call(impl: Callable, tc: Any, x: Tensor) -> Any:
    """extra.forward_call; when it raises on an x that is not 3-D but works on the same tokens as a 3-D [1 n d_in]
    batch, the code is hard-coded for [batch seq d_in]: say so."""
    try:
        return extra.forward_call(impl, tc, x)
    except Exception as err:
        if x.ndim == 3:
            raise
        try:
            impl(tc, x.reshape(1, -1, x.shape[-1]))
        except Exception:
            raise err from None
        fail(
            f"transcoder_forward raised {type(err).__name__} on an x of shape {tuple(x.shape)} ({x.ndim}-D), and "
            f"works on the same tokens as one 3-D batch [1 {x[..., 0].numel()} d_in]: your code assumes x is "
            "[batch seq d_in]",
            "x is `... d_in`: any number of leading dimensions (a 2-D [tokens d_in] too). Write the products so they "
            "act on the last axis only, e.g. x @ tc.W_enc, or an einsum with `...` ('... d, d f -> ... f'), not one "
            "hard-coded for 'b s d'",
            code="leading_dims",
        )


def forward_tail(tc: Any, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) read from the learner's acts when no catalogue value matched: the TopK gate
    (terms.topk_gate), acts rescaled per latent by a norm of its own vectors; a reduced-precision computation is
    failed directly (its values are rounding, not one formula)."""
    found = terms.topk_gate(tc, x, acts) + _norm_factors(tc, x)
    try:
        if any(a.shape == acts.shape and torch.allclose(acts, a, rtol=1e-4, atol=1e-4) for _, _, a, _ in found):
            return found
    except (RuntimeError, TypeError, AttributeError):
        return found
    _per_latent_factor(tc, x, acts)
    vr.leaky_gate(tc, x, acts)
    _reduced_precision(tc, x, acts)
    return found


def _per_latent_factor(tc: Any, x: Tensor, acts: Tensor) -> None:
    """acts = the right ones × one factor per latent (the same at every token), not 1: read the factors back."""
    try:
        a = acts.detach().to(x.dtype).reshape(-1, tc.d_sae)
        pre = x @ tc.W_enc + tc.b_enc
        e = (pre * (pre > tc.threshold)).reshape(-1, tc.d_sae)
        if a.shape != e.shape or not bool(((a != 0) == (e != 0)).all()):
            return
        ratio = torch.where(e != 0, a / e, torch.nan)
        counts = (e != 0).sum(0)
        lo, hi = ratio.nan_to_num(torch.inf).amin(0), ratio.nan_to_num(-torch.inf).amax(0)
    except (RuntimeError, TypeError, AttributeError):
        return
    seen = counts >= 2
    if int(seen.sum()) < 3 or not bool(((hi - lo)[seen] <= 1e-4 * hi[seen].abs()).all()):
        return
    factors = lo[counts >= 1]
    if bool(((factors - 1).abs() <= 1e-4).all()):
        return
    fail(
        "your acts are the right ones × one factor per latent, the same at every token (from "
        f"{float(factors.min()):.4g} to {float(factors.max()):.4g} over the latents that fire)",
        "a per-latent rescaling the contract doesn't have (e.g. a norm of the latent's encoder or decoder vector, or "
        "a threshold): return acts = pre · [pre > threshold] as they are",
        code="acts_latent_factor",
    )


def _norm_factors(tc: Any, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre > tc.threshold)
    out = acts @ tc.W_dec + tc.b_dec + (0 if tc.W_skip is None else x @ tc.W_skip.T)
    dec, enc = tc.W_dec.norm(dim=1), tc.W_enc.norm(dim=0)
    tail = (
        ": a per-latent factor the contract doesn't have (an SAE-library habit of reporting acts × ‖W_dec[i]‖); "
        "return acts = pre · [pre > threshold] as they are (if your out is right, the factor came after decoding)"
    )
    return [
        ("acts_norm_factor", "your acts are the right ones × ‖W_dec[i]‖, the latent's decoder-row norm" + tail,
         acts * dec, out),
        ("acts_norm_factor", "your acts are the right ones ÷ ‖W_dec[i]‖, the latent's decoder-row norm" + tail,
         acts / dec, out),
        ("acts_norm_factor", "your acts are the right ones × ‖W_enc[:, i]‖, the latent's encoder-column norm" + tail,
         acts * enc, out),
    ]  # fmt: skip


def _reduced_precision(tc: Any, x: Tensor, acts: Tensor) -> None:
    """Many entries off by small relative amounts of both signs (rounding), a few gates flipped near the threshold:
    the signature of a computation in bfloat16/float16 cast back. Observed first, the cause as e.g."""
    try:
        a = acts.detach().to(x.dtype)
        pre = x @ tc.W_enc + tc.b_enc
        e = pre * (pre > tc.threshold)
        if a.shape != e.shape or not bool(a.isfinite().all()) or torch.allclose(a, e, rtol=1e-4, atol=1e-4):
            return
        both = (a != 0) & (e != 0)
        if int(both.sum()) < 50:
            return
        rel = ((a - e) / e)[both]
        moved = rel.abs() > 1e-6
        signs = float((rel[moved] > 0).float().mean()) if bool(moved.any()) else 0.0
    except (RuntimeError, TypeError, AttributeError):
        return
    q99, median = float(rel.abs().quantile(0.99)), float(rel.abs().median())
    # bfloat16 keeps 8 significant bits (relative steps up to 2^-8 ≈ 0.4%), float16 11 (≈ 0.05%): after a sum of
    # products rounded once or twice, 99% of relative errors stay below 2^-6 ≈ 1.6%.
    if float(moved.float().mean()) < 0.3 or q99 > 2**-6 or not 0.2 < signs < 0.8:
        return
    fail(
        f"acts differ from the right ones at {int(moved.sum())} of the {int(both.sum())} entries where both fire, "
        f"each by a small relative amount of either sign (median {median:.1e}, 99% below {q99:.1e}); the few latents "
        "near their threshold may fire differently",
        "that is the rounding of a reduced-precision computation (bfloat16 keeps about 3 significant digits, float16 "
        "about 4): e.g. x, W_enc or b_enc cast to .bfloat16()/.half() and the result cast back. Compute in x's dtype",
        code="reduced_precision",
    )


def with_frozen_slip(frozen: Any, code: str) -> Any:
    """The frozen run as a slip of LINEARISED_FROZEN_SLIPS reads it."""
    if code == "eps_on_frozen_scale":
        return dataclasses.replace(
            frozen,
            ln1_scale=frozen.ln1_scale + 1e-5,
            ln2_scale=frozen.ln2_scale + 1e-5,
            final_scale=frozen.final_scale + 1e-5,
        )
    if code == "final_scale_recomputed":
        return frozen
    name = code.removesuffix("_pos0").removesuffix("_last")
    scale = getattr(frozen, name)
    one = scale[-1:] if code.endswith("_last") else scale[:1]
    return dataclasses.replace(frozen, **{name: one.expand_as(scale)})


LINEARISED_FROZEN_SLIPS = {
    "eps_on_frozen_scale": "the frozen scales already are the std with LayerNorm's eps inside (s = sqrt(var + "
    "eps)): yours adds an eps (1e-5) to them again; divide by frozen.ln1_scale / ln2_scale / final_scale as they are",
    **{
        f"{name}_pos0": f"each position is normalised by its OWN frozen scale, frozen.{name}[p] (a [seq 1] column "
        f"that broadcasts over d_model): yours uses position 0's, frozen.{name}[0], for every position"
        for name in ("ln1_scale", "ln2_scale", "final_scale")
    },
    **{
        f"{name}_last": f"each position is normalised by its OWN frozen scale, frozen.{name}[p] (a [seq 1] column "
        f"that broadcasts over d_model): yours uses the last position's, frozen.{name}[-1], for every position"
        for name in ("ln1_scale", "ln2_scale", "final_scale")
    },
    "final_scale_recomputed": "the final normalisation is frozen too: LN(r_2; s_f) = (r_2 - mean) / "
    "frozen.final_scale; yours recomputes the scale from r_2 (model.ln_final, or a std of the new residual), which "
    "makes the local replacement model nonlinear away from the prompt",
}


class _Readout:
    """The model seen with W_U = identity and b_U = 0: its logits are the normalised residual stream itself."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.W_U = torch.eye(model.cfg.d_model, device=model.W_U.device, dtype=model.W_U.dtype)
        self.b_U = torch.zeros(model.cfg.d_model, device=model.W_U.device, dtype=model.W_U.dtype)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def final_recomputed(forward: Callable, model: Any, tc: Any, frozen: Any, *args: Any) -> tuple[Tensor, Tensor]:
    """`forward` (the local replacement model) with the final LN's scale recomputed from r_2 as model.ln_final does
    (sqrt(biased var + eps), the shipped model's LN weights folded in)."""
    flat = dataclasses.replace(frozen, final_scale=torch.ones_like(frozen.final_scale))
    centred = forward(_Readout(model), tc, flat, *args)[1]
    scale = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
    return forward(model, tc, dataclasses.replace(frozen, final_scale=scale), *args)


def linearised_gradient(impl: Callable, model: Any, tc: Any, frozen: Any, reference: Callable) -> None:
    """With latents=None the logits are differentiable in `embeds` through every path, the latents' too (the
    contract asks for differentiable operations only): compare one vector-Jacobian product with the reference's and
    name a latent path that was cut (a .detach() on pre or f)."""
    g = torch.Generator().manual_seed(12)
    w = torch.randn(len(frozen.tokens), model.cfg.d_vocab, generator=g).to(frozen.embeds.device)

    def vjp(fn: Callable) -> Tensor | None:
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        logits = fn(embeds)[1]
        if not isinstance(logits, Tensor) or not logits.requires_grad:
            return None
        return torch.autograd.grad((logits * w).sum(), embeds, allow_unused=True)[0]

    got = vjp(lambda embeds: impl(model, tc, frozen, embeds))
    if got is None:
        fail(
            "the logits do not depend on `embeds` through autograd",
            "no .detach(), torch.no_grad() or conversion to numpy inside: the next exercise differentiates it",
            code="not_differentiable",
        )
    want = vjp(lambda embeds: reference(model, tc, frozen, embeds))
    scale = float(want.abs().max())
    if torch.allclose(got, want, rtol=1e-3, atol=1e-4 * scale):
        return

    def cut(embeds: Tensor) -> tuple[Tensor, Tensor]:
        pre = reference(model, tc, frozen, embeds)[0]
        return reference(model, tc, frozen, embeds, (pre * frozen.active).detach())

    gap = float((got - want).abs().max())
    seen = (
        "the gradient of the logits w.r.t. `embeds` (latents=None) differs from the expected one (largest gap "
        f"{gap:.3g}, largest expected {scale:.3g}), though the values are right"
    )
    detached = vjp(cut)
    if detached is not None and torch.allclose(got, detached, rtol=1e-3, atol=1e-4 * scale):
        fail(
            seen + ": it equals the gradient with the latents' path cut (f = pre ⊙ active detached)",
            "f = pre ⊙ frozen.active must stay differentiable: no .detach() (or .data, or a no_grad block) on pre or "
            "f; only `latents` passed in by the caller replace it",
            code="latents_detached",
        )
    fail(seen, "use only differentiable operations: no .detach(), .data, no_grad or in-place edits of leaves inside",
         code="gradient")  # fmt: skip
