"""More proofs for the part 6 checkers: mistakes and correct variants from a held-out trial (mistakes nobody
had listed), each named by its own code. The main proofs are in test_part6_lm_saes_checkers.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from solutions import part6_lm_saes as ref
from tests.proving import assert_fails, assert_passes

HOOK_PRE = "blocks.0.mlp.hook_pre"


def _cache(model, sae, batch):
    _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
    return cache[sae.hook_name]


# --------------------------------------------------------------------------------------------
# latent_frequencies
# --------------------------------------------------------------------------------------------
def freq_count_nonzero(model, sae, tokens, batch_size=32):
    """Correct: count_nonzero over tokens.split, the denominator from numel."""
    count, n = 0, 0
    for chunk in tokens.split(batch_size):
        fired = sae.encode(_cache(model, sae, chunk))[:, 1:] > 0
        count = count + torch.count_nonzero(fired, dim=(0, 1))
        n += fired[..., 0].numel()
    return count.float() / n


def _freq(kind):
    def impl(model, sae, tokens, batch_size=32):
        count, n = 0, 0
        for start in range(0, tokens.shape[0], batch_size):
            acts = sae(_cache(model, sae, tokens[start : start + batch_size]))  # sae(x) only matters for "forward"
            if kind != "forward":
                acts = sae.encode(_cache(model, sae, tokens[start : start + batch_size]))
            acts = acts[1:] if kind == "first_sequence" else acts[:, 1:]
            fired = (acts > 0).float().sum((0, 1))
            count = fired if kind == "accumulate" else count + fired
            n += acts.shape[0] * acts.shape[1]
        return count / n

    return impl


def test_latent_frequencies_heldout_variants():
    assert_passes(checks.test_latent_frequencies, freq_count_nonzero)


@pytest.mark.parametrize(
    ("code", "kind"), [("first_sequence", "first_sequence"), ("accumulate", "accumulate"), ("shape", "forward")]
)
def test_latent_frequencies_heldout_bugs(code, kind):
    failure = assert_fails(checks.test_latent_frequencies, _freq(kind), code)
    if kind == "forward":
        assert "d_mlp" in failure.hint


# --------------------------------------------------------------------------------------------
# reconstruction_losses
# --------------------------------------------------------------------------------------------
def _loss(model, tokens, name=None, fn=None):
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name, fn)] if fn else []).item()


def losses_forward(model, sae, tokens):
    """Correct: sae(act) as the reconstruction, act * 0, and recovered as 1 - the gap ratio."""
    c = _loss(model, tokens)
    s = _loss(model, tokens, sae.hook_name, lambda a, hook: sae(a))
    z = _loss(model, tokens, sae.hook_name, lambda a, hook: a * 0.0)
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": 1 - (s - c) / (z - c)}


def _losses(clean=None, splice=None, ablate=None, ablate_hook=None, recovered=None, swap=False):
    def impl(model, sae, tokens):
        c = clean(model, tokens) if clean else _loss(model, tokens)
        s = _loss(model, tokens, sae.hook_name, splice(sae) if splice else lambda a, hook: sae.decode(sae.encode(a)))
        z = _loss(model, tokens, ablate_hook or sae.hook_name, ablate or (lambda a, hook: torch.zeros_like(a)))
        r = recovered(c, s, z) if recovered else (z - s) / (z - c)
        return {"clean": c, "spliced": z if swap else s, "zero_ablated": s if swap else z, "recovered": r}

    return impl


def test_reconstruction_losses_heldout_variants():
    assert_passes(checks.test_reconstruction_losses, losses_forward)


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("keys_swapped", _losses(swap=True)),
        ("no_relu", _losses(splice=lambda sae: lambda a, hook: sae.decode((a - sae.b_dec) @ sae.W_enc + sae.b_enc))),
        ("mean_ablation", _losses(ablate=lambda a, hook: a.mean(0, keepdim=True).expand_as(a).clone())),
        ("zero_hook", _losses(ablate_hook="blocks.0.hook_resid_post")),
        ("recovered_inverted", _losses(recovered=lambda c, s, z: (z - c) / (z - s))),
        ("clean_no_bos", _losses(clean=lambda model, tokens: _loss(model, tokens[:, 1:]))),
    ],
)
def test_reconstruction_losses_heldout_bugs(code, impl):
    assert_fails(checks.test_reconstruction_losses, impl, code)


# --------------------------------------------------------------------------------------------
# top_activations
# --------------------------------------------------------------------------------------------
def top_unravel_index(acts, k):
    """Correct: topk on acts[:, 1:], torch.unravel_index, then +1 on the position."""
    values, flat = acts[:, 1:].reshape(-1).topk(k)
    s, p = torch.unravel_index(flat, (acts.shape[0], acts.shape[1] - 1))
    return values, s, p + 1


def top_skip_first(acts, k):
    values, flat = acts.flatten().topk(k + 1)
    return values[1:], flat[1:] // acts.shape[1], flat[1:] % acts.shape[1]


def top_mask_sequence_too(acts, k):
    masked = acts.clone()
    masked[0] = -torch.inf
    masked[:, 0] = -torch.inf
    values, flat = masked.flatten().topk(k)
    return values, flat // acts.shape[1], flat % acts.shape[1]


def test_top_activations_heldout():
    assert_passes(checks.test_top_activations, top_unravel_index)
    assert_fails(checks.test_top_activations, top_skip_first, "skip_first")
    assert_fails(checks.test_top_activations, top_mask_sequence_too, "first_sequence")


# --------------------------------------------------------------------------------------------
# latent_logit_effect
# --------------------------------------------------------------------------------------------
def test_latent_logit_effect_heldout_variants():
    effect = lambda m, s, i: torch.einsum("d,dm,mv->v", s.W_dec[i], m.blocks[0].mlp.W_out, m.W_U)
    assert_passes(checks.test_latent_logit_effect, effect)


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("latent_index", lambda m, s, i: s.W_dec[i - 1] @ m.W_out[0] @ m.W_U),
        ("gelu", lambda m, s, i: F.gelu(s.W_dec[i]) @ m.W_out[0] @ m.W_U),
        ("ln_final", lambda m, s, i: m.unembed(m.ln_final(s.W_dec[i] @ m.W_out[0]))),
        ("ln_final", lambda m, s, i: m.ln_final(s.W_dec[i] @ m.W_out[0]) @ m.W_U),
        ("shape", lambda m, s, i: (s.W_dec @ m.W_out[0] @ m.W_U)[:, i]),
    ],
)
def test_latent_logit_effect_heldout_bugs(code, impl):
    failure = assert_fails(checks.test_latent_logit_effect, impl, code)
    if code == "shape":
        assert "d_sae" in failure.hint


# --------------------------------------------------------------------------------------------
# steer_with_latent
# --------------------------------------------------------------------------------------------
def steer_mlp_out(model, sae, tokens, latent, coeff):
    """Correct: the same change added downstream, at hook_mlp_out, through W_out."""
    v = coeff * sae.W_dec[latent] @ model.W_out[0]
    return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda a, hook: a + v)])


def _steer(hook_fn_of):
    def impl(model, sae, tokens, latent, coeff):
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn_of(sae, latent, coeff))])

    return impl


def _through_sae(set_to):
    def make(sae, latent, coeff):
        def hook_fn(act, hook):
            f = sae.encode(act)
            f[..., latent] = coeff if set_to else f[..., latent] + coeff
            return sae.decode(f)

        return hook_fn

    return make


def _first_only(sae, latent, coeff):
    def hook_fn(act, hook):
        act = act.clone()
        act[:, 0] += coeff * sae.W_dec[latent]
        return act

    return hook_fn


def test_steer_with_latent_heldout_variants():
    assert_passes(checks.test_steer_with_latent, steer_mlp_out)


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("through_sae", _steer(_through_sae(True))),
        ("through_sae", _steer(_through_sae(False))),
        ("positions", _steer(_first_only)),
        ("scaled_activations", _steer(lambda s, i, c: lambda a, hook: c * (a + s.W_dec[i]))),
        ("encoder", _steer(lambda s, i, c: lambda a, hook: a + c * F.normalize(s.W_enc[:, i], dim=0))),
    ],
)
def test_steer_with_latent_heldout_bugs(code, impl):
    assert_fails(checks.test_steer_with_latent, impl, code)


# --------------------------------------------------------------------------------------------
# ablate_latent
# --------------------------------------------------------------------------------------------
def _ablate(hook_fn_of, hook_name=None):
    def impl(model, sae, tokens, latent):
        return model.run_with_hooks(tokens, fwd_hooks=[(hook_name or sae.hook_name, hook_fn_of(sae, latent))])

    return impl


def _slice_clone(sae, latent):
    def hook_fn(act, hook):
        out = act.clone()
        out -= sae.encode(act)[..., latent : latent + 1] * sae.W_dec[latent][None, None]
        return out

    return hook_fn


def _error_after_zeroing(sae, latent):
    def hook_fn(act, hook):
        f = sae.encode(act)
        f[..., latent] = 0
        return sae.decode(f) + (act - sae.decode(f))

    return hook_fn


def _f(s, i, a):
    return s.encode(a)[..., i, None]


def test_ablate_latent_heldout_variants():
    assert_passes(checks.test_ablate_latent, _ablate(_slice_clone))


@pytest.mark.parametrize(
    ("code", "impl"),
    [
        ("noop", _ablate(_error_after_zeroing)),
        ("hook", _ablate(lambda s, i: lambda a, hook: a - _f(s, i, a) * s.W_dec[i], hook_name=HOOK_PRE)),
        ("projection", _ablate(lambda s, i: lambda a, hook: a - (a @ s.W_dec[i])[..., None] * s.W_dec[i])),
        ("mean_activation", _ablate(lambda s, i: lambda a, hook: a - _f(s, i, a).max() * s.W_dec[i])),
        (
            "encode_no_b_enc",
            _ablate(lambda s, i: lambda a, hook: a - torch.relu((a - s.b_dec) @ s.W_enc[:, i])[..., None] * s.W_dec[i]),
        ),
        ("others_ablated", _ablate(lambda s, i: lambda a, hook: a - s.encode(a) @ s.W_dec + _f(s, i, a) * s.W_dec[i])),
    ],
)
def test_ablate_latent_heldout_bugs(code, impl):
    assert_fails(checks.test_ablate_latent, impl, code)


def test_reference_still_passes():
    assert_passes(checks.test_ablate_latent, ref.ablate_latent)


# --------------------------------------------------------------------------------------------
# Side effects on the shared model and SAE: undone, named, and never felt by a later check
# --------------------------------------------------------------------------------------------
def steer_hook_left(model, sae, tokens, latent, coeff):
    """add_hook without removing it: the hook would stay on the checker's cached model."""
    model.add_hook(sae.hook_name, lambda act, hook: act + coeff * sae.W_dec[latent])
    return model(tokens)


