"""Part 6b: terms written at the wrong place, and averages taken at the wrong level.

- a zero-ablation that spares position 0 (BOS), or that writes a named constant (the transcoder's b_dec, the MLP's
  b_out, the transcoder's output on a zero input) instead of zeros;
- `recovered` computed per sequence (or per predicted token) and then averaged, instead of from the mean losses;
- latent values written at every position (`latents[:, idx] = values`, the position index dropped) in the
  attribution graph's forward;
- the error term added after the final LayerNorm (to the normalised stream) in the local replacement model (the hint
  only: `part6b_circuits_mistakes.variant_forward` computes it, as its `error_after_ln`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part6b_circuits_value_readings as vr
from tests.checking import fail


def zero_ablation(model, tc, tokens: Tensor, got: float, want: float, close: Callable, loss: Callable) -> None:
    """Always fails (the zero-ablated loss is wrong): mean-ablation, the MLP's input zeroed, or a named constant
    written at the MLP's output are named; otherwise the observed loss and the plain hint."""
    seen = f"zero-ablated loss {got:.5f}, expected {want:.5f}"
    hint = "replace the MLP output by zeros (`torch.zeros_like(act)`)"
    mean = loss(model, tokens, [(tc.hook_name_out, lambda a, hook: a.mean((0, 1), keepdim=True).expand_as(a))])
    if close(got, mean):
        fail(seen, "that is mean-ablation; this exercise asks for zero-ablation: " + hint, code="ablation")
    if close(got, loss(model, tokens, [(tc.hook_name, _zeros)])):
        fail(
            seen,
            "that zeroes the MLP's *input* (tc.hook_name): zero its output, at tc.hook_name_out",
            code="ablation_input",
        )
    spared = loss(model, tokens, [(tc.hook_name_out, lambda a, hook: torch.cat([a[:, :1], 0 * a[:, 1:]], 1))])
    if close(got, spared) and not close(spared, loss(model, tokens, [(tc.hook_name_out, _zeros)])):
        fail(
            f"{seen}: that is the loss with the MLP output zeroed at every position but 0 (BOS kept as it was)",
            "zero the MLP output at every position, BOS included (no [:, 1:] slice, no torch.cat keeping act[:, :1])",
            code="ablation_bos_kept",
        )
    mlp = model.blocks[0].mlp
    constants = [("the transcoder's decoder bias tc.b_dec (its output with no latent firing)", tc.b_dec)]
    if getattr(mlp, "b_out", None) is not None:
        constants.append(("the MLP's output bias b_out (the MLP with every neuron silent)", mlp.b_out))
    with torch.no_grad():
        zero_in = tc(torch.zeros(1, 1, tc.d_in, device=tc.b_dec.device, dtype=tc.b_dec.dtype))[0, 0]
    constants.append(
        ("the transcoder's output on a zero input, tc(0) (b_dec plus the latents that fire at 0)", zero_in)
    )
    for name, c in constants:
        value = loss(model, tokens, [(tc.hook_name_out, lambda a, hook, c=c: torch.zeros_like(a) + c.to(a.dtype))])
        if close(got, value) and not close(value, loss(model, tokens, [(tc.hook_name_out, _zeros)])):
            fail(
                f"{seen}: that is the loss with {name} written at every position of the MLP's output, not zeros",
                "zero-ablation removes the MLP's output entirely: write zeros (`torch.zeros_like(act)`), with no bias "
                "added (a bias is part of what the MLP contributes)",
                code="ablation_bias",
            )
    vr.zero_ablation_subset(model, tc, tokens, got, close, loss)
    fail(seen, hint, code="ablation")


def _zeros(a: Tensor, hook) -> Tensor:
    return torch.zeros_like(a)


