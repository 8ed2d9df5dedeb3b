"""Two calls of part 4's generate_dataset must draw independently (`tests.part4_double_descent`).

A generator re-seeded with a constant inside the function repeats its draws at every call. When it drives the whole
data set, the two calls are equal; when it drives only the presence mask (values fresh), the values differ but the
supports coincide. Two independent Bernoulli(p) masks of the checker's size (50 · 3 · 24 entries at p = 0.1) agree
everywhere with probability (1 - 2p(1 - p))^3600 < 1e-300, so either equality is a repeated draw.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

SEEDED = (
    "a generator seeded inside the function (torch.manual_seed, torch.Generator().manual_seed(...)) gives the same "
    "{what} every time; draw from the global random state (torch.rand without a generator) and leave seeding to the "
    "caller"
)


def repeated_draw_failure(small: list) -> None:
    """Fail when two calls of generate_dataset(50, ...) returned the same data, or the same presence mask."""
    if not all(isinstance(t, Tensor) for t in small) or small[0].shape != small[1].shape:
        return
    if torch.equal(small[0], small[1]):
        fail(
            "two calls of generate_dataset(50, ...) returned exactly the same data",
            "each call must draw new random data: " + SEEDED.format(what="examples"),
            code="same_every_call",
        )
    masks = [t != 0 for t in small]
    if bool(masks[0].any()) and torch.equal(masks[0], masks[1]):
        fail(
            f"two calls of generate_dataset(50, ...) returned different values but exactly the same presence mask "
            f"(the same {int(masks[0].sum())} entries present); independent Bernoulli draws never repeat a mask of "
            f"{masks[0].numel()} entries",
            "each call must draw a new presence mask: " + SEEDED.format(what="mask"),
            code="same_mask_every_call",
        )
