"""generate_batch returning another tensor of the model (a different buffer or parameter: next(self.buffers()) is the
first registered buffer, feature_probability, not train_data): the returned tensor is matched against every named
buffer and parameter of the model, so the hint names the one that came back."""

from __future__ import annotations

from itertools import chain

import torch
from torch import Tensor, nn

from tests.checking import fail


def other_model_tensor_failure(got: Tensor, model: nn.Module, what: str, wanted: str = "train_data") -> None:
    """Fail (code other_tensor) when `got` equals, in shape and values, a named buffer or parameter of `model` other
    than `wanted`. The model's tensors differ in shape or values from train_data, so a right answer never matches."""
    if not isinstance(got, Tensor) or got.device.type == "meta":
        return
    names = [name for name, _ in model.named_buffers()]
    for name, t in chain(model.named_buffers(), model.named_parameters()):
        if name == wanted or tuple(t.shape) != tuple(got.shape):
            continue
        if torch.equal(got.detach().to(t.device, torch.float64), t.detach().double()):
            kind = "buffer" if name in names else "parameter"
            first = (
                f" (it is the first registered buffer: next(self.buffers()) or list(self.buffers())[0] returns it; "
                f"the buffers in order: {', '.join(names)})"
                if names and name == names[0]
                else ""
            )
            fail(
                f"{what} returned the model's {kind} self.{name} {tuple(t.shape)}, expected self.{wanted} "
                f"{tuple(getattr(model, wanted).shape)}",
                f"a different tensor of the model came back{first}: return self.{wanted} by its name "
                f"(self.{wanted}), not by position or by a search over the module's tensors",
                code="other_tensor",
            )


def model_tensor_scaled_failure(got: Tensor, model: nn.Module, data: Tensor) -> None:
    """Round BB: generate_batch returned train_data multiplied or divided by another [inst, feats] tensor of the model
    (self.importance, as the loss weighs features). The checker's model has a non-uniform importance, so this shows."""
    if not isinstance(got, Tensor) or got.device.type == "meta" or tuple(got.shape) != tuple(data.shape):
        return
    g, d = got.detach().to(data.device, torch.float64), data.double()
    for name, t in chain(model.named_buffers(), model.named_parameters()):
        if name == "train_data" or tuple(t.shape) != tuple(d.shape[1:]):
            continue
        t = t.detach().double()
        for how, value in ((f"train_data * self.{name}", d * t), (f"train_data / self.{name}", d / t)):
            if torch.isfinite(value).all() and torch.allclose(g, value, rtol=1e-5, atol=1e-7):
                fail(
                    f"generate_batch returned {how}: the training set weighted by the model's self.{name}",
                    f"return self.train_data unchanged: self.{name} is not part of the data"
                    + (" (the importance only weighs the loss, in calculate_loss)" if name == "importance" else "")
                    + "; the data set is the inputs as drawn",
                    code="weighted_by_model",
                )
