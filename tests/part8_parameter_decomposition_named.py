"""Part 8: mistakes named after the fresh17 measurement, by relations and generic candidate families rather than
one-off texts where possible: singular vectors paired under any permutation, every per-example reduction of the
ablated output change, matrix norms other than Frobenius and robust losses, the matrix W a added on top, every
matrix reading matrix 0's masks, products and powers confused, momentum and projections other than the clamp, and
an ablation checked on a chain whose later matrix has W_0ᵀ's shape (where a tied-weights reflex shows)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import permutations
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_mistakes as mis
from tests.checking import expect_matches, fail
from tests.mutants import call
from tests.part8_parameter_decomposition_probes import _rand, _randn
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


# ---------------------------------------------------------------- svd_terms: u_k, σ_k and v_j paired wrongly
def svd_pairings(W: Tensor) -> Mistakes:
    """Term k = σ_k u_k v_{π(k)}ᵀ (or σ_k u_{π(k)} v_kᵀ) for every permutation π but the identity: a relation
    (each term's column space is some u, its row space some v, but not the same k), named with π."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    r, out = S.shape[-1], []
    for perm in permutations(range(r)):
        if list(perm) == list(range(r)):
            continue
        pairs = ", ".join(f"u_{k} with v_{j}" for k, j in enumerate(perm) if k != j)
        hint = (
            f"each term is rank one with a singular vector of W on each side, but they are mis-paired: your term k "
            f"pairs {pairs} (a shifted index such as Vh[:, k - 1], or U's and Vh's axes ordered differently): "
            "term k = σ_k u_k v_kᵀ, the same k for u, σ and v"
        )
        idx = torch.tensor(perm, device=W.device)
        out.append(("mispaired", hint, torch.einsum("iak,ik,ikb->ikab", U, S, Vh[:, idx])))
        side = ", ".join(f"v_{k} with u_{j}" for k, j in enumerate(perm) if k != j)
        hint = hint.replace(f"pairs {pairs}", f"pairs {side}")
        out.append(("mispaired", hint, torch.einsum("iak,ik,ikb->ikab", U[:, :, idx], S, Vh)))
    return out


# ---------------------------------------------------------------- ablation_losses: other per-example reductions
def ablation_reductions(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """Every reduction of the change Δy over output dims other than mean(Δy²): the per-example loss is the MSE."""
    with torch.no_grad():
        original = chain(x)
        deltas = torch.stack(
            [mis.run_with_first(chain, chain.weights[0] - terms[:, k], x) - original for k in range(terms.shape[1])]
        )  # [k batch inst d_out]
    reductions = {
        "(mean |Δy|)², the square of the mean absolute change": lambda d: d.abs().mean(-1).pow(2),
        "max over output dims of Δy²": lambda d: d.pow(2).amax(-1),
        "max over output dims of |Δy|": lambda d: d.abs().amax(-1),
    }
    return [
        (
            "reduction",
            f"your per-example loss is {name} instead of the mean over output dims of Δy² (Δy = ablated - chain(x)): "
            "square every output dim's change, then average them (F.mse_loss(..., reduction='none').mean(-1))",
            reduce(deltas).permute(2, 0, 1),
        )
        for name, reduce in reductions.items()
    ]


def tied_chain(device: Any = "cpu") -> tuple[WeightChain, Tensor, Tensor]:
    """3 instances, 4 -> 2 -> 4 -> 7: matrix 1 has W_0ᵀ's shape (an autoencoder-like chain), K = 5, batch 6."""
    dims = [4, 2, 4, 7]
    weights = [_randn(3, dims[n + 1], dims[n], seed=40 + n, scale=0.8, device=device) for n in range(3)]
    biases = [_randn(3, dims[n + 1], seed=50 + n, scale=0.3, device=device) + 0.1 for n in range(3)]
    chain = WeightChain(weights, biases, ["relu", "gelu", "relu"], ["W0", "W1", "W2"])
    return chain, _randn(3, 5, 2, 4, seed=43, scale=0.5, device=device), _rand(6, 3, 4, seed=44, device=device)


def ablation_tied(ablation_losses: Callable, device: Any) -> None:
    """On a chain whose matrix 1 has W_0ᵀ's shape: only matrix 0 loses the term, matrix 1 stays as it is."""
    chain, terms, x = tied_chain(device)
    with torch.no_grad():
        out = torch.as_tensor(ablation_losses(chain, terms, x)).detach()
        original, K = chain(x), terms.shape[1]

        def run(k: int) -> Tensor:
            W0 = chain.weights[0] - terms[:, k]
            fn = lambda n, a: mis.mm(a, W0 if n == 0 else W0.mT if n == 1 else chain.weights[n])
            return (chain(x, fn) - original).pow(2).mean(-1)

        tied = torch.stack([run(k) for k in range(K)]).permute(2, 0, 1)
    reference = call(sol.ablation_losses, chain, terms, x, pick=Tensor.detach)
    hint = (
        "only the first matrix loses the term: every later matrix keeps its own weights, even one shaped like "
        "W_0ᵀ (no tied weights here: don't subtract T_kᵀ from a matrix because its shape fits)"
    )
    expected = sol.ablation_losses(chain, terms, x).detach()
    what = "ablation_losses on a 4 -> 2 -> 4 -> 7 chain (matrix 1 has W_0ᵀ's shape)"
    if out.shape != expected.shape:
        fail(f"{what} has shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "[inst k batch]", code="shape")
    general = "each loss is the mean over output dims of (ablated - chain(x))², only W_0 replaced by W_0 - T_k"
    mistakes = [("tied_weights", hint, tied)]
    expect_matches(out, expected, what, mistakes, dims="inst k batch", hint=general, reference=reference)


# ---------------------------------------------------------------- faithfulness_loss: other norms and losses
def faithfulness_norms(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    with torch.no_grad():
        n = sum(W[0].numel() for W in weights)
        deltas = [W - u @ v for W, u, v in zip(weights, U, V, strict=True)]
        norm = lambda ord: sum(torch.linalg.matrix_norm(d, ord=ord).pow(2) for d in deltas).sum() / n
        robust = lambda f: sum(f(u @ v, W) for W, u, v in zip(weights, U, V, strict=True)) / n
    fro = "the squared Frobenius norm, Σ of every entry of W_l - U_l V_l squared"
    return [
        ("nuclear_norm", f"your value uses the nuclear norm (Σ singular values)², not {fro}", norm("nuc")),
        ("spectral_norm", f"your value uses the spectral norm (largest singular value)², not {fro}", norm(2)),
        (
            "huber",
            "your value is a Huber / smooth L1 loss (F.smooth_l1_loss or F.huber_loss: quadratic only for small "
            f"errors, linear above 1), not {fro}: square every entry ((W - U V) ** 2 or F.mse_loss)",
            robust(lambda a, b: F.smooth_l1_loss(a, b, reduction="sum")),
        ),
    ]


# ---------------------------------------------------------------- masked_product: W a on top
def product_extra(p: dict[str, Tensor]) -> Mistakes:
    right, Wa = mis.product_reference(p), mis.mm(p["a"], p["W"])
    hint = (
        "your output is the masked product plus W a: the original matrix is already inside it through the delta "
        "term, delta_mask · (W - U V) a; don't add W a (a residual) on top"
    )
    return [("plus_W", hint, (right + Wa).detach())]


# ---------------------------------------------------------------- stochastic_reconstruction_losses: masks[0]
def recon_first_masks(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    L = len(p["masks"])
    if any(m.shape != p["masks"][0].shape for m in p["masks"]):
        return []
    q = {**p, "masks": [p["masks"][0]] * L, "delta_masks": [p["delta_masks"][0]] * L}
    hint = (
        "every masked matrix used matrix 0's masks and delta mask (masks[0], delta_masks[0]): matrix l takes its "
        "own masks[l] and delta_masks[l] (index with the layer number layer_fn receives)"
    )
    with torch.no_grad():
        return [("masks_first", hint, mis.recon_reference(chain, q, x))]


# ---------------------------------------------------------------- importance_minimality_loss: * for **
def minimality_products(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        total = lambda f: sum(f(g).sum(-1) for g in ci).mean(0).sum()
        return [
            (
                "times_p",
                "raise to the power p, (g + eps) ** p: your value is (g + eps) * p (* where ** belongs)",
                total(lambda g: (g + eps) * p),
            ),
            ("divided_by_p", "raise to the power p, (g + eps) ** p, not (g + eps) / p", total(lambda g: (g + eps) / p)),
        ]


# ---------------------------------------------------------------- adversarial_sources: momentum, projections
def _ascent(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float, beta: float, project: Callable):
    s, mom = [t.detach().clone() for t in init], None
    for _ in range(n_steps):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        mom = grads if mom is None else [beta * m + g for m, g in zip(mom, grads, strict=True)]
        s = [project((t + step * m.sign()).detach()) for t, m in zip(leaves, mom, strict=True)]
    return torch.cat([t.flatten() for t in s])


def adversarial_extra(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    clamp = lambda t: t.clamp(0, 1)
    out = [
        (
            "momentum",
            f"each step follows the sign of the current gradient only: your steps follow a momentum (β = {beta}) "
            "running average of the gradients (m = β m + g; sign(m)), which keeps going after the gradient turns",
            _ascent(loss_fn, init, n_steps, step, beta, clamp),
        )
        for beta in (0.5, 0.9)  # β = 1: grad_accumulates
    ]
    wrap = (
        "values that left [0, 1] were wrapped around (s % 1, torch.remainder, frac: 1.05 becomes 0.05) instead of "
        "clamped to the nearest end (1.05 becomes 1): project with clamp(s, 0, 1)"
    )
    reflect = "values that left [0, 1] were reflected back (1.05 becomes 0.95) instead of clamped: clamp(s, 0, 1)"
    out.append(("wrapped", wrap, _ascent(loss_fn, init, n_steps, step, 0.0, lambda t: torch.remainder(t, 1.0))))
    out.append(("reflected", reflect, _ascent(loss_fn, init, n_steps, step, 0.0, lambda t: 1 - (1 - t.abs()).abs())))
    return out


def expect_source_list(out: Any, init: list[Tensor]) -> None:
    if not isinstance(out, list | tuple) or len(out) != len(init):
        fail(
            f"expected a list of {len(init)} tensors, got {type(out).__name__}",
            "return one tensor per source",
            code="not_list",
        )


def expect_detached(out: list[Tensor]) -> None:
    if any(o.requires_grad for o in out):
        fail(
            "the returned sources still require gradients",
            "return them detached: [s.detach() for s in sources]",
            code="not_detached",
        )


# ---------------------------------------------------------------- the leaky hard sigmoids' backward: g² named
def slope_code(seen: str, hint: str, code: str) -> tuple[str, str]:
    """(hint, code) from the region-by-region description: grad_output used twice gets its own code."""
    if not seen:
        return hint, code
    return f"{seen}. The {hint}", "grad_output_twice" if "× grad_output itself" in seen else "slope_regions"
