"""Part 5 read-backs that replace two pattern guesses with findings:

* `added_vector_reading`: generate_batch's h is W x plus one vector c [inst d_in] for every example. Which vector
  c is gets read back against the tensors a learner could have added (the SAE's b_dec or b_enc, the toy model's
  b_final sliced to d_in or mapped through W, any other same-shaped field); c is named only when one of them equals
  it, otherwise the message gives c's values and names nothing.
* `nan_rows_reading`: W_dec_normalized has NaN in rows that are not zero. The cause is named only when it is read
  back: NaN exactly at W's negative entries (an elementwise root or fractional power of W), or NaN exactly in the
  rows of smallest norm, with the finite rows divided by √(‖W_row‖² − c) for one c (a square root of a negative
  number: the norm minus a constant). Otherwise the message says where the NaN are and names no cause.
* `zeroed_rows_reading`: generate_batch's h has whole rows 0 where W x is not: says where (examples from index k
  on, never written; before index k; scattered; different per instance) instead of guessing a mask.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5))


def _vector_candidates(sae: Any, shape: torch.Size) -> list[tuple[str, Tensor]]:
    """Tensors [inst d_in] that could have been added to h: the SAE's and the toy model's fields (sliced to d_in
    when longer), b_final mapped through W, each also negated."""
    model = sae.model
    d_in = shape[-1]
    found: list[tuple[str, Tensor]] = []
    for owner, obj in (("self", sae), ("self.model", model)):
        for name, t in [*obj.named_parameters(recurse=False), *obj.named_buffers(recurse=False)]:
            t = t.detach()
            if t.dim() == 2 and t.shape[0] == shape[0] and t.shape[1] >= d_in:
                sl = "" if t.shape[1] == d_in else f"[:, :{d_in}]"
                found.append((f"{owner}.{name}{sl}", t[:, :d_in]))
    b_final = getattr(model, "b_final", None)
    if isinstance(b_final, Tensor) and b_final.shape == model.W.shape[::2]:
        found.append(
            (
                "self.model.W @ b_final (b_final added to the features before W)",
                torch.einsum("if,idf->id", b_final.detach(), model.W.detach()),
            )
        )
    return found + [(f"minus {n}", -v) for n, v in found]


def added_vector_reading(c: Tensor, sae: Any) -> str:
    """`c` [inst d_in]: the vector h - W x (the same for every example). The fields that equal it, or its values."""
    hits = [name for name, v in _vector_candidates(sae, c.shape) if _same(c, v)]
    if hits:
        return "the vector added is " + " = ".join(hits) + ": h = W x has no bias term"
    if torch.allclose(c, c.flatten()[:1].expand_as(c), atol=1e-5):
        return f"the vector added is the constant {float(c.flatten()[0]):.4g} in every entry: h = W x has no bias term"
    shown = [round(float(x), 4) for x in c[0, :4]]
    return (
        f"the vector added (instance 0: {shown}) is none of the SAE's or the toy model's fields (b_dec, b_enc, "
        "b_final, W @ b_final, or their negatives): h = W x has no bias term"
    )


def nan_rows_reading(out: Tensor, W: Tensor, eps: float) -> str | None:
    """`out` [inst d_sae d_in] has NaN in rows of W that are not zero. The cause read back, or None."""
    nan = torch.isnan(out)
    if bool(nan.any()) and torch.equal(nan, (W < 0) & ~torch.isnan(W)):
        return (
            "NaN exactly at W_dec's negative entries: an elementwise square root (or fractional power) of W's "
            "entries, which is the square root of a negative number there"
        )
    bad = nan.any(-1)
    if bool(bad.any()) and torch.equal(bad, (W < 0).any(-1)):
        return (
            "the NaN rows are exactly the rows holding a negative entry: an elementwise square root, log or "
            "fractional power of W's entries, which is NaN at a negative number"
        )
    norm2 = (W.double() ** 2).sum(-1)
    good = ~bad & (norm2 > 0)
    if not good.any() or not bad.any() or float(norm2[bad].max()) >= float(norm2[good].min()):
        return None
    o = out.double()[good]
    if not torch.allclose(o / o.norm(dim=-1, keepdim=True), W.double()[good] / norm2[good, None].sqrt(), atol=1e-4):
        return None
    d = norm2[good].sqrt() / o.norm(dim=-1) - eps  # each finite row's divisor, less eps
    c = norm2[good] - d**2
    if not torch.allclose(c, c.mean().expand_as(c), rtol=1e-3, atol=1e-4) or float(c.mean()) <= 1e-6:
        return None
    return (
        f"the NaN rows are exactly the rows with ‖W_row‖² below {float(c.mean()):.4g}, and every finite row is "
        f"divided by √(‖W_row‖² − {float(c.mean()):.4g}) (+ eps): a square root of a negative number where the "
        "norm is smaller than that constant; nothing is subtracted from the squared norm"
    )


def divided_by_root(out: Tensor, W: Tensor, sq: Tensor, eps: float) -> bool:
    """True when every finite, non-zero row of `out` is W's row divided by √sq (+ eps), sq [inst d_sae]: the NaN
    rows of a root of sq are then read back, not guessed (a log of sq is NaN at the same rows)."""
    ok = torch.isfinite(out).all(-1) & (W.norm(dim=-1) > 0) & (sq > 0)
    if not ok.any():
        return False
    d = W.double()[ok].norm(dim=-1) / out.double()[ok].norm(dim=-1) - eps
    return bool(torch.allclose(d, sq.double()[ok].sqrt(), rtol=1e-3, atol=1e-5))


def zeroed_rows_reading(zeroed: Tensor, h_zero: Tensor) -> str:
    """`zeroed` [batch inst]: the (example, instance) rows of h that are 0 where W x is not; `h_zero` [batch inst]:
    every row of h that is 0 (rows where W x is 0 too). Where they are: a range at the end or the start of the batch
    (examples never written), or scattered (which examples)."""
    whole = h_zero.all(-1)  # examples that are 0 in every instance
    rows = zeroed.any(-1).nonzero().flatten().tolist()
    if rows and not (zeroed & ~whole[:, None]).any():
        k, j = rows[0], rows[-1]
        if bool(whole[k:].all()):
            return f"the zero rows are the examples from batch index {k} on, in every instance: they were never written"
        if bool(whole[: j + 1].all()):
            return f"the zero rows are the examples before batch index {j + 1}, in every instance: never written"
        return f"the zero rows are whole examples, scattered over the batch (batch indices {rows[:6]}...)"
    per_inst = [int(x) for x in zeroed.sum(0)]
    return f"the zero rows differ between instances (zeroed examples per instance: {per_inst})"
