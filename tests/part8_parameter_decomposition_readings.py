"""Part 8: mistakes that re-read a right quantity (a loss put on a log scale or shared out over an axis, a full loss
summed from the single-matrix ones, the other matrices of a layerwise run masked too, the penalty put on a
transformed importance, each source's gradient read with the others held where they started)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_reduction_order as order
from tests.checking import fail

Mistakes = list[tuple[str, str, Tensor]]
NO_GRAD = "compute the loss from U and V with torch operations (no torch.no_grad(), .detach() or .item())"


def divided_twice(loss: Tensor, right: Tensor, n: int) -> tuple[str, str] | None:
    """(code, hint) when a mean over N entries is 1/N × the right one: divided by N twice."""
    if float(right) != 0 and abs(float(loss) / float(right) * n - 1) < 1e-4:
        return "divided_twice", (
            f"your value is 1/N = 1/{n} × the expected one (N = {n}, the entries of one instance's matrices): "
            "divided by N twice, e.g. inside the square ((Δ / N)² = Δ² / N²) or a mean over entries then / N "
            "again; square first, then divide the sum by N once"
        )
    return None


def instances_counted_twice(loss: Tensor, right: Tensor, n_inst: int) -> tuple[str, str] | None:
    """(code, hint) when the loss is n_inst × the right one: the sum over instances taken (or multiplied in) twice.
    The faithfulness inputs have 3 instances and 4 matrices, so this factor names no other count."""
    if float(right) != 0 and abs(float(loss) / float(right) / n_inst - 1) < 1e-4:
        return "instances_twice", (
            f"your value is {n_inst} × the expected one, and {n_inst} is the number of instances: the instances "
            "counted twice (a total that already sums over the instances, then multiplied by n_inst or summed over "
            "them again, or an [inst] loss broadcast against [inst, 1] before .sum())? Each instance's mean squared "
            "error is added once"
        )
    return None


def output_readings(got: Tensor, right: Tensor, dims: str) -> Mistakes:
    """The right values put on a log scale (log, log10 or log2 of value + c, with the small c read off the
    learner's own output, |c| ≤ 1e-3 · the largest value), or divided by their sum (or max, or norm) along one named
    axis: a plotting habit carried into the function. Values only: a learner's output that isn't one of them costs
    nothing; the hint says what the output is and what the function returns instead."""
    out: Mistakes = []
    if not isinstance(got, Tensor) or got.shape != right.shape or not got.is_floating_point() or right.min() < 0:
        return out
    got, right = got.detach().to(right.dtype), right.detach()
    top = float(right.abs().max())
    for base, name in ((torch.e, "log"), (10.0, "log10"), (2.0, "log2")):
        c = float((torch.pow(base, got.clamp(max=60)) - right).median())
        if abs(c) <= 1e-3 * top and float((right + c).min()) > 0:
            shown = f" + {c:.1g}" if abs(c) > 1e-12 * top else ""
            hint = (
                f"your values are {name}(loss{shown}) of the right losses: a log scale belongs to the plot "
                "(plt.yscale('log'), or a norm= on the heatmap), not to the function; return the losses themselves"
            )
            out.append(("log_scale", hint, torch.log(right + c) / torch.log(torch.tensor(base, dtype=right.dtype))))
    for axis, name in enumerate(dims.split()):
        for how, total in (
            ("sum", right.sum(axis, keepdim=True)),
            ("max", right.amax(axis, keepdim=True)),
            ("norm", right.norm(dim=axis, keepdim=True)),
        ):
            hint = (
                f"your values are the right ones divided by their {how} over `{name}` (each a share of the total, "
                f"so they add up to 1 along `{name}`)"
                if how == "sum"
                else f"your values are the right ones divided by their {how} over `{name}`"
            )
            out.append(("normalised", hint + ": return the losses themselves, unnormalised", right / total))
    return out


def full_as_sum(right: Tensor, n_matrices: int) -> Mistakes:
    """The full loss taken as the sum of the L single-matrix losses (L × the layerwise loss), as if the loss were
    additive over matrices."""
    hint = (
        f"your full loss is the sum of the L = {n_matrices} single-matrix losses (L × the layerwise loss): masking "
        "every matrix at once is not additive (the errors of the matrices compound through the chain); compute the "
        "full loss from its own run, with every matrix masked (masks[l], delta_masks[l]) in the same forward pass"
    )
    return [("full_is_sum", hint, torch.stack([right[1] * n_matrices, right[1]]))]


def recon_others(chain: Any, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """The layerwise runs with the other matrices not left as the original W but run through masked_product too:
    with all-zero masks and delta masks (each such matrix then maps to 0), or with mask 1 and their random delta
    mask kept. The full loss is the right one in both."""
    L, target = len(chain.weights), chain(x)
    others = {
        "zero masks": lambda layer: (torch.zeros_like(p["masks"][layer]), torch.zeros_like(p["delta_masks"][layer])),
        "masks of 1 but their random delta masks": lambda layer: (
            torch.ones_like(p["masks"][layer]),
            p["delta_masks"][layer],
        ),
    }
    out: Mistakes = []
    with torch.no_grad():
        full = mis.recon_reference(chain, p, x)[0]
        for name, masks in others.items():

            def run(masked: int, masks: Callable = masks) -> Tensor:
                def layer_fn(n: int, a: Tensor) -> Tensor:
                    m, dm = (p["masks"][n], p["delta_masks"][n]) if n == masked else masks(n)
                    q = {"a": a, "W": chain.weights[n], "U": p["U"][n], "V": p["V"][n]}
                    return mis.product_reference({**q, "mask": m, "delta_mask": dm})

                return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

            layerwise = torch.stack([run(masked) for masked in range(L)]).mean()
            hint = (
                f"your layerwise runs pass the other matrices through masked_product too, with {name}: in the run "
                "for matrix l only matrix l is masked; every other matrix is the original chain.weights[j], used "
                "as it is (a plain product, no masked_product, no masks)"
            )
            out.append(("others_masked", hint, torch.stack([full, layerwise])))
    return out


def minimality_penalties(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """The penalty put on g² instead of g, the log penalty p·log(g + eps) in place of (g + eps)^p, or a sum or mean
    over the batch or instances taken before the power."""
    total = lambda f: sum(f(g).sum(-1) for g in ci).mean(0).sum()
    with torch.no_grad():
        return [
            (
                "squared_importances",
                "your penalty is (g² + eps)^p, on the squared importances: the penalty is (g + eps)^p on the "
                "importances themselves (they are already ≥ 0)",
                total(lambda g: (g.pow(2) + eps).pow(p)),
            ),
            (
                "log_penalty",
                "your penalty is p · log(g + eps), a log penalty: the penalty is the power (g + eps)^p, "
                "(g + eps).pow(p)",
                total(lambda g: p * torch.log(g + eps)),
            ),
            *order.minimality_inside_power(ci, p, eps),  # (Σ_inst g + eps)^p: a reduction inside the power
        ]


def held_at_init(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    """Each source's gradient taken with the other sources held at their initial values (only its own moves)."""
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        new = []
        for i in range(len(s)):
            leaf = s[i].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn([leaf if j == i else init[j].detach() for j in range(len(s))]), [leaf])
            new.append((s[i] + step * g.sign()).clamp(0, 1).detach())
        s = new
    hint = (
        "each source's gradient was read with the other sources held at their initial values: on every step take "
        "the gradients at the current sources, all of them (one torch.autograd.grad of the loss of the current "
        "sources with respect to every source)"
    )
    return [("others_at_init", hint, torch.cat([t.flatten() for t in s]))]


