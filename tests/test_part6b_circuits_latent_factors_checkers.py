"""Proofs for part 6b's diagnoses from the fresh31 held-out measurement: a token view scaled by a norm of the latent's
own vectors (the norm named), the rows of |A| averaged instead of summed in node_influence, and position 0 removed
after picking the k closest examples in quantile_examples (a band with k members and a position-0 entry at its
middle returns fewer than k)."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def test_de_embedding_scaled_by_the_decoder_row_norm_is_named():
    impl = lambda model, tc, i: (model.W_E @ tc.W_enc[:, i]) * tc.W_dec[i].norm()
    failure = assert_fails(checks.test_latent_de_embedding, impl, "latent_norm_factor")
    assert "= ‖W_dec[latent]‖ (the decoder row's norm)" in failure.hint


def test_logit_effect_scaled_by_the_encoder_column_norm_is_named():
    impl = lambda model, tc, i: (tc.W_dec[i] @ model.W_U) * tc.W_enc[:, i].norm()
    failure = assert_fails(checks.test_latent_logit_effect, impl, "latent_norm_factor")
    assert "‖W_enc[:, latent]‖ (the encoder column's norm)" in failure.hint


def _row_mean_influence(adjacency, w):
    a = adjacency.abs()
    a = a / (a != 0).sum(-1, keepdim=True).clamp_min(1)
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return w @ (torch.linalg.inv(eye - a) - eye)


def test_node_influence_rows_averaged_not_summed_is_named():
    failure = assert_fails(checks.test_node_influence, _row_mean_influence, "row_mean")
    assert "count of nonzero entries (a mean), not its sum" in failure.hint


def _bos_removed_after(acts, k, n_bands=4):
    seq, flat = acts.shape[1], acts.flatten()
    top, groups = acts[:, 1:].max(), []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        in_band = (flat > lo) & (flat <= hi)
        d = torch.where(in_band, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
        chosen = d.topk(min(k, int(in_band.sum())), largest=False).indices
        chosen = chosen[chosen % seq != 0]
        chosen = chosen[flat[chosen].argsort(descending=True)]
        groups.append((flat[chosen], chosen // seq, chosen % seq))
    return groups


def test_quantile_examples_position_zero_removed_after_choosing_is_named():
    failure = assert_fails(checks.test_quantile_examples, _bos_removed_after, "bos_after_choosing")
    assert "position 0 removed after choosing: exclude it before picking the k closest" in failure.hint


def test_the_quantile_inputs_hold_a_band_with_k_members_and_a_position_zero_entry_at_its_middle():
    acts, k, n = checks._quantile_inputs(torch.device("cpu")), 3, 4
    m = float(acts[:, 1:].max())
    found = False
    for j in range(n):
        lo, hi = m * (n - j - 1) / n, m * (n - j) / n
        members = int(((acts[:, 1:] > lo) & (acts[:, 1:] <= hi)).sum())
        bos_mid = bool(((acts[:, 0] - (lo + hi) / 2).abs() < (hi - lo) / 20).any())
        found |= members > k and bos_mid
    assert found
    assert ref.quantile_examples(acts, k, n) is not None
