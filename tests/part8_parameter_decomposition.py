"""Checkers for part 8 (parameter decomposition).

Call them from the notebook as `tests.part8_parameter_decomposition.test_<exercise>(<object>)`.
Deterministic exercises are compared with the formula on generic inputs (several instances with different
weights, non-zero biases, matrices of different sizes, coefficients that are not 0 or 1, pre-activations on
both flat sides of the hard sigmoid); when the values are wrong, the catalogue of mutants in
`tests.part8_parameter_decomposition_mistakes` names the mistake, on values and on gradients.
`sample_masks` is random: it is tested on the distribution of its draws, with tolerances from Bernstein's
inequality, and diagnostic statistics name the distribution, the shared axis or the missing delta mask. Every
checker passes its own inputs and compares them with saved copies right after the call (in-place edits named).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_ablation_runs as abl_runs
from tests import part8_parameter_decomposition_behaviour as behaviour
from tests import part8_parameter_decomposition_delta_laws as delta_laws
from tests import part8_parameter_decomposition_diagnosis as diag
from tests import part8_parameter_decomposition_draws as draws
from tests import part8_parameter_decomposition_float64 as f64
from tests import part8_parameter_decomposition_float64_runs as f64_runs
from tests import part8_parameter_decomposition_inputs as inp
from tests import part8_parameter_decomposition_leak_depths as leak_depths
from tests import part8_parameter_decomposition_loss_factors as loss_factors
from tests import part8_parameter_decomposition_matrix_terms as mterms
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_named as fresh
from tests import part8_parameter_decomposition_normalised as normalised
from tests import part8_parameter_decomposition_outputs as outputs
from tests import part8_parameter_decomposition_probes as probes
from tests import part8_parameter_decomposition_readings as readings
from tests import part8_parameter_decomposition_reorderings as axes
from tests import part8_parameter_decomposition_sigmoid_state as leaky
from tests import part8_parameter_decomposition_slips as slips
from tests import part8_parameter_decomposition_squash as squash
from tests import part8_parameter_decomposition_substitutes as subs
from tests.checking import (
    FAILURE_PROBABILITY,
    bernstein_tolerance,
    checker,
    expect_matches,
    expect_scalar,
    expect_tensor,
    fail,
    returned,
)
from tests.mutants import Reference, call, one_change_diagnosis
from tests.part8_parameter_decomposition_probes import _rand, _randn
from tests.sizes import note_inputs
from utils.part8_parameter_decomposition import WeightChain


def _grads(out: Tensor, inputs: list[Tensor], retain: bool = False) -> list[Tensor | None]:
    if not isinstance(out, Tensor) or not out.requires_grad:
        return [None] * len(inputs)
    return list(torch.autograd.grad(out, inputs, allow_unused=True, retain_graph=retain))


def _expect_grad(
    grad: Tensor | None,
    right: Tensor,
    what: str,
    mistakes: mis.Mistakes,
    hint: str,
    code: str,
    reference: Reference | None = None,
) -> None:
    if grad is None or not grad.abs().gt(0).any():  # no gradient: name the mistake whose gradient is zero, if any
        zero = [(c, h) for c, h, m in mistakes if not m.abs().gt(0).any()]
        c, h = zero[0] if zero else (code, hint)
        fail(f"no gradient reaches {what}", h, code=c)
    expect_matches(
        grad,
        right,
        f"the gradient of {what}",
        mistakes,
        hint=hint,
        code=code,
        rtol=1e-4,
        atol=1e-6,
        reference=reference,
    )


def _for_leaf(mistakes: list[tuple[str, str, list[Tensor]]], n: int, right: Tensor) -> mis.Mistakes:
    """The gradient mistakes that change leaf n's gradient (the others leave it as it should be)."""
    return [(c, h, m[n]) for c, h, m in mistakes if not torch.allclose(m[n], right, rtol=1e-4, atol=1e-6)]


def generic_chain(device: torch.device | str = "cpu") -> WeightChain:
    """3 instances, matrices 4 -> 2 -> 8 -> 7, biases, ReLU / GELU / ReLU: no two sizes coincide (nor with the
    instances, the K = 5 terms or the batch of 6), so a count taken from d_in where d_out belongs shows."""
    dims = [4, 2, 8, 7]
    weights = [_randn(3, dims[layer + 1], dims[layer], seed=10 + layer, scale=0.8, device=device) for layer in range(3)]
    biases = [_randn(3, dims[layer + 1], seed=20 + layer, scale=0.3, device=device) + 0.1 for layer in range(3)]
    return WeightChain(weights, biases, ["relu", "gelu", "relu"], ["W0", "W1", "W2"])


# --------------------------------------------------------------------------------------------
# Exercise 1: svd_terms
# --------------------------------------------------------------------------------------------
def svd_inputs(device: torch.device | str = "cpu") -> list[Tensor]:
    """A square batch first (transposition mistakes keep their shape there and get named), then a wide one and a
    tall one (a count of terms taken from d_out or d_in alone is right on one of them only)."""
    return [
        _randn(2, 4, 4, seed=2, device=device),
        _randn(3, 3, 5, seed=1, device=device),
        _randn(4, 6, 3, seed=3, device=device),
    ]


