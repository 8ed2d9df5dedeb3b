"""Behavioural probes for part 6's checkers: runs that use one hook twice (late binding), which flattened positions
a mask left out (a stride from the wrong axis)."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.learner_errors import _is_learner_frame
from tests.part6_lm_saes_slip_readings import decoder_layout_error


def same_hook_runs(got: dict[str, float], exp: dict[str, float]) -> None:
    """out['spliced'] and out['zero_ablated'] equal, and equal to one of the two expected losses: both runs used the
    same hook. Swapped keys give two different values (each the other's), so this is not a swap."""
    s, z = got["spliced"], got["zero_ablated"]
    close = lambda a, b: abs(a - b) <= 2e-5 * abs(b) + 1e-6
    if not close(s, z) or close(exp["spliced"], exp["zero_ablated"]):
        return
    which = next((name for name in ("zero_ablated", "spliced") if close(s, exp[name])), None)
    if which is None:
        return
    fail(
        f"out['spliced'] = out['zero_ablated'] = {s:.6g}, the expected {which.replace('_', '-')} loss: both runs "
        "used the same hook",
        "the two hooks are the same function: a lambda (or def) built in a loop reads the loop variable when it is "
        "CALLED, after the loop, so every hook sees its last value (late binding); bind the value when the lambda "
        "is made (lambda act, hook, fn=fn: fn(act)), or write the two hooks out separately",
        code="late_binding",
    )


def strided_mask(impl: Callable, shape: tuple[int, int], device: torch.device) -> None:
    """A probe on which every position can be told apart: distinct positive values, position 0 (BOS) the largest,
    and k = every non-BOS position. The positions the learner leaves out are read off its indices; when they are
    every s-th flattened entry with s != seq (e.g. flat[::n_seq] = -inf), the stride is named."""
    n_seq, seq = shape
    g = torch.Generator().manual_seed(3)
    probe = (torch.randperm(n_seq * seq, generator=g).float() + 1).view(n_seq, seq) / (n_seq * seq)
    probe[:, 0] += 2.0
    k = n_seq * (seq - 1)
    try:
        values, seq_idx, pos_idx = impl(probe.to(device), k)
        values, seq_idx, pos_idx = (torch.as_tensor(t).detach().cpu() for t in (values, seq_idx, pos_idx))
        flat = seq_idx.long() * seq + pos_idx.long()
        if values.shape != (k,) or flat.shape != (k,) or flat.min() < 0 or flat.max() >= n_seq * seq:
            return
        finite = torch.isfinite(values)  # a masked entry topk had to return (-inf) is not kept
        flat = flat[finite]
        if not torch.allclose(values[finite].double(), probe.flatten()[flat].double()):
            return
    except Exception:
        return
    kept = torch.zeros(n_seq * seq, dtype=torch.bool)
    kept[flat] = True
    left_out = (~kept).nonzero().flatten()
    if len(left_out) < 2 or left_out[0] != 0:
        return
    stride = int(left_out[1])
    if stride == seq or not torch.equal(left_out, torch.arange(0, len(left_out) * stride, stride)):
        return
    if int(left_out[-1]) + stride < n_seq * seq:  # not every s-th: the mask stopped early
        return
    named = f" ({stride} = n_seq, the number of sequences)" if stride == n_seq else ""
    pairs = ", ".join(f"({int(i) // seq}, {int(i) % seq})" for i in left_out[:4])
    fail(
        f"on a probe [{n_seq} sequences × {seq} positions] with k = {k}, your top k leaves out every {stride}-th "
        f"flattened entry (flat indices 0, {stride}, {2 * stride}, …: (sequence, position) {pairs}, …), not position "
        f"0 of every sequence (every {seq}-th)",
        f"a strided mask flat[::{stride}]{named}: in the flattened [n_seq, seq] tensor position 0 of each sequence "
        f"is every seq-th entry (flat[::seq], seq = {seq}); simpler, mask acts[:, 0] = -inf on a copy before "
        "flattening",
        code="mask_stride",
    )


def frequency_slips(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """`acts` [n_seq seq d_sae]: position 0 counted in the numerator, left out of the denominator."""
    n_seq, seq = acts.shape[:2]
    return [
        (
            "bos_numerator",
            f"your counts include position 0 (BOS) but the token count you divide by ({n_seq * (seq - 1)}) leaves it "
            "out: count `acts[:, 1:] > 0` too, so numerator and denominator cover the same positions",
            (acts > 0).float().sum((0, 1)) / (n_seq * (seq - 1)),
        )
    ]


def logit_slips(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The decoder row centred over the latents (minus the mean decoder row) before the path to the logits."""
    path = model.W_out[0] @ model.W_U
    return [
        (
            "centred_latents",
            "you subtracted the mean decoder row (W_dec.mean(0)) from W_dec[latent]: the logit effect is that of "
            "the latent's own direction, W_dec[latent] @ W_out[0] @ W_U, nothing subtracted",
            (sae.W_dec[latent] - sae.W_dec.mean(0)) @ path,
        )
    ]


def fresh14_steer(model: Any, sae: Any, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]
    clean = model(tokens)
    steered = model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + coeff * d)])
    return [
        (
            "coeff_on_act",
            "that is act · coeff + W_dec[latent]: the coefficient scales the activation, not the latent's direction; "
            "add coeff · W_dec[latent] to the activation unchanged",
            model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a * coeff + d)]),
        ),
        (
            "difference",
            "those are the steered logits minus the clean ones: return the steered logits themselves",
            steered - clean,
        ),
    ]


def fresh14_ablate(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    def hook(a: Tensor, hook: Any) -> Tensor:
        return a - sae.encode(a)[..., latent, None] * sae.W_dec[latent]

    ablated = model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])
    return [
        (
            "difference",
            "those are the ablated logits minus the clean ones: return the ablated logits themselves",
            ablated - model(tokens),
        )
    ]


def hook_point_error(err: Exception, model: Any, sae: Any) -> None:
    """An error whose sizes are d_model and the SAE's width, raised while the learner's code held the name (or the
    HookPoint) of another activation than sae.hook_name: the activation was read or edited at the wrong point."""
    d_in = sae.W_dec.shape[1]
    sizes = {int(n) for n in re.findall(r"\d+", str(err))}
    if not {model.cfg.d_model, d_in} <= sizes or model.cfg.d_model == d_in:
        return
    names = set()
    for frame, _ in traceback.walk_tb(err.__traceback__):
        if not _is_learner_frame(frame.f_code.co_filename):
            continue
        for value in frame.f_locals.values():
            name = getattr(value, "name", value) if not isinstance(value, str) else value
            if isinstance(name, str) and name in model.hook_dict and name != sae.hook_name:
                names.add(name)
    if len(names) != 1:
        return
    (name,) = names
    if not re.search(r"hook_(resid_\w+|mlp_out|attn_out|normalized)$", name):  # residual-width points only
        return
    fail(
        f"your code raised {type(err).__name__}: {err}, while using the activation at {name!r}",
        f"{name!r} holds [..., {model.cfg.d_model}] (d_model, the residual-stream width), but the SAE reads and "
        f"writes {sae.hook_name!r} = sae.hook_name ([..., {d_in}], d_mlp, the MLP's hidden activations): hook or "
        "cache sae.hook_name, not a name written out by hand",
        code="hook_point",
    )


def fresh15_frequency(fired: Tensor, n_seq: int, seq: int, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """`fired` [n_seq seq-1 d_sae] (float, positions >= 1): the counts divided by another whole count than the tokens
    counted (each named by how it is built from n_seq, seq and the batches), and a running average of the batches'
    frequencies that halves the old value at every batch."""
    counts, n_tok = fired.sum((0, 1)), n_seq * (seq - 1)
    n_batches = -(-n_seq // batch_size)
    right = f"the tokens counted are n_seq × (seq − 1) = {n_seq} × {seq - 1} = {n_tok}"
    divisors = [
        (
            n_seq * seq - 1,
            f"n_seq * seq - 1 = {n_seq} × {seq} − 1: position 0 taken off once in all, not once per sequence (operator "
            "precedence? write n_seq * (seq - 1))",
        ),
        (
            n_seq * seq - n_batches,
            f"the sum over the {n_batches} batches of (sequences × seq − 1): position 0 taken off once per batch, not "
            "once per sequence (operator precedence? write b * (seq - 1))",
        ),
    ]
    out = [
        ("divisor", f"your values are the counts divided by {d}, {why}; {right}", counts / d)
        for d, why in divisors
        if d != n_tok
    ]
    batch_freqs = [fired[i : i + batch_size].mean((0, 1)) for i in range(0, n_seq, batch_size)]
    for start in (batch_freqs[0], torch.zeros_like(batch_freqs[0])):
        freq = start
        for bf in batch_freqs[1:] if start is batch_freqs[0] else batch_freqs:
            freq = (freq + bf) / 2
        out.append(
            (
                "halving_average",
                "that is a running average (freq + batch_freq) / 2 over the batches: it halves the weight of every "
                f"earlier batch (the last of the {n_batches} batches weighs 1/2); accumulate the counts and the number "
                "of tokens over the batches and divide once at the end",
                freq,
            )
        )
    return out


def recovered_formulas(c: float, s: float, z: float, known: list) -> list[tuple[str, str, Tensor]]:
    """Ratios of two terms, each a difference of two of the three losses or one loss alone (the denominator may also
    be a sum of two, a sign slip), and one minus them,
    that are neither the right value nor a mistake already in `known`: the formula that gives the learner's value
    is quoted (what it divides by what), and a loss alone where the right formula has a difference is named."""
    losses = {"clean": c, "spliced": s, "zero": z}
    right = (z - s) / (z - c)
    seen = [right, *(float(v) for _, _, v in known)]
    diffs = [(f"{a} - {b}", losses[a] - losses[b]) for a in losses for b in losses if a != b]
    diffs.sort(key=lambda item: item[1] < 0)  # positive differences first: (b - a) / (d - c) is quoted as written
    sums = [(f"{a} + {b}", losses[a] + losses[b]) for i, a in enumerate(losses) for b in list(losses)[i + 1 :]]
    terms = diffs + list(losses.items())
    out = []
    for (num, n), (den, d) in ((x, y) for x in terms for y in terms + sums):  # a sum as the denominator: a sign slip
        if abs(d) < 1e-9 or abs(abs(n) - abs(d)) < 1e-9:
            continue
        a, b = (f"({t})" if " - " in t or " + " in t else t for t in (num, den))
        for text, value in ((f"{a} / {b}", n / d), (f"1 - {a} / {b}", 1 - n / d)):
            if any(abs(value - v) <= 1e-4 * abs(v) + 1e-6 for v in seen):
                continue
            seen.append(value)
            out.append(
                (
                    "recovered_formula",
                    f"your recovered equals {text} on these losses{_alone(num, den)}; recovered = (zero - spliced) / "
                    "(zero - clean), the MLP's effect the SAE keeps over the MLP's whole effect",
                    torch.tensor(value, dtype=torch.float64),
                )
            )
    return out


def _alone(num: str, den: str) -> str:
    """A loss alone (or a sum) where recovered = 1 - (spliced - clean) / (zero - clean) has a difference, named."""
    if " + " in den:
        return f" (the denominator is a sum, {den}, where the formula has a difference: a sign slip)"
    said = []
    if " - " not in den:
        left = "- clean" if den == "zero" else "zero -" if den == "clean" else None
        said.append(f"the denominator is {den} alone" + (f", zero - clean without its {left}" if left else ""))
    if " - " not in num:
        said.append(f"the numerator is {num} alone, where the formula has a difference of two losses")
    return " (" + "; ".join(said) + ")" if said else ""


def hooks_reused(model: Any, sae: Any, tokens: Tensor) -> list[tuple[str, str, Tensor]]:
    """The spliced run made with the zero-ablation hook still in its list, before the splice (one list appended to)."""
    zero = lambda a, hook: torch.zeros_like(a)
    splice = lambda a, hook: sae.decode(sae.encode(a))
    loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, zero), (sae.hook_name, splice)])
    return [
        (
            "hooks_reused",
            "that is the loss with the zero-ablation hook AND the splice on (the splice then reconstructs zeros): one "
            "hook list reused and appended to between runs? give each run its own list",
            torch.tensor(float(loss), dtype=torch.float64),
        )
    ]


def fresh15_steer(model: Any, sae: Any, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]
    hook = lambda a, hook: a + coeff * sae.encode(a)[..., latent, None] * d
    return [
        (
            "scaled_by_f",
            "that adds coeff · f_latent(x) · W_dec[latent], scaled by the latent's own activation (nothing added where "
            "it does not fire): steering adds coeff · W_dec[latent] at every position, whatever f is",
            model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]),
        )
    ]


def fresh15_ablate(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """f_latent averaged over the positions before the term is removed: one value per sequence (the mean over every
    token is `mean_activation`, the mean over the batch `sequences_mixed`)."""
    d = sae.W_dec[latent]
    hook = lambda a, hook: a - sae.encode(a)[..., latent].mean(1, keepdim=True)[..., None] * d
    return [
        (
            "f_averaged",
            "your f_latent was averaged over the positions (one value per sequence) before removing f · "
            "W_dec[latent]: remove each position's own term, f_latent(x) at that position (shape [batch seq], no "
            "reduction)",
            model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]),
        )
    ]


def sorted_effect(out: Tensor, expected: Tensor, what: str) -> None:
    """The right values sorted (as part 6b's token views name it): the token order lost."""
    if out.shape != expected.shape or not out.is_floating_point():
        return
    a, e = out.detach().double().cpu(), expected.detach().double().cpu()
    for descending in (True, False):
        if torch.allclose(a, e.sort(descending=descending).values, rtol=1e-3, atol=1e-4):
            fail(
                f"{what} holds the right values, sorted ({'largest' if descending else 'smallest'} first)",
                "return them in token order (entry i is token i's value): sorting loses which token each belongs to; "
                "rank them afterwards (topk) when you need the top tokens",
                code="sorted",
            )


def same_entry_repeated(values: Tensor, seq_idx: Tensor, pos_idx: Tensor, k: int) -> None:
    """top_activations returning one entry k times: k rounds of argmax (or max) where the picked entry was never
    knocked out before the next round. The checker's acts have distinct values, so a right answer never repeats."""
    if k < 2 or not all(isinstance(t, Tensor) and t.shape == (k,) for t in (values, seq_idx, pos_idx)):
        return
    if all(bool((t == t[0]).all()) for t in (values, seq_idx, pos_idx)):
        fail(
            f"(values, seq_idx, pos_idx) hold the same entry k = {k} times: value {float(values[0]):.4g} at sequence "
            f"{int(seq_idx[0])}, position {int(pos_idx[0])}",
            "the picked entry wasn't removed before the next argmax: set it to -inf on the copy after each pick "
            "(masked[s, p] = -torch.inf), or take the k largest at once with topk(k) on the flattened copy",
            code="not_knocked_out",
        )


def same_for_every_latent(out: Tensor, expected: Tensor, what: str) -> None:
    """Every latent got one and the same frequency while the right ones differ: a count summed over every axis
    (`.sum()` without dims, the latent axis too) added to each latent, or a mean over the latent axis."""
    if out.ndim != 1 or out.numel() < 2 or not out.is_floating_point() or torch.allclose(expected, expected[:1]):
        return
    if torch.equal(out, out[:1].expand_as(out)) and float(out[0]) not in (0.0, 1.0):  # none / all fire: elsewhere
        fail(
            f"{what}: every latent got the same value {float(out[0]):.6g} (the right ones run from "
            f"{float(expected.min()):.4g} to {float(expected.max()):.4g})",
            "a count reduced over every axis, the latent axis too: `.sum()` with no dims gives one number for all "
            "latents; sum over the batch and position axes only, e.g. fired.sum((0, 1)), to keep one count per latent",
            code="latent_axis_reduced",
        )


def splice_slips(model: Any, sae: Any, tokens: Tensor) -> list[tuple[str, str, Tensor]]:
    """Spliced losses of reconstructions made another way: decoded with the encoder transposed (the tied-weights
    habit), or with a ReLU on the reconstruction (post-GELU activations assumed non-negative)."""
    splices = [
        (
            "tied_decode",
            "that is the loss with the latents decoded by the ENCODER transposed, f @ W_enc.T + b_dec: this SAE is "
            "untied, decode with its own decoder, sae.decode(f) = f @ W_dec + b_dec",
            lambda a, hook: sae.encode(a) @ sae.W_enc.T + sae.b_dec,
        ),
        (
            "relu_reconstruction",
            "that is the loss with a ReLU on the reconstruction: splice in sae.decode(sae.encode(act)) as it is (the "
            "MLP's GELU activations can be negative, and so can the reconstruction)",
            lambda a, hook: torch.relu(sae.decode(sae.encode(a))),
        ),
    ]
    out = []
    for code, hint, hook in splices:
        with torch.no_grad():
            loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, hook)])
        out.append((code, hint, torch.tensor(float(loss), dtype=torch.float64)))
    return out


def missing_matrix(err: Exception, model: Any) -> None:
    """A product where a d_mlp-long vector (a decoder row) meets a matrix whose first axis is d_model (W_U): the
    matrix between them, W_out (the MLP's output weights, [d_mlp d_model]), was left out."""
    sizes = [int(s) for s in re.findall(r"(\d+)x(\d+) and (\d+)x(\d+)", str(err))[:1] for s in s]
    d_mlp, d_model = model.cfg.d_mlp, model.cfg.d_model
    if isinstance(err, RuntimeError) and len(sizes) == 4 and sizes[1] == d_mlp and sizes[2] == d_model != d_mlp:
        fail(
            f"your code raised RuntimeError: {err}",
            f"a factor left out: the decoder row lives in the MLP's hidden space (d_mlp = {d_mlp}) and W_U reads the "
            f"residual stream (d_model = {d_model}): map it through the MLP's output weights first, "
            "W_dec[latent] @ W_out[0] @ W_U (W_out is [n_layers d_mlp d_model])",
            code="missing_W_out",
        )


def logit_call(impl: Callable, model: Any, sae: Any, latent: int) -> Any:
    try:
        return impl(model, sae, latent)
    except RuntimeError as err:
        missing_matrix(err, model)
        decoder_layout_error(err, sae)
        raise


def logit_run_slips(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The effect measured by running the model (steered minus clean logits) on a one-token input: the final
    LayerNorm (and the attention and the residual stream) stand between the decoder row and the logits."""
    d = sae.W_dec[latent]
    rows = []
    starts = {0}
    bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    if isinstance(bos, int) and 0 <= bos < model.cfg.d_vocab:
        starts.add(bos)
    for t in sorted(starts):
        toks = torch.tensor([[t]], device=d.device)
        clean = model(toks)[0, -1]
        steered = model.run_with_hooks(toks, fwd_hooks=[(sae.hook_name, lambda a, hook: a + d)])[0, -1]
        rows.append(
            (
                "ran_model",
                f"those are the logits of a one-token run (token {t}) steered by W_dec[latent] minus the clean ones: "
                "running the model passes the row through the final LayerNorm (a rescaling that depends on the "
                "input), so the change isn't the latent's direct effect; compute it in weight space, W_dec[latent] "
                "@ W_out[0] @ W_U",
                steered - clean,
            )
        )
    return rows


def summed_ablate(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """f_latent summed over the positions before the term is removed: one value per sequence."""
    d = sae.W_dec[latent]
    hook = lambda a, hook: a - sae.encode(a)[..., latent].sum(1, keepdim=True)[..., None] * d
    return [
        (
            "f_summed",
            "your f_latent was summed over the positions (one value per sequence) before removing f · W_dec[latent]: "
            "remove each position's own term, f_latent(x) at that position (shape [batch seq], no reduction)",
            model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]),
        )
    ]


def more_sequences_than_positions(run: Callable, right: Callable, tokens: Tensor) -> None:
    """A second call on 14 sequences of 6 positions, in batches of 3: more sequences than positions, so a batch loop
    bounded by the wrong axis of tokens (range(0, tokens.shape[1], batch_size)) covers only the first 6 sequences.
    The main call (10 sequences of 48 positions) hides it: there a loop over 48 covers all 10. `run(tokens,
    batch_size)` calls the learner's function, `right(tokens, batch_size)` the reference."""
    n_seq, seq_len, batch = 14, 6, 3
    small = tokens[:n_seq, :seq_len]
    out = run(small.clone(), batch)
    expected = right(small, batch)
    if not isinstance(out, Tensor) or out.shape != expected.shape:
        return
    out = out.detach().to(expected.device, torch.float64)
    if torch.allclose(out, expected.double(), atol=1e-6):
        return
    what = f"latent_frequencies on tokens of {n_seq} sequences × {seq_len} positions, batch_size={batch},"
    covered = -(-seq_len // batch) * batch  # range(0, seq_len, batch) starts seq_len/batch batches (rounded up)
    if torch.allclose(out, right(small[:covered], batch).double(), atol=1e-6):
        fail(
            f"{what} is the frequency over the first {covered} sequences only (right on the main call's 10 × 48)",
            "the batch loop runs over the positions axis: range(0, tokens.shape[1], batch_size) stops after "
            f"{covered} sequences when there are more sequences than positions; loop over tokens.shape[0] (the "
            "number of sequences)",
            code="loop_over_positions",
        )
    nz = expected != 0
    ratio = out[nz] / expected[nz].double()
    scaled = f": {float(ratio[0]):.4g} × the expected values" if bool(torch.allclose(ratio, ratio[0])) else ""
    fail(
        f"{what} differs from the expected values{scaled} (right on the main call's 10 sequences × 48 positions)",
        "your code is right for one shape of tokens only; possible causes: a size written as a number (47 positions "
        "after BOS, 10 sequences) instead of read off tokens, or a loop or count taken from tokens.shape[1] "
        "(positions) where tokens.shape[0] (sequences) belongs",
        code="small_tokens",
    )


def indices_reordered(s_idx: Tensor, p_idx: Tensor, exp_seq: Tensor, exp_pos: Tensor) -> None:
    """The values are right, and (seq_idx, pos_idx) name the right k entries, but in another order than the values:
    the indices came from another ranking than the values (an ascending argsort, a sort of the indices, a set)."""
    got = sorted(zip(s_idx.tolist(), p_idx.tolist(), strict=True))
    exp = list(zip(exp_seq.long().tolist(), exp_pos.long().tolist(), strict=True))
    if got != sorted(exp) or len(set(exp)) != len(exp):
        return
    order = (
        "in reverse (smallest first)"
        if list(zip(s_idx.tolist(), p_idx.tolist(), strict=True)) == exp[::-1]
        else ("in another order")
    )
    fail(
        f"(seq_idx, pos_idx) are the right k entries, but {order}: acts[seq_idx, pos_idx] does not give back the "
        "values in their order",
        "take the values and the flat indices from the same ranking (values, flat = x.flatten().topk(k)), largest "
        "first: indices from another one (an ascending argsort()[-k:], a sort of the indices) don't line up with the "
        "values",
        code="indices_order",
    )
