"""Held-out round AV, second pass (part 6b): transcoder_forward decoding with the encoder transposed (a tied decoder)
is named, and attribution_edges whose token edges dot the right gradient with another value than the embeddings (the
LN1-normalised embeddings, frozen.mlp_in) name that value."""

import torch

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward as REF_LF
from tests.proving import assert_fails


def test_tied_decoder_is_named():
    def tf(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = torch.where(pre > tc.threshold, pre, torch.zeros_like(pre))
        out = acts @ tc.W_enc.T + tc.b_dec
        if tc.W_skip is not None:
            out = out + x @ tc.W_skip.T
        return acts, out

    err = assert_fails(checks.test_transcoder_forward, tf, "tied_decoder")
    assert "W_enc.T" in str(err)


def _ae(variant):
    def f(model, tc, frozen, graph):
        n = graph.n_nodes
        A = torch.zeros(n, n, device=frozen.embeds.device)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[pos, idx] = values
            pre, logits = REF_LF(model, tc, frozen, embeds, lat, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            ar = torch.arange(n)
            rows = torch.cat([ar[graph.nodes("latent")], ar[graph.nodes("logit")]])
            if variant == "x1_value":
                tv = (embeds - embeds.mean(-1, keepdim=True)).detach() / frozen.ln1_scale
            else:
                tv = frozen.mlp_in
            for r, t in zip(rows.tolist(), targets, strict=True):
                gv, ge, gx = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[r, graph.nodes("latent")] = gv * values.detach()
                A[r, graph.nodes("error")] = (ge * error.detach()).sum(-1)
                A[r, graph.nodes("token")] = (gx * tv).sum(-1)
        return A

    return f


def test_token_value_ln1_normalised_is_named():
    err = assert_fails(checks.test_attribution_edges, _ae("x1_value"), "token_value")
    assert "LN1-normalised" in str(err) and "other columns are right" in str(err)


def test_token_value_mlp_in_is_named():
    err = assert_fails(checks.test_attribution_edges, _ae("mlp_in_value"), "token_value")
    assert "mlp_in" in str(err)