class _RecordingContext:
    """A stand-in for an autograd Function's ctx that records which tensors forward marks non-differentiable."""

    def __init__(self) -> None:
        self.marked: tuple[Tensor, ...] = ()
        self.needs_input_grad = (True, False)

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        self.marked += tensors

    def __getattr__(self, name: str) -> Callable[..., None]:  # mark_dirty, set_materialize_grads, ...
        return lambda *args, **kwargs: None


def no_output_grad_hint(impl: Any, x: Tensor, alpha: float) -> str:
    """The hint when `impl.apply(x)`'s output has no gradient: forward re-run on a recording ctx says whether it
    marked its output non-differentiable; otherwise the possible causes are listed (none is asserted)."""
    ctx = _RecordingContext()
    try:
        with torch.no_grad():
            out = impl.forward(ctx, x.clone(), alpha)
    except Exception:
        out = None
    if isinstance(out, Tensor) and any(t is out for t in ctx.marked):
        return (
            "forward calls ctx.mark_non_differentiable on its output: that tells autograd the output has no gradient "
            "(it is for integer-like outputs such as indices), so backward is never called; remove that line"
        )
    return (
        "possible causes: ctx.mark_non_differentiable(output) in forward (it tells autograd the output has no "
        "gradient: remove it), or an output not produced by the Function's apply (e.g. returned through .detach() "
        "or .data outside it); call it as name.apply(x, alpha) and return clamp(x, 0, 1) from forward"
    )


