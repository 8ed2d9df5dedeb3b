"""Proofs for part 6 after held-out round BA (fresh54). Now named:

* reconstruction_losses: a recovered fraction of exactly 1, (zero - spliced) / (zero - spliced), was read as rounded
  to 0 decimals: `recovered_degenerate` (rounding stays the reading when the losses are rounded too);
* reconstruction_losses: per-batch mean losses averaged over batches of unequal size (`batch_means`), 2 · x̂ − act
  spliced in (`error_sign`), latents clamped to 1 before decoding (`latents_clamped`), a zero-ablation of position 0
  alone (`bos_only_zeroed`) or a halving (`halved_not_zeroed`);
* top_activations: k rounds of argmax whose picks are knocked out with 0, so one comes back on signed activations
  (the hint blamed position 0's mask): `knocked_out_finite`;
* steer_with_latent / ablate_latent: logits changed after the run, with no edit of the activation at the hook
  (clean logits plus coeff, or minus f, times the direct logit effect): `logits_edited` (the ablation was read as an
  index slip before, from a cache hook's unchanged activation);

The round's correct variants (written differently from the reference) still pass.
"""

from __future__ import annotations

import torch

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


# --- steer_with_latent / ablate_latent: logits edited after the run --------------------------------------------
def _effect(model, sae, latent):
    return sae.W_dec[latent] @ model.W_out[0] @ model.W_U


def steer_logits_plus_effect(model, sae, tokens, latent, coeff):
    return model(tokens) + coeff * _effect(model, sae, latent)


def ablate_logits_minus_effect(model, sae, tokens, latent):
    _, cache = model.run_with_cache(tokens, names_filter=sae.hook_name)
    f = sae.encode(cache[sae.hook_name])[..., latent]
    return model(tokens) - f[..., None] * _effect(model, sae, latent)


def ablate_logits_minus_twice_effect(model, sae, tokens, latent):
    _, cache = model.run_with_cache(tokens, names_filter=sae.hook_name)
    f = sae.encode(cache[sae.hook_name])[..., latent]
    return model(tokens) - 2 * f[..., None] * _effect(model, sae, latent) - 0.1


def test_steer_logits_edited_is_named():
    err = assert_fails(p6.test_steer_with_latent, steer_logits_plus_effect, "logits_edited")
    assert "plus coeff" in err.message and "LayerNorm" in err.hint


def test_ablate_logits_edited_is_named():
    err = assert_fails(p6.test_ablate_latent, ablate_logits_minus_effect, "logits_edited")
    assert "minus f" in err.message and "LayerNorm" in err.hint


def test_ablate_logits_edited_otherwise_is_named():
    err = assert_fails(p6.test_ablate_latent, ablate_logits_minus_twice_effect, "logits_edited")
    assert "after the run" in err.hint


def steer_at_mlp_out(model, sae, tokens, latent, coeff):
    v = coeff * sae.W_dec[latent] @ model.W_out[0]
    return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda a, hook: a + v)])


def steer_in_latent_space(model, sae, tokens, latent, coeff):
    def hook(a, hook):
        return sae.decode(sae.encode(a) + coeff * torch.eye(sae.d_sae, device=a.device)[latent]) + (a - sae(a))

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])


def ablate_at_mlp_out(model, sae, tokens, latent):
    store = {}

    def grab(a, hook):
        store["f"] = sae.encode(a)[..., latent]

    def sub(a, hook):
        return a - store["f"][..., None] * (sae.W_dec[latent] @ model.W_out[0])

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, grab), ("blocks.0.hook_mlp_out", sub)])


def ablate_decode_plus_error(model, sae, tokens, latent):
    def hook(a, hook):
        f = sae.encode(a)
        g = f.clone()
        g[..., latent] = 0
        return sae.decode(g) + (a - sae.decode(f))

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])


def test_steer_ablate_correct_variants_pass():
    assert_passes(p6.test_steer_with_latent, steer_at_mlp_out)
    assert_passes(p6.test_steer_with_latent, steer_in_latent_space)
    assert_passes(p6.test_ablate_latent, ablate_at_mlp_out)
    assert_passes(p6.test_ablate_latent, ablate_decode_plus_error)


# --- top_activations: picks knocked out with a finite value ---------------------------------------------------
def _argmax_rounds(fill):
    def top_activations(acts, k):
        a = acts.clone()
        a[:, 0] = -float("inf")
        vals, seqs, poss = [], [], []
        for _ in range(k):
            s, p = divmod(int(a.argmax()), a.shape[1])
            vals.append(acts[s, p])
            seqs.append(s)
            poss.append(p)
            a[s, p] = fill
        return torch.stack(vals), torch.tensor(seqs), torch.tensor(poss)

    return top_activations


