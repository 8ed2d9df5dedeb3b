"""Proofs for the part 6 checkers from the fresh8 held-out trial (the others are in test_part6_lm_saes_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _freq_positions_only(model, sae, tokens, batch_size=32):
    count, n = torch.zeros(sae.d_sae, dtype=torch.float64), 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size])
        acts = sae.encode(cache[sae.hook_name])[:, 1:]
        count += (acts != 0).double().sum((0, 1)).cpu()
        n += acts.shape[1]
    return count / n


def test_frequencies_positions_only():
    assert_fails(checks.test_latent_frequencies, _freq_positions_only, "positions_only")


def _losses_logits(model, sae, tokens):
    loss = lambda hooks, rt="loss": model.run_with_hooks(tokens, return_type=rt, fwd_hooks=hooks).mean().item()
    clean = loss([])
    spliced = loss([(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))], "logits")
    zero = loss([(sae.hook_name, lambda a, hook: torch.zeros_like(a))])
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": (zero - spliced) / (zero - clean)}


def test_losses_mean_of_logits():
    assert_fails(checks.test_reconstruction_losses, _losses_logits, "logits_mean")


def _top_per_sequence(acts, k):
    masked = acts.clone()
    masked[:, 0] = float("-inf")
    v, i = masked.topk(k, dim=-1)
    return v, i // acts.shape[1], i % acts.shape[1]


def test_top_per_sequence():
    assert_fails(checks.test_top_activations, _top_per_sequence, "per_sequence")


def test_logit_effect_token_ids():
    impl = lambda m, s, i: (s.W_dec[i] @ m.W_out[0] @ m.W_U).topk(20).indices
    assert_fails(checks.test_latent_logit_effect, impl, "token_ids")


def _steer(bug):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent]
        if bug == "clamp":
            fn = lambda a, hook: a + (coeff - sae.encode(a)[..., latent])[..., None] * d
        else:
            fn = lambda a, hook: a + coeff * a.norm(dim=-1, keepdim=True) * d
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)])

    return steer_with_latent


@pytest.mark.parametrize("bug, code", [("clamp", "clamped"), ("norm", "norm_scaled")])
def test_steer_fresh8(bug, code):
    assert_fails(checks.test_steer_with_latent, _steer(bug), code)


def _ablate(bug):
    def ablate_latent(model, sae, tokens, latent):
        d = sae.W_dec[latent]

        def fn(a, hook):
            f = sae.encode(a - sae.b_dec if bug == "b_dec" else a)[..., latent]
            if bug == "mean":
                f = f - f.mean()
            return a - f[..., None] * d

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)])

    return ablate_latent


@pytest.mark.parametrize("bug, code", [("b_dec", "b_dec_twice"), ("mean", "mean_ablated")])
def test_ablate_fresh8(bug, code):
    assert_fails(checks.test_ablate_latent, _ablate(bug), code)


# ---- fresh9 held-out trial -------------------------------------------------------------------------------------
def _top_from_2(acts, k):
    masked = torch.where(torch.arange(acts.shape[1]) > 1, acts, torch.tensor(float("-inf")))
    v, i = masked.flatten().topk(k)
    return v, i // acts.shape[1], i % acts.shape[1]


def test_top_positions_0_and_1():
    assert_fails(checks.test_top_activations, _top_from_2, "positions_0_1")


@pytest.mark.parametrize(
    "impl, code",
    [
        (lambda m, s, i: m.W_out[0][i] @ m.W_U, "mlp_neuron"),
        (lambda m, s, i: s.W_dec[i] @ m.W_out[0] @ m.W_U / m.W_U.norm(dim=0), "unembed_normalised"),
    ],
)
def test_logit_effect_fresh9(impl, code):
    assert_fails(checks.test_latent_logit_effect, impl, code)


def _ablate9(bug):
    def ablate_latent(model, sae, tokens, latent):
        d = sae.W_dec[latent]

        def fn(a, hook):
            f = sae.encode(a)[..., latent]
            f = f[:1].expand_as(f) if bug == "first" else f.mean(0, keepdim=True)  # one sequence's, or the batch mean
            return a - f[..., None] * d

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)])

    return ablate_latent


@pytest.mark.parametrize("bug, code", [("first", "first_sequence"), ("batch_mean", "sequences_mixed")])
def test_ablate_fresh9(bug, code):
    """batch_mean is unlisted: the reordered-batch probe names it."""
    assert_fails(checks.test_ablate_latent, _ablate9(bug), code)


def test_steer_sequences_mixed():
    def steer_with_latent(model, sae, tokens, latent, coeff):
        def fn(a, hook):  # the vector scaled by the first sequence's activation norm, for every sequence
            return a + coeff * a[:1].norm(dim=-1, keepdim=True) * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)])

    assert_fails(checks.test_steer_with_latent, steer_with_latent, "sequences_mixed")


def _top_fresh10(bug):
    def top_activations(acts, k):
        seq = acts.shape[1]
        if bug == "nan":  # position 0 masked with NaN: topk ranks NaN first
            m = acts.clone()
            m[:, 0] = float("nan")
            v, i = m.flatten().topk(k)
            return v, i // seq, i % seq
        best, s = acts[:, 1:].max(0)  # the best sequence per position, then the top positions
        v, p = best.topk(k)
        return v, s[p], p + 1

    return top_activations


@pytest.mark.parametrize("bug, code", [("nan", "not_finite"), ("per_position", "per_position")])
def test_top_activations_fresh10(bug, code):
    assert_fails(checks.test_top_activations, _top_fresh10(bug), code)


def _top_fresh11(bug):
    def top_activations(acts, k):
        seq = acts.shape[1]
        if bug == "bos_masked_zero":  # position 0 set to 0: it outranks every negative activation
            m = acts.clone()
            m[:, 0] = 0
        else:  # every activation clamped at 0 first, as if they were all ReLU outputs
            m = acts.clamp(min=0)
            m[:, 0] = -torch.inf
        v, i = m.flatten().topk(k)
        return v, i // seq, i % seq

    return top_activations


@pytest.mark.parametrize("bug, code", [("bos_masked_zero", "bos_masked_zero"), ("clamped", "signed_acts")])
def test_top_activations_fresh11(bug, code):
    assert_fails(checks.test_top_activations, _top_fresh11(bug), code)


# fresh12 held-out trial
def _freq_per_token(model, sae, tokens, batch_size=32):
    fired = []
    for chunk in tokens.split(batch_size):
        _, cache = model.run_with_cache(chunk, names_filter=sae.hook_name)
        fired.append((sae.encode(cache[sae.hook_name][:, 1:]) > 0).float().mean(-1).flatten())
    return torch.cat(fired)


def test_frequencies_mean_over_latents_fresh12():
    failure = assert_fails(checks.test_latent_frequencies, _freq_per_token, "per_token")
    assert "470 = 10 sequences × 47 positions" in failure.message


def _losses_fresh12(bug):
    def reconstruction_losses(model, sae, tokens):
        def zero(act, hook):
            if bug == "zero_rebind":
                act = torch.zeros_like(act)  # rebinds the local name, returns None
                return None
            return act * 0.0

        splice = lambda act, hook: sae.decode(sae.encode(act))
        loss = lambda hooks: float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks))
        c, s, z = loss([]), loss([(sae.hook_name, splice)]), loss([(sae.hook_name, zero)])
        rec = 1 - (s - c) / c if bug == "relative" else (s - z) / (c - z)
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": rec}

    return reconstruction_losses


@pytest.mark.parametrize("bug, code", [("relative", "recovered_relative"), ("zero_rebind", "noop_hook")])
def test_reconstruction_losses_fresh12(bug, code):
    failure = assert_fails(checks.test_reconstruction_losses, _losses_fresh12(bug), code)
    if code == "noop_hook":
        assert "ZeroDivisionError" in failure.message and "return" in failure.hint


@pytest.mark.parametrize("shift", [1, 0])
def test_top_activations_first_bos_only_fresh12(shift):
    """flatten()[1:] skips only sequence 0's BOS: named as what it shows, not as dropping sequence 0."""

    def top_activations(acts, k):
        seq = acts.shape[1]
        v, i = acts.flatten()[1:].topk(k)
        i = i + shift
        return v, i // seq, i % seq

    failure = assert_fails(checks.test_top_activations, top_activations, "first_bos_only")
    assert "acts[1:]" not in failure.hint


def test_ablate_error_subtracted_fresh12():
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = sae.encode(act)
            f0 = f.clone()
            f0[..., latent] = 0
            return sae.decode(f0) - (act - sae.decode(f))

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_fails(checks.test_ablate_latent, ablate_latent, "error_sign")
