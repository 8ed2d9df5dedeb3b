"""Proofs for part 8 after the fresh43 measurement: a delta mask that reuses any column of the masks' own draw
(`delta_reuse`, here the last), a mean over outputs divided by d_in, exposed by a chain with d_out ≠ d_in
(`output_mean_by_d_in`), and an adversarial loop that stops once sources[0] stops changing (`stop_first_still`)."""

from __future__ import annotations

import torch

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def test_delta_from_last_column_named():
    def sm(cis):
        masks, deltas = [], []
        for g in cis:
            r = torch.rand_like(g)
            masks.append(g + (1 - g) * r)
            deltas.append(r[..., -1])
        return masks, deltas

    err = assert_fails(checks.test_sample_masks, sm, "delta_reuse")
    assert "subcomponent" in err.message


def test_output_mean_by_d_in_named():
    def rec(chain, U, V, x, masks, dms):
        y = chain(x)

        def loss(S):
            def f(n, a):
                if n in S:
                    return sol.masked_product(a, chain.weights[n], U[n], V[n], masks[n], dms[n])
                return torch.einsum("bid,iod->bio", a, chain.weights[n])

            return ((chain(x, f) - y).pow(2).sum(-1) / x.shape[-1]).mean(0).sum()

        L = len(chain.weights)
        return loss(set(range(L))), sum(loss({n}) for n in range(L)) / L

    err = assert_fails(checks.test_stochastic_reconstruction_losses, rec, "output_mean_by_d_in")
    assert "INPUT size" in err.hint


def test_stop_when_first_source_still_named():
    def adv(loss_fn, init, n, eta):
        s = [t.detach().clone() for t in init]
        for _ in range(n):
            s = [t.requires_grad_(True) for t in s]
            g = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                new = [(t + eta * gg.sign()).clamp(0, 1) for t, gg in zip(s, g, strict=True)]
            done = torch.equal(new[0], s[0].detach())
            s = new
            if done:
                break
        return [t.detach() for t in s]

    err = assert_fails(checks.test_adversarial_sources, adv, "stop_first_still")
    assert "sources[0]" in err.hint
