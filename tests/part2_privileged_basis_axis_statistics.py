"""Forward passes that subtract (or divide by) a statistic over one axis of a layer: the hidden pre-activations
centred or normalised over the neurons before the ReLU (or a softmax over the neurons in its place), the input
features centred over the features. Each is a
catalogue mutant of ReLU(W_outᵀ ReLU(W_in x) + b), named by the family: a statistic over an axis entered the layer."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.part1_superposition_mistakes import two_layer

relu = torch.relu
FIX = "the hidden layer is ReLU(W x) of each neuron on its own, and the input goes in as it is"


def axis_statistic_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, output) for a mean (or norm) over one axis subtracted from (or dividing) a layer."""
    return [
        (
            "hidden_centred",
            "equals the reference with the hidden pre-activations centred over the neurons, ReLU(h - h.mean(-1)): a "
            f"mean over the d_hidden axis is subtracted before the ReLU; {FIX}",
            two_layer(x, W_in, W_out, b, act=lambda h: relu(h - h.mean(-1, keepdim=True))),
        ),
        (
            "hidden_normalised",
            "equals the reference with the hidden pre-activations divided by their norm over the neurons, "
            f"ReLU(h / h.norm(dim=-1)): a statistic over the d_hidden axis scales the layer; {FIX}",
            two_layer(x, W_in, W_out, b, act=lambda h: relu(h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12))),
        ),
        *[
            (
                "hidden_softmax",
                f"equals the reference with {name} over the neurons where the hidden ReLU belongs: the hidden layer is "
                f"normalised across the d_hidden axis (an attention habit); {FIX}",
                two_layer(x, W_in, W_out, b, act=act),
            )
            for name, act in (
                ("softmax(h, dim=-1)", lambda h: torch.softmax(h, -1)),
                ("softmax(ReLU(h), dim=-1)", lambda h: torch.softmax(relu(h), -1)),
            )
        ],
        (
            "input_centred",
            "equals the reference with the input centred over the features, x - x.mean(-1): a mean over the "
            f"feature axis is subtracted before the first layer; {FIX}",
            two_layer(x - x.mean(-1, keepdim=True), W_in, W_out, b, act=relu),
        ),
    ]
