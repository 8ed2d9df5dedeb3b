"""Part 8: something computed in place of the right quantity, named.

* svd_terms: the projectors u_k u_kᵀ (or v_k v_kᵀ, or σ_k times either) returned instead of the terms σ_k u_k v_kᵀ;
* ablation_losses: each ablated output compared with another baseline than chain(x) (the previous ablation's
  output, the batch-mean original output), or measured as 1 - cosine similarity;
* a loss reading: the same differences Δ read under another loss than the mean square (Huber / smooth_l1 with
  β = 1, Σ|Δ|, their variance; ½Δ² is `scale`): `difference_readings`, usable by any mean-squared-error checker;
* adversarial_sources: the step size read back from the output (steps of f × step_size), confirmed by a re-run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_named as fresh
from tests import part8_parameter_decomposition_probes as probes
from tests import part8_parameter_decomposition_sigma_scales as sigma_scales
from tests import part8_parameter_decomposition_sign_slips as signs
from tests import part8_parameter_decomposition_squash as squash
from tests import part8_parameter_decomposition_step_pairs as step_pairs
from tests import part8_parameter_decomposition_step_scales as step_scales
from tests import part8_parameter_decomposition_structure_slips as structure
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def svd_projectors(W: Tensor) -> Mistakes:
    """u_k u_kᵀ [inst r d_out d_out] and v_k v_kᵀ [inst r d_in d_in] (alone or times σ_k): the shape of the terms
    only on a square W, which is where they can be compared; and the terms with |U| or |Vh| (any shape)."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    pu = torch.einsum("iak,ibk->ikab", U, U)
    pv = torch.einsum("ika,ikb->ikab", Vh, Vh)
    term = "each term is σ_k u_k v_kᵀ = S[:, k] · (U[:, :, k] outer Vh[:, k]) (or u_k u_kᵀ W)"
    sigma = S[:, :, None, None]
    return [
        *structure.svd_slips(W),  # the given column_terms, a reshape for a transpose
        *signs.svd_sign_losses(W),  # |U| or |Vh|: the signs of u_k or v_k lost
        *sigma_scales.sigma_scales(W),  # a scale slip with the order reversed
        ("projectors", f"{term}; this is the projector u_k u_kᵀ onto the left singular vector: W is forgotten", pu),
        ("projectors", f"{term}; this is the projector v_k v_kᵀ onto the right singular vector: W is forgotten", pv),
        ("projectors", f"{term}; this is σ_k u_k u_kᵀ: v_kᵀ replaced by u_kᵀ", sigma * pu),
        ("projectors", f"{term}; this is σ_k v_k v_kᵀ: u_k replaced by v_k", sigma * pv),
    ]


def difference_readings(d: Tensor, dim: int = -1, what: str = "differences") -> Mistakes:
    """The differences `d` read under other losses than mean(d², dim) (mean |d|, √mean d² and ‖d‖ are
    `not_squared`, `sqrt` and `distance` in the catalogue).
    With every |d| < 1, Huber (β = 1) is ½d² exactly, so the hint names both causes."""
    right = f"the mean squared {what}: mean(Δ²) over the output dims"
    huber = F.smooth_l1_loss(d, torch.zeros_like(d), reduction="none").mean(dim)
    small = bool(d.abs().lt(1).all())
    both = " (every |Δ| < 1 here, where Huber is ½Δ²: a factor ½ gives the same values)" if small else ""
    out = [("huber", f"{right}, not smooth_l1 / Huber loss (β = 1){both}", huber)]
    out.append(("sum_abs", f"{right}, not the sum of |Δ| (an L1 norm)", d.abs().sum(dim)))
    centred = "the mean of Δ subtracted first: mean(Δ²) - mean(Δ)²"
    out.append(("variance", f"{right}, not their variance (Δ.var(): {centred}, over n - 1)", d.var(dim)))
    out.append(("variance", f"{right}, not their variance (unbiased=False: {centred})", d.var(dim, unbiased=False)))
    return out


