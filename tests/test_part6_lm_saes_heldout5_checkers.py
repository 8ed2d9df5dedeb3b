"""Proofs for the part 6 checkers from the fresh14 held-out trial (the others are in test_part6_lm_saes_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _losses_late_binding(model, sae, tokens):
    loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
    fns = {"spliced": lambda a: sae.decode(sae.encode(a)), "zero_ablated": lambda a: a * 0.0}
    hooks = {}
    for key in fns:
        hooks[key] = lambda act, hook: fns[key](act)  # noqa: B023  (the mistake: reads `key` when called)
    out = {"clean": loss([])}
    for name in fns:
        out[name] = loss([(sae.hook_name, hooks[name])])
    c, s, z = out["clean"], out["spliced"], out["zero_ablated"]
    out["recovered"] = (s - z) / (c - z)
    return out


def test_reconstruction_losses_late_binding_fresh14():
    err = assert_fails(checks.test_reconstruction_losses, _losses_late_binding, "late_binding")
    assert "late binding" in err.hint


def _top_strided(stride_of):
    def top_activations(acts, k):
        n_seq, seq = acts.shape
        flat = acts.flatten().clone()
        flat[:: stride_of(n_seq, seq)] = -float("inf")
        values, i = flat.topk(k)
        return values, i // seq, i % seq

    return top_activations


def test_top_activations_stride_n_seq_fresh14():
    err = assert_fails(checks.test_top_activations, _top_strided(lambda n_seq, seq: n_seq), "mask_stride")
    assert "n_seq" in err.hint


def test_top_activations_stride_off_by_one_fresh14():
    assert_fails(checks.test_top_activations, _top_strided(lambda n_seq, seq: seq - 1), "mask_stride")


def _ablate_zeroed_first(model, sae, tokens, latent):
    def hook(act, hook):
        f = sae.encode(act)
        f[..., latent] = 0
        return act - f[..., latent].unsqueeze(-1) * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])


def test_ablate_latent_zeroed_before_read_fresh14():
    err = assert_fails(checks.test_ablate_latent, _ablate_zeroed_first, "noop")
    assert "AFTER zeroing" in err.hint


def test_top_activations_probe_leaves_correct_alone_fresh14():
    """The stride probe names nothing for a correct mask (every seq-th entry) or for acts[0, 0] alone."""
    from tests.part6_lm_saes_probes import strided_mask

    strided_mask(_top_strided(lambda n_seq, seq: seq), (7, 13), torch.device("cpu"))
    strided_mask(_top_strided(lambda n_seq, seq: 7 * 13), (7, 13), torch.device("cpu"))
