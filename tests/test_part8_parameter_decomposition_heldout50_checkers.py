"""Proofs for part 8 after held-out round AW (fresh48).

* svd_terms and ablation_losses are also run in float64: a .float() cast inside is `float32_result`; svd_terms' float64
  W has an all-zero instance (every σ exactly 0), where u_k = W v_k / σ_k gives NaN, read back as `divided_by_sigma`.
* importance_minimality_loss: a batch mean written with // is read back as `floor_division` (it was told "eps ignored").
* causal_importance `lower_no_leak`: relu(z) before a correct lower sigmoid can't be told from a plain clamp; the hint
  says what was seen (no gradient where z < 0) and lists both.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _svd_U_from_W_over_S(W):
    _, Sv, Vh = torch.linalg.svd(W, full_matrices=False)
    U = (W @ Vh.mT) / Sv[:, None, :]
    return einops.einsum(U, Sv, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")


def _svd_float32(W):
    U, Sv, Vh = torch.linalg.svd(W.float(), full_matrices=False)
    return einops.einsum(U, Sv, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")


def _svd_W_v_vT(W):
    _, _, Vh = torch.linalg.svd(W, full_matrices=False)
    Wv = W @ Vh.mT
    return Wv.mT[..., :, :, None] * Vh[..., :, None, :]


def test_svd_terms_divided_by_sigma_is_read_back():
    assert_fails(checks.test_svd_terms, _svd_U_from_W_over_S, "divided_by_sigma")


def test_svd_terms_float32_cast_is_caught():
    assert_fails(checks.test_svd_terms, _svd_float32, "float32_result")


def test_svd_terms_w_v_vT_passes():
    assert_passes(checks.test_svd_terms, _svd_W_v_vT)


def test_ablation_float32_result_is_caught():
    assert_fails(
        checks.test_ablation_losses,
        lambda chain, terms, x: S.ablation_losses(chain, terms, x).float(),
        "float32_result",
    )


def _min_floor_div(cis, p, eps=1e-12):
    per = sum((g + eps).pow(p).sum(-1) for g in cis)
    return (per.sum(0) // per.shape[0]).sum()


def test_minimality_floor_division_is_named():
    assert_fails(checks.test_importance_minimality_loss, _min_floor_div, "floor_division")


def _ci_relu_z(self, a, V):
    h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
    hid = F.gelu(h[..., None] * self.w_in + self.b_in)
    z = F.relu((hid * self.w_out).sum(-1) + self.b_out)
    return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


def test_relu_before_the_sigmoids_is_listed_with_a_plain_clamp():
    CI = type("CI", (S.CausalImportance,), {"forward": _ci_relu_z})
    msg = assert_fails(checks.test_causal_importance, CI, "lower_no_leak")
    assert "clipped at 0" in str(msg)
