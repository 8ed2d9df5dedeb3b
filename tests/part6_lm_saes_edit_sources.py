"""Part 6 ablation: where the amount an ablation removes comes from, when it is not f = sae.encode(act)[..., latent].

* `g_sources`: for a hook that removed g · W_dec[latent] (g read back from its recorded edit), other numbers g can be:
  the latent's activation on the SAE's reconstruction (encoded twice), a projection of the centred activation on the
  decoder row, another latent's activation (an index slip), or a sum of the activations of a slice of latents.
* `zeroed_where_wrong`: a hook whose output is all zeros exactly where it is wrong (`torch.where(f > 0, ..., 0)`).
* `index_slips`: ablations of a latent that use a neighbouring latent's activation or a two-latent slice, as
  mutants for the call on a latent whose index neighbours fire where it does not (see `bos_latent`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

FIX = "f is the latent's own activation: f = sae.encode(act)[..., latent], one column of the latents"


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-4)


def g_sources(a: Tensor, g: Tensor, sae: Any, latent: int) -> None:
    """The hook got `a` and removed g · W_dec[latent]; fail naming where g comes from when it is one of the above."""
    d = sae.W_dec[latent].double()
    x = a.double()
    sources = [
        (
            sae.encode(sae(a))[..., latent],
            "the latent's activation on the SAE's reconstruction, sae.encode(sae(act))[..., latent] (act encoded, "
            "decoded and encoded again)",
        ),
        ((x - sae.b_dec.double()) @ d, "the projection of (act − b_dec) on the decoder row, ((act − b_dec) · d)"),
        (x @ sae.W_enc[:, latent].double(), "act @ W_enc[:, latent] alone (no b_dec, no b_enc, no ReLU)"),
        (sae(a).double() @ d, "the projection of the reconstruction x̂ = sae(act) on the decoder row (x̂ · d)"),
    ]
    for value, what in sources:
        if _close(g, value):
            fail(f"your hook removes g · W_dec[latent] with g = {what}", FIX, code="f_source")
    f_all = sae.encode(a).double()
    own = f_all[..., latent]
    for j in range(f_all.shape[-1]):
        if j != latent and not _close(f_all[..., j], own) and _close(g, f_all[..., j]):
            fail(
                f"your hook removes g · W_dec[{latent}] with g = the activation of latent {j}, not of latent {latent}",
                f"an index slip (latent {'+' if j > latent else '-'} {abs(j - latent)}, a 1-based index, another "
                f"variable?): {FIX}",
                code="other_latent_f",
            )
    for lo in range(max(0, latent - 2), latent + 1):
        for hi in range(latent + 1, min(f_all.shape[-1], latent + 3) + 1):
            if hi - lo > 1 and not _close(f_all[..., lo:hi].sum(-1), own) and _close(g, f_all[..., lo:hi].sum(-1)):
                fail(
                    f"your hook removes g · W_dec[latent] with g = sae.encode(act)[..., {lo}:{hi}].sum(-1), the sum "
                    f"of the activations of latents {lo} to {hi - 1}",
                    f"a slice of several latents where one index belongs: {FIX} (or [..., latent:latent + 1])",
                    code="latent_slice",
                )


def zeroed_where_wrong(b: Tensor, wrong: Tensor, fires: Tensor) -> None:
    """`b` the hook's output, `wrong` [batch seq] where it differs from act − f · W_dec[latent]: all zeros there."""
    if not bool(wrong.any()) or bool(b[wrong].abs().max() > 0):
        return
    where = (
        " where the latent does not fire (f = 0)"
        if torch.equal(wrong, ~fires)
        else " where the latent fires"
        if torch.equal(wrong, fires)
        else ""
    )
    fail(
        f"your hook's output is all zeros at the {int(wrong.sum())} positions{where}, where it should be act − f · "
        "W_dec[latent] (which is act itself where f = 0)",
        "the activation was replaced by zeros there: `torch.where(f > 0, act - f · W_dec[latent], 0)` or a "
        "multiplication by a mask? keep act everywhere and subtract f · W_dec[latent] (0 where the latent is off)",
        code="zeroed_positions",
    )


def index_slips(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """Ablations of `latent` with the activation of latent ± 1, or the sum over a two-latent slice, as mutants."""

    def ablated(f_of: Any) -> Tensor:
        hook = lambda a, hook: a - f_of(sae.encode(a))[..., None] * sae.W_dec[latent]
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    out = []
    for j in (latent - 1, latent + 1):
        if 0 <= j < sae.d_sae:
            out.append(
                (
                    "other_latent_f",
                    f"that removes the activation of latent {j} (latent {'+' if j > latent else '-'} 1) times "
                    f"W_dec[{latent}]: an index slip; {FIX}",
                    ablated(lambda f, j=j: f[..., j]),
                )
            )
    for lo, hi in ((latent, latent + 2), (latent - 1, latent + 1)):
        if lo >= 0 and hi <= sae.d_sae:
            out.append(
                (
                    "latent_slice",
                    f"that removes the sum of the activations of latents {lo} and {hi - 1} (a slice "
                    f"[..., {lo}:{hi}] summed) times W_dec[{latent}]: {FIX} (or [..., latent:latent + 1])",
                    ablated(lambda f, lo=lo, hi=hi: f[..., lo:hi].sum(-1)),
                )
            )
    return out
