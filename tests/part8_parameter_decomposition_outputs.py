"""Part 8 checkers: what a wrong output looks like as a whole (the right values in another order, one constant
for every entry), and inputs the main checks don't cover (rank-deficient matrices, a second matrix shaped like W_0,
weights with exact zeros)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_behaviour as behaviour
from tests import part8_parameter_decomposition_count_ratios as ratios
from tests import part8_parameter_decomposition_early_stop as early_stop
from tests import part8_parameter_decomposition_faith_divisors as divisors
from tests import part8_parameter_decomposition_float64_runs as f64_runs
from tests import part8_parameter_decomposition_layer_reads as reads
from tests import part8_parameter_decomposition_layer_sums as layer_sums
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_named as fresh
from tests import part8_parameter_decomposition_probes as probes
from tests import part8_parameter_decomposition_reduction_order as order
from tests import part8_parameter_decomposition_rooted_losses as rooted
from tests import part8_parameter_decomposition_shape_counts as shape_counts
from tests.checking import expect_matches, expect_scalar, expect_tensor, fail, returned
from tests.mutants import call
from tests.part8_parameter_decomposition_cut_losses import loss_grad_hint  # noqa: F401  (outputs.loss_grad_hint)
from utils.part8_parameter_decomposition import WeightChain


def constant_sources(flat: Tensor, right: Tensor, listed: list[Tensor]) -> None:
    """Fail with a description of what was seen when every source entry ends at one value while the right ones
    differ (before the generic readings, which would take one constant for instance 0's value used for all)."""
    if flat.numel() < 2 or float(flat.max() - flat.min()) > 1e-6 or float(right.max() - right.min()) <= 1e-6:
        return
    if any(m.shape == flat.shape and torch.allclose(flat, m, rtol=1e-4, atol=1e-5) for m in listed):
        return  # a listed mistake: its own hint
    c = float(flat[0])
    if abs(c) <= 1e-6:
        causes = (
            "the clamp's bounds swapped (torch's clamp(1, 0), min above max, sets every value to max = 0), "
            "clamp(max=0) where clamp(min=0) was meant, or the sources reset or multiplied by 0 at each step?"
        )
    elif abs(c - 1) <= 1e-6:
        causes = (
            "clamp(min=1) where clamp(max=1) was meant (clamp(1) alone sets the lower bound), the clamp's bounds "
            "given as (1, 1), or torch.ones_like where the sources belonged?"
        )
    else:
        causes = "one value written for every entry (a mean over the sources, or a scalar broadcast)?"
    fail(
        f"every entry of the adversarial sources is {c:.4g}, while the expected ones differ (from "
        f"{float(right.min()):.4g} to {float(right.max()):.4g})",
        f"{causes} Each step: r = clamp(r + step_size * sign(∂loss/∂r), 0, 1), each entry on its own",
        code="constant_sources",
    )


def faithfulness_logs(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> list[tuple[str, str, Tensor]]:
    """A log taken of the loss: Σ over instances of log(each instance's loss), or the log of the whole loss."""
    n = sum(W[0].numel() for W in weights)
    per = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)) / n  # [inst]
    seen = "your value is Σ_i log(L_i), the sum over instances of the log of each instance's loss L_i"
    whole = "your value is log(L), the log of the expected loss"
    plain = ": a log taken of the loss (a log-scale reflex)? The loss is the plain mean squared error, no log"
    return [("log_loss", seen + plain, per.log().sum()), ("log_loss", whole + plain, per.sum().log())]