def test_top_picks_knocked_out_with_zero_are_named():
    err = assert_fails(p6.test_top_activations, _argmax_rounds(0.0), "knocked_out_finite")
    assert "-inf" in err.hint and "0" in err.hint


def test_top_correct_variants_pass():
    assert_passes(p6.test_top_activations, _argmax_rounds(-float("inf")))


# --- reconstruction_losses: recovered exactly 1 ---------------------------------------------------------------
def _losses(recovered, rounded=None):
    def reconstruction_losses(model, sae, tokens):
        run = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        c = run([])
        s = run([(sae.hook_name, lambda a, hook: sae(a))])
        z = run([(sae.hook_name, lambda a, hook: a * 0)])
        out = {"clean": c, "spliced": s, "zero_ablated": z, "recovered": recovered(c, s, z)}
        return out if rounded is None else {k: round(v, rounded) for k, v in out.items()}

    return reconstruction_losses


def test_losses_recovered_same_difference_is_named():
    err = assert_fails(
        p6.test_reconstruction_losses, _losses(lambda c, s, z: (z - s) / (z - s)), "recovered_degenerate"
    )
    assert "(zero - spliced) / (zero - spliced)" in err.hint


def test_losses_recovered_rounded_to_integer_stays_rounded():
    impl = _losses(lambda c, s, z: round((z - s) / (z - c)))
    assert_fails(p6.test_reconstruction_losses, _losses(lambda c, s, z: (z - s) / (z - c), rounded=0), "rounded")
    assert_fails(p6.test_reconstruction_losses, impl, "recovered_degenerate")  # the losses themselves are not rounded


def test_losses_correct_variants_pass():
    assert_passes(p6.test_reconstruction_losses, _losses(lambda c, s, z: 1 - (s - c) / (z - c)))
    assert_passes(p6.test_reconstruction_losses, _losses(lambda c, s, z: abs(s - z) / abs(c - z)))


def _losses_with(run=None, splice=None, zero=None):
    """splice(sae) gives the splice hook; zero is the zero-ablation hook."""

    def reconstruction_losses(model, sae, tokens):
        loss = run or (lambda t, hooks: model.run_with_hooks(t, return_type="loss", fwd_hooks=hooks).item())
        c = loss(tokens, [])
        s = loss(tokens, [(sae.hook_name, splice(sae) if splice else (lambda a, hook: sae.decode(sae.encode(a))))])
        z = loss(tokens, [(sae.hook_name, zero or (lambda a, hook: torch.zeros_like(a)))])
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    return reconstruction_losses


def _batched_losses(size):
    def reconstruction_losses(model, sae, tokens):
        def loss(t, hooks):
            parts = [model.run_with_hooks(c, return_type="loss", fwd_hooks=hooks).item() for c in t.split(size)]
            return sum(parts) / len(parts)

        return _losses_with(run=loss)(model, sae, tokens)

    return reconstruction_losses


def _zero_first(a, hook):
    a = a.clone()
    a[:, 0] = 0
    return a


def test_losses_batch_means_are_named():
    err = assert_fails(p6.test_reconstruction_losses, _batched_losses(4), "batch_means")
    assert "4 + 2" in err.hint
    assert_fails(p6.test_reconstruction_losses, _batched_losses(5), "batch_means")


def test_losses_other_splices_and_ablations_are_named():
    error_sign = _losses_with(splice=lambda sae: lambda a, hook: 2 * sae(a) - a)
    assert_fails(p6.test_reconstruction_losses, error_sign, "error_sign")
    clamped = _losses_with(splice=lambda sae: lambda a, hook: sae.decode(torch.clamp(sae.encode(a), 0, 1)))
    assert_fails(p6.test_reconstruction_losses, clamped, "latents_clamped")
    assert_fails(p6.test_reconstruction_losses, _losses_with(zero=_zero_first), "bos_only_zeroed")
    assert_fails(p6.test_reconstruction_losses, _losses_with(zero=lambda a, hook: a / 2), "halved_not_zeroed")


def test_losses_batched_correct_variants_pass():
    assert_passes(p6.test_reconstruction_losses, _batched_losses(3))
    assert_passes(p6.test_reconstruction_losses, _batched_losses(1))
