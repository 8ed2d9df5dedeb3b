"""Proofs for part 8 after held-out round AW (fresh48).

* ablation_losses is also run in float64 (the main chain, terms and x): a .float() cast inside is `float32_result`.
* importance_minimality_loss: a batch mean written with // is read back as `floor_division` (it was told "eps ignored").
* causal_importance `lower_no_leak`: relu(z) before a correct lower sigmoid can't be told from a plain clamp; the hint
  says what was seen (no gradient where z < 0) and lists both.
"""

from __future__ import annotations

import einops
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


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
