"""Part 8: what one call of the learner's function, or the error it raised, tells about its structure.

* svd_terms: a number of terms that does not follow W at all (a slice [:, :2] or a range(2) written for the TMS
  model, whose W has rank 2). On the first input the count 2 is also n_inst, so a count from the wrong axis and a
  constant look alike; the learner's function runs once more on a W where no size is that count: a count that
  stays the same is a constant, named as one.
* ablation_losses: a size error on a line of the learner's own code (not while the chain runs) between a term's
  size (the terms are shaped like the first matrix, [d_out_0 d_in_0]) and a size only another chain matrix has:
  the term subtracted from that matrix (chain.weights[-1] where chain.weights[0] belongs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import CheckFailed, _describe_error
from utils.part8_parameter_decomposition import WeightChain


def fixed_term_count(fn: Callable, W: Tensor, out: Any) -> Any:
    """`out` (fn(W)) unchanged, unless its number of terms is not r and fn returns that number again on a W whose
    sizes are all different from it: then fail, naming a hard-coded count."""
    n_inst, d_out, d_in = W.shape
    r = min(d_out, d_in)
    if not isinstance(out, Tensor) or out.ndim != 4 or out.shape[0] != n_inst or out.shape[2:] != W.shape[1:]:
        return out
    k = out.shape[1]
    if k == r or k <= 1:  # one term: the one_term check names the slice or index
        return out
    shape = (k + 2, k + 3, k + 4)  # no size is k, and r = k + 3
    probe = torch.randn(shape, generator=torch.Generator().manual_seed(5)).to(W)
    try:
        again = fn(probe)
    except Exception:  # a probe: the main checks report the learner's own errors
        return out
    if not isinstance(again, Tensor) or again.ndim != 4 or again.shape[1] != k:
        return out
    raise CheckFailed(
        f"svd_terms(W) returns {k} terms whatever W is: {k} for W of shape {tuple(W.shape)} (r = {r}) and {k} again "
        f"for W of shape {shape} (r = {shape[1]}), where r = min(d_out, d_in) terms are expected",
        f"a fixed number of terms ({k}): a slice such as [:, :{k}] or a range({k}) written for one matrix (the TMS "
        f"W has rank 2)? svd_terms works for any W: keep all r = min(W.shape[-2:]) terms, largest σ first",
        code="fixed_term_count",
    )


def other_matrix_clash(err: RuntimeError, chain: WeightChain, terms: Tensor) -> None:
    """Raise CheckFailed when a size error (outside the chain's run) met a term's size and a size that only another
    chain matrix has: the term was subtracted from, or combined with, that matrix. Otherwise return."""
    sizes = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", str(err))
    if not sizes:
        return
    met = {int(sizes[1]), int(sizes[2])}
    term = set(terms.shape[-2:])
    if not met & term or met <= term:
        return
    layers = [n for n in range(1, len(chain.weights)) if (met - term) <= set(chain.weights[n].shape[-2:])]
    if not layers:
        return
    shape = tuple(terms.shape[-2:])
    own = ", ".join(f"chain.weights[{n}] is [{', '.join(map(str, chain.weights[n].shape[-2:]))}]" for n in layers)
    which = " or ".join(f"chain.weights[{n}]" for n in layers)
    last = " (chain.weights[-1])" if layers == [len(chain.weights) - 1] else ""
    raise CheckFailed(
        _describe_error(err).message,
        f"a term (shaped like the first matrix W_0, [d_out {shape[0]}, d_in {shape[1]}]) met a size only another "
        f"matrix has ({own}): the term removed from {which}{last}? The terms are removed from the first matrix "
        "only: W_0 - T_k = chain.weights[0] - terms[:, k]",
        code="ablated_layer",
    ) from None
