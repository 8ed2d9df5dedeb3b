"""Part 8: slips in a result's structure, named from what the learner's output shows.

* svd_terms: the notebook's given `column_terms(W)` (columns, not the SVD), or W reshaped (not transposed) to
  [d_in d_out] for the SVD and the terms reshaped back;
* ablation_losses: the baseline taken from the last term's ablated run instead of chain(x); a result `.squeeze()`d
  (a size-1 instance or term axis dropped: probed with one instance and with one term);
* CausalImportance: b_in multiplied instead of added (GELU(w_in h b_in));
* sample_masks: one r drawn (for matrix 0) and reused for every matrix, read back from masks of equal C;
* masked_product: the delta term added like a bias, (W - U V).sum(-1), with a forgotten;
* importance_minimality_loss: the max over the matrices where their sum belongs;
* adversarial_sources: a gradient (or its sign) reduced over one axis of a source before the step, and clamp bounds
  other than (0, 1) read back from the output and confirmed by a re-run.
"""

from __future__ import annotations

from collections.abc import Callable

import einops
import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import CheckOutcome, fail
from utils.part8_parameter_decomposition import WeightChain, column_terms

Mistakes = list[tuple[str, str, Tensor]]


def svd_slips(W: Tensor) -> Mistakes:
    found: Mistakes = []
    n_inst, d_out, d_in = W.shape
    with torch.no_grad():
        cols = column_terms(W)
        if cols.shape[1] == min(d_out, d_in):  # the terms' shape (d_in <= d_out) only
            found.append(
                (
                    "column_terms",
                    "your terms are the given column_terms(W) (column j of W alone, one per input dim): they add up "
                    "to W but are not the SVD terms: use torch.linalg.svd(W, full_matrices=False), return σ_k u_k v_kᵀ",
                    cols,
                )
            )
        if d_in == d_out:  # a reshape to the same shape changes nothing
            return found
        U, S, Vh = torch.linalg.svd(W.reshape(n_inst, d_in, d_out), full_matrices=False)
        t = einops.einsum(U, S, Vh, "i a r, i r, i r b -> i r a b")
        found.append(
            (
                "reshaped_not_transposed",
                "your terms are the SVD of W.reshape(inst, d_in, d_out) reshaped back: a reshape is not a transpose "
                "(it reorders the entries); W is already [d_out d_in], take its SVD as it is (or use .mT, not reshape)",
                t.reshape(n_inst, t.shape[1], d_out, d_in),
            )
        )
    return found


def _ablated(chain: WeightChain, terms: Tensor, x: Tensor, k: int) -> Tensor:
    Wk = chain.weights[0] - terms[:, k]
    fn = lambda layer, a: einops.einsum(a, Wk if layer == 0 else chain.weights[layer], "b i d, i o d -> b i o")
    return chain(x, fn)


def ablation_slips(fn: Callable, chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """The last term's ablated run as baseline; then the squeeze probe (raises when the learner drops a size-1 axis)."""
    with torch.no_grad():
        outs = [_ablated(chain, terms, x, k) for k in range(terms.shape[1])]
        last = torch.stack([(y - outs[-1]).pow(2).mean(-1) for y in outs])  # [k b i]
    found: Mistakes = [
        (
            "baseline_last_ablation",
            "your losses compare each ablated run with the LAST term's ablated run (a loop variable reused after the "
            "loop?): the baseline is the unablated output chain(x), computed once before the loop",
            einops.rearrange(last, "k b i -> i k b"),
        )
    ]
    squeeze_probe(fn, chain, terms, x)
    return found


def squeeze_probe(fn: Callable, chain: WeightChain, terms: Tensor, x: Tensor) -> None:
    """One instance, then one term: the result keeps its size-1 axis ([inst k batch] = [1 K B], [I 1 B])."""
    one = WeightChain(
        [w[:1] for w in chain.weights],
        [None if b is None else b[:1] for b in chain.biases],
        chain.activations,
        chain.names,
    )
    cases = (
        ("one instance (n_inst = 1)", one, terms[:1], x[:, :1], (1, terms.shape[1], x.shape[0])),
        ("one term (K = 1)", chain, terms[:, :1], x, (terms.shape[0], 1, x.shape[0])),
    )
    for what, ch, tm, xs, shape in cases:
        try:
            with torch.no_grad():
                out = fn(ch, tm.clone(), xs.clone())
        except Exception:  # the main call already showed the learner's errors
            continue
        if isinstance(out, Tensor) and tuple(out.shape) != shape and out.numel() == shape[0] * shape[1] * shape[2]:
            fail(
                f"with {what} ablation_losses returned shape {tuple(out.shape)}, expected {shape} [inst k batch]",
                "a size-1 axis was dropped (a .squeeze() with no dim removes every size-1 axis): keep the shape "
                "[inst k batch] whatever the sizes (no .squeeze(), or .squeeze(dim) on the axis you mean)",
                code="squeezed",
            )


def ci_slips(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])
        z = (F.gelu(h[..., None] * p["w_in"] * p["b_in"]) * p["w_out"]).sum(-1) + p["b_out"]
    hint = "your z multiplies by b_in (GELU(w_in h b_in)): b_in is a bias, added: GELU(w_in h + b_in)"
    return [("b_in_multiplied", hint, z.clamp(0, 1))]