def ci_cut(grads: list[Tensor | None], names: tuple[str, ...]) -> None:
    """Fails naming where CausalImportance's graph is cut when some of V, w_in, b_in, w_out, b_out get no gradient
    and others do: the leaves without one are exactly those upstream of a detach. V alone is left to the catalogue
    (inner_detached); none or all of them to the per-leaf checks."""
    missing = [k for k, g in zip(names, grads, strict=True) if g is None or not g.abs().gt(0).any()]
    if not missing or len(missing) == len(names) or missing == ["V"]:
        return
    reached = [k for k in names if k not in missing]
    if set(missing) == {"V", "w_in", "b_in"}:
        fail(
            "no gradient reaches V, w_in or b_in, while w_out and b_out get theirs",
            "the graph is cut between the hidden layer and the output layer: the hidden activations "
            "GELU(w_in h + b_in) were detached (or taken through .data / torch.no_grad()) before Σ_j w_out · hidden "
            "+ b_out; keep them in autograd (the masks train V and the whole MLP through these importances)",
            code="hidden_detached",
        )
    fail(
        f"no gradient reaches {', '.join(missing)}, while {', '.join(reached)} get theirs",
        f"something on the path from {', '.join(missing)} to the importances was detached (a .detach(), .data, "
        ".item() or torch.no_grad()), while the path from the others was kept: keep every step in autograd",
        code="partly_detached",
    )


