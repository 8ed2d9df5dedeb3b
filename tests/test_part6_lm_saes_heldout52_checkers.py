"""Proofs for part 6 after the second fix round of held-out round AX (fresh49): a spliced loss that keeps only
each token's largest latent is read back as top_latents_only; a 'zero-ablation' that centres the activations over
neurons is read back as centred_not_zeroed; a zero-ablated loss measured on the first half of the batch is read
back as zero_batch_subset. A correct manual variant still passes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def _loss(model, tokens, hook_name, fn):
    hooks = [(hook_name, fn)] if fn is not None else []
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()


def _out(c, s, z):
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}


def losses_top1_splice(model, sae, tokens):
    h = sae.hook_name

    def top1(a, hook):
        f = sae.encode(a)
        return sae.decode(f * (f == f.amax(-1, keepdim=True)))

    c = _loss(model, tokens, h, None)
    s = _loss(model, tokens, h, top1)
    z = _loss(model, tokens, h, lambda a, hook: torch.zeros_like(a))
    return _out(c, s, z)


def losses_zero_half_batch(model, sae, tokens):
    h = sae.hook_name
    c = _loss(model, tokens, h, None)
    s = _loss(model, tokens, h, lambda a, hook: sae.decode(sae.encode(a)))
    z = _loss(model, tokens[: max(1, tokens.shape[0] // 2)], h, lambda a, hook: torch.zeros_like(a))
    return _out(c, s, z)


def losses_zero_centre_neurons(model, sae, tokens):
    h = sae.hook_name
    c = _loss(model, tokens, h, None)
    s = _loss(model, tokens, h, lambda a, hook: sae.decode(sae.encode(a)))
    z = _loss(model, tokens, h, lambda a, hook: a - a.mean(-1, keepdim=True))
    return _out(c, s, z)


def losses_correct_manual_einsum(model, sae, tokens):
    def ce(hooks):
        with model.hooks(fwd_hooks=hooks):
            logits = model(tokens)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten()).item()

    def recon(a, hook):
        f = torch.relu(torch.einsum("bsm,ml->bsl", a - sae.b_dec, sae.W_enc) + sae.b_enc)
        return torch.einsum("bsl,lm->bsm", f, sae.W_dec) + sae.b_dec

    c = ce([])
    s = ce([(sae.hook_name, recon)])
    z = ce([(sae.hook_name, lambda a, hook: a.mul_(0))])
    return _out(c, s, z)


def test_losses_top1_splice_is_named():
    assert_fails(p6.test_reconstruction_losses, losses_top1_splice, "top_latents_only")


def test_losses_zero_half_batch_is_named():
    assert_fails(p6.test_reconstruction_losses, losses_zero_half_batch, "zero_batch_subset")


def test_losses_zero_centre_neurons_is_named():
    assert_fails(p6.test_reconstruction_losses, losses_zero_centre_neurons, "centred_not_zeroed")


def test_losses_correct_manual_einsum_passes():
    assert_passes(p6.test_reconstruction_losses, losses_correct_manual_einsum)
