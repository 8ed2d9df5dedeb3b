"""part6_lm_saes readings for sizes the main inputs keep small: counts above 255 (a count kept in a byte wraps), and a
leading axis of size n_layers (a weight such as model.W_out used without indexing its layer)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_probes import more_sequences_than_positions

# 150 copies of BOS + 3 tokens: 450 positions, in batches of 7 sequences (21 positions: odd partial sums above 256,
# which a count held in bfloat16, 8 significant bits, cannot hold)
COPIES, LENGTH, BATCH = 150, 4, 7


def larger_calls(run: Callable, right: Callable, tokens: Tensor) -> None:
    """The frequency checker's calls after the main one: more sequences than positions, then counts above 255."""
    more_sequences_than_positions(run, right, tokens)
    byte_counts_probe(run, right, tokens)


def byte_counts_probe(run: Callable, right: Callable, tokens: Tensor) -> None:
    """A second call on 150 copies of one short sequence on which some latent fires at every position after BOS, so
    that latent fires 450 > 255 times (the main call's 10 × 48 tokens stay below 256 for every latent). A count held in
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
    narrow_float_counts(out, counts, n, what, latent)
    fail(
        f"{what} differs from the expected values (right on the main call's 10 sequences × 48 positions; latent "
        f"{latent}: got {float(out[latent]):.4g}, expected {float(expected[latent]):.4g})",
        "your code is right only while every count stays small or the sequences differ; possible causes: counts in "
        "a narrow integer type, or a count capped or deduplicated across sequences",
        code="many_firings",
    )


def narrow_float_counts(out: Tensor, counts: Tensor, n: int, what: str, latent: int) -> None:
    """Counts accumulated batch by batch in a bfloat16 / float16 tensor: read back by adding the same per-batch counts
    (every sequence is the same copy) in that dtype; named only when that reproduces the learner's frequencies."""
    per_seq = counts / COPIES
    for dtype, bits in ((torch.bfloat16, 8), (torch.float16, 11)):
        acc = torch.zeros_like(counts, dtype=dtype)
        for start in range(0, COPIES, BATCH):
            acc += (per_seq * min(BATCH, COPIES - start)).to(dtype)
        if torch.allclose(out, acc.double() / n, atol=1e-6):
            name = str(dtype).removeprefix("torch.")
            fail(
                f"{what} gives latent {latent} frequency {float(out[latent]):.4g} = {int(acc[latent])} / {n}, not "
                f"{int(counts[latent])} / {n}: adding the per-batch counts in {name} gives exactly your values "
                f"(right on the main call, where every count stays below 256)",
                f"the counts are accumulated in a {name} tensor, which holds integers exactly only up to "
                f"{2**bits} ({bits} significant bits); count in float32/float64 or torch.long "
                "(`(acts > 0).float().sum(...)`)",
                code="count_precision",
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
