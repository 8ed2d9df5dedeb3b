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
