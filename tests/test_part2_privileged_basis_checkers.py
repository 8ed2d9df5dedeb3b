"""Proofs for part 2's checkers: the reference and differently written correct variants pass, realistic
buggy variants fail with the expected hint code, and stubs are reported as not done."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as checks
from solutions.part1_superposition import ToyModelConfig
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


class NeuronMeanOverInstances(NeuronModel):
    """The instances' weights averaged into one shared matrix."""

    def forward(self, features):
        W = self.W.mean(0, keepdim=True).expand_as(self.W)
        hidden = F.relu(torch.einsum("...if,idf->...id", features, W))
        return F.relu(torch.einsum("...id,idf->...if", hidden, W) + self.b_final)


class NeuronBatchOnly(NeuronModel):
    """Works for [batch inst feats] only."""

    def forward(self, features):
        hidden = F.relu(torch.einsum("bif,idf->bid", features, self.W))
        return F.relu(torch.einsum("bid,idf->bif", hidden, self.W) + self.b_final)


class NeuronDouble(NeuronModel):
    def forward(self, features):
        hidden = F.relu(torch.einsum("...if,idf->...id", features.double(), self.W.double()))
        return F.relu(torch.einsum("...id,idf->...if", hidden, self.W.double()) + self.b_final.double())


def _neuron(x, W, b, x_relu=False, hidden=F.relu, bias=1.0):
    x = F.relu(x) if x_relu else x
    h = hidden(einops.einsum(x, W, "... inst feats, inst d feats -> ... inst d"))
    return F.relu(einops.einsum(h, W, "... inst d, inst d feats -> ... inst feats") + bias * b)


class NeuronReLUOnInput(NeuronModel):
    def forward(self, features):
        return _neuron(features, self.W, self.b_final, x_relu=True, hidden=lambda h: h)


class NeuronBiasSubtracted(NeuronModel):
    def forward(self, features):
        return _neuron(features, self.W, self.b_final, bias=-1.0)


class NeuronInstanceZero(NeuronModel):
    def forward(self, features):
        W = self.W[0]
        return F.relu(F.relu(features @ W.T) @ W + self.b_final)


class NeuronGELU(NeuronModel):
    def forward(self, features):
        return _neuron(features, self.W, self.b_final, hidden=F.gelu)


class NeuronNoFeatureSum(NeuronModel):
    def forward(self, features):
        h = F.relu(features.unsqueeze(-2) * self.W)  # [... inst d feats]: the feature axis was never summed
        return F.relu((h * self.W).sum(-2) + self.b_final)


class NeuronReturnsHidden(NeuronModel):
    def forward(self, features):
        return F.relu(einops.einsum(features, self.W, "... inst feats, inst d feats -> ... inst d"))


class NeuronInplaceInputReLU(NeuronModel):
    def forward(self, features):
        F.relu(features, inplace=True)  # "features are non-negative": edits the caller's tensor
        return _neuron(features, self.W, self.b_final)


class NeuronBiasTwice(NeuronModel):
    def forward(self, features):
        return _neuron(features, self.W, self.b_final, bias=2.0)


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
        (NeuronNoBias, "no_bias"),
        (NeuronBiasAfterReLU, "bias_after_relu"),
        (NeuronNoOutputReLU, "no_relu"),
        (NeuronMixedInstances, "one_change"),  # the typo quoted: `inst` spelled differently in one einsum input
        (NeuronMeanOverInstances, "weights_other_instance"),  # named since round AZ
        (NeuronBatchOnly, "leading_dims"),
        (NeuronDouble, "dtype"),
        (NeuronReLUOnInput, "relu_on_input"),
        (NeuronBiasSubtracted, "bias_sign"),
        (NeuronInstanceZero, "first_instance"),
        (NeuronGELU, "wrong_activation"),
        (NeuronNoFeatureSum, "diagonal_only"),
        (NeuronReturnsHidden, "returned_hidden"),
        (NeuronInplaceInputReLU, "modified_input"),
        (NeuronBiasTwice, "bias_twice"),
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


class CompReshapedW2(NeuronComputationModel):
    def forward(self, features):
        hidden = F.relu(einops.einsum(features, self.W1, "... inst feats, inst d feats -> ... inst d"))
        W2 = self.W2.reshape(self.W1.shape)  # "make it [inst d feats]" without transposing
        return F.relu(einops.einsum(hidden, W2, "... inst d, inst d feats -> ... inst feats") + self.b_final)


