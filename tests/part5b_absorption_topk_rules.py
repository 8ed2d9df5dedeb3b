"""batch_topk read-backs: negatives ranked as equal (a ReLU'd ranking), the cut at the largest kept value, a
per-example cap of k on top of the batch top-k. Each is named only when the learner's output is reproduced."""

from __future__ import annotations

import torch
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import fail


def _flat(t: Tensor) -> Tensor:
    return t.detach().transpose(0, 1).reshape(t.shape[1], -1)  # [inst batch·d_sae]


def topk_kept_rules(out: Tensor, pre: Tensor, k: int, what: str) -> None:
    batch, n_inst, _ = pre.shape
    got, p = out.detach(), pre.detach()
    exp = ref.batch_topk(p, k)
    kept = got != 0
    if got.shape != p.shape or not torch.equal(got[kept], p[kept]):
        return  # values changed: other checks
    flat_kept, flat_pre = _flat(kept), _flat(p)
    counts = flat_kept.sum(-1)
    # The cut at the LARGEST kept value (top.values[:, 0] with >=): each instance keeps its single largest entry.
    top1 = torch.zeros_like(flat_kept).scatter(-1, flat_pre.argmax(-1, keepdim=True), True)
    if k * batch > 1 and torch.equal(flat_kept, top1):
        fail(
            f"{what} keeps exactly 1 entry per instance, its largest, expected the k·batch = {k * batch} largest",
            "the cut is the SMALLEST kept value, the k·batch-th largest: flat.topk(k·batch).values[:, -1:] (sorted "
            "descending, so [:, 0] is the largest and `>= cut` keeps only that one)",
            code="cut_largest",
        )
    # A per-example cap of k on top of the batch top-k: each example keeps its k largest among the right ones.
    kk = min(k, exp.shape[-1])
    caps = [torch.where(exp != 0, exp, -torch.inf), exp, exp.abs()]  # k largest kept, largest, largest |.|
    capped = [torch.zeros_like(exp).scatter(-1, idx, exp.gather(-1, idx)) for idx in (c.topk(kk).indices for c in caps)]
    if any(not torch.equal(c, exp) and torch.equal(got, c) for c in capped):
        fail(
            f"{what} is the batch top-k with every example then capped at its k={k} largest kept entries "
            f"({counts.tolist()} kept per instance, expected k·batch = {k * batch} each)",
            "batch top-k keeps the k·batch largest of an instance over all examples and latents together: an example "
            "may keep more than k (and another fewer); don't apply a per-example top-k afterwards",
            code="per_example_cap",
        )
    # Negatives ranked as equal: every positive entry right, the kept negatives not the largest ones.
    if not torch.equal(kept.sum((0, 2)), (exp != 0).sum((0, 2))):
        return
    flat_exp = _flat(exp != 0)
    bad = [i for i in range(n_inst) if not torch.equal(flat_kept[i], flat_exp[i])]
    if not bad:
        return
    for i in bad:
        pos = flat_pre[i] > 0
        if not torch.equal(flat_kept[i] & pos, flat_exp[i] & pos) or not (flat_exp[i] & ~pos).any():
            return  # a positive entry differs, or the right answer keeps no negative there: another mistake
    i = bad[0]
    dropped = flat_pre[i][flat_exp[i] & ~flat_kept[i]].max()
    taken = flat_pre[i][flat_kept[i] & ~flat_exp[i]].min()
    right = [j for j in range(n_inst) if j not in bad]
    fail(
        f"{what}: in inst {bad} every positive entry is kept right, but among the negative ones your code kept "
        f"{float(taken):.4g} and dropped the larger {float(dropped):.4g}; those instances have fewer than k·batch = "
        f"{k * batch} positive entries, so the top k·batch must reach into the negatives"
        + (f" (inst {right} have enough positives, which is why they are right)" if right else ""),
        "the ranking treated every negative entry as equal (as 0), e.g. the top-k taken on relu(pre) or "
        "pre.clamp(min=0) while returning pre's values: rank pre itself (topk of the raw values), negative or not",
        code="negatives_unranked",
    )
