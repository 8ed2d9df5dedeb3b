"""Proofs for the part 6b checkers: the transcoder's gate compared on x @ W_enc without b_enc, the skip term of the
local replacement model fed the raw embeddings or LN1's output, the logit rows of the adjacency written right after
the latent rows (which node's edges each misplaced row holds), the edges as gradients without the source's value,
and the vector edges as magnitudes (|grad|·|vector|) where a signed dot product belongs."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def test_transcoder_gate_without_b_enc():
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = pre * ((x @ tc.W_enc) > tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
        return acts, out

    err = assert_fails(checks.test_transcoder_forward, transcoder_forward, "gate_quantity")
    assert "b_enc left out" in err.hint


@pytest.mark.parametrize("where", ["embeds", "x1"])
def test_linearised_skip_input(where):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale)
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
        mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        err = frozen.error if error is None else error
        mlp = f @ tc.W_dec + tc.b_dec + tc.skip(embeds if where == "embeds" else x1) + err
        return pre, ln(mid + mlp, frozen.final_scale) @ model.W_U + model.b_U

    assert_fails(checks.test_linearised_forward, linearised_forward, f"skip_{where}")


def _edges(bug):
    def attribution_edges(model, tc, frozen, graph):
        A = ref.attribution_edges(model, tc, frozen, graph)
        if bug == "rows_after_latents":
            lat, lo = graph.nodes("latent"), graph.nodes("logit")
            B = torch.zeros_like(A)
            B[lat] = A[lat]
            B[lat.stop : lat.stop + (lo.stop - lo.start)] = A[lo]
            return B
        if bug == "grad_only":
            B = A.clone()
            B[:, graph.nodes("latent")] = A[:, graph.nodes("latent")] / frozen.acts[graph.latent_pos, graph.latent_idx]
            B[:, graph.nodes("token")] *= 2.0  # the vector edges wrong too (grad summed over d_model, say)
            return B
        B = A.clone()  # magnitudes: |edge| times a factor >= 1 on the vector columns
        for name in ("error", "token"):
            B[:, graph.nodes(name)] = A[:, graph.nodes(name)].abs() * 1.5
        return B

    return attribution_edges


@pytest.mark.parametrize(
    ("bug", "code"),
    [("rows_after_latents", "rows_misplaced"), ("grad_only", "gradient_only"), ("magnitude", "vector_magnitude")],
)
def test_attribution_edges_named(bug, code):
    err = assert_fails(checks.test_attribution_edges, _edges(bug), code)
    if bug == "grad_only":
        assert "gradients alone" in err.message