def ablate_weights_edited(model, sae, tokens, latent):
    """Zeroes the latent's decoder row in place to 'remove' it."""
    with torch.no_grad():
        sae.W_dec[latent] = 0.0
    return ref.ablate_latent(model, sae, tokens, latent)


def test_a_hook_left_on_the_model_is_named_and_removed():
    assert_fails(checks.test_steer_with_latent, steer_hook_left, "hook_left")
    assert_passes(checks.test_steer_with_latent, ref.steer_with_latent)  # the next check sees a clean model


def test_weights_edited_in_place_are_named_and_restored():
    assert_fails(checks.test_ablate_latent, ablate_weights_edited, "modified_weights")
    assert_passes(checks.test_ablate_latent, ref.ablate_latent)
    assert_passes(checks.test_latent_logit_effect, ref.latent_logit_effect)


# --------------------------------------------------------------------------------------------
# The fresh held-out trial
# --------------------------------------------------------------------------------------------
def freq_batch_fractions_summed(model, sae, tokens, batch_size=32):
    """Per-batch fractions added up, never divided by the number of batches."""
    out = torch.zeros(sae.d_sae)
    for start in range(0, tokens.shape[0], batch_size):
        out += (sae.encode(_cache(model, sae, tokens[start : start + batch_size])[:, 1:]) > 0).float().mean((0, 1))
    return out


