"""Held-out round AT (part 6b): row sums without keepdim in node_influence (column j divided by row j's sum) named
as the broadcast slip, a band's lower edge made inclusive in quantile_examples told apart from choosing outside the
band, LN centring over the positions in linearised_forward, and a BOS embedding that is no leaf in
attribution_edges; plus the round's correct variants."""

import einops
import torch

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward as REF_LF
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------------ node_influence
def test_row_sums_without_keepdim_are_named_as_the_broadcast_slip():
    def node_influence(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1).clamp_min(1e-12)  # [n]: broadcasts along the columns
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, node_influence, "keepdim")
    assert "keepdim" in err.hint


def test_row_sums_without_keepdim_and_zero_sums_set_to_1_are_named_too():
    def node_influence(adjacency, w):
        a = adjacency.abs()
        s = a.sum(dim=1)
        a = a / torch.where(s == 0, torch.ones_like(s), s)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    assert_fails(checks.test_node_influence, node_influence, "keepdim")


def test_solve_with_nan_to_num_passes():
    def node_influence(adjacency, w):
        a = adjacency.abs()
        a = torch.nan_to_num(a / a.sum(1, keepdim=True), nan=0.0)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return torch.linalg.solve((eye - a).T, w) - w  # w (I - Â)⁻¹ - w

    assert_passes(checks.test_node_influence, node_influence)


def test_power_series_with_n_plus_1_terms_passes():
    def node_influence(adjacency, w):
        a = adjacency.abs()
        s = a.sum(-1, keepdim=True)
        a = torch.where(s > 0, a / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(a))
        out, v = torch.zeros_like(w), w
        for _ in range(len(a) + 1):
            v = v @ a
            out = out + v
        return out

    assert_passes(checks.test_node_influence, node_influence)


# ------------------------------------------------------------------------------------------------ quantile_examples
def _bands(inclusive_bottom):
    def quantile_examples(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, groups = flat.max(), []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            inb = ((flat >= lo) if inclusive_bottom else (flat > lo)) & (flat <= hi)
            n = min(k, int(inb.sum()))
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // acts.shape[1], ch % acts.shape[1]))
        return groups

    return quantile_examples


def test_band_closed_at_its_lower_edge_is_named_not_outside_the_band():
    err = assert_fails(checks.test_quantile_examples, _bands(inclusive_bottom=True), "closed_bottom")
    assert "a > lo" in err.hint


def test_choosing_outside_the_band_is_still_named_outside_band():
    def quantile_examples(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, groups = flat.max(), []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            ch = (flat - (lo + hi) / 2).abs().topk(k, largest=False).indices  # the band is never masked
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // acts.shape[1], ch % acts.shape[1]))
        return groups

    assert_fails(checks.test_quantile_examples, quantile_examples, "outside_band")


def test_open_bottom_bands_pass():
    assert_passes(checks.test_quantile_examples, _bands(inclusive_bottom=False))


def test_sliced_bos_with_topk_then_inf_filter_passes():
    def quantile_examples(acts, k, n_bands=4):
        a = acts[:, 1:].reshape(-1)
        seq1, m, out = acts.shape[1] - 1, acts[:, 1:].max(), []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            d = (a - (lo + hi) / 2).abs().masked_fill(~((a > lo) & (a <= hi)), float("inf"))
            vals, ch = d.topk(min(k, a.numel()), largest=False)
            ch = ch[torch.isfinite(vals)]
            ch = ch[torch.sort(a[ch], descending=True, stable=True).indices]
            out.append((a[ch], ch // seq1, ch % seq1 + 1))
        return out

    assert_passes(checks.test_quantile_examples, quantile_examples)


# ------------------------------------------------------------------------------------------------ linearised_forward
def _forward(centre_dim, bv_after=False):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s, dim=-1: (v - v.mean(dim, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale, centre_dim)
        b_V = model.b_V[0][:, None]
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + (0 if bv_after else b_V)
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e") + (b_V if bv_after else 0)
        mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
        return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


def test_ln1_centred_over_the_positions_is_named():
    err = assert_fails(checks.test_linearised_forward, _forward(centre_dim=0), "ln1_mean_positions")
    assert "POSITIONS" in err.hint


def test_every_ln_centred_over_the_positions_is_named():
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(0, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
        mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
        return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U

    assert_fails(checks.test_linearised_forward, linearised_forward, "ln_mean_positions")


def test_b_V_added_after_the_pattern_mix_passes():
    assert_passes(checks.test_linearised_forward, _forward(centre_dim=-1, bv_after=True))


# ------------------------------------------------------------------------------------------------ attribution_edges
def _edges(bos_fixed):
    def attribution_edges(model, tc, frozen, graph):
        n = graph.n_nodes
        A = torch.zeros(n, n, device=frozen.embeds.device)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            emb_in = torch.cat([frozen.embeds[:1].detach(), embeds[1:]]) if bos_fixed else embeds
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[pos, idx] = values
            pre, logits = REF_LF(model, tc, frozen, emb_in, lat, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            rows = list(range(len(pos))) + list(range(graph.nodes("logit").start, n))
            for r, t in zip(rows, targets, strict=True):
                gl, ge, gx = torch.autograd.grad(t, (values, error, embeds), retain_graph=True, allow_unused=True)
                gl = torch.zeros_like(values) if gl is None else gl
                A[r, graph.nodes("latent")] = (gl * values).detach()
                A[r, graph.nodes("error")] = (ge * error).sum(-1).detach()
                A[r, graph.nodes("token")] = (gx * embeds).sum(-1).detach()
        return A

    return attribution_edges


def test_bos_embedding_fed_as_a_constant_is_named_at_the_bos_column():
    err = assert_fails(checks.test_attribution_edges, _edges(bos_fixed=True), "bos_not_leaf")
    assert "BOS" in err.message and "position 0" in err.hint


def test_edges_with_every_embedding_a_leaf_pass():
    assert_passes(checks.test_attribution_edges, _edges(bos_fixed=False))
