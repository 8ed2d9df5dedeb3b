"""Part 6b probes for mistakes that the shipped inputs hide or blur.

The shipped transcoder replaces the MLP so well that the replaced loss is within 1% of the clean one: an output
rescaled to the MLP's norm, or a `recovered` formula that agrees with the right one to second order in
(replaced - clean), stays under the losses' tolerance on the first tokens. Here `recovered` is checked against the
learner's own three losses (exact arithmetic, so a tight tolerance), the replacement is re-run with a transcoder
whose output is scaled (a probe the shipped one's near-perfect fit cannot hide from), and a second call's mismatch
is called stale state only when the first call's state reproduces it. Also: the replaced loss compared with the
transcoder fed every other d_model hook point, the input normalised again before the encoder, a row of W_E @ W_enc
(a token's view) taken for a column, a matrix product through the MLP's own W_in / W_out, and a FrozenRun edited in
place by attribution_edges.
"""

from __future__ import annotations

import copy
import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import expect_dict, fail, returned
from utils.transcoder import Transcoder

KEYS = ("clean", "replaced", "zero_ablated", "recovered")
SCALE = 1.5  # the probe transcoder's output is SCALE × the shipped one's


# --------------------------------------------------------------------------------------------
# replacement_losses
# --------------------------------------------------------------------------------------------
def recovered_own(got: dict[str, float]) -> None:
    """recovered must be (z - r) / (z - c) of the learner's own three losses. Python floats (or float32 tensors)
    give it to ~1e-7; the tolerance 1e-5 is far below the 7e-5 by which 1 - (r - c) / (z - r) differs on the first
    tokens (that difference is (r - c)² / ((z - r)(z - c)), second order, so hidden by the losses' tolerance)."""
    c, r, z, rec = got["clean"], got["replaced"], got["zero_ablated"], got["recovered"]
    if z == c:
        return
    right = (z - r) / (z - c)
    close = lambda a, b: abs(a - b) <= 1e-5 * abs(b) + 1e-5
    if close(rec, right):
        return
    wrong = []
    if z != r:
        wrong.append((1 - (r - c) / (z - r), "1 - (replaced - clean) / (zero - replaced): the gap is divided by "))
    if r != c:
        wrong.append((1 - (r - c) / r, "1 - (replaced - clean) / replaced, measured against the replaced loss: "))
    if c != 0:
        wrong.append((1 - (r - c) / c, "1 - (replaced - clean) / clean, without the baseline: "))
    fits = [why for value, why in wrong if close(rec, value)]
    if fits and fits[0].startswith("1 - (replaced - clean) / (zero - replaced)"):
        hint = (
            "yours is " + fits[0] + "zero - replaced instead of the whole gap zero - clean; the two agree to "
            "second order when replaced ≈ clean, which is why the difference is small: recovered = "
            "(zero - replaced) / (zero - clean) = 1 - (replaced - clean) / (zero - clean)"
        )
    elif fits:
        hint = "yours is " + fits[0] + "recovered = (zero - replaced) / (zero - clean)"
    else:
        hint = "recovered = (zero - replaced) / (zero - clean), computed from the three losses you return"
    fail(
        f"recovered is {rec:.6f}, but from your own three losses (clean {c:.6f}, replaced {r:.6f}, zero-ablated "
        f"{z:.6f}) (zero - replaced) / (zero - clean) = {right:.6f}",
        hint,
        code="recovered_denominator_replaced" if fits and "zero - replaced" in fits[0] else "recovered_formula",
    )


def scaled_transcoder(tc: Transcoder, scale: float = SCALE) -> Transcoder:
    """A copy of tc whose output tc(x) is scale × the original's (decoder, decoder bias and skip scaled)."""
    d = lambda t: None if t is None else t.detach().clone()
    return Transcoder(
        d(tc.W_enc),
        d(tc.b_enc),
        d(tc.W_dec) * scale,
        d(tc.b_dec) * scale,
        d(tc.threshold),
        None if tc.W_skip is None else d(tc.W_skip) * scale,
        hook_name=tc.hook_name,
        hook_name_out=tc.hook_name_out,
    )