def freq_bos_cut_from_input(model, sae, tokens, batch_size=32):
    """tokens[:, 1:] fed to the model: every activation changes, not only position 0's."""
    return (sae.encode(_cache(model, sae, tokens[:, 1:])) > 0).float().mean((0, 1))


def losses_per_token_ratio(model, sae, tokens):
    def per_token(fn=None):
        hooks = [] if fn is None else [(sae.hook_name, fn)]
        return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)

    c, s = per_token(), per_token(lambda a, hook: sae.decode(sae.encode(a)))
    z = per_token(lambda a, hook: torch.zeros_like(a))
    return {**ref.reconstruction_losses(model, sae, tokens), "recovered": ((z - s) / (z - c)).mean().item()}


def top_unsorted(acts, k):
    masked = acts.clone()
    masked[:, 0] = -torch.inf
    values, flat = masked.flatten().topk(k, sorted=False)
    order = torch.randperm(k, generator=torch.Generator().manual_seed(1))  # any order but the right one
    values, flat = values.sort().values[order], flat[values.argsort()][order]
    return values, flat // acts.shape[1], flat % acts.shape[1]


def effect_both_biases(model, sae, latent):
    one_hot = F.one_hot(torch.tensor(latent), sae.d_sae).float()
    return (sae.decode(one_hot) @ model.W_out[0] + model.b_out[0]) @ model.W_U


