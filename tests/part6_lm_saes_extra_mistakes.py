"""More known mistakes for part 6's checkers (`tests.part6_lm_saes`), from the fresh held-out rounds: each a
(code, hint, value) triple computed on the checker's own inputs, like `tests.part6_lm_saes_mistakes`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from tests.checking import _describe_error as describe_error
from tests.checking import fail
from tests.part6_lm_saes_left_out import left_out_entries
from tests.part6_lm_saes_mistakes import run
from tests.part6_lm_saes_partial_axes import batch_axis_any
from tests.part6_lm_saes_readings import zero_elsewhere
from tests.part6_lm_saes_repeats import repeated_picks

NOT_A_LOSS = (
    "that is the mean of the logits, not a loss: the run returned logits (return_type defaults to 'logits'); "
    "pass return_type='loss' to get the mean cross-entropy"
)


def logits_means(model, sae, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """The mean of the logits of each run of reconstruction_losses: a run made without return_type='loss'."""
    as_t = lambda v: torch.tensor(float(v), dtype=torch.float64)
    runs = {
        "clean": model(tokens),
        "spliced": run(model, tokens, sae.hook_name, lambda a, hook: sae.decode(sae.encode(a))),
        "zero_ablated": run(model, tokens, sae.hook_name, lambda a, hook: torch.zeros_like(a)),
    }
    out = {k: [("logits_mean", NOT_A_LOSS, as_t(v.mean()))] for k, v in runs.items()}
    n_seq, seq = tokens.shape  # per-token losses (seq − 1 per sequence) summed and divided by every token
    for k, v in runs.items():
        loss = float(model.loss_fn(v, tokens)) if hasattr(model, "loss_fn") else None
        if loss is not None:
            out[k].append(
                (
                    "numel_denominator",
                    f"that is the loss × {seq - 1}/{seq}: the per-token losses summed and divided by tokens.numel() = "
                    f"{n_seq}·{seq}, but only {n_seq}·{seq - 1} positions are predicted (the last has no next token): "
                    "divide by the number of per-token losses (loss_per_token=True gives [batch, seq − 1]) or use "
                    "return_type='loss', their mean",
                    as_t(loss * (seq - 1) / seq),
                )
            )
    out["zero_ablated"] += zero_elsewhere(model, sae, tokens)  # the error kept, or zeros at another hook point
    return out


def recovered_extra(exp: dict[str, float]) -> list[tuple[str, str, Tensor]]:
    """recovered measured against the clean loss alone (1 - relative increase), without the zero-ablation baseline."""
    c, s = exp["clean"], exp[next(k for k in exp if k not in ("clean", "zero_ablated", "recovered"))]
    return [
        (
            "recovered_relative",
            "that is 1 - (spliced - clean) / clean, one minus the relative increase over the clean loss: recovered "
            "is on the zero-ablation scale, (zero - spliced) / (zero - clean)",
            torch.tensor(1 - (s - c) / c, dtype=torch.float64),
        )
    ]


def recovered_per_sequence(model: Any, sae: Any, tokens: Tensor) -> list[tuple[str, str, Tensor]]:
    """recovered computed for each sequence (from its own mean losses) and then averaged over the sequences: the
    mean of ratios, where recovered is the ratio of the mean losses."""
    hooks = {"clean": [], "spliced": [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))]}
    hooks["zero"] = [(sae.hook_name, lambda a, hook: torch.zeros_like(a))]
    per_seq = {
        k: model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=h).double().mean(-1)
        for k, h in hooks.items()
    }
    c, s, z = per_seq["clean"], per_seq["spliced"], per_seq["zero"]
    return [
        (
            "recovered_per_sequence",
            "that is the mean over sequences of each sequence's own (zero - spliced) / (zero - clean): the mean of "
            "the ratios; recovered is the ratio of the mean losses, (zero - spliced) / (zero - clean) with each loss "
            "the mean over all sequences and positions",
            ((z - s) / (z - c)).mean(),
        )
    ]


@contextlib.contextmanager
def watching_hooks(model: Any, record: Callable[[Any, Tensor, Tensor, Any], None]) -> Iterator[None]:
    """Within the block, every forward hook the learner adds to one of `model`'s hook points (run_with_hooks, the
    model.hooks context, add_hook, a name filter: all end in the point's HookPoint.add_hook) calls `record(point's
    name, activation before, activation after, what the hook returned)` after it runs (the activation before is a
    copy, so an in-place edit shows). TransformerLens's own hooks (run_with_cache's caching hooks) are not watched."""

    def watched(name: Any, fn: Callable) -> Callable:
        def hook(act: Tensor, *args: Any, **kwargs: Any) -> Any:
            before = act.detach().clone()
            out = fn(act, *args, **kwargs)
            record(name, before, act, out)
            return out

        return hook

    def spy(point: Any, name: str) -> Callable:
        original = point.add_hook

        def add_hook(fn: Callable, *args: Any, **kwargs: Any) -> Any:
            ours = str(getattr(fn, "__module__", None) or "").startswith("transformer_lens")
            if kwargs.get("dir", args[0] if args else "fwd") == "fwd" and callable(fn) and not ours:
                fn = watched(name, fn)
            return original(fn, *args, **kwargs)

        return add_hook

    points = list(model.hook_dict.items())
    for name, point in points:
        point.add_hook = spy(point, name)
    try:
        yield
    finally:
        for _, point in points:
            del point.add_hook


@contextlib.contextmanager
def noop_hooks(model: Any) -> Iterator[list[str]]:
    """Within the block, model.run_with_hooks records (by hook name) each hook that returned None and left its
    activation unchanged in place: a run with it is a run without it (e.g. `act = torch.zeros_like(act)` in the
    hook, which rebinds the local name, and no return)."""
    found: list[str] = []

    def record(name: Any, before: Tensor, act: Tensor, out: Any) -> None:
        if out is None and act.shape == before.shape and torch.equal(act.detach(), before):
            found.append(name if isinstance(name, str) else "a hook filtered by a function")

    with watching_hooks(model, record):
        yield found


NOOP_HOOK = (
    "a hook must *return* the new activation: rebinding the name inside it (`act = torch.zeros_like(act)`) changes "
    "only the local variable, and a hook that returns None leaves the activation as it was; `return` the new "
    "tensor (e.g. `return torch.zeros_like(act)`)"
)


def reconstruction_call_failure(found: list[str], err: Exception) -> None:
    """reconstruction_losses raised: a hook that changed nothing, else a ZeroDivisionError said as observed."""
    noop_hook_failure(found, err)
    if isinstance(err, ZeroDivisionError):
        fail(
            f"{describe_error(err).message}\n(a difference of two of your losses is 0: e.g. the zero-ablated run gave "
            "the clean loss, so that run ablated nothing)",
            "zero-ablate in a hook at sae.hook_name (return torch.zeros_like(act)); possible causes of an unchanged "
            "run, e.g. no hook passed to that run, or a weight zeroed on a copy (in TransformerLens model.W_out, "
            "model.W_in, ... are stacked copies: editing them changes nothing) rather than in a hook",
            code="zero_difference",
        )


def noop_hook_failure(found: list[str], err: Exception) -> None:
    """After the learner's code raised: name a hook that changed nothing (recorded by `noop_hooks`), if any."""
    if not found:
        return
    seen = (
        f"a hook you added at {found[0]} returned None and left the activation unchanged, so that "
        "run is the same as a run without the hook"
    )
    if isinstance(err, ZeroDivisionError):
        seen += ": its loss equals the clean loss, and a difference of the two (zero - clean) is 0"
    fail(f"{describe_error(err).message}\n({seen})", NOOP_HOOK, code="noop_hook")


def frequency_extra(fired: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """fired [n_seq seq-1 d_sae] (float): the positions of each batch counted as its tokens."""
    n_batches = -(-fired.shape[0] // batch_size)
    return [
        (
            "positions_only",
            f"that is the count divided by {n_batches} batches × {fired.shape[1]} positions: the number of tokens of "
            "a batch is sequences × positions (acts.shape[0] * acts.shape[1]), not its positions alone",
            fired.sum((0, 1)) / (n_batches * fired.shape[1]),
        ),
        *batch_axis_any(fired, batch_size),
        *_other_aggregates(fired, batch_size),
    ]


def _other_aggregates(fired: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """The per-sequence or per-batch frequencies combined by a max, a min or a median instead of a token count."""
    per_seq = fired.mean(1)
    per_batch = torch.stack([b.mean((0, 1)) for b in fired.split(batch_size)])
    fix = "add up the firing counts and the numbers of tokens over every batch and divide once at the end"
    out = []
    for unit, per in (("sequence", per_seq), (f"batch (of {batch_size} sequences)", per_batch)):
        for what, value in (
            ("the maximum", per.max(0).values),
            ("the minimum", per.min(0).values),
            ("the median (torch.median, the lower middle value)", per.median(0).values),
            ("the median (the mean of the two middle values)", per.quantile(0.5, dim=0)),
        ):
            if any(torch.allclose(value, v, atol=1e-6) for _, _, v in out):
                continue  # an odd count: both medians are the middle value
            out.append(
                (
                    "aggregate",
                    f"that is {what} of the {per.shape[0]} per-{unit.split(' ')[0]} frequencies (one per {unit}), "
                    f"not the fraction of all tokens: {fix}",
                    value,
                )
            )
    return out


def per_token_frequencies(out: Any, n_seq: int, seq: int, d_sae: int) -> None:
    """A result with one entry per token counted (n_seq × (seq - 1), or n_seq × seq with BOS), not per latent: the
    mean (or sum) was taken over the latent axis, giving each token's fraction of latents that fire."""
    if not isinstance(out, Tensor) or out.device.type == "meta" or tuple(out.shape) == (d_sae,):
        return
    for n_pos, note in ((seq - 1, "positions >= 1"), (seq, "every position, BOS included")):
        if out.numel() == n_seq * n_pos and n_seq * n_pos != d_sae:
            fail(
                f"latent_frequencies(...) has shape {tuple(out.shape)}: {out.numel()} = {n_seq} sequences × {n_pos} "
                f"positions ({note}), the number of tokens counted, expected one value per latent (d_sae = {d_sae})",
                "one value per token means the reduction ran over the latent axis (a mean over the last axis, "
                "dim=-1: each token's fraction of latents firing): reduce over the tokens instead (the batch and "
                "position axes, e.g. (acts > 0).float().sum((0, 1))), keeping the d_sae axis",
                code="per_token",
            )


def steer_extra(model, sae, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]

    def clamp(a: Tensor, hook: Any) -> Tensor:
        return a + (coeff - sae.encode(a)[..., latent])[..., None] * d

    return [
        (
            "clamped",
            "that sets the latent TO coeff (x + (coeff - f) · W_dec[latent], a clamp): steering adds coeff · "
            "W_dec[latent] whatever the latent's own activation",
            run(model, tokens, sae.hook_name, clamp),
        ),
        (
            "norm_scaled",
            "the vector was scaled by each position's activation norm: add coeff · W_dec[latent] itself, the same "
            "vector at every position",
            run(model, tokens, sae.hook_name, lambda a, hook: a + coeff * a.norm(dim=-1, keepdim=True) * d),
        ),
    ]


def ablate_extra(model, sae, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]

    def mean_ablated(a: Tensor, hook: Any) -> Tensor:
        f = sae.encode(a)[..., latent]
        return a - (f - f.mean())[..., None] * d

    def error_subtracted(a: Tensor, hook: Any) -> Tensor:
        f = sae.encode(a)
        f0 = f.clone()
        f0[..., latent] = 0
        return sae.decode(f0) - (a - sae.decode(f))

    return [
        (
            "error_sign",
            "the SAE's error term was subtracted: decode(f0) - error, with error = act - decode(f) and f0 = f with "
            "the latent zeroed; add it back, decode(f0) + (act - decode(f)), which equals act - f · W_dec[latent]",
            run(model, tokens, sae.hook_name, error_subtracted),
        ),
        (
            "b_dec_twice",
            "sae.encode already subtracts b_dec: f = sae.encode(act)[..., latent], not sae.encode(act - b_dec) "
            "(b_dec subtracted twice)",
            run(model, tokens, sae.hook_name, lambda a, hook: a - sae.encode(a - sae.b_dec)[..., latent, None] * d),
        ),
        (
            "mean_ablated",
            "that removes (f - f.mean()) · W_dec[latent], a mean-ablation: remove the latent's whole term "
            "f · W_dec[latent] (f itself)",
            run(model, tokens, sae.hook_name, mean_ablated),
        ),
    ]


def per_sequence_topk(values: Any, n_seq: int, k: int) -> None:
    """values of shape [n_seq, k]: the top k of each sequence."""
    if isinstance(values, Tensor) and tuple(values.shape) == (n_seq, k):
        fail(
            f"values has shape {tuple(values.shape)} = (n_seq={n_seq}, k={k}), expected (k={k})",
            "that is a top k within each sequence (topk over the last axis): take the top k over all sequences and "
            "positions together, acts.flatten().topk(k), then turn each flat index into (sequence, position)",
            code="per_sequence",
        )


def integer_effect(out: Any, d_vocab: int) -> None:
    """An integer vector shorter than d_vocab: token ids (topk's indices) instead of the effect itself."""
    if isinstance(out, Tensor) and out.dim() == 1 and not out.is_floating_point() and out.shape[0] < d_vocab:
        fail(
            f"the result is {out.shape[0]} integers (token ids?), expected {d_vocab} floats, one per token",
            "return the whole vector of logit effects, W_dec[latent] @ W_out[0] @ W_U (shape [d_vocab]), not the ids "
            "of its top tokens (topk(...).indices): ranking them comes after",
            code="token_ids",
        )


def masked_bos(acts: Tensor) -> Tensor:
    """A copy of acts [n_seq seq] with position 0 set to -inf."""
    out = acts.clone()
    out[:, 0] = -torch.inf
    return out


def top_extra(acts: Tensor, k: int) -> list[tuple[str, str, Tensor]]:
    """(code, hint, [3 k] stack) of top_activations with positions 0 AND 1 left out (the inputs have a large
    activation at position 1, so the mistake shows), the last sequence left out, and more."""
    seq = acts.shape[1]
    masked = acts.clone()
    masked[:, :2] = -torch.inf
    values, flat = masked.flatten().topk(k)
    ends = acts.clone()
    ends[:, [0, -1]] = -torch.inf
    v_end, f_end = ends.flatten().topk(k)
    last_too = torch.stack([v_end.double(), (f_end // seq).double(), (f_end % seq).double()])
    best, best_seq = acts[:, 1:].max(0)  # the best sequence at each position, then the top positions
    pos_values, pos = best.topk(min(k, seq - 1))
    per_position = torch.stack([pos_values.double(), best_seq[pos].double(), (pos + 1).double()])
    first_only, first_flat = acts.flatten()[1:].topk(k)  # only sequence 0's position 0 left out
    v_last, f_last = masked_bos(acts[:-1]).flatten().topk(k)  # the last sequence left out (acts[:-1])
    last_seq = torch.stack([v_last.double(), (f_last // seq).double(), (f_last % seq).double()])
    first = lambda shift: torch.stack(
        [first_only.double(), ((first_flat + shift) // seq).double(), (first_flat + shift) % seq]
    )
    return [
        *[
            (
                "first_bos_only",
                "your top k leaves out position 0 of sequence 0 only: the other sequences' position 0 (BOS) values "
                "are in it"
                + (", and your indices are one less than the positions of the values" if shift == 0 else "")
                + ". Possible causes: `acts.flatten()[1:]` (that skips the first element of the flattened tensor, "
                "sequence 0's BOS alone"
                + ("; its indices also count from 1, so + 1 would be needed" if shift == 0 else "")
                + "), or a mask on acts[0, 0] only: exclude position 0 of every sequence (acts[:, 0] = -inf on a copy) "
                "before flattening",
                first(shift),
            )
            for shift in (1, 0)
        ],
        (
            "last_sequence_dropped",
            f"your top k leaves out the last sequence (row {acts.shape[0] - 1}): acts[:-1] or a loop/range that stops "
            "one row early (range(n_seq - 1))? rank every sequence: all rows of acts, position 0 excluded",
            last_seq,
        ),
        (
            "per_position",
            "only the best sequence at each position competes (a max over the sequences first, then topk over the "
            "positions): two of the k largest can share a position; take topk over all (sequence, position) pairs "
            "together, acts.flatten().topk(k)",
            per_position if pos_values.shape[0] == k else None,
        ),
        (
            "first_last_masked",
            "the last position was left out as well as position 0: only position 0 (BOS) is excluded (mask [:, 0] "
            "alone; every later position, the last included, competes)",
            last_too,
        ),
        (
            "positions_0_1",
            "positions 0 AND 1 were left out: only position 0 (BOS) is excluded (mask [:, 0], or keep positions "
            "`>= 1`; `> 1` or [:, :2] drops position 1, a real token, too)",
            torch.stack([values.double(), (flat // seq).double(), (flat % seq).double()]),
        ),
    ]


def logit_extra(model, sae, latent: int) -> list[tuple[str, str, Tensor]]:
    """The MLP neuron numbered `latent` instead of the latent's decoder row, and a per-token normalisation."""
    right = sae.W_dec[latent] @ model.W_out[0] @ model.W_U
    rows = [
        (
            "unembed_normalised",
            "each token's entry was divided by the norm of its unembedding column (W_U.norm(dim=0)): return the raw "
            "change of the logits, W_dec[latent] @ W_out[0] @ W_U, without normalising",
            right / model.W_U.norm(dim=0),
        )
    ]
    if latent < model.cfg.d_mlp:
        rows.append(
            (
                "mlp_neuron",
                f"that is MLP neuron {latent}'s effect (row {latent} of W_out[0]): the SAE latent writes the "
                "direction sae.W_dec[latent] into the MLP's activations, so its effect is W_dec[latent] @ W_out[0] "
                "@ W_U (the decoder row first)",
                model.W_out[0][latent] @ model.W_U,
            )
        )
    return rows


def first_sequence_f(model, sae, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """The latent's activations of the first sequence used for every sequence (encode(act)[0] broadcast)."""
    d = sae.W_dec[latent]

    def hook(a: Tensor, hook: Any) -> Tensor:
        return a - sae.encode(a)[:1, :, latent, None] * d

    return [
        (
            "first_sequence",
            "every sequence used the first sequence's activations f (encode(act)[0], written for a batch of one): "
            "take each position's own f = sae.encode(act)[..., latent], shape [batch seq]",
            run(model, tokens, sae.hook_name, hook),
        )
    ]


def sequences_mixed(
    on_tokens: Callable[[Tensor], Any],
    tokens: Tensor,
    out: Tensor,
    what: str,
    fix: str = "compute the edit from each position's own activation",
) -> None:
    """Each sequence's logits depend on that sequence alone: the same call on the batch without its first sequence,
    in reverse order, must give the matching rows of `out`. When it doesn't, something is taken from one sequence or
    reduced over the batch (a subset changes a mean, the reversal changes which sequence is first or last)."""
    if tokens.shape[0] < 3:
        return
    try:
        again = on_tokens(tokens[1:].flip(0).clone())
    except Exception:
        return
    if not isinstance(again, Tensor) or again.shape != (tokens.shape[0] - 1, *out.shape[1:]):
        return
    if not torch.allclose(again.detach().flip(0), out.detach()[1:], rtol=1e-4, atol=1e-4):
        fail(
            f"{what} for a sequence change when the rest of the batch changes (the batch without its first sequence, "
            "reversed, gives other logits for the same sequences)",
            "the sequences affect each other: a value taken from one sequence (an index [0] where [..., latent] or "
            "a batch axis belongs) or reduced over the batch (a max, mean or sum over axis 0) is used for all; " + fix,
            code="sequences_mixed",
        )


def _top_run(impl: Callable, reference: Callable, acts: Tensor, k: int) -> tuple[Any, tuple, Tensor, bool]:
    """The learner's top_activations(acts, k): (what it returned, its three outputs as CPU tensors or Nones, the
    expected values, whether all three equal the reference's)."""
    result = impl(acts.clone(), k)
    exp_values, exp_seq, exp_pos = reference(acts, k)
    try:
        values, seq_idx, pos_idx = (torch.as_tensor(r).detach().cpu() for r in result)
        same = torch.equal(values.double(), exp_values.double().cpu()) and torch.equal(seq_idx.long(), exp_seq.cpu())
        same = same and torch.equal(pos_idx.long(), exp_pos.cpu())
    except (TypeError, ValueError, RuntimeError):
        return result, (None, None, None), exp_values, False
    return result, (values, seq_idx, pos_idx), exp_values, same


def signed_top_probe(impl: Callable, reference: Callable, device: Any) -> None:
    """top_activations on activations with negative values (the contract doesn't promise acts >= 0): position 0
    set to 0 instead of -inf then outranks every negative entry, which non-negative activations never show."""
    gen = torch.Generator().manual_seed(1)
    acts = -0.1 - torch.rand(5, 9, generator=gen, dtype=torch.float64)
    acts[:, 0] = 3.0 + torch.rand(5, generator=gen, dtype=torch.float64)  # BOS, to be ignored
    acts[1, 4], acts[3, 2], acts[0, 7] = 1.0, 0.5, 0.7  # only three positive entries at positions >= 1
    k = 6
    result, (values, seq_idx, pos_idx), exp_values, same = _top_run(impl, reference, acts.float().to(device), k)
    if same:
        return
    zero_at_bos = values is not None and values.shape == pos_idx.shape and bool(((pos_idx == 0) & (values == 0)).any())
    by_abs = acts.abs()
    by_abs[:, 0] = -torch.inf
    abs_top = acts.flatten()[by_abs.flatten().topk(k).indices].double().cpu()
    if values is not None and not zero_at_bos and values.shape == (k,) and torch.allclose(values.double(), abs_top):
        fail(
            f"on activations with negative entries (three positive ones after position 0, k = {k}), the result "
            f"is {[round(float(v), 3) for v in values]}: the k entries of largest magnitude |acts|, expected "
            f"{[round(float(v), 3) for v in exp_values]}",
            "that ranks by absolute value (topk of acts.abs()), so large negative entries outrank small positive "
            "ones: rank by the signed activations themselves (topk of the masked acts), largest first",
            code="abs_ranked",
        )
    shown = [round(float(v), 3) for v in values.flatten()[:8]] if values is not None else result
    if not zero_at_bos:
        repeated_picks(seq_idx, pos_idx, k, shown)
    fail(
        "on activations with negative entries (three positive ones after position 0, k = 6), the result is "
        f"{shown}, expected {[round(float(v), 3) for v in exp_values]}"
        + (": position 0 came back with the value 0" if zero_at_bos else ""),
        "position 0 must lose to every real entry, negative ones too: set it to -inf (acts[:, 0] = -torch.inf on a "
        "copy), not to 0 and not by multiplying with a 0/1 mask"
        if zero_at_bos
        else "the k largest entries at positions >= 1 even when some are negative (exclude position 0 with -inf, "
        "not 0; no clamp or ReLU)",
        code="bos_masked_zero" if zero_at_bos else "signed_acts",
    )


def steer_slips(model, sae, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    """The vector written into the residual stream before the MLP (its image coeff · W_dec[latent] @ W_out, added at
    resid_pre or resid_mid, goes through the MLP too), and coeff · decode(one-hot): b_dec scaled along."""
    vec = coeff * (sae.W_dec[latent] @ model.W_out[0])
    one = torch.zeros(sae.d_sae, device=sae.W_dec.device, dtype=sae.W_dec.dtype)
    one[latent] = 1
    scaled = coeff * sae.decode(one)
    rows = [
        (
            "resid_before_mlp",
            f"the vector went into the residual stream at blocks.0.hook_{where}, before the MLP, so "
            f"{'attention and the MLP read' if where == 'resid_pre' else 'the MLP reads'} it too: add coeff · "
            "W_dec[latent] where the SAE reads, at sae.hook_name (the MLP's activations)",
            run(model, tokens, f"blocks.0.hook_{where}", lambda a, hook: a + vec),
        )
        for where in ("resid_pre", "resid_mid")
    ]
    rows.append(
        (
            "decode_times_coeff",
            "that adds coeff · decode(one-hot) = coeff · (W_dec[latent] + b_dec): decode adds b_dec, which coeff "
            "then scales too; the steering vector is coeff · W_dec[latent] alone (sae.W_dec[latent], no decode)",
            run(model, tokens, sae.hook_name, lambda a, hook: a + scaled),
        )
    )
    return rows


def ablate_slips(model, sae, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """Every MLP activation zeroed where the latent fires; the last position's f used at all."""
    d = sae.W_dec[latent]

    def zeroed(a: Tensor, hook: Any) -> Tensor:
        return a * (sae.encode(a)[..., latent, None] <= 0).to(a.dtype)

    def one_position(p: slice) -> Callable:
        def hook(a: Tensor, hook: Any) -> Tensor:
            return a - sae.encode(a)[:, p, latent, None] * d

        return hook

    rows = [
        (
            "zeroed_where_fires",
            "that zeroes the whole activation vector at each position where the latent fires (act · [f == 0]): "
            "remove only the latent's own term, act - f[..., None] · W_dec[latent]",
            run(model, tokens, sae.hook_name, zeroed),
        )
    ]
    for p, name in ((slice(-1, None), "last"),):  # (the first, BOS, is off for the checker's latent: a no-op)
        rows.append(
            (
                "one_position_f",
                f"every position used the {name} position's f (f[:, {p.start}], broadcast over the sequence): take "
                "each position's own f = sae.encode(act)[..., latent], shape [batch seq], and subtract f[..., None] · "
                "W_dec[latent]",
                run(model, tokens, sae.hook_name, one_position(p)),
            )
        )
    return rows


def log_frequencies(out: Tensor, expected: Tensor) -> None:
    """Frequencies returned on a log scale (the histogram's): log10 (or ln) of the right ones where they are > 0."""
    on = expected > 0
    if not bool(on.any()) or out.shape != expected.shape:
        return
    for name, log in (("log10", torch.log10), ("the natural log", torch.log)):
        want = log(expected[on].double())
        if torch.allclose(out[on].double(), want, rtol=1e-4, atol=1e-5):
            fail(
                f"the frequencies are {name} of the expected ones (wherever those are > 0; e.g. {float(out[on][0]):.4g}"
                f" = {name}({float(expected[on][0]):.4g}))",
                "return the fractions themselves, in [0, 1]: the log scale is for the histogram, which takes the "
                "log when it plots",
                code="log_scale",
            )


def abs_ranked(values: Any, acts: Tensor, k: int) -> None:
    """values ordered by |value| (non-increasing magnitudes), holding a negative entry although a larger real entry
    (position >= 1) was left out: a ranking by absolute value."""
    if not (isinstance(values, Tensor) and values.dim() == 1 and values.shape[0] == k and values.is_floating_point()):
        return
    v = values.detach().double().cpu()
    mags = v.abs()
    if not bool((mags[:-1] >= mags[1:]).all()) or not bool((v < 0).any()):
        return
    real = acts[:, 1:].detach().double().cpu().flatten()
    left_out = real[real > float(v[v < 0].max())]
    if int(left_out.numel()) > int((v > float(v[v < 0].max())).sum()):
        fail(
            f"values {[round(x, 3) for x in v.tolist()]} are ordered by magnitude |value| and hold a negative "
            "entry, while larger real activations were left out",
            "that ranks by absolute value (topk of acts.abs()): rank by the activations themselves, largest first "
            "(topk of the masked acts), and return the signed values",
            code="abs_ranked",
        )


def all_negative_probe(impl: Callable, reference: Callable, device: Any) -> None:
    """top_activations when every entry is negative (BOS included): position 0 masked with a value that is only low
    for positive activations (0, -acts.max(), -1) then outranks every real entry."""
    gen = torch.Generator().manual_seed(3)
    acts = -1.3 - 2.4 * torch.rand(4, 8, generator=gen, dtype=torch.float64)  # below -1 too (down to -3.7)
    acts[:, 0] = -0.1 - 0.05 * torch.rand(4, generator=gen, dtype=torch.float64)  # BOS: the largest, to be ignored
    acts = acts.float().to(device)
    _, (values, seq_idx, pos_idx), exp_values, same = _top_run(impl, reference, acts, 5)
    if same or values is None:
        return
    shaped = values.shape == pos_idx.shape == seq_idx.shape
    at_bos = values[pos_idx.long() == 0].double() if shaped else values[:0].double()
    a = acts.detach().double().cpu()
    named = _bos_fill(a, at_bos, seq_idx[pos_idx.long() == 0].long() if shaped else seq_idx[:0].long())
    if named is None and shaped and not at_bos.numel():
        left_out_entries(reference, acts, 5, values, seq_idx, pos_idx)
    fills = {"-acts.max()": -float(a.max()), "0": 0.0, "-1": -1.0}
    named = named or next(
        (f"{n} = {f:.4g}" for n, f in fills.items() if bool(torch.isclose(at_bos, torch.tensor(f).double()).any())),
        None,
    )
    fail(
        "on activations that are all negative (BOS included), the result is "
        f"{[round(float(v), 3) for v in values.flatten()[:8]]}, expected {[round(float(v), 3) for v in exp_values]}"
        + (f": position 0 came back with the value {named}" if named else ""),
        (
            f"position 0 was masked with {named.split(' = ')[0].split(' (position')[0]}, which is above every entry "
            "when all are negative"
            if named
            else "position 0 must lose to every real entry, however negative"
        )
        + ": mask it with -inf (acts[:, 0] = -torch.inf on a copy), or a value below acts.min()",
        code="bos_mask_not_lowest",
    )


def _bos_fill(acts: Tensor, at_bos: Tensor, seqs: Tensor) -> str | None:
    """The position-0 values that came back, read as a function of each one's own sequence's BOS activation
    (negated, or its absolute value): only said when every returned position-0 value follows it and, when one came
    back, it is not also the one value -acts.max() (then both are listed)."""
    if not at_bos.numel() or seqs.shape != at_bos.shape or bool((seqs < 0).any() | (seqs >= acts.shape[0]).any()):
        return None
    own = -acts[seqs, 0]
    if not bool(torch.isclose(at_bos, own).all()):
        return None
    if at_bos.numel() == 1 and bool(torch.isclose(at_bos, torch.tensor(-float(acts.max())).double()).all()):
        return f"-acts[:, 0] or -acts.max() (position 0 negated, or its max negated: both {float(at_bos[0]):.4g} here)"
    return (
        "-acts[:, 0] (position 0 negated, its own sequence's -BOS each: "
        + ", ".join(f"{float(v):.4g}" for v in at_bos[:4])
        + ")"
    )
