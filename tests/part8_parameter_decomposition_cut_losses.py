"""Part 8, stochastic_reconstruction_losses: a returned loss that carries no gradient at all.

Rebuilding a loss from plain numbers (torch.tensor([...]) of the per-matrix losses, .item(), float()) makes a new
leaf with no graph: nothing flows back from it to the masks, U or V. Seen directly: the returned tensor does not
require grad while the inputs it was computed from do.
"""

from __future__ import annotations

from torch import Tensor

TO_MASKS = "gradients must flow to the masks (and through them to the causal importances): don't detach them"


def loss_grad_hint(losses: dict[str, Tensor], leaves: list[Tensor]) -> str:
    """The hint for a wrong gradient: names the returned losses that carry no graph, if any (observed)."""
    if not any(t.requires_grad for t in leaves):
        return TO_MASKS
    cut = [name for name, t in losses.items() if isinstance(t, Tensor) and not t.requires_grad]
    if not cut or len(cut) == len(losses):
        return TO_MASKS if not cut else f"neither loss carries a gradient (requires_grad is False): {TO_MASKS}"
    return (
        f"your {cut[0]} loss carries no gradient (requires_grad is False, no grad_fn) while the other does: it was "
        "rebuilt from plain numbers (torch.tensor([...]) of the losses, .item(), float()), which cuts the graph. "
        "Combine the tensors themselves (torch.stack(losses).mean(), or sum(losses) / len(losses))"
    )
