"""Checkers for part 6b (circuits in the shipped model: transcoder, attribution graphs, dashboards).

Every exercise is deterministic. Each checker runs the learner's function on the shipped model and
transcoder (or on small synthetic inputs built so that every term matters) and compares with the
reference, or, for the attribution graph, with a direct computation that uses no gradients at all. When
the output is wrong, the checker evaluates the catalogue of mutants of the reference in
`tests/part6b_circuits_mistakes.py` (the common mistakes) on the same inputs and names the one that matches
(`tests.checking.expect_matches`). Every checker takes well under 2 s on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part6b_circuits as ref
from tests import part6b_circuits_band_count as band_count
from tests import part6b_circuits_band_probes as band_probes
from tests import part6b_circuits_extra_mistakes as extra
from tests import part6b_circuits_failure_readings as failed
from tests import part6b_circuits_gated_output as gated
from tests import part6b_circuits_generic_transcoders as generic
from tests import part6b_circuits_grad_readings as grads
from tests import part6b_circuits_hints as hints
from tests import part6b_circuits_influence_cases as cases
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_named_slips as slips
from tests import part6b_circuits_optional_args as optional
from tests import part6b_circuits_permuted_readings as views
from tests import part6b_circuits_placement_slips as placement
from tests import part6b_circuits_probes as probes
from tests import part6b_circuits_sensitivity as sens
from tests import part6b_circuits_slip_readings as reads
from tests import part6b_circuits_splice_readings as splice
from tests import part6b_circuits_ties as ties
from tests import part6b_circuits_value_readings as value_readings
from tests.checking import (
    CheckOutcome,
    checker,
    expect_dict,
    expect_matches,
    expect_tensor,
    fail,
    generic_diagnosis,
    returned,
)
from tests.mutants import call
from tests.part6_lm_saes import guard_shared_modules, without_grad
from tests.part6_lm_saes_extra_mistakes import noop_hook_failure, noop_hooks
from tests.part6_lm_saes_mistakes import clipped_mutants
from tests.part6b_circuits_index_readings import flat_index_reading
from tests.part6b_circuits_probes import influence_nan, keys_swapped
from tests.part6b_circuits_small_edges import pruned_catalogue, pruned_edges
from utils import lm
from utils import part6b_circuits as circuits
from utils.transcoder import Transcoder, load_transcoder

PROMPT = "    def get(self, key):\n        return self."


# --------------------------------------------------------------------------------------------
# Shared inputs
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _setup(device_str: str) -> tuple[Any, Transcoder, Tensor]:
    device = torch.device(device_str)
    return lm.load_model(device=device), load_transcoder(device=device), lm.load_eval_tokens(device, n_seq=8)


def _inputs(device: torch.device) -> tuple[Any, Transcoder, Tensor]:
    """The shipped model, transcoder and 8 held-out sequences on `device` (loaded once per device)."""
    return _setup(str(device))


@functools.lru_cache(maxsize=2)
def _frozen_setup(device_str: str) -> tuple[circuits.FrozenRun, circuits.AttributionGraph]:
    """A frozen run of PROMPT and a graph holding every latent at the last position and two per other position.

    Latents elsewhere cannot reach the last position's logits in a one-layer model, so the subset keeps
    every edge into the logits complete while keeping the checker fast.
    """
    model, tc, _ = _setup(device_str)
    frozen = circuits.freeze(model, tc, model.to_tokens(PROMPT)[0])
    graph = circuits.graph_nodes(frozen, model.tokenizer, n_logits=4)
    last = graph.latent_pos == graph.n_pos - 1
    first_two = torch.zeros_like(last)
    for p in range(1, graph.n_pos - 1):
        first_two[(graph.latent_pos == p).nonzero().flatten()[:2]] = True
    chosen = last | first_two
    graph.latent_pos, graph.latent_idx = graph.latent_pos[chosen], graph.latent_idx[chosen]
    return frozen, graph


def _fresh(device: torch.device) -> tuple[circuits.FrozenRun, circuits.AttributionGraph]:
    """Copies of the frozen run and graph, so a learner's in-place change cannot leak into the next check."""
    frozen, graph = _frozen_setup(str(device))
    frozen = dataclasses.replace(
        frozen, **{f.name: getattr(frozen, f.name).clone() for f in dataclasses.fields(frozen)}
    )
    graph = dataclasses.replace(graph, latent_pos=graph.latent_pos.clone(), latent_idx=graph.latent_idx.clone())
    return frozen, graph


def _separable(expected: Tensor, mistakes: list, rtol: float, atol: float) -> list:
    """The mutants that differ here from the reference and from every mutant before them (the first names a tie)."""
    kept, m = [], _matches_any  # a tie: with centred reading weights, an uncentred LN2 input to the encoder alone
    for c, h, v in mistakes:  # gives every LN uncentred's pre. A sample of entries first (cheap): most differ there
        same = lambda w, v=v: m(v.ravel()[::97], [w.ravel()[::97]], rtol, atol) and m(v, [w], rtol, atol)
        kept += [] if v is None or any(same(w) for w in (expected, *(k[2] for k in kept))) else [(c, h, v)]
    return kept


