"""linearised_forward's arguments, checked call by call (held-out round BA).

* Each call leaves its arguments and the FrozenRun as they were. A term accumulated into the error tensor
  (`mlp_out = frozen.error if error is None else error; mlp_out += ...`) or the given latents masked in place
  (`latents.mul_(frozen.active)`) changes the caller's tensors; the values a checker recomputes afterwards from
  the same (edited) tensors then agree with the learner's, so the edit itself is what is named.
* `latents` and `error` each replace their own term, whether or not the other is given. Code that tests one of them
  for both (`if latents is None: f, e = pre * frozen.active, frozen.error else: f, e = latents, error`) ignores an
  error given alone, or latents given alone; the attribution code always passes both, so only a call with one of
  them shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part6b_circuits as ref
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_sensitivity as sens
from tests import part6b_circuits_value_readings as vr
from tests.checking import expect_matches, fail
from tests.mutants import call

NAMES = ("embeds", "latents", "error")


def checked_call(impl: Callable, model: Any, tc: Any, frozen: Any, args: tuple, what: str, pair: Callable):
    """impl's (pre, logits) for one call; fails (code inplace) when the call edited an argument or the FrozenRun."""
    before = [None if a is None else a.detach().clone() for a in args]
    saved = sens.snapshot(frozen)
    try:
        result = impl(model, tc, frozen, *args)
    except RuntimeError as err:
        vr.scale_squeezed(err, len(frozen.tokens), model.cfg.d_model)
        raise
    out = pair(result, f"linearised_forward {what}", frozen, model, tc)
    for name, now, was in zip(NAMES, args, before, strict=False):
        if was is not None and (now.shape != was.shape or not torch.equal(now.detach(), was)):
            n = int((now.detach() != was).sum()) if now.shape == was.shape else was.numel()
            fail(
                f"linearised_forward {what} changed its argument `{name}` in place ({n}/{was.numel()} of its values "
                "changed)",
                f"`{name}` belongs to the caller (the attribution code passes its own tensors and reads them again): "
                f"build new tensors from it (`{name} * mask`, `a + b`) instead of writing into it (`+=`, `.mul_()`, "
                f"`{name}[...] = ...`); `out = {name}` names the same tensor, it is not a copy",
                code="inplace",
            )
    sens.frozen_unchanged(frozen, saved, f"linearised_forward {what}")
    return out


def _ignored_hint(given: str, other: str) -> str:
    return (
        f"your logits are those of `{given}` ignored: with `{given}` given and `{other}` not, your code used its own "
        f"{'pre ⊙ frozen.active' if given == 'latents' else 'frozen.error'}. Each optional argument replaces its own "
        f"term whatever the other one is: f = pre ⊙ active if latents is None else latents, and separately "
        f"e = frozen.error if error is None else error"
    )


def step_hint(at_prompt: bool) -> str:
    """The fallback hint of linearised_forward's main calls."""
    exact = "at its own prompt the local replacement model gives the model's logits exactly: " if at_prompt else ""
    return exact + "follow the equations step by step"


def alone(impl: Callable, model: Any, tc: Any, frozen: Any, inputs: tuple[Tensor, Tensor, Tensor], pair: Callable):
    """Call with only `error` given, then with only `latents` given; name a given argument that was ignored."""
    embeds, latents, error = inputs
    plain = known.variant_forward(model, tc, frozen, embeds)
    for given, other, args in (("error", "latents", (embeds, None, error)), ("latents", "error", (embeds, latents))):
        what = f"with only `{given}` given"
        pre, logits = checked_call(
            impl, model, tc, frozen, tuple(a.clone() if a is not None else a for a in args), what, pair
        )
        want = known.variant_forward(model, tc, frozen, *args)
        for k, (out, name) in enumerate(((pre, "pre"), (logits, "logits"))):
            expect_matches(
                out,
                want[k],
                f"{name} {what}",
                [("optional_coupled", _ignored_hint(given, other), plain[1])] if k else [],
                rtol=1e-3,
                atol=1e-3,
                hint=f"`{given}` replaces its own term and nothing else; `{other}` keeps its default",
                code="values",
                reference=call(ref.linearised_forward, model, tc, frozen, *args, pick=lambda p, k=k: p[k]),
            )