def _steer_by(fn):
    def impl(model, sae, tokens, latent, coeff):
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: fn(a, sae, latent, coeff))])

    return impl


def _steer_twice(a, sae, latent, coeff):
    a += coeff * sae.W_dec[latent]
    return a + coeff * sae.W_dec[latent]


def _steer_where_fires(a, sae, latent, coeff):
    return a + (sae.encode(a)[..., latent, None] > 0) * coeff * sae.W_dec[latent]


def _ablate_by(fn):
    def impl(model, sae, tokens, latent):
        def hook(a, hook):
            f = sae.encode(a)[..., latent, None]
            return fn(a, f, sae.W_dec[latent])

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return impl


def _ablate_twice(a, f, d):
    a -= f * d
    return a - f * d


FRESH = [
    (checks.test_latent_frequencies, freq_batch_fractions_summed, "count_factor"),
    (checks.test_latent_frequencies, freq_bos_cut_from_input, "bos_input"),
    (checks.test_reconstruction_losses, losses_per_token_ratio, "recovered_per_token"),
    (checks.test_top_activations, top_unsorted, "unsorted"),
    (checks.test_latent_logit_effect, effect_both_biases, "biases"),
    (checks.test_latent_logit_effect, lambda m, s, i: F.relu(ref.latent_logit_effect(m, s, i)), "clipped"),
    (checks.test_steer_with_latent, _steer_by(lambda a, s, i, c: a + F.gelu(c * s.W_dec[i])), "gelu"),
    (checks.test_steer_with_latent, _steer_by(_steer_twice), "twice"),
    (checks.test_steer_with_latent, _steer_by(_steer_where_fires), "some_positions"),
    (checks.test_ablate_latent, _ablate_by(_ablate_twice), "twice"),
    (checks.test_ablate_latent, _ablate_by(lambda a, f, d: a - f * (f > 0.1 * f.max()) * d), "some_positions"),
]


