"""Randomness of generate_hierarchical_batch drawn once and shared by the whole batch (`tests.part5b_absorption`).

Run on the exact structure, before any frequency is measured: a parent drawn once ([1, inst, n_parents]
expanded over the batch) is on in every example or in none, which the rate check would only see as a parent
firing at 100% (or 0%) and could blame on the draw's law. Every probability is strictly between 0 and 1 and
the batch has thousands of examples, so a correct draw leaves no (instance, feature) cell constant over it."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail
from utils.part5b_absorption import HierarchyConfig


def shared_over_batch(on: Tensor, cfg: HierarchyConfig, what: str) -> None:
    """on: [batch inst feats] bool. Names a batch in which every example is the same, parents that are the same in
    every example, or children that are the same in every example whose parent fires."""
    n = on.shape[0]
    if n <= 1:
        return
    if (on == on[:1]).all():
        fail(
            f"{what}: every example in the batch is the same",
            "draw separately for every example: random tensors of shape [batch, inst, ...]",
            code="shared_over_batch",
        )
    parents = on[..., : cfg.n_parents]  # [batch inst parent]
    if (parents == parents[:1]).all():
        first = parents[0]
        n_on, cells = int(first.sum()), first.numel()
        seen = (
            f"{what}: every example has the same parents on: each of the {cells} (instance, parent) pairs is on in "
            f"all {n} examples or in none ({n_on} on everywhere, {cells - n_on} nowhere)"
        )
        if 0 < n_on < cells:
            fail(
                seen,
                f"the parents' random draw is shared by the whole batch (e.g. torch.rand(1, n_inst, n_parents), or "
                "[n_inst, n_parents], broadcast or .expand()-ed over the batch): draw one number per example, "
                f"torch.rand(batch_size, n_inst, n_parents) < p_parent (p_parent = {cfg.p_parent})",
                code="parents_shared_over_batch",
            )
        fail(
            seen,
            f"with p_parent = {cfg.p_parent} a parent should be on in about that fraction of the examples. Possible "
            "causes: one draw shared by the whole batch (a [1, inst, n_parents] random tensor expanded over it) "
            "that happened to come out the same for every parent, or parents that aren't drawn at all (set to 1)",
            code="parents_constant",
        )
    children = on[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, cfg.n_children))  # [batch inst parent child]
    given = parents.unsqueeze(-1).expand_as(children)
    fired = (children & given).sum(0)  # [inst parent child]: how often the child fires with its parent
    with_parent = given.sum(0)
    constant = (fired == 0) | (fired == with_parent)
    if (with_parent >= 2).all() and constant.all() and (fired > 0).any() and (fired == 0).any():
        fail(
            f"{what}: every example whose parent fires has the same children: each (instance, parent, child) is on "
            f"in all the examples where its parent fires or in none of them ({int((fired > 0).sum())} always, "
            f"{int((fired == 0).sum())} never)",
            "the children's random draw is shared by the whole batch (e.g. a [1, n_inst, n_parents, n_children] "
            "random tensor broadcast over it): draw the children per example, random tensors of shape "
            "[batch_size, n_inst, n_parents, ...], then keep them only where their parent fires",
            code="children_shared_over_batch",
        )