def _rescaled_loss(model: Any, tc: Transcoder, tokens: Tensor) -> float:
    """The replaced loss with tc(x) rescaled, per token, to the norm of the MLP output it replaces."""
    seen: dict = {}

    def write(act: Tensor, hook: Any) -> Tensor:
        out = tc(seen["x"])
        return out * act.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    hooks = [(tc.hook_name, lambda a, hook: seen.__setitem__("x", a)), (tc.hook_name_out, write)]
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()


def scaled_probe(impl: Callable, model: Any, tc: Transcoder, tokens: Tensor, first: dict, reference: Callable) -> None:
    """replacement_losses with a transcoder whose output is SCALE × the shipped one's: its replaced loss is far from
    the shipped one's (the shipped output is close to the MLP's, so a replacement that only keeps its direction, or
    its size, barely changes the loss there)."""
    probe = scaled_transcoder(tc)
    exp = reference(model, probe, tokens)
    out = returned(impl(model, probe, tokens.clone()), "replacement_losses(...) with a rescaled transcoder")
    expect_dict(out, "replacement_losses", KEYS)
    close = lambda a, b: abs(a - b) <= 1e-4 * abs(b) + 1e-5
    got = {k: float(out[k]) for k in KEYS}
    if all(close(got[k], exp[k]) for k in KEYS):
        return
    k = next(k for k in KEYS if not close(got[k], exp[k]))
    said = (
        f"with a transcoder whose output is {SCALE} × the shipped one's (W_dec, b_dec and W_skip scaled by {SCALE}), "
        f"out[{k!r}] = {got[k]:.5f}, expected {exp[k]:.5f}; with the shipped transcoder it was right"
    )
    unchanged = close(got[k], first[k]) and not close(exp[k], first[k])
    rescaled = k == "replaced" and close(got[k], _rescaled_loss(model, probe, tokens))
    if rescaled or unchanged:  # both fit a rescaled output here: a transcoder with its output negated tells them apart
        flipped = scaled_transcoder(tc, -1.0)
        out = returned(impl(model, flipped, tokens.clone()), "replacement_losses(...) with a negated transcoder")
        expect_dict(out, "replacement_losses", KEYS)
        neg = float(out["replaced"])
        if k == "replaced" and close(neg, _rescaled_loss(model, flipped, tokens)) and not close(neg, first[k]):
            fail(
                said + "; it equals the loss with tc(x) rescaled to the MLP output's norm at each token, and so "
                f"does your {neg:.5f} with the transcoder's output negated",
                "the replacement is the transcoder's output tc(x) as it is: yours rescales it to the norm of the MLP "
                "output it replaces, which keeps only its direction (and leaks the real MLP's norm into the "
                "replacement model); on the shipped transcoder the two nearly agree, because its output is close "
                "to the MLP's",
                code="rescaled_output",
            )
        unchanged = close(neg, first["replaced"]) and unchanged
    fail(
        said
        + (
            f" (unchanged from the shipped transcoder's {first[k]:.5f}, also with its output negated)"
            if unchanged
            else ""
        ),
        "the replaced loss must follow the transcoder's output tc(x) exactly: "
        + (
            "yours did not change when that output was scaled or negated, so the transcoder passed in is not the "
            "one used (a transcoder loaded or kept elsewhere?) or "
            if unchanged
            else ""
        )
        + "something adjusts tc(x) before it is written (rescaled, clipped, mixed with the MLP's own output?), "
        "or reads the transcoder's weights other than through tc(x); the shipped transcoder's output is close to "
        "the MLP's, which hid it there",
        code="transcoder_output",
    )


def _attached(model: Any) -> list[str]:
    return [name for name, hp in model.hook_dict.items() if getattr(hp, "fwd_hooks", None)]