@pytest.mark.parametrize(("check", "impl", "code"), FRESH, ids=[f"{c}{i}" for i, (_, _, c) in enumerate(FRESH)])
def test_fresh_heldout_mistakes_are_named(check, impl, code):
    assert_fails(check, impl, code)


def test_fresh_correct_variants_pass():
    def steer_in_place(model, sae, tokens, latent, coeff):
        def hook(a, hook):
            a += coeff * sae.W_dec[latent]
            return a

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_passes(checks.test_steer_with_latent, steer_in_place)
    assert_passes(checks.test_ablate_latent, _ablate_by(lambda a, f, d: a - f * (f > 0) * d))


# --------------------------------------------------------------------------------------------
# third fresh trial
# --------------------------------------------------------------------------------------------
def _losses_rounded(model, sae, tokens):
    return {key: round(value, 2) for key, value in ref.reconstruction_losses(model, sae, tokens).items()}


def test_reconstruction_losses_rounded():
    assert_fails(checks.test_reconstruction_losses, _losses_rounded, "rounded")


def _top_drop_after(acts, k):
    values, flat = acts.flatten().topk(k)
    keep = flat % acts.shape[1] != 0
    return values[keep], (flat // acts.shape[1])[keep], (flat % acts.shape[1])[keep]


def test_top_activations_third_fresh():
    assert_fails(checks.test_top_activations, _top_drop_after, "too_few")


def _steer_loss(model, sae, tokens, latent, coeff):
    hook = lambda act, hook: act + coeff * sae.W_dec[latent]
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, hook)])


def test_steer_with_latent_scalar():
    assert_fails(checks.test_steer_with_latent, _steer_loss, "scalar")


def _ablate_keep_bos(model, sae, tokens, latent):
    def hook(act, hook):
        out = act - sae.encode(act)[..., latent : latent + 1] * sae.W_dec[latent]
        return torch.cat([act[:, :1], out[:, 1:]], 1)

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])


def test_ablate_latent_keeps_bos():
    assert_fails(checks.test_ablate_latent, _ablate_keep_bos, "some_positions")


# fifth fresh measurement
def _clean_loss(kind):
    def impl(model, sae, tokens):
        def loss(fn=None):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)] if fn else [])
            if kind == "reversed":
                return F.cross_entropy(logits[:, 1:].flatten(0, 1), tokens[:, :-1].flatten()).item()
            return F.nll_loss(logits[:, :-1].transpose(1, 2), tokens[:, 1:]).item()

        c, s = loss(), loss(lambda act, hook: sae.decode(sae.encode(act)))
        z = loss(lambda act, hook: act * 0)
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    return impl


@pytest.mark.parametrize(("code", "kind"), [("shift_reversed", "reversed"), ("log_softmax_missing", "nll_raw")])
def test_reconstruction_losses_fresh5(code, kind):
    assert_fails(checks.test_reconstruction_losses, _clean_loss(kind), code)


def _effect_mean_over_d_mlp(model, sae, latent):
    return (sae.W_dec[latent][:, None] * model.W_out[0]).mean(0) @ model.W_U


def test_latent_logit_effect_d_mlp_factor():
    assert_fails(checks.test_latent_logit_effect, _effect_mean_over_d_mlp, "count_factor")


def _ablate_fresh5(kind):
    def edit(act, latent, sae):
        if kind == "neuron":
            act = act.clone()
            act[..., latent] = 0
            return act
        return act - (sae.encode(act)[..., latent, None] > 0).float() * sae.W_dec[latent]

    def impl(model, sae, tokens, latent):
        fn = lambda act, hook: edit(act, latent, sae)
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)])

    return impl


@pytest.mark.parametrize(("code", "kind"), [("mlp_neuron", "neuron"), ("firing_mask", "mask")])
def test_ablate_latent_fresh5(code, kind):
    assert_fails(checks.test_ablate_latent, _ablate_fresh5(kind), code)
