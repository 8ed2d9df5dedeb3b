"""More inputs, mutants and behavioural probes for part 8's checkers (`tests.part8_parameter_decomposition`).

The checker and catalogue files are near the 800-line limit, so what the seventh fresh held-out measurement
asked for lives here: generic inputs where no two sizes coincide (K = 5 ablated terms, L = 4 matrices in the
faithfulness and reconstruction losses, 3 instances, a batch of 7, a tall matrix for the SVD), the mutants those
inputs now tell apart, and probes that observe a behaviour instead of matching one mutant (hidden units that
don't reach the output, moves off the lattice of whole steps, sources updated one after the other). The eighth
added: size errors named by the layer the chain was running or the sizes that met, a count other than d_out,
the delta mask's shape from the wrong end of g's, two calls of sample_masks compared, a loss with a zero gradient.
The ninth added mutants (a baseline from the terms' sum, norms added before squaring, a difference of squared norms,
a mean error squared, masked products reading the unmasked run, eps in the exponent); its behavioural probes are in
`tests.part8_parameter_decomposition_behaviour`.
"""

from __future__ import annotations

import itertools
import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_bias_places as bias_places
from tests import part8_parameter_decomposition_call_probes as call_probes
from tests import part8_parameter_decomposition_cross_draws as cross_draws
from tests import part8_parameter_decomposition_gelu_places as gelu_places
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_product_pairs as product_pairs
from tests import part8_parameter_decomposition_product_slips as product_slips
from tests import part8_parameter_decomposition_readings as readings
from tests import part8_parameter_decomposition_structure_slips as structure
from tests import part8_parameter_decomposition_variants as variants
from tests.checking import CheckFailed, _describe_error, _is_learner_frame
from tests.part8_parameter_decomposition_diagnosis import common_factor
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def _randn(*shape: int, seed: int, scale: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale).to(device)


