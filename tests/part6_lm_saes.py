"""Checkers for part 6 (SAEs in a language model).

Every exercise here is deterministic, so each checker runs the learner's function and the reference
(`solutions.part6_lm_saes`) on the same inputs and compares them with tolerances loose enough for any
equivalent order of operations. The inputs are the shipped model and SAE (both have non-zero biases
everywhere) on a few held-out sequences, so nothing is trained or downloaded.

When the output is wrong, the checker evaluates the known mistakes (`tests/part6_lm_saes_mistakes.py`) on the
same inputs and names the one that matches; failing that, the generic diagnoses of `expect_matches`
(a constant factor, a sign, an offset, ...) name what they can.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part6_lm_saes as ref
from tests import part6_lm_saes_slip_readings as slips
from tests.checking import CheckFailed, checker, expect_dict, expect_matches, expect_tensor, fail, returned
from tests.checking import _dtype_hint as dtype_hint
from tests.mutants import call
from tests.part6_lm_saes_bos_broadcast import bos_latent as _bos_latent
from tests.part6_lm_saes_bos_broadcast import unchanged_but_edits
from tests.part6_lm_saes_elementwise import edited_then_raised, logit_affine, statistic_threshold, too_few_prefix
from tests.part6_lm_saes_extra_mistakes import (
    ablate_extra,
    ablate_slips,
    abs_ranked,
    all_negative_probe,
    first_sequence_f,
    frequency_extra,
    integer_effect,
    log_frequencies,
    logit_extra,
    noop_hooks,
    per_sequence_topk,
    per_token_frequencies,
    reconstruction_call_failure,
    sequences_mixed,
    signed_top_probe,
    steer_extra,
    steer_slips,
    top_extra,
)
from tests.part6_lm_saes_hints import (
    ablate_edit,
    ablate_second_call,
    edits_rerun,
    frequency_positions,
    logit_normalised,
    recorded_edits,
    sequence_weights,
    steer_edit,
    steer_second_call,
)
from tests.part6_lm_saes_index_values import values_off_indices
from tests.part6_lm_saes_loss_catalogue import loss_catalogue
from tests.part6_lm_saes_loss_reductions import loss_reductions
from tests.part6_lm_saes_mask_floor import far_below_probe, min_fill_probe
from tests.part6_lm_saes_masked_returned import masked_entries_returned
from tests.part6_lm_saes_mistakes import (
    ablate_mistakes,
    clipped_mutants,
    count_factors,
    frequency_mistakes,
    logit_effect_mistakes,
    mlp_acts,
    steer_mistakes,
    top_mistakes,
)
from tests.part6_lm_saes_probes import (
    frequency_slips,
    fresh14_ablate,
    fresh14_steer,
    fresh15_ablate,
    fresh15_frequency,
    fresh15_steer,
    hook_point_error,
    indices_reordered,
    logit_call,
    logit_run_slips,
    logit_slips,
    same_entry_repeated,
    same_for_every_latent,
    same_hook_runs,
    sorted_effect,
    strided_mask,
    summed_ablate,
)
from tests.part6_lm_saes_read_back import indices_not_values, nan_values, same_latent_effect
from tests.part6_lm_saes_rounding import rounding_diagnosis
from tests.part6_lm_saes_threshold import firing_threshold
from tests.part6_lm_saes_units import frequency_units, integer_frequencies, position_batches, unit_row_reference
from tests.part6_lm_saes_variants import (
    ablate_encodes,
    frequency_encodes,
    logit_path_slips,
    logit_rescaled,
    logit_row_shifted,
    one_more_than_k,
    steer_mlp_out,
)
from tests.part6_lm_saes_wide_counts import larger_calls, layer_axis
from tests.sizes import note_inputs, register_checker
from utils import lm

RTOL, ATOL = 1e-4, 1e-5


# --------------------------------------------------------------------------------------------
# Shared inputs
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _setup(device_str: str) -> tuple[Any, lm.LMSAE, Tensor]:
    device = torch.device(device_str)
    model = lm.load_model(device=device)
    sae = lm.load_sae(device=device)
    tokens = lm.load_eval_tokens(device, n_seq=16)
    return model, sae, tokens


def _inputs(device: torch.device) -> tuple[Any, lm.LMSAE, Tensor]:
    """The shipped model, SAE and 16 held-out sequences on `device` (loaded once per device)."""
    return _setup(str(device))


def guard_shared_modules(setup: Callable[[str], tuple]) -> Callable:
    """Decorator for checkers whose inputs are cached modules (`setup(device)[:2]`: the model and an SAE or a
    transcoder), shared by every check of a session. The learner's function is wrapped so that a hook it leaves
    on the model, or a weight it edits in place, is undone and named, instead of silently changing every later
    check (the reference included)."""

    def decorate(fn: Callable) -> Callable:
        register_checker(fn)  # the checker's own locals (not this wrapper's) name the sizes in its hints

        @functools.wraps(fn)
        def run(impl: Any, device: torch.device) -> Any:
            modules = setup(str(device))[:2]
            originals = _original_weights(setup, str(device))
            modules[0].reset_hooks(including_permanent=True)

            @functools.wraps(impl)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                try:
                    out = impl(*args, **kwargs)
                except Exception as err:  # a weight edited in place before raising is named, not just the error
                    edited_then_raised(modules, originals, err, _restore)
                    raise
                _undo_side_effects(modules, originals)
                return out

            try:
                return fn(guarded, device)
            finally:
                modules[0].reset_hooks(including_permanent=True)
                _restore(modules, originals)

        return run

    return decorate


@functools.lru_cache(maxsize=4)
def _original_weights(setup: Callable[[str], tuple], device_str: str) -> list[dict[str, Tensor]]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in setup(device_str)[:2]]


def _restore(modules: tuple, originals: list[dict[str, Tensor]]) -> list[str]:
    """Copy back every tensor that differs from its original; the names of those that did."""
    changed = []
    with torch.no_grad():
        for module, original in zip(modules, originals, strict=True):
            for name, tensor in module.state_dict().items():
                if tensor.shape != original[name].shape or not torch.equal(tensor, original[name]):
                    changed.append(f"{type(module).__name__}.{name}")
                    if tensor.shape == original[name].shape:
                        tensor.copy_(original[name])
    return changed


def _undo_side_effects(modules: tuple, originals: list[dict[str, Tensor]]) -> None:
    model = modules[0]
    left = [name for name, hook in model.hook_dict.items() if hook.fwd_hooks or hook.bwd_hooks]
    model.reset_hooks(including_permanent=True)
    if left:
        fail(
            f"your function left a hook on the model at {left[0]}" + (f" (and {len(left) - 1} more)" * (len(left) > 1)),
            "add hooks for one run only: model.run_with_hooks(tokens, fwd_hooks=[...]) or `with model.hooks(...)`; "
            "a hook added with add_hook stays and changes every later forward pass",
            code="hook_left",
        )
    changed = _restore(modules, originals)
    if changed:
        fail(
            f"your function changed {changed[0]}"
            + (f" and {len(changed) - 1} more" * (len(changed) > 1))
            + " in place",
            "work on copies (W.clone()) or change activations in a hook: the model and SAE are shared by every "
            "later computation",
            code="modified_weights",
        )


def without_grad(fn: Callable) -> Callable:
    """Run a checker under torch.no_grad() (its inputs and reference need no autograd)."""
    register_checker(fn)

    @functools.wraps(fn)
    def run(impl: Any, device: torch.device) -> Any:
        with torch.no_grad():
            return fn(impl, device)

    return run


# What an axis of each of the shipped model's and SAE's widths holds, to name a wrong one in a shape.
WIDTHS = {
    "d_sae": "the SAE's latents",
    "d_mlp": "the MLP activations (the SAE's input and reconstruction)",
    "d_model": "the residual stream",
    "d_vocab": "the vocabulary",
}


def _width_hint(x: Tensor, what: str, shape: tuple[int, ...], dims: str, device: torch.device) -> None:
    """A wrong shape whose wrong axis has one of the model's or SAE's widths: say which width it is."""
    if x.ndim != len(shape) or tuple(x.shape) == tuple(shape):
        return layer_axis(x, what, shape, dims, _inputs(device)[0].cfg.n_layers)
    model, sae, _ = _inputs(device)
    widths = {"d_sae": sae.d_sae, "d_mlp": model.cfg.d_mlp, "d_model": model.cfg.d_model, "d_vocab": model.cfg.d_vocab}
    for got, want, name in zip(x.shape, shape, dims.split(), strict=True):
        width = next((w for w, size in widths.items() if size == got and got != want), None)
        if width is not None:
            fail(
                f"{what} has shape {tuple(x.shape)}, expected ({dims}) = {tuple(shape)}",
                f"your `{name}` axis has size {got} = {width}, the width of {WIDTHS[width]}: expected {name} = "
                f"{want} ({WIDTHS.get(name, name)})",
                code="shape",
            )


def _float_tensor(x: Any, what: str, shape: tuple[int, ...], dims: str, device: torch.device, hint: str) -> Tensor:
    """expect_tensor (device before values, so a meta tensor is named, never read), then a float dtype."""
    if isinstance(x, Tensor) and x.device.type != "meta":
        _width_hint(x, what, shape, dims, device)
    x = expect_tensor(x, what, shape=shape, dims=dims, device=device, finite=False)
    if not x.is_floating_point():
        fail(f"{what} has dtype {x.dtype}, expected a float tensor", hint, code="dtype")
    if torch.finfo(x.dtype).bits < 32:  # float16/bfloat16 round every value: named before any value diagnosis
        fail(
            f"{what} has dtype {x.dtype}, expected float32 (the inputs' dtype)",
            dtype_hint(x.dtype, torch.float32),
            code="dtype",
        )
    return expect_tensor(x, what)


def _hooked(impl: Callable, model: Any, sae: lm.LMSAE, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function; an error from an activation taken at another hook point is named."""
    try:
        return impl(model, sae, *args, **kwargs)
    except Exception as err:
        hook_point_error(err, model, sae)
        slips.decoder_layout_error(err, sae)
        raise