def second_call(
    impl: Callable, model: Any, tc: Transcoder, tokens: tuple[Tensor, Tensor], first: dict, reference: Callable
) -> None:
    """A second call on other tokens of the same shape (tokens[1]; tokens[0] were the first call's) must give that
    call's losses. A mismatch is called state kept from the first call only when that state reproduces it: the
    first call's values returned again, the replaced loss with the first call's x (tc.hook_name on tokens[0]), or a
    hook still attached to the model; otherwise what was observed is described, with the possible causes."""
    out = returned(impl(model, tc, tokens[1].clone()), "replacement_losses(...) on a second call")
    expect_dict(out, "replacement_losses", KEYS)
    attached = _attached(model)
    exp, exp1 = reference(model, tc, tokens[1]), reference(model, tc, tokens[0])
    close = lambda a, b: abs(a - b) <= 1e-4 * abs(b) + 1e-5
    for k in KEYS:
        got = float(out[k])
        if close(got, exp[k]):
            continue
        said = f"on a second call with other tokens (same shape), out[{k!r}] = {got:.5f}, expected {exp[k]:.5f}"
        stale = []
        if close(got, first[k]) and not close(exp[k], first[k]):
            stale.append(f"it equals your first call's value ({first[k]:.5f})")
        if k in ("replaced", "recovered"):
            _, cache = model.run_with_cache(tokens[0], names_filter=tc.hook_name, stop_at_layer=1)
            x1 = cache[tc.hook_name]
            r1 = model.run_with_hooks(
                tokens[1], return_type="loss", fwd_hooks=[(tc.hook_name_out, lambda a, hook, x1=x1: tc(x1))]
            ).item()
            c, z = exp["clean"], exp["zero_ablated"]
            v = r1 if k == "replaced" else (z - r1) / (z - c)
            if close(got, v) and not close(v, exp[k]):
                stale.append("it is what the first call's stored input x (at tc.hook_name) gives on these tokens")
        if attached:
            stale.append(f"hooks are still attached to the model after your call (at {', '.join(attached)})")
        if stale:
            fail(
                said + "; the first call was right; " + "; ".join(stale),
                "the result must depend only on this call's tokens: state kept from an earlier call leaks in (an "
                "input stored in a module-level list or dict and its first entry reused, a cached value, a hook "
                "left attached): keep the stored input in a local variable inside the function",
                code="stale_state",
            )
        off1 = abs(first[k] - exp1[k])
        fail(
            said + f" (off by {abs(got - exp[k]):.2g}); on the first call's tokens it was off by {off1:.2g}, within "
            f"the tolerance ({1e-4 * abs(exp1[k]) + 1e-5:.2g})",
            "neither the first call's values nor its stored input reproduce this value, and no hook is left "
            "attached, so state kept between calls is unlikely: more likely a computation that is nearly but not "
            "exactly the asked one (the transcoder's output adjusted before it is written, a formula that agrees "
            "with the right one when the losses are close), which the first tokens happened to hide: compare each "
            "step with the text on these tokens",
            code="second_call",
        )


HOOK_WORDS = {
    "hook_embed": "the token embeddings alone",
    "hook_pos_embed": "the position embeddings alone",
    "blocks.0.hook_resid_pre": "the residual stream before attention (the embeddings)",
    "blocks.0.ln1.hook_normalized": "attention's normalised input",
    "blocks.0.hook_attn_out": "attention's output alone",
    "blocks.0.hook_resid_mid": "the residual stream after attention, before ln2 normalises it",
    "blocks.0.hook_mlp_out": "the MLP's output",
    "blocks.0.hook_resid_post": "the residual stream after the MLP",
    "ln_final.hook_normalized": "the final normalised residual",
}


def other_hook_points(model: Any, tc: Transcoder, tokens: Tensor, got: float, right: float, close: Callable) -> None:
    """The replaced loss compared with the transcoder fed each other hook point of width d_in ([batch seq d_model])
    and its output written at tc.hook_name_out: a match names where x was read."""
    _, cache = model.run_with_cache(tokens)
    shape = (*tokens.shape, tc.d_in)
    names = [n for n, a in cache.items() if tuple(a.shape) == shape and n not in (tc.hook_name, tc.hook_name_out)]
    fits = []
    for name in names:
        x = cache[name]
        loss = model.run_with_hooks(
            tokens, return_type="loss", fwd_hooks=[(tc.hook_name_out, lambda a, hook, x=x: tc(x))]
        ).item()
        if close(got, loss) and not close(loss, right):
            fits.append(name)
    if fits:
        where = " or ".join(f"{n} ({HOOK_WORDS[n]})" if n in HOOK_WORDS else n for n in fits)
        fail(
            f"replaced loss {got:.5f}, expected {right:.5f}: it is the loss with the transcoder fed the activation "
            f"at {where}",
            f"the transcoder reads the MLP's normalised input, at tc.hook_name ({tc.hook_name}): store x there and "
            f"return tc(x) at tc.hook_name_out ({tc.hook_name_out})",
            code="input_hook",
        )