def _rand(*shape: int, seed: int, low: float = 0.0, high: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    return (low + (high - low) * torch.rand(shape, generator=torch.Generator().manual_seed(seed))).to(device)


# --------------------------------------------------------------------------------------------
# svd_terms: a tall matrix (d_out > d_in), where a loop over d_out runs past the r = d_in terms
# --------------------------------------------------------------------------------------------
def call_naming_term_count(fn: Callable, W: Tensor) -> Any:
    """fn(W); an index past the r = min(d_out, d_in) singular values, raised in the learner's code, says so."""
    try:
        return call_probes.fixed_term_count(fn, W, fn(W))  # a count of terms that never follows W, named
    except IndexError as err:
        _, d_out, d_in = W.shape
        r = min(d_out, d_in)
        past = re.search(r"index (\d+) is out of bounds for dimension \d+ with size (\d+)", str(err))
        frames = traceback.extract_tb(err.__traceback__)
        if not past or int(past[2]) != r or d_out == d_in or not any(_is_learner_frame(f.filename) for f in frames):
            raise
        big, axis = ("d_out", 1) if d_out > d_in else ("d_in", 2)
        raise CheckFailed(
            _describe_error(err).message,
            f"W is {'tall' if d_out > d_in else 'wide'} here (d_out = {d_out}, d_in = {d_in}): there are r = "
            f"min(d_out, d_in) = {r} singular values and terms, and index {past[1]} runs past them: a count of terms "
            f"taken from {big} = W.shape[{axis}] alone (range(W.shape[{axis}]))? Use r = min(W.shape[-2:])",
            code="term_count",
        ) from None


# --------------------------------------------------------------------------------------------
# ablation_losses: K = 5 terms (with 2, removing all the others is removing the other one: a permutation)
# --------------------------------------------------------------------------------------------
def ablation_mistakes(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    original, W0, K = chain(x), chain.weights[0], terms.shape[1]

    def losses(first: Callable[[int], Tensor], reduce=lambda d: d.pow(2).mean(-1), base: Tensor = original) -> Tensor:
        out = [reduce(mis.run_with_first(chain, first(k), x) - base) for k in range(K)]
        return torch.stack(out).permute(2, 0, 1)

    summed = mis.run_with_first(chain, terms.sum(1), x)
    return [
        (
            "baseline_from_terms",
            "y_original is the model's own output, chain(x), with W_0 itself: the run with W_0 replaced by Σ_k T_k "
            "is the decomposed model, and the terms you are given need not add up to W_0",
            losses(lambda k: W0 - terms[:, k], base=summed),
        ),
        (
            "remove_others",
            "ablate term k alone: W_0 - T_k; W_0 - Σ_{j≠k} T_j removes every other term and keeps T_k",
            losses(lambda k: W0 - (terms.sum(1) - terms[:, k])),
        ),
        (
            "instance_0_terms",
            "every instance has its own terms: remove terms[:, k] (instance i gets terms[i, k]), not terms[0, k]",
            losses(lambda k: W0 - terms[0, k]),
        ),
        *(
            (
                "instances_mixed_terms",
                f"every instance removed the {how} of term k over the instances ({code}): instance i removes its own "
                "term, W_0[i] - terms[i, k] (W_0 - terms[:, k], keeping the inst axis)",
                losses(lambda k, f=f: W0 - f(terms[:, k])),
            )
            for how, code, f in (
                ("sum", "terms[:, k].sum(0)", lambda t: t.sum(0)),
                ("mean", "terms[:, k].mean(0)", lambda t: t.mean(0)),
            )
        ),
        *variants.zero_output(losses(lambda k: W0 - terms[:, k]), "your losses are", variants.ABLATION_ZERO),
    ]


def _chain_layer(err: BaseException) -> int | None:
    """The matrix l the chain was running (WeightChain.run's `layer`) when `err` was raised, if it was."""
    tb, layer = err.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "run" and isinstance(frame.f_locals.get("self"), WeightChain):
            layer = frame.f_locals.get("layer")
        tb = tb.tb_next
    return layer if isinstance(layer, int) else None


def call_naming_layer(fn: Callable, chain: WeightChain, terms: Tensor, x: Tensor) -> Any:
    """fn(chain, terms, x); a size error raised in the learner's code says which matrix the chain was running (a
    matrix shaped like W_0 used at another layer: the layer counted from 1) or which sizes met (the output's d_out
    and the input's d_in: the ablated output compared with x). The chain's sizes all differ, so the sizes in the
    error say which tensors met."""
    try:
        return fn(chain, terms, x)
    except RuntimeError as err:
        if not any(_is_learner_frame(f.filename) for f in traceback.extract_tb(err.__traceback__)):
            raise
        numbers = {int(n) for n in re.findall(r"\d+", str(err))}
        layer, (d_out0, d_in) = _chain_layer(err), chain.weights[0].shape[1:]
        d_out = chain.weights[-1].shape[-2]
        message = _describe_error(err).message
        if layer is not None and layer > 0:
            own = chain.weights[layer].shape[1:]
            seen = f"your code failed while the chain ran matrix l = {layer} ([d_out {own[0]}, d_in {own[1]}])"
            if (numbers & {d_out0, d_in}) - set(own):
                raise CheckFailed(
                    message,
                    f"{seen}, on a size of the first matrix W_0 [d_out {d_out0}, d_in {d_in}]: the ablated matrix "
                    f"W_0 - T_k went in at l == {layer}? It replaces the first matrix, l == 0 (the chain counts its "
                    "matrices from 0); every other l uses chain.weights[l]",
                    code="ablated_layer",
                ) from None
            raise CheckFailed(
                message,
                f"{seen}: layer_fn(l, a) gets the activation matrix l multiplies ([batch inst {own[1]}] here) and "
                "returns a @ W_lᵀ with W_l = chain.weights[l] for every l but 0 (W_0 - T_k at l == 0)",
                code="layer_fn",
            ) from None
        if layer is None and {d_in, d_out} <= numbers:
            raise CheckFailed(
                message,
                f"sizes {d_out} (the chain's output dims, d_out) and {d_in} (the input's d_in) met: the ablated output "
                "compared with the input x instead of the original output chain(x)?",
                code="vs_input",
            ) from None
        call_probes.other_matrix_clash(err, chain, terms)  # a term combined with another matrix: named
        raise


def kept_output_dims(out: Any, chain: WeightChain, shape: tuple[int, ...], dims: str) -> None:
    """Fails when the output kept the chain's output dims (d_out, a size nothing else has) and lost one asked axis:
    the mean was taken over that axis instead of the output dims."""
    d_out = chain.weights[-1].shape[-2]
    if not isinstance(out, Tensor) or out.ndim != len(shape) or d_out not in out.shape or d_out in shape:
        return
    lost = [(name, n) for name, n in zip(dims.split(), shape, strict=True) if n not in out.shape]
    if len(lost) == 1:
        name, n = lost[0]
        raise CheckFailed(
            f"your output has shape {tuple(out.shape)}, expected {shape} [{dims}]: it still has the d_out = {d_out} "
            f"output dims, and the `{name}` axis ({n}) is gone",
            f"the mean (or an index) went over `{name}` instead of the output dims: reduce the squared change over "
            "its last axis, (ablated - chain(x)).pow(2).mean(-1)",
            code="reduced_wrong_axis",
        )


def count_mistakes(out: Tensor, right: Tensor, chain: WeightChain, x: Tensor, known: list[Tensor]) -> Mistakes:
    """The losses scaled by d_out / n: the sum over the output dims divided by another count n of the inputs (their
    sizes all differ, so n says which), when no catalogued mistake fits."""
    c = common_factor(out, right)
    if c is None or c <= 0 or any(k.shape == out.shape and torch.allclose(out, k, 1e-4, 1e-5) for k in known):
        return []
    d_out, n = chain.weights[-1].shape[-2], chain.weights[-1].shape[-2] / c
    counts = {"x.shape[-1], the input's d_in": x.shape[-1], "the batch": x.shape[0], "the K terms": right.shape[1]}
    counts |= {f"the width of layer {n_} ({W.shape[-2]})": W.shape[-2] for n_, W in enumerate(chain.weights[:-1])}
    counts["d_out - 1 (an unbiased-variance reflex, or a divisor off by one)"] = d_out - 1  # 6: no size of the inputs
    named = [what for what, size in counts.items() if abs(n - size) < 1e-3 * size]
    if len(named) != 1:
        return []
    return [
        (
            "wrong_count",
            f"your losses are {c:.4g} × the expected ones: the sum over the d_out = {d_out} output dims divided by "
            f"{round(n)} = {named[0]} instead of d_out: take the mean over the output's last axis (.mean(-1), or "
            "divide by chain(x).shape[-1])",
            out,
        )
    ]


def ablation_hint(out: Tensor, right: Tensor, original: Tensor) -> tuple[str, str]:
    """(code, hint) when no mutant fits: losses far beyond any squared change of the output say a division by
    something that can be 0 (the chain's final ReLU zeroes half its outputs); otherwise both places to look."""
    top, biggest = float(right.abs().max()), float(out.detach().abs().nan_to_num(float("inf")).max())
    if biggest > 1e3 * top:
        zeros = int((original == 0).sum())
        seen = (
            f" ({zeros} of the {original.numel()} original outputs are 0 here, after the final ReLU: a change "
            "relative to the original output blows up there)"
            if zeros
            else ""
        )
        return "blows_up", (
            f"your losses reach {biggest:.3g}, while no squared change of the output here exceeds {top:.3g}: a "
            f"division by something that can be 0 or tiny?{seen} The loss is the plain mean over output dims of "
            "(ablated - chain(x))²"
        )
    return "values", (
        "each loss is the mean over output dims of (ablated - chain(x))², where the ablated run has W_0 - terms[:, k] "
        "as its first matrix and every other matrix and bias unchanged: check both the ablated run and this reduction"
    )


# --------------------------------------------------------------------------------------------
# faithfulness_loss: L = 4 matrices of different sizes, 3 instances (a factor 1/2 is neither)
# --------------------------------------------------------------------------------------------
FAITH_SHAPES = [(2, 5), (6, 2), (3, 4), (5, 3)]


def faithfulness_inputs(device: torch.device | str = "cpu") -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """L = 4 matrices of different sizes (so a mean of per-matrix means differs from the global mean), 3 instances,
    7 subcomponents: no two of the counts a learner might divide by coincide."""
    weights = [_randn(3, o, i, seed=30 + n, device=device) for n, (o, i) in enumerate(FAITH_SHAPES)]
    U = [_randn(3, o, 7, seed=40 + n, scale=0.5, device=device) for n, (o, _) in enumerate(FAITH_SHAPES)]
    V = [_randn(3, 7, i, seed=50 + n, scale=0.5, device=device) for n, (_, i) in enumerate(FAITH_SHAPES)]
    return weights, U, V


def faithfulness_counts(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> tuple[int, dict[str, int]]:
    """N (the entries of one instance's matrices) and the counts a learner might divide by instead, named."""
    n_w = sum(W[0].numel() for W in weights)
    n_uv = sum(u[0].numel() + v[0].numel() for u, v in zip(U, V, strict=True))
    counts = {
        "the entries of U_l and V_l": n_uv,
        "the entries of W_l, U_l and V_l": n_w + n_uv,
        "the entries of U_l and V_l over all instances": 3 * n_uv,
        "the number of matrices": len(weights),
        "Σ_l (d_out + d_in): each matrix's sizes added where the entries are their product d_out · d_in": sum(
            W.shape[-1] + W.shape[-2] for W in weights
        ),
    }
    ones: dict[int, list[str]] = {}  # one matrix's entries only (N taken inside the loop, or from weights[0])
    for n, W in enumerate(weights):
        which = {0: "the first matrix", len(weights) - 1: "the last matrix"}.get(n, f"matrix {n}")
        ones.setdefault(W[0].numel(), []).append(f"{which} (weights[{n}][0].numel())")
    largest = max(W[0].numel() for W in weights)  # a max over the matrices gives the same count: name it too
    ones[largest].append("the largest matrix (max over l of weights[l][0].numel())")
    for size, which in ones.items():
        counts.setdefault(f"the entries of {' or '.join(which)} only, not of all matrices together", size)
    return n_w, counts


def faithfulness_mistakes(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    deltas = torch.cat([(W - u @ v).flatten(1) for W, u, v in zip(weights, U, V, strict=True)], 1)  # [inst N]
    hint = (
        "the loss is the mean of the squared entries of W - U V, not their variance: don't subtract their mean "
        "(torch.var and torch.std centre the values first)"
    )
    per_instance = deltas.pow(2).sum(1) / deltas.shape[1]
    one = (
        "your value is instance {}'s loss alone: every instance is its own decomposition, sum the loss over all of "
        "them (W - U @ V on the whole [inst d_out d_in] tensors; only N counts one instance's entries, W[0].numel())"
    )
    extreme = (
        "your value is the {} instance's loss (instance {}): a .{}() over the instances where .sum() belongs? "
        "Every instance is its own decomposition: sum their losses"
    )
    extremes = [("max", "largest", per_instance.max(0)), ("min", "smallest", per_instance.min(0))]
    norms = sum(torch.linalg.matrix_norm(W - u @ v) for W, u, v in zip(weights, U, V, strict=True))  # [inst]
    squares = lambda ts: sum(t.pow(2).sum((-2, -1)) for t in ts)
    n = deltas.shape[1]
    before = (  # each delta reduced over the instances before it is squared: one decomposition, not n_inst
        "your value is the loss of W - U V {} over the instances before squaring: every instance is its own "
        "decomposition; square each instance's entries of W_l - U_l V_l, divide by N, then sum over instances"
    )
    reduced = lambda reduce: sum(reduce(W - u @ v).pow(2).sum() for W, u, v in zip(weights, U, V, strict=True)) / n
    return [
        ("reduced_before_square", before.format("averaged"), reduced(lambda d: d.mean(0))),
        ("reduced_before_square", before.format("summed"), reduced(lambda d: d.sum(0))),
        (
            "norms_summed",
            "square each matrix's norm, then add: Σ_l ‖W_l - U_l V_l‖², not (Σ_l ‖W_l - U_l V_l‖)² (the norms added "
            "before squaring)",
            (norms.pow(2) / n).sum(),
        ),
        (
            "norm_difference",
            "the loss is the squared norm of the difference, ‖W - U V‖², not the difference of the squared norms "
            "‖W‖² - ‖U V‖²",
            ((squares(weights) - squares([u @ v for u, v in zip(U, V, strict=True)])) / n).sum(),
        ),
        ("variance", hint, deltas.var(1, unbiased=False).sum()),
        ("variance", hint, deltas.var(1, unbiased=True).sum()),
        *[("one_instance", one.format(i), loss) for i, loss in enumerate(per_instance)],
        *[("one_instance", extreme.format(w, int(at), f), v) for f, w, (v, at) in extremes],  # same as an index
    ]


# --------------------------------------------------------------------------------------------
# CausalImportance: an extra GELU, and hidden units that never reach the output
# --------------------------------------------------------------------------------------------
def ci_mistakes(p: dict[str, Tensor]) -> Mistakes:
    """Forward values of the lower output (clamp(z, 0, 1) in the forward pass)."""
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])
        z = (F.gelu(h[..., None] * p["w_in"] + p["b_in"]) * p["w_out"]).sum(-1) + p["b_out"]
        hint = (
            "GELU goes on the hidden layer only: z = Σ_j w_out GELU(w_in h + b_in) + b_out goes straight into the "
            "hard sigmoids, without a second GELU on the MLP's output"
        )
        after = (F.gelu(h[..., None] + p["b_in"]) * p["w_in"] * p["w_out"]).sum(-1) + p["b_out"]
        w_in = "w_in multiplies h inside the GELU: GELU(w_in h + b_in), not GELU(h + b_in) · w_in (after it)"
        residual = "z = MLP(h) + h: no residual (skip) connection: z = Σ_j w_out GELU(w_in h + b_in) + b_out alone"
        return [
            ("gelu_twice", hint, F.gelu(z).clamp(0, 1)),
            ("w_in_after_gelu", w_in, after.clamp(0, 1)),
            ("residual", residual, (z + h).clamp(0, 1)),
            *gelu_places.ci_weight_places(p),  # w_out inside the GELU
            *bias_places.ci_bias_places(p),  # b_out on h, inside or after the GELU (moved, or added twice)
            *structure.ci_slips(p),  # b_in multiplied
        ]


def unused_hidden_units(module: torch.nn.Module, total: Tensor) -> tuple[str, str] | None:
    """(code, hint) when some hidden units j of the MLPs get no gradient at all (w_in[..., j] and w_out[..., j])
    while others do: the output doesn't depend on them (a loop over fewer than d_ci units, a slice)."""
    try:
        g_in, g_out = torch.autograd.grad(total, [module.w_in, module.w_out], retain_graph=True, allow_unused=True)
    except RuntimeError:
        return None
    if g_in is None or g_out is None:
        return None
    used = (g_in.flatten(0, -2).abs().sum(0) > 0) | (g_out.flatten(0, -2).abs().sum(0) > 0)  # [d_ci]
    if bool(used.all()) or not bool(used.any()):
        return None
    unused, d_ci, n_used = [int(j) for j in (~used).nonzero().flatten()], used.numel(), int(used.sum())
    sizes = {module.w_in.shape[-2]: "the C subcomponents, w_in.shape[1]", d_ci - 1: "one short, range(d_ci - 1)"}
    why = f" ({n_used} units: {sizes[n_used]}?)" if n_used in sizes and bool(used[:n_used].all()) else ""
    return "unused_hidden_units", (
        f"hidden units {unused} of the d_ci = {d_ci} get no gradient: your output doesn't depend on them. Sum over "
        f"all d_ci hidden units (w_in.shape[-1] = {d_ci}), not over a smaller range{why}"
    )


# --------------------------------------------------------------------------------------------
# sample_masks: the delta mask's shape taken from the wrong end of g's; the same draws on every call
# --------------------------------------------------------------------------------------------
def delta_shape_slip(deltas: list[Any], ci: list[Tensor]) -> None:
    """Fails when a delta mask has the shape of another slice of its importances' shape than g.shape[:-1]."""
    slices = {"g.shape[1:], [inst C]": (1, None), "g.shape, [batch inst C]": (0, None), "g.shape[:1], [batch]": (0, 1)}
    slices |= {"g.shape[-1:], [C]": (-1, None), "g.shape[1:2], [inst]": (1, 2)}
    for layer, (d, g) in enumerate(zip(deltas, ci, strict=True)):
        if not isinstance(d, Tensor) or d.shape == g.shape[:-1]:
            continue
        named = [what for what, (lo, hi) in slices.items() if d.shape == g.shape[lo:hi]]
        if len(named) == 1:
            raise CheckFailed(
                f"delta mask {layer} has shape {tuple(d.shape)}: {named[0]}, expected {tuple(g.shape[:-1])}, "
                "g.shape[:-1], [batch inst]",
                "one delta mask per example and instance: drop the last axis (C) of g's shape, "
                f"torch.rand(g.shape[:-1]) (or torch.rand_like(g[..., 0])), not {named[0].split(',')[0]}",
                code="delta_shape",
            )


def check_fresh_draws(sample_masks: Callable, device: Any, rs: list[Tensor], deltas: list[Tensor]) -> None:
    """Fails when two calls return the same masks or delta masks: a seed set inside the function; then the draws
    paired along the batch (`rs`, `deltas`: the main call's) and a float64 call."""
    variants.batch_mean_spread(rs, [d.detach() for d in deltas])
    cross_draws.delta_from_other_matrix(rs, deltas)  # delta l taken from matrix m's draws (m ≠ l)
    ci = [torch.full((5, 2, 3), 0.25, device=device), torch.full((5, 2, 2), 0.6, device=device)]
    first, second = sample_masks(ci), sample_masks(ci)
    for n, what in enumerate(("masks", "delta masks")):
        if all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(first[n], second[n], strict=True)):
            raise CheckFailed(
                f"two calls of sample_masks on the same importances returned the same {what}",
                "every call must draw new random numbers (each training step tests new masks): don't set a seed "
                "inside the function (torch.manual_seed, or a torch.Generator seeded there); seed once, outside",
                code="same_every_call",
            )
    variants.masks_float64(sample_masks, device)


# --------------------------------------------------------------------------------------------
# masked_product: a binary mask, the delta mask applied twice
# --------------------------------------------------------------------------------------------
def product_mistakes(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        return [
            *structure.product_slips(p),  # the delta added like a bias
            *product_pairs.product_pairs(p),  # a mask slip and a delta slip at once
            (
                "mask_thresholded",
                "use the mask's value itself (in [0, 1], and it carries gradient), not a 0/1 threshold (mask > 0.5)",
                mis.product_reference({**p, "mask": (p["mask"] > 0.5).to(p["mask"].dtype)}),
            ),
            (
                "delta_mask_twice",
                "your delta term is scaled by delta_mask² (applied to a and to the output, or twice): apply it once, "
                "delta_mask · (W - U V) a",
                mis.product_reference({**p, "delta_mask": p["delta_mask"] ** 2}),
            ),
            (
                "delta_uv",
                "your delta term is delta_mask · U V a: the delta is what U V misses of W, delta_mask · (W - U V) a",
                mis.product_reference({**p, "delta_mask": 0 * p["delta_mask"]})
                + p["delta_mask"][..., None] * mis.mm(p["a"], p["U"] @ p["V"]),
            ),
            *_first_slices(p),
        ]


def _first_slices(p: dict[str, Tensor]) -> Mistakes:
    """The mask or delta mask of example 0 (or instance 0) used for every example (or instance)."""
    out = []
    for key, (axis, name) in itertools.product(("mask", "delta_mask"), ((0, "example"), (1, "instance"))):
        first = p[key].narrow(axis, 0, 1).expand_as(p[key])
        index = "[0]" if axis == 0 else "[:, 0]"
        hint = (
            f"every {name} has its own {key.replace('_', ' ')}: use all of {key} ([batch inst ...], broadcast "
            f"against the activations), not {key}{index} ({name} 0's) for every {name}"
        )
        out.append((f"{key}_first_{name}", hint, mis.product_reference({**p, key: first})))
    return out


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: L = 4 matrices, 3 instances, a batch of 7, 5 output dims
# --------------------------------------------------------------------------------------------
RECON_DIMS, RECON_BATCH, RECON_C, RECON_INST = [10, 9, 8, 2, 10], 7, 6, 12


def recon_inputs(device: torch.device | str = "cpu") -> tuple[WeightChain, dict[str, list[Tensor]], Tensor]:
    """12 instances, L = 4 matrices 10 -> 9 -> 8 -> 2 -> 10, a batch of 7, 6 subcomponents per matrix that don't add
    up to W (a non-zero delta): the counts a loss might be divided by all differ, L ± 1 included."""
    d, L, inst = RECON_DIMS, len(RECON_DIMS) - 1, RECON_INST
    weights = [_randn(inst, d[n + 1], d[n], seed=10 + n, scale=0.8, device=device) for n in range(L)]
    biases = [_randn(inst, d[n + 1], seed=20 + n, scale=0.3, device=device) + 0.1 for n in range(L)]
    chain = WeightChain(weights, biases, ["relu", "gelu", "relu", "gelu"], [f"W{n}" for n in range(L)])
    C, B = RECON_C, RECON_BATCH
    p = {
        "U": [_randn(inst, d[n + 1], C, seed=100 + n, scale=0.6, device=device) for n in range(L)],
        "V": [_randn(inst, C, d[n], seed=110 + n, scale=0.6, device=device) for n in range(L)],
        "masks": [_rand(B, inst, C, seed=120 + n, low=0.05, high=0.95, device=device) for n in range(L)],
        "delta_masks": [_rand(B, inst, seed=130 + n, low=0.05, high=0.95, device=device) for n in range(L)],
    }
    return chain, p, _rand(B, inst, d[0], seed=140, device=device)


def recon_mistakes(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor, right: Tensor) -> Mistakes:
    with torch.no_grad():
        L = len(chain.weights)
        masked = mis.masked_run(chain, p, x, set(range(L)))[0]
        runs = [mis.masked_run(chain, p, x, {n})[0] for n in range(L)]
        vs_full = sum((y - masked).pow(2).mean((0, 2)).sum() for y in runs) / L
        hint = (
            "compare each single-matrix run with the original model's output chain(x), not with the run where every "
            "matrix is masked"
        )
        mixed = lambda d: d.sum(1).pow(2).mean()
        act = lambda layer, t: F.relu(t) if chain.activations[layer] == "relu" else F.gelu(t)
        twice = (
            "layer_fn returns the product alone (the masked product, or W_l a): the chain adds the bias and applies "
            "the layer's activation itself, so an activation inside layer_fn comes before the bias, on top of the "
            "chain's own"
        )
        mix = (
            "square each instance's error, then sum the per-instance losses: the instances are separate models, and "
            "summing their errors before squaring, (Σ_inst d)², mixes them; the loss is Σ_inst mean_(batch, d_out) d²"
        )
        square = (
            "square each error, then average: the MSE is mean(d²) over output dims and batch, not the square of a mean "
            "error (mean(d)², where errors of opposite signs cancel)"
        )
        early = [
            lambda d: d.mean((0, 2)).pow(2).sum(),
            lambda d: d.mean(0).pow(2).mean(-1).sum(),
            lambda d: d.mean(-1).pow(2).mean(0).sum(),
        ]
        cached = (  # reading the unmasked run's inputs makes the full run's output the last single-matrix run's
            f"your full loss equals the loss of the run with only the last matrix (matrix {L - 1}) masked; two "
            "mistakes give exactly that: the full loss computed from the last single-matrix run's output (a "
            "variable such as `out` reused, or overwritten, in the layerwise loop), or each masked product reading "
            "the unmasked run's activation (chain.run(x)'s inputs) instead of the `a` that layer_fn receives in this "
            "run (with every matrix masked, matrix l's input is what the masked matrices before it produced)"
        )
        one_run = lambda n: (
            f"your full loss is the loss of the run with only matrix {n} masked: compute it from the run where every "
            "matrix is masked (its own output, not a single-matrix run's output left in a reused variable)"
        )
        found = [
            ("layerwise_vs_masked", hint, torch.stack([right[0], vs_full])),
            ("activation_in_layer_fn", twice, _recon_losses(chain, p, x, wrap=lambda layer, t: F.relu(t))),
            ("activation_in_layer_fn", twice, _recon_losses(chain, p, x, wrap=act)),
            ("instances_summed_first", mix, _recon_losses(chain, p, x, reduce=mixed)),
            *[("mean_then_square", square, _recon_losses(chain, p, x, reduce=r)) for r in early],
            ("unmasked_inputs", cached, _recon_losses(chain, p, x, cached=True)),
            *[("full_from_one_run", one_run(n), _recon_losses(chain, p, x, full={n})) for n in range(L - 1)],
        ]
        return found + product_slips.recon_product_slips(chain, p, x, found)  # masked_product's slips, carried


def _recon_losses(
    chain: WeightChain,
    p: dict[str, list[Tensor]],
    x: Tensor,
    wrap=None,
    reduce=None,
    cached: bool = False,
    full: set[int] | None = None,
) -> Tensor:
    """(full, layerwise) with layer_fn's products passed through wrap(l, product), or another reduction, or the
    masked products reading the unmasked run's activations (`cached`), or the full loss taken from the run that
    masks only the matrices in `full`."""
    (target, inputs), L = chain.run(x), len(chain.weights)
    reduce = reduce or (lambda d: d.pow(2).mean((0, 2)).sum())

    def loss(layers: set[int]) -> Tensor:
        def layer_fn(layer: int, a: Tensor) -> Tensor:
            a = inputs[layer] if cached and layer in layers else a
            q = {"a": a, "W": chain.weights[layer], "U": p["U"][layer], "V": p["V"][layer]}
            q |= {"mask": p["masks"][layer], "delta_mask": p["delta_masks"][layer]}
            out = mis.product_reference(q) if layer in layers else mis.mm(a, chain.weights[layer])
            return wrap(layer, out) if wrap else out

        return reduce(chain(x, layer_fn) - target)

    return torch.stack([loss(full if full is not None else set(range(L))), sum(loss({n}) for n in range(L)) / L])


def one_loss_off(got: Tensor, right: Tensor, counts: dict[str, int], L: int) -> tuple[str, str]:
    """(code, hint) when one of (full, layerwise) is right and the other is not, and no mutant fits: a divisor
    other than L for the layerwise mean when the ratio says which, else what was observed and the contract."""
    off = 0 if not torch.allclose(got[0], right[0], rtol=1e-4, atol=1e-5) else 1
    ratio = float(got[off] / right[off]) if float(right[off]) != 0 else float("nan")
    if off == 1 and ratio > 0:
        counts = {**counts, f"L - 1 = {L - 1}, an off-by-one": L - 1, f"L + 1 = {L + 1}, an off-by-one": L + 1}
        n = L / ratio  # the layerwise sum over the L runs, divided by n instead of L
        named = [what for what, c in counts.items() if abs(n - c) < 1e-3 * c]
        if named:
            return "layerwise_divisor", (
                f"your layerwise loss is the sum of the L = {L} single-matrix losses divided by {round(n)} "
                f"({' or '.join(named)}): average over the L matrices, divide by len(chain.weights) = {L}"
            )
    if off == 0:
        return "full_loss", (
            f"your layerwise loss is right but the full one is not ({ratio:.4g} × the expected): the full run masks "
            "every matrix at once (each with its own masks[l] and delta_masks[l]) and compares with chain(x) by the "
            "same MSE"
        )
    return "layerwise_loss", (
        f"your full loss is right but the layerwise one is not ({ratio:.4g} × the expected; not the right sum over "
        f"the L = {L} runs divided by {sorted({1, L - 1, L + 1, *counts.values()} - {L})} instead of L, nor the runs "
        "compared with the masked full output: those were read back). The layerwise loss is the mean over l of "
        "the L runs that mask matrix l alone (masks[l], delta_masks[l], every other matrix plain), each compared "
        "with the original output chain(x) by the same MSE"
    )


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: the power distributed, or taken after the sum per matrix
# --------------------------------------------------------------------------------------------
def minimality_mistakes(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        distributed = sum((g.pow(p) + eps**p).sum(-1) for g in ci).mean(0).sum()
        per_matrix = sum((g + eps).sum(-1).pow(p) for g in ci).mean(0).sum()
        precedence = sum((g + eps**p).sum(-1) for g in ci).mean(0).sum()
        in_exponent = sum(g.pow(p + eps).sum(-1) for g in ci).mean(0).sum()
    return [
        *structure.minimality_slips(ci, p, eps),  # max over the matrices
        (
            "eps_in_exponent",
            "eps goes into the base, not the exponent: (g + eps) ** p, not g ** (p + eps) (parentheses around the "
            "wrong sum?)",
            in_exponent,
        ),
        (
            "pow_distributed",
            "(g + eps)^p is not g^p + eps^p (a power doesn't distribute over a sum): add eps first, then raise",
            distributed,
        ),
        (
            "p_outside",
            "raise each importance to the power p, then sum: Σ_c (g + eps)^p, not (Σ_c (g + eps))^p",
            per_matrix,
        ),
        (
            "precedence",
            "operator precedence: g + eps ** p raises eps alone (** binds tighter than +); write (g + eps) ** p",
            precedence,
        ),
    ]


# --------------------------------------------------------------------------------------------
# adversarial_sources: moves off the lattice of whole steps; sources updated one after the other
# --------------------------------------------------------------------------------------------
def adversarial_inputs(device: torch.device | str = "cpu") -> tuple[Callable[[list[Tensor]], Tensor], list[Tensor]]:
    """A loss whose gradient changes sign along the way (so the path matters) and sources near both bounds."""
    c0, w0 = _randn(5, 3, seed=160, device=device), _randn(5, 3, seed=161, device=device)
    t0 = torch.tensor([0.04, 0.5, 0.95], device=device)  # maxima near the bounds: a step overshoots and comes back
    t1 = _rand(5, seed=162, low=0.88, high=0.97, device=device)
    w1 = _rand(5, seed=163, low=0.5, high=2.0, device=device)

    def loss_fn(s: list[Tensor]) -> Tensor:
        return (
            0.2 * (torch.sin(4 * s[0] + c0) * w0).sum()
            - 3 * (s[0] - t0).pow(2).sum()
            - 3 * ((s[1] - t1).pow(2) * w1).sum()
            + 0.05 * (s[0].sum(-1) * s[1]).sum()
        )

    init = [
        _rand(5, 3, seed=164, low=0.05, high=0.95, device=device),
        _rand(5, seed=165, low=0.05, high=0.95, device=device),
    ]
    init[0][4, 2] = 0.9  # source 0 too overshoots 1 and comes back: a per-step clamp skipped on any one source shows
    return loss_fn, init


def adversarial_mistakes(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    """The loss (and its gradient) read at clamp(r) while the iterate r itself is never projected, only on return."""
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn([t.clamp(0, 1) for t in leaves]), leaves)
        s = [(t + step * g.sign()).detach() for t, g in zip(leaves, grads, strict=True)]
    hint = (
        "sources that reached 0 or 1 stayed there although the gradient later pointed back into [0, 1]: sources at "
        "a bound frozen (left out of the update once at 0 or 1, a where((r > 0) & (r < 1), ...) mask), or the loss "
        "read at clamp(r) while r itself left [0, 1] (the clamp's zero gradient there; clamping on return doesn't "
        "undo the steps taken outside)? Every step moves every source: r = clamp(r + step_size · sign(∂loss/∂r), 0, 1)"
    )
    unit = (
        "your sources are where steps of size 1 put them (each step moved every entry to an end of [0, 1]): the step "
        "is step_size · sign(∂loss/∂r), with step_size outside the sign; (step_size * g).sign() is sign(g) itself, "
        "the step_size lost inside it (or a step of 1 written where step_size belongs)"
    )
    ones = torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, n_steps, 1.0)])
    found = [("clamp_in_loss", hint, torch.cat([t.clamp(0, 1).flatten() for t in s])), ("unit_steps", unit, ones)]
    return found + readings.partial_clamp(loss_fn, init, n_steps, step)