def _matches_any(actual: Tensor, values: list, rtol: float, atol: float) -> bool:
    """Whether `actual` equals one of the catalogue's values (then no mistake inferred from it is added)."""
    return any(
        v is not None and v.shape == actual.shape and torch.allclose(actual, v, rtol=rtol, atol=atol) for v in values
    )


def _float(value: Any, what: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            fail(
                f"{what} should be one number, got a tensor of shape {tuple(value.shape)}", "use .item()", "not_scalar"
            )
        fail(
            f"{what} is a 0-d tensor ({value.item():.5g}), the docstring asks for Python floats",
            "return Python floats (`.item()` or float(...)), not tensors",
            code="not_float",
        )
    if not isinstance(value, int | float) or isinstance(value, bool):
        fail(f"{what} should be a float, got {type(value).__name__}", "return Python floats", code="not_float")
    if not math.isfinite(value):
        fail(f"{what} is {value}", "a loss is finite: check the hooks", code="not_finite")
    return float(value)


# --------------------------------------------------------------------------------------------
# Exercise 1: transcoder_forward
# --------------------------------------------------------------------------------------------


def _check_forward(impl: Callable, tc: Transcoder, x: Tensor, what: str) -> None:
    try:
        result = slips.forward_call(impl, tc, x)
    except RuntimeError as e:
        probes.bool_index_error(e)
        raise
    except (AttributeError, TypeError) as e:
        if tc.W_skip is None and "NoneType" in str(e):
            fail(
                f"{what} raised {type(e).__name__}: {e}",
                "this transcoder has no skip connection (tc.W_skip is None): add x @ W_skip.T only when "
                "tc.W_skip is not None",
                code="skip_none",
            )
        raise
    result = returned(result, what)
    if not isinstance(result, tuple | list) or len(result) != 2:
        fail(f"{what} should return a tuple (acts, out), got {type(result).__name__}", "return acts, out", "not_tuple")
    acts, out = result
    lead = tuple(x.shape[:-1])
    want_acts, want_out = ref.transcoder_forward(tc, x)
    pairs = ((acts, want_out), (out, want_acts))
    if all(isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.float(), b, atol=1e-4) for a, b in pairs):
        fail("acts and out are swapped", "return (acts, out): the latents first, then the output", code="swapped")
    acts = expect_tensor(acts, "acts", shape=(*lead, tc.d_sae), dtype=x.dtype, device=x.device)
    extra.out_number(out, tc, what)
    out = expect_tensor(out, "out", shape=(*lead, tc.d_out), dtype=x.dtype, device=x.device)
    mistakes = known.forward_mistakes(tc, x) + extra.forward_extra(tc, x) + sens.forward_normalised(tc, x)
    mistakes += ties.gate_non_strict(tc, x) + slips.forward_slips(tc, x) + generic.gate_readings(tc, x)
    if not _matches_any(acts, [a for _, _, a, _ in mistakes], 1e-4, 1e-4):
        mistakes += known.scalar_gate(tc, x, acts) + hints.kept_value_offset(tc, x, acts) + hints.soft_gate(tc, x, acts)
        mistakes += probes.gate_quantities(tc, x, acts) + slips.forward_tail(tc, x, acts)
    expect_matches(
        acts,
        want_acts,
        f"acts of {what}",
        _separable(want_acts, [(c, h, a) for c, h, a, _ in mistakes], 1e-4, 1e-4),
        rtol=1e-4,
        atol=1e-4,
        hint="acts = pre · [pre > threshold], pre = x @ W_enc + b_enc",
        code="acts",
        reference=call(ref.transcoder_forward, tc, x, pick=lambda result: result[0]),
    )
    catalogue = [(c, h, o) for c, h, _, o in mistakes]
    if not _matches_any(out, [o for _, _, o in catalogue], 1e-4, 1e-4):
        catalogue += known.out_terms(tc, x, acts, out) + probes.identity_skip_terms(tc, x, acts, out)
    expect_matches(
        out,
        want_out,
        f"out of {what}",
        _separable(want_out, catalogue, 1e-4, 1e-4),
        rtol=1e-4,
        atol=1e-4,
        hint="out = acts @ W_dec + b_dec (+ x @ W_skip.T)",
        code="out",
        reference=call(ref.transcoder_forward, tc, x, pick=lambda result: result[1]),
    )


