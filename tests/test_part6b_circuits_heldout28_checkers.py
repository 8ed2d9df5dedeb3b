"""A held-out part 6b mistake: attribution_edges' adjacency allocated as float64 meets the checker's float32
arithmetic first; the dtype clash is named in one line (checking's generic reading), not as the checker's trouble."""

import torch

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward
from tests.proving import assert_fails


def test_float64_adjacency_is_named_as_a_dtype_clash():
    def attribution_edges(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes, dtype=torch.float64)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            latents = torch.zeros_like(frozen.acts)
            latents[pos, idx] = values
            pre, logits = linearised_forward(model, tc, frozen, embeds, latents, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            ar = torch.arange(graph.n_nodes)
            rows = torch.cat([ar[graph.nodes("latent")], ar[graph.nodes("logit")]])
            for row, t in zip(rows.tolist(), targets, strict=True):
                gv, ge, gt = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[row, graph.nodes("latent")] = (gv * values.detach()).double()
                A[row, graph.nodes("error")] = (ge * error.detach()).sum(-1).double()
                A[row, graph.nodes("token")] = (gt * embeds.detach()).sum(-1).double()
        return A

    err = assert_fails(checks.test_attribution_edges, attribution_edges, "dtype")
    assert "\n" not in err.message
