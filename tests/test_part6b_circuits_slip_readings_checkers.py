"""Proofs for part6b_circuits_slip_readings: attribution rows left empty (only the last position's latents as targets),
rows rescaled per target (shares of the target's value), error edges from the token gradient, the identity
subtracted twice or the series started at Â² in the node influence, and band choices that let out-of-band examples
win or leave position 0 in for all but the first sequence."""

from __future__ import annotations

import torch

import solutions.part6b_circuits as ref
import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _edges(mode):
    def impl(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            latents = torch.zeros_like(frozen.acts).index_put((pos, idx), values)
            pre, logits = ref.linearised_forward(model, tc, frozen, embeds, latents, error)
            lat = torch.arange(graph.n_nodes)[graph.nodes("latent")]
            rows = torch.cat([lat, torch.arange(graph.n_nodes)[graph.nodes("logit")]])
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            for i, (row, t) in enumerate(zip(rows.tolist(), targets, strict=True)):
                gv, ge, gt = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[row, graph.nodes("latent")] = gv * values.detach()
                A[row, graph.nodes("error")] = ((gt if mode == "token_grad" else ge) * error.detach()).sum(-1)
                A[row, graph.nodes("token")] = (gt * embeds.detach()).sum(-1)
                if mode == "shares":
                    A[row] = A[row] / t.detach()
                if mode == "factor":
                    A[row] = A[row] * (1 + 0.1 * i)
        if mode == "last_only":
            A[lat[graph.latent_pos != graph.n_pos - 1]] = 0.0
        if mode == "logit_row":
            A[graph.nodes("logit").start] = 0.0
        return A

    return impl


def test_error_edges_from_the_token_gradient_are_named():
    failure = assert_fails(checks.test_attribution_edges, _edges("token_grad"), "swapped_gradient")
    assert "grad at the token node · error" in failure.hint


def test_rows_divided_by_the_target_value_are_named():
    failure = assert_fails(checks.test_attribution_edges, _edges("shares"), "row_shares")
    assert "divided by its target's value" in failure.message


def test_rows_times_a_factor_of_their_own_are_read_back():
    failure = assert_fails(checks.test_attribution_edges, _edges("factor"), "row_factor")
    assert "from 1 to" in failure.message


def test_only_the_last_position_latents_as_targets_is_named():
    failure = assert_fails(checks.test_attribution_edges, _edges("last_only"), "empty_rows")
    assert "are all zero" in failure.message and "the other rows are right" in failure.message
    assert "every latent at every position is a target, not only the last position's" in failure.hint


def test_an_empty_logit_row_is_named_generally():
    failure = assert_fails(checks.test_attribution_edges, _edges("logit_row"), "empty_rows")
    assert "rows of 1 targets are all zero (0 latent, 1 logit" in failure.message
    assert "every logit node is a target" in failure.hint


def _influence(extra_identity):
    def impl(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        if extra_identity == "second":
            return w @ (torch.linalg.inv(eye - a) @ a @ a)
        return w @ (torch.linalg.inv(eye - a) - eye + extra_identity * eye)

    return impl


def test_identity_subtracted_twice_is_named():
    def impl(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) @ a - eye)

    failure = assert_fails(checks.test_node_influence, impl, "identity_twice")
    assert "subtracted twice" in failure.hint


def test_series_started_at_the_second_power_is_named():
    failure = assert_fails(checks.test_node_influence, _influence("second"), "series_from_second")
    assert "starts at Â²" in failure.hint


def test_other_identity_terms_list_the_identity_among_the_causes():
    failure = assert_fails(checks.test_node_influence, _influence(-2.5), "identity_term")
    assert "only at the 2 nodes that carry a logit weight" in failure.message and "-2.5 ×" in failure.message
    assert "a term ± I (the identity) added or subtracted" in failure.hint


def _quantiles(mode):
    def impl(acts, k, n_bands):
        flat = acts.clone()
        if mode == "flat0":
            flat = flat.flatten()
        flat[0] = 0 if mode != "mask0" else flat[0]
        if mode == "mask0":
            flat[:, 0] = 0
        flat = flat.flatten()
        top, groups = flat.max(), []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            in_band = (flat > lo) & (flat <= hi)
            n = min(k, int(in_band.sum()))
            fill = 0.0 if mode == "mask0" else float("inf")
            distance = torch.where(in_band, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, fill))
            chosen = distance.topk(n, largest=False).indices
            chosen = chosen[flat[chosen].argsort(descending=True)]
            groups.append((flat[chosen], chosen // acts.shape[1], chosen % acts.shape[1]))
        return groups

    return impl


def test_out_of_band_distances_masked_with_zero_are_named():
    failure = assert_fails(checks.test_quantile_examples, _quantiles("mask0"), "mask_zero")
    assert "float('inf')" in failure.hint


def test_position_zero_excluded_in_the_first_sequence_only_is_named():
    failure = assert_fails(checks.test_quantile_examples, _quantiles("flat0"), "bos_some")
    assert "position 0 excluded only in the first sequence: exclude position 0 of every sequence" in failure.hint


def test_the_first_sequence_zeroed_is_named():
    failure = assert_fails(checks.test_quantile_examples, _quantiles("row0"), "bos_some")
    assert "acts[0] = 0" in failure.hint
