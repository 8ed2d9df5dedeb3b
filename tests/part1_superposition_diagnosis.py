"""Helpers of part 1's forward checks, shared with part 2: the model's parameters and output shape, the
solution's model holding the checked parameters (for the one-change diagnosis), and any number of leading axes."""

from __future__ import annotations

import torch
from torch import Tensor

from solutions.part1_superposition import ToyModelConfig
from tests.checking import expect_close, fail


def returned_hidden_hint(out: object, lead: tuple[int, ...], n_inst: int, d_hidden: int) -> None:
    """Fail with a named mistake when a forward pass returned the hidden vector instead of the output."""
    if isinstance(out, Tensor) and tuple(out.shape) == (*lead, n_inst, d_hidden):
        fail(
            f"model(features) has shape {tuple(out.shape)}: that is the hidden layer (d_hidden = {d_hidden})",
            "you returned the hidden vector h = W x: map it back up to the features, add b_final and apply the ReLU",
            code="returned_hidden",
        )


def expect_parameters(model: object, shapes: dict[str, tuple[int, ...]]) -> None:
    """The model (built by the learner's class) has each named tensor with the given shape."""
    for name, shape in shapes.items():
        value = getattr(model, name, None)
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            fail(
                f"the model's `{name}` is {got}, expected a tensor of shape {shape}",
                "the check builds the model with the given __init__: keep its parameters and buffers as they are",
                code="model_attributes",
            )


def generic_importance(n_inst: int, n_feats: int) -> Tensor:
    """Importances in [0.15, 0.95], different per instance and feature: a generator that uses them shows."""
    return 0.15 + 0.8 * torch.rand(n_inst, n_feats, generator=torch.Generator().manual_seed(7))


def reference_model(
    cls: type, cfg: ToyModelConfig, device: torch.device, params: dict[str, Tensor], **kwargs
) -> torch.nn.Module:
    """The solution's model `cls` holding the given parameter values (its own random init leaves no trace)."""
    with torch.random.fork_rng(devices=[]):
        model = cls(cfg, device="cpu", **kwargs).to(device)
    with torch.no_grad():
        for name, value in params.items():
            getattr(model, name).copy_(value)
    return model


def check_leading_dims(
    model: torch.nn.Module, reference: callable, shapes: list[tuple[int, ...]], device: torch.device
) -> None:
    """The forward pass accepts any number of leading batch axes (two, or none) and gives the same values."""
    hint = "accept any number of leading batch axes: use `...` in your einsum patterns (or matmul with broadcasting)"
    for shape in shapes:
        x = torch.rand(shape, device=device)
        try:
            with torch.no_grad():
                out = model(x)
        except NotImplementedError:
            raise
        except Exception as err:
            fail(
                f"model(features) with features of shape {shape} raised {type(err).__name__}: {err}",
                hint,
                code="leading_dims",
            )
        if not isinstance(out, Tensor) or tuple(out.shape) != shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            squeezed = _squeezed_hint(got, shape)
            fail(
                f"model(features) with features of shape {shape} returned {got}, expected {shape}",
                _extra_axis_hint(model, x, got, shape) or squeezed or hint,
                code="squeezed" if squeezed else "leading_dims",
            )
        expect_close(out, reference(x), f"model(features) for features of shape {shape}", hint, code="leading_dims")


def _squeezed_hint(got: object, shape: tuple[int, ...]) -> str | None:
    """The output is the expected shape with its size-1 axes dropped: a .squeeze() (every size-1 axis, not one)."""
    if not isinstance(got, tuple) or 1 not in shape or got != tuple(d for d in shape if d != 1):
        return None
    return (
        f"the output lost the size-1 axes of the input ({got} for {shape}): a .squeeze() without a dim drops every "
        "size-1 axis (here the batch or instance axis of size 1), not only the one your matmul added; squeeze that "
        "one axis (.squeeze(-1)) or use einsum"
    )


def _extra_axis_hint(model: torch.nn.Module, x: Tensor, got: object, shape: tuple[int, ...]) -> str | None:
    """(The output has extra leading size-1 axes) say so, then read back which term brought them: the same call with
    b_final replaced by a 0-d bias (which broadcasts against anything) gives the right shape only when the bias
    term carried the extra axis (b_final[None], b_final.unsqueeze(0))."""
    if not isinstance(got, tuple) or len(got) <= len(shape) or got[len(got) - len(shape) :] != shape:
        return None
    extra = got[: len(got) - len(shape)]
    if any(d != 1 for d in extra):
        return None
    seen = f"the output has {len(extra)} extra leading axis of size 1 ({got} for an input of shape {shape})"
    original = getattr(model, "b_final", None)
    probed = None
    if isinstance(original, Tensor):
        scalar = torch.zeros((), dtype=original.dtype, device=original.device)
        try:
            model.b_final = torch.nn.Parameter(scalar) if isinstance(original, torch.nn.Parameter) else scalar
            with torch.no_grad():
                probed = model(x)
        except Exception:
            probed = None
        finally:
            model.b_final = original
    if isinstance(probed, Tensor) and tuple(probed.shape) == shape:
        return (
            f"{seen}, and with b_final replaced by a scalar the output has the right shape: the bias term brings the "
            "extra axis, a bias given an extra axis (b_final[None] / b_final.unsqueeze(0)) adds a batch axis that an "
            "unbatched input doesn't have. Add self.b_final as it is: [inst feats] broadcasts against any leading axes"
        )
    return (
        f"{seen}: some term adds a batch axis an unbatched input doesn't have, e.g. a bias given an extra axis "
        "(b_final[None] / unsqueeze(0)) or the input given one (x[None], x.unsqueeze(0)) and never removed. Accept any "
        "number of leading batch axes: `...` in the einsum patterns, and the bias added as it is"
    )
