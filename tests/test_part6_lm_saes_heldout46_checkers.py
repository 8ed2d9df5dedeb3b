"""Proofs for part 6 after the fresh46 round: a hand-written cross-entropy reduced the wrong way (summed over the
positions of each sequence and averaged over the sequences, or summed over the sequences and averaged over the
positions) or shifted across sequence boundaries (after flattening: each last position against the next sequence's
BOS; rolled within each sequence: against its own BOS) is named (`loss_reductions`, read only when a loss is
wrong); the round's correct variants pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part6_lm_saes as p6
from tests.part6_lm_saes_loss_reductions import loss_reductions
from tests.proving import assert_fails, assert_passes

SPLICE = lambda sae: [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))]
ZERO = lambda sae: [(sae.hook_name, lambda a, hook: torch.zeros_like(a))]


def _losses(loss):
    """reconstruction_losses from a loss(model, tokens, hooks) helper, applied to every run."""

    def impl(model, sae, tokens):
        c, s, z = loss(model, tokens, []), loss(model, tokens, SPLICE(sae)), loss(model, tokens, ZERO(sae))
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    return impl


def _ce_sum(model, tokens, hooks):
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return (F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="sum") / tokens.shape[0]).item()


def _ce_sum_over_batch(model, tokens, hooks):
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    lp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return (-lp.sum() / (tokens.shape[1] - 1)).item()


def _ce_flat(model, tokens, hooks):
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return F.cross_entropy(logits.flatten(0, 1)[:-1], tokens.flatten()[1:]).item()  # shift across sequence ends


def _ce_roll(model, tokens, hooks):
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return F.cross_entropy(logits.flatten(0, 1), tokens.roll(-1, dims=1).flatten()).item()


def _ce_ok(model, tokens, hooks):
    with model.hooks(fwd_hooks=hooks):
        logp = model(tokens).log_softmax(-1)
    return -logp[:, :-1].gather(-1, tokens[:, 1:, None]).mean().item()


def losses_flat_shift_spliced_only(model, sae, tokens):
    def loss(hooks):
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

    c, s, z = loss([]), _ce_flat(model, tokens, SPLICE(sae)), loss(ZERO(sae))
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}


def losses_correct_manual_inplace2(model, sae, tokens):
    def zero_(a, hook):
        a.mul_(0)

    c = _ce_ok(model, tokens, [])
    s = _ce_ok(model, tokens, SPLICE(sae))
    z = _ce_ok(model, tokens, [(sae.hook_name, zero_)])
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (s - z) / (c - z)}


def test_loss_summed_over_positions_per_sequence_named():
    hint = assert_fails(p6.test_reconstruction_losses, _losses(_ce_sum), "sum_per_sequence").hint
    assert "summed over the 63 predicted positions of each sequence" in hint
    hint = assert_fails(p6.test_reconstruction_losses, _losses(_ce_sum_over_batch), "sum_per_position").hint
    assert "summed over the 6 sequences" in hint


def test_loss_shifted_across_sequences_named():
    hint = assert_fails(p6.test_reconstruction_losses, _losses(_ce_flat), "shift_across_sequences").hint
    assert "NEXT sequence's" in hint
    assert_fails(p6.test_reconstruction_losses, losses_flat_shift_spliced_only, "shift_across_sequences")
    hint = assert_fails(p6.test_reconstruction_losses, _losses(_ce_roll), "shift_wraps").hint
    assert "its own first token" in hint


def test_loss_readings_separated_and_only_on_failure():
    """The new readings differ from the reference loss and from each other (relative gap far above the checker's
    2e-5), for every run; a loss that matches gets none (no model run on a correct answer)."""
    model, sae, tokens = p6._inputs(torch.device("cpu"))
    tokens = tokens[:6, :64]
    for key, hooks in (("clean", []), ("spliced", SPLICE(sae)), ("zero_ablated", ZERO(sae))):
        exp = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        assert loss_reductions(model, sae, tokens, key, exp, exp, 2e-5, 1e-6) == []
        values = [exp] + [float(v) for _, _, v in loss_reductions(model, sae, tokens, key, exp + 1, exp, 2e-5, 1e-6)]
        for i, a in enumerate(values):
            for b in values[i + 1 :]:
                assert abs(a - b) > 1e-3 * abs(a), (key, values)
    assert loss_reductions(model, sae, tokens, "recovered", 0.0, 1.0, 1e-4, 1e-6) == []


def test_round_correct_variants_pass():
    assert_passes(p6.test_reconstruction_losses, losses_correct_manual_inplace2)
