"""Proofs for part 1 after the fresh33 measurement: a pair loop that stops one short (the last pair never drawn),
the anticorrelated thresholds swapped (activity 1/2, choice 2p), a combined batch holding one block twice (a
copy-paste, detected by identical columns), and a block whose probabilities were read from p.T (its pair count on
the instance axis, named from torch.cat's sizes); fresh36: a reshape where the transpose of W belongs, named per
product (in both products the older reshaped_weights entry names it)."""

from __future__ import annotations

import pytest
import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _variant(**methods):
    return type("Variant", (CorrelatedToyModel,), methods)


def _lay(first, second):
    return torch.stack([first, second], -1).flatten(-2)


def _corr_loop(skip_first):
    def generate(self, n, p):
        k, m = p.shape
        present, values, out = torch.rand(n, k, m) < p, torch.rand(n, k, 2 * m), torch.zeros(n, k, 2 * m)
        for j in range(1, m) if skip_first else range(m - 1):
            out[..., 2 * j : 2 * j + 2] = torch.where(present[..., j : j + 1], values[..., 2 * j : 2 * j + 2], 0.0)
        return out

    return generate


@pytest.mark.parametrize("skip_first, which", [(False, "last"), (True, "first")])
def test_pair_loop_off_by_one_named(skip_first, which):
    failure = assert_fails(
        p1.test_generate_correlated_features,
        _variant(generate_correlated_features=_corr_loop(skip_first)),
        "edge_never_drawn",
    )
    assert f"the {which} pair" in failure.hint and "off-by-one" in failure.hint


@pytest.mark.parametrize("coin_first", [True, False])
def test_anticorrelated_thresholds_swapped_named(coin_first):
    def generate(self, n, p):
        k, m = p.shape
        active, coin = torch.rand(n, k, m) < 0.5, torch.rand(n, k, m) < 2 * p
        first, second = (active & coin, active & ~coin) if coin_first else (active & ~coin, active & coin)
        return torch.where(_lay(first, second), torch.rand(n, k, 2 * m), 0.0)

    failure = assert_fails(
        p1.test_generate_anticorrelated_features,
        _variant(generate_anticorrelated_features=generate),
        "anti_thresholds_swapped",
    )
    assert "swapped" in failure.hint and "1/2 - p" in failure.hint


def _blocks(self):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    return self.feature_probability, 2 * nc, 2 * (nc + na)


def test_block_concatenated_twice_named():
    def generate_batch(self, n):
        p, a, u = _blocks(self)
        corr = self.generate_correlated_features(n, p[:, 0:a:2])
        self.generate_anticorrelated_features(n, p[:, a:u:2])
        return torch.cat([corr, corr, self.generate_uncorrelated_features(n, p[:, u:])], -1)

    failure = assert_fails(p1.test_generate_combined_batch, _variant(generate_batch=generate_batch), "duplicated_block")
    assert "concatenated twice" in failure.hint and "anticorrelated block is missing" in failure.hint


@pytest.mark.parametrize("block", [1, 2])
def test_block_probabilities_from_p_transposed_named(block):
    def generate_batch(self, n):
        p, a, u = _blocks(self)
        pT = p.T
        anti = pT[a:u:2] if block == 1 else pT[a:u:2].T
        unc = pT[u:] if block == 2 else pT[u:].T
        return torch.cat(
            [
                self.generate_correlated_features(n, pT[0:a:2].T),
                self.generate_anticorrelated_features(n, anti),
                self.generate_uncorrelated_features(n, unc),
            ],
            -1,
        )

    failure = assert_fails(
        p1.test_generate_combined_batch, _variant(generate_batch=generate_batch), "p_transposed_block"
    )
    assert f"block {block}" in failure.hint and "p.T" in failure.hint


def _reshaped(where):
    """W.reshape(k, f, d) (memory order kept) where the transposed W [inst feats d] belongs, in either product."""

    def forward(self, x):
        k, d, f = self.W.shape
        Wr = self.W.reshape(k, f, d)
        W_down = Wr.transpose(-1, -2) if where in ("first", "both") else self.W
        h = torch.einsum("...if,idf->...id", x, W_down)
        W_up = Wr if where in ("second", "both") else self.W.transpose(-1, -2)
        return torch.relu(torch.einsum("...id,ifd->...if", h, W_up) + self.b_final)

    return forward


@pytest.mark.parametrize(("where", "named"), [("first", "first product"), ("second", "second product")])
def test_forward_reshape_for_transpose_is_named(where, named):
    err = assert_fails(p1.test_forward, type("M", (ToyModel,), {"forward": _reshaped(where)}), "reshape_transpose")
    assert named in err.hint and "W.reshape(3, 5, 2)" in err.hint and "transpose" in err.hint


def test_forward_reshape_in_both_products_is_named():
    err = assert_fails(p1.test_forward, type("M", (ToyModel,), {"forward": _reshaped("both")}), "reshaped_weights")
    assert "transpose" in err.hint


def test_forward_with_mT_still_passes():
    def forward(self, x):
        h = torch.einsum("...if,ifd->...id", x, self.W.mT)
        return torch.relu(torch.einsum("...id,ifd->...if", h, self.W.mT) + self.b_final)

    assert_passes(p1.test_forward, type("M", (ToyModel,), {"forward": forward}))
