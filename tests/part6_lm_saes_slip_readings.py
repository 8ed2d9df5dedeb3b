"""Part 6: slips read back from the learner's error or output (held-out round BB).

* `decoder_layout_error`: an error raised on a line that takes a column of W_dec (`W_dec[:, latent]`, `W_dec.T[latent]`)
  where its row belongs, or that multiplies f [batch seq] by a [d_in] row without `[..., None]`;
* `every_token_counted`: every latent got (seq − 1)/seq or another constant below 1: each token counted as a firing
  (`>= 0` after a ReLU is always true), divided by a count of every token;
* `single_position`, `tied_frequencies`: frequencies of one position alone (acts[:, p]), or of latents encoded with the
  decoder transposed;
* `batch_rows_only`: an edit made in some sequences of the batch only (act[0] indexes the batch axis);
* `reversed_unravel`: (seq_idx, pos_idx) from a divmod by n_seq (unravel_index with the shape reversed);
* `loss_statistics`: per-token losses reduced by a median, and a zero-ablation that leaves position 0;
* `logit_two_slips`: a logit effect with two slips at once (another direction and a bias).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.learner_errors import failing_line

ROW = "W_dec is [d_sae d_mlp]: the latent's direction is its ROW, sae.W_dec[latent] ([d_mlp])"


def decoder_layout_error(err: Exception, sae: Any) -> None:
    """Name an error from a column of W_dec taken for its row, or from f [batch seq] times a row without [..., None]."""
    frame, line, _ = failing_line(err)
    if frame is None:
        return
    msg = str(err)
    sizes = {int(n) for n in re.findall(r"\d+", msg)}
    d_sae, d_in = sae.W_dec.shape
    if re.search(r"W_dec\s*\[\s*:\s*,|W_dec\s*\.\s*m?T\s*\[", line) and d_sae in sizes and d_sae != d_in:
        fail(
            f"your code raised {type(err).__name__}: {msg.splitlines()[0]}",
            f"{ROW}; W_dec[:, latent] (or W_dec.T[latent]) is a column of {d_sae} numbers (one per latent), which "
            f"cannot meet the {d_in}-wide activations",
            code="decoder_column",
        )
    pair = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", msg)
    if not pair or d_in not in {int(pair.group(1)), int(pair.group(2))}:
        return
    other = ({int(pair.group(1)), int(pair.group(2))} - {d_in}) or {d_in}
    row = lambda n, v: isinstance(v, Tensor) and tuple(v.shape) == (d_in,) and re.search(rf"\b{re.escape(n)}\b", line)
    if "W_dec[" not in line and not any(row(n, v) for n, v in frame.f_locals.items()):
        return  # no [d_in] row on the line: another broadcast
    for name, value in frame.f_locals.items():
        on_line = re.search(rf"\b{re.escape(name)}\b", line)
        if isinstance(value, Tensor) and value.ndim == 2 and value.shape[-1] in other and on_line:
            fail(
                f"your code raised {type(err).__name__}: {msg.splitlines()[0]}",
                f"`{name}` has shape {list(value.shape)} ([batch seq], one number per position) and the row "
                f"[{d_in}]: broadcasting lines up its last axis (seq) with d_mlp. Give it a trailing axis, "
                f"{name}[..., None] * sae.W_dec[latent] (or {name}.unsqueeze(-1))",
                code="missing_unsqueeze",
            )


def every_token_counted(out: Tensor, expected: Tensor, n_seq: int, seq: int) -> None:
    """Every latent got one value c < 1: each token counted as a firing, divided by a larger count than the tokens
    counted ((seq − 1)/seq: position 0 dropped from the count only). A count summed over every axis gives the mean L0,
    named by `same_for_every_latent`."""
    if out.ndim != 1 or out.numel() < 2 or not out.is_floating_point() or not torch.equal(out, out[:1].expand_as(out)):
        return
    c = float(out[0])
    if not 0 < c < 1 or torch.allclose(expected, expected[:1]):
        return
    both = abs(c - (seq - 1) / seq) < 1e-6
    fail(
        f"the frequencies: every latent got the same value {c:.6g}"
        + (f" = {seq - 1}/{seq}, (positions >= 1) / (all positions)" if both else ""),
        "every token counted as a firing for every latent: after a ReLU, acts >= 0 is always true (count acts > 0)"
        + (
            "; and the count was divided by every token, position 0 included (e.g. batch.numel()): divide by "
            "n_seq × (seq − 1)"
            if both
            else ""
        ),
        code="every_token_fires",
    )


def single_position(out: Tensor, acts: Tensor) -> None:
    """`acts` [n_seq seq d_sae] (positions >= 1 at index >= 1): frequencies of one position alone."""
    if out.shape != acts.shape[-1:]:
        return
    fired = (acts > 0).double().mean(0)  # [seq d_sae]
    for p in range(1, acts.shape[1]):
        if torch.allclose(out.detach().double().cpu(), fired[p].cpu(), atol=1e-6) and not torch.allclose(
            fired[p], fired[1:].mean(0), atol=1e-6
        ):
            fail(
                f"the frequencies are those of position {p} alone (acts[:, {p}]), not of every position >= 1",
                f"slice with a colon: acts[:, 1:] keeps positions 1 onwards; acts[:, {p}] picks one position",
                code="single_position",
            )


def tied_frequencies(sae: Any, acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """`acts` [n_seq seq d_mlp]: frequencies of latents encoded with the decoder transposed."""
    out = []
    for bias, pre in (
        ("(act − b_dec) @ W_dec.T + b_enc", (acts - sae.b_dec) @ sae.W_dec.T + sae.b_enc),
        ("act @ W_dec.T + b_enc", acts @ sae.W_dec.T + sae.b_enc),
        ("(act − b_dec) @ W_dec.T", (acts - sae.b_dec) @ sae.W_dec.T),
    ):
        what = (
            f"that counts latents encoded with the decoder transposed, relu({bias}): this SAE's encoder is its own "
            "matrix W_enc (untied); use sae.encode(act)"
        )
        out.append(("tied_encoder", what, (pre[:, 1:] > 0).float().mean((0, 1))))
    return out


def batch_rows_only(done: Tensor, differs: Tensor) -> str | None:
    """`done`, `differs` [batch seq]: the edit made in whole sequences of the batch only."""
    rows = done.any(-1)
    if not rows.any() or bool(rows.all()) or not torch.equal(done, differs & rows[:, None]):
        return None
    which = rows.nonzero().flatten().tolist()
    return (
        f"in sequence{'s' * (len(which) > 1)} {which} of the batch only (act[{which[0]}] indexes the BATCH axis: "
        "the activation is [batch seq d_mlp], so act[0] is the first sequence, not a position)"
    )


def reversed_unravel(s_idx: Tensor, p_idx: Tensor, exp_seq: Tensor, exp_pos: Tensor, shape: tuple[int, int]) -> None:
    """(seq_idx, pos_idx) = divmod(flat, n_seq): the flat index unravelled with the two sizes swapped."""
    n_seq, seq = shape
    if n_seq == seq or s_idx.shape != exp_seq.shape:
        return
    if torch.equal(s_idx, exp_seq.cpu().long()) and torch.equal(p_idx, exp_pos.cpu().long()):
        return  # right (sequence 0 alone reads the same either way)
    if torch.equal(s_idx * n_seq + p_idx, exp_seq.cpu() * seq + exp_pos.cpu()):
        fail(
            f"(seq_idx, pos_idx) = ({s_idx.tolist()}, {p_idx.tolist()}): the flat indices divided by n_seq = {n_seq}",
            f"the flat index of acts [n_seq seq] is s · seq + p: divide by seq = acts.shape[1] = {seq} (i // {seq}, "
            f"i % {seq}), or torch.unravel_index(i, acts.shape) with the shape in its own order, not reversed",
            code="unravel_reversed",
        )


def loss_statistics(model: Any, sae: Any, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """(code, hint, value) per key: the per-token losses reduced by a median; a zero-ablation that keeps position 0."""
    h = sae.hook_name

    def per_token(hooks: list) -> Tensor:
        return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks).double()

    def body_zeroed(a: Tensor, hook: Any) -> Tensor:
        a = a.clone()
        a[:, 1:] = 0
        return a

    hooks = {
        "clean": [],
        "spliced": [(h, lambda a, hook: sae.decode(sae.encode(a)))],
        "zero_ablated": [(h, lambda a, hook: torch.zeros_like(a))],
    }
    out: dict[str, list[tuple[str, str, Tensor]]] = {}
    for key, hk in hooks.items():
        per = per_token(hk)
        out[key] = [
            (
                "median_loss",
                f"that is the {how} of the per-token losses: the loss is their MEAN (return_type='loss' gives it; "
                "with loss_per_token=True take .mean())",
                value,
            )
            for how, value in (("median", per.median()), ("median (mean of the two middle values)", per.quantile(0.5)))
        ]
    out["zero_ablated"].append(
        (
            "bos_kept",
            "that is the loss with every position zeroed except position 0 (act[:, 1:] = 0): zero-ablation replaces "
            "the activations everywhere, BOS included (leaving position 0 out is for statistics, not for the "
            "intervention): torch.zeros_like(act)",
            per_token([(h, body_zeroed)]).mean(),
        )
    )
    return out


def logit_two_slips(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The logit effect with another direction (the encoder column) and a bias at once."""
    W_out, W_U = model.W_out[0], model.W_U
    out = []
    for dname, u in (("the encoder column W_enc[:, latent]", sae.W_enc[:, latent]),):
        for bname, value in (
            ("b_U added", u @ W_out @ W_U + model.b_U),
            ("b_out added before W_U", (u @ W_out + model.b_out[0]) @ W_U),
            ("b_dec added to the direction", (u + sae.b_dec) @ W_out @ W_U),
        ):
            out.append(
                (
                    "direction_and_bias",
                    f"two slips: {dname} in place of the decoder row, and {bname}: the effect is "
                    "W_dec[latent] @ W_out[0] @ W_U (a latent writes with its decoder row; no bias belongs to it)",
                    value,
                )
            )
    return out