class CompAbsHidden(NeuronComputationModel):
    def forward(self, features):
        hidden = einops.einsum(features, self.W1, "... inst feats, inst d feats -> ... inst d").abs()
        return F.relu(einops.einsum(hidden, self.W2, "... inst d, inst feats d -> ... inst feats") + self.b_final)


class CompAbsOutput(NeuronComputationModel):
    def forward(self, features):
        return _comp(features, self.W1, self.W2, self.b_final, out_relu=False).abs()


class CompInstanceZero(NeuronComputationModel):
    def forward(self, features):
        hidden = F.relu(features @ self.W1[0].T)
        return F.relu(hidden @ self.W2[0].T + self.b_final)


class CompReturnsHidden(NeuronComputationModel):
    def forward(self, features):
        return F.relu(einops.einsum(features, self.W1, "... inst feats, inst d feats -> ... inst d"))


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
        (CompNoBias, "no_bias"),
        (CompBiasAfterReLU, "bias_after_relu"),
        (CompNoOutputReLU, "no_relu"),
        (CompAbsInput, "abs_in_forward"),
        (CompTied, "tied_weights"),
        (CompMixedInstances, "one_change"),
        (CompReshapedW2, "reshaped_W2"),
        (CompAbsHidden, "abs_hidden"),
        (CompAbsOutput, "abs_output"),
        (CompInstanceZero, "first_instance"),
        (CompReturnsHidden, "returned_hidden"),
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


class BatchSignTimesMagnitude(NeuronComputationModel):
    """A random sign times U[0, 1] is U[-1, 1] too."""

    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        dev = self.b_final.device
        sign = torch.randint(0, 2, shape, device=dev) * 2 - 1
        present = torch.rand(shape, device=dev) < self.feature_probability
        return present * sign * torch.rand(shape, device=dev)


