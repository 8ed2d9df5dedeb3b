"""Part 8: mistakes in how inputs are paired, reduced or transformed, named generically.

* causal importance: an example's importances that depend on the other examples in the batch (a batch-independence
  probe: the module re-called on a sub-batch), the input a centred over the batch, and b_out reduced over an axis
  (summed or averaged, kept as a broadcastable size-1 axis) before it is added;
* masked_product: the masks raised to a power (√mask, mask², on the subcomponent masks, the delta mask or both);
* stochastic_reconstruction_losses: the masks (or delta masks) paired with the wrong matrices, every permutation of
  the lists tried (the checker has few matrices);
* importance_minimality_loss: a soft maximum (logsumexp) or a maximum over the subcomponents where a sum belongs;
* adversarial_sources: the returned sources rounded or thresholded to 0 / 1.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_slips as slips
from tests.checking import fail

Mistakes = list[tuple[str, str, Tensor]]


# ---------------------------------------------------------------- causal importance
def ci_reductions(p: dict[str, Tensor]) -> Mistakes:
    """a centred over the batch; b_out summed / averaged over C or over the instances (a size-1 axis kept)."""
    out: Mistakes = []
    with torch.no_grad():
        centred = {**p, "a": p["a"] - p["a"].mean(0, keepdim=True)}
        hint = (
            "your importances match the formula on a - a.mean(0), the inputs centred over the batch (a BatchNorm "
            "reflex?): each example's h = V a uses its own a as given, and its importances depend on it alone"
        )
        out.append(("batch_centred", hint, slips._ci(centred)))
        for reduce, word in ((torch.sum, "summed"), (torch.mean, "averaged")):
            for axis, name in ((-1, "the subcomponents (C)"), (0, "the instances")):
                b_out = reduce(p["b_out"], axis, keepdim=True).expand_as(p["b_out"])
                hint = (
                    f"your b_out is {word} over {name} before it is added (a reduction with keepdim=True, which "
                    "broadcasts back): each subcomponent of each instance adds its own b_out[i, c], z = Σ_j w_out "
                    "GELU(w_in h + b_in) + b_out, with b_out of shape (n_inst, C) as it is"
                )
                out.append(("bias_reduced", hint, slips._ci({**p, "b_out": b_out})))
    return out


def ci_batch_independence(module: torch.nn.Module, p: dict[str, Tensor], lower: Tensor) -> Mistakes:
    """Re-calls the learner's module on a sub-batch (every other example): an example's importances must be the
    same whichever other examples share its batch. Reports what was observed, with the usual causes."""
    try:
        with torch.no_grad():
            rows = torch.arange(1, p["a"].shape[0], 2, device=p["a"].device)
            sub = module(p["a"][rows].clone(), p["V"].clone())[0]
            sub = torch.as_tensor(sub).detach()
    except Exception:  # a probe only
        return []
    if sub.shape != lower[rows].shape or torch.allclose(sub, lower[rows], rtol=1e-4, atol=1e-5):
        return []
    hint = (
        f"an example's importances change with the other examples in its batch: called on examples {rows.tolist()} "
        "alone they differ from the same examples' rows in the full batch; something reads across the batch axis "
        "(the inputs or h centred or normalised over the batch, a mean / sum over axis 0, BatchNorm). Each "
        "example's importances come from its own a alone"
    )
    return [("batch_dependent", hint, lower)]


# ---------------------------------------------------------------- masked_product
def product_mask_powers(p: dict[str, Tensor]) -> Mistakes:
    out: Mistakes = []
    with torch.no_grad():
        for k, shown in ((0.5, "√mask (mask ** 0.5)"), (2.0, "mask² (mask ** 2)"), (3.0, "mask³")):
            for which, keys in (
                ("the subcomponent masks", ("mask",)),
                ("the delta mask", ("delta_mask",)),
                ("both masks", ("mask", "delta_mask")),
            ):
                if k == 2.0 and len(keys) == 1:
                    continue  # the catalogue's mask_squared and delta_mask_twice
                value = mis.product_reference({**p, **{key: p[key] ** k for key in keys}})
                hint = (
                    f"your output uses {shown} where {which} belong(s): each mask multiplies its term as it is, "
                    "U (mask ⊙ V a) + delta_mask · (W - U V) a (no power or square root of a mask)"
                )
                out.append(("mask_power", hint, value))
    return out


# ---------------------------------------------------------------- reconstruction: masks paired with the wrong matrices
def recon_permuted_masks(chain: Any, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """Every permutation of the masks lists (subcomponent masks, delta masks, or both the same way) whose shapes
    fit, when there are at most 4 matrices."""
    L = len(chain.weights)
    if L > 4:
        return []
    out: Mistakes = []
    with torch.no_grad():
        for perm in itertools.permutations(range(L)):
            if list(perm) == list(range(L)):
                continue
            reversed_ = list(perm) == list(range(L))[::-1]
            shown = "reversed, masks[L - 1 - l]" if reversed_ else f"matrix l reads entry {list(perm)}[l]"
            for keys, what in (
                (("masks",), "masks"),
                (("delta_masks",), "delta masks"),
                (("masks", "delta_masks"), "masks and delta masks"),
            ):
                if len(keys) == 2 and list(perm) == [(n - 1) % L for n in range(L)]:
                    continue  # the catalogue's masks_shifted (masks[l - 1])
                q = {**p, **{k: [p[k][j] for j in perm] for k in keys}}
                if any(q[k][n].shape != p[k][n].shape for k in keys for n in range(L)):
                    continue
                value = mis.recon_reference(chain, q, x)
                hint = (
                    f"your {what} are paired with the wrong matrices ({shown}): matrix l is masked by masks[l] "
                    "and delta_masks[l], the entries of the same index"
                )
                out.append(("masks_permuted", hint, value))
    return out


# ---------------------------------------------------------------- minimality: a soft maximum where a sum belongs
def minimality_soft_max(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        lse = sum(torch.logsumexp((g + eps) ** p, -1) for g in ci).mean(0).sum()
        top = sum(((g + eps) ** p).amax(-1) for g in ci).mean(0).sum()
    hint = (
        "your penalty reduces (g + eps)^p over the subcomponents with {}: the penalty sums them, "
        "Σ_c (g + eps)^p (.sum(-1)), so that every active subcomponent costs"
    )
    return [
        ("softmax_reduction", hint.format("logsumexp (a soft maximum)"), lse),
        ("max_reduction", hint.format("a maximum (.max(-1) / amax)"), top),
    ]


# ---------------------------------------------------------------- adversarial: sources rounded to 0 / 1
def adversarial_rounded(right: Tensor) -> Mistakes:
    hint = (
        "your sources are all 0 or 1: they match the ascent's result rounded (torch.round or > 0.5); return the "
        "sources after the last step as they are, values anywhere in [0, 1]"
    )
    return [("sources_rounded", hint, right.round()), ("sources_rounded", hint, (right >= 0.5).to(right.dtype))]


def start_rounded(out0: Tensor, start: Tensor) -> None:
    """The n_steps = 0 output (init itself, expected) seen rounded, binarised or clamped: named as such. A constant
    output (all 0 or all 1) is left to the start-elsewhere diagnosis (a start from zeros or ones)."""
    if bool((out0 == out0[0]).all()):
        return
    if torch.allclose(out0, start.round(), atol=1e-6) or torch.allclose(out0, (start > 0.5).to(start.dtype)):
        fail(
            "with n_steps = 0 adversarial_sources returns init rounded to 0 / 1 (torch.round or a threshold at 0.5)",
            "return the sources as the ascent leaves them (with no step, init itself), values anywhere in [0, 1]: "
            "no rounding or binarising of the result",
            code="sources_rounded",
        )
    if bool(((out0 == 0) | (out0 == 1)).all()):
        fail(
            "with n_steps = 0 adversarial_sources returns only 0s and 1s, not init",
            "the sources are binarised somewhere (rounded, thresholded, or a sign in place of a value) or the ascent "
            "starts from a constant: return init's copies moved by the steps, values anywhere in [0, 1]",
            code="sources_binarised",
        )
    same = (out0 - start).abs() < 1e-6
    if bool(same.float().mean() > 0.5) and not bool(same.all()):
        lo, hi = float(out0[~same].min()), float(out0[~same].max())
        if torch.allclose(out0, start.clamp(lo, hi), atol=1e-6) and hi - lo < 1.0:
            fail(
                f"with n_steps = 0 adversarial_sources returns init clamped to [{lo:.3g}, {hi:.3g}]",
                "clamp the sources to [0, 1] (and only after a step): with no step they are init itself",
                code="sources_clamped",
            )


def ci_random(module: torch.nn.Module, p: dict[str, Tensor], lower: Tensor) -> Mistakes:
    """Two calls of the learner's module on the same (a, V) that differ: a random forward pass (dropout left on,
    a random draw), named before any probe that assumes a deterministic forward reads the difference as structure."""
    try:
        with torch.no_grad():
            one, two = (torch.as_tensor(module(p["a"].clone(), p["V"].clone())[0]).detach() for _ in range(2))
    except Exception:  # a probe only
        return []
    if one.shape != two.shape or torch.allclose(one.double(), two.double(), rtol=1e-5, atol=1e-7):
        return []
    hint = (
        f"two calls of forward on the same (a, V) gave different importances ({int((one != two).sum())} of "
        f"{one.numel()} entries differ): your forward pass is random: dropout left on (F.dropout's default is "
        "training=True, and nn.Dropout is active in training mode) or a random draw (torch.rand / randn / "
        "bernoulli) in forward. The importances are a deterministic function of a and V: drop the random op"
    )
    return [("random_forward", hint, lower)]
