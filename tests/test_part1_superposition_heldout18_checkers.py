"""Proofs for part 1 after the fresh41 measurement: an extra leading axis read back to the bias (b_final[None]),
p tiled per feature while the pair's draw is interleaved (p_tiled), an empty block ([inst, 0]) that a loop joined
with torch.cat / torch.stack cannot give (empty_block), an instance left empty (instance_never_drawn), and the
second feature of an anticorrelated pair never present (p / 1 - p)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes

E1 = "... inst feats, inst d feats -> ... inst d"
E2 = "... inst d, inst d feats -> ... inst feats"


def _il(a, b):
    return torch.stack([a, b], -1).flatten(-2)


def test_bias_extra_axis_named():
    def forward(self, x):
        h = einops.einsum(x, self.W, E1)
        return F.relu(einops.einsum(h, self.W, E2) + self.b_final[None])

    err = assert_fails(C.test_forward, type("TV", (ToyModel,), {"forward": forward}), "leading_dims")
    assert "extra leading axis of size 1" in err.hint and "b_final[None]" in err.hint
    assert "with b_final replaced by a scalar the output has the right shape" in err.hint


def test_input_extra_axis_lists_causes():
    def forward(self, x):
        x = x[None] if x.ndim == 2 else x
        h = einops.einsum(x, self.W, E1)
        return F.relu(einops.einsum(h, self.W, E2) + self.b_final)

    err = assert_fails(C.test_forward, type("TV", (ToyModel,), {"forward": forward}), "leading_dims")
    assert "extra leading axis" in err.hint and "e.g. a bias given an extra axis" in err.hint
    assert "x.unsqueeze(0)" in err.hint


def test_tiled_p_named():
    def gen(self, n, p):
        k, m = p.shape
        u = torch.rand(n, k, m).repeat_interleave(2, -1)
        return torch.where(u < p.repeat(1, 2), torch.rand(n, k, 2 * m), 0.0)

    cls = type("CV", (CorrelatedToyModel,), {"generate_correlated_features": gen})
    err = assert_fails(C.test_generate_correlated_features, cls, "p_tiled")
    assert "p.repeat(1, 2)" in err.hint


def test_correlated_loop_cat_empty_block():
    def gen(self, n, p):
        k, m = p.shape
        cols = []
        for j in range(m):
            pr = (torch.rand(n, k) < p[:, j]).unsqueeze(-1).expand(n, k, 2)
            cols.append(torch.where(pr, torch.rand(n, k, 2), 0.0))
        return torch.cat(cols, -1)

    cls = type("CV", (CorrelatedToyModel,), {"generate_correlated_features": gen})
    err = assert_fails(C.test_generate_correlated_features, cls, "empty_block")
    assert "empty [batch, inst, 0] tensor" in err.hint


def test_uncorrelated_loop_stack_empty_block():
    def gen(self, n, p):
        k = p.shape[0]
        cols = [torch.where(torch.rand(n, k) < p[:, i], torch.rand(n, k), 0.0) for i in range(p.shape[1])]
        return torch.stack(cols, -1)

    cls = type("CV", (CorrelatedToyModel,), {"generate_uncorrelated_features": gen})
    assert_fails(C.test_generate_uncorrelated_features, cls, "empty_block")


def test_correct_generators_pass_empty_block():
    def gen(self, n, p):
        k, m = p.shape
        u = torch.rand(n, k, m).repeat_interleave(2, -1)
        return torch.where(u < p.repeat_interleave(2, -1), torch.rand(n, k, 2 * m), 0.0)

    assert_passes(
        C.test_generate_correlated_features, type("CV", (CorrelatedToyModel,), {"generate_correlated_features": gen})
    )


def test_last_instance_empty_named():
    def generate_batch(self, n):
        out = torch.zeros(n, self.cfg.n_inst, self.cfg.n_features)
        for i in range(self.cfg.n_inst - 1):
            pr = torch.rand(n, self.cfg.n_features) < self.feature_probability[i]
            out[:, i] = torch.where(pr, torch.rand(n, self.cfg.n_features), 0.0)
        return out

    cls = type("TV", (ToyModel,), {"generate_batch": generate_batch})
    err = assert_fails(C.test_generate_batch, cls, "instance_never_drawn")
    assert "range(n_inst - 1)" in err.hint


def test_anticorrelated_second_never_named():
    def gen(self, n, p):
        k, m = p.shape
        f = torch.rand(n, k, m) < p
        s = ~f & (torch.rand(n, k, m) < p / 1 - p)
        return torch.where(_il(f, s), torch.rand(n, k, 2 * m), 0.0)

    cls = type("CV", (CorrelatedToyModel,), {"generate_anticorrelated_features": gen})
    err = assert_fails(C.test_generate_anticorrelated_features, cls, "presence_probability")
    assert "the second is never present" in err.hint and "p / (1 - p)" in err.hint