def recovered_averaged(model, tc, tokens: Tensor) -> list[tuple[float, str, str]]:
    """`recovered` from per-sequence (or per-token) losses, averaged afterwards: candidates (value, code, why)."""
    seen: dict = {}
    splice = [
        (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
        (tc.hook_name_out, lambda a, hook: tc(seen["x"]).to(a.dtype)),
    ]
    with torch.no_grad():
        per = lambda hooks: model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
        c, r, z = per([]).double(), per(splice).double(), per([(tc.hook_name_out, _zeros)]).double()
    out = []
    for level, (cc, rr, zz) in (
        ("sequence", (c.mean(-1), r.mean(-1), z.mean(-1))),
        ("predicted token", (c.flatten(), r.flatten(), z.flatten())),
    ):
        ratios = (zz - rr) / (zz - cc)
        if torch.isfinite(ratios).all():
            why = (
                f"that is the mean over {level}s of a recovered fraction computed per {level}: the three losses are "
                f"means over every predicted token, and recovered is computed once, from those means: "
            )
            out.append((float(ratios.mean()), "recovered_averaged", why))
    return out


def every_position(frozen, graph, direct: Tensor, forward: Callable) -> list[tuple[str, str, Tensor]]:
    """The adjacency of a forward whose latent values are written at EVERY position (`latents[:, idx] = values`):
    gradient × value edges of that forward, error and token columns as in `direct`."""
    pos, idx = graph.latent_pos, graph.latent_idx
    rows = torch.cat([torch.arange(graph.n_nodes)[graph.nodes(k)] for k in ("latent", "logit")]).tolist()
    with torch.enable_grad():
        vals = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
        lat = torch.zeros_like(frozen.acts)
        lat[:, idx] = vals
        pre, logits = forward(frozen, frozen.embeds.detach(), lat, frozen.error.detach())
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        A = direct.clone()
        eye = torch.eye(len(rows), dtype=targets.dtype, device=targets.device)  # one backward for every target row
        (g,) = torch.autograd.grad(targets, vals, grad_outputs=eye, is_grads_batched=True, allow_unused=True)
        A[rows, graph.nodes("latent")] = 0 if g is None else (g * vals.detach()).to(A.dtype)
    return [
        (
            "latents_every_position",
            "each latent's value was written at every position (the position index dropped, e.g. "
            "`latents[:, idx] = values`): write it at its own position only, `latents[pos, idx] = values`",
            A,
        )
    ]


ERROR_PLACEMENT = {
    "error_after_ln": "the error term was added after the final LayerNorm (to the normalised stream): it is part of "
    "the MLP's output, so add it to mlp_out, before ln_final (its centring and frozen scale apply to it too)",
}

SKIP_PLACEMENT = {
    "skip_ln2_embeds": "the skip connection was fed LN2 of the embeddings (r₀ = embeds normalised by "
    "frozen.ln2_scale): it reads the same MLP input as the encoder, x = LN2(resid_mid) with resid_mid = embeds + "
    "attention output + b_O, tc.skip(x): the residual after attention, not the one before it",
}


class SkipFed:
    """A transcoder whose skip term reads `fed` whatever it is given (the skip fed the wrong residual)."""

    def __init__(self, tc, fed: Tensor) -> None:
        self._tc, self._fed = tc, fed

    def skip(self, _x: Tensor) -> Tensor:
        return self._tc.skip(self._fed)

    def __getattr__(self, name: str):
        return getattr(self._tc, name)


def strictly_earlier(graph, direct: Tensor) -> list[tuple[str, str, Tensor]]:
    """The adjacency with each latent target's edges from token (or token and error) nodes at its own position and
    later zeroed: only strictly earlier positions kept, as if a position could not feed itself."""
    lat_rows = torch.arange(graph.n_nodes)[graph.nodes("latent")]
    out = []
    for kinds in (("token",), ("token", "error")):
        A = direct.clone()
        for row, p in zip(lat_rows.tolist(), graph.latent_pos.tolist(), strict=True):
            for kind in kinds:
                A[row, graph.nodes(kind).start + int(p) : graph.nodes(kind).stop] = 0
        what = " and ".join(kinds)
        out.append(
            (
                "strictly_earlier",
                f"your {what} edges into each latent are those expected from strictly earlier positions only: the ones "
                f"from the latent's own position are zero. A position feeds its own latents (the residual stream at "
                f"position p includes the {what} at p; attention is causal, p ≤ the target's position, not <)",
                A,
            )
        )
    return out
