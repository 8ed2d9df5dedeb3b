"""Part 6b slips named by their own candidate: a transcoder input with tokens where no latent fires (the skip term
is added at every token), decoder rows normalised before decoding, a next-token cross-entropy with the shift
reversed or missing, the recovered fraction with a pair of parentheses dropped, the attention OV path added to the
de-embedding, and heads averaged instead of summed in the local replacement model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part6b_circuits_extra_mistakes as extra
from tests import part6b_circuits_hints as hints
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_probes as probes
from tests.checking import fail
from utils.transcoder import Transcoder

SILENT_AT = ((0, 1), (1, 3), (2, 0), (2, 4))  # (batch, position) of the tokens where no latent fires


def with_silent_tokens(tc: Transcoder, x: Tensor) -> Tensor:
    """A copy of x [3 5 d_in] whose tokens at SILENT_AT are small inputs at which no latent of tc fires (the other
    tokens keep firing): a term added only where some latent fires then differs from the contract there."""
    g = torch.Generator().manual_seed(5)
    candidates = (torch.randn(4096, tc.d_in, generator=g) * 0.3).to(x.device, x.dtype)
    silent = candidates[~((candidates @ tc.W_enc + tc.b_enc) > tc.threshold).any(-1)]
    out = x.clone()
    for k, (b, p) in enumerate(SILENT_AT):
        out[b, p] = silent[k]
    return out


def forward_slips(tc: Transcoder, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of transcoder_forward with the skip term only where a latent fires, or with the
    decoder rows normalised to unit norm before decoding."""
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre > tc.threshold)
    skip = 0 if tc.W_skip is None else x @ tc.W_skip.T
    fires = (acts != 0).any(-1, keepdim=True)
    unit = tc.W_dec / tc.W_dec.norm(dim=-1, keepdim=True)
    silent = int((~fires).sum())
    return [
        (
            "skip_gated",
            f"the skip term is added at every token, also where no latent fires ({silent} such tokens here): yours "
            "leaves it out there. out = acts @ W_dec + b_dec + x @ W_skip.T at every token",
            acts,
            acts @ tc.W_dec + tc.b_dec + skip * fires,
        ),
        (
            "decoder_unit",
            "the decoder rows are used as they are: yours normalises them to unit norm before decoding (an SAE "
            "habit); their norms are part of what each latent writes: out = acts @ W_dec + b_dec (+ x @ W_skip.T)",
            acts,
            acts @ unit + tc.b_dec + skip,
        ),
    ]


def clean_shift(model: Any, tokens: Tensor, got: float, close: Callable) -> None:
    """The clean loss computed by hand with the next-token shift reversed or missing: say which."""
    logits = model(tokens).float()
    ce = lambda lg, tk: F.cross_entropy(lg.flatten(0, 1), tk.flatten()).item()
    candidates = (
        (ce(logits[:, 1:], tokens[:, :-1]), "reversed: logits[:, 1:] against tokens[:, :-1]"),
        (ce(logits, tokens), "missing: logits[:, t] against tokens[:, t], the token already seen"),
    )
    for value, what in candidates:
        if close(got, value):
            fail(
                f"clean loss {got:.5f}: that is the cross-entropy with the next-token shift {what}",
                "the logits at position t predict the token at t + 1: logits[:, :-1] against tokens[:, 1:] (or "
                "model(tokens, return_type='loss'), which does the shift for you)",
                code="shift_reversed",
            )


def recovered_precedence(c: float, r: float, z: float) -> list[tuple[float, str, str]]:
    """The recovered fraction with a pair of parentheses dropped (operator precedence), as (value, code, why)."""
    forms = {
        "(zero - replaced) / zero - clean": (z - r) / z - c,
        "zero - replaced / (zero - clean)": z - r / (z - c),
        "zero - replaced / zero - clean": z - r / z - c,
        "1 - (replaced - clean) / zero - clean": 1 - (r - c) / z - c,
        "1 - replaced - clean / (zero - clean)": 1 - r - c / (z - c),
    }
    why = "operator precedence: yours computes {} (/ binds tighter than -): write both differences in parentheses: "
    return [(v, "recovered_precedence", why.format(f)) for f, v in forms.items()]


def de_embedding_paths(model: Any, tc: Transcoder, i: int) -> list[tuple[str, str, Tensor]]:
    """The de-embedding with the layer's attention OV path added to the direct path (the OV path alone is the
    catalogue's `attention`)."""
    ov = torch.einsum("hde,hem->dm", model.W_V[0], model.W_O[0])
    enc = tc.W_enc[:, i]
    return [
        (
            "ov_path",
            "yours is the direct path plus the OV path of the layer's heads, W_E (I + Σ_h W_V W_O) W_enc: the "
            "de-embedding is the direct path only, W_E @ W_enc[:, latent] (attention mixes positions; it is not "
            "part of the token's own direct effect)",
            model.W_E @ enc + model.W_E @ (ov @ enc),
        ),
    ]


class _HeadsAveraged:
    """The model seen with W_O[0] divided by n_heads: every head's output (b_V included) averaged, not summed."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.W_O = [model.W_O[0] / model.cfg.n_heads]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


LINEARISED_SLIPS = {
    "heads_mean": "the heads' outputs are summed, not averaged: yours has a factor 1/n_heads on the attention output "
    "(e.g. per-head outputs .mean(0) instead of .sum(0)); resid_mid = embeds + Σ_h z_h W_O[h] + b_O",
}
LINEARISED_MISTAKES = {
    **known.LINEARISED_MISTAKES,
    **known.LINEARISED_TERM_MISTAKES,
    **extra.LINEARISED_EXTRA,
    **probes.LINEARISED_PROBED,
    **hints.LINEARISED_HINTS,
    **LINEARISED_SLIPS,
}


def variant_forward(model, tc, frozen, embeds, latents=None, error=None, **bug) -> tuple[Tensor, Tensor]:
    """known.variant_forward, plus the slips of LINEARISED_SLIPS."""
    if bug.pop("heads_mean", False):
        model = _HeadsAveraged(model)
    return known.variant_forward(model, tc, frozen, embeds, latents, error, **bug)