def zero_gradient_probe(adversarial_sources: Callable, n_steps: int, step: float, device: Any) -> None:
    """A loss that doesn't depend on its second source (a mask whose importance is 1), 0 · s1: that source's
    gradient is exactly 0, its sign 0, and it must stay where it started."""
    loss_fn = lambda s: -(s[0] - 0.3).pow(2).sum() + 0.0 * s[1].sum()
    init = [torch.tensor([0.5, 0.62], device=device), torch.tensor([0.4, 0.7], device=device)]  # s0 never hits 0.3
    out = [torch.as_tensor(o).detach() for o in adversarial_sources(loss_fn, init, n_steps, step)]
    bad = [n for n, o in enumerate(out) if not torch.isfinite(o).all()]
    if bad:
        raise CheckFailed(
            "on a loss whose gradient is exactly 0 for sources[1] (0 · s1: a mask whose importance is 1), "
            f"{' and '.join(f'sources[{n}]' for n in bad)} came back with NaN entries",
            "sign(0) is 0, so an entry with a zero gradient doesn't move; g / g.abs() (or g / |g|) is 0 / 0 = NaN "
            "there: use g.sign() (torch.sign)",
            code="nan_at_zero_gradient",
        )
    if not torch.equal(out[1], init[1]):
        raise CheckFailed(
            f"on a loss whose gradient is exactly 0 for sources[1] (0 · s1), sources[1] moved from {init[1].tolist()} "
            f"to {out[1].tolist()}",
            "an entry whose gradient is 0 doesn't move: sign(0) = 0 (torch.sign), not +1 or -1",
            code="moves_at_zero_gradient",
        )
    variants.adversarial_float64(adversarial_sources, loss_fn, init, n_steps, step)


