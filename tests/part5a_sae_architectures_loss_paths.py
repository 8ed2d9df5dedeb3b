"""Part 5a: a loss term added to the loss detached (read back on the checker's own SAE and batch).

`loss = (L_rec + coeff * L_sparsity.detach()).mean(0).sum()` (or .item(), .data, a float copy) logs the right values
and the right loss_dict, yet the loss's gradient lacks that term's part. The reading runs when the loss's gradients
are wrong: it computes, on the reference, the gradient of the whole loss minus that of one term (coeff · term, mean
over the batch, sum over instances), and names the term when that reproduces the learner's loss gradient while the
learner's own loss_dict entry still carries the term's right gradient. Otherwise it says nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _flat(module: Any, y: Tensor, names: list[str]) -> Tensor:
    params = dict(module.named_parameters())
    gs = torch.autograd.grad(y, [params[n] for n in names], allow_unused=True, retain_graph=True)
    return torch.cat(
        [(torch.zeros_like(params[n]) if g is None else g).flatten() for n, g in zip(names, gs, strict=True)]
    )


def _close(a: Tensor, b: Tensor) -> bool:
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max().clamp(min=1e-30))))


def detached_term(learner: Any, reference: Any, h: Tensor, coeffs: dict[str, Any]) -> None:
    """`coeffs`: loss_dict key -> its coefficient in the loss (1 for the reconstruction term)."""
    try:
        ld, loss = learner(h.clone())[:2]
        if not (isinstance(ld, dict) and isinstance(loss, Tensor) and loss.requires_grad and loss.numel() == 1):
            return
        names = [n for n, p in reference.named_parameters() if p.requires_grad]
        rld, rloss = reference(h.clone())[:2]
        got, want = _flat(learner, loss.sum(), names), _flat(reference, rloss, names)
    except Exception:  # a learner's forward that can't be read this way: the main comparison speaks
        return
    if _close(got, want):
        return
    for key, coeff in coeffs.items():
        term = lambda d, key=key, coeff=coeff: (coeff * d[key]).mean(0).sum()
        part = _flat(reference, term(rld), names)
        if not (part.abs().max() > 0 and _close(got, want - part)):
            continue
        mine = ld.get(key)
        if not (isinstance(mine, Tensor) and mine.requires_grad and mine.shape == rld[key].shape):
            continue
        if not _close(_flat(learner, term(ld), names), part):
            continue
        fail(
            f"the loss's gradients equal the expected ones without the {key} term (read back: the gradient of the "
            f"expected loss minus that of coeff · {key} reproduces yours), while your loss_dict['{key}'] carries the "
            "right gradient: the loss adds a detached copy of it",
            f"add loss_dict['{key}'] itself to the loss, not {key}.detach() / .item() / .data: a detached term is "
            "logged but never trained",
            code="term_detached_in_loss",
        )
