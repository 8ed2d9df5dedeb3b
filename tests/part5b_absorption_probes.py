"""Part 5b's probes on a learner's BatchTopK SAE (moved out of part5b_absorption_diagnosis for its size)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def where_swapped(sae: Any, before: Tensor, right: Tensor, batch: Tensor, b_dec0: Tensor) -> None:
    """When a training call left self.threshold where it was but it should have moved, a probe on a copy: a batch in
    which only instance 0 keeps nothing (h = b_dec there). If exactly that instance's threshold moves, the two
    branches of torch.where(has_any, updated, self.threshold) are swapped."""
    th = sae.threshold.detach()
    if th.shape != before.shape or not torch.equal(th, before) or torch.equal(right, before):
        return
    probe = copy.deepcopy(sae)
    silent = batch.clone()
    silent[:, 0] = b_dec0
    try:
        probe.encode(silent)
    except Exception:
        return
    moved = probe.threshold.detach() != before  # NaN and inf count as moved
    if bool(moved[0]) and not bool(moved[1:].any()):
        fail(
            "self.threshold kept its old value after a training call in which every instance kept positive "
            f"activations, and moved (to {probe.threshold[0].item():.4g}) at instance 0 only in a batch where "
            "instance 0 alone kept nothing",
            "the branches of torch.where are swapped: torch.where(has_any, updated, self.threshold) moves the "
            "instances that kept something and leaves the others",
            code="where_swapped",
        )