def final_probe(n_steps: int, step_size: float, device: Any) -> tuple[Callable, list[Tensor]]:
    """A loss whose sign ascent oscillates around its maxima: from 0.5, steps of step_size overshoot targets
    0.5 + 2/3 step_size, so the final sources (after an even number of steps) are not the best ones seen."""
    t = 0.5 + step_size * torch.tensor([2 / 3, -2 / 3, 0.6], device=device)
    loss_fn = lambda s: -(s[0] - t[:2]).pow(2).sum() - (s[1] - t[2:]).pow(2).sum()
    return loss_fn, [torch.full((2,), 0.5, device=device), torch.full((1,), 0.5, device=device)]


def off_lattice_hint(out: Tensor, init: Tensor, step: float) -> tuple[str, str] | None:
    """(code, hint) when entries that end strictly inside (0, 1) moved by something other than a whole number of
    steps from where they started, or from the bound (0 or 1) a clamp may have left them at: every step moves each
    entry by exactly ±step_size (or 0 where the gradient is 0) before the clamp."""
    inside = (out > 1e-6) & (out < 1 - 1e-6)
    on = lambda d: ((d / step) - (d / step).round()).abs() < 1e-3
    off = inside & ~(on(out - init) | on(out) | on(1 - out))
    if not bool(off.any()):
        return None
    moves = sorted({round(float(m), 4) for m in (out - init)[off].abs()})
    seen = ", ".join(f"{m:.4g}" for m in moves[:4]) + (", ..." if len(moves) > 4 else "")
    return "off_lattice", (
        f"{int(off.sum())} entries moved by amounts that no sequence of whole steps of {step} gives (net moves "
        f"{seen}): every step moves each entry by exactly ±step_size (then the clamp), so something other than whole "
        "sign steps moved them. Causes that give such moves include, e.g., a step size that changes from step to "
        "step (step_size / (t + 1)), a step scaled by the gradient's size or by the entry itself (multiplicative, "
        "r · (1 ± step_size)), a step_size other than the one given, a direction averaged or shared over entries, "
        "a projection other than the clamp, or the average of the iterates returned (Polyak averaging): print one "
        "entry's value after each step to see which"
    )


