"""Proofs for the part 6 checkers: correct variants (written differently) pass, realistic bugs fail with their code.

All exercises are deterministic functions of the shipped model and SAE, so the variants below are
compared through the checkers on those artifacts; nothing is trained here.
"""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from solutions import part6_lm_saes as ref
from tests.proving import assert_fails, assert_not_done, assert_passes


def stub(*args, **kwargs):
    raise NotImplementedError("not implemented yet")


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


def freq_bug_per_sequence(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).float().sum((0, 1)) / len(tokens)


def freq_bug_hook_pre(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens, "blocks.0.mlp.hook_pre")[:, 1:] > 0).float().mean((0, 1))


def freq_bug_bool(model, sae, tokens, batch_size=32):
    return (_acts(model, sae, tokens)[:, 1:] > 0).any(0).any(0)


def test_latent_frequencies_correct():
    for impl in (ref.latent_frequencies, freq_all_at_once, freq_with_hooks, freq_weighted_batch_means):
        assert_passes(checks.test_latent_frequencies, impl)


def test_latent_frequencies_buggy():
    assert_fails(checks.test_latent_frequencies, freq_bug_bos, "bos")
    assert_fails(checks.test_latent_frequencies, freq_bug_geq, "threshold")
    assert_fails(checks.test_latent_frequencies, freq_bug_mean_act, "mean_activation")
    assert_fails(checks.test_latent_frequencies, freq_bug_first_batch, "batches")
    assert_fails(checks.test_latent_frequencies, freq_bug_count, "count")
    assert_fails(checks.test_latent_frequencies, freq_bug_per_sequence, "normalisation")
    assert_fails(checks.test_latent_frequencies, freq_bug_hook_pre, "hook")
    assert_fails(checks.test_latent_frequencies, freq_bug_bool, "dtype")
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


def losses_tensors(model, sae, tokens):
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


def test_reconstruction_losses_correct():
    for impl in (ref.reconstruction_losses, losses_per_token, losses_inplace, losses_tensors):
        assert_passes(checks.test_reconstruction_losses, impl)


def test_reconstruction_losses_buggy():
    lost = lambda c, s, z: (s - c) / (z - c)
    assert_fails(checks.test_reconstruction_losses, _buggy_losses(recovered=lost), "recovered_formula")
    ratio = lambda c, s, z: c / s
    assert_fails(checks.test_reconstruction_losses, _buggy_losses(recovered=ratio), "recovered_formula")
    forgot_return = lambda a, hook: None
    assert_fails(checks.test_reconstruction_losses, _buggy_losses(splice_fn=forgot_return), "no_splice")
    mean_ablation = lambda a, hook: a.mean((0, 1), keepdim=True).expand_as(a)
    assert_fails(checks.test_reconstruction_losses, _buggy_losses(ablate_fn=mean_ablation), "ablation")
    encode_only_pos = lambda a, hook: torch.cat([a[:, :1], a[:, 1:] * 0.5], 1)
    assert_fails(checks.test_reconstruction_losses, _buggy_losses(splice_fn=encode_only_pos), "spliced")
    assert_fails(checks.test_reconstruction_losses, _buggy_losses(clean_fn=_clean_skip_first), "clean")
    wrong_keys = lambda m, s, t: {"clean": 1.0, "spliced": 1.0, "zero": 1.0, "recovered": 1.0}
    assert_fails(checks.test_reconstruction_losses, wrong_keys, "keys")
    assert_not_done(checks.test_reconstruction_losses, stub)


# --------------------------------------------------------------------------------------------
# Exercise 3: top_activations
# --------------------------------------------------------------------------------------------
def top_unravel(acts, k):
    masked = torch.cat([torch.full_like(acts[:, :1], -1.0), acts[:, 1:]], dim=1)
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


def test_top_activations_correct():
    for impl in (ref.top_activations, top_unravel, top_sort, top_argsort_loop):
        assert_passes(checks.test_top_activations, impl)


def test_top_activations_buggy():
    assert_fails(checks.test_top_activations, top_bug_bos, "bos")
    assert_fails(checks.test_top_activations, top_bug_ascending, "order")
    assert_fails(checks.test_top_activations, top_bug_unravel, "unravel")
    assert_fails(checks.test_top_activations, top_bug_per_sequence, "per_sequence")
    assert_fails(checks.test_top_activations, top_bug_inplace, "inplace")
    assert_fails(checks.test_top_activations, top_bug_float_idx, "dtype")
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


def test_latent_logit_effect_buggy():
    cases = {
        "encoder": lambda m, s, i: s.W_enc[:, i] @ m.W_out[0] @ m.W_U,
        "bias": lambda m, s, i: (s.W_dec[i] + s.b_dec) @ m.W_out[0] @ m.W_U,
        "embed": lambda m, s, i: s.W_dec[i] @ m.W_out[0] @ m.W_E.T,
        "w_in": lambda m, s, i: s.W_dec[i] @ m.W_in[0].T @ m.W_U,
        "softmax": lambda m, s, i: (s.W_dec[i] @ m.W_out[0] @ m.W_U).softmax(-1),
    }
    for code, impl in cases.items():
        assert_fails(checks.test_latent_logit_effect, impl, code)
    with_b_out = lambda m, s, i: (s.W_dec[i] @ m.W_out[0] + m.b_out[0]) @ m.W_U
    assert_fails(checks.test_latent_logit_effect, with_b_out, "bias")
    no_w_out = lambda m, s, i: s.W_dec[i] @ m.W_U
    assert_fails(checks.test_latent_logit_effect, no_w_out, "exception")
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


def test_steer_with_latent_buggy():
    assert_fails(checks.test_steer_with_latent, _steer(vector=lambda s, i, c: c * s.W_enc[:, i]), "encoder")
    assert_fails(checks.test_steer_with_latent, _steer(vector=lambda s, i, c: s.W_dec[i]), "coeff")
    assert_fails(checks.test_steer_with_latent, _steer(last_only=True), "positions")
    assert_fails(checks.test_steer_with_latent, _steer(hook_name="blocks.0.mlp.hook_pre"), "hook")
    assert_fails(checks.test_steer_with_latent, _steer(post=lambda x: x.log_softmax(-1)), "logits")
    no_return = lambda m, s, t, i, c: m.run_with_hooks(t, fwd_hooks=[(s.hook_name, lambda a, hook: None)])
    assert_fails(checks.test_steer_with_latent, no_return, "noop")
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


def test_ablate_latent_buggy():
    f_of = lambda s, i, a: s.encode(a)[..., i, None]
    assert_fails(checks.test_ablate_latent, _ablate(_recon_without), "error_term")
    assert_fails(checks.test_ablate_latent, _ablate(lambda s, i: lambda a, hook: a - s.W_dec[i]), "scale")
    enc = lambda s, i: lambda a, hook: a - f_of(s, i, a) * s.W_enc[:, i]
    assert_fails(checks.test_ablate_latent, _ablate(enc), "encoder")
    bias = lambda s, i: lambda a, hook: a - f_of(s, i, a) * s.W_dec[i] - s.b_dec
    assert_fails(checks.test_ablate_latent, _ablate(bias), "bias")
    assert_fails(checks.test_ablate_latent, _ablate(lambda s, i: lambda a, hook: None), "noop")
    assert_not_done(checks.test_ablate_latent, stub)
