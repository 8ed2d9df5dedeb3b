"""Proofs for part 2 after held-out round BB (fresh55).

* The forward passes masked by their input (`* (x > 0)`, `* (x != 0)`, `* (x >= 0)`: 0 for absent or negative
  features) are named (`output_masked`, shared with part 1), no longer read back as a bias term or moved bias.
* Only the weights term masked by the input (ReLU(W2 h · (x != 0) + b)) is named (`interference_masked`).
* The ReLU applied to the weight product, ReLU(ReLU(WᵀW) x + b) or ReLU(ReLU(W2 W1) x + b), in place of the hidden
  layer is named (`relu_on_weights`), not only "the hidden nonlinearity is the identity".
* A softmax over the neurons where the hidden ReLU belongs is named (`hidden_softmax`, an axis statistic).
* A size clash inside the forward pass is named by the axes that met (`axes_met`, part 1's reading, now in part 2's
  forward checks too): torch.where(h > 0, h, torch.zeros_like(x)) puts d_hidden against feats.
* Values min-max rescaled from a normal draw onto [-1, 1] are read back as a normal draw (`value_distribution`), no
  longer as values filling only part of the range.
* The loss as a norm where its square belongs (vector_norm per instance, divided by B·F) is named (`loss_root`, part
  1's relation; the undivided norm was already a `loss_reduction`).
* Presence drawn against p rounded to 1 decimal is read back (`presence_rounded`, part 1's rate causes).
The round's correct variants pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes
from tests.test_part2_privileged_basis_heldout13_checkers import _cv, _shape


def _masked(cls, mask):
    return type("Masked", (cls,), {"forward": lambda self, x: cls.forward(self, x) * mask(x)})


def test_output_masked_by_input_named():
    err = assert_fails(C.test_neuron_forward, _masked(NeuronModel, lambda x: x != 0), "output_masked")
    assert "* (x != 0)" in err.hint
    err = assert_fails(C.test_computation_forward, _masked(NeuronComputationModel, lambda x: x >= 0), "output_masked")
    assert "negative (x < 0)" in err.hint


def test_interference_masked_named():
    def forward(self, x):
        h = F.relu(einops.einsum(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f") * (x != 0) + self.b_final)

    err = assert_fails(C.test_computation_forward, _cv(forward=forward), "interference_masked")
    assert "* (x != 0)" in err.hint


def test_hidden_softmax_named():
    def forward(self, x):
        h = torch.softmax(einops.einsum(x, self.W1, "... i f, i d f -> ... i d"), dim=-1)
        return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)

    err = assert_fails(C.test_computation_forward, _cv(forward=forward), "hidden_softmax")
    assert "softmax(h, dim=-1)" in err.hint


def test_hidden_against_feature_axis_named():
    def forward(self, x):
        h = einops.einsum(x, self.W, "... i f, i d f -> ... i d")
        h = torch.where(h > 0, h, torch.zeros_like(x))  # zeros of the input's shape
        return F.relu(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final)

    err = assert_fails(C.test_neuron_forward, type("N", (NeuronModel,), {"forward": forward}), "axes_met")
    assert "zeros_like(x)" in err.hint


def test_relu_on_weight_product_named():
    def forward(self, x):
        wtw = F.relu(einops.einsum(self.W, self.W, "inst d f, inst d g -> inst f g"))
        return F.relu(einops.einsum(x, wtw, "... inst f, inst f g -> ... inst g") + self.b_final)

    err = assert_fails(C.test_neuron_forward, type("N", (NeuronModel,), {"forward": forward}), "relu_on_weights")
    assert "WᵀW" in err.hint

    def forward2(self, x):
        product = F.relu(torch.einsum("ifd,idg->ifg", self.W2, self.W1))
        return F.relu(torch.einsum("...ig,ifg->...if", x, product) + self.b_final)

    err = assert_fails(C.test_computation_forward, _cv(forward=forward2), "relu_on_weights")
    assert "W2 W1" in err.hint


def test_rounded_p_read_back():
    def generate_batch(self, n):
        s = _shape(self, n)
        present = torch.rand(s) < self.feature_probability.round(decimals=1)
        return torch.where(present, 2 * torch.rand(s) - 1, 0.0)

    err = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "presence_rounded")
    assert "p.round(decimals=1)" in err.hint


def test_min_max_normal_values_read_back():
    def generate_batch(self, n):
        s = _shape(self, n)
        z = torch.randn(s)
        return torch.where(torch.rand(s) < self.feature_probability, 2 * (z - z.min()) / (z.max() - z.min()) - 1, 0.0)

    err = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "value_distribution")
    assert "bell-shaped" in err.hint and "fill only" not in err.hint


def test_norm_loss_named():
    def loss(self, out, batch):
        d = self.importance.sqrt() * (batch.abs() - out)
        return torch.linalg.vector_norm(d, dim=(0, 2)).sum() / (out.shape[0] * out.shape[2])

    err = assert_fails(C.test_computation_calculate_loss, _cv(calculate_loss=loss), "loss_root")
    assert "1/√(B·F)" in err.hint


# ---- the round's correct variants
def _half_abs(self, x):
    h = torch.einsum("...if,idf->...id", x, self.W)
    return torch.einsum("...id,idf->...if", (h + h.abs()) / 2, self.W).add(self.b_final).clamp(min=0)


def _sign_from_presence(self, n):
    s, p = _shape(self, n), self.feature_probability
    u = torch.rand(s)
    return (u < p) * torch.where(u < p / 2, 1.0, -1.0) * torch.rand(s)  # given u < p, u < p/2 is a fair coin


def _loss_swapped(self, out, batch):
    return super(NeuronComputationModel, self).calculate_loss(batch.abs(), out)  # (|x| - out)² is symmetric


def test_round_bb_correct_variants_pass():
    assert_passes(C.test_neuron_forward, type("N", (NeuronModel,), {"forward": _half_abs}))
    assert_passes(C.test_computation_generate_batch, _cv(generate_batch=_sign_from_presence))
    assert_passes(C.test_computation_calculate_loss, _cv(calculate_loss=_loss_swapped))