# --------------------------------------------------------------------------------------------
# Exercise 1
# --------------------------------------------------------------------------------------------
@checker("latent_frequencies", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_latent_frequencies(impl: Callable, device: torch.device) -> str:
    model, sae, tokens_all = _inputs(device)
    tokens = tokens_all[:10, :48]  # 10 sequences in batches of 4: the last batch is partial
    note_inputs(sequences_in_the_last_batch=tokens.shape[0] % 4)  # a count from the last batch alone is named
    note_inputs(positions_after_bos=tokens.shape[1] - 1)  # the count of positions >= 1 per sequence (47)
    note_inputs(n_tokens=tokens.shape[0] * (tokens.shape[1] - 1))  # 470 (a count off by one is named by it)
    out = returned(_hooked(impl, model, sae, tokens.clone(), batch_size=4), "latent_frequencies(...)")
    per_token_frequencies(out, *tokens.shape, sae.d_sae)
    integer_frequencies(out, sae.d_sae)
    out = _float_tensor(
        out,
        "latent_frequencies(...)",
        (sae.d_sae,),
        "d_sae",
        device,
        "divide a float count (e.g. `(acts > 0).float().sum(...)`) by the number of tokens",
    )
    expected = ref.latent_frequencies(model, sae, tokens, batch_size=4)
    log_frequencies(out, expected)
    slips.every_token_counted(out, expected, *tokens.shape)
    same_for_every_latent(out, expected, "the frequencies")
    fired = (sae.encode(mlp_acts(model, sae.hook_name, tokens))[:, 1:] > 0).float()
    try:
        expect_matches(
            out,
            expected,
            "the frequencies",
            frequency_mistakes(model, sae, tokens, 4)
            + frequency_extra(fired, 4)
            + frequency_slips(sae.encode(mlp_acts(model, sae.hook_name, tokens)))
            + fresh15_frequency(fired, *tokens.shape, 4)
            + frequency_positions(sae.encode(mlp_acts(model, sae.hook_name, tokens)))
            + frequency_encodes(sae, mlp_acts(model, sae.hook_name, tokens))
            + frequency_units(expected, tokens.shape[1] - 1)
            + position_batches(model, sae, tokens, 4)
            + slips.tied_frequencies(sae, mlp_acts(model, sae.hook_name, tokens)),
            atol=1e-6,
            dims="d_sae",
            hint="the fraction of tokens (positions >= 1 of every sequence, all batches) on which each latent is > 0",
            reference=call(ref.latent_frequencies, model, sae, tokens, batch_size=4),
        )
    except CheckFailed as err:  # nothing specific matched: which sequences the values count, when that is exact
        if err.code in ("values", "one_change"):  # the mutant search may find an edit, or not, as time allows
            sequence_weights(out, fired, 4)
        if err.code == "values":
            slips.single_position(out, sae.encode(mlp_acts(model, sae.hook_name, tokens)))
            statistic_threshold(err, out, sae.encode(mlp_acts(model, sae.hook_name, tokens))[:, 1:], 4)
            firing_threshold(err, out, sae.encode(mlp_acts(model, sae.hook_name, tokens))[:, 1:])
        raise
    larger_calls(
        lambda t, b: _hooked(impl, model, sae, t, batch_size=b),
        lambda t, b: ref.latent_frequencies(model, sae, t, batch_size=b),
        tokens_all,
    )
    return f"{int((expected == 0).sum())} of {sae.d_sae} latents silent on this small sample"


# --------------------------------------------------------------------------------------------
# Exercise 2
# --------------------------------------------------------------------------------------------
KEYS = ("clean", "spliced", "zero_ablated", "recovered")


def _number(value: Any, what: str) -> float:
    """A plain Python number, as the exercise asks (a tensor, even a 0-dim one, is named: the given cells
    after the exercise format these values as floats)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            fail(
                f"{what} should be a float, got a tensor of shape {tuple(value.shape)}",
                "the loss is already a mean over positions: `return_type='loss'` gives one number; call .item()",
                code="not_scalar",
            )
        fail(
            f"{what} should be a Python float, got a {value.dtype} tensor",
            "return plain floats: call `.item()` on each loss",
            code="not_float",
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{what} should be a float, got {type(value).__name__}", "return plain Python floats", code="not_float")
    return float(value)


@checker("reconstruction_losses", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_reconstruction_losses(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens = tokens[:6, :64]
    with noop_hooks(model) as found:
        try:
            out = returned(impl(model, sae, tokens.clone()), "reconstruction_losses(...)")
        except Exception as err:
            reconstruction_call_failure(found, err)
            raise
    expect_dict(out, "reconstruction_losses", KEYS)
    got = {k: _number(out[k], f"out[{k!r}]") for k in KEYS}
    exp = ref.reconstruction_losses(model, sae, tokens)
    same_hook_runs(got, exp)
    catalogue = functools.cache(lambda: loss_catalogue(model, sae, tokens, exp))  # model runs: only when wrong
    general = {
        "clean": "the clean loss is `model(tokens, return_type='loss')`, with no hooks; a different value has several "
        "possible causes: the model ran on other tokens than those passed (a slice or a subset), a loss other than "
        "the model's own mean cross-entropy, or hooks still attached during the clean run",
        "spliced": "replace the activations at `sae.hook_name` by the SAE's reconstruction, at every position",
        "zero_ablated": "replace the activations at `sae.hook_name` by zeros (`torch.zeros_like(act)`)",
        "recovered": "recovered = (zero - spliced) / (zero - clean)",
    }
    for k in KEYS:
        rounding_diagnosis(got[k], exp[k], f"out[{k!r}]", got)
        expect_matches(
            torch.tensor(got[k], dtype=torch.float64),
            torch.tensor(exp[k], dtype=torch.float64),
            f"out[{k!r}]",
            lambda k=k: catalogue()[k] + loss_reductions(model, sae, tokens, k, got[k], exp[k], 2e-5, 1e-6),
            # float32 losses (means over a few hundred positions) agree to ~1e-6 whichever way they are computed;
            # 2e-5 separates mistakes that move the loss by 1e-4 (BOS left unspliced, b_dec left out of decode)
            rtol=1e-4 if k == "recovered" else 2e-5,
            atol=1e-6,
            hint=general[k],
            code=k,
        )
    return f"loss recovered {exp['recovered']:.1%} on this sample"


# --------------------------------------------------------------------------------------------
# Exercise 3
# --------------------------------------------------------------------------------------------
def _top_inputs(device: torch.device) -> Tensor:
    n_seq, seq = 7, 13
    gen = torch.Generator().manual_seed(0)
    acts = torch.rand(n_seq, seq, generator=gen) * (torch.rand(n_seq, seq, generator=gen) < 0.4)
    acts[:, 0] = 2.0 + torch.rand(n_seq, generator=gen)  # BOS: the largest values, to be ignored
    acts[1, 12], acts[6, 3], acts[0, 5] = 1.9, 1.8, 1.7  # corners that catch a wrong unravel
    acts[1, 1] = 1.75  # position 1 is a real token: a mask over positions 0 and 1 shows (second of its sequence)
    acts[0, 12] = 2.2  # sequence 0 holds the top value, above one BOS: dropping sequence 0 (acts[1:]) and dropping
    # only its BOS (flatten()[1:]) give different top k; at position 12, like 1.9, so one per position differs too
    others = acts[1:, 0].sort().values
    acts[0, 0] = (others[2] + others[3]) / 2  # a middle BOS: neither the top k (k < n_seq) nor the top 1 singles it out
    return acts.to(device)


def _too_few_diagnosis(values: Any, acts: Tensor, k: int) -> None:
    """values with fewer than k entries: say so, and whether they are the top k with position 0 removed."""
    if not (isinstance(values, Tensor) and values.dim() == 1 and values.shape[0] < k and values.device.type != "meta"):
        return
    top, flat = acts.flatten().topk(k)
    after = top[flat % acts.shape[1] != 0]
    same = values.shape == after.shape and torch.allclose(values.detach().double().cpu(), after.double().cpu())
    masked = acts.clone()
    masked[:, 0] = -torch.inf
    prefix = "" if same else too_few_prefix(values, masked.flatten().topk(k).values, k)
    fail(
        f"values has {values.shape[0]} entries, fewer than k={k}"
        + (": they are the top k over all positions with the position-0 ones removed" if same else prefix),
        "fewer than k results: "
        + (
            "entries were removed after selecting (position 0 dropped after topk, a filter or a mask applied to "
            "topk's output?)"
            if same
            else "a smaller k passed to topk or a slice (topk(k - 1), [:k-1], [:-1]?)"
            if prefix
            else "e.g. entries removed after selecting (position 0 dropped after topk, a filter), or a smaller k"
        )
        + "; exclude position 0 before topk (set it to -inf) and take topk(k), so k remain",
        code="too_few",
    )


@checker("top_activations", kind="function")
@guard_shared_modules(_setup)
def test_top_activations(impl: Callable, device: torch.device) -> str:
    acts, k = _top_inputs(device), 6
    before = acts.clone()
    result = returned(impl(acts, k), "top_activations(acts, k)")
    if not (isinstance(acts, Tensor) and acts.shape == before.shape and torch.equal(acts, before)):
        fail(
            "top_activations changed its input `acts` in place",
            "work on a copy (`acts.clone()`) before masking position 0",
            code="inplace",
        )
    if not isinstance(result, tuple | list) or len(result) != 3:
        fail(
            "top_activations should return a tuple (values, seq_idx, pos_idx)", "return three tensors", code="not_tuple"
        )
    values, seq_idx, pos_idx = result
    per_sequence_topk(values, acts.shape[0], k)
    _too_few_diagnosis(values, before, k)
    one_more_than_k(values, k)
    nan_values(impl, values, pos_idx, before)
    masked_entries_returned(impl, values, pos_idx, k, device)
    values = _float_tensor(values, "values", (k,), "k", device, "return the activations themselves (floats)")
    same_entry_repeated(values, seq_idx, pos_idx, k)
    for name, idx in (("seq_idx", seq_idx), ("pos_idx", pos_idx)):
        expect_tensor(idx, name, shape=(k,), dims="k", device=device, finite=False)
        if idx.is_floating_point():
            fail(
                f"{name} has dtype {idx.dtype}, expected an integer tensor",
                "use integer division `//` and `%` on the indices returned by topk",
                code="dtype",
            )
    exp_values, exp_seq, exp_pos = ref.top_activations(before, k)
    values_off_indices(values, seq_idx, pos_idx, before, k, (exp_values, exp_seq, exp_pos))
    got = torch.stack([values.double(), seq_idx.double(), pos_idx.double()])
    expected = torch.stack([exp_values.double(), exp_seq.double(), exp_pos.double()])
    if not torch.allclose(got, expected.to(got.device), rtol=RTOL, atol=ATOL):
        strided_mask(impl, tuple(before.shape), device)
    mistakes = top_mistakes(before, k) + top_extra(before, k)
    close = lambda a, b: b is not None and bool(torch.allclose(a, b.to(a.device), rtol=RTOL, atol=ATOL))
    if close(got, expected) or any(close(got, value) for _, _, value in mistakes):
        expect_matches(  # passes, or names it
            got,
            expected,
            "(values, seq_idx, pos_idx)",
            mistakes,
            dims="output k",
            reference=call(ref.top_activations, before, k, pick=lambda out: torch.stack([o.double() for o in out])),
        )
    abs_ranked(values, before, k)
    by_value = got[:, values.detach().double().argsort(descending=True)]
    if not close(got, expected) and torch.allclose(by_value, expected.to(got.device), rtol=RTOL, atol=ATOL):
        fail(
            "(values, seq_idx, pos_idx) hold the right k examples, in a different order",
            "return them largest first: topk sorts them unless sorted=False (a mask, a set or unique loses the order)",
            code="unsorted",
        )
    smallest = before[:, 1:].flatten().topk(k, largest=False).values
    expect_matches(
        values,
        exp_values,
        "values",
        [("smallest", "`topk` returns the LARGEST values by default (largest=False gives the smallest)", smallest)],
        dims="k",
        hint="the k largest activations at positions >= 1 (over all sequences and positions together), largest first",
        reference=call(ref.top_activations, before, k, pick=lambda out: out[0]),
    )
    s_idx, p_idx = seq_idx.long().cpu(), pos_idx.long().cpu()
    slips.reversed_unravel(s_idx, p_idx, exp_seq, exp_pos, tuple(before.shape))
    if (s_idx < 0).any() or (s_idx >= acts.shape[0]).any() or (p_idx < 0).any() or (p_idx >= acts.shape[1]).any():
        fail(
            f"the indices are out of range: seq_idx {s_idx.tolist()}, pos_idx {p_idx.tolist()} for acts of shape "
            f"{tuple(acts.shape)}",
            f"turn a flat index i into (i // seq_len, i % seq_len); seq_len = acts.shape[1] = {acts.shape[1]}",
            code="unravel",
        )
    if not torch.equal(before.cpu()[s_idx, p_idx], values.cpu()):
        indices_reordered(s_idx, p_idx, exp_seq.cpu(), exp_pos.cpu())
        indices_not_values(values, s_idx, p_idx, before, (exp_seq, exp_pos))
    if torch.equal(got, expected.to(got.device)):
        signed_top_probe(impl, ref.top_activations, device)
        all_negative_probe(impl, ref.top_activations, device)
        far_below_probe(impl, ref.top_activations, device)
        min_fill_probe(impl, ref.top_activations, device)
        return ""
    fail(
        f"(seq_idx, pos_idx) = ({seq_idx.tolist()}, {pos_idx.tolist()}), expected ({exp_seq.tolist()}, "
        f"{exp_pos.tolist()})",
        "return the sequence and the position of each of the k largest values",
        code="indices",
    )
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 4
# --------------------------------------------------------------------------------------------
@checker("latent_logit_effect", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_latent_logit_effect(impl: Callable, device: torch.device) -> str:
    model, sae, _ = _inputs(device)
    d_mlp = model.cfg.d_mlp
    for latent in (3, 100, sae.d_sae - 1):
        expected = ref.latent_logit_effect(model, sae, latent)
        what = f"latent_logit_effect(model, sae, {latent})"
        out = returned(logit_call(impl, model, sae, latent), what)
        integer_effect(out, model.cfg.d_vocab)
        out = _float_tensor(
            out,
            what,
            (model.cfg.d_vocab,),
            "d_vocab",
            device,
            "return the logit changes (floats)",
        )
        expect_tensor(out, what, dtype=expected.dtype)
        if not torch.allclose(out, expected, rtol=1e-3, atol=1e-4):
            same_latent_effect(impl, out, model, sae, latent)
        catalogue = (
            logit_effect_mistakes(model, sae, latent)
            + logit_extra(model, sae, latent)
            + logit_slips(model, sae, latent)
            + logit_run_slips(model, sae, latent)
            + logit_normalised(model, sae, latent)
            + logit_rescaled(model, sae, latent)
            + logit_path_slips(model, sae, latent)
            + clipped_mutants(expected)
            + count_factors([("the right effect", expected, "")], {"d_mlp (the decoder row's length)": d_mlp})
            + slips.logit_two_slips(model, sae, latent)
        )
        if not any(torch.allclose(out, v, rtol=1e-3, atol=1e-4) for v in [expected] + [v for _, _, v in catalogue]):
            logit_row_shifted(out, expected, model, sae, latent)
            logit_affine(out, expected)
            sorted_effect(out, expected, f"the logit effect of latent {latent}")
        expect_matches(
            out,
            expected,
            f"the logit effect of latent {latent}",
            catalogue,
            rtol=1e-3,
            atol=1e-4,
            dims="d_vocab",
            hint="W_dec[latent] @ W_out[0] @ W_U",
            reference=call(ref.latent_logit_effect, model, sae, latent),
        )
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 5
# --------------------------------------------------------------------------------------------
def _busy_latent(model, sae, tokens: Tensor) -> int:
    """A latent that fires on many (but not all) positions of `tokens`, so its ablation shows."""
    freq = (sae.encode(mlp_acts(model, sae.hook_name, tokens))[:, 1:] > 0).float().mean((0, 1))
    return int(torch.where(freq < 0.5, freq, torch.zeros_like(freq)).argmax())


def _logits(out: Any, what: str, shape: tuple[int, ...], device: torch.device) -> Tensor:
    out = returned(out, what)
    if isinstance(out, Tensor) and out.dim() == 0 and out.device.type != "meta":
        fail(
            f"{what} returned a single number ({float(out):.4g}), expected logits of shape {shape}",
            "one number where logits were expected: a loss (return_type='loss' instead of the default "
            "'logits') or a reduction over every axis? return the model's logits",
            code="scalar",
        )
    return _float_tensor(returned(out, what), what, shape, "batch seq d_vocab", device, "return the model's logits")


def _positions_diagnosis(
    out: Tensor, expected: Tensor, unchanged: Tensor, f: Tensor, what: str, mistakes: list, todo: str
) -> None:
    """Name a change made at only some positions. In this one-layer model the logits at a position depend only on
    the hooked activation at that position, so each position's logits are either the changed or the unchanged
    ones; `f` [batch seq] is the latent's activation, to describe where the change was made."""
    out, expected, unchanged = (t.detach().double().cpu() for t in (out, expected, unchanged))
    if torch.allclose(out, expected, rtol=1e-4, atol=1e-4) or any(
        v.shape == out.shape and torch.allclose(out, v.double().cpu(), rtol=1e-4, atol=1e-4) for _, _, v in mistakes
    ):
        return
    rows = lambda x, y: torch.isclose(x, y, rtol=1e-4, atol=1e-4).all(-1)  # [batch seq]
    differs = ~rows(expected, unchanged)
    done, skipped = rows(out, expected) & differs, rows(out, unchanged) & differs
    if not bool((done | skipped)[differs].all()) or not done.any() or not skipped.any():
        return
    n_done, n_skipped = int(done.sum()), int(skipped.sum())
    f = f.detach().cpu()
    first = torch.zeros_like(differs)
    first[:, 0] = True
    if torch.equal(skipped, differs & first):
        where = "everywhere except position 0 (the BOS token, where the latent fires too)"
    elif slips.batch_rows_only(done, differs):
        where = slips.batch_rows_only(done, differs)
    elif torch.equal(done, differs & (f > 0)):
        where = "exactly at the positions where the latent already fires (f > 0)"
    elif torch.equal(done, differs & (f <= 0)):
        where = "exactly at the positions where the latent does not fire"
    elif float(f[done].min()) > float(f[skipped].max()):
        where = (
            f"exactly where the latent's activation is large (>= {float(f[done].min()):.3g} where it was made, "
            f"<= {float(f[skipped].max()):.3g} where not: a threshold on f?)"
        )
    else:
        b, p = (int(i) for i in skipped.nonzero()[0])
        where = f"e.g. not at batch {b}, seq {p}"
    fail(
        f"{what} are right at {n_done} positions and unchanged at the other {n_skipped} where they should change",
        f"the edit was made at only some positions, {where}: {todo}",
        code="some_positions",
    )


STEER_TODO = "add the vector at every position, whether or not the latent fires there"
STEER_FIX = (
    "steering does not depend on the activations at all: the vector added is coeff · W_dec[latent] at every "
    "position whatever the activations are (no f, max or mean of the latent scales it)"
)
ABLATE_TODO = "remove the latent's term f · W_dec[latent] wherever f > 0 (where f = 0 the term is 0 anyway)"


@checker("steer_with_latent", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_steer_with_latent(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens, latent, coeff = tokens[:3, :24], 7, 2.5
    what = "steer_with_latent(...)"
    with recorded_edits(model, sae.hook_name) as edits:
        out = _hooked(impl, model, sae, tokens.clone(), latent, coeff)
    out = _logits(out, what, (*tokens.shape, model.cfg.d_vocab), device)
    expected, mistakes = (
        ref.steer_with_latent(model, sae, tokens, latent, coeff),
        steer_mistakes(model, sae, tokens, latent, coeff)
        + steer_extra(model, sae, tokens, latent, coeff)
        + steer_slips(model, sae, tokens, latent, coeff)
        + fresh14_steer(model, sae, tokens, latent, coeff)
        + fresh15_steer(model, sae, tokens, latent, coeff)
        + steer_mlp_out(model, sae, tokens, latent, coeff),
    )
    steer_ref = unit_row_reference(out, expected, ref.steer_with_latent, model, sae, tokens, latent, coeff)
    expected = steer_ref(model, sae, tokens, latent, coeff)  # a row divided by its (unit) norm is a correct variant
    f = sae.encode(mlp_acts(model, sae.hook_name, tokens))[..., latent]
    _positions_diagnosis(out, expected, model(tokens), f, "the steered logits", mistakes, STEER_TODO)
    if not any(
        v.shape == out.shape and torch.allclose(out, v, rtol=1e-4, atol=1e-4)
        for v in [expected] + [v for _, _, v in mistakes]
    ):
        sequences_mixed(lambda t: impl(model, sae, t, latent, coeff), tokens, out, "the steered logits", STEER_FIX)
        steer_edit(edits, model, sae, tokens, latent, coeff, out, edits_rerun(impl, model, sae, tokens, latent))
    expect_matches(
        out,
        expected,
        "the steered logits",
        mistakes,
        rtol=1e-4,
        atol=1e-4,
        dims="batch seq d_vocab",
        hint="add coeff * W_dec[latent] at sae.hook_name, every position",
        reference=call(steer_ref, model, sae, tokens, latent, coeff),
    )
    again = lambda l2, c2: _logits(_hooked(impl, model, sae, tokens.clone(), l2, c2), what, out.shape, device)
    steer_second_call(again, steer_ref, model, sae, tokens, (latent, coeff), (sae.d_sae - 5, -1.7))
    return ""


@checker("ablate_latent", kind="function")
@guard_shared_modules(_setup)
@without_grad
def test_ablate_latent(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens = tokens[:3, :32]
    latent = _busy_latent(model, sae, tokens)
    what = "ablate_latent(...)"
    # A size d_sae in a learner's error is most often the whole decoder where its row W_dec[latent] belongs.
    note_inputs(**{"sae.W_dec.shape[0] (d_sae: all of W_dec where its row W_dec[latent] belongs?)": sae.d_sae})
    with recorded_edits(model, sae.hook_name) as edits:
        out = _hooked(impl, model, sae, tokens.clone(), latent)
    out = _logits(out, what, (*tokens.shape, model.cfg.d_vocab), device)
    expected = ref.ablate_latent(model, sae, tokens, latent)
    mistakes = ablate_mistakes(model, sae, tokens, latent) + ablate_extra(model, sae, tokens, latent)
    mistakes += ablate_slips(model, sae, tokens, latent)
    mistakes += first_sequence_f(model, sae, tokens, latent) + fresh14_ablate(model, sae, tokens, latent)
    mistakes += fresh15_ablate(model, sae, tokens, latent) + summed_ablate(model, sae, tokens, latent)
    mistakes += ablate_encodes(model, sae, tokens, latent)
    unchanged_but_edits(lambda lat: impl(model, sae, tokens.clone(), lat), model, sae, tokens, latent, out)
    f = sae.encode(mlp_acts(model, sae.hook_name, tokens))[..., latent]
    _positions_diagnosis(out, expected, model(tokens), f, "the ablated logits", mistakes, ABLATE_TODO)
    if not any(
        v.shape == out.shape and torch.allclose(out, v, rtol=1e-4, atol=1e-4)
        for v in [expected] + [v for _, _, v in mistakes]
    ):
        sequences_mixed(lambda t: impl(model, sae, t, latent), tokens, out, "the ablated logits")
        ablate_edit(edits, sae, latent, (model, tokens, out))
    expect_matches(
        out,
        expected,
        "the ablated logits",
        mistakes,
        rtol=1e-4,
        atol=1e-4,
        dims="batch seq d_vocab",
        hint="x ↦ x - f_latent(x) · W_dec[latent] at sae.hook_name",
        reference=call(ref.ablate_latent, model, sae, tokens, latent),
    )
    # The busy latent above is off at BOS; a second latent, one that fires at every BOS, shows an ablation that
    # skips position 0 (a slice [:, 1:] in the hook).
    bos_latent = _bos_latent(model, sae, tokens)
    out = _logits(impl(model, sae, tokens.clone(), bos_latent), what, (*tokens.shape, model.cfg.d_vocab), device)
    expected = ref.ablate_latent(model, sae, tokens, bos_latent)
    f = sae.encode(mlp_acts(model, sae.hook_name, tokens))[..., bos_latent]
    what = f"the ablated logits for latent {bos_latent} (it fires at BOS)"
    # the catalogue was matched on the busy latent; for this one (which fires at few positions) some of its
    # mutants coincide, so only the positions diagnosis, the generic ones and the first call's values are used here
    stale = ablate_second_call(model, sae, tokens, latent, bos_latent)
    _positions_diagnosis(out, expected, model(tokens), f, what, stale, ABLATE_TODO)
    expect_matches(
        out,
        expected,
        what,
        stale,
        rtol=1e-4,
        atol=1e-4,
        dims="batch seq d_vocab",
        hint="x ↦ x - f_latent(x) · W_dec[latent] at sae.hook_name, at every position (BOS included)",
        reference=call(ref.ablate_latent, model, sae, tokens, bos_latent),
    )
    return f"latent {latent} ablated"