def pair(out: Any, what: str, names: str) -> tuple[Any, Any]:
    """The two entries of a returned pair, or a failure (code not_pair)."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        fail(f"{what} should return a pair ({names}), got {type(out).__name__}", f"return {names}", code="not_pair")
    return out[0], out[1]


def faithfulness_more(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> list[tuple[str, str, Tensor]]:
    """The norm and slip readings of faithfulness_loss, a log taken of the loss, and the difference of norms."""
    return (
        fresh.faithfulness_norms(weights, U, V)
        + fresh.faithfulness_slips(weights, U, V)
        + faithfulness_logs(weights, U, V)
        + faithfulness_doubled_count(weights, U, V)
        + order.faithfulness_norm_difference(weights, U, V)
        + layer_sums.faithfulness_combined(weights, U, V)
        + ratios.faithfulness_product_scaled(weights, U, V)
        + reads.faithfulness_subsets(weights, U, V)
        + divisors.relative_errors(weights, U, V)
        + rooted.faithfulness_roots(weights, U, V)
    )


def faithfulness_hint(fn: Callable, loss: Tensor, right: Tensor, weights, U, V) -> tuple[str, str]:
    """Fail first when the divisor is a count of U's or V's entries (a probe with another C tells it from the ½
    factor the catalogue names), then the generic hint for whatever else is wrong."""
    divisors.uv_count(fn, loss, right, weights, U, V)
    named = shape_counts.faithfulness_count(loss, right, weights)  # sizes counted otherwise, 1/m²
    return named or fresh.faithfulness_hint(fn, loss, right, weights, U, V)


def faithfulness_doubled_count(
    weights: list[Tensor], U: list[Tensor], V: list[Tensor]
) -> list[tuple[str, str, Tensor]]:
    """Half the right loss: N counted twice (W's entries and U V's, both the same number) and the ½ MSE convention
    give the same value on every input, so both are listed, the count first. Code "scale", as the ½ reading had."""
    hint = (
        "your value is 1/2 × the expected one: N counted twice (the entries of W and of U V both counted, or each "
        "parameter counted twice: N is the number of entries of W alone), or a factor 1/2 too many (the ½ MSE "
        "convention, ½ Σ d²)?"
    )
    return [("scale", hint, mis.faithfulness_candidates(weights, U, V)[0] / 2)]


def adversarial_gradient_probes(adversarial_sources: Callable, n_steps: int, step: float, device: Any) -> None:
    """A source with an exactly-zero gradient (it must stay), then gradients too small to matter to a sign."""
    probes.zero_gradient_probe(adversarial_sources, n_steps, step, device)
    behaviour.small_gradient_probe(adversarial_sources, n_steps, step, device)
    zero_source_probe(adversarial_sources, n_steps, step, device)
    early_stop.first_saturates_probe(adversarial_sources, device)  # sources[0] saturates first, others move on


def zero_source_probe(adversarial_sources: Callable, n_steps: int, step: float, device: Any) -> None:
    """Sources at exactly 0 whose gradient pushes them up: sources[0] starts with zeros under a linear loss, and
    sources[1] (0.1, 0.9) ascends -(s - c)² with c near 0, so its first step clamps it to 0 and the next must lift
    it again. Each step moves an entry by step_size · sign(g) whatever its value, 0 included."""
    weights, c = torch.tensor([1.0, -0.5, 0.7], device=device), torch.tensor([0.02, 0.95], device=device)
    loss_fn = lambda s: (weights * s[0]).sum() - (s[1] - c).pow(2).sum()
    init = [torch.tensor([0.0, 0.3, 0.0], device=device), torch.tensor([0.1, 0.9], device=device)]
    saved = [t.clone() for t in init]
    flatten = lambda sources: torch.cat([torch.as_tensor(s).detach().flatten() for s in sources])
    right = flatten(sol.adversarial_sources(loss_fn, saved, n_steps, step))
    src = [t.clone() for t in saved]
    for _ in range(n_steps):  # the mistake: sign(g · r), 0 wherever r = 0
        src = [t.detach().requires_grad_(True) for t in src]
        grads = torch.autograd.grad(loss_fn(src), src)
        src = [(t + step * (g * t).sign()).clamp(0, 1).detach() for t, g in zip(src, grads, strict=True)]
    times_r = flatten(src)
    out = flatten(returned(adversarial_sources(loss_fn, init, n_steps, step), "adversarial_sources"))
    what = "the adversarial sources from sources at exactly 0 whose gradient pushes them up"
    hint = "sign(grad · r) is 0 where r = 0: the step is step_size · sign(grad)"
    expect_matches(
        out.to(right.dtype),
        right,
        what,
        [("sign_times_source", hint, times_r)],
        hint="each step: r = clamp(r + step_size * sign(∂loss/∂r), 0, 1), for entries at 0 too",
        reference=call(sol.adversarial_sources, loss_fn, saved, n_steps, step, pick=flatten),
    )


# --------------------------------------------------------------------------------------------
# Inputs the main checks don't cover
# --------------------------------------------------------------------------------------------
def svd_rank_deficient(svd_terms: Callable, device: Any) -> None:
    """W of rank 2 < min(d_out, d_in) = 5 (3 instances, 5 x 7): still min(d_out, d_in) terms, the last ones 0."""
    W = probes._randn(3, 5, 2, seed=71, device=device) @ probes._randn(3, 2, 7, seed=72, device=device)
    what = "svd_terms(W) for a W of shape (3, 5, 7) and rank 2 (three singular values 0)"
    out = returned(svd_terms(W.clone()), what)
    if isinstance(out, Tensor) and out.ndim == 4 and out.shape[1] < 5:
        fail(
            f"{what} has {out.shape[1]} terms, expected min(d_out, d_in) = 5",
            "keep every term, those with σ = 0 (or tiny) too: there are always min(d_out, d_in) of them, whatever "
            "the rank (no dropping of negligible singular values)",
            code="rank_truncated",
        )
    if isinstance(out, Tensor) and out.shape == (3, 5, 5, 7) and out.is_floating_point():
        bad = [k for k in range(5) if not bool(torch.isfinite(out[:, k]).all())]  # σ_k = 0 for k = 2, 3, 4
        if bad and min(bad) >= 2:
            fail(
                f"{what} has NaN or infinite values in terms {bad} only, those whose singular value is 0",
                "a division by σ_k (v_k = Wᵀ u_k / σ_k, as an eigendecomposition of W Wᵀ or Wᵀ W needs, or a term "
                "normalised by its size) is 0 / 0 where σ_k = 0: use torch.linalg.svd(W, full_matrices=False), whose "
                "singular vectors exist for σ = 0 too, and multiply by σ_k, never divide by it",
                code="not_finite",
            )
    out = expect_tensor(out, what, shape=(3, 5, 5, 7), dims="inst r d_out d_in", dtype=W.dtype, device=device)
    right = sol.svd_terms(W)
    expect_matches(out, right, what, dims="inst r d_out d_in", reference=call(sol.svd_terms, W))
    f64_runs.svd_float64(svd_terms, device)  # float64 W with an all-zero instance: float64, finite terms


def ablation_same_shape(ablation_losses: Callable, device: Any) -> None:
    """A chain 4 -> 5 -> 4 -> 5 whose last matrix has W_0's shape: only W_0 (layer 0) is ablated."""
    dims, n_inst = [4, 5, 4, 5], 3
    weights = [probes._randn(n_inst, dims[n + 1], dims[n], seed=80 + n, scale=0.8, device=device) for n in range(3)]
    biases = [probes._randn(n_inst, dims[n + 1], seed=85 + n, scale=0.3, device=device) for n in range(3)]
    chain = WeightChain(weights, biases, ["relu", "gelu", "relu"], ["W0", "W1", "W2"])
    terms = probes._randn(n_inst, 6, 5, 4, seed=89, scale=0.5, device=device)
    x = probes._rand(7, n_inst, 4, seed=90, device=device)
    what = "ablation_losses on a chain 4 -> 5 -> 4 -> 5 (W_2 has W_0's shape), 6 terms, batch 7"
    with torch.no_grad():
        out = returned(ablation_losses(chain, terms, x), what)
        out = expect_tensor(out, what, shape=(n_inst, 6, 7), dims="inst k batch", dtype=x.dtype, device=device)
        right, full = sol.ablation_losses(chain, terms, x), chain(x)
        by_shape = []
        for k in range(terms.shape[1]):
            Wa = chain.weights[0] - terms[:, k]
            pick = lambda layer, Wa=Wa: Wa if chain.weights[layer].shape == Wa.shape else chain.weights[layer]
            fn = lambda layer, a, pick=pick: torch.einsum("bni,noi->bno", a, pick(layer))
            by_shape.append((chain(x, fn) - full).pow(2).mean(-1).T)  # [inst batch]
    hint = (
        "the ablated matrix was used for W_2 too (a matrix with W_0's shape): in layer_fn, choose the ablated "
        "matrix by the layer index (l == 0), not by its shape"
    )
    mistakes = [("ablated_by_shape", hint, torch.stack(by_shape, 1))]
    reference = call(sol.ablation_losses, chain, terms, x, pick=Tensor.detach)
    expect_matches(out, right, what, mistakes, dims="inst k batch", reference=reference)


def faithfulness_zeros(faithfulness_loss: Callable, device: Any) -> None:
    """Weights with exact zeros (a third of each matrix's entries, the same in every instance): N still counts them."""
    weights, U, V = probes.faithfulness_inputs(device)
    for W in weights:
        W[:, ::3] = 0.0
    what = "faithfulness_loss on weights with exact zeros (a third of the rows of each matrix)"
    loss = expect_scalar(returned(faithfulness_loss(weights, U, V), what), what, weights[0].dtype)
    right = sol.faithfulness_loss(weights, U, V)
    sq = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    nonzero = sum(int(torch.count_nonzero(W[0])) for W in weights)
    hint = "N counts every parameter, zeros included: Σ_l W_l[0].numel(), not count_nonzero (the entries that are 0)"
    mistakes = [("nonzero_count", hint, (sq / nonzero).sum())]
    reference = call(sol.faithfulness_loss, weights, U, V)
    expect_matches(loss.detach(), right, what, mistakes, reference=reference)