class BatchNormal(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability
        return torch.where(present, torch.randn(shape, device=self.b_final.device), 0.0)


class BatchSignOnly(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability
        return torch.where(present, torch.rand(shape, device=self.b_final.device).round() * 2 - 1, 0.0)


class BatchSharedOverBatch(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape[1:], device=self.b_final.device) < self.feature_probability
        return present * (2 * torch.rand(shape, device=self.b_final.device) - 1)


class BatchMeanProbability(NeuronComputationModel):
    def generate_batch(self, batch_size):
        shape = _shape(self, batch_size)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability.mean()
        return present * (2 * torch.rand(shape, device=self.b_final.device) - 1)


class BatchNoMask(NeuronComputationModel):
    def generate_batch(self, batch_size):
        return 2 * torch.rand(_shape(self, batch_size), device=self.b_final.device) - 1


class BatchStub(NeuronComputationModel):
    def generate_batch(self, batch_size):
        raise NotImplementedError("not implemented yet")


@pytest.mark.parametrize(
    "impl", [NeuronComputationModel, BatchUniformMinus, BatchUniform_, BatchInstFirst, BatchSignTimesMagnitude]
)
def test_computation_generate_batch_accepts(impl):
    assert_passes(checks.test_computation_generate_batch, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (BatchZeroOne, "values_unsigned"),
        (BatchWrongMask, "presence_one_minus_p"),
        (BatchHalfWidth, "values_half_width"),
        (BatchReusedDraw, "values_reuse_mask"),
        (BatchSharedAcrossFeatures, "shared_over_features"),
        (BatchSharedAcrossInstances, "shared_over_instances"),
        (BatchFloat64, "dtype"),
        (BatchWrongAxes, "shape"),
        (BatchNormal, "values_normal"),
        (BatchSignOnly, "constant_magnitude"),
        (BatchSharedOverBatch, "shared_over_batch"),
        (BatchMeanProbability, "mean_probability"),
        (BatchNoMask, "always_present"),
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


class LossAbsInPlace(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        batch.abs_()  # takes |x| in place: the caller's batch is changed
        return (self.importance * (batch - out) ** 2).mean(dim=(0, 2)).sum()


class LossItem(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return torch.tensor((self.importance * (batch.abs() - out) ** 2).mean(dim=(0, 2)).sum().item())


class LossRoot(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch.abs() - out) ** 2).mean(dim=(0, 2)).sqrt().sum()


class LossHalf(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return 0.5 * (self.importance * (batch.abs() - out) ** 2).mean(dim=(0, 2)).sum()


@pytest.mark.parametrize("impl", [NeuronComputationModel, LossExplicit, LossEinsumMean, LossSqrtTrick])
def test_computation_calculate_loss_accepts(impl):
    assert_passes(checks.test_computation_calculate_loss, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (_loss_variant(target_fn=lambda x: x), "target_not_abs"),
        (_loss_variant(target_fn=torch.relu), "target_relu"),
        (_loss_variant(target_fn=torch.square), "target_squared"),
        (_loss_variant(weight_power=0.0), "no_importance"),
        (_loss_variant(weight_power=2.0), "importance_squared"),
        (_loss_variant(inst="mean"), "mean_over_instances"),
        (_loss_variant(batch="sum"), "sum_over_batch"),
        (_loss_variant(feats="sum"), "sum_over_features"),
        (_loss_variant(batch="sum", feats="sum"), "sum_all"),
        (LossNoReduce, "not_scalar"),
        (LossAbsInPlace, "modified_input"),
        (LossItem, "no_grad"),
        (LossRoot, "root"),
        (LossHalf, "scale"),
    ],
)
def test_computation_calculate_loss_rejects(impl, code):
    assert_fails(checks.test_computation_calculate_loss, impl, code)


def test_computation_calculate_loss_stub():
    assert_not_done(checks.test_computation_calculate_loss, LossStub)


# --------------------------------------------------------------------------------------------
# Every checker takes a class
# --------------------------------------------------------------------------------------------
ALL = [
    (checks.test_neuron_forward, NeuronModel),
    (checks.test_computation_forward, NeuronComputationModel),
    (checks.test_computation_generate_batch, NeuronComputationModel),
    (checks.test_computation_calculate_loss, NeuronComputationModel),
]


@pytest.mark.parametrize(("check", "cls"), ALL)
def test_every_checker_takes_a_class(check, cls):
    assert check.kind == "class"
    err = assert_fails(check, cls(ToyModelConfig(n_inst=1), device="cpu"), "not_a_class")
    assert cls.__name__ in err.hint
    assert_fails(check, None, "passed_none")


# --------------------------------------------------------------------------------------------
# Held-out mistakes (a round of mistakes the catalogue had not seen)
# --------------------------------------------------------------------------------------------
def _neuron_variant(**kw):
    return type("NeuronHeldOut", (NeuronModel,), {"forward": lambda self, x: _neuron(x, self.W, self.b_final, **kw)})


def _relu_on_weights(self, x):
    h = einops.einsum(x, F.relu(self.W), "... inst feats, inst d feats -> ... inst d")
    return F.relu(einops.einsum(h, self.W, "... inst d, inst d feats -> ... inst feats") + self.b_final)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (_neuron_variant(hidden=lambda h: h.clamp(max=0)), "hidden_clamp_max"),
        (_neuron_variant(hidden=lambda h: F.leaky_relu(h, 0.1)), "hidden_leaky"),
        (type("NeuronReluW", (NeuronModel,), {"forward": _relu_on_weights}), "relu_on_weights"),
    ],
)
def test_neuron_forward_rejects_held_out_mistakes(impl, code):
    assert_fails(checks.test_neuron_forward, impl, code)


def _comp_variant(forward):
    return type("CompHeldOut", (NeuronComputationModel,), {"forward": forward})


def _comp_swapped(self, x):
    h = F.relu(einops.einsum(x, self.W2, "... i f, i f d -> ... i d"))
    return F.relu(einops.einsum(h, self.W1, "... i d, i d f -> ... i f") + self.b_final)


def _comp_tied_W2(self, x):
    h = F.relu(einops.einsum(x, self.W2, "... i f, i f d -> ... i d"))
    return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


@pytest.mark.parametrize(
    ("forward", "code"),
    [
        (_comp_swapped, "roles_swapped"),
        (_comp_tied_W2, "tied_to_W2"),
        (lambda self, x: _comp(F.relu(x), self.W1, self.W2, self.b_final), "relu_on_input_and_hidden"),
        (lambda self, x: F.elu(_comp(x, self.W1, self.W2, self.b_final, out_relu=False)), "negative_not_zeroed"),
    ],
)
def test_computation_forward_rejects_held_out_mistakes(forward, code):
    assert_fails(checks.test_computation_forward, _comp_variant(forward), code)


@pytest.mark.parametrize(
    ("loss", "code"),
    [
        (lambda self, out, b: ((self.importance * b.abs() - out) ** 2).mean((0, 2)).sum(), "importance_on_target"),
        (lambda self, out, b: (self.importance * (b.abs() + out) ** 2).mean((0, 2)).sum(), "error_sign"),
    ],
)
def test_computation_calculate_loss_rejects_held_out_mistakes(loss, code):
    assert_fails(
        checks.test_computation_calculate_loss,
        type("LossHeldOut", (NeuronComputationModel,), {"calculate_loss": loss}),
        code,
    )