@checker("svd_terms", kind="function")
def test_svd_terms(svd_terms: Callable, device: torch.device) -> str:
    for W in svd_inputs(device):
        n_inst, d_out, d_in = W.shape
        r = min(d_out, d_in)
        what = f"svd_terms(W) for W of shape {tuple(W.shape)}"
        full = (
            f"the sizes {max(d_out, d_in)} = max(d_out, d_in) and {r} = r = min(d_out, d_in) clash: torch.linalg.svd "
            "returns square U [d_out d_out] and Vh [d_in d_in] unless full_matrices=False, while S has r values"
        )
        sizes = {r, max(d_out, d_in)} if d_out != d_in else None  # square: full_matrices changes nothing
        deflate = " (a deflation loop: R = W.clone() first, then R = R - term)"
        named = lambda W: probes.call_naming_term_count(svd_terms, W)  # on the checker's own W: edits show
        out = diag.call_naming_sizes(inp.call_unchanged, (named, {"W": W}, what, deflate), sizes, full, "full_matrices")
        if isinstance(out, Tensor) and out.shape == (n_inst, max(d_out, d_in), d_out, d_in) and r != out.shape[1]:
            fail(
                f"{what} has {out.shape[1]} terms, expected {r}",
                "use full_matrices=False: there are min(d_out, d_in) terms",
                code="full_matrices",
            )
        dims = "inst r d_out d_in"
        behaviour.one_tensor(out, what, behaviour.SVD_RETURNED)
        fresh.svd_term_count(out, W)  # a residual term appended, then the other counts
        diag.merged_axes(out, (n_inst, r, d_out, d_in), dims)
        out = expect_tensor(out, what, shape=(n_inst, r, d_out, d_in), dims=dims, dtype=W.dtype, device=device)
        right, mistakes = mis.svd_candidates(W)
        code, hint = fresh.sum_hint(out, W, svd_terms)  # adds up to W, to W minus its means (centred first), or not
        code, hint = (
            axes.reordered_hint(out, right, dims, False) or behaviour.term_size_hint(out, W, code) or (code, hint)
        )
        mistakes += diag.layout_mistakes(right, dims, same_shape="axis_order")  # r = d_out = d_in: orders named
        mistakes += behaviour.svd_one_instance(W) + fresh.svd_pairings(W) + subs.svd_projectors(W)
        mistakes += probes.svd_broadcasts(W, [m for *_, m in mistakes])  # A.unsqueeze(i) * B.unsqueeze(j)
        expect_matches(out, right, what, mistakes, dims=dims, hint=hint, code=code, reference=call(sol.svd_terms, W))
    outputs.svd_rank_deficient(svd_terms, device)  # rank 2 < min(d_out, d_in): every term kept
    return "rank-one SVD terms, largest first, on square and wide matrices"


# --------------------------------------------------------------------------------------------
# Exercise 2: ablation_losses
# --------------------------------------------------------------------------------------------
def ablation_inputs(device: torch.device | str = "cpu") -> tuple[WeightChain, Tensor, Tensor]:
    chain = generic_chain(device)
    terms = _randn(3, 10, 2, 4, seed=3, scale=0.5, device=device)  # K = 10: no size (nor K ± 1) repeats
    x = _rand(13, 3, 4, seed=4, device=device)  # batch 13: not a size, nor a size ± 1 (d_out - 1 = 6, K ± 1 = 9, 11)
    return chain, terms, x


@checker("ablation_losses", kind="function")
def test_ablation_losses(ablation_losses: Callable, device: torch.device) -> str:
    chain, terms, x = ablation_inputs(device)
    what, dims = "ablation_losses(chain, terms, x)", "inst k batch"
    inputs = {"chain.weights": chain.weights, "chain.biases": chain.biases, "terms": terms, "x": x}
    saved = inp.snapshot(inputs)
    with torch.no_grad():
        out = probes.call_naming_layer(ablation_losses, chain, terms, x)
    inp.unchanged(inputs, saved, what, ": build a new matrix W = chain.weights[0] - terms[:, k] for each term")
    probes.kept_output_dims(out, chain, (3, terms.shape[1], x.shape[0]), dims)
    inp.sizes_named(out, what, (3, terms.shape[1], x.shape[0]), dims, inp.ablation_sizes(chain, terms, x))
    out = expect_tensor(out, what, shape=(3, terms.shape[1], x.shape[0]), dims=dims, dtype=x.dtype, device=device)
    right, mistakes = mis.ablation_candidates(chain, terms, x)
    code, hint = (
        diag.constant_axis_hint(out, right, dims)
        or axes.reordered_hint(out, right, dims)
        or probes.ablation_hint(out, right, chain(x))
    )
    mistakes += diag.axis_reductions(right, dims) + diag.layout_mistakes(right, dims)
    mistakes += probes.ablation_mistakes(chain, terms, x) + behaviour.ablation_squares(chain, terms, x)
    mistakes += fresh.ablation_reductions(chain, terms, x) + readings.output_readings(out, right, dims)
    mistakes += normalised.ablation_more(ablation_losses, chain, terms, x, out)  # + other baselines, losses
    mistakes += probes.count_mistakes(out, right, chain, x, [m for *_, m in mistakes])
    reference = call(sol.ablation_losses, chain, terms, x, pick=Tensor.detach)
    expect_matches(out, right, what, mistakes, dims=dims, hint=hint, code=code, reference=reference)
    abl_runs.ablation_other_chains(ablation_losses, device, (chain, terms, x))  # W_0ᵀ's, W_0's shape; signed; f64
    return "each term removed from the first matrix, squared change of the output"


# --------------------------------------------------------------------------------------------
# Exercise 3: faithfulness_loss
# --------------------------------------------------------------------------------------------
@checker("faithfulness_loss", kind="function")
def test_faithfulness_loss(faithfulness_loss: Callable, device: torch.device) -> str:
    weights, U0, V0 = probes.faithfulness_inputs(device)
    U, V = [u.clone().requires_grad_() for u in U0], [v.clone().requires_grad_() for v in V0]
    right, mistakes = mis.faithfulness_candidates(weights, U0, V0)  # from the weights before the call
    loss = inp.call_unchanged_uv(faithfulness_loss, {"weights": weights, "U": U, "V": V}, what := "faithfulness_loss")
    inp.one_element(loss, what, right)
    loss = expect_scalar(loss, "faithfulness_loss(weights, U, V)", weights[0].dtype)
    mistakes += probes.faithfulness_mistakes(weights, U0, V0) + behaviour.faithfulness_inst_summed(weights, U0, V0)
    mistakes += outputs.faithfulness_more(weights, U0, V0)  # norms, slips, a log of the loss
    code, hint = outputs.faithfulness_hint(faithfulness_loss, loss.detach(), right, weights, U0, V0)
    reference = call(sol.faithfulness_loss, weights, U0, V0)
    expect_matches(loss.detach(), right, "faithfulness_loss", mistakes, hint=hint, code=code, reference=reference)
    grads, names = _grads(loss, U + V), [f"U[{n}]" for n in range(len(U))] + [f"V[{n}]" for n in range(len(V))]
    U_ref, V_ref = [u.clone().requires_grad_() for u in U0], [v.clone().requires_grad_() for v in V0]
    ref = torch.autograd.grad(mis.faithfulness_candidates(weights, U_ref, V_ref)[0], U_ref + V_ref)
    if not f64.close32(grads, ref) and f64.faithfulness_rounding(faithfulness_loss, weights, U0, V0):
        grads = list(ref)  # the float32 gap is rounding alone: in float64 the gradients agree
    for name, g, r in zip(names, grads, ref, strict=True):
        _expect_grad(g, r, name, [], readings.NO_GRAD, "no_grad")
    outputs.faithfulness_zeros(faithfulness_loss, device)  # N counts the zeros too
    return "one global mean over the parameters of all matrices, summed over instances"


