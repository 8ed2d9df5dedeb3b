"""Proofs for part 6b's diagnoses added after the fresh41 held-out measurement: an error leaf built from the error's
shape only (torch.zeros_like: its values never read, observed by re-running the learner while recording the torch
calls that receive frozen.error), the other causes of zero error columns still reported as observed with a list of
causes, encoder columns normalised, the skip term added twice in the splice, the de-embedding and logit effect
multiplied by the threshold, and a cut at log(threshold) read back."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails, assert_passes


def _edges(error_leaf: str = "values", dot: bool = True):
    def attribution_edges(model, tc, frozen, graph):
        pos, idx = graph.latent_pos, graph.latent_idx
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = {
                "values": lambda: frozen.error.detach().clone().requires_grad_(True),
                "zeros_like": lambda: torch.zeros_like(frozen.error).requires_grad_(True),
                "zeros_shape": lambda: torch.zeros(frozen.error.shape, requires_grad=True),
            }[error_leaf]()
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            latents = torch.zeros_like(frozen.acts)
            latents[pos, idx] = values
            pre, logits = ref.linearised_forward(model, tc, frozen, embeds, latents, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            rows = list(range(graph.n_nodes))[graph.nodes("latent")] + list(range(graph.n_nodes))[graph.nodes("logit")]
            for row, t in zip(rows, targets, strict=True):
                gv, ge, gt = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[row, graph.nodes("latent")] = gv * values.detach()
                A[row, graph.nodes("error")] = (ge * error.detach()).sum(-1) if dot else ge.sum(-1)
                A[row, graph.nodes("token")] = (gt * embeds.detach()).sum(-1)
        return A

    return attribution_edges


@pytest.mark.parametrize("leaf", ["zeros_like", "zeros_shape"])
def test_error_leaf_without_values_is_named(leaf):
    err = assert_fails(checks.test_attribution_edges, _edges(leaf), "error_leaf_value")
    assert "never read frozen.error's values" in err.message and "detach().clone()" in err.hint


def test_error_grad_sum_keeps_the_observed_list_of_causes():
    err = assert_fails(checks.test_attribution_edges, _edges(dot=False), "error_nodes")
    assert err.hint.startswith("observed:") and "e.g." in err.hint and "zeros_like" in err.hint


def test_edges_with_value_leaves_still_pass():
    assert_passes(checks.test_attribution_edges, _edges())


def test_encoder_columns_normalised_is_named():
    def transcoder_forward(tc, x):
        pre = x @ (tc.W_enc / tc.W_enc.norm(dim=0, keepdim=True)) + tc.b_enc
        acts = pre * (pre > tc.threshold)
        return acts, acts @ tc.W_dec + tc.b_dec + tc.skip(x)

    err = assert_fails(checks.test_transcoder_forward, transcoder_forward, "encoder_normalised")
    assert "unit-norm columns" in err.hint


def test_log_threshold_cut_is_read_back():
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = pre * (pre > tc.threshold.log())
        return acts, acts @ tc.W_dec + tc.b_dec + tc.skip(x)

    err = assert_fails(checks.test_transcoder_forward, transcoder_forward, "threshold_scalar")
    assert "log(threshold)" in err.hint


def test_skip_added_twice_in_the_splice_is_named():
    def replacement_losses(model, tc, tokens):
        seen = {}
        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        read = (tc.hook_name, lambda a, hook: seen.__setitem__("x", a))
        clean = loss([])
        replaced = loss([read, (tc.hook_name_out, lambda a, hook: tc(seen["x"]) + tc.skip(seen["x"]))])
        zero = loss([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
        return {
            "clean": clean,
            "replaced": replaced,
            "zero_ablated": zero,
            "recovered": (zero - replaced) / (zero - clean),
        }

    err = assert_fails(checks.test_replacement_losses, replacement_losses, "skip_twice")
    assert "counted twice" in err.hint


@pytest.mark.parametrize("side", ["de", "logit"])
def test_threshold_factor_is_named_with_its_value(side):
    if side == "de":
        check, impl = checks.test_latent_de_embedding, lambda m, tc, i: (m.W_E @ tc.W_enc[:, i]) * tc.threshold[i]
    else:
        check, impl = checks.test_latent_logit_effect, lambda m, tc, i: (tc.W_dec[i] @ m.W_U) * tc.threshold[i]
    err = assert_fails(check, impl, "activation")
    assert "threshold[latent] = " in err.hint and "no factor of the threshold" in err.hint
