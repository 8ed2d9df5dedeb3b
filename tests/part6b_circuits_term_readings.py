"""Part 6b readings of misplaced terms and wrong gates: a TopK gate in place of the JumpReLU, b_dec added to the
encoder's input, a difference in `recovered` taken the other way round, a bias mixed into the logit-effect direction,
recorded outputs returned in place of recomputed ones, BOS masked at the wrong flat positions, and a matrix of ones
where the identity belongs in (I - Â)⁻¹."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.learner_errors import failing_line


def _decode(tc: Any, x: Tensor, acts: Tensor) -> Tensor:
    return acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)


def input_bias_slips(tc: Any, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) with b_dec added to the encoder's input (SAE centring written with the sign flipped)."""
    if tc.b_dec.shape[-1] != x.shape[-1]:
        return []
    pre = (x + tc.b_dec) @ tc.W_enc + tc.b_enc
    acts = pre * (pre > tc.threshold)
    hint = (
        "your encoder reads x + b_dec: a transcoder's encoder reads x as it is, pre = x @ W_enc + b_enc (b_dec is the "
        "output's bias; an SAE's centring would subtract it, and a transcoder does neither)"
    )
    return [("b_dec_input", hint, acts, _decode(tc, x, acts))]


def topk_gate(tc: Any, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of a TopK gate (the k largest pre-activations per token kept, the threshold ignored)
    when the learner's acts fire the same number k of latents at every token."""
    try:
        counts = (acts.detach() != 0).sum(-1)
    except (RuntimeError, TypeError, AttributeError):
        return []
    k = int(counts.max()) if counts.numel() else 0
    if not 0 < k < tc.d_sae or not bool((counts == k).all()):
        return []
    pre = x @ tc.W_enc + tc.b_enc
    vals, ids = pre.topk(k, dim=-1)
    top = torch.zeros_like(pre).scatter(-1, ids, vals)
    right = ((pre > tc.threshold).sum(-1)).flatten()
    hint = (
        f"your acts keep the {k} largest pre-activations at every token (a TopK / BatchTopK gate) whatever the "
        f"threshold: this transcoder is a JumpReLU, acts = pre · [pre > tc.threshold] per latent, which fires "
        f"{int(right.min())} to {int(right.max())} latents per token here"
    )
    return [("topk_gate", hint, top, _decode(tc, x, top))]


def recovered_sign(c: float, r: float, z: float) -> list[tuple[float, str, str]]:
    """recovered with one of its two differences taken the other way round, as (value, code, why)."""
    why = (
        "one difference is taken the other way round, which flips the sign (replaced - zero in the numerator, or "
        "clean - zero in the denominator): "
    )
    return [((r - z) / (z - c), "recovered_sign", why)]


def bias_direction(model: Any, tc: Any, i: int) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the logit effect with the decoder bias subtracted from W_dec[latent], or with b_dec
    (either sign) and b_U both in (round BA)."""
    hint = (
        "yours is (W_dec[latent] {} b_dec) @ W_U: b_dec is written at every token whatever fires, so it is no part of "
        "what one unit of this latent writes: the effect is W_dec[latent] @ W_U"
    )
    minus = ("bias_direction", hint.format("-"), (tc.W_dec[i] - tc.b_dec) @ model.W_U)  # + b_dec: `bias`
    both = (
        "yours is (W_dec[latent] {} b_dec) @ W_U + b_U: two biases that are there whatever fires, b_dec (written at "
        "every token) and b_U (added to every logit), are no part of what one unit of this latent does: leave both "
        "out, the effect is W_dec[latent] @ W_U"
    )
    biases = [
        ("both_biases", both.format(sign), (tc.W_dec[i] + k * tc.b_dec) @ model.W_U + model.b_U)
        for sign, k in (("+", 1), ("-", -1))
    ]
    return [minus, *biases, *skip_of_encoder(model, tc, i), *threshold_factor(model, tc, i, "logit")]


def skip_of_encoder(model: Any, tc: Any, i: int) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the logit effect with the skip matrix applied to the latent's encoder column added to
    (or used instead of) its decoder row: the skip path mistaken for part of the latent's write."""
    if tc.W_skip is None or tc.W_skip.shape[1] != tc.W_enc.shape[0]:
        return []
    enc, dec = tc.W_enc[:, i], tc.W_dec[i]
    hint = (
        "yours equals ({}) @ W_U: the skip term x @ W_skip.T is written from the input whatever fires, so it is no "
        "part of what one unit of this latent writes (and W_enc[:, latent] is what it reads, not writes): the effect "
        "is W_dec[latent] @ W_U"
    )
    out = []
    for name, skip in (
        ("W_skip @ W_enc[:, latent]", tc.W_skip @ enc),
        ("W_skip.T @ W_enc[:, latent]", enc @ tc.W_skip),
    ):
        if skip.shape == dec.shape:
            out.append(("skip_direction", hint.format(f"W_dec[latent] + {name}"), (dec + skip) @ model.W_U))
            out.append(("skip_direction", hint.format(name), skip @ model.W_U))
    return out


def threshold_factor(model: Any, tc: Any, i: int, side: str) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the de-embedding or logit effect multiplied by threshold[latent]: one firing's worth."""
    right = "W_E @ W_enc[:, latent]" if side == "de" else "W_dec[latent] @ W_U"
    value = model.W_E @ tc.W_enc[:, i] if side == "de" else tc.W_dec[i] @ model.W_U
    hint = (
        f"yours is threshold[latent] = {float(tc.threshold[i]):.4g} × the expected values: the {right} of one unit "
        "of activation, not the threshold's worth (one firing at threshold): no factor of the threshold"
    )
    return [("activation", hint, tc.threshold[i] * value)]


RECORDED_HINT = (
    "your output equals what `frozen` recorded from the model's run on the prompt (frozen.logits for the logits, "
    "frozen.acts for pre): it doesn't depend on `embeds` (nor on `latents` or `error`); compute it from `embeds` "
    "through the equations (it agrees with the recording only at the prompt itself)"
)


def bos_positions(out: Any, expected: list, acts: Tensor, k: int, n_bands: int, variant: Any, same: Any) -> None:
    """Groups equal to those of BOS zeroed at other positions than position 0 of every sequence (a wrong stride on
    the flattened tensor, another position, or another axis): say which entries were zeroed."""
    n_seq, seq_len = acts.shape
    masks = {f"every {s}th flat entry (flat[::{s}])": ("flat", s) for s in {n_seq, seq_len - 1, seq_len + 1} if s > 1}
    masks |= {"position 1 (acts[:, 1])": ("col", 1), "the last position (acts[:, -1])": ("col", -1)}
    for said, (kind, s) in masks.items():
        zeroed = acts.clone()
        if kind == "flat":
            zeroed.view(-1)[::s] = 0
        else:
            zeroed[:, s] = 0
        groups = variant(zeroed, k, n_bands, bos=True)  # bos=True: column 0 kept as it is
        if same(out, groups) and not same(out, expected):
            fail(
                f"your groups are those with {said} set to 0 in place of position 0 of every sequence (the first "
                "column), which stays in",
                f"BOS is position 0 of every sequence: acts[:, 0] = 0 before flattening (on the flattened tensor of "
                f"{n_seq} sequences × {seq_len} positions that is flat[::seq_len], stride seq_len = {seq_len})",
                code="bos_positions",
            )


def ones_identity(err: BaseException, n: int) -> None:
    """A singular-matrix error where the learner's variables hold an n × n matrix of ones (torch.ones where the
    identity torch.eye belongs), or the failing line builds one: name it; else return."""
    if "singular" not in str(err).lower():
        return
    frame, line, _ = failing_line(err)
    names = []
    for name, value in frame.f_locals.items() if frame is not None else ():
        if isinstance(value, Tensor) and value.shape == (n, n) and bool((value == 1).all()):
            names.append(f"`{name}`")
    builds = "ones(" in line or "ones_like(" in line
    if not names and not builds:
        return
    seen = f"{' and '.join(names)} {'is a matrix' if len(names) == 1 else 'are matrices'} of ones" if names else ""
    seen = seen or f"the failing line builds a matrix of ones: `{line.strip()}`"
    fail(
        f"your code raised {type(err).__name__} (a singular matrix); {seen} ({n} × {n}), not the identity",
        "the formula's I is the identity matrix, torch.eye(n) (ones on the diagonal only): with torch.ones / "
        "ones_like in its place, I - Â is not the matrix of the formula, and here it is singular",
        code="ones_identity",
    )