# --------------------------------------------------------------------------------------------
# Exercise 4: the leaky hard sigmoids
# --------------------------------------------------------------------------------------------
ALPHA = 0.03  # not the default 0.01, so an ignored argument shows up


def sigmoid_inputs(device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """x in [-2, 3] on a grid offset from 0 and 1 (where the slope changes), and an upstream gradient."""
    x = torch.linspace(-2, 3, 60).repeat(3, 1) + torch.tensor([[0.013], [0.007], [0.021]])
    return x.to(device), _randn(3, 60, seed=60, device=device) + 0.5


def _check_leaky_sigmoid(impl: Any, name: str, lower: bool, device: torch.device) -> None:
    if not issubclass(impl, torch.autograd.Function):
        fail(
            f"{impl.__name__} is not a torch.autograd.Function",
            f"pass the class {name} (a subclass of torch.autograd.Function, used as name.apply(x, alpha))",
            code="not_autograd_function",
        )
    x0, g = sigmoid_inputs(device)
    x = x0.clone().requires_grad_(True)
    behaviour.one_tensor(out := impl.apply(x, ALPHA), f"{name}.apply(x, alpha)", behaviour.TUPLE_FORWARD)
    out = expect_tensor(out, f"{name}.apply(x, alpha)", shape=x.shape, dtype=x.dtype, device=device)
    if not torch.equal(x.detach(), x0):
        fail(
            f"{name}.forward changed its input x",
            "return x.clamp(0, 1), not x.clamp_(0, 1): an in-place clamp also changes the x that backward needs",
            code="in_place",
        )
    right, mistakes = mis.sigmoid_forward_candidates(x0, ALPHA, lower)
    seen = diag.regions_hint(out.detach(), right, x0, None, ALPHA, "your forward's value:")
    hint = f"{seen}; forward returns clamp(x, 0, 1)" if seen else "forward returns clamp(x, 0, 1)"
    forward = getattr(sol, name).forward  # on a stand-in for ctx: the mutants edit the forward the learner wrote
    reference = call(forward, diag.SavingContext(), x0, ALPHA)
    expect_matches(out.detach(), right, f"{name} forward", mistakes, hint=hint, code="forward", reference=reference)
    if not out.requires_grad:
        fail(f"the output of {name} has no gradient", readings.no_output_grad_hint(impl, x0, ALPHA), code="no_grad")
    right, mistakes = slips.sigmoid_candidates(x0, g, ALPHA, lower)
    grad = leaky.backward_grad(out, x, g, name, right)  # names a clipped x saved for backward
    hint, code = "grad_output times the slope: 1 on [0, 1], alpha on the leaky side, 0 on the other", "grad"
    if grad is not None:
        grad = expect_tensor(grad, f"the gradient {name}.backward returns", shape=x.shape, dtype=x.dtype)
        seen = fresh.alpha_squared(diag.regions_hint(grad, right, x0, g, ALPHA, "your slope (gradient / grad_output):"))
        hint, code = fresh.slope_code(seen, hint, code, lambda: fresh.backward_linearity(impl, name, x0, g, ALPHA))
    backward = call(  # the learner writes backward itself: one-edit mutants, on a ctx with what the solution saved
        getattr(sol, name).backward, SimpleNamespace(saved_tensors=(x0,), alpha=ALPHA), g, pick=itemgetter(0)
    )
    _expect_grad(grad, right, f"{name} with respect to x", mistakes, hint, code, backward if code == "grad" else None)
    leaky.after_values(impl, name, x0)  # alpha on ctx, narrow bands, break points, the default alpha=0.01


@checker("lower_leaky_hard_sigmoid", kind="class")
def test_lower_leaky_hard_sigmoid(impl: Any, device: torch.device) -> str:
    _check_leaky_sigmoid(impl, "LowerLeakyHardSigmoid", True, device)
    return "clamp forward; slope alpha below 0, 1 on [0, 1], 0 above 1"


@checker("upper_leaky_hard_sigmoid", kind="class")
def test_upper_leaky_hard_sigmoid(impl: Any, device: torch.device) -> str:
    _check_leaky_sigmoid(impl, "UpperLeakyHardSigmoid", False, device)
    return "clamp forward; slope 0 below 0, 1 on [0, 1], alpha above 1"


# --------------------------------------------------------------------------------------------
# Exercise 5: CausalImportance.forward
# --------------------------------------------------------------------------------------------
CI_ALPHA = 0.05


def ci_inputs(device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Parameters whose pre-activations z fall below 0, inside [0, 1] and above 1 (every slope matters)."""
    return {
        "a": _randn(7, 3, 6, seed=70, device=device),
        "V": _randn(3, 4, 6, seed=71, scale=0.5, device=device),
        "w_in": _randn(3, 4, 10, seed=72, device=device),
        "b_in": _randn(3, 4, 10, seed=73, scale=0.5, device=device),
        "w_out": _randn(3, 4, 10, seed=74, scale=0.6, device=device),
        "b_out": _randn(3, 4, seed=75, scale=0.3, device=device) + 0.4,
        "g_lower": _randn(7, 3, 4, seed=76, device=device),
        "g_upper": _randn(7, 3, 4, seed=77, device=device),
    }


@checker("causal_importance", kind="class")
def test_causal_importance(CausalImportance: type, device: torch.device) -> str:
    p = ci_inputs(device)
    module = CausalImportance(3, 4, 10, alpha=CI_ALPHA, device=device)
    for k in mis.CI_PARAMS[1:]:
        param = getattr(module, k, None)
        if not isinstance(param, torch.nn.Parameter) or param.shape != p[k].shape:
            fail(
                f"CausalImportance has no parameter {k} of shape {tuple(p[k].shape)}",
                "keep the given __init__",
                code="init",
            )
        with torch.no_grad():
            param.copy_(p[k])
    V = p["V"].clone().requires_grad_()
    apply = lambda a, V: diag.call_naming_apply(module, a, V)
    out = inp.call_unchanged(apply, {"a": p["a"], "V": V}, "CausalImportance.forward(a, V)")
    lower, upper = outputs.pair(returned(out, "CausalImportance.forward"), "forward", "(lower, upper)")
    shape, dims = (7, 3, 4), "batch inst C"
    lower = expect_tensor(lower, "the lower-leaky importances", shape=shape, dims=dims, dtype=V.dtype, device=device)
    upper = expect_tensor(upper, "the upper-leaky importances", shape=shape, dims=dims, dtype=V.dtype, device=device)
    right, mistakes = mis.ci_value_candidates(p, CI_ALPHA)
    mistakes += fresh.ci_instance0(p, CI_ALPHA)  # one instance's V or MLP for all
    mistakes += diag.layout_mistakes(right, dims) + probes.ci_mistakes(p) + behaviour.ci_scale_mistakes(p, CI_ALPHA)
    if not torch.allclose(lower.detach(), right, rtol=1e-4, atol=1e-5) and not any(
        torch.allclose(lower.detach(), m, rtol=1e-4, atol=1e-5) for _, _, m in mistakes
    ):
        on_V = _grads((lower * p["g_lower"]).sum() + (upper * p["g_upper"]).sum(), [V], retain=True)[0]
        if on_V is None or not on_V.abs().gt(0).any():
            fail(
                "the lower-leaky importances are wrong and don't depend on V (no gradient reaches it)",
                "the MLPs read the inner activations h = V a (einsum of a with V, one per subcomponent), not the "
                "input a itself (or was V a detached?)",
                code="ignores_V",
            )
        total = (lower * p["g_lower"]).sum() + (upper * p["g_upper"]).sum()
        if (unused := probes.unused_hidden_units(module, total)) is not None:  # a loop over too few hidden units
            mistakes.append((*unused, lower.detach()))
        mistakes += behaviour.ci_behaviour(CausalImportance, module, p, lower.detach())
    solution = diag.with_parameters(sol.CausalImportance(3, 4, 10, alpha=CI_ALPHA, device=device), p)
    for n, (value, what) in enumerate(((lower, "the lower-leaky importances"), (upper, "the upper-leaky importances"))):
        expect_matches(
            value.detach(),
            right,
            what,
            mistakes,
            dims=dims,
            hint="h = V a; z = Σ_j w_out GELU(w_in h + b_in) + b_out; clamp to [0, 1]",
            reference=call(
                sol.CausalImportance.forward, solution, p["a"], p["V"], pick=lambda out, n=n: out[n].detach()
            ),
        )
    total = (lower * p["g_lower"]).sum() + (upper * p["g_upper"]).sum()
    grads = _grads(total, [V] + [getattr(module, k) for k in mis.CI_PARAMS[1:]])
    readings.ci_cut(grads, mis.CI_PARAMS)  # some leaves without a gradient, others with: where the graph is cut
    right_g, grad_mistakes = mis.ci_grad_candidates(p, CI_ALPHA)
    for n, (name, g, r) in enumerate(zip(mis.CI_PARAMS, grads, right_g, strict=True)):
        hint = "gradients must reach V and every MLP parameter: keep everything in autograd"
        leaf = _for_leaf(grad_mistakes, n, r)
        if (
            g is not None
            and g.abs().gt(0).any()
            and not any(torch.allclose(g, m, rtol=1e-4, atol=1e-6) for m in [r] + [m for *_, m in leaf])
        ):
            leak_depths.ci_slopes(module, p, CI_ALPHA)  # the slope each sigmoid uses outside [0, 1]
            hint = behaviour.GRAD_HINT
        _expect_grad(g, r, name, leaf, hint, "grad")
    return "inner activations, one MLP per subcomponent, both leaky sigmoids, gradients to V and every MLP parameter"


# --------------------------------------------------------------------------------------------
# Exercise 6: sample_masks
# --------------------------------------------------------------------------------------------
N_MASKS = 4000
# Causal importances per (inst, subcomponent), 4 and 3 subcomponents: zeros, values in between, none at 1 (no draw).
CI_TABLES = [
    [[0.0, 0.2, 0.55, 0.9], [0.35, 0.0, 0.7, 0.1], [0.8, 0.45, 0.0, 0.25]],
    [[0.6, 0.0, 0.3], [0.15, 0.85, 0.0], [0.0, 0.5, 0.75]],
]


def mask_inputs(device: torch.device | str = "cpu") -> list[Tensor]:
    return [torch.tensor(t, device=device).expand(N_MASKS, -1, -1).clone().requires_grad_() for t in CI_TABLES]


@checker("sample_masks", kind="function")
def test_sample_masks(sample_masks: Callable, device: torch.device) -> str:
    ci = mask_inputs(device)
    note_inputs(**{"len(causal_importances), the number of matrices": len(ci)})  # a wrong size 2 named
    out = draws.masks_call(inp.call_unchanged, sample_masks, ci)  # raises: one r reused for every matrix?
    masks, deltas = outputs.pair(returned(out, "sample_masks"), "sample_masks", "masks, delta_masks")
    if not isinstance(masks, tuple | list) or not isinstance(deltas, tuple | list):
        fail(
            f"sample_masks should return two lists (masks, delta_masks), got {type(masks).__name__} and "
            f"{type(deltas).__name__}",
            "return masks, delta_masks: one tensor per matrix in each",
            code="not_pair",
        )
    tensors = len(masks) == len(deltas) == 2 and all(isinstance(t, Tensor) for t in [*masks, *deltas])
    if tensors and masks[0].ndim == deltas[0].ndim == 3 and masks[1].ndim == deltas[1].ndim == 2:
        fail(
            "sample_masks returned one (mask, delta mask) pair per matrix: its first entry holds matrix 0's mask and "
            "delta mask, its second matrix 1's",
            "return two lists, masks and delta_masks (masks[l] and delta_masks[l] for matrix l), not a list of pairs: "
            "collect them separately and `return masks, delta_masks`",
            code="pairs",
        )
    if tensors and masks[0].ndim == 2 and deltas[0].ndim == 3:
        fail(
            "the masks have the delta masks' shape and the reverse",
            "return (masks, delta_masks) in that order",
            code="swapped",
        )
    if len(masks) != 2:
        fail(
            f"expected one mask tensor per matrix (2), got {len(masks)}",
            "return a list with one entry per causal importance tensor",
            code="n_masks",
        )
    if len(deltas) != 2 or any(d is None for d in deltas):
        fail(
            f"expected one delta mask per matrix (2), got {[type(d).__name__ for d in deltas]}",
            fresh.delta_count_hint(deltas, 2),
            code="delta_missing",
        )
    masks = [
        expect_tensor(m, f"mask {n}", shape=g.shape, dims="batch inst C", dtype=g.dtype, device=device)
        for n, (m, g) in enumerate(zip(masks, ci, strict=True))
    ]
    probes.delta_shape_slip(deltas, ci)
    deltas = [
        expect_tensor(d, f"delta mask {n}", shape=g.shape[:-1], dims="batch inst", dtype=g.dtype, device=device)
        for n, (d, g) in enumerate(zip(deltas, ci, strict=True))
    ]
    rs = []
    for layer, (m, g) in enumerate(zip(masks, ci, strict=True)):
        m, g = m.detach(), g.detach()
        behaviour.binary_masks(m, g, layer)
        diag.diagnose_range(m, g, layer, behaviour.span_law)
        r = (m - g) / (1 - g)
        if ((r < 1e-6) | (r > 1 - 1e-6)).float().mean() > 0.9:
            fail(
                f"mask {layer} is only ever g or 1",
                "r is uniform on [0, 1], not a coin flip: torch.rand_like(g), not (torch.rand_like(g) > 0.5)",
                code="binary",
            )
        if (values := diag.discrete_values(r)) is not None:
            fail(
                f"r = (mask - g) / (1 - g) of matrix {layer} takes {diag.law(values)} over {r.shape[0]} draws",
                "r is uniform on [0, 1], a continuous value: torch.rand_like(g), not torch.randint or rounded values",
                code="discrete",
            )
        behaviour.point_masses(r, g, layer)
        if ((r.abs() < 1e-6) & (g > 0)).float().mean() > 0.05:
            fail(
                f"mask {layer} equals its causal importance g on {((r.abs() < 1e-6) & (g > 0)).float().mean():.0%} "
                "of entries",
                "the mask is g + (1 - g) r, not max(g, r)",
                code="max_not_interpolation",
            )
        diag.check_not_shared(r, f"mask {layer}")
        draws.r_draws(r, g, layer)
        rs.append(r)
    if diag.shared_draws(rs[0][..., :3], rs[1]):
        fail(
            "the two matrices' masks share their random draws",
            "draw separately for every matrix",
            code="shared_over_layers",
        )
    for layer, d in enumerate(deltas):
        diag.check_delta(d.detach(), layer, rs[layer], masks[layer].detach())
    if diag.shared_draws(deltas[0].detach(), deltas[1].detach()):
        fail("the two matrices share one delta mask", "draw a delta mask for every matrix", code="shared_over_layers")
    n_tests = 2 * (sum(r[0].numel() for r in rs) + 2 * 3) + 4
    for layer, r in enumerate(rs):
        diag.check_uniform(
            r,
            f"(mask - g) / (1 - g) of matrix {layer}",
            "inst C",
            n_tests,
            "r in m = g + (1 - g) r should be uniform on [0, 1] (torch.rand)",
            "not_uniform",
        )
        delta_laws.check_delta_law(deltas[layer].detach(), layer, r.shape[-1], n_tests)  # a max over C named
    # Independence of neighbouring draws: E[r_a r_b] = 1/4 for independent U[0, 1] (variance 7/144, range 1).
    tol = bernstein_tolerance(N_MASKS, 7 / 144, 1.0, FAILURE_PROBABILITY / n_tests)
    d0 = deltas[0].detach()[:, 0]
    pairs = [
        (rs[0][:, 0, 0], rs[0][:, 0, 1], "subcomponents 0 and 1"),
        (rs[0][:, 0, 0], rs[0][:, 1, 0], "instances 0 and 1"),
        (rs[0][:, 0, 0], rs[1][:, 0, 0], "the two matrices"),
        (rs[0][:, 0, 0], d0, "a mask and the delta mask"),
        (rs[0][:-1, 0, 0], rs[0][1:, 0, 0], "neighbouring examples"),
    ]
    for a, b, what in pairs:
        prod = (a.double() * b.double()).mean().item()
        if abs(prod - 0.25) > tol:
            fail(
                f"the draws of {what} are correlated (mean product {prod:.3f}, independent draws give "
                f"0.250 ± {tol:.3f})",
                "draw every random number independently",
                code="correlated",
            )
    weights = [_randn(*g.shape, seed=80 + layer, device=device) for layer, g in enumerate(ci)]
    total = sum((m * w).sum() for m, w in zip(masks, weights, strict=True))
    for layer, (g_ci, r, w) in enumerate(zip(_grads(total, ci), rs, weights, strict=True)):
        if g_ci is None or not g_ci.abs().gt(0).any():
            fail(
                "no gradient flows from the masks to the causal importances",
                "the causal-importance functions learn through the masks (m = g + (1 - g) r is differentiable in "
                "g); a .detach(), torch.no_grad(), or a sampler without reparameterisation (a distribution's "
                ".sample() instead of .rsample()) cuts the gradient",
                code="no_grad",
            )
        mistakes = [("grad_partial", "the factor (1 - g) must carry gradient too: ∂m/∂g = 1 - r", w)]
        mistakes += [("g_detached", "∂m/∂g = -r: the first g of g + (1 - g) r is detached; ∂m/∂g = 1 - r", -w * r)]
        expect_matches(
            g_ci,
            w * (1 - r),
            f"∂(Σ w·mask {layer})/∂g",
            mistakes,
            dims="batch inst C",
            hint="m = g + (1 - g) r gives ∂m/∂g = 1 - r",
            code="grad",
        )
    probes.check_fresh_draws(sample_masks, device, rs, deltas)
    return f"masks in [g, 1], uniform and independent per entry, delta masks, gradients ({N_MASKS} draws)"


# --------------------------------------------------------------------------------------------
# Exercise 7: masked_product
# --------------------------------------------------------------------------------------------
def product_inputs(device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """d_in 5, d_out 4, C 7 (all different), masks strictly inside (0, 1)."""
    return {
        "a": _randn(6, 3, 5, seed=90, device=device),
        "W": _randn(3, 4, 5, seed=91, device=device),
        "U": _randn(3, 4, 7, seed=92, scale=0.5, device=device),
        "V": _randn(3, 7, 5, seed=93, scale=0.5, device=device),
        "mask": _rand(6, 3, 7, seed=94, low=0.1, high=0.9, device=device),
        "delta_mask": _rand(6, 3, seed=95, low=0.1, high=0.9, device=device),
    }


@checker("masked_product", kind="function")
def test_masked_product(masked_product: Callable, device: torch.device) -> str:
    p = product_inputs(device)
    q = {**p, **{k: p[k].clone().requires_grad_() for k in mis.PRODUCT_LEAVES}}
    names = {"a": "batch inst d_in", "W": "inst d_out d_in", "U": "inst d_out C", "V": "inst C d_in"}
    names |= {"mask": "batch inst C", "delta_mask": "batch inst"}
    named = lambda *a: diag.call_naming_shapes(
        masked_product, dict(zip(names, a, strict=True)), names, "batch inst d_out"
    )
    out = inp.call_unchanged(named, {k: q[k] for k in names}, "masked_product")  # a and W: the checker's own
    what, dims = "masked_product(...)", "batch inst d_out"
    out = expect_tensor(out, what, shape=(6, 3, 4), dims=dims, dtype=p["a"].dtype, device=device)
    inp.deterministic(masked_product, {k: p[k] for k in names}, out, what, "mask and delta_mask")
    right, mistakes = mis.product_candidates(p)
    axes = {"a": 1, "W": 0, "U": 0, "V": 0, "mask": 1, "delta_mask": 1}
    mixing = not torch.allclose(out.detach(), right, 1e-4, 1e-5) and inp.instance_mixing(
        masked_product, {k: (p[k], axes[k]) for k in names}, 1
    )
    code, hint = diag.reordered_hint(out, right) or mixing or ("values", "U (mask ⊙ V a) + delta_mask · (W - U V) a")
    mistakes += diag.layout_mistakes(right, dims) + probes.product_mistakes(p) + behaviour.product_delta_mean_mask(p)
    mistakes += behaviour.mask_scale_invariance(masked_product, p, out.detach()) + fresh.product_extra(p)
    reference = call(sol.masked_product, *(p[k] for k in names))
    expect_matches(out.detach(), right, what, mistakes, dims=dims, hint=hint, code=code, reference=reference)
    g = _randn(6, 3, 4, seed=96, device=device)
    right_g, grad_mistakes = fresh.product_grads(p, g)
    grads = _grads((out * g).sum(), [q[k] for k in mis.PRODUCT_LEAVES])
    for n, (name, gr, r) in enumerate(zip(mis.PRODUCT_LEAVES, grads, right_g, strict=True)):
        hint = (
            "gradients must reach the masks (the causal importances learn through them): don't detach"
            if name == "mask"
            else "compute everything from U and V with torch operations"
        )
        _expect_grad(
            gr,
            r,
            name,
            _for_leaf(grad_mistakes, n, r),
            hint,
            "mask_detached" if name == "mask" else "grad",
        )
    fresh.product_input_grad(masked_product, p, g)  # earlier matrices learn through a
    return "masked subcomponents plus the masked delta, gradients to U, V and the masks"


# --------------------------------------------------------------------------------------------
# Exercise 8: stochastic_reconstruction_losses
# --------------------------------------------------------------------------------------------
@checker("stochastic_reconstruction_losses", kind="function")
def test_stochastic_reconstruction_losses(stochastic_reconstruction_losses: Callable, device: torch.device) -> str:
    chain, p, x = probes.recon_inputs(device)
    q = {k: [t.clone().requires_grad_() for t in v] for k, v in p.items()}
    saved = inp.snapshot(inputs := {"chain.weights": chain.weights, "chain.biases": chain.biases, "x": x, **q})
    out = returned(
        inp.call_naming_recon(stochastic_reconstruction_losses, chain, q, x), "stochastic_reconstruction_losses"
    )
    inp.unchanged(inputs, saved, "stochastic_reconstruction_losses")
    full, layerwise = outputs.pair(out, "stochastic_reconstruction_losses", "full, layerwise")
    inp.one_element(full, "the full loss")
    behaviour.layerwise_per_matrix(layerwise, len(chain.weights))
    inp.one_element(layerwise, "the layerwise loss")
    full = expect_scalar(full, "the full stochastic reconstruction loss", x.dtype)
    layerwise = expect_scalar(layerwise, "the layerwise stochastic reconstruction loss", x.dtype)
    right, mistakes = mis.recon_candidates(chain, p, x)
    mistakes += probes.recon_mistakes(chain, p, x, right) + behaviour.recon_accumulator(right, chain, p, x)
    mistakes += loss_factors.recon_more(chain, p, x, right, mistakes, (full, layerwise))  # + two factors
    got, (batch, n_inst, d_out), L = torch.stack([full.detach(), layerwise.detach()]), chain(x).shape, len(q["U"])
    means, sums = {"output dims": d_out, "the batch": batch}, {"instances": n_inst}
    known = any(torch.allclose(got, m, rtol=1e-4, atol=1e-5) for *_, m in mistakes)
    if (fits := diag.common_factor(got, right)) is not None and not known:  # `loss` is never a reduction axis
        hint = diag.scalar_hint(fits, 1.0, means, sums)
        mistakes += [(hint[0], hint[1], got)] if hint else []
    off = [i for i in range(2) if not torch.allclose(got[i], right[i], rtol=1e-4, atol=1e-5)]
    reference = call(
        sol.stochastic_reconstruction_losses,
        *(chain, p["U"], p["V"], x, p["masks"], p["delta_masks"]),
        pick=lambda out: torch.stack([out[0].detach(), out[1].detach()]),
    )
    if fits is None and len(off) == 1 and not known:  # one loss wrong: a factor, one edit, or what was observed
        one = diag.scalar_hint(got[off[0]], right[off[0]], means, {**sums, f"the L = {L} matrices": L})
        counts = {"the batch": batch, "instances": n_inst, "output dims": d_out}
        slip = None if one else one_change_diagnosis(reference, got, right)
        code, hint = ("one_change", slip) if slip else probes.one_loss_off(got, right, counts, L)
        hint = f"the {('full', 'layerwise')[off[0]]} loss is wrong, the other right: {one[1]}" if one else hint
        mistakes.append((one[0] if one else code, hint, got))
    expect_matches(
        got,
        right,
        "(full, layerwise)",
        mistakes,
        dims="loss",
        hint="check each masked run against "
        "masked_product's formula and the reductions: MSE over output dims and batch, summed over instances",
        reference=reference,
    )
    leaves = [t for k in ("masks", "U", "V") for t in q[k]]
    ref_leaves = {k: [t.clone().requires_grad_() for t in v] for k, v in p.items()}
    right_g = torch.autograd.grad(
        mis.recon_reference(chain, ref_leaves, x) @ torch.tensor([1.0, 0.5], device=device, dtype=x.dtype),
        [t for k in ("masks", "U", "V") for t in ref_leaves[k]],
    )
    grads = _grads(full + 0.5 * layerwise, leaves)
    if not f64.close32(grads, right_g) and f64.recon_rounding(stochastic_reconstruction_losses, chain, p, x):
        grads = list(right_g)  # the float32 gap is rounding alone (e.g. an all-ones masked target): float64 agrees
    to_masks = outputs.loss_grad_hint({"full": full, "layerwise": layerwise}, leaves)  # a loss with no graph, named
    for n, (gr, r) in enumerate(zip(grads, right_g, strict=True)):
        hint = to_masks if n < L else "keep the losses differentiable in U and V"
        _expect_grad(gr, r, f"{('masks', 'U', 'V')[n // L]}[{n % L}]", [], hint, "grad")
    loss_factors.recon_uneven_c(stochastic_reconstruction_losses, device)  # each matrix its own C, then d_out ≠ d_in
    return "all matrices masked, one at a time averaged, MSE to the original output, gradients to masks, U and V"


# --------------------------------------------------------------------------------------------
# Exercise 9: importance_minimality_loss
# --------------------------------------------------------------------------------------------
P_NORM, EPS = 0.7, 1e-3  # generic: p not 0.5 or 1, eps large enough to see where it goes


def minimality_inputs(device: torch.device | str = "cpu") -> list[Tensor]:
    """C = 5 and 4: their sum 9 is no product of the batch 8, the 3 instances and the 2 matrices."""
    ci = [_rand(8, 3, c, seed=150 + n, device=device) for n, c in enumerate((5, 4))]
    ci[0][0, 0, :2] = ci[0][::2, :, 0] = 0.0  # exact zeros (where the gradient of g^p needs eps; eps^p ≫ eps)
    ci[1][1, 2, 1] = 1.0
    return ci


@checker("importance_minimality_loss", kind="function")
def test_importance_minimality_loss(importance_minimality_loss: Callable, device: torch.device) -> str:
    ci = [g.clone().requires_grad_() for g in minimality_inputs(device)]
    penalty = (lambda ci: importance_minimality_loss(ci, P_NORM, EPS), {"ci": ci}, "the penalty")
    sizes = {g.shape[-1] for g in ci}  # C differs between the matrices: combining them raises
    loss = diag.call_naming_sizes(inp.call_unchanged, penalty, sizes, inp.minimality_clash(8, 3), "matrices_combined")
    behaviour.one_tensor(loss, "the penalty", behaviour.LIST_PENALTY)
    fresh.finite_penalty(importance_minimality_loss, loss, minimality_inputs(device), P_NORM, EPS)
    inp.one_element(loss, "importance_minimality_loss", mis.minimality_reference(ci, P_NORM, EPS).detach())
    loss = expect_scalar(loss, "importance_minimality_loss(ci, p, eps)", ci[0].dtype)
    if not torch.allclose(loss.detach(), mis.minimality_reference(minimality_inputs(device), P_NORM, EPS)):
        behaviour.zeros_probe(importance_minimality_loss, minimality_inputs(device), P_NORM, EPS)
    right, mistakes = mis.minimality_candidates(minimality_inputs(device), P_NORM, EPS)
    mistakes += probes.minimality_mistakes(minimality_inputs(device), P_NORM, EPS)
    mistakes += behaviour.minimality_reductions(minimality_inputs(device), P_NORM, EPS)
    mistakes += fresh.minimality_products(minimality_inputs(device), P_NORM, EPS)
    mistakes += fresh.minimality_batch_reductions(minimality_inputs(device), P_NORM, EPS)
    mistakes += f64_runs.minimality_rounded(minimality_inputs(device), P_NORM, EPS)  # // or floor
    generic = None
    for n, g in enumerate(minimality_inputs(device)):  # one matrix's term only: `=` where `+=` was meant?
        if torch.allclose(loss.detach(), mis.minimality_reference([g], P_NORM, EPS), rtol=1e-4, atol=1e-5):
            generic = (
                "one_matrix",
                f"your value is matrix {n}'s term alone: sum the terms of every matrix (a `=` "
                "where `+=` was meant in the loop, or a return inside it?)",
            )
    if not generic and not any(
        torch.allclose(loss.detach(), m, rtol=1e-4, atol=1e-5) for m in [right] + [m for *_, m in mistakes]
    ):
        generic = mterms.unnamed(importance_minimality_loss, minimality_inputs(device), P_NORM, EPS, loss)
    generic = generic or diag.scalar_hint(loss.detach(), right, {"the batch": 8}, behaviour.minimality_sums(ci))
    code, hint = generic or ("values", "Σ_inst mean_batch Σ_l Σ_c (g + eps)^p")
    reference = call(sol.importance_minimality_loss, minimality_inputs(device), P_NORM, EPS)
    expect_matches(
        loss.detach(), right, "importance_minimality_loss", mistakes, hint=hint, code=code, reference=reference
    )
    ref = [g.clone().requires_grad_() for g in minimality_inputs(device)]
    right_g = torch.autograd.grad(mis.minimality_reference(ref, P_NORM, EPS), ref)
    for n, (gr, r) in enumerate(zip(_grads(loss, ci), right_g, strict=True)):
        _expect_grad(
            gr,
            r,
            f"the causal importances of matrix {n}",
            [],
            "compute the penalty from the importances with torch operations (no .detach() or .item())",
            "grad",
        )
    return "Σ over matrices and subcomponents of (g + eps)^p, mean over the batch, summed over instances"


# --------------------------------------------------------------------------------------------
# Exercise 10: adversarial_sources
# --------------------------------------------------------------------------------------------
N_STEPS, STEP_SIZE = 4, 0.15


@checker("adversarial_sources", kind="function")
def test_adversarial_sources(adversarial_sources: Callable, device: torch.device) -> str:
    loss_fn, init = probes.adversarial_inputs(device)
    saved = inp.snapshot({"init": init})
    out = returned(
        inp.call_naming_grad_none(adversarial_sources, loss_fn, init, N_STEPS, STEP_SIZE), "adversarial_sources"
    )
    inp.unchanged({"init": init}, saved, "adversarial_sources", ": start from [s.detach().clone() for s in init]")
    inp.extra_value(out, len(init), "adversarial_sources", "sources")
    fresh.expect_source_list(out, init)
    out = [
        expect_tensor(o, f"source {n}", shape=t.shape, dtype=t.dtype, device=device)
        for n, (o, t) in enumerate(zip(out, init, strict=True))
    ]
    fresh.expect_detached(out)
    right, mistakes = mis.adversarial_candidates(loss_fn, init, N_STEPS, STEP_SIZE)
    mistakes += subs.adversarial_more(out, loss_fn, init, N_STEPS, STEP_SIZE, mistakes)  # + step read back
    flat = torch.cat([o.flatten() for o in out])
    right_list = mis.adversarial_reference(loss_fn, init, N_STEPS, STEP_SIZE)
    if not any(torch.allclose(flat, m, rtol=1e-4, atol=1e-5) for m in [right] + [m for *_, m in mistakes]):
        behaviour.start_probe(adversarial_sources, loss_fn, init, flat, STEP_SIZE)
    code, hint = (
        diag.unmoved_sources(out, init, right_list)
        or diag.ascent_hint(flat, torch.cat([t.flatten() for t in init]), N_STEPS, STEP_SIZE, right)
        or ("values", "each step: r = clamp(r + step_size * sign(∂loss/∂r), 0, 1)")
    )
    if code == "values" and not any(
        torch.allclose(flat, m, rtol=1e-4, atol=1e-5) for m in [right] + [m for *_, m in mistakes]
    ):
        changed = {2: ("n_steps", 1), 3: ("step_size", 0.1)}  # 1 step: no saturation
        args = (loss_fn, probes.adversarial_inputs(device)[1], N_STEPS, STEP_SIZE)
        code, hint = diag.ignored_argument(adversarial_sources, args, flat, changed) or (code, hint)
    flatten = lambda sources: torch.cat([s.flatten() for s in sources])
    reference = call(sol.adversarial_sources, loss_fn, init, N_STEPS, STEP_SIZE, pick=flatten)
    if code == "values":  # sources moved by a 0 step (a squashing projection), or moves off the step lattice
        start, zero_step = torch.cat([t.flatten() for t in init]), squash.zero_step_probe
        code, hint = zero_step(adversarial_sources, loss_fn, init, N_STEPS) or (code, hint)
        code, hint = (code == "values" and probes.off_lattice_hint(flat, start, STEP_SIZE)) or (code, hint)
    # one-change reference only where nothing specific was found
    reference = reference if code in ("values", "off_lattice") else None
    outputs.constant_sources(flat, right, [m for *_, m in mistakes])  # all 0 / all 1 described as such
    expect_matches(flat, right, "the adversarial sources", mistakes, hint=hint, code=code, reference=reference)
    loss_fn, init = probes.final_probe(N_STEPS, STEP_SIZE, device)  # an ascent that oscillates: best ≠ final
    out = torch.cat([torch.as_tensor(o).flatten() for o in adversarial_sources(loss_fn, init, N_STEPS, STEP_SIZE)])
    right = torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, N_STEPS, STEP_SIZE)])
    best = torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, N_STEPS, STEP_SIZE, "best_seen")])
    hint = "return the sources after the last step, not the ones with the highest loss seen along the way"
    what = "the adversarial sources on a loss whose ascent overshoots its maximum (so the last step lowers it)"
    expect_matches(
        out,
        right,
        what,
        [("best_seen", hint, best)],
        hint="each step: r = clamp(r + step_size * sign(∂loss/∂r), 0, 1)",
        reference=call(sol.adversarial_sources, loss_fn, init, N_STEPS, STEP_SIZE, pick=flatten),
    )
    loss_fn, init = probes.coupled_probe(device)  # sources coupled: updated together or one after the other
    out = torch.cat([torch.as_tensor(o).flatten() for o in adversarial_sources(loss_fn, init, N_STEPS, STEP_SIZE)])
    expect_matches(
        out,
        torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, N_STEPS, STEP_SIZE)]),
        "the adversarial sources on a loss that couples three sources, -(s0 + s1 + s2 - 1)²",
        behaviour.coupled_mistakes(loss_fn, init, N_STEPS, STEP_SIZE),
        hint="each step: r = clamp(r + step_size * sign(∂loss/∂r), 0, 1), for every source from the same gradients",
        reference=call(sol.adversarial_sources, loss_fn, init, N_STEPS, STEP_SIZE, pick=flatten),
    )
    outputs.adversarial_gradient_probes(adversarial_sources, N_STEPS, STEP_SIZE, device)
    return f"{N_STEPS} steps of projected sign-gradient ascent"
