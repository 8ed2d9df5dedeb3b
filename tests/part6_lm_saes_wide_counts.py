"""part6_lm_saes readings for sizes the main inputs keep small: counts above 255 (a count kept in a byte wraps), and a
leading axis of size n_layers (a weight such as model.W_out used without indexing its layer)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_probes import more_sequences_than_positions

COPIES, LENGTH, BATCH = 96, 4, 48  # 96 copies of BOS + 3 tokens: 288 positions, in 2 batches of 144


def larger_calls(run: Callable, right: Callable, tokens: Tensor) -> None:
    """The frequency checker's calls after the main one: more sequences than positions, then counts above 255."""
    more_sequences_than_positions(run, right, tokens)
    byte_counts_probe(run, right, tokens)


def byte_counts_probe(run: Callable, right: Callable, tokens: Tensor) -> None:
    """A second call on 96 copies of one short sequence on which some latent fires at every position after BOS, so
    that latent fires 288 > 255 times (the main call's 10 × 48 tokens stay below 256 for every latent). A count held in
    uint8 (or int8) wraps around modulo 256: named from the wrapped values. `run(tokens, batch_size)` calls the
    learner's function, `right(tokens, batch_size)` the reference."""
    for seq in range(tokens.shape[0]):  # the first sequence with a latent on at every position after BOS
        expected = right(tokens[seq : seq + 1, :LENGTH], 1)  # copies of one sequence: the same frequencies
        always = (expected == 1).nonzero()
        if len(always):
            break
    else:
        return
    latent = int(always[0])
    copies = tokens[seq : seq + 1, :LENGTH].repeat(COPIES, 1)
    out = run(copies.clone(), BATCH)
    if not isinstance(out, Tensor) or out.shape != expected.shape or not out.is_floating_point():
        return
    out = out.detach().to(expected.device, torch.float64)
    if torch.allclose(out, expected.double(), atol=1e-6):
        return
    expected = right(copies, BATCH)  # a failing answer: the reference on these very tokens and batches
    if torch.allclose(out, expected.double(), atol=1e-6):
        return
    n = COPIES * (LENGTH - 1)
    counts = (expected.double() * n).round()
    what = (
        f"latent_frequencies on {COPIES} copies of one sequence of {LENGTH} tokens (latent {latent} fires at all {n} "
        f"positions after BOS), batch_size={BATCH},"
    )
    for kind, wrapped in (("uint8", counts % 256), ("int8", (counts + 128) % 256 - 128)):
        if torch.allclose(out, wrapped / n, atol=1e-6):
            fail(
                f"{what} gives latent {latent} frequency {float(out[latent]):.4g} = ({int(counts[latent])} mod 256) / "
                f"{n}: the counts wrapped around at 256 (right on the main call, where no latent fires 256 times)",
                f"the counts are kept in a {kind} tensor, which holds at most {255 if kind == 'uint8' else 127}: "
                "count in a wide type (torch.long, or float: `(acts > 0).float().sum(...)`)",
                code="count_wrapped",
            )
    fail(
        f"{what} differs from the expected values (right on the main call's 10 sequences × 48 positions; latent "
        f"{latent}: got {float(out[latent]):.4g}, expected {float(expected[latent]):.4g})",
        "your code is right only while every count stays small or the sequences differ; possible causes: counts in "
        "a narrow integer type, or a count capped or deduplicated across sequences",
        code="many_firings",
    )


def layer_axis(x: Tensor, what: str, shape: tuple[int, ...], dims: str, n_layers: int) -> None:
    """A result with one extra leading axis of size n_layers (1 in this model) in front of the expected shape: the
    model's weights (W_in, W_out, b_out, ...) carry a leading layer axis, and a chain through model.W_out without
    [0] keeps it. Only the shape is known here, so an unsqueeze or keepdim is listed as the other cause."""
    if x.ndim != len(shape) + 1 or x.shape[0] != n_layers or tuple(x.shape[1:]) != tuple(shape):
        return
    fail(
        f"{what} has shape {tuple(x.shape)}, expected ({dims}) = {tuple(shape)}: an extra leading axis of size "
        f"{n_layers} = n_layers, the model's layer count",
        "model.W_out (like W_in, b_in, b_out) has a leading n_layers axis [n_layers, d_mlp, d_model]: index the "
        "layer, model.W_out[0], so the product keeps only the axes you want; otherwise an unsqueeze or keepdim=True "
        "added the axis",
        code="shape",  # still a wrong shape (an unsqueeze is the other cause)
    )