def product_slips(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        a, W, U, V, mask, dm = (p[k] for k in ("a", "W", "U", "V", "mask", "delta_mask"))
        pieces = torch.einsum("ioc,bic->bio", U, torch.einsum("icd,bid->bic", V, a) * mask)
        bias = pieces + dm[..., None] * (W - U @ V).sum(-1)[None]
    hint = (
        "your delta term is (W - U V).sum(-1) added like a bias, without a: it is a matrix applied to the input, "
        "delta_mask · (W - U V) a"
    )
    return [("delta_as_bias", hint, bias)]


def minimality_slips(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        per = torch.stack([(g + eps).pow(p).sum(-1) for g in ci])  # [L batch inst]
    return [
        (
            "max_over_matrices",
            "your value takes the max over the matrices of each one's penalty: add the matrices' penalties up",
            per.max(0).values.mean(0).sum(),
        )
    ]


def _ascent(loss_fn: Callable, init: list[Tensor], n: int, step: float, direction: Callable, lo=0.0, hi=1.0):
    s = [t.detach().clone() for t in init]
    for _ in range(n):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        with torch.no_grad():
            s = [(t + step * direction(g)).clamp(lo, hi) for t, g in zip(s, grads, strict=True)]
    return torch.cat([t.detach().flatten() for t in s])


def adversarial_slips(flat: Tensor, loss_fn: Callable, init: list[Tensor], n: int, step: float) -> Mistakes:
    """A reduction over axis d (of every source that has it) before or after the sign, and the clamp's bounds read
    back from the output (its smallest and largest values) when they are not 0 and 1."""
    found: Mistakes = []
    reductions = {
        "sign averaged": lambda g, d: g.sign().mean(d, keepdim=True).expand_as(g),
        "gradient averaged": lambda g, d: g.mean(d, keepdim=True).sign().expand_as(g),
    }
    for d in range(max(t.dim() for t in init)):
        for name, red in reductions.items():
            if d == 0 and name.startswith("gradient"):  # the catalogue's batch_summed_gradient
                continue
            direction = lambda g, d=d, red=red: red(g, d) if g.dim() > d else g.sign()
            axis = "the first axis (the batch / instance axis)" if d == 0 else f"axis {d}"
            hint = (
                f"your sources match a {name[:-9]} that was {name.split()[-1]} over {axis} before the step (one "
                "shared move per column): every entry steps by the sign of its own gradient, step_size · "
                "sign(∂loss/∂r), no reduction"
            )
            found.append((f"grad_reduced_dim{d}", hint, _ascent(loss_fn, init, n, step, direction)))
    lo, hi = float(flat.min()), float(flat.max())
    right = _ascent(loss_fn, init, n, step, torch.sign)
    if 0.0 <= lo < hi <= 1.0 and (lo > 1e-6 or hi < 1 - 1e-6) and not torch.allclose(flat, right, 1e-4, 1e-5):
        hint = (
            f"your sources lie in [{lo:.4g}, {hi:.4g}] and match a clamp to those bounds: the projection is "
            "clamp(r, 0, 1)"
            + (" (the lower bound is step_size's value: typed in place of 0?)" if abs(lo - step) < 1e-6 else "")
        )
        found.append(("clamp_bounds", hint, _ascent(loss_fn, init, n, step, torch.sign, lo, hi)))
    return found


def masks_call(call: Callable, sample_masks: Callable, ci: list[Tensor]):
    """The learner's call; where it raises, a probe with every matrix of the same C reads r back and names one draw
    reused for every matrix (which raised only because the C differ)."""
    try:
        return call(sample_masks, {"causal_importances": ci}, "sample_masks")
    except CheckOutcome as e:
        if e.code != "exception":
            raise
        _shared_draw_probe(sample_masks, ci)
        raise
    except Exception:  # the learner's own error: named below when one draw is reused, else shown as it is
        _shared_draw_probe(sample_masks, ci)
        raise


def _shared_draw_probe(sample_masks: Callable, ci: list[Tensor]) -> None:
    sizes = " and ".join(str(t.shape[-1]) for t in ci)
    g = [torch.rand(500, 3, 4, generator=torch.Generator().manual_seed(s)) * 0.8 for s in (5, 6, 7)]
    g = [t.to(ci[0].device).requires_grad_() for t in g]
    try:
        masks = sample_masks(g)[0]
        r = [((m.detach() - t.detach()) / (1 - t.detach())) for m, t in zip(masks, g, strict=True)]
        shared = all(torch.allclose(r[0], q, atol=1e-5) for q in r[1:])
    except Exception:
        shared = False
    if shared:
        fail(
            f"sample_masks raised on importances whose C differ ({sizes}), and with every matrix given the same "
            "C it uses one and the same r for every matrix",
            "with every matrix given the same C your masks use one and the same r for every matrix: draw r "
            "afresh for each matrix (r = torch.rand_like(g) inside the loop, shaped like that matrix's g); one r "
            "drawn for matrix 0 and reused has matrix 0's shape, which is what clashed with the other C",
            code="shared_draw",
        )