def coupled_probe(device: Any) -> tuple[Callable, list[Tensor]]:
    """A loss coupling three sources, -(s0 + s1 + s2 - 1)², from a sum of 0.8 (every sum seen at least 0.05 from 1
    until a clamp makes it exact): updated together, all step up (sum 1.25, a lower loss: the first step already
    lowers it), then all down, and after an even number of steps they are back where they started; one source's
    own step alone (0.95) never crosses 1, so a gradient read with the others held at init keeps stepping up;
    updated one after the other, the later ones see the earlier ones' new values and step the other way."""
    loss_fn = lambda s: -(s[0] + s[1] + s[2] - 1).pow(2).sum()
    return loss_fn, [torch.tensor(v, device=device) for v in ([0.26, 0.28], [0.27, 0.25], [0.27, 0.27])]


def sequential_reference(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float, order: list[int]):
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        for i in order:
            leaf = s[i].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn([leaf if j == i else t for j, t in enumerate(s)]), [leaf])
            s[i] = (s[i] + step * g.sign()).clamp(0, 1)
    return torch.cat([t.flatten() for t in s])


def sequential_mistakes(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    hint = (
        "update every source from the gradients at the same point: compute all the gradients first (one "
        "torch.autograd.grad of the loss with respect to every source), then step them all; updating the sources "
        "one after the other lets the later ones see the earlier ones' new values"
    )
    orders = [list(range(len(init))), list(reversed(range(len(init))))]
    return [("sequential_updates", hint, sequential_reference(loss_fn, init, n_steps, step, o)) for o in orders]


def svd_broadcasts(W: Tensor, known: list[Tensor]) -> Mistakes:
    """The outer products written by broadcasting, A.unsqueeze(i) * B.unsqueeze(j), with A = U·σ (or its
    transpose) and B = Vh (or its transpose): every shape-compatible pairing that is wrong and no catalogued mistake
    gives, named by the expression and the axes it pairs."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    right = torch.einsum("iak,ik,ikb->ikab", U, S, Vh)
    A = {"(U * S[:, None, :])": ((U * S[:, None, :]), ("d_out", "r")), "(U * S[:, None, :]).mT": None}
    A["(U * S[:, None, :]).mT"] = ((U * S[:, None, :]).mT, ("r", "d_out"))
    B = {"Vh": (Vh, ("r", "d_in")), "Vh.mT": (Vh.mT, ("d_in", "r"))}
    found: Mistakes = []
    for (a_name, (a, a_axes)), (b_name, (b, b_axes)) in itertools.product(A.items(), B.items()):
        for i, j in itertools.product((1, -2, -1), repeat=2):
            try:
                value = a.unsqueeze(i) * b.unsqueeze(j)
            except RuntimeError:
                continue
            if value.shape != right.shape or torch.allclose(value, right, 1e-4, 1e-5):
                continue
            if any(k.shape == value.shape and torch.allclose(value, k, 1e-4, 1e-5) for k in known + _values(found)):
                continue
            a_at, b_at = _axes_after(a_axes, i), _axes_after(b_axes, j)
            pairs = [f"U's {x} with Vh's {y}" for x, y in zip(a_at, b_at, strict=True) if "·" not in (x, y)]
            hint = (
                f"your terms are {a_name}.unsqueeze({i}) * {b_name}.unsqueeze({j}): broadcasting lines up "
                f"{' and '.join(pairs)}, where term k must pair column k of U (with σ_k) and row k of Vh on the term "
                "axis: "
                "(U * S[:, None, :]).mT.unsqueeze(-1) * Vh.unsqueeze(-2), or einsum 'inst d_out r, inst r, inst r d_in "
                "-> inst r d_out d_in'"
            )
            found.append(("broadcast_axes", hint, value))
    return found


def _values(found: Mistakes) -> list[Tensor]:
    return [v for *_, v in found]


def _axes_after(axes: tuple[str, str], at: int) -> list[str]:
    """The names of axes 1-3 of a [inst x y] tensor after .unsqueeze(at) (the new axis is '·')."""
    names = ["inst", *axes]
    names.insert(at if at >= 0 else len(names) + 1 + at, "·")
    return names[1:]