@checker("transcoder_forward", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_transcoder_forward(impl: Callable, device: torch.device) -> str:
    model, tc, tokens = _inputs(device)
    _, cache = model.run_with_cache(tokens[:2, :24], names_filter=tc.hook_name, stop_at_layer=1)
    _check_forward(impl, tc, cache[tc.hook_name], "transcoder_forward(tc, x) on the shipped transcoder")
    small = known.synthetic_transcoder(device)
    x = torch.randn(3, 5, small.d_in, generator=torch.Generator().manual_seed(3)).to(device)
    _check_forward(impl, small, x, "transcoder_forward on a small transcoder with a skip connection")
    silent = slips.with_silent_tokens(small, x)  # the skip term at every token, also where no latent fires
    _check_forward(impl, small, silent, "transcoder_forward on a small transcoder, with tokens where no latent fires")
    tied, x_tied = ties.with_exact_ties(small, x)  # pre == threshold exactly at some entries: the gate is strict
    _check_forward(impl, tied, x_tied, "transcoder_forward on a small transcoder with pre-activations at threshold")
    no_skip = known.synthetic_transcoder(device, skip=False)
    _check_forward(impl, no_skip, x.flatten(0, 1), "transcoder_forward, no skip (W_skip is None), x 2-D [tokens d_in]")
    negative = generic.with_negative_thresholds(small)  # a pre in (threshold, 0) passes the gate, negative
    _check_forward(impl, negative, x[:, None], "transcoder_forward, some negative thresholds, x 4-D [3 1 5 d_in]")
    return "shipped transcoder and a skip transcoder"


# --------------------------------------------------------------------------------------------
# Exercise 2: replacement_losses
# --------------------------------------------------------------------------------------------
KEYS = ("clean", "replaced", "zero_ablated", "recovered")


def _loss(model, tokens: Tensor, hooks: list) -> float:
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()


def _spliced(model, tc: Transcoder, tokens: Tensor, read_at: str, fn: Callable) -> float:
    seen: dict = {}
    hooks = [(read_at, lambda a, hook: seen.__setitem__("x", a))] if read_at != tc.hook_name_out else []
    write = (lambda a, hook: fn(seen["x"], a)) if hooks else (lambda a, hook: fn(a, a))
    return _loss(model, tokens, [*hooks, (tc.hook_name_out, write)])


@checker("replacement_losses", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_replacement_losses(impl: Callable, device: torch.device) -> str:
    model, tc, tokens = _inputs(device)
    tokens = tokens[:4, :48]
    exp = ref.replacement_losses(model, tc, tokens)
    close = lambda a, b: abs(a - b) <= 1e-4 * abs(b) + 1e-5
    with probes.HookRuns(model) as runs, noop_hooks(model) as found:
        try:
            out = returned(impl(model, tc, tokens), "replacement_losses(...)")
        except Exception as err:
            if isinstance(err, ZeroDivisionError):  # a write hook at the MLP's output that changed nothing
                noop_hook_failure([n for n in found if n == tc.hook_name_out], err)
            if isinstance(err, RuntimeError):
                probes.hook_width_error(err, model.cfg.d_model, tc.d_sae)
            slips.zero_division(err, model, tc, tokens, _loss)
            hints.lost_hook_input(err, runs, tc)
            if runs.raised_at == tc.hook_name:
                seen = f"your code raised {type(err).__name__}: {err} in the hook at tc.hook_name"
                probes.names_swapped(runs, tc, exp["replaced"], close, seen)
            raise
    expect_dict(out, "replacement_losses", KEYS)
    got = {k: _float(out[k], f"out[{k!r}]") for k in KEYS}
    extra.logits_means(model, tc, tokens, got)
    keys_swapped(got, exp, close)
    n_seq, seq_len = tokens.shape
    counts = {
        "the batch size (tokens.shape[0])": n_seq,
        "the number of positions predicted per sequence (seq_len - 1)": seq_len - 1,
        "the sequence length (tokens.shape[1])": seq_len,
        "the number of tokens predicted (batch × (seq_len - 1))": n_seq * (seq_len - 1),
    }
    if not close(got["clean"], exp["clean"]):
        probes.loss_relation("clean", got["clean"], exp, close, counts)
        slips.clean_shift(model, tokens, got["clean"], close)
        fail(
            f"clean loss {got['clean']:.5f}, expected {exp['clean']:.5f}",
            "the clean loss is `model(tokens, return_type='loss')`, with no hooks; a different value has several "
            "possible causes: other tokens than those passed (a slice or a subset), a loss other than the model's "
            "own mean cross-entropy, or hooks still attached during the clean run",
            code="clean",
        )
    if close(got["replaced"], got["clean"]):
        splice.no_splice(impl, model, tc, tokens)
    if not close(got["replaced"], exp["replaced"]):
        seen = f"replaced loss {got['replaced']:.5f}, expected {exp['replaced']:.5f}"
        probes.names_swapped(runs, tc, exp["replaced"], close, seen)
        probes.loss_relation("replaced", got["replaced"], exp, close, counts)
        spliced = lambda read_at, fn: _spliced(model, tc, tokens, read_at, fn)
        for value, code, hint in extra.replaced_candidates(tc, spliced, lambda hooks: _loss(model, tokens, hooks)):
            if close(got["replaced"], value()):
                fail(f"replaced loss {got['replaced']:.5f}, expected {exp['replaced']:.5f}", hint, code=code)
        slips.replaced_readings(model, tc, tokens, got["replaced"], exp["replaced"], close, _loss)
        sens.other_hook_points(model, tc, tokens, got["replaced"], exp["replaced"], close)
        fail(
            f"replaced loss {got['replaced']:.5f}, expected {exp['replaced']:.5f}",
            "store x at tc.hook_name, return tc(x) at tc.hook_name_out",
            code="replaced",
        )
    if not close(got["zero_ablated"], exp["zero_ablated"]):
        probes.loss_relation("zero_ablated", got["zero_ablated"], exp, close, counts)
        slips.zero_ablated_elsewhere(model, tc, tokens, got["zero_ablated"], exp["zero_ablated"], close, _loss)
        generic.skip_written(model, tc, tokens, got["zero_ablated"], exp["zero_ablated"], close, _loss)
        placement.zero_ablation(model, tc, tokens, got["zero_ablated"], exp["zero_ablated"], close, _loss)
    if not close(got["recovered"], exp["recovered"]):
        c, r, z = exp["clean"], exp["replaced"], exp["zero_ablated"]
        formula = "recovered = (zero - replaced) / (zero - clean)"
        hint, code = formula, "recovered_formula"
        wrong = [
            ((r - c) / (z - c), "recovered_formula", "that is the fraction lost: "),
            (100 * exp["recovered"], "recovered_formula", "return a fraction, not a percentage (no × 100): "),
            ((z - r) / z, "recovered_denominator", "divide by the whole gap zero - clean, not by the zero loss: "),
            (c / r, "recovered_ratio", "a ratio of two losses does not use the zero-ablated baseline: "),
            (r / c, "recovered_ratio", "a ratio of two losses does not use the zero-ablated baseline: "),
            *extra.recovered_relative(c, r),
            *slips.recovered_precedence(c, r, z),
            *placement.recovered_averaged(model, tc, tokens),
        ]
        fits = [(c, why) for v, c, why in wrong if close(got["recovered"], v) and not close(v, exp["recovered"])]
        if fits:  # c / r and 1 - (r - c) / c agree to second order in (r - c) / c: then both are named
            whys = list(dict.fromkeys(why.rstrip(": ") for _, why in fits))
            hint, code = ("two formulas fit: " * (len(whys) > 1)) + "; or ".join(whys) + ": " + formula, fits[0][0]
        fail(f"recovered is {got['recovered']:.4f}, expected {exp['recovered']:.4f}", hint, code=code)
    sens.recovered_own(got)
    try:  # only a named BOS finding here: a crash on 2-token sequences is reported by the full probe, last
        extra.bos_probe(impl, model, tc, ref.replacement_losses, close, named_only=True)
    except CheckOutcome:
        raise
    except Exception:
        pass
    sens.scaled_probe(impl, model, tc, tokens, got, ref.replacement_losses)
    sens.second_call(impl, model, tc, (tokens, _inputs(device)[2][4:8, :48]), got, ref.replacement_losses)
    generic.recovered_outside_unit(impl, model, tc, tokens, ref.replacement_losses)
    extra.bos_probe(impl, model, tc, ref.replacement_losses, close)
    return f"loss recovered {exp['recovered']:.1%} on this sample"


# --------------------------------------------------------------------------------------------
# Exercise 3: latent_de_embedding and latent_logit_effect
# --------------------------------------------------------------------------------------------
def _live_latents(tc: Transcoder) -> list[int]:
    """Three latents whose decoder and encoder are not degenerate (fixed choice: first, middle, last)."""
    return [0, tc.d_sae // 2 + 1, tc.d_sae - 1]


def _check_token_view(impl: Callable, device: torch.device, name: str, expected_fn: Callable, mistakes_fn: Callable):
    model, tc, _ = _inputs(device)
    for latent in _live_latents(tc):
        try:
            result = impl(model, tc, latent)
        except RuntimeError as err:
            slips.token_view_error(err, model, tc, "de" if name == "latent_de_embedding" else "logit")
            raise
        out = expect_tensor(
            extra.token_view_shape(result, model, tc, f"{name}(model, tc, {latent})"),
            f"{name}(model, tc, {latent})",
            shape=(model.cfg.d_vocab,),
            dims="d_vocab",
            device=device,
            dtype=torch.float32,
        )
        expected = expected_fn(model, tc, latent)
        catalogue = _separable(expected, mistakes_fn(model, tc, latent) + clipped_mutants(expected), 1e-3, 1e-4)
        unlisted = not _matches_any(out, [expected] + [v for _, _, v in catalogue], 1e-3, 1e-4)
        if unlisted:
            views.token_view(out, expected, f"{name} of latent {latent}", model, tc, extra.token_view_relations)
        if unlisted and generic_diagnosis(out, expected, "d_vocab", 1e-3, 1e-4) is None:
            side = "de" if name == "latent_de_embedding" else "logit"
            catalogue += hints.direction_mistakes(model, tc, latent, out, side) if out.isfinite().all() else []
        expect_matches(
            out,
            expected,
            f"{name} of latent {latent}",
            catalogue,
            rtol=1e-3,
            atol=1e-4,
            hint="compare your matrix product with the formula in the text",
            code="values",
            reference=call(expected_fn, model, tc, latent),
        )
    return ""


@checker("latent_de_embedding", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_latent_de_embedding(impl: Callable, device: torch.device) -> str:
    mistakes = lambda model, tc, i: (
        known.de_embedding_mistakes(model, tc, i)
        + probes.de_embedding_probed(model, tc, i)
        + probes.cosine_view(model, tc, i, "de")
        + hints.normalised_matrix(model, tc, i, "de")
        + sens.token_view_index(model, tc, i, "de")
        + slips.de_embedding_paths(model, tc, i)
    )
    return _check_token_view(impl, device, "latent_de_embedding", ref.latent_de_embedding, mistakes)


@checker("latent_logit_effect", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_latent_logit_effect(impl: Callable, device: torch.device) -> str:
    mistakes = lambda model, tc, i: (
        known.logit_effect_mistakes(model, tc, i)
        + probes.cosine_view(model, tc, i, "logit")
        + hints.normalised_matrix(model, tc, i, "logit")
        + sens.token_view_index(model, tc, i, "logit")
        + slips.bias_direction(model, tc, i)
    )
    return _check_token_view(impl, device, "latent_logit_effect", ref.latent_logit_effect, mistakes)


# --------------------------------------------------------------------------------------------
# Exercise 4: linearised_forward
# --------------------------------------------------------------------------------------------


def _expect_pair(out: Any, what: str, frozen: circuits.FrozenRun, model, tc) -> tuple[Tensor, Tensor]:
    out = returned(out, what)
    if not isinstance(out, tuple | list) or len(out) != 2:
        fail(f"{what} should return (pre, logits), got {type(out).__name__}", "return pre, logits", code="not_tuple")
    seq = len(frozen.tokens)
    pre = expect_tensor(out[0], "pre", shape=(seq, tc.d_sae), dims="seq d_sae", device=frozen.embeds.device)
    logits = expect_tensor(
        out[1], "logits", shape=(seq, model.cfg.d_vocab), dims="seq d_vocab", device=frozen.embeds.device
    )
    return pre, logits


LINEARISED_MISTAKES = slips.LINEARISED_MISTAKES


def _linearised_mistakes(m: Any, tc: Any, frozen: Any, args: tuple) -> dict[str, tuple[Tensor, Tensor]]:
    return {code: slips.variant_forward(m, tc, frozen, *args, **{code: True}) for code in LINEARISED_MISTAKES}


def _linearised_catalogue(want: Tensor, mistakes: Callable[[], dict], k: int) -> list:
    return _separable(want, [(c, LINEARISED_MISTAKES[c], v[k]) for c, v in mistakes().items()], 1e-3, 1e-3)


@checker("linearised_forward", kind="function")
@guard_shared_modules(_setup)
def test_linearised_forward(impl: Callable, device: torch.device) -> str:
    model, tc, _ = _inputs(device)
    frozen, _ = _fresh(device)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        # At the prompt (exact there), at a shift that is not centred (LN's mean matters), with latents/error given.
        shift = torch.randn(frozen.embeds.shape, generator=g).to(device) * 0.6 + 0.3
        latents = (torch.rand(frozen.acts.shape, generator=g) < 0.02).float().to(device) * 2.0
        error = torch.randn(frozen.error.shape, generator=g).to(device)
        biased = sens.with_value_bias(model)  # the shipped b_V is 0: a copy with a non-zero one shows it left out
        calls = (
            (model, (frozen.embeds.clone(),), "at the prompt"),
            (model, (frozen.embeds + shift,), "at shifted embeddings"),
            (model, (frozen.embeds + shift, latents, error), "with `latents` and `error` given"),
            (biased, (frozen.embeds + shift,), "on a copy of the model whose b_V is not 0 (the shipped one's is)"),
        )
        for m, args, what in calls:
            pre, logits = optional.checked_call(impl, m, tc, frozen, args, what, _expect_pair)  # no input edited
            if what == "at the prompt":  # frozen.acts there: the gated acts returned, or the recording?
                gated.gated_output(impl, m, tc, frozen, pre, shift, ref.linearised_forward)
            want = known.variant_forward(m, tc, frozen, *args)
            mistakes = functools.cache(functools.partial(_linearised_mistakes, m, tc, frozen, args))  # only if wrong
            hint = optional.step_hint(what == "at the prompt")
            for k, (out, name) in enumerate(((pre, "pre"), (logits, "logits"))):
                expect_matches(
                    out,
                    want[k],
                    f"{name} {what}",
                    functools.partial(_linearised_catalogue, want[k], mistakes, k),
                    rtol=1e-3,
                    atol=1e-3,
                    hint=hint,
                    code="not_exact" if what == "at the prompt" else "values",
                    reference=call(ref.linearised_forward, m, tc, frozen, *args, pick=lambda pair, k=k: pair[k]),
                )
        optional.alone(impl, model, tc, frozen, (frozen.embeds + shift, latents, error), _expect_pair)
    with torch.enable_grad():
        embeds = frozen.embeds.clone().requires_grad_(True)
        _expect_pair(impl(model, tc, frozen, embeds), "linearised_forward", frozen, model, tc)
        slips.linearised_gradient(impl, model, tc, frozen, ref.linearised_forward)  # every path, the latents' too
    return "exact at the prompt, affine around it"


# --------------------------------------------------------------------------------------------
# Exercise 5: attribution_edges
# --------------------------------------------------------------------------------------------


@checker("attribution_edges", kind="function")
@guard_shared_modules(_setup)
def test_attribution_edges(impl: Callable, device: torch.device) -> str:
    model, tc, _ = _inputs(device)
    frozen, graph = _fresh(device)
    saved = sens.snapshot(frozen)
    result = grads.edges_call(impl, model, tc, frozen, graph)
    sens.frozen_unchanged(frozen, saved, "attribution_edges")
    out = expect_tensor(
        result,
        "attribution_edges(...)",
        shape=(graph.n_nodes, graph.n_nodes),
        dims="target source",
        device=device,
    ).detach()
    with torch.no_grad():
        direct = known.direct_edges(model, tc, frozen, graph)
        rows = known.target_rows(graph)
        zeros = torch.zeros_like
        pre0, logits0 = known.variant_forward(
            model, tc, frozen, zeros(frozen.embeds), zeros(frozen.acts), zeros(frozen.error)
        )
        bias = torch.cat([pre0[graph.latent_pos, graph.latent_idx], logits0[-1, graph.logit_ids]])
        values = torch.cat([frozen.acts[graph.latent_pos, graph.latent_idx], frozen.logits[-1, graph.logit_ids]])
        if torch.allclose(out, direct, rtol=1e-3, atol=2e-4):
            gap = (values - out[rows].sum(-1) - bias).abs().max()
            return f"{graph.n_nodes} nodes; edges match a direct computation, completeness gap {float(gap):.1e}"
        sources = torch.ones(graph.n_nodes, dtype=torch.bool)
        sources[graph.nodes("logit")] = False
        misplaced = (
            out[:, ~sources].abs().max() > 0
            or out[graph.nodes("token")].abs().max() > 0
            or out[graph.nodes("error")].abs().max() > 0
        )
        if misplaced and not torch.allclose(out, direct.T, rtol=1e-3, atol=2e-4):
            probes.misplaced_rows(out, direct, graph)
            fail(
                "there are edges into token or error nodes, or out of logit nodes",
                "adjacency[target, source]: only latent and logit rows are filled, logit columns stay zero",
                code="structure",
            )
        mistakes = known.edge_mistakes(model, tc, frozen, graph, direct)
        forward = lambda fr, e, lat, r: known.variant_forward(model, tc, fr, e, lat, r)
        mistakes += extra.abs_token_edges(model, tc, frozen, graph, direct, forward) + probes.token_total(direct, graph)
        mistakes += reads.gradient_swaps(model, tc, frozen, graph)
        mistakes += placement.every_position(frozen, graph, direct, forward)
        mistakes += placement.strictly_earlier(graph, direct)
    if not any(torch.allclose(out, v, rtol=1e-3, atol=2e-4) for _, _, v in mistakes):
        grads.edge_readings(out, direct, graph, rows, (model, tc, frozen))
        probes.edge_factors(out, direct, graph, frozen.acts[graph.latent_pos, graph.latent_idx], rows)
        reads.edge_rows(out, direct, graph, values, rows, (model, tc, frozen))
        counts = {"d_model": model.cfg.d_model, "the number of positions": graph.n_pos, "d_sae": tc.d_sae}
        probes.source_blocks(out, direct, graph, rows, counts)
        gap = values - out[rows].sum(-1) - bias
        bad = gap.abs() > 1e-3 * values.abs().max() + 1e-3
        if bad.any():
            worst = int(gap.abs().argmax())
            n_lat = len(graph.latent_idx)
            kinds = [name for name, part in (("latent", bad[:n_lat]), ("logit", bad[n_lat:])) if part.any()]
            fail(
                f"completeness fails for {' and '.join(kinds)} targets "
                f"({int(bad[:n_lat].sum())}/{n_lat} latent, {int(bad[n_lat:].sum())}/{len(bad) - n_lat} logit); "
                f"e.g. the edges into {graph.label(rows[worst])} plus its bias add up to "
                f"{float(values[worst] - gap[worst]):.4f}, but its value is {float(values[worst]):.4f}",
                "possible causes: the target differs from the node's value (a latent's pre-activation at its own "
                "position, recomputed by the forward, not the injected value; a logit at the LAST position only, "
                "not summed over positions), a latent's value written at other positions than its own (the position "
                "index dropped), an edge that isn't d(target)/d(source) · source with every other node held fixed, "
                "or a source missing its column",
                code="completeness",
            )
    expect_matches(
        out,
        direct,
        "the adjacency matrix",
        mistakes,
        rtol=1e-3,
        atol=2e-4,
        dims="target source",
        hint="completeness holds but some edges differ from a direct computation (zero one source, "
        "hold the others): is each edge attributed to the right source?",
        code="values",
    )
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 6: node_influence
# --------------------------------------------------------------------------------------------
def _influence_inputs(device: torch.device) -> tuple[Tensor, Tensor]:
    """A 10-node DAG in the graph's order (latents in two layers, errors, tokens, logits), signed weights,
    rows without inputs, paths of length 1 to 3, and two logits weighted 0.7 / 0.2."""
    g = torch.Generator().manual_seed(5)
    n = 10  # 0-3 latents (0, 1 read tokens; 2, 3 also read latents 0, 1), 4 error, 5-7 tokens, 8-9 logits
    A = torch.zeros(n, n)
    w = lambda: float(torch.randn(1, generator=g)) + (0.5 if float(torch.rand(1, generator=g)) < 0.5 else -0.5)
    for t, sources in {
        0: [5, 6],
        1: [6, 7],
        2: [0, 5, 7],
        3: [0, 1, 6],
        8: [1, 2, 3, 4, 7],
        9: [0, 2, 3, 4, 5],
    }.items():
        for s in sources:
            A[t, s] = w()
    weights = torch.zeros(n)
    weights[8], weights[9] = 0.7, 0.2
    return A.to(device), weights.to(device)


@checker("node_influence", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_node_influence(impl: Callable, device: torch.device) -> str:
    A, weights = _influence_inputs(device)
    A_in, w_in = A.clone(), weights.clone()
    out = returned(extra.influence_signs(impl, A_in, w_in), "node_influence(adjacency, logit_weights)")
    what = "node_influence(...)"
    out = expect_tensor(out, what, shape=(len(A),), dims="n_nodes", device=device, dtype=A.dtype, finite=False)
    if out.isnan().any():
        influence_nan(out, A, weights, impl)
    expect_tensor(out, what, finite=True)
    if not (torch.equal(A_in, A) and torch.equal(w_in, weights)):
        fail(
            "node_influence changed its inputs in place", "work on copies (`adjacency.abs()` makes one)", code="inplace"
        )
    right = ref.node_influence(A, weights)
    catalogue = known.influence_mistakes(A, weights) + extra.influence_extra(A, weights)
    catalogue += probes.influence_probed(A, weights) + pruned_catalogue(A, weights) + reads.identity_terms(A, weights)
    if not _matches_any(out, [right] + [v for _, _, v in catalogue], 1e-4, 1e-6):
        failed.weight_sum_factor(out, right, weights)
        failed.raw_rows(out, A, weights)
        reads.influence_readings(impl, A, weights, out, right)
    expect_matches(
        out,
        right,
        "the influence",
        catalogue,
        rtol=1e-4,
        atol=1e-6,
        dims="node",
        hint="influence = w @ ((I - Â)⁻¹ - I), Â = rows of |A| normalised",
        code="values",
        reference=call(ref.node_influence, A, weights),
    )
    cases.scaled_rows(impl, A, weights, ref.node_influence)
    hints.deep_graph(impl, device, ref.node_influence)
    pruned_edges(impl, device, ref.node_influence)
    cases.float64_inputs(impl, A, weights, ref.node_influence)
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 7: quantile_examples
# --------------------------------------------------------------------------------------------
def _quantile_inputs(device: torch.device) -> Tensor:
    """[6, 10] activations with max 4.5 at a position >= 1 and bands (3.375, 4.5], (2.25, 3.375], (1.125, 2.25],
    (0, 1.125]: the second and bottom bands hold fewer than k = 3 examples, the edge values sit at the top of their
    bands, zeros are not firing, and position 0 (BOS, larger values and one inside a band) must be ignored."""
    g = torch.Generator().manual_seed(2)
    acts = (1 + torch.rand(6, 10, generator=g)) * (torch.rand(6, 10, generator=g) < 0.4)  # band (1, 2)
    acts[2, 7], acts[4, 3] = 4.0, 3.6  # top band: two examples
    acts[1, 9], acts[0, 6] = 3.0, 2.6  # second band: its top edge and one more
    acts[0, 4] = 2.0  # the top edge of the third band
    acts[5, 8], acts[3, 2] = 0.3, 0.8  # bottom band: two examples
    acts[3, 5], acts[5, 2], acts[1, 4] = 3.8, 3.3, 3.05  # top band: 5, closest to the middle != largest != smallest
    acts[:, 0] = 5.0 + torch.rand(6, generator=g)
    acts[3, 0], acts[1, 0] = 2.5, 1.5  # BOS inside (0, m] at band middles (one band with >= k): never chosen
    # × 1.125 (exact in binary, edges 1.125·i stay exact): max 4.5, so floor division of the edges is not exact
    return (acts * 1.125).to(device)


@checker("quantile_examples", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_quantile_examples(impl: Callable, device: torch.device) -> str:
    acts, k, n_bands = _quantile_inputs(device), 3, 4
    before = acts.clone()
    out = returned(impl(acts, k, n_bands), "quantile_examples(acts, k, n_bands)")
    if not torch.equal(acts, before):
        fail("quantile_examples changed `acts` in place", "work on a copy (`acts.clone()`)", code="inplace")
    if not isinstance(out, list | tuple) or len(out) != n_bands:
        band_count.band_left_out(out, known.quantile_variant(before, k, n_bands), n_bands)
        fail(
            f"expected a list of {n_bands} groups, one per band, got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, list | tuple) else ""),
            "one (values, seq_idx, pos_idx) per band",
            "not_list",
        )
    expected = known.quantile_variant(before, k, n_bands)
    mistakes = {c: known.quantile_variant(before, k, n_bands, **{c: True}) for c in known.QUANTILE_MISTAKES}
    for j, group in enumerate(out):
        if not isinstance(group, tuple | list) or len(group) != 3:
            fail(
                f"group {j} should be a tuple (values, seq_idx, pos_idx)", "return three tensors per band", "not_tuple"
            )
        values, seq_idx, pos_idx = group
        hints.non_finite_band(before, j, n_bands, values, expected[j][0], out, k)
        for name, t in (("values", values), ("seq_idx", seq_idx), ("pos_idx", pos_idx)):
            expect_tensor(t, f"{name} of band {j}", device=device)
            if t.ndim != 1:
                fail(
                    f"{name} of band {j} has shape {tuple(t.shape)}, expected one dimension",
                    "return 1D tensors",
                    "shape",
                )
        if seq_idx.is_floating_point() or pos_idx.is_floating_point():
            views.band_tuple_order(group, j) or fail(f"the indices of band {j} are floats", "use `//` and `%`", "dtype")
    failed.empty_bands(impl, before, out, expected, k, n_bands)
    if not known.same_groups(out, expected):
        hints.wrong_middle(out, before, k, n_bands, impl)
    for code, groups in mistakes.items():
        if known.same_groups(out, groups) and not known.same_groups(out, expected):
            band_probes.named_mistake(impl, before, k, n_bands, code)
    for code, groups in mistakes.items():  # values alone: ties (zeros) may be picked at other indices
        if known.same_values(out, groups) and not known.same_values(out, expected):
            code, hint = band_probes.edge_reading(impl, out, before, k, n_bands, code)
            fail(f"the groups' values are those of a known mistake ({code})", hint, code=code)
    if not known.same_groups(out, expected):
        band_count.values_other_layout(out, expected, before)
        _edges_diagnosis(out, before, k, n_bands)
        reads.quantile_slips(out, expected, before, k, n_bands, impl)
        hints.one_per_sequence(out, expected, before, k, n_bands)
    for j, ((values, seq_idx, pos_idx), (exp_values, _, _)) in enumerate(zip(out, expected, strict=True)):
        if values.shape != exp_values.shape or not torch.allclose(values.float(), exp_values.float()):
            got_list, want_list = [round(v, 3) for v in values.tolist()], [round(v, 3) for v in exp_values.tolist()]
            hint, code = hints.band_diagnosis(before, j, n_bands, values.float(), exp_values.float(), out, k)
            fail(f"band {j}: values {got_list}, expected {want_list}", hint, code=code)
        n_seq, seq_len = before.shape
        value_readings.band_indices(before, j, n_bands, values, seq_idx, pos_idx)
        flat_index_reading(j, seq_idx, pos_idx, expected[j][1], expected[j][2], n_seq, seq_len)
        ranges = (("seq_idx", seq_idx, n_seq, "sequences"), ("pos_idx", pos_idx, seq_len, "positions"))
        for name, t, size, axis in ranges:
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
                fail(
                    f"band {j}: {name} runs from {int(t.min())} to {int(t.max())}, but acts has {size} {axis}",
                    f"turn a flat index i into (i // seq_len, i % seq_len) with seq_len = acts.shape[1] = {seq_len} "
                    f"(dividing by the number of sequences, {n_seq}, gives indices out of range)",
                    code="indices",
                )
        if not torch.equal(before[seq_idx.long(), pos_idx.long()], values):
            fail(
                f"band {j}: acts[seq_idx, pos_idx] does not give back the values",
                "turn a flat index i into (i // seq_len, i % seq_len)",
                code="indices",
            )
    extra.other_bands(impl, before)
    extra.negative_acts(impl, before)
    extra.empty_band(impl, device)
    band_probes.shared_sequence(impl, device)
    return ""


def _edges_groups(flat: Tensor, k: int, edges: list, closed_bottom: bool) -> list[Tensor]:
    """The values chosen in the bands (edges[i], edges[i+1]], highest band first."""
    groups = []
    for lo, hi in reversed(list(itertools.pairwise(edges))):
        in_band = ((flat >= lo) if closed_bottom else (flat > lo)) & (flat <= hi) & (flat > 0)
        vals = flat[in_band]
        vals = vals[(vals - (lo + hi) / 2).abs().argsort()[:k]]
        groups.append(vals.sort(descending=True).values)
    return groups


def _edges_diagnosis(out: Any, acts: Tensor, k: int, n_bands: int) -> None:
    """Count the bands and read their edges off the output: if the groups are those of other equal bands (edges
    from the smallest firing value, or n_bands edges = n_bands - 1 bands), say which edges the groups imply."""
    flat = acts.detach().double().cpu().clone()
    flat[:, 0] = 0
    flat = flat.flatten()
    top, low = float(flat.max()), float(flat[flat > 0].min())
    got = [torch.as_tensor(g[0]).detach().double().cpu() for g in out]
    candidates = {
        f"{n_bands} edges from 0 to the max, i.e. {n_bands - 1} bands": [
            top * i / (n_bands - 1) for i in range(n_bands)
        ],
        f"{n_bands} equal bands from the smallest firing value {low:.3g} to the max": [
            low + (top - low) * i / n_bands for i in range(n_bands + 1)
        ],
    }
    for name, edges in candidates.items():
        for closed in (False, True):
            bands = _edges_groups(flat, k, edges, closed)
            padded = bands + [torch.zeros(0, dtype=flat.dtype)] * (len(got) - len(bands))
            if all(a.shape == b.shape and torch.allclose(a, b) for a, b in zip(got, padded, strict=False)):
                right = ", ".join(f"{top * i / n_bands:.3g}" for i in range(n_bands + 1))
                fail(
                    f"your groups are those of the bands with edges {', '.join(f'{e:.3g}' for e in edges)} "
                    f"({name}), expected {n_bands} bands with edges {right}",
                    f"the bands split (0, max] into n_bands = {n_bands} equal parts: n_bands + 1 edges, "
                    f"m·i/n_bands for i = 0..n_bands (e.g. torch.linspace(0, m, n_bands + 1)), starting at 0",
                    code="edges",
                )
