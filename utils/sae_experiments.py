"""Experiment loops for section 5 (architecture comparison, L0 / reconstruction frontier).

The section passes in its own training and evaluation functions, so this module imports no section code:

* ``train(arch, **overrides) -> (sae, log)`` trains one architecture, with config overrides such as
  ``sparsity_coeff=[...]`` (one value per instance) or ``k=2``;
* ``evaluate(sae) -> {"l0": [inst], "fve": [inst], "dead": [inst], "recovery": [inst feats]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Train = Callable[..., tuple[Any, Any]]
Evaluate = Callable[[Any], dict[str, Tensor]]


def print_architecture_table(results: dict[str, dict[str, Tensor]], recovery_threshold: float = 0.95) -> None:
    """One line per architecture: mean L0, FVE and dead fraction, and how many instances recovered every
    feature (best cosine ≥ recovery_threshold)."""
    for arch, r in results.items():
        ok = int((r["recovery"].min(-1).values >= recovery_threshold).sum())
        print(
            f"{arch:9s} L0 {r['l0'].mean():.3f}  FVE {r['fve'].mean():.3f}  dead {r['dead'].mean():.2f}  "
            f"instances with every feature recovered (cos ≥ {recovery_threshold}): {ok}/{len(r['l0'])}"
        )


def frontier_sweep(
    train: Train, evaluate: Evaluate, coeffs: dict[str, Tensor], ks: Sequence[int] = (1, 2), topk_name: str = "topk"
) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, list[str]]]:
    """Points (L0, fraction of variance unexplained) for `sae_plots.plot_frontier`.

    Each architecture in `coeffs` is trained once with one sparsity coefficient per instance (so one run
    traces a curve); `topk_name` is trained once per k in `ks`. Returns (frontier, labels).
    """
    frontier: dict[str, tuple[Tensor, Tensor]] = {}
    labels: dict[str, list[str]] = {}
    for arch, sweep in coeffs.items():
        r = evaluate(train(arch, sparsity_coeff=sweep.tolist())[0])
        frontier[arch] = (r["l0"], 1 - r["fve"])
        labels[arch] = [f"coeff {c:.3g}" for c in sweep.tolist()]
    if ks:
        points = [evaluate(train(topk_name, k=k)[0]) for k in ks]
        frontier[topk_name] = (torch.cat([r["l0"] for r in points]), torch.cat([1 - r["fve"] for r in points]))
        labels[topk_name] = [f"k = {k}" for k, r in zip(ks, points, strict=True) for _ in range(len(r["l0"]))]
    return frontier, labels
