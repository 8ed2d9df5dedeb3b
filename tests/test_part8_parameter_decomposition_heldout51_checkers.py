"""Proofs for part 8 after held-out round AX (fresh49).

* faithfulness_loss: a divisor of 15 is the last matrix's entries and also the largest matrix's (a max over the
  matrices); the inputs can't tell them apart, so the hint names both.
* causal_importance: h standardised over the batch is read back (`batch_standardised`) once an example's importances
  are seen to depend on the rest of its batch (it no longer blames a per-example normalisation); b_out added a second
  time is read back (`b_out_twice`).
* sample_masks: r = sqrt(u) is named from the law of the pooled draws (KS within the DKW bound).
* stochastic_reconstruction_losses: a loss rebuilt with torch.tensor([...]) carries no graph: observed and named.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _faith_N_max(weights, U, V):
    se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    return (se / max(W[0].numel() for W in weights)).sum()


def _faith_stack(weights, U, V):
    sq = [(W - torch.bmm(u, v)).flatten(1).pow(2).sum(1) for W, u, v in zip(weights, U, V, strict=True)]
    per = torch.stack(sq, 0)
    return per.sum() / sum(W.shape[-1] * W.shape[-2] for W in weights)


def _faith_numel_div(weights, U, V):
    n = sum(W.numel() for W in weights) // weights[0].shape[0]
    return sum(F.mse_loss(u @ v, W, reduction="sum") for W, u, v in zip(weights, U, V, strict=True)) / n


class _CIBatchNorm(S.CausalImportance):
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        h = (h - h.mean(0, keepdim=True)) / (h.std(0, keepdim=True) + 1e-6)
        z = (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


class _CIUpperBout2(S.CausalImportance):
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        z = (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z + self.b_out, self.alpha)


class _CIAddcmul(S.CausalImportance):
    def forward(self, a, V):
        h = (a[:, :, None, :] * V[None]).sum(-1)
        hid = F.gelu(torch.addcmul(self.b_in, h.unsqueeze(-1), self.w_in))
        z = torch.einsum("bicd,icd->bic", hid, self.w_out) + self.b_out
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


def _masks_sqrt_r(cis):
    return [g + (1 - g) * torch.rand_like(g).sqrt() for g in cis], [torch.rand_like(g[..., 0]) for g in cis]


def _masks_complement(cis):
    ms, ds = [], []
    for g in cis:
        r = torch.rand_like(g)
        ms.append(1 - (1 - g) * (1 - r))
        ds.append(torch.rand(g.shape[:-1], dtype=g.dtype, device=g.device))
    return ms, ds


def _loss(chain, U, V, x, masks, dms, layers):
    def layer_fn(k, a):
        if k in layers:
            return S.masked_product(a, chain.weights[k], U[k], V[k], masks[k], dms[k])
        return einops.einsum(a, chain.weights[k], "batch inst d_in, inst d_out d_in -> batch inst d_out")

    return (chain(x, layer_fn) - chain(x)).pow(2).mean((0, 2)).sum()


def _rec_tensor_list(chain, U, V, x, masks, dms):
    n = len(chain.weights)
    full = _loss(chain, U, V, x, masks, dms, set(range(n)))
    return full, torch.tensor([_loss(chain, U, V, x, masks, dms, {k}).item() for k in range(n)]).mean()


def test_faithfulness_largest_matrix_count_names_both_readings():
    failure = assert_fails(checks.test_faithfulness_loss, _faith_N_max, "wrong_count")
    assert "the largest matrix (max over l" in failure.hint and "the last matrix" in failure.hint


def test_faithfulness_correct_variants_pass():
    assert_passes(checks.test_faithfulness_loss, _faith_stack)
    assert_passes(checks.test_faithfulness_loss, _faith_numel_div)


def test_causal_importance_batch_standardised_is_read_back():
    failure = assert_fails(checks.test_causal_importance, _CIBatchNorm, "batch_standardised")
    assert "rescaled" not in failure.hint


def test_causal_importance_b_out_twice_is_read_back():
    assert_fails(checks.test_causal_importance, _CIUpperBout2, "b_out_twice")


def test_causal_importance_addcmul_passes():
    assert_passes(checks.test_causal_importance, _CIAddcmul)


def test_sample_masks_sqrt_uniform_is_named():
    failure = assert_fails(checks.test_sample_masks, _masks_sqrt_r, "not_uniform")
    assert "r.sqrt()" in failure.hint


def test_sample_masks_complement_form_passes():
    assert_passes(checks.test_sample_masks, _masks_complement)


def test_recon_layerwise_rebuilt_with_torch_tensor_is_named():
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, _rec_tensor_list, "grad")
    assert "layerwise loss carries no gradient" in failure.hint
