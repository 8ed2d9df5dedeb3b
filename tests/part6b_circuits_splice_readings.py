"""A replaced loss equal to the clean loss, read from what the learner's hook at tc.hook_name_out actually did: a
hook that changed nothing (returned None, or returned its input), or one that changed the MLP output at some
positions only (e.g. the last one, whose logits predict no token and so never enter the loss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_extra_mistakes import watching_hooks


def changed_positions(impl: Callable, model: Any, tc: Any, tokens: Tensor) -> tuple[int, list[Tensor]]:
    """Reruns the learner's function, watching its hooks at tc.hook_name_out: (number of such hook calls, for each
    call that did not zero the whole activation (a zero ablation), the positions [seq] where it changed it)."""
    seen: dict[str, Any] = {"runs": 0, "changed": []}

    def record(name: Any, before: Tensor, act: Tensor, out: Any) -> None:
        if name != tc.hook_name_out:
            return
        result = out if isinstance(out, Tensor) else act
        seen["runs"] += 1
        if result.shape == before.shape and before.dim() >= 2 and result.detach().abs().max() > 0:
            seen["changed"].append((result.detach() != before).flatten(0, -3).any(0).any(-1))

    try:
        with watching_hooks(model, record), torch.no_grad():
            impl(model, tc, tokens)
    except Exception:
        pass
    return seen["runs"], seen["changed"]


def no_splice(impl: Callable, model: Any, tc: Any, tokens: Tensor) -> None:
    """The replaced loss equals the clean loss: say what the learner's hook at tc.hook_name_out did."""
    runs, calls = changed_positions(impl, model, tc, tokens)
    seq = tokens.shape[-1]
    message = "the replaced loss equals the clean loss"
    partial = [c for c in calls if c.any() and not c.all()]
    if partial:
        changed = partial[0]
        where = changed.nonzero().flatten().tolist()
        last = where == [seq - 1]
        fail(
            f"{message}, though your hook at tc.hook_name_out changed the MLP output: at "
            + ("the last position only" if last else f"{len(where)}/{seq} positions only ({where[:6]})")
            + (
                "; the last position's logits predict no token (there is no next one), so they never enter the loss"
                if last
                else ""
            ),
            "the transcoder replaces the MLP at every position: return tc(x) for the whole activation [batch seq "
            "d_model] (not `act[:, -1] = ...` or a slice of positions); the loss averages over every position that "
            "predicts a next token",
            code="partial_splice",
        )
    if any(c.all() for c in calls):
        seen = "your hook at tc.hook_name_out changed the MLP output at every position, yet the loss is the same"
    elif calls:
        seen = "your hook at tc.hook_name_out ran but left the MLP output unchanged"
    else:
        seen = "no hook of yours ran at tc.hook_name_out other than a zero ablation" if runs else "no hook of yours ran"
        seen += " at tc.hook_name_out" if not runs else ""
    fail(
        f"{message} ({seen})",
        "possible causes: the hook at tc.hook_name_out returns None after rebinding a local name (it must *return* "
        "the transcoder's output), returns its input, sits at another hook point, or the replaced run has no hooks",
        code="no_splice",
    )