def partial_clamp(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    """Every step projects only some sources (`sources[0] = sources[0].clamp(0, 1)`), the others never: one
    candidate per proper, non-empty subset of the sources that are clamped."""
    n = len(init)
    found: Mistakes = []
    for size in range(1, n):
        for kept in itertools.combinations(range(n), size):
            s = [t.detach().clone() for t in init]
            for _ in range(n_steps):
                leaves = [t.requires_grad_(True) for t in s]
                grads = torch.autograd.grad(loss_fn(leaves), leaves)
                s = [(t + step * g.sign()).detach() for t, g in zip(leaves, grads, strict=True)]
                s = [t.clamp(0, 1) if i in kept else t for i, t in enumerate(s)]
            rest = [i for i in range(n) if i not in kept]
            plural = "s" if len(rest) > 1 else ""
            hint = (
                f"only source{'s' if size > 1 else ''} {', '.join(map(str, kept))} of the {n} "
                f"{'are' if size > 1 else 'is'} clamped to [0, 1] after each step (source{plural} "
                f"{', '.join(map(str, rest))} never, e.g. `sources[0] = sources[0].clamp(0, 1)` alone): clamp every "
                "source after every step"
            )
            found.append(("partial_clamp", hint, torch.cat([t.flatten() for t in s])))
    return found


def reordered_hint(actual: Tensor, expected: Tensor, dims: str | None = None) -> tuple[str, str] | None:
    """(code, hint) when the values are the right ones, at other positions (the same sorted values); with `dims`,
    a reordering along one axis only (the same values along it at every other position) names that axis."""
    if actual.shape != expected.shape or not actual.is_floating_point() or actual.numel() < 2:
        return None
    a, e = actual.detach().flatten().double().sort().values, expected.detach().flatten().double().sort().values
    if not torch.allclose(a, e, rtol=1e-4, atol=1e-6):
        return None
    names = dims.split() if dims and len(dims.split()) == actual.ndim else []
    for axis, name in enumerate(names):
        along = lambda t, axis=axis: t.detach().double().sort(axis).values
        if actual.shape[axis] > 1 and torch.allclose(along(actual), along(expected), rtol=1e-4, atol=1e-6):
            return "reordered", (
                f"your output holds the expected values with only the `{name}` axis reordered (at every other "
                f"position the same values along `{name}`, in another order): the `{name}` entries taken in another "
                f"order than the input's (sorted, by norm or size? reversed? stacked in another order?): keep the "
                f"order they come in"
            )
    return "reordered", (
        "your output holds exactly the expected values, at other positions: the axes are out of order (a reshape or "
        "view where a permute was needed, or the loop's axes stacked in another order?)"
    )


# ---------------------------------------------------------------- svd_terms: terms that don't add up to W
INEXACT = (
    "singular vectors not accurate to float precision (an iterative method such as power iteration, with or "
    "without deflation, stopped before converging?): use torch.linalg.svd"
)


def _svd_terms(W: Tensor) -> Tensor:
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return torch.einsum("iak,ik,ikb->ikab", U, S, Vh)


def summed_hint(out: Tensor, W: Tensor) -> tuple[str, str]:
    """(code, hint) when the terms add up to W: terms within 1% of the exact SVD terms (relative Frobenius
    difference) but not equal to them are singular vectors that are only approximate; else the formula."""
    terms, right = out.detach().double(), _svd_terms(W.detach().double())
    rel = float((terms - right).norm() / right.norm().clamp_min(1e-30))
    if 1e-5 < rel < 1e-2:
        return "inexact_svd", (
            f"your terms add up to W, and are within {rel:.2g} (relative) of the exact SVD terms, but not equal to "
            f"them: {INEXACT}"
        )
    return "values", "σ_k u_k v_kᵀ, largest σ first"


VECTORS_MIXED = (
    "your terms are an exact SVD with W's own singular values σ_k, but of another matrix: the σ_k are right and the "
    "singular vectors are read from the wrong axis (a row of U or a column of Vh where the other belongs). After an "
    "SVD of W.mT the roles swap: W's u_k is row k of that Vh and its v_k column k of that U. u_k is column k of U "
    "(U[:, :, k]) and v_k row k of Vh (Vh[:, k, :]) of torch.linalg.svd(W)"
)


def unsummed_hint(out: Tensor, W: Tensor) -> tuple[str, str]:
    """(code, hint) when the terms don't add up to W, from two observed facts: how far their sum S is from W
    (relative Frobenius error), and whether the terms are an exact SVD of S itself (rank one, orthogonal, largest
    first: the solution's SVD of S gives them back). An exact SVD of S ≠ W with W's singular values: singular
    vectors read from the wrong axis (vectors_mixed). An exact SVD of S ≠ W whose directions u_k v_kᵀ are not W's: W
    was changed before decomposing (the difference's rank is reported: dense noise has full rank); W's own directions
    with other sizes are σ changed, left to the term-size hint. Not an exact SVD, but S close to W: singular vectors
    that are only approximate (an iterative method stopped early)."""
    terms = out.detach().double()
    total, Wd = terms.sum(1), W.detach().double()
    rel = float((total - Wd).norm() / Wd.norm().clamp_min(1e-30))
    if not bool(torch.isfinite(terms).all()):
        return "not_sum", "the terms must add up to W: Σ_k σ_k u_k v_kᵀ = W"
    own = _svd_terms(total)
    scale = float(total.abs().max().clamp_min(1e-30))
    unit = lambda t: t / t.flatten(-2).norm(dim=-1)[..., None, None].clamp_min(1e-30)  # each term's direction
    same_dirs = torch.allclose(unit(terms), unit(_svd_terms(W.detach().double())), atol=1e-4)
    if torch.allclose(terms, own, rtol=1e-4, atol=1e-5 * scale) and not same_dirs:  # W's directions: only σ changed
        if torch.allclose(torch.linalg.svdvals(total), torch.linalg.svdvals(Wd), rtol=1e-4, atol=1e-6 * scale):
            return "vectors_mixed", VECTORS_MIXED  # W's σ_k, other orthonormal vectors: no noise gives that
        d = total - Wd
        s = torch.linalg.svdvals(d)
        rank = int((s > 1e-6 * float(s.max().clamp_min(1e-30))).sum(-1).max())
        full = min(W.shape[-2:])
        spread = "of full rank, as dense noise is" if rank == full else f"of rank {rank} (full rank is {full})"
        return "perturbed_W", (
            f"your terms are an exact SVD, but of a matrix that is not W: they add up to W plus a difference of "
            f"relative size {rel:.2g} (‖Σ terms − W‖ / ‖W‖), {spread}. W was changed before decomposing (noise added, "
            "e.g. a jitter W + ε·randn, or another modification of W): decompose W itself, so Σ_k σ_k u_k v_kᵀ = W"
        )
    if rel < 1e-2:
        return "inexact_svd", (
            f"your terms add up to W only approximately (relative error {rel:.2g}, far above float precision) and "
            f"are not an exact SVD of their own sum: {INEXACT}"
        )
    return "not_sum", "the terms must add up to W: Σ_k σ_k u_k v_kᵀ = W"
