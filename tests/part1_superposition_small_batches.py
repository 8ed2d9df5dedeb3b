"""Small calls of a generator (batch sizes 1 and 3) on a fresh model with every probability 0.9: slips that touch only
one example or a size-1 axis are invisible in one large batch's statistics but plain in a few small ones.

* `.squeeze()` on the result drops the batch axis of generate_batch(1) (and any other axis of size 1);
* a loop over the examples that skips one (range(1, batch_size), range(batch_size - 1)) leaves that example all
  zeros. With p = 0.9 a correctly drawn example of n_inst · n_feats >= 12 entries is all zeros with probability
  0.1^12 = 1e-12, so one example all zeros in every one of 4 calls (or the only example of generate_batch(1)) never
  happens by chance.
"""

from __future__ import annotations

import torch

from tests.checking import expect_tensor, fail
from tests.part1_superposition_probes import consistent

P_HIGH = 0.9
REPEATS = 4


def small_batch_failures(model: torch.nn.Module, device: torch.device, **kwargs) -> None:
    """Calls generate_batch(1) and generate_batch(3) (REPEATS times) on a fresh model of the learner's class with
    every feature probability P_HIGH (`kwargs` go to its constructor)."""
    cfg = model.cfg
    fresh = type(model)(cfg, feature_probability=P_HIGH, device=device, **kwargs)
    shape = (cfg.n_inst, cfg.n_features)
    one = fresh.generate_batch(1)
    if isinstance(one, torch.Tensor) and tuple(one.shape) != (1, *shape) and one.numel() == cfg.n_inst * shape[1]:
        gone = [f"{d}=1" for d, s in zip(("batch", "inst", "feats"), (1, *shape), strict=True) if s == 1]
        fail(
            f"generate_batch(1) returned shape {tuple(one.shape)}, expected {(1, *shape)} (batch inst feats)",
            f"an axis of size 1 was removed ({', '.join(gone)}): .squeeze() without a dim drops every axis of size 1, "
            "and so does an index such as [0]; keep the shape [batch, inst, feats] for every batch size (drop the "
            ".squeeze())",
            code="squeezed",
        )
    expect_tensor(one, "generate_batch(1)", shape=(1, *shape), dims="batch inst feats", device=device)
    outs = [one]
    for _ in range(REPEATS):
        out = fresh.generate_batch(3)
        outs.append(expect_tensor(out, "generate_batch(3)", shape=(3, *shape), dims="batch inst feats", device=device))
    empty = [(o.detach() == 0).flatten(-2).all(-1) for o in outs]  # [calls, examples]: example all zeros
    never = [
        f"example {b} of generate_batch(3) in each of {REPEATS} calls" for b in range(3) if all(e[b] for e in empty[1:])
    ]
    if bool(empty[0][0]):
        never.insert(0, "the only example of generate_batch(1)")
    if never:
        n = shape[0] * shape[1]
        fail(
            f"with every feature probability {P_HIGH}, {' and '.join(never)} is all zeros",
            f"that example is never drawn: with p = {P_HIGH} a drawn example of {n} entries is all zeros with "
            f"probability {1 - P_HIGH:.1g}^{n}. E.g. a loop over the examples that skips one (range(1, batch_size) "
            "leaves example 0 at zeros, range(batch_size - 1) the last), an output filled from the wrong index, or "
            "presence decided by a count over the batch (exactly floor(p · batch_size) examples present per column: "
            "none at all for a batch of 1): draw every example, 0 to batch_size - 1, each entry on its own "
            "(torch.rand(...) < p)",
            code="example_never_drawn",
        )


def zeroed_negatives_failure(batch: torch.Tensor, p: torch.Tensor, what: str) -> None:
    """Part 2's signed values with every nonzero value positive and the nonzero rates at p / 2 (not p): U[-1, 1]
    values with the negative half set to 0 (F.relu, clamp(min=0)), or a {0, 1} sign (same law). A U[0, 1] draw (no
    sign at all) keeps the rates at p and is left to the value checks."""
    values = batch[batch != 0]
    if values.numel() < 100 or not bool((values > 0).all()):
        return
    rates = (batch != 0).double().mean(0)
    n = batch.shape[0]
    if not consistent(rates, p.double() / 2, n) or consistent(rates, p.double(), n):
        return
    i = int(p.flatten().argmax())
    fail(
        f"{what}: every nonzero value is positive (in [{float(values.min()):.3g}, {float(values.max()):.3g}]), and "
        f"every feature is nonzero at about half its rate p (e.g. {float(rates.flatten()[i]):.1%} where p = "
        f"{float(p.flatten()[i]):.1%})",
        "that is what U[-1, 1] values look like with their negative half set to 0 (the zeroed ones then read as "
        "absent), and equally what a sign drawn from {0, 1} instead of {-1, +1} gives (torch.randint(0, 2) without "
        "the `* 2 - 1`): the two have the same law, so the batch cannot tell them apart. Look for F.relu or "
        ".clamp(min=0) on the values, or a 0/1 sign; a U[0, 1] draw would keep the rates at p. The batch keeps both "
        "signs (a ±1 sign); |x| is only the target of the loss",
        code="negatives_zeroed",
    )