def ablation_substitutes(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """Other baselines than chain(x), and other losses than the mean square, for ablation_losses [inst k batch]."""
    y = chain(x)
    ablated = [mis.run_with_first(chain, chain.weights[0] - terms[:, k], x) for k in range(terms.shape[1])]
    stack = lambda rows: torch.stack(rows).permute(2, 0, 1)  # [k batch inst] -> [inst k batch]
    previous = [y, *ablated[:-1]]
    mse = lambda a, b: (a - b).pow(2).mean(-1)
    base = "compare every ablated output with the original output chain(x) of the same example"
    return [
        (
            "previous_baseline",
            f"{base}, not with the previous ablation's output (the baseline moved along with k)",
            stack([mse(a, p) for a, p in zip(ablated, previous, strict=True)]),
        ),
        (
            "batch_mean_baseline",
            f"{base}, not with the original output averaged over the batch",
            stack([mse(a, y.mean(0, keepdim=True)) for a in ablated]),
        ),
        (
            "cosine_distance",
            "each loss is the mean squared change of the output, mean((ablated - chain(x))²) over output dims, not "
            "1 - the cosine similarity of the ablated and original outputs (a direction change: it ignores size)",
            stack([1 - F.cosine_similarity(a, y, dim=-1) for a in ablated]),
        ),
    ] + [(c, h, v.permute(2, 0, 1)) for c, h, v in difference_readings(torch.stack(ablated) - y, what="change")]


def step_factor(out: list[Tensor], loss_fn: Callable, init: list[Tensor], n_steps: int, step_size: float) -> Mistakes:
    """The spacing of the sources' moves read back from the output (interior entries only: the clamp cuts the
    others), as f × step_size for m = 1..n_steps steps of the smallest move; each f ≠ 1 is re-run and kept only
    when it reproduces the output."""
    flat = torch.cat([torch.as_tensor(o).detach().flatten() for o in out])
    start = torch.cat([t.detach().flatten() for t in init])
    if flat.shape != start.shape:
        return []
    move = (flat - start)[(flat > 1e-6) & (flat < 1 - 1e-6)].abs()
    move = move[move > 1e-6]
    if move.numel() == 0:
        return []
    seen: list[float] = []
    moves = move.mul(1e4).round().unique().div(1e4).tolist()  # a return off a bound moves off the lattice too
    for spacing in [g / m for g in moves for m in range(1, n_steps + 1)]:
        f = round(spacing / step_size, 4)
        if abs(f - 1) < 1e-3 or f <= 0 or any(abs(f - s) < 1e-3 for s in seen) or len(seen) >= 24:
            continue
        seen.append(f)
        cand = torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, n_steps, f * step_size)])
        if torch.allclose(flat, cand, rtol=1e-4, atol=1e-5):
            fits = counts_fitting(f, {"n_steps": n_steps, "the number of sources (len(init))": len(init)})
            named = "".join(f" = {c}" for c in fits)
            why = f" (a count that fits: {' or '.join(fits)})" if len(fits) > 1 else ""
            hint = (
                f"the sources moved in steps of {f:g} × step_size{named} = {f * step_size:g}{why}, read from their "
                f"spacing relative to init (step_size = {step_size:g}, n_steps = {n_steps}, {len(init)} sources): "
                "each step is r = clamp(r + step_size * sign(∂loss/∂r), 0, 1), by step_size itself"
            )
            code = "small_steps" if abs(f * n_steps - 1) < 1e-3 else "step_factor"  # step_size / n_steps
            return [(code, hint, cand)]
    return []


def counts_fitting(f: float, counts: dict[str, int]) -> list[str]:
    """Every way f is a count or its reciprocal (step_size / c or c × step_size), for each named count c > 1."""
    out = []
    for name, c in counts.items():
        if c > 1 and abs(f * c - 1) < 1e-3:
            out.append(f"step_size / {name}")
        elif c > 1 and abs(f - c) < 1e-3:
            out.append(f"{name} × step_size")
    return out


def adversarial_more(
    out: list[Tensor], loss_fn: Callable, init: list[Tensor], n: int, step: float, known: Mistakes
) -> Mistakes:
    """The adversarial mistakes of `probes` and `fresh`, then (when none of them nor `known` fits) the step size read
    back from the output."""
    named = probes.adversarial_mistakes(loss_fn, init, n, step) + fresh.adversarial_extra(loss_fn, init, n, step)
    named += fresh.adversarial_init_bound(loss_fn, init, n, step)
    named += squash.squashing_mistakes(loss_fn, init, n, step)  # sigmoid / tanh in place of the clamp
    named += step_pairs.step_pairs(loss_fn, init, n, step)  # a count slip and a step slip at once
    named += step_scales.adversarial_scaled_steps(loss_fn, init, n, step)  # g / max|g| and other normalisers
    flat = torch.cat([torch.as_tensor(o).detach().flatten() for o in out])
    named += structure.adversarial_slips(flat, loss_fn, init, n, step)  # reduced gradients, clamp bounds read back
    if any(m.shape == flat.shape and torch.allclose(flat, m, rtol=1e-4, atol=1e-5) for *_, m in known + named):
        return named  # a named cause (step_size / n_steps, ...) fits: no factor read back
    return named + step_factor(out, loss_fn, init, n, step)
