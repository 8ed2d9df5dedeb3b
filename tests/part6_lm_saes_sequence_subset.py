"""latent_frequencies read back as the frequencies of some of the sequences alone: the learner's values, written
as a combination of the per-sequence frequencies, weigh a subset of the sequences equally and the others not at
all. When the subset is one or more whole batches, those batches are named (the last batch alone: a count reset
inside the batch loop; the first alone: a return or break inside it), with the scale against those sequences' own
frequencies; any other subset is listed with the possible causes, not asserted.
"""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


def _batch_names(kept: list[int], n_seq: int, batch_size: int) -> str | None:
    starts = list(range(0, n_seq, batch_size))
    blocks = [list(range(s, min(s + batch_size, n_seq))) for s in starts]
    chosen = [i for i, blk in enumerate(blocks) if blk[0] in kept]
    if sorted(i for c in chosen for i in blocks[c]) != kept:
        return None
    if chosen == [len(blocks) - 1]:
        return f"the last batch alone (batch {len(blocks)} of {len(blocks)})"
    if chosen == [0]:
        return f"the first batch alone (of {len(blocks)})"
    return f"batch{'es' * (len(chosen) > 1)} {', '.join(str(c + 1) for c in chosen)} of {len(blocks)} alone"


def only_some_sequences(y: Tensor, per_seq: Tensor, m: Tensor, batch_size: int) -> None:
    """`y` [d_sae] the learner's frequencies, `per_seq` [n_seq d_sae] each sequence's own frequencies (double, cpu),
    `m` [n_seq] the integer weights read back (1 on a subset, 0 elsewhere): fails naming the subset, else returns."""
    n_seq = len(m)
    kept = [i for i in range(n_seq) if int(m[i]) == 1]
    if not kept or len(kept) == n_seq or any(int(m[i]) not in (0, 1) for i in range(n_seq)):
        return
    own = per_seq[kept].mean(0)  # those sequences' own frequencies (every sequence has the same positions)
    scale = float(y.sum() / own.sum()) if float(own.sum()) > 0 else float("nan")
    batch = _batch_names(kept, n_seq, batch_size)
    seqs = f"sequence{'s' * (len(kept) > 1)} {', '.join(map(str, kept))}"
    exact = abs(scale - 1) < 1e-4
    how = (
        "exactly those sequences' own frequencies"
        if exact
        else f"{scale:.4g} × those frequencies (another count of tokens?)"
    )
    what = f"your frequencies count only {seqs} of {n_seq}" + (f" ({batch})" if batch else "") + f": {how}"
    if batch and batch.startswith("the last batch"):
        causes = (
            "the running count (and token count) reset inside the batch loop (`count = 0` inside `for`), or the "
            "count assigned (`count = ...`) rather than added, so only the last batch is left"
        )
    elif batch and batch.startswith("the first batch"):
        causes = "a `return` or `break` inside the batch loop, so only the first batch is counted"
    else:
        causes = "batch bounds that skip sequences (the start or the step of the loop), or a count reset in the loop"
    fail(
        what,
        f"possible causes: {causes}. Loop over every batch of `tokens` (range(0, n_seq, batch_size)), add each "
        "batch's counts and number of tokens to running totals set once before the loop, and divide at the end",
        code="last_batch_only" if batch and batch.startswith("the last batch") else "sequences_subset",
    )
