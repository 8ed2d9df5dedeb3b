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


def parameter_source_failure(got: Tensor, model: nn.Module, what: str) -> None:
    """Round BB: an output that requires grad because a parameter of the model went into it (train_data + self.b_final,
    train_data @ something with W): name the parameters autograd finds it depends on."""
    if not isinstance(got, Tensor) or not got.requires_grad or got.device.type == "meta":
        return
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad and name != "train_data"]
    if not named:
        return
    with torch.no_grad():  # the model's output on the data is named later (model_output)
        forward = model(model.train_data)
    if forward.shape == got.shape and torch.allclose(got.detach(), forward, atol=1e-6):
        return
    grads = torch.autograd.grad(got.sum(), [p for _, p in named], allow_unused=True, retain_graph=True)
    used = [name for (name, _), g in zip(named, grads, strict=True) if g is not None]
    if used:
        fail(
            f"{what} depends on the model's parameter{'s' if len(used) > 1 else ''} "
            f"{', '.join(f'self.{n}' for n in used)} (autograd traces your output back to "
            f"{'them' if len(used) > 1 else 'it'}), so it requires grad",
            "the batch is the data alone: return self.train_data itself, with no parameter of the model added to or "
            "multiplied into it (the model's parameters act in forward, not in the data)",
            code="parameter_in_batch",
        )
