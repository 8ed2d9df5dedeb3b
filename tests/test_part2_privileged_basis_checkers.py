"""Proofs for part 2's checkers: the reference and differently written correct variants pass, realistic
buggy variants fail with the expected hint code, and stubs are reported as not done."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as checks
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_not_done, assert_passes


# --------------------------------------------------------------------------------------------
# NeuronModel.forward
# --------------------------------------------------------------------------------------------
class NeuronMatmul(NeuronModel):
    def forward(self, features):
        hidden = torch.relu(torch.matmul(self.W, features.unsqueeze(-1)).squeeze(-1))
        return torch.relu(torch.matmul(hidden.unsqueeze(-2), self.W).squeeze(-2) + self.b_final)


class NeuronTorchEinsum(NeuronModel):
    def forward(self, features):
        hidden = torch.einsum("...if,idf->...id", features, self.W).clamp(min=0)
        return (torch.einsum("...id,idf->...if", hidden, self.W) + self.b_final).clamp(min=0)


class NeuronFlatten(NeuronModel):
    """Flattens the leading axes, works instance-first with bmm, and restores the shape."""

    def forward(self, features):
        lead = features.shape[:-2]
        x = features.reshape(-1, *features.shape[-2:]).transpose(0, 1)  # inst batch feats
        hidden = F.relu(torch.bmm(x, self.W.transpose(1, 2)))
        out = F.relu(torch.bmm(hidden, self.W) + self.b_final[:, None, :])
        return out.transpose(0, 1).reshape(*lead, *features.shape[-2:])


class NeuronNoHiddenReLU(NeuronModel):
    def forward(self, features):
        hidden = einops.einsum(features, self.W, "... inst feats, inst d feats -> ... inst d")
        return F.relu(einops.einsum(hidden, self.W, "... inst d, inst d feats -> ... inst feats") + self.b_final)


class NeuronNoBias(NeuronModel):
    def forward(self, features):
        hidden = F.relu(einops.einsum(features, self.W, "... inst feats, inst d feats -> ... inst d"))
        return F.relu(einops.einsum(hidden, self.W, "... inst d, inst d feats -> ... inst feats"))


class NeuronBiasAfterReLU(NeuronModel):
    def forward(self, features):
        hidden = F.relu(einops.einsum(features, self.W, "... inst feats, inst d feats -> ... inst d"))
        return F.relu(einops.einsum(hidden, self.W, "... inst d, inst d feats -> ... inst feats")) + self.b_final


class NeuronNoOutputReLU(NeuronModel):
    def forward(self, features):
        hidden = F.relu(einops.einsum(features, self.W, "... inst feats, inst d feats -> ... inst d"))
        return einops.einsum(hidden, self.W, "... inst d, inst d feats -> ... inst feats") + self.b_final


class NeuronMixedInstances(NeuronModel):
    """A typo in the einsum: the instance axis of W is summed over."""

    def forward(self, features):
        hidden = F.relu(torch.einsum("...if,jdf->...id", features, self.W))
        return F.relu(torch.einsum("...id,idf->...if", hidden, self.W) + self.b_final)


class NeuronBatchOnly(NeuronModel):
    """Works for [batch inst feats] only."""

    def forward(self, features):
        hidden = F.relu(torch.einsum("bif,idf->bid", features, self.W))
        return F.relu(torch.einsum("bid,idf->bif", hidden, self.W) + self.b_final)


class NeuronDouble(NeuronModel):
    def forward(self, features):
        hidden = F.relu(torch.einsum("...if,idf->...id", features.double(), self.W.double()))
        return F.relu(torch.einsum("...id,idf->...if", hidden, self.W.double()) + self.b_final.double())


class NeuronStub(NeuronModel):
    def forward(self, features):
        raise NotImplementedError("not implemented yet")


@pytest.mark.parametrize("impl", [NeuronModel, NeuronMatmul, NeuronTorchEinsum, NeuronFlatten])
def test_neuron_forward_accepts(impl):
    assert_passes(checks.test_neuron_forward, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (NeuronNoHiddenReLU, "no_hidden_relu"),
        (NeuronNoBias, "bias"),
        (NeuronBiasAfterReLU, "bias_after_relu"),
        (NeuronNoOutputReLU, "no_output_relu"),
        (NeuronMixedInstances, "instances_mixed"),
        (NeuronBatchOnly, "leading_dims"),
        (NeuronDouble, "dtype"),
    ],
)
def test_neuron_forward_rejects(impl, code):
    assert_fails(checks.test_neuron_forward, impl, code)


def test_neuron_forward_stub():
    assert_not_done(checks.test_neuron_forward, NeuronStub)


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.forward
# --------------------------------------------------------------------------------------------
class CompMatmul(NeuronComputationModel):
    def forward(self, features):
        hidden = torch.relu((self.W1 @ features.unsqueeze(-1)).squeeze(-1))
        return torch.relu((self.W2 @ hidden.unsqueeze(-1)).squeeze(-1) + self.b_final)


class CompBroadcast(NeuronComputationModel):
    def forward(self, features):
        hidden = (features.unsqueeze(-2) * self.W1).sum(-1).clamp_min(0)
        out = (hidden.unsqueeze(-2) * self.W2).sum(-1)
        return torch.maximum(out + self.b_final, torch.zeros_like(out))


class CompTorchEinsum(NeuronComputationModel):
    def forward(self, features):
        hidden = F.relu(torch.einsum("...if,idf->...id", features, self.W1))
        return F.relu(torch.einsum("...id,ifd->...if", hidden, self.W2) + self.b_final)


def _comp(features, W1, W2, b, hidden_relu=True, out_relu=True, bias=True, bias_after=False, abs_in=False):
    x = features.abs() if abs_in else features
    hidden = einops.einsum(x, W1, "... inst feats, inst d feats -> ... inst d")
    if hidden_relu:
        hidden = F.relu(hidden)
    out = einops.einsum(hidden, W2, "... inst d, inst feats d -> ... inst feats")
    if bias and not bias_after:
        out = out + b
    if out_relu:
        out = F.relu(out)
    if bias_after:
        out = out + b
    return out


class CompNoHiddenReLU(NeuronComputationModel):
    def forward(self, features):
        return _comp(features, self.W1, self.W2, self.b_final, hidden_relu=False)


class CompNoBias(NeuronComputationModel):
    def forward(self, features):
        return _comp(features, self.W1, self.W2, self.b_final, bias=False)


class CompBiasAfterReLU(NeuronComputationModel):
    def forward(self, features):
        return _comp(features, self.W1, self.W2, self.b_final, bias_after=True)


class CompNoOutputReLU(NeuronComputationModel):
    def forward(self, features):
        return _comp(features, self.W1, self.W2, self.b_final, out_relu=False)


class CompAbsInput(NeuronComputationModel):
    def forward(self, features):
        return _comp(features, self.W1, self.W2, self.b_final, abs_in=True)


class CompTied(NeuronComputationModel):
    def forward(self, features):
        hidden = F.relu(einops.einsum(features, self.W1, "... inst feats, inst d feats -> ... inst d"))
        return F.relu(einops.einsum(hidden, self.W1, "... inst d, inst d feats -> ... inst feats") + self.b_final)


class CompMixedInstances(NeuronComputationModel):
    def forward(self, features):
        hidden = F.relu(torch.einsum("...if,idf->...id", features, self.W1))
        return F.relu(torch.einsum("...id,jfd->...if", hidden, self.W2) + self.b_final)


class CompStub(NeuronComputationModel):
    def forward(self, features):
        raise NotImplementedError("not implemented yet")


@pytest.mark.parametrize("impl", [NeuronComputationModel, CompMatmul, CompBroadcast, CompTorchEinsum])
def test_computation_forward_accepts(impl):
    assert_passes(checks.test_computation_forward, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (CompNoHiddenReLU, "no_hidden_relu"),
        (CompNoBias, "bias"),
        (CompBiasAfterReLU, "bias_after_relu"),
        (CompNoOutputReLU, "no_output_relu"),
        (CompAbsInput, "abs_in_forward"),
        (CompTied, "tied_weights"),
        (CompMixedInstances, "instances_mixed"),
    ],
)
def test_computation_forward_rejects(impl, code):
    assert_fails(checks.test_computation_forward, impl, code)


def test_computation_forward_stub():
    assert_not_done(checks.test_computation_forward, CompStub)


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.generate_batch
# --------------------------------------------------------------------------------------------
def _shape(model, batch_size):
    return (batch_size, model.cfg.n_inst, model.cfg.n_features)


class BatchUniformMinus(NeuronComputationModel):
    """Values as rand - rand' ... no: values as 1 - 2 * rand, presence from bernoulli."""

    def generate_batch(self, batch_size):
        p = self.feature_probability.expand(_shape(self, batch_size))
        present = torch.bernoulli(p).bool()
        values = 1 - 2 * torch.rand(_shape(self, batch_size), device=p.device)
        return values * present


