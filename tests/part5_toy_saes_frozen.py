"""ToySAE.__init__'s frozen toy model: name the toy model's parameters that still require gradients (and a model
put in eval mode instead of frozen)."""

from __future__ import annotations

from torch import nn

from tests.checking import fail


def check_model_frozen(model: nn.Module) -> None:
    """`model`: the toy model the SAE kept. Every parameter must have requires_grad False; name those that don't."""
    params = dict(model.named_parameters())
    live = [name for name, p in params.items() if p.requires_grad]
    if not live:
        return
    frozen = [name for name in params if name not in live]
    many = len(live) > 1
    seen = (
        f"the toy model's parameter{'s' if many else ''} {', '.join(live)} still require{'' if many else 's'} gradients"
    )
    if frozen:
        seen += f" ({', '.join(frozen)} {'is' if len(frozen) == 1 else 'are'} frozen: only some parameters were frozen)"
    if not frozen and not model.training:  # round BB: .eval() taken for freezing
        fail(
            seen + ", and the model was put in eval mode (model.eval()): eval mode changes layers such as dropout, "
            "it does not switch gradients off",
            "freeze the model with `model.requires_grad_(False)` (model.eval() does not freeze it)",
            code="model_not_frozen",
        )
    fail(
        seen,
        "freeze the whole model with `model.requires_grad_(False)` (every parameter, not one tensor) so training the "
        "SAE can't change it",
        code="model_not_frozen",
    )
