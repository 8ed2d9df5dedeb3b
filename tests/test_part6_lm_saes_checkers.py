"""Proofs for the part 6 checkers: correct variants (written differently) pass, realistic bugs fail with their code.

All exercises are deterministic functions of the shipped model and SAE, so the variants below are
compared through the checkers on those artifacts; nothing is trained here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from solutions import part6_lm_saes as ref
from tests.proving import assert_fails, assert_not_done, assert_passes, stub


# --------------------------------------------------------------------------------------------
# Exercise 1: latent_frequencies
# --------------------------------------------------------------------------------------------
def _acts(model, sae, batch, hook=None):
    name = hook or sae.hook_name
    _, cache = model.run_with_cache(batch, names_filter=name)
    return sae.encode(cache[name])


def freq_all_at_once(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).float().flatten(0, 1).mean(0)


def freq_with_hooks(model, sae, tokens, batch_size=32):
    total, seen = 0, 0
    for batch in tokens.split(batch_size):
        store: list = []
        model.run_with_hooks(batch, fwd_hooks=[(sae.hook_name, lambda act, hook, store=store: store.append(act))])
        fired = sae.encode(store[0][:, 1:]) > 0
        total = total + torch.count_nonzero(fired, dim=(0, 1))
        seen += fired.shape[0] * fired.shape[1]
    return total.float() / seen


def freq_weighted_batch_means(model, sae, tokens, batch_size=32):
    parts, weights = [], []
    for start in range(0, len(tokens), batch_size):
        acts = _acts(model, sae, tokens[start : start + batch_size])[:, 1:]
        parts.append(acts.gt(0).float().mean((0, 1)))
        weights.append(acts.shape[0])
    w = torch.tensor(weights, dtype=torch.float32, device=parts[0].device)
    return (torch.stack(parts) * w[:, None]).sum(0) / w.sum()


def freq_bug_bos(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens) > 0).float().mean((0, 1))


def freq_bug_geq(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] >= 0).float().mean((0, 1))


def freq_bug_mean_act(model, sae, tokens, batch_size=32):
    return _acts(model, sae, tokens)[:, 1:].mean((0, 1))


def freq_bug_first_batch(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens[:batch_size])[:, 1:] > 0).float().mean((0, 1))


def freq_bug_count(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).float().sum((0, 1))


def freq_bug_hook_pre(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens, "blocks.0.mlp.hook_pre")[:, 1:] > 0).float().mean((0, 1))


def freq_bug_bool(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).any(0).any(0)


def _freq_loop(count_of, denominator_of=None, batches_of=None, per_batch_mean=False):
    """The reference loop with one piece written wrong."""

    def impl(model, sae, tokens, batch_size=32):
        starts = batches_of(len(tokens), batch_size) if batches_of else range(0, len(tokens), batch_size)
        total, seen, means = 0, 0, []
        for start in starts:
            acts = _acts(model, sae, tokens[start : start + batch_size])
            fired = count_of(acts)
            total = total + fired.sum((0, 1))
            seen += fired.shape[0] * fired.shape[1]
            means.append(fired.mean((0, 1)))
        if per_batch_mean:
            return torch.stack(means).mean(0)
        return total / (denominator_of(tokens, batch_size, len(starts)) if denominator_of else seen)

    return impl


after_bos = lambda acts: (acts[:, 1:] > 0).float()
freq_bug_batch_means = _freq_loop(after_bos, per_batch_mean=True)
freq_bug_last_batch = _freq_loop(after_bos, batches_of=lambda n, b: range(0, n - b + 1, b))
freq_bug_partial_batch = _freq_loop(after_bos, denominator_of=lambda t, b, n: n * b * (t.shape[1] - 1))
freq_bug_token_count = _freq_loop(after_bos, denominator_of=lambda t, b, n: t.numel())
freq_bug_last_position = _freq_loop(lambda acts: (acts[:, :-1] > 0).float())


def freq_bug_any_token(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).flatten(0, 1).any(0).float()


def freq_bug_per_sequence(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).any(1).float().mean(0)


def freq_bug_divide_by_sequences(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).float().sum((0, 1)) / len(tokens)


def test_latent_frequencies_correct():
    for impl in (ref.latent_frequencies, freq_all_at_once, freq_with_hooks, freq_weighted_batch_means):
        assert_passes(checks.test_latent_frequencies, impl)


FREQ_BUGS = {
    "bos": freq_bug_bos,
    "threshold": freq_bug_geq,
    "mean_activation": freq_bug_mean_act,
    "batches": freq_bug_first_batch,
    "count": freq_bug_count,
    "normalisation": freq_bug_divide_by_sequences,
    "hook": freq_bug_hook_pre,
    "dtype": freq_bug_bool,
    "batch_means": freq_bug_batch_means,
    "last_batch": freq_bug_last_batch,
    "partial_batch": freq_bug_partial_batch,
    "token_count": freq_bug_token_count,
    "last_position": freq_bug_last_position,
    "any_token": freq_bug_any_token,
    "per_sequence": freq_bug_per_sequence,
}


@pytest.mark.parametrize("code", list(FREQ_BUGS))
def test_latent_frequencies_buggy(code):
    assert_fails(checks.test_latent_frequencies, FREQ_BUGS[code], code)


def test_latent_frequencies_stub():
    assert_not_done(checks.test_latent_frequencies, stub)


# --------------------------------------------------------------------------------------------
# Exercise 2: reconstruction_losses
# --------------------------------------------------------------------------------------------
def _losses(model, sae, tokens, splice, ablate, clean_fn=None):
    clean = clean_fn(tokens) if clean_fn else model(tokens, return_type="loss").item()
    spliced = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, splice)]).item()
    zero = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, ablate)]).item()
    return clean, spliced, zero


def losses_per_token(model, sae, tokens):
    def run(fn=None):
        hooks = [(sae.hook_name, fn)] if fn else []
        return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks).mean().item()

    clean, spliced = run(), run(lambda a, hook: sae(a))
    zero = run(lambda a, hook: a * 0)
    return {
        "clean": clean,
        "spliced": spliced,
        "zero_ablated": zero,
        "recovered": 1 - (spliced - clean) / (zero - clean),
    }


def losses_inplace(model, sae, tokens):
    def set_recon(act, hook):
        act[:] = sae.decode(sae.encode(act))

    def set_zero(act, hook):
        act.zero_()

    clean, spliced, zero = _losses(model, sae, tokens, set_recon, set_zero)
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": (zero - spliced) / (zero - clean)}


def losses_manual_ce(model, sae, tokens):
    """Cross-entropy by hand from the logits (shifted by one), hooks attached with a context manager."""

    def ce(logits):
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()

    clean = ce(model(tokens))
    with model.hooks(fwd_hooks=[(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))]):
        spliced = ce(model(tokens))
    with model.hooks(fwd_hooks=[(sae.hook_name, lambda a, hook: torch.zeros_like(a))]):
        zero = ce(model(tokens))
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": (zero - spliced) / (zero - clean)}


def losses_tensors(model, sae, tokens):
    """0-dim tensors instead of floats (the given cell after the exercise formats floats)."""
    with model.hooks(fwd_hooks=[(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))]):
        spliced = model(tokens, return_type="loss")
    with model.hooks(fwd_hooks=[(sae.hook_name, lambda a, hook: torch.zeros_like(a))]):
        zero = model(tokens, return_type="loss")
    clean = model(tokens, return_type="loss")
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": (zero - spliced) / (zero - clean)}


def _buggy_losses(recovered=None, splice_fn=None, ablate_fn=None, clean_fn=None):
    def impl(model, sae, tokens):
        s = splice_fn or (lambda a, hook: sae.decode(sae.encode(a)))
        z = ablate_fn or (lambda a, hook: torch.zeros_like(a))
        clean, spliced, zero = _losses(model, sae, tokens, s, z, clean_fn and (lambda t: clean_fn(model, t)))
        r = recovered(clean, spliced, zero) if recovered else (zero - spliced) / (zero - clean)
        return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": r}

    return impl


def _clean_skip_first(model, tokens):
    return model(tokens, return_type="loss", loss_per_token=True)[:, 1:].mean().item()


def _clean_not_shifted(model, tokens):
    return F.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten()).item()


def _clean_sum(model, tokens):
    return model(tokens, return_type="loss", loss_per_token=True).sum().item()


def _splice_after_bos(sae):
    return lambda a, hook: torch.cat([a[:, :1], sae.decode(sae.encode(a[:, 1:]))], 1)


def test_reconstruction_losses_correct():
    for impl in (ref.reconstruction_losses, losses_per_token, losses_inplace, losses_manual_ce):
        assert_passes(checks.test_reconstruction_losses, impl)


def _splice_with(make):
    """A splice hook that needs the SAE: `make(sae)` returns the hook."""

    def impl(model, sae, tokens):
        return _buggy_losses(splice_fn=make(sae))(model, sae, tokens)

    return impl


def _ablate_with(name=None, make=None):
    def impl(model, sae, tokens):
        z = make(sae) if make else (lambda a, hook: torch.zeros_like(a))
        clean = model(tokens, return_type="loss").item()
        spliced = model.run_with_hooks(
            tokens, return_type="loss", fwd_hooks=[(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))]
        ).item()
        zero = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name or sae.hook_name, z)]).item()
        return {
            "clean": clean,
            "spliced": spliced,
            "zero_ablated": zero,
            "recovered": (zero - spliced) / (zero - clean),
        }

    return impl


def _per_token_losses(model, sae, tokens):
    out = ref.reconstruction_losses(model, sae, tokens)
    return {**out, "clean": model(tokens, return_type="loss", loss_per_token=True)}


LOSS_BUGS = {
    "recovered_lost": _buggy_losses(recovered=lambda c, s, z: (s - c) / (z - c)),
    "recovered_ratio": _buggy_losses(recovered=lambda c, s, z: c / s),
    "recovered_percent": _buggy_losses(recovered=lambda c, s, z: 100 * (z - s) / (z - c)),
    "recovered_denominator": _buggy_losses(recovered=lambda c, s, z: (z - s) / (s - c)),
    "recovered_no_baseline": _buggy_losses(recovered=lambda c, s, z: (z - s) / z),
    "no_splice": _buggy_losses(splice_fn=lambda a, hook: None),
    "mean_ablation": _buggy_losses(ablate_fn=lambda a, hook: a.mean((0, 1), keepdim=True).expand_as(a)),
    "spliced": _buggy_losses(splice_fn=lambda a, hook: torch.cat([a[:, :1], a[:, 1:] * 0.5], 1)),
    "clean_positions": _buggy_losses(clean_fn=_clean_skip_first),
    "not_shifted": _buggy_losses(clean_fn=_clean_not_shifted),
    "clean_sum": _buggy_losses(clean_fn=_clean_sum),
    "decode_bias": _splice_with(lambda sae: lambda a, hook: sae.encode(a) @ sae.W_dec),
    "encode_bias": _splice_with(lambda sae: lambda a, hook: sae.decode(torch.relu(a @ sae.W_enc + sae.b_enc))),
    "spliced_positions": _splice_with(_splice_after_bos),
    "error_only": _splice_with(lambda sae: lambda a, hook: a - sae.decode(sae.encode(a))),
    "spliced_hook": lambda m, s, t: {
        **ref.reconstruction_losses(m, s, t),
        "spliced": m.run_with_hooks(
            t, return_type="loss", fwd_hooks=[("blocks.0.mlp.hook_pre", lambda a, hook: s.decode(s.encode(a)))]
        ).item(),
    },
    "no_ablation": _buggy_losses(
        ablate_fn=lambda a, hook: None, recovered=lambda c, s, z: (z - s) / (z - c) if z != c else float("inf")
    ),
    "zero_hook": _ablate_with(name="blocks.0.hook_mlp_out"),
    "ablate_latents": _ablate_with(make=lambda sae: lambda a, hook: sae.decode(torch.zeros_like(sae.encode(a)))),
    "keys": lambda m, s, t: {"clean": 1.0, "spliced": 1.0, "zero": 1.0, "recovered": 1.0},
    "not_float": losses_tensors,
    "not_dict": lambda m, s, t: tuple(ref.reconstruction_losses(m, s, t).values()),
    "not_scalar": _per_token_losses,
}


@pytest.mark.parametrize("code", list(LOSS_BUGS))
def test_reconstruction_losses_buggy(code):
    assert_fails(checks.test_reconstruction_losses, LOSS_BUGS[code], code)


def test_reconstruction_losses_stub():
    assert_not_done(checks.test_reconstruction_losses, stub)


# --------------------------------------------------------------------------------------------
# Exercise 3: top_activations
# --------------------------------------------------------------------------------------------
def top_unravel(acts, k):
    masked = torch.cat([torch.full_like(acts[:, :1], -torch.inf), acts[:, 1:]], dim=1)
    values, flat = masked.reshape(-1).topk(k)
    seq_idx, pos_idx = torch.unravel_index(flat, acts.shape)
    return values, seq_idx, pos_idx


def top_sort(acts, k):
    body = acts[:, 1:]
    values, order = body.flatten().sort(descending=True)
    n = body.shape[1]
    return values[:k], order[:k] // n, order[:k] % n + 1


def top_argsort_loop(acts, k):
    pairs = sorted(
        ((float(acts[s, p]), s, p) for s in range(acts.shape[0]) for p in range(1, acts.shape[1])), reverse=True
    )[:k]
    values = torch.tensor([v for v, _, _ in pairs], device=acts.device, dtype=acts.dtype)
    return (
        values,
        torch.tensor([s for _, s, _ in pairs], device=acts.device),
        torch.tensor([p for _, _, p in pairs], device=acts.device),
    )


def top_bug_bos(acts, k):
    values, flat = acts.flatten().topk(k)
    return values, flat // acts.shape[1], flat % acts.shape[1]


def top_bug_ascending(acts, k):
    masked = acts.clone()
    masked[:, 0] = float("inf")
    values, flat = masked.flatten().topk(k, largest=False)
    return values, flat // acts.shape[1], flat % acts.shape[1]


def top_bug_unravel(acts, k):
    masked = acts.clone()
    masked[:, 0] = -float("inf")
    values, flat = masked.flatten().topk(k)
    return values, flat % acts.shape[0], flat // acts.shape[0]


def top_bug_per_sequence(acts, k):
    values, pos = acts[:, 1:].max(dim=1)
    top, seq = values.topk(k)
    return top, seq, pos[seq] + 1


def top_bug_inplace(acts, k):
    acts[:, 0] = -float("inf")
    values, flat = acts.flatten().topk(k)
    return values, flat // acts.shape[1], flat % acts.shape[1]


def top_bug_float_idx(acts, k):
    values, seq, pos = ref.top_activations(acts, k)
    return values, seq.float(), pos.float()


def top_min_mask(acts, k):
    """Position 0 set below the smallest entry instead of -inf."""
    masked = acts.clone()
    masked[:, 0] = acts.min() - 1
    values, flat = torch.topk(masked.reshape(-1), k)
    return values, torch.div(flat, acts.shape[1], rounding_mode="floor"), torch.remainder(flat, acts.shape[1])


def top_bug_pos_offset(acts, k):
    values, flat = acts[:, 1:].flatten().topk(k)
    return values, flat // (acts.shape[1] - 1), flat % (acts.shape[1] - 1)


def top_bug_seq_len_offset(acts, k):
    values, flat = acts[:, 1:].flatten().topk(k)
    return values, flat // acts.shape[1], flat % acts.shape[1] + 1


def top_bug_reversed(acts, k):
    """Sorted ascending, then the last k: the right entries, smallest first."""
    body = acts.clone()
    body[:, 0] = -float("inf")
    values, order = body.flatten().sort()
    values, order = values[-k:], order[-k:]
    return values, order // acts.shape[1], order % acts.shape[1]


def top_bug_swapped(acts, k):
    values, seq, pos = ref.top_activations(acts, k)
    return values, pos, seq


def top_bug_first_sequence(acts, k):
    values, flat = acts[1:].flatten().topk(k)
    return values, flat // acts.shape[1] + 1, flat % acts.shape[1]


def top_bug_flat_index(acts, k):
    masked = acts.clone()
    masked[:, 0] = -float("inf")
    return masked.flatten().topk(k)


def top_bug_python_lists(acts, k):
    values, seq, pos = ref.top_activations(acts, k)
    return values.tolist(), seq.tolist(), pos.tolist()


def test_top_activations_correct():
    for impl in (ref.top_activations, top_unravel, top_sort, top_argsort_loop, top_min_mask):
        assert_passes(checks.test_top_activations, impl)


TOP_BUGS = {
    "bos": top_bug_bos,
    "smallest": top_bug_ascending,
    "order": top_bug_reversed,
    "unravel": top_bug_unravel,
    "per_sequence": top_bug_per_sequence,
    "inplace": top_bug_inplace,
    "dtype": top_bug_float_idx,
    "pos_offset": top_bug_pos_offset,
    "seq_len_offset": top_bug_seq_len_offset,
    "swapped": top_bug_swapped,
    "first_sequence": top_bug_first_sequence,
    "not_tuple": top_bug_flat_index,
    "not_tensor": top_bug_python_lists,
}


@pytest.mark.parametrize("code", list(TOP_BUGS))
def test_top_activations_buggy(code):
    assert_fails(checks.test_top_activations, TOP_BUGS[code], code)


def test_top_activations_stub():
    assert_not_done(checks.test_top_activations, stub)


# --------------------------------------------------------------------------------------------
# Exercise 4: latent_logit_effect
# --------------------------------------------------------------------------------------------
def effect_einsum(model, sae, latent):
    return torch.einsum("i,io,ov->v", sae.W_dec[latent], model.W_out[0], model.W_U)


def effect_all_then_index(model, sae, latent):
    return (sae.W_dec @ (model.W_out[0] @ model.W_U))[latent]


def effect_double(model, sae, latent):
    d = sae.W_dec[latent].double()
    return (d @ model.W_out[0].double() @ model.W_U.double()).float()


def test_latent_logit_effect_correct():
    for impl in (ref.latent_logit_effect, effect_einsum, effect_all_then_index, effect_double):
        assert_passes(checks.test_latent_logit_effect, impl)


LOGIT_BUGS = {
    "encoder": lambda m, s, i: s.W_enc[:, i] @ m.W_out[0] @ m.W_U,
    "b_dec": lambda m, s, i: (s.W_dec[i] + s.b_dec) @ m.W_out[0] @ m.W_U,
    "b_out": lambda m, s, i: (s.W_dec[i] @ m.W_out[0] + m.b_out[0]) @ m.W_U,
    "b_U": lambda m, s, i: s.W_dec[i] @ m.W_out[0] @ m.W_U + m.b_U,
    "embed": lambda m, s, i: s.W_dec[i] @ m.W_out[0] @ m.W_E.T,
    "w_in": lambda m, s, i: s.W_dec[i] @ m.W_in[0].T @ m.W_U,
    "softmax": lambda m, s, i: (s.W_dec[i] @ m.W_out[0] @ m.W_U).softmax(-1),
    "log_softmax": lambda m, s, i: (s.W_dec[i] @ m.W_out[0] @ m.W_U).log_softmax(-1),
    "latent_index": lambda m, s, i: (
        s.W_dec[i + 1] @ m.W_out[0] @ m.W_U if i + 1 < s.d_sae else s.W_dec[0] @ m.W_out[0] @ m.W_U
    ),
    "normalised": lambda m, s, i: torch.nn.functional.normalize(s.W_dec[i] @ m.W_out[0] @ m.W_U, dim=0),
    "sign": lambda m, s, i: -(s.W_dec[i] @ m.W_out[0] @ m.W_U),
    "scale": lambda m, s, i: s.W_dec[i] @ m.W_out[0] @ m.W_U * 3.0,
    "missing_W_out": lambda m, s, i: s.W_dec[i] @ m.W_U,
    "shape": lambda m, s, i: (s.W_dec[i] @ m.W_out[0] @ m.W_U)[None],
}


@pytest.mark.parametrize("code", list(LOGIT_BUGS))
def test_latent_logit_effect_buggy(code):
    assert_fails(checks.test_latent_logit_effect, LOGIT_BUGS[code], code)


def test_latent_logit_effect_stub():
    assert_not_done(checks.test_latent_logit_effect, stub)


# --------------------------------------------------------------------------------------------
# Exercise 5: steer_with_latent and ablate_latent
# --------------------------------------------------------------------------------------------
def steer_inplace(model, sae, tokens, latent, coeff):
    def hook_fn(act, hook):
        act += coeff * sae.W_dec[latent]
        return act

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])


def steer_context(model, sae, tokens, latent, coeff):
    vec = (sae.W_dec[latent] / sae.W_dec[latent].norm()) * coeff  # rows are unit norm: the same vector
    with model.hooks(fwd_hooks=[(sae.hook_name, lambda a, hook: a + vec[None, None])]):
        return model(tokens)


def steer_via_decode(model, sae, tokens, latent, coeff):
    def hook_fn(act, hook):
        f = torch.zeros(*act.shape[:-1], sae.d_sae, device=act.device)
        f[..., latent] = coeff
        return act + sae.decode(f) - sae.b_dec

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])


def _steer(hook_name=None, vector=None, last_only=False, post=None):
    def impl(model, sae, tokens, latent, coeff):
        v = vector(sae, latent, coeff) if vector else coeff * sae.W_dec[latent]

        def hook_fn(act, hook):
            if last_only:
                act[:, -1] += v
                return act
            return act + v

        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name or sae.hook_name, hook_fn)])
        return post(logits) if post else logits

    return impl


def test_steer_with_latent_correct():
    for impl in (ref.steer_with_latent, steer_inplace, steer_context, steer_via_decode):
        assert_passes(checks.test_steer_with_latent, impl)


def _steer_after_bos(model, sae, tokens, latent, coeff):
    def hook_fn(act, hook):
        act = act.clone()
        act[:, 1:] += coeff * sae.W_dec[latent]
        return act

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])


STEER_BUGS = {
    "encoder": _steer(vector=lambda s, i, c: c * s.W_enc[:, i]),
    "coeff": _steer(vector=lambda s, i, c: s.W_dec[i]),
    "positions": _steer(last_only=True),
    "hook": _steer(hook_name="blocks.0.mlp.hook_pre"),
    "logits": _steer(post=lambda x: x.log_softmax(-1)),
    "probs": _steer(post=lambda x: x.softmax(-1)),
    "noop": lambda m, s, t, i, c: m.run_with_hooks(t, fwd_hooks=[(s.hook_name, lambda a, hook: None)]),
    "positions_bos": _steer_after_bos,
    "sign": _steer(vector=lambda s, i, c: -c * s.W_dec[i]),
    "replaced": lambda m, s, t, i, c: m.run_with_hooks(
        t, fwd_hooks=[(s.hook_name, lambda a, hook: torch.zeros_like(a) + c * s.W_dec[i])]
    ),
    "bias": _steer(vector=lambda s, i, c: c * s.W_dec[i] + s.b_dec),
    "latent_index": _steer(vector=lambda s, i, c: c * s.W_dec[i + 1]),
    "steer_coeff": _steer(vector=lambda s, i, c: c * c * s.W_dec[i]),  # read off the hook's edit (coeff² named)
    "shape": _steer(post=lambda x: x[:, -1]),
}


@pytest.mark.parametrize("code", list(STEER_BUGS))
def test_steer_with_latent_buggy(code):
    assert_fails(checks.test_steer_with_latent, STEER_BUGS[code], code)


def test_steer_with_latent_stub():
    assert_not_done(checks.test_steer_with_latent, stub)


def ablate_decode_difference(model, sae, tokens, latent):
    def hook_fn(act, hook):
        f = sae.encode(act)
        kept = f.clone()
        kept[..., latent] = 0
        return act - (sae.decode(f) - sae.decode(kept))

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])


def ablate_einsum(model, sae, tokens, latent):
    def hook_fn(act, hook):
        f = torch.relu((act - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent])
        return act - torch.einsum("bs,d->bsd", f, sae.W_dec[latent])

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])


def ablate_error_plus_recon(model, sae, tokens, latent):
    def hook_fn(act, hook):
        f = sae.encode(act)
        error = act - sae.decode(f)
        f[..., latent] = 0
        return sae.decode(f) + error

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])


def _ablate(hook_fn_of):
    def impl(model, sae, tokens, latent):
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn_of(sae, latent))])

    return impl


def test_ablate_latent_correct():
    for impl in (ref.ablate_latent, ablate_decode_difference, ablate_einsum, ablate_error_plus_recon):
        assert_passes(checks.test_ablate_latent, impl)


def _recon_without(sae, latent):
    def hook_fn(act, hook):
        f = sae.encode(act)
        f[..., latent] = 0
        return sae.decode(f)

    return hook_fn


def _last_only(sae, latent):
    def hook_fn(act, hook):
        act = act.clone()
        f = sae.encode(act[:, -1])[..., latent, None]
        act[:, -1] -= f * sae.W_dec[latent]
        return act

    return hook_fn


f_of = lambda s, i, a: s.encode(a)[..., i, None]
ABLATE_BUGS = {
    "error_term": _ablate(_recon_without),
    "scale": _ablate(lambda s, i: lambda a, hook: a - s.W_dec[i]),
    "encoder": _ablate(lambda s, i: lambda a, hook: a - f_of(s, i, a) * s.W_enc[:, i]),
    "bias": _ablate(lambda s, i: lambda a, hook: a - f_of(s, i, a) * s.W_dec[i] - s.b_dec),
    "noop": _ablate(lambda s, i: lambda a, hook: None),
    "sign": _ablate(lambda s, i: lambda a, hook: a + f_of(s, i, a) * s.W_dec[i]),
    "no_relu": _ablate(
        lambda s, i: lambda a, hook: a - ((a - s.b_dec) @ s.W_enc[:, i] + s.b_enc[i])[..., None] * s.W_dec[i]
    ),
    "encode_no_b_dec": _ablate(
        lambda s, i: lambda a, hook: a - torch.relu(a @ s.W_enc[:, i] + s.b_enc[i])[..., None] * s.W_dec[i]
    ),
    "all_latents": _ablate(lambda s, i: lambda a, hook: a - s.encode(a) @ s.W_dec),
    "positions": _ablate(_last_only),
    "mean_activation": _ablate(lambda s, i: lambda a, hook: a - f_of(s, i, a).mean((0, 1), keepdim=True) * s.W_dec[i]),
    "values": _ablate(lambda s, i: lambda a, hook: a - (0.5 * f_of(s, i, a) + 0.1) * s.W_dec[i]),  # 0.5·f: named
}


@pytest.mark.parametrize("code", list(ABLATE_BUGS))
def test_ablate_latent_buggy(code):
    assert_fails(checks.test_ablate_latent, ABLATE_BUGS[code], code)


def test_ablate_latent_logits_not_log_probs():
    def log_probs(model, sae, tokens, latent):
        return ref.ablate_latent(model, sae, tokens, latent).log_softmax(-1)

    assert_fails(checks.test_ablate_latent, log_probs, "logits")
    assert_not_done(checks.test_ablate_latent, stub)
