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
from tests import part8_parameter_decomposition_behaviour as behaviour
from tests import part8_parameter_decomposition_boundaries as boundaries
from tests import part8_parameter_decomposition_count_ratios as ratios
from tests import part8_parameter_decomposition_diagnosis as diag
from tests import part8_parameter_decomposition_inputs as inp
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_probes as probes
from tests import part8_parameter_decomposition_readings as readings
from tests import part8_parameter_decomposition_slips as slips
from tests import part8_parameter_decomposition_variants as variants
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
    return out + slips.svd_whole_terms(W)


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
    ] + ablation_removals(chain, terms, x)


def _last_product(chain: WeightChain, W0: Tensor, x: Tensor) -> Tensor:
    """The last matrix's product W_{L-1} a, before its bias and activation."""
    seen: dict[int, Tensor] = {}

    def layer_fn(layer: int, a: Tensor) -> Tensor:
        seen[layer] = mis.mm(a, W0 if layer == 0 else chain.weights[layer])
        return seen[layer]

    chain(x, layer_fn)
    return seen[len(chain.weights) - 1]


def ablation_removals(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """A term removed otherwise than by subtraction, and the change measured elsewhere than at the output."""
    W0, K = chain.weights[0], terms.shape[1]
    with torch.no_grad():
        run = lambda first, at=mis.run_with_first: torch.stack(
            [(at(chain, first(k), x) - at(chain, W0, x)).pow(2).mean(-1) for k in range(K)]
        ).permute(2, 0, 1)
        return [
            (
                "multiplicative_removal",
                "your ablated matrix is W_0 * (1 - T_k), elementwise (a mask), instead of W_0 - T_k: a term is "
                "removed by subtracting it, chain.weights[0] - terms[:, k]",
                run(lambda k: W0 * (1 - terms[:, k])),
            ),
            (
                "measured_before_output",
                "your change is measured on the last matrix's product W_{L-1} a, before its bias and activation: "
                "compare the chain's outputs, chain(x, layer_fn) - chain(x), after the last bias and activation",
                run(lambda k: W0 - terms[:, k], _last_product),
            ),
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


def faithfulness_slips(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """An integer division by N (floor or truncation, per instance or of the total) and instance 0's weights
    compared with every instance's U V."""
    n = sum(W[0].numel() for W in weights)
    with torch.no_grad():
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))  # [inst]
        se0 = sum((W[:1] - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    floor = (
        f"your value is a whole number: an integer division (// N, torch.div(..., rounding_mode='floor' or 'trunc'), "
        f"int() or round()) where the true division / N (N = {n}) belongs"
    )
    inst0 = (
        "your value compares instance 0's weights W_l[0] with every instance's U_l V_l (W[0] - U V broadcasts over "
        "the instances): each instance i has its own W_l[i] - U_l[i] V_l[i]"
    )
    return [
        ("floor_division", floor, torch.floor(se / n).sum()),
        ("floor_division", floor, torch.floor(se.sum() / n)),
        ("floor_division", floor, torch.trunc(se / n).sum()),
        ("instance0_weights", inst0, (se0 / n).sum()),
        *slips.faithfulness_expansions(weights, U, V),
    ]


def whole_number_hint(loss: Tensor, right: Tensor) -> tuple[str, str] | None:
    """A whole-number loss where the right one is not: an integer division or rounding somewhere."""
    got, want = float(loss), float(right)
    if got != round(got) or want == round(want) or abs(got - want) < 1e-6 * abs(want):
        return None
    return "integer_result", (
        f"your value {got:g} is a whole number where the right one ({want:.6g}) is not: an integer division "
        "(// where / belongs, rounding_mode='floor' or 'trunc'), int(), round() or .floor() somewhere in your loss?"
    )


def faithfulness_hint(fn: Callable, loss: Tensor, right: Tensor, weights, U, V) -> tuple[str, str]:
    """The generic hint for a wrong faithfulness loss: a whole number, a named count or factor, per-matrix
    divisors, or the formula."""

    n_w, counts = probes.faithfulness_counts(weights, U, V)
    generic = _n_matrices_factor(float(loss), float(right), len(weights)) or whole_number_hint(loss, right)
    generic = generic or readings.divided_twice(loss, right, n_w)
    generic = generic or ratios.per_subcomponent(loss, right, U) or readings.instances_counted_twice(loss, right, 3)
    generic = generic or diag.scalar_hint(loss, right, {"the N parameters": n_w}, {"instances": 3})
    generic = generic or inp.faithfulness_divisors(fn, loss, weights, U, V)
    generic = generic or diag.divisor_hint(loss, right * n_w, counts, n_w)
    return generic or ("values", "Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖², N = entries of one instance's matrices")


def _n_matrices_factor(loss: float, right: float, n_matrices: int) -> tuple[str, str] | None:
    """L × the right loss (the inputs' L = 4 differs from the 3 instances): N averaged over the matrices."""
    if right == 0 or abs(loss / right / n_matrices - 1) > 1e-4:
        return None
    return "n_over_matrices", (
        f"your value is {n_matrices} × the expected one, and {n_matrices} = L, the number of matrices: N divided by L "
        "(the average matrix size Σ_l numel(W_l) / L, or a mean over the matrices) where N is their total, the "
        "entries of all of one instance's matrices together; or a factor L too many"
    )


# ---------------------------------------------------------------- masked_product: W a on top
def product_extra(p: dict[str, Tensor]) -> Mistakes:
    right, Wa = mis.product_reference(p), mis.mm(p["a"], p["W"])
    hint = (
        "your output is the masked product plus W a: the original matrix is already inside it through the delta "
        "term, delta_mask · (W - U V) a; don't add W a (a residual) on top"
    )
    dm = p["delta_mask"][..., None]
    comps = torch.einsum("bic,ioc->bio", torch.einsum("bid,icd->bic", p["a"], p["V"]) * p["mask"], p["U"])
    swapped = (
        "your output puts the delta mask on the pieces and leaves the delta term unmasked (the roles swapped): "
        "each piece c has its own mask[..., c] (mask ⊙ V a), and the delta term (W - U V) a is scaled by delta_mask"
    )
    unmasked = dm * comps + mis.mm(p["a"], p["W"] - p["U"] @ p["V"])
    uv = mis.mm(p["a"], p["U"] @ p["V"])
    on_uv = (
        "your output is U (mask ⊙ V a) + W a - delta_mask · U V a: the delta mask multiplies only the U V a part of "
        "the delta; it scales the whole delta term, delta_mask · (W a - U V a) = delta_mask · (W - U V) a"
    )
    reduced = [
        (
            "delta_mask_reduced",
            f"each example and instance has its own delta mask: your output uses delta_mask averaged over the {axis} "
            f"axis (delta_mask.mean({n})); use delta_mask[..., None] (shape [batch inst 1]) as it is",
            mis.product_reference({**p, "delta_mask": p["delta_mask"].mean(n, keepdim=True).expand_as(dm[..., 0])}),
        )
        for n, axis in enumerate(("batch", "inst"))
    ]
    return [
        ("plus_W", hint, (right + Wa).detach()),
        ("delta_mask_roles", swapped, unmasked.detach()),
        ("delta_mask_on_uv", on_uv, (comps + Wa - dm * uv).detach()),
        *[(c, h, v.detach()) for c, h, v in reduced],
        *slips.product_added_mask(p),
        *variants.product_delta_variants(p),
    ]


def _product(p: dict[str, Tensor], detach: str = "") -> Tensor:
    """The masked product with one input detached in one place ("V_inner": V in V a; "a": the input everywhere)."""
    a = p["a"].detach() if detach == "a" else p["a"]
    V_in = p["V"].detach() if detach == "V_inner" else p["V"]
    U_out = p["U"].detach() if detach == "U_outer" else p["U"]
    comps = torch.einsum("bic,ioc->bio", torch.einsum("bid,icd->bic", a, V_in) * p["mask"], U_out)
    return comps + p["delta_mask"][..., None] * mis.mm(a, p["W"] - p["U"] @ p["V"])


def product_grads(p: dict[str, Tensor], g: Tensor) -> tuple[list[Tensor], list[tuple[str, str, list[Tensor]]]]:
    """The right gradients for U, V and the masks, the catalogue's mistakes and one input detached in one place."""
    right, mistakes = mis.product_grad_candidates(p, g)
    for where, hint in (
        ("V_inner", "your gradient for V misses the path through the pieces: V is detached in V a (V.detach())"),
        ("U_outer", "your gradient for U misses the path through the pieces: U is detached in U (mask ⊙ V a)"),
    ):
        q = {**p, **{k: p[k].detach().clone().requires_grad_() for k in mis.PRODUCT_LEAVES}}
        grads = torch.autograd.grad((_product(q, where) * g).sum(), [q[k] for k in mis.PRODUCT_LEAVES])
        mistakes.append(("detached", hint + ": don't detach anything in masked_product", list(grads)))
    return right, mistakes


def product_input_grad(fn: Callable, p: dict[str, Tensor], g: Tensor) -> None:
    """The gradient for the layer's input a: in a chain of masked matrices, every earlier matrix's masks, U and V
    learn through it, so a detached (or otherwise cut) input fails here. Then a float64 call keeps its dtype."""
    variants.product_float64(fn, p)
    names = ("a", "W", "U", "V", "mask", "delta_mask")
    q = {k: p[k].detach().clone() for k in names}
    q["a"].requires_grad_(True)
    out = fn(*(q[k] for k in names))
    right = torch.autograd.grad((_product({**q, "a": q["a"]}) * g).sum(), q["a"])[0]
    got = None
    if isinstance(out, Tensor) and out.requires_grad:
        got = torch.autograd.grad((out * g).sum(), q["a"], allow_unused=True)[0]
    cut = (
        "no gradient reaches the layer's input a: a.detach() (or torch.no_grad, .data, .item()) cuts it, so in "
        "a chain of masked matrices the masks, U and V of every earlier matrix get no gradient through this one: "
        "compute the product from a itself"
    )
    if got is None or not bool(got.abs().gt(0).any()):
        fail("the gradient of masked_product with respect to a is zero", cut, code="input_detached")
    mistakes = [("input_detached", cut, torch.zeros_like(right))]
    expect_matches(
        got,
        right,
        "the gradient of masked_product with respect to a",
        mistakes,
        hint=cut.replace("no gradient reaches", "the gradient does not match for"),
        code="input_grad",
        rtol=1e-4,
        atol=1e-6,
    )


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
        first = [("masks_first", hint, mis.recon_reference(chain, q, x)), *recon_delta_overrides(chain, p, x)]
        return first + variants.recon_robust(chain, p, x)


def recon_delta_overrides(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """The delta masks replaced by zeros (the delta switched off) or ones, in the full run, the layerwise runs or
    both: each named by which runs and which constant."""
    right, out = mis.recon_reference(chain, p, x), []
    for value, what in ((0.0, "zeros (the delta switched off)"), (1.0, "ones (the delta always whole)")):
        q = {**p, "delta_masks": [torch.full_like(d, value) for d in p["delta_masks"]]}
        other = mis.recon_reference(chain, q, x)
        for runs, got in (
            ("the layerwise runs", torch.stack([right[0], other[1]])),
            ("the full run", torch.stack([other[0], right[1]])),
        ):
            hint = (
                f"{runs} used delta masks of {what} instead of the sampled ones: pass each matrix's own delta mask "
                "(delta_masks[l]) to masked_product in every run"
            )
            out.append(("delta_masks_overridden", hint, got))
    return out


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
            *slips.minimality_derivative(ci, p, eps),
            *variants.minimality_inner_batch(ci, p, eps),
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
    return out + variants.adversarial_variants(loss_fn, init, n_steps, step)


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
def slope_code(seen: str, hint: str, code: str, linearity: Callable | None = None) -> tuple[str, str]:
    """(hint, code) from the region-by-region description: grad_output used twice gets its own code; otherwise a
    backward that is not linear in grad_output (the `linearity` probe) is said first, before any region is
    described (its slope gradient / grad_output would vary with grad_output, not with x)."""
    if not seen:
        return hint, code
    plain = "grad_output itself" not in seen and "where grad_output < 0" not in seen
    if linearity is not None and plain and (found := linearity()) is not None:
        return found[1], found[0]
    return f"{seen}. The {hint}", "grad_output_twice" if "× grad_output itself" in seen else "slope_regions"


# ---------------------------------------------------------------- leaky sigmoids: is backward linear in grad_output?
def _region_names(x: Tensor, where: Tensor) -> str:
    regions = (("below 0", x < 0), ("on [0, 1]", (x >= 0) & (x <= 1)), ("above 1", x > 1))
    return " and ".join(name for name, region in regions if bool((region & where).any()))


def backward_linearity(impl: Any, name: str, x0: Tensor, g: Tensor, alpha: float) -> tuple[str, str] | None:
    """(code, hint) when the gradient backward returns is not grad_output times a slope of x: the checker runs it
    again with grad_output doubled, sign-flipped and all ones. A gradient g + alpha (something added), alpha·sign(g)
    (magnitude dropped) or |g|·slope (sign dropped) fails the scaling; one that mixes positions (a sum over
    grad_output) fails the all-ones run. None when backward is grad_output times a function of x."""

    def grad_for(go: Tensor) -> Tensor | None:
        x = x0.clone().requires_grad_(True)
        got = diag.backward_grad(impl.apply(x, alpha), x, go, name)
        return got.detach() if isinstance(got, Tensor) and got.shape == x0.shape else None

    base, doubled, flipped, ones = grad_for(g), grad_for(2 * g), grad_for(-g), grad_for(torch.ones_like(g))
    if base is None or doubled is None or flipped is None or ones is None:
        return None
    close = lambda a, b: torch.isclose(a, b, rtol=1e-4, atol=1e-6)
    bad2, badf = ~close(doubled, 2 * base), ~close(flipped, -base)
    seen = []
    if bool(bad2.any()):
        offset = (2 * base - doubled)[bad2]  # the part that does not scale with grad_output (b in s·g + b)
        where = _region_names(x0, bad2)
        if bool(close(doubled, base)[bad2].all()):
            seen.append(f"doubling grad_output leaves it unchanged {where}: its magnitude is dropped there")
        elif float(offset.max() - offset.min()) < 1e-5:
            c = float(offset.mean())
            named = f"alpha ({alpha:g})" if abs(c - alpha) < 1e-5 else f"{c:.4g}"
            seen.append(
                f"{named} is added {where}: doubling grad_output doubles all of it but {named} "
                "(grad_output + alpha where grad_output * alpha belongs?)"
            )
        else:
            ratio = (doubled / torch.where(base.abs() > 1e-8, base, torch.ones_like(base)))[bad2]
            seen.append(
                f"doubling grad_output multiplies it by {float(ratio.min()):.3g} to {float(ratio.max()):.3g} {where}, "
                "not by 2"
            )
    if bool(badf.any()) and not bool(bad2.any()):
        where = _region_names(x0, badf)
        same = bool(close(flipped, base)[badf].all())
        seen.append(f"flipping grad_output's sign {'leaves it unchanged' if same else 'does not flip it'} {where}")
    if not seen:
        slope = base / torch.where(g.abs() > 1e-8, g, torch.ones_like(g))
        mixed = ~close(slope, ones) & (g.abs() > 1e-3)
        if not bool(mixed.any()):
            return None
        seen.append(
            f"it is not grad_output times its value for grad_output = 1 {_region_names(x0, mixed)}: the gradient at "
            "one position depends on grad_output at other positions (a sum, mean or reshape of grad_output?)"
        )
    return "not_grad_times_slope", (
        "your gradient is not grad_output times a slope: "
        + "; ".join(seen)
        + ". Something is added to grad_output, or its magnitude or sign is dropped: backward returns grad_output * "
        "slope, elementwise, with the slope 1 on [0, 1], alpha on the leaky side, 0 on the other (alpha multiplies "
        "grad_output: grad_output * alpha, not grad_output + alpha or alpha * grad_output.sign())"
    )


# ---------------------------------------------------------------- svd_terms: the residual appended, W centred
def svd_term_count(out: Any, W: Tensor) -> None:
    """More than r terms, the extra ones W - Σ of the others (a residual appended "so the terms add up"), named
    before the other term-count checks."""

    n_inst, d_out, d_in = W.shape
    r = min(d_out, d_in)
    if isinstance(out, Tensor) and out.ndim == 4 and out.shape[0] == n_inst and out.shape[2:] == W.shape[1:]:
        k = out.shape[1]
        o = out.detach().to(W.dtype)
        if k > r:
            right = sol.svd_terms(W.detach())
            first_right = torch.allclose(o[:, :r], right, rtol=1e-4, atol=1e-5)
            residual = torch.allclose(o[:, -1], W - o[:, :-1].sum(1), rtol=1e-4, atol=1e-5)
            if residual or (first_right and torch.allclose(o.sum(1), W, rtol=1e-4, atol=1e-5)):
                size = float(o[:, r:].abs().max())
                fail(
                    f"svd_terms(W) for W of shape {tuple(W.shape)} has {k} terms, expected r = min(d_out, d_in) = {r}"
                    + (f": the first {r} are the SVD terms" if first_right else "")
                    + f", and the last is W minus the sum of the others (a residual, here at most {size:.2g} in size)",
                    "r = min(d_out, d_in) terms σ_k u_k v_kᵀ already add up to W exactly (to rounding): there is no "
                    "residual to append; return only the r terms, shape [inst r d_out d_in]",
                    code="residual_term",
                )
    behaviour.svd_term_count(out, W)


def sum_hint(out: Tensor, W: Tensor, fn: Callable | None = None) -> tuple[str, str]:
    """(code, hint) from what the terms add up to: W (values), W minus its row/column/overall mean (W changed
    before the SVD), or something else (not_sum); first, instance i's terms changing with instance j's W (a probe
    on the gradients: one SVD of the instances stacked, a reshape that mixes them)."""
    total = out.detach().sum(1).to(W.dtype)
    mixing = inp.instance_mixing(fn, {"W": (W, 0)}, 0) if fn is not None and len(W) > 1 else None
    if mixing and not torch.equal(out.detach(), sol.svd_terms(W)):
        return mixing[0], (
            f"{mixing[1]}. Here: one SVD per instance (torch.linalg.svd on the whole [inst d_out d_in] W works "
            "batched over inst), not one SVD of the instances stacked into one matrix (a reshape to [inst·d_out, "
            "d_in] or [d_out, inst·d_in])"
        )
    if torch.allclose(total, W, rtol=1e-4, atol=1e-5):
        return readings.summed_hint(out, W)  # right, or singular vectors accurate only to a few digits
    changed = {
        "its row means (the mean over d_in of each row, W.mean(-1))": W - W.mean(-1, keepdim=True),
        "its column means (the mean over d_out of each column, W.mean(-2))": W - W.mean(-2, keepdim=True),
        "its mean (over every entry)": W - W.mean((-2, -1), keepdim=True),
    }
    for name, centred in changed.items():
        if torch.allclose(total, centred, rtol=1e-4, atol=1e-5):
            return "changed_before_svd", (
                f"W changed before the SVD: your terms add up to W minus {name}, as if W was centred first (a PCA "
                "habit): decompose W itself, so that Σ_k σ_k u_k v_kᵀ = W"
            )
    return readings.unsummed_hint(out, W)  # a perturbed W, inexact singular vectors, or just not W


# ---------------------------------------------------------------- ablation_losses: terms ignored
def ablation_terms_ignored(fn: Callable, chain: WeightChain, terms: Tensor, x: Tensor, out: Tensor) -> Mistakes:
    """What W_0 with its column or row k zeroed, or W_0 minus its own k-th SVD term, gives (k wrapped around the
    sizes), then, when the learner's losses don't change for other terms (a generic probe), that observation."""
    with torch.no_grad():
        original, W0, K = chain(x), chain.weights[0], terms.shape[1]
        loss = lambda make: torch.stack(
            [(mis.run_with_first(chain, make(k), x) - original).pow(2).mean(-1) for k in range(K)]
        ).permute(2, 0, 1)

        def zeroed(k: int, axis: int) -> Tensor:
            W = W0.clone()
            W.select(axis, k % W.shape[axis]).zero_()
            return W

        own = sol.svd_terms(W0)
        out_list = [
            (
                "zeroed_column",
                "your ablation zeroes column k of W_0 (W_0[:, :, k] = 0) instead of subtracting the k-th term: the "
                "ablated first matrix is W_0 - terms[:, k], the whole rank-one term removed, not a column",
                loss(lambda k: zeroed(k, 2)),
            ),
            (
                "zeroed_row",
                "your ablation zeroes row k of W_0 (W_0[:, k] = 0) instead of subtracting the k-th term: the ablated "
                "first matrix is W_0 - terms[:, k]",
                loss(lambda k: zeroed(k, 1)),
            ),
            (
                "own_svd_terms",
                "your ablation ignores `terms`: it removes W_0's own k-th SVD term (an SVD of chain.weights[0] inside "
                "the function): subtract the terms passed in, W_0 - terms[:, k]",
                loss(lambda k: W0 - own[:, k % own.shape[1]]),
            ),
        ]
        if torch.allclose(out, original.new_zeros(()).expand_as(out)) or out.shape != (
            original.shape[1],
            K,
            x.shape[0],
        ):
            return out_list
        try:
            again = fn(chain, terms.flip(1) * 1.7 + 0.1, x)
        except Exception:  # a probe: its own failure says nothing
            return out_list
    named = any(torch.allclose(out, m, rtol=1e-4, atol=1e-6) for *_, m in out_list)
    same = isinstance(again, Tensor) and again.shape == out.shape and torch.allclose(again.detach(), out, 1e-5, 1e-7)
    if same and not named:
        out_list.append(
            (
                "ignores_terms",
                "your losses don't change when `terms` changes (the checker called it again with other terms): the "
                "ablated run must use the terms passed in, W_0 - terms[:, k] as the first matrix (not a column or row "
                "of W_0 zeroed, nor W_0's own SVD terms)",
                out,
            )
        )
    return out_list


# ---------------------------------------------------------------- recon: relative MSE
def recon_relative(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """Each MSE divided by the target's mean square (the relative error an evaluation reports)."""
    with torch.no_grad():
        target, L = chain(x), len(chain.weights)
        run = lambda layers: mis.masked_run(chain, p, x, layers)[0] - target
        out = []
        for name, denom in (
            ("per instance, target.pow(2).mean((0, 2))", target.pow(2).mean((0, 2))),
            ("over everything, target.pow(2).mean()", target.pow(2).mean()),
        ):
            rel = lambda layers, denom=denom: (run(layers).pow(2).mean((0, 2)) / denom).sum()
            full = rel(set(range(L)))
            layerwise = sum(rel({m}) for m in range(L)) / L
            hint = (
                f"your losses are relative MSEs, divided by the target's mean square ({name}): the loss is the plain "
                "MSE to the original output, (y - chain(x))² averaged over batch and output dims, summed over instances"
            )
            out.append(("relative_mse", hint, torch.stack([full, layerwise])))
        return out


# ---------------------------------------------------------------- minimality: other batch reductions, NaN at g = 0
def minimality_batch_reductions(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        per = sum((g + eps).pow(p).sum(-1) for g in ci)  # [batch inst]
        return [
            (
                "batch_reduction",
                f"your value takes the {name} over the batch instead of the mean: Σ_inst mean_batch Σ_l Σ_c "
                "(g + eps)^p (.mean(0) over the batch axis)",
                reduce(per).sum(),
            )
            for name, reduce in (
                ("median", lambda t: t.median(0).values),
                ("max", lambda t: t.amax(0)),
                ("min", lambda t: t.amin(0)),
            )
        ] + minimality_slips(ci, p, eps)


def minimality_slips(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """eps added inside the exp of exp(p·log g) (outside the log), and the batch divided out twice."""
    B = ci[0].shape[0]
    with torch.no_grad():
        per = sum((g + eps).pow(p).sum(-1) for g in ci)
        exp_log = sum(torch.exp(p * torch.log(g) + eps).sum(-1) for g in ci)
    return [
        (
            "eps_outside_log",
            "your value is exp(p·log g + eps): eps is added after the log, where (g + eps)^p = exp(p·log(g + eps)) "
            "adds it to g inside",
            exp_log.mean(0).sum(),
        ),
        (
            "batch_twice",
            f"your value is 1/B = 1/{B} × the expected one (B = {B}, the batch size): the batch is divided out "
            "twice (a mean over the batch and then / B again): take the mean over the batch once",
            per.mean(0).sum() / B,
        ),
        (
            "batch_minus_one",
            f"your value is the sum over the batch divided by B - 1 = {B - 1} (an unbiased-variance reflex, or a "
            f"divisor off by one), not by B = {B}: take the plain mean over the batch (.mean(0))",
            per.sum(0).sum() / (B - 1),
        ),
        (
            "complement",
            "your value is the penalty of 1 - g, (1 - g + eps)^p: the penalty is on the importances themselves, "
            "(g + eps)^p, so that a subcomponent with importance 0 costs (almost) nothing",
            sum((1 - g + eps).pow(p).sum(-1) for g in ci).mean(0).sum(),
        ),
    ]


def finite_penalty(fn: Callable, loss: Any, ci: list[Tensor], p: float, eps: float) -> None:
    """A NaN or infinite penalty: run again on importances without exact zeros and say where it comes from."""
    if not isinstance(loss, Tensor) or loss.is_meta or not loss.is_floating_point() or loss.numel() == 0:
        return  # no numbers to read: the shape and type checks that follow say what is wrong
    if bool(torch.isfinite(loss.detach()).all()):
        return
    kind = "NaN" if bool(torch.isnan(loss.detach()).any()) else "infinite"
    shifted = [g.detach().clone().clamp_min(0.05) for g in ci]
    try:
        again = fn(shifted, p, eps)
        finite_without_zeros = isinstance(again, Tensor) and bool(torch.isfinite(again.detach()).all())
    except Exception:  # a probe: its own failure says nothing
        finite_without_zeros = False
    if finite_without_zeros and kind == "NaN":
        hint = (
            "NaN from a negative base to a fractional power: the importances include exact zeros, and your penalty "
            "is finite once none is 0, so the base is negative where g = 0 (g - eps < 0 where g = 0: eps subtracted "
            f"where it is added?): a negative number to the power p = {p:g} is NaN. Use (g + eps) ** p"
        )
    elif finite_without_zeros:
        hint = "infinite only when some importance is exactly 0: a division by g or a log(g)? Use (g + eps) ** p"
    else:
        hint = (
            f"your penalty is {kind} even on importances without zeros: a negative base to the fractional power "
            f"p = {p:g}, a division by zero or a log of 0? Use (g + eps) ** p, with g in [0, 1] and eps > 0"
        )
    fail(f"importance_minimality_loss(ci, p, eps) is {kind}", hint, code="not_finite")


# ---------------------------------------------------------------- adversarial: projected onto [init, 1]
def adversarial_init_bound(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    low = [t.detach().clone() for t in init]
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        s = [
            torch.maximum((t + step * d.sign()).detach().clamp(max=1), lo)
            for t, d, lo in zip(leaves, grads, low, strict=True)
        ]
    hint = (
        "your sources never go below where they started: the projection is onto [init, 1] (init read as the lower "
        "bound) instead of [0, 1]: clamp(s, 0, 1) after every step, whatever the starting point"
    )
    return [("init_lower_bound", hint, torch.cat([t.flatten() for t in s]))]


def delta_count_hint(deltas: Any, n: int) -> str:
    """What the list of delta masks held, when it is not one tensor per matrix."""
    draw = "draw one U[0, 1] value per example and matrix, shape [batch inst], one tensor per matrix"
    real = [d for d in deltas if d is not None]
    if not real:
        return f"the delta mask was forgotten: {draw}"
    count = "one delta mask was" if len(deltas) == 1 else f"{len(deltas)} delta masks were"
    nones = f" ({len(deltas) - len(real)} of them None)" if len(real) < len(deltas) else ""
    return f"{count} returned{nones} where one per matrix ({n}) was asked: {draw}"


# ---------------------------------------------------------------- causal_importance: instance 0's parameters
def ci_instance0(p: dict[str, Tensor], alpha: float) -> Mistakes:
    """Instance 0's V, one MLP parameter or input a used for every instance: only instance 0's values are right."""
    out = []
    with torch.no_grad():
        for k, axis in [*((k, 0) for k in mis.CI_PARAMS), ("a", 1)]:  # a: [batch inst d_in]
            q = {**p, k: p[k].narrow(axis, 0, 1).expand_as(p[k])}
            index = f"{k}[0]" if axis == 0 else f"{k}[:, 0], {k}[:, :1]"
            hint = (
                f"only instance 0 is right: your code uses instance 0's {k} ({index}) for every instance; each "
                f"instance i has its own {k}{'[i]' if axis == 0 else '[:, i]'} (keep the inst axis in the einsum)"
            )
            out.append(("instance0_params", hint, mis.ci_reference(q, alpha)[0]))
    return out + slips.ci_slips(p)


def alpha_squared(seen: str) -> str:
    """' = alpha²' after a slope that is alpha squared in the region description (the leak applied twice)."""
    import re

    def named(m: re.Match) -> str:
        got, alpha = float(m.group(1)), float(m.group(2))
        if abs(got - alpha**2) <= 1e-3 * alpha**2:
            return m.group(0) + ": alpha² (alpha applied twice: a slope that already holds alpha multiplied by alpha)"
        return m.group(0)

    return re.sub(r"it is (-?[\d.e-]+) \(expected alpha \(([\d.e-]+)\)\)", named, seen)


def default_alpha(impl: Any, name: str, x0: Tensor) -> None:
    """The slope at the break points x = 0 and 1 themselves; then the exercise's signature,
    forward(ctx, x, alpha=0.01): apply(x) without alpha must leak with slope 0.01."""
    boundaries.closed_interval(impl, name, 0.03, x0.device)  # the checker's ALPHA
    variants.sigmoid_float64(impl, name, x0, 0.03)
    x = x0.clone().requires_grad_(True)
    try:
        out = impl.apply(x)
    except TypeError:
        return  # no default at all: the notebook always passes alpha, so this is not checked
    grad = diag.backward_grad(out, x, torch.ones_like(x0), name) if isinstance(out, Tensor) else None
    if not isinstance(grad, Tensor) or grad.shape != x0.shape:
        return
    leaky = (x0 < 0) if "Lower" in name else (x0 > 1)
    slopes = grad.detach()[leaky]
    if len(slopes) and not torch.allclose(slopes, torch.full_like(slopes, 0.01), rtol=1e-4, atol=1e-7):
        fail(
            f"{name}.apply(x) without alpha leaks with slope {float(slopes.mean()):.4g}, expected 0.01",
            "keep the given default: forward(ctx, x, alpha=0.01) (the exercise's signature)",
            code="alpha_default",
        )
