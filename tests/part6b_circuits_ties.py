"""Exact ties for part 6b's JumpReLU gate: a pre-activation exactly equal to its latent's threshold.

The contract is `acts = pre · [pre > threshold]` (strict): a latent exactly at its threshold stays off. Random inputs
never tie, so a gate written `pre >= threshold` passes them. `with_exact_ties` rounds the small transcoder's W_enc,
b_enc and the input x to coarse dyadic grids (multiples of 1/16 and 1/8, a few bits each), so that every product and
every partial sum of `x @ W_enc + b_enc` is exact in float32 (and in TF32): pre is then the same bit for bit whatever
order or kernel computes it (@, F.linear, einsum, a sum of products, addmm). Then, for every other latent, the
threshold is raised to the smallest pre-activation above it: that entry ties exactly, and the gate changes there only.
"""

from __future__ import annotations

from torch import Tensor

from utils.transcoder import Transcoder


def with_exact_ties(tc: Transcoder, x: Tensor) -> tuple[Transcoder, Tensor]:
    """(a copy of tc with dyadic W_enc, b_enc and thresholds tied to pre-activations, dyadic x); tc is not edited."""
    dyadic = lambda t, n: (t.detach() * n).round() / n
    x = dyadic(x, 8)
    W_enc, b_enc = dyadic(tc.W_enc, 16), dyadic(tc.b_enc, 16)
    pre = (x @ W_enc + b_enc).reshape(-1, tc.d_sae)  # exact: |entries| << 2^24 / 128
    threshold = tc.threshold.detach().clone()
    for j in range(0, tc.d_sae, 2):
        above = pre[:, j][pre[:, j] > threshold[j]]
        if above.numel() > 1:  # keep the latent firing somewhere: the tie is on its smallest firing entry
            threshold[j] = above.min()
    skip = None if tc.W_skip is None else tc.W_skip.detach()
    tied = Transcoder(W_enc, b_enc, tc.W_dec.detach(), tc.b_dec.detach(), threshold, W_skip=skip)
    tied.hook_name, tied.hook_name_out = tc.hook_name, tc.hook_name_out
    return tied.to(x.device), x


def n_ties(tc: Transcoder, x: Tensor) -> int:
    """How many entries of pre equal their latent's threshold exactly."""
    return int(((x @ tc.W_enc + tc.b_enc) == tc.threshold).sum())


def gate_non_strict(tc: Transcoder, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of the gate written pre >= threshold: it differs from the right one only at ties."""
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre >= tc.threshold)
    out = acts @ tc.W_dec + tc.b_dec + (0 if tc.W_skip is None else x @ tc.W_skip.T)
    ties = n_ties(tc, x)
    return [
        (
            "gate_non_strict",
            f"your gate lets a latent through when its pre-activation equals its threshold exactly ({ties} such "
            "entries in this input): the gate is strict, acts = pre · [pre > threshold] (>, not >=; torch.gt, not "
            "torch.ge)",
            acts,
            out,
        )
    ]
