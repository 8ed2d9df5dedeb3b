"""Held-out round AX (fresh49), part 6b: quantile_examples with pos = i - i // seq_len (the hint guessed division by
the number of sequences) now reads each index back as a formula of the flat index and names the one that matches;
attribution_edges with token edges grad.sum(-1) * embeds.sum(-1) (the zero-columns hint named neither that nor its
family) now names the family "the gradient summed over d_model before it meets the vector"; the round's correct
variants still pass."""

import torch

import solutions.part6b_circuits as R
import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------- quantile_examples
def _qe(bug: str = ""):
    def f(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, seq = flat.max(), acts.shape[1]
        out = []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            inb = (flat > lo) & (flat <= hi)
            n = min(k, int(inb.sum()))
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            pos = ch - (ch // seq) if bug == "seq_of_pos" else ch % seq
            out.append((flat[ch], ch // seq, pos))
        return out

    return f


def test_fresh49_position_as_index_minus_sequence_index_named():
    err = assert_fails(checks.test_quantile_examples, _qe("seq_of_pos"), "indices")
    assert "i - i // seq_len" in str(err) and "number of sequences" not in err.hint


def test_fresh49_ok_width_subtraction_passes():
    def qe_nbands_from_k(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, seq = flat.max(), acts.shape[1]
        out = []
        width = top / n_bands
        for j in range(n_bands):
            hi = top - j * width
            lo = hi - width
            idx = ((flat > lo) & (flat <= hi)).nonzero().flatten()
            d = (flat[idx] - (lo + hi) / 2).abs()
            idx = idx[d.argsort()[:k]]
            idx = idx[flat[idx].argsort(descending=True)]
            out.append((flat[idx], torch.div(idx, seq, rounding_mode="floor"), idx % seq))
        return out

    assert_passes(checks.test_quantile_examples, qe_nbands_from_k)


def test_fresh49_ok_reads_original_acts_passes():
    def qe_band_lo_from_hi(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, seq = flat.max(), acts.shape[1]
        out = []
        for j in range(n_bands):
            hi = top * (n_bands - j) / n_bands
            lo = top * (n_bands - j - 1) / n_bands
            inb = (flat > lo) & (flat <= hi) & (acts.flatten() > 0)
            n = min(k, int(inb.sum()))
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            out.append((acts.flatten()[ch], ch // seq, ch % seq))
        return out

    assert_passes(checks.test_quantile_examples, qe_band_lo_from_hi)


# ------------------------------------------------------------------------------------------- attribution_edges
def _ae_product_of_sums(model, tc, frozen, graph):
    A = R.attribution_edges(model, tc, frozen, graph)
    pos, idx = graph.latent_pos, graph.latent_idx
    with torch.enable_grad():
        emb = frozen.embeds.detach().clone().requires_grad_(True)
        err = frozen.error.detach().clone().requires_grad_(True)
        val = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
        lat = torch.zeros_like(frozen.acts)
        lat[pos, idx] = val
        pre, logits = R.linearised_forward(model, tc, frozen, emb, lat, err)
        tg = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        rows = torch.arange(graph.n_nodes)
        rows = torch.cat([rows[graph.nodes("latent")], rows[graph.nodes("logit")]])
        for row, t in zip(rows.tolist(), tg, strict=True):
            (gx,) = torch.autograd.grad(t, (emb,), retain_graph=True)
            A[row, graph.nodes("token")] = gx.sum(-1) * emb.detach().sum(-1)
    return A


def test_fresh49_token_edge_product_of_sums_named():
    err = assert_fails(checks.test_attribution_edges, _ae_product_of_sums, "token_nodes")
    assert "product of sums" in err.hint and "summed over d_model before it meets the vector" in err.hint