class BatchUniform_(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        values = torch.empty(shape, device=self.b_final.device).uniform_(-1, 1)
        mask = torch.rand(shape, device=self.b_final.device) <= self.feature_probability
        return values.masked_fill(~mask, 0.0)


class BatchInstFirst(NeuronComputationModel):
    """Draws instance-first and permutes, with a single random tensor split in two."""

    def generate_batch(self, batch_size):
        n_inst, n_feats = self.cfg.n_inst, self.cfg.n_features
        u = torch.rand(2, n_inst, batch_size, n_feats, device=self.b_final.device)
        present = u[0] < self.feature_probability[:, None, :]
        x = torch.where(present, u[1] * 2 - 1, torch.zeros_like(u[1]))
        return x.permute(1, 0, 2)


class BatchZeroOne(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability
        return torch.where(present, torch.rand(shape, device=self.b_final.device), 0.0)


class BatchWrongMask(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) > self.feature_probability
        return torch.where(present, 2 * torch.rand(shape, device=self.b_final.device) - 1, 0.0)


class BatchHalfWidth(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability
        return torch.where(present, torch.rand(shape, device=self.b_final.device) - 0.5, 0.0)


class BatchReusedDraw(NeuronComputationModel):
    """One random tensor for presence and value: values are then confined to [-1, 2p - 1]."""

    def generate_batch(self, batch_size):
        u = torch.rand(_shape(self, batch_size), device=self.b_final.device)
        return torch.where(u < self.feature_probability, 2 * u - 1, 0.0)


class BatchSharedAcrossFeatures(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        u = torch.rand(batch_size, self.cfg.n_inst, 1, device=self.b_final.device)
        return torch.where(u < self.feature_probability, 2 * torch.rand(shape, device=u.device) - 1, 0.0)


class BatchSharedAcrossInstances(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        u = torch.rand(batch_size, 1, self.cfg.n_features, device=self.b_final.device)
        return torch.where(u < self.feature_probability, 2 * torch.rand(shape, device=u.device) - 1, 0.0)


class BatchFloat64(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability
        return torch.where(present, 2 * torch.rand(shape, dtype=torch.float64, device=present.device) - 1, 0.0)


class BatchWrongAxes(NeuronComputationModel):
    def generate_batch(self, batch_size):
        return NeuronComputationModel.generate_batch(self, batch_size).transpose(0, 1)


class BatchStub(NeuronComputationModel):
    def generate_batch(self, batch_size):
        raise NotImplementedError("not implemented yet")


@pytest.mark.parametrize("impl", [NeuronComputationModel, BatchUniformMinus, BatchUniform_, BatchInstFirst])
def test_computation_generate_batch_accepts(impl):
    assert_passes(checks.test_computation_generate_batch, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (BatchZeroOne, "value_range"),
        (BatchWrongMask, "frequency"),
        (BatchHalfWidth, "value_distribution"),
        (BatchReusedDraw, "value_distribution"),
        (BatchSharedAcrossFeatures, "independence"),
        (BatchSharedAcrossInstances, "independence"),
        (BatchFloat64, "dtype"),
        (BatchWrongAxes, "shape"),
    ],
)
def test_computation_generate_batch_rejects(impl, code):
    assert_fails(checks.test_computation_generate_batch, impl, code)


def test_computation_generate_batch_stub():
    assert_not_done(checks.test_computation_generate_batch, BatchStub)


# --------------------------------------------------------------------------------------------
# NeuronComputationModel.calculate_loss
# --------------------------------------------------------------------------------------------
class LossExplicit(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        B, _, n = batch.shape
        return (self.importance * (out - torch.abs(batch)).pow(2)).sum() / (B * n)


class LossEinsumMean(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        err = (batch.abs() - out) ** 2
        return torch.einsum("bif,if->i", err, self.importance).div(batch.shape[0] * batch.shape[2]).sum()


class LossSqrtTrick(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        diff = (torch.where(batch < 0, -batch, batch) - out) * self.importance.sqrt()
        return diff.square().mean(dim=(0, 2)).sum()


def _loss_variant(target_fn=torch.abs, weight_power=1.0, inst="sum", batch="mean", feats="mean"):
    def calculate_loss(self, out, x):
        err = self.importance**weight_power * (target_fn(x) - out) ** 2
        err = err.mean(0) if batch == "mean" else err.sum(0)
        err = err.mean(-1) if feats == "mean" else err.sum(-1)
        return err.sum() if inst == "sum" else err.mean()

    return type("LossVariant", (NeuronComputationModel,), {"calculate_loss": calculate_loss})


class LossStub(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        raise NotImplementedError("not implemented yet")


class LossNoReduce(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return self.importance * (batch.abs() - out) ** 2


@pytest.mark.parametrize("impl", [NeuronComputationModel, LossExplicit, LossEinsumMean, LossSqrtTrick])
def test_computation_calculate_loss_accepts(impl):
    assert_passes(checks.test_computation_calculate_loss, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (_loss_variant(target_fn=lambda x: x), "target"),
        (_loss_variant(target_fn=torch.relu), "target"),
        (_loss_variant(weight_power=0.0), "importance"),
        (_loss_variant(weight_power=2.0), "importance"),
        (_loss_variant(inst="mean"), "instance_reduction"),
        (_loss_variant(batch="sum"), "batch_reduction"),
        (_loss_variant(feats="sum"), "feature_reduction"),
        (LossNoReduce, "not_scalar"),
    ],
)
def test_computation_calculate_loss_rejects(impl, code):
    assert_fails(checks.test_computation_calculate_loss, impl, code)


def test_computation_calculate_loss_stub():
    assert_not_done(checks.test_computation_calculate_loss, LossStub)
