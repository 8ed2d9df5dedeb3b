"""latent_frequencies read back as batch slices: the weight each sequence gets when the batches are cut in a way other
than tokens[start : start + batch_size] for start in range(0, n_seq, batch_size) (an end past the block, a step
smaller than the block, a strided slice), each simulated on the checker's own n_seq and batch_size; only the slicings
whose weights are exactly the learner's are named."""

from __future__ import annotations


def _weights(slices: list[range], n_seq: int) -> list[int]:
    m = [0] * n_seq
    for r in slices:
        for i in r:
            m[i] += 1
    return m


def slicing_candidates(n_seq: int, batch_size: int) -> list[tuple[str, list[int]]]:
    """(the slicing in words, the number of times it counts each sequence)."""
    bs, out = batch_size, []
    out.append(
        (
            f"tokens[start::batch_size] (a strided slice, every {bs}-th sequence from start) for start in "
            f"range(0, n_seq, batch_size)",
            _weights([range(s, n_seq, bs) for s in range(0, n_seq, bs)], n_seq),
        )
    )
    for j in range(1, bs):
        out.append(
            (
                f"tokens[start : start + batch_size + {j}] (an end {j} past the block) for start in "
                f"range(0, n_seq, batch_size)",
                _weights([range(s, min(s + bs + j, n_seq)) for s in range(0, n_seq, bs)], n_seq),
            )
        )
    for step in range(1, bs):
        out.append(
            (
                f"tokens[start : start + batch_size] for start in range(0, n_seq, {step}) (a step smaller than "
                f"batch_size = {bs})",
                _weights([range(s, min(s + bs, n_seq)) for s in range(0, n_seq, step)], n_seq),
            )
        )
    return out


def _relative(m: list[int]) -> list[float]:
    low = min(v for v in m if v > 0)
    return [v / low for v in m]


def slicing_read_back(m: list[int], batch_size: int) -> list[str]:
    """The slicings (of slicing_candidates) that weigh the sequences exactly as `m` does (up to one common factor)."""
    want = _relative(m)
    return [
        desc
        for desc, w in slicing_candidates(len(m), batch_size)
        if all(abs(a - b) < 0.02 for a, b in zip(_relative(w), want, strict=True))
    ]
