"""What a part 6 learner's hook did, read back: a zero-ablation written elsewhere (another hook point of the block,
or the SAE's error kept), the ablated activation passed through the SAE again, and f read at shifted positions."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def zero_elsewhere(model: Any, sae: Any, tokens: Tensor) -> list[tuple[str, str, Tensor]]:
    """The zero-ablated loss with the zeros written elsewhere: the SAE's error act − x̂ put in place of the
    activation (the latents removed, the error kept), or zeros at another hook point of the same block."""
    loss = lambda name, fn: torch.tensor(
        float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name, fn)])), dtype=torch.float64
    )
    out = [
        (
            "zero_error_only",
            "that is the loss with the activation replaced by the SAE's error act − sae.decode(sae.encode(act)) "
            "(the latents' part removed, the error kept): zero-ablation replaces the whole activation by zeros "
            "(`torch.zeros_like(act)`)",
            loss(sae.hook_name, lambda a, hook: a - sae.decode(sae.encode(a))),
        )
    ]
    block = ".".join(sae.hook_name.split(".")[:2])
    # mlp.hook_pre zeroed is the same run as mlp.hook_post zeroed (GELU(0) = 0): left out, a correct variant;
    # hook_mlp_out and hook_resid_post zeroed are the catalogue's zero_hook; every other hook point of the model
    skip = {sae.hook_name, f"{block}.mlp.hook_pre", f"{block}.hook_mlp_out", f"{block}.hook_resid_post"}
    zeros = lambda a, hook: torch.zeros_like(a)  # runs named elsewhere (no ablation, zero_hook) are not repeated
    seen = [loss(n, zeros) for n in skip - {f"{block}.mlp.hook_pre"}] + [loss(sae.hook_name, lambda a, hook: a)]
    for name in model.hook_dict:
        if name not in skip:
            value = loss(name, lambda a, hook: torch.zeros_like(a))
            if not value.isfinite() or any(torch.isclose(value, s, rtol=2e-5, atol=1e-6) for s in seen):
                continue
            seen.append(value)
            out.append(
                (
                    "zero_hook_point",
                    f"that is the loss with zeros at {name}, not at sae.hook_name = {sae.hook_name!r}: zero the "
                    "activations the SAE reads, at sae.hook_name",
                    value,
                )
            )
    return out


def ablate_reencoded(a: Tensor, b: Tensor, right: Tensor, sae: Any) -> None:
    """The ablated activation passed through the SAE again (decode(encode(act − f·d))), with or without the
    original error added back."""
    close = lambda x, y: bool(torch.allclose(x.double(), y.double(), rtol=1e-4, atol=1e-4))
    trip = sae.decode(sae.encode(right))
    err = a - sae.decode(sae.encode(a))
    for value, extra in ((trip + err, ", plus the original error act − sae.decode(sae.encode(act))"), (trip, "")):
        if close(b, value):
            fail(
                "your hook returns the ablated activation act − f · W_dec[latent] passed through the SAE again, "
                f"sae.decode(sae.encode(act − f · W_dec[latent])){extra}",
                "the ablation is act − f · W_dec[latent] itself: no second encode/decode (a round trip through the "
                "SAE changes the other latents too)",
                code="ablate_reencoded",
            )


def f_shifted(g: Tensor, f: Tensor) -> None:
    """g [batch seq], the amount of W_dec[latent] the hook removed, equals f read one position earlier or later
    (torch.roll or a shifted slice) at every position but the edge one."""
    for s in (1, -1, 2, -2):
        shifted = torch.roll(f, s, dims=1)
        keep = slice(s, None) if s > 0 else slice(None, s)
        if bool(torch.allclose(g[:, keep], shifted[:, keep], rtol=1e-4, atol=1e-4)) and not torch.allclose(
            g[:, keep], f[:, keep], rtol=1e-4, atol=1e-4
        ):
            which = f"position t{'-' if s > 0 else '+'}{abs(s)}"
            fail(
                f"your hook removes g · W_dec[latent] where g at position t is f (the latent's activation) at "
                f"{which}, not at t itself (f shifted along the sequence axis, e.g. torch.roll or a slice)",
                "remove each position's own term: act − f · W_dec[latent] with f = sae.encode(act)[..., latent] at "
                "the same position (no shift: the ablation is not a next-token prediction)",
                code="f_shifted",
            )