# --------------------------------------------------------------------------------------------
# transcoder_forward, token views
# --------------------------------------------------------------------------------------------
def forward_normalised(tc: Transcoder, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of transcoder_forward with x normalised again before the encoder: F.layer_norm, a
    hand-written layer norm with the unbiased std (x.std, no eps), centring only, an RMS norm; the skip term fed the
    raw x or the normalised one."""
    centred = x - x.mean(-1, keepdim=True)
    norms = [
        ("a layer norm over d_in: mean removed, divided by the std", F.layer_norm(x, x.shape[-1:])),
        ("a hand-written layer norm, (x - mean) / x.std(-1) over d_in", centred / x.std(-1, keepdim=True)),
        ("the mean over d_in removed (a centring)", centred),
        ("an RMS norm over d_in, x / sqrt(mean x²)", x / x.pow(2).mean(-1, keepdim=True).sqrt()),
    ]
    out = []
    for what, xn in norms:
        acts = tc.encode(xn)
        for skip_in, also in ((x, ""), (xn, " (and the skip term reads the normalised x too)")):
            if skip_in is xn and tc.W_skip is None:
                continue
            dec = acts @ tc.W_dec + tc.b_dec + (0 if tc.W_skip is None else skip_in @ tc.W_skip.T)
            hint = (
                f"the encoder reads x as it is: yours normalises it first ({what}){also}. x at tc.hook_name is "
                "already the MLP's normalised input (ln2's output), so this applies a norm a second time, and the "
                "transcoder was trained on x unchanged: pre = x @ W_enc + b_enc, skip = x @ W_skip.T"
            )
            out.append(("input_normalised", hint, acts, dec))
    return out


def token_view_index(model: Any, tc: Transcoder, i: int, side: str) -> list[tuple[str, str, Tensor]]:
    """The product matrix indexed on the wrong axis: row `i` of W_E @ W_enc (token i's pre-activations over every
    latent) for the de-embedding, column `i` of W_dec @ W_U (every latent's effect on token i's logit) for the logit
    effect. Same shape as the right vector only when d_sae = d_vocab (as in the shipped transcoder)."""
    if i >= model.cfg.d_vocab:
        return []
    if side == "de":
        value, what = (model.W_E[i] @ tc.W_enc), "row `latent` of W_E @ W_enc, [d_vocab d_sae]"
        means, want = f"token {i}'s pre-activation on every latent", "its column [:, latent]"
    else:
        value, what = (tc.W_dec @ model.W_U[:, i]), "column `latent` of W_dec @ W_U, [d_sae d_vocab]"
        means, want = f"every latent's effect on token {i}'s logit", "its row [latent]"
    same = " (here d_sae = d_vocab, so the shape cannot tell them apart)" if tc.d_sae == model.cfg.d_vocab else ""
    return [
        (
            "wrong_axis",
            f"yours is {what}: {means}, one value per latent{same}; index the other axis, {want}, one value per "
            "token of the vocabulary",
            value,
        )
    ]


def through_mlp_weights(err: Exception, model: Any, side: str) -> None:
    """An error with the MLP's hidden width d_mlp in it, on a line that uses the MLP's W_in / W_out or with an operand
    of W_out's [d_mlp d_model] (logit effect) or W_in's [d_model d_mlp] (de-embedding) shape: transcoder latents read
    and write the MLP's input and output directly, so the MLP's own matrices have no place in these views."""
    d_mlp, d_model = model.cfg.d_mlp, model.cfg.d_model
    if not isinstance(err, RuntimeError) or d_mlp in (d_model, model.cfg.d_vocab):
        return
    if d_mlp not in {int(n) for n in re.findall(r"\d+", str(err))}:
        return
    shapes = [(int(a), int(b)) for a, b in re.findall(r"(\d+)x(\d+)", str(err))]
    line = (traceback.extract_tb(err.__traceback__)[-1].line or "") if err.__traceback__ else ""
    if "W_out" in line or ("W_in" not in line and side == "logit" and (d_mlp, d_model) in shapes):
        matrix, seen = "W_out", "your line uses W_out" if "W_out" in line else "an operand is [d_mlp d_model]"
    elif "W_in" in line or (side == "de" and (d_model, d_mlp) in shapes):
        matrix, seen = "W_in", "your line uses W_in" if "W_in" in line else "an operand is [d_model d_mlp]"
    else:
        return
    io, vec, fix = (
        ("output", "tc.W_dec[latent]", "tc.W_dec[latent] @ model.W_U")
        if matrix == "W_out"
        else ("input", "tc.W_enc[:, latent]", "model.W_E @ tc.W_enc[:, latent]")
    )
    fail(
        f"your code raised RuntimeError: {err}; d_mlp = {d_mlp}, the MLP's hidden width, is in it ({seen}, the "
        f"shape of the MLP's {matrix})",
        f"transcoder latents {'write to' if matrix == 'W_out' else 'read'} the MLP's {io} directly: {vec} is "
        f"already a d_model direction in the residual stream (the transcoder replaces the whole MLP, {matrix} "
        f"included), so leave {matrix} out: {fix}",
        code=f"through_{matrix}",
    )


# --------------------------------------------------------------------------------------------
# attribution_edges
# --------------------------------------------------------------------------------------------
def snapshot(frozen: Any) -> dict[str, tuple[Tensor, bool, Any]]:
    """Each tensor field of the FrozenRun: a private copy of its values, its requires_grad and its grad_fn."""
    return {
        name: (value.detach().clone(), value.requires_grad, value.grad_fn)
        for name, value in vars(frozen).items()
        if isinstance(value, Tensor)
    }


def frozen_unchanged(frozen: Any, saved: dict[str, tuple[Tensor, bool, Any]], what: str) -> None:
    """Fail, naming the field and what changed, when the learner's call edited the caller's FrozenRun."""
    for name, (values, grad, grad_fn) in saved.items():
        now = getattr(frozen, name)
        changes = []
        if now.shape == values.shape:
            n = int((now.detach() != values).sum())
            changes += [f"{n}/{values.numel()} of its values changed"] if n else []
        else:
            changes.append(f"its shape changed from {tuple(values.shape)}")
        if now.requires_grad != grad:
            changes.append("it now requires grad" if now.requires_grad else "it no longer requires grad")
        if now.grad_fn is not grad_fn and now.grad_fn is not None:
            changes.append(f"it is now part of your autograd graph (grad_fn={type(now.grad_fn).__name__})")
        if changes:
            fail(
                f"{what} changed the FrozenRun it was given, in place: frozen.{name}: " + "; ".join(changes),
                f"frozen is the caller's record of the run, read by every later call: build your own tensor "
                f"(torch.zeros_like(frozen.{name}) or frozen.{name}.clone()) and write into that; `lat = "
                f"frozen.{name}` is the same tensor, not a copy, so `lat[pos, idx] = vals` writes into frozen.{name} "
                "(and attaches it to your graph)",
                code="inplace",
            )


def with_value_bias(model: Any, seed: int = 12) -> Any:
    """A copy of `model` that shares every weight but the attention's value bias b_V, made non-zero (the shipped
    model's is 0: TransformerLens folds it into b_O), so a linearised forward that leaves b_V out shows. The copy
    is a deepcopy whose memo holds every other parameter, buffer and the tokenizer: nothing large is copied, and
    the shared model is never edited."""
    memo = {id(t): t for name, t in [*model.named_parameters(), *model.named_buffers()] if not name.endswith("b_V")}
    memo[id(getattr(model, "tokenizer", None))] = getattr(model, "tokenizer", None)
    biased = copy.deepcopy(model, memo)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in biased.blocks:
            b_V = block.attn.b_V
            b_V.copy_(0.3 * torch.randn(b_V.shape, generator=g).to(b_V) + 0.1)
    return biased
