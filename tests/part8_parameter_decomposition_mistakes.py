"""The catalogue of known mistakes for section 8's checkers (`tests.part8_parameter_decomposition`).

Each `*_candidates` function returns the right answer and what realistic buggy implementations (mutants of
the reference) return on the checker's inputs, as (code, hint, value) triples for `expect_matches`. The pytest
suite checks through `audit_catalogues()` that the checker's inputs tell every mutant apart from the reference
and from each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_hints as hints
from tests.part8_parameter_decomposition_diagnosis import recon_reductions
from tests.part8_parameter_decomposition_diagnosis import sigmoid_forward_candidates as sigmoid_forward_candidates
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def mm(a: Tensor, W: Tensor) -> Tensor:
    """a [batch inst d_in] through W [inst d_out d_in]."""
    return torch.einsum("bid,iod->bio", a, W)


# --------------------------------------------------------------------------------------------
# Exercise 1: svd_terms
# --------------------------------------------------------------------------------------------
def svd_candidates(W: Tensor) -> tuple[Tensor, Mistakes]:
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = lambda U_, S_, Vh_: torch.einsum("iak,ik,ikb->ikab", U_, S_, Vh_)
    right = terms(U, S, Vh)
    mistakes = [
        ("no_sigma", "each term is σ_k u_k v_kᵀ: multiply by the singular value", terms(U, torch.ones_like(S), Vh)),
        ("sigma_squared", "multiply by σ_k, not σ_k²", terms(U, S**2, Vh)),
        ("sigma_sqrt", "multiply by σ_k itself, not its square root", terms(U, S.sqrt(), Vh)),
        ("ascending", "keep torch's order: largest singular value first", right.flip(1)),
        (
            "s_flipped",
            "σ_k belongs with u_k and v_k: S was reordered alone (U's columns and Vh's rows kept their order), so "
            "each σ is paired with the wrong u, v; torch.linalg.svd already returns the largest first",
            terms(U, S.flip(-1), Vh),
        ),
        (
            "cumulative",
            "return each term on its own, not the running sums Σ_{j≤k} (rank-k approximations)",
            right.cumsum(1),
        ),
    ]
    if U.shape[-1] == U.shape[-2]:  # d_out = r: S[:, :, None] broadcasts against U and scales its rows
        hint = "σ_k scales column k of U (U * S[:, None, :]); S[:, :, None] scales its rows"
        mistakes.append(("sigma_wrong_axis", hint, terms(U * S[:, :, None], torch.ones_like(S), Vh)))
    if Vh.shape[-1] == Vh.shape[-2]:  # d_in = r: S[:, None, :] broadcasts against Vh and scales its columns
        hint = "σ_k scales row k of Vh (S[:, :, None] * Vh); S[:, None, :] scales its columns"
        mistakes.append(("sigma_wrong_axis", hint, terms(U, torch.ones_like(S), Vh * S[:, None, :])))
    if U.shape[-1] == U.shape[-2]:  # U square: its rows have the right length too
        mistakes.append(("u_rows", "the u_k are the columns of U (U[:, :, k]), not its rows", terms(U.mT, S, Vh)))
    if Vh.shape[-1] == Vh.shape[-2]:
        mistakes.append(("vh_columns", "the v_k are the rows of Vh (Vh[:, k, :]), not its columns", terms(U, S, Vh.mT)))
    if U.shape[-1] == U.shape[-2] and Vh.shape[-1] == Vh.shape[-2]:
        hint = "u_k is column k of U and v_k row k of Vh: both were read the other way (rows of U, columns of Vh)"
        mistakes.append(("uv_transposed", hint, terms(U.mT, S, Vh.mT)))
    return right, mistakes


# --------------------------------------------------------------------------------------------
# Exercise 2: ablation_losses
# --------------------------------------------------------------------------------------------
def run_with_first(chain: WeightChain, W0: Tensor, x: Tensor, bias_twice: bool = False) -> Tensor:
    def layer_fn(layer: int, a: Tensor) -> Tensor:
        out = mm(a, W0 if layer == 0 else chain.weights[layer])
        return out + chain.biases[layer] if bias_twice and chain.biases[layer] is not None else out

    return chain(x, layer_fn)


def ablation_candidates(chain: WeightChain, terms: Tensor, x: Tensor) -> tuple[Tensor, Mistakes]:
    original, W0, K = chain(x), chain.weights[0], terms.shape[1]
    mse = lambda d: d.pow(2).mean(-1)

    def losses(first=lambda k: W0 - terms[:, k], reference=original, reduce=mse, bias_twice=False) -> Tensor:
        out = [reduce(run_with_first(chain, first(k), x, bias_twice) - reference) for k in range(K)]
        return torch.stack(out).permute(2, 0, 1)  # [k batch inst] -> [inst k batch]

    right = losses()
    hid = lambda W: chain.run(x, lambda layer, a: mm(a, W if layer == 0 else chain.weights[layer]))[1][1]
    mistakes = [
        ("keep_only_term", "remove the term: use W_0 - T_k, not T_k alone", losses(first=lambda k: terms[:, k])),
        ("add_term", "remove the term (W_0 - T_k), don't add it", losses(first=lambda k: W0 + terms[:, k])),
        (
            "cumulative",
            "remove one term at a time from the original W_0: start from chain.weights[0] for every k, "
            "don't keep subtracting from the previous ablation",
            losses(first=lambda k: W0 - terms[:, : k + 1].sum(1)),
        ),
        (
            "same_term",
            "every k removed the same (last) term: a function defined in a loop looks up `k` or the ablated matrix "
            "when it runs, not when it is defined; bind it as a default argument (lambda l, a, W=W: ...)",
            losses(first=lambda k: W0 - terms[:, K - 1]),
        ),
        ("sum_over_outputs", "take the mean over output dims, not the sum", losses(reduce=lambda d: d.pow(2).sum(-1))),
        ("not_squared", "square the differences before averaging", losses(reduce=lambda d: d.abs().mean(-1))),
        ("sqrt", "return the mean squared change itself, not its square root", right.sqrt()),
        (
            "mean_then_square",
            "square each difference, then average: mean(Δ²), not (mean Δ)²",
            losses(reduce=lambda d: d.mean(-1).pow(2)),
        ),
        (
            "hidden_change",
            "measure the change of the model's output chain(x), not of the first matrix's activation",
            torch.stack([mse(hid(W0 - terms[:, k]) - hid(W0)) for k in range(K)]).permute(2, 0, 1),
        ),
        (
            "normalised",
            "return the plain mean squared change, not divided by the size of the original output",
            right / original.pow(2).mean(-1).T[:, None, :],
        ),
        (
            "bias_twice",
            "layer_fn replaces only the product W_l a: the chain adds the bias itself after it",
            losses(bias_twice=True),
        ),
    ]
    return right, mistakes


# --------------------------------------------------------------------------------------------
# Exercise 3: faithfulness_loss
# --------------------------------------------------------------------------------------------
def faithfulness_candidates(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> tuple[Tensor, Mistakes]:
    deltas = [W - u @ v for W, u, v in zip(weights, U, V, strict=True)]
    sq = [d.pow(2).sum((-2, -1)) for d in deltas]  # [inst] each
    sizes = [W[0].numel() for W in weights]
    n = sum(sizes)
    right = (sum(sq) / n).sum()
    mistakes = [
        (
            "mean_of_means",
            "one global mean over all parameters of all matrices (divide the total by N), "
            "not a mean of per-matrix means",
            (sum(s / k for s, k in zip(sq, sizes, strict=True)) / len(sq)).sum(),
        ),
        (
            "sum_of_means",
            "divide the sum over all matrices by the total number of parameters N, not each matrix by its own size",
            sum(s / k for s, k in zip(sq, sizes, strict=True)).sum(),
        ),
        ("no_normalisation", "divide by N, the number of parameters of one instance's matrices", sum(sq).sum()),
        (
            "per_matrix_count",
            "divide by N, the number of parameters, only: not also by the number of matrices",
            (sum(sq) / n / len(sq)).sum(),
        ),
        (
            "mean_over_instances",
            "sum over instances (each is its own decomposition), and count the entries of one "
            "instance's matrices (W[0].numel(), not W.numel())",
            (sum(sq) / n).mean(),
        ),
        (
            "mse_loss_sum",
            "F.mse_loss(U @ V, W) averages over the instances too, and summing per-matrix means weighs the matrices "
            "equally: sum the squared deltas per instance over all matrices, divide by N, sum over instances",
            sum(d.pow(2).mean() for d in deltas),
        ),
        (
            "mse_loss_mean",
            "F.mse_loss(U @ V, W) averages over the instances too, and a mean of per-matrix means weighs the matrices "
            "equally: sum the squared deltas per instance over all matrices, divide by N, sum over instances",
            sum(d.pow(2).mean() for d in deltas) / len(deltas),
        ),
        (
            "weight_norm",
            "normalise by the number of parameters N, not by the squared norm of the weights",
            (sum(sq) / sum(W.pow(2).sum((-2, -1)) for W in weights)).sum(),
        ),
        (
            "not_squared",
            "square the entries of the delta (a squared Frobenius norm)",
            (sum(d.abs().sum((-2, -1)) for d in deltas) / n).sum(),
        ),
        (
            "frobenius_not_squared",
            "use the squared Frobenius norm ‖W - UV‖², not the norm",
            (sum(s.sqrt() for s in sq) / n).sum(),
        ),
        ("rms", "the loss is the mean squared entry itself, not its square root", (sum(sq) / n).sqrt().sum()),
        (
            "spectral_norm",
            "‖W - UV‖ is the Frobenius norm (the root of the sum of squared entries): ord=2 on a matrix is the "
            "spectral norm, its largest singular value (use ord='fro', or square and sum the entries)",
            (sum(torch.linalg.matrix_norm(d, ord=2) ** 2 for d in deltas) / n).sum(),
        ),
        (
            "sum_squared",
            "square each entry of the delta, then sum: Σ δ², not (Σ δ)²",
            (sum(d.sum((-2, -1)) ** 2 for d in deltas) / n).sum(),
        ),
        ("last_matrix_only", "add up the deltas of every matrix, not only the last one", (sq[-1] / n).sum()),
        ("first_matrix_only", "add up the deltas of every matrix (a `return` inside the loop?)", (sq[0] / n).sum()),
    ]
    return right, mistakes


# --------------------------------------------------------------------------------------------
# Exercise 4: the leaky hard sigmoids
# --------------------------------------------------------------------------------------------
def slope(x: Tensor, below: float, inside: float, above: float) -> Tensor:
    return torch.where(x < 0, below, torch.where(x > 1, above, inside)).to(x.dtype)


def sigmoid_candidates(x: Tensor, g: Tensor, alpha: float, lower: bool) -> tuple[Tensor, Mistakes]:
    """Gradients for the upstream gradient g: the right one and the usual mistakes."""
    a = alpha
    right = g * (slope(x, a, 1, 0) if lower else slope(x, 0, 1, a))
    side, other = ("below 0", "upper") if lower else ("above 1", "lower")
    leak_mask = x < 0 if lower else x > 1
    mistakes = [
        (
            "wrong_side",
            f"the leak is on the wrong side: this is the {other}-leaky gradient; this one leaks {side}",
            g * (slope(x, 0, 1, a) if lower else slope(x, a, 1, 0)),
        ),
        (
            "both_sides",
            f"leak on one side only ({side}); the other flat side passes no gradient",
            g * slope(x, a, 1, a),
        ),
        (
            "other_side_open",
            f"the slope is 0 on the flat side that doesn't leak ({'above 1' if lower else 'below 0'}), not 1",
            g * (slope(x, a, 1, 1) if lower else slope(x, 1, 1, a)),
        ),
        (
            "no_leak",
            f"let a gradient of slope alpha through {side}: a plain clamp's gradient. Causes: no leak, or an integer "
            "slope tensor ((x >= 0).long(), then slope[m] = alpha truncates alpha to 0: build it with .to(x.dtype))",
            g * slope(x, 0, 1, 0),
        ),
        (
            "straight_through",
            "the slope is 1 only on [0, 1]; outside it is alpha on the leaky side and 0 on the "
            "other. (Slope 1 everywhere also comes from saving the clamped output instead of x in forward)",
            g.clone(),
        ),
        (
            "no_grad_output",
            "multiply the slope by grad_output (the chain rule)",
            slope(x, a, 1, 0) if lower else slope(x, 0, 1, a),
        ),
        (
            "leak_not_scaled",
            f"{side} the gradient is alpha · grad_output, not alpha alone",
            torch.where(leak_mask, torch.full_like(g, a), right),
        ),
        (
            "alpha_ignored",
            "use the alpha passed to forward (store it on ctx), not a fixed 0.01",
            g * (slope(x, 0.01, 1, 0) if lower else slope(x, 0, 1, 0.01)),
        ),
        (
            "value_as_slope",
            f"{side} the slope is alpha, the derivative of the leaky line, not its value alpha·x",
            torch.where(leak_mask, g * a * x, right),
        ),
        (
            "slope_from_grad",
            "the slope depends on the x saved in forward, not on grad_output (conditions on x)",
            g * (slope(g, a, 1, 0) if lower else slope(g, 0, 1, a)),
        ),
        (
            "alpha_everywhere",
            "alpha is the slope on the leaky side only: don't add it to the slope everywhere",
            g * slope(x, a, 1 + a, a),
        ),
        (
            "grad_output_leak_only",
            "multiply by grad_output on [0, 1] too, not only on the leaky side",
            torch.where(leak_mask, right, slope(x, 0, 1, 0)),
        ),
        (
            "conditions_swapped",
            "slope 1 on [0, 1] and 0 on the side that doesn't leak: the conditions are swapped",
            g * (slope(x, a, 0, 1) if lower else slope(x, 1, 0, a)),
        ),
    ]
    return right, mistakes


# --------------------------------------------------------------------------------------------
# Exercise 5: CausalImportance.forward
# --------------------------------------------------------------------------------------------
class Leaky(torch.autograd.Function):
    """clamp(x, 0, 1) with chosen slopes below 0 and above 1 (the checker's own reference)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, below: float, above: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.below, ctx.above = below, above
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * slope(x, ctx.below, 1.0, ctx.above), None, None


CI_PARAMS = ("V", "w_in", "b_in", "w_out", "b_out")


def ci_reference(
    p: dict[str, Tensor], alpha: float, variant: str = "right", lower=None, upper=None
) -> tuple[Tensor, Tensor]:
    """(lower, upper) of the reference, or of a mutant (a variant name, or other leak slopes)."""
    w_in, bi, w_out, bo = p["w_in"], p["b_in"], p["w_out"], p["b_out"]
    if variant == "shared_mlp":
        w_in, bi, w_out, bo = (t[:, :1].expand_as(t) for t in (w_in, bi, w_out, bo))
    if variant in ("instance_0", "instance_mean"):  # one MLP for every instance: instance 0's, or the mean
        w_in, bi, w_out, bo = (t[:1] if variant == "instance_0" else t.mean(0, True) for t in (w_in, bi, w_out, bo))
    inner = torch.einsum("bid,icd->bic", p["a"], p["V"])
    if variant == "inner_detached":
        inner = inner.detach()
    act = {"relu": F.relu, "no_gelu": lambda t: t, "gelu_on_h": lambda t: t}.get(variant, F.gelu)
    act = (lambda t: F.gelu(t, approximate="tanh")) if variant == "gelu_tanh" else act
    inner = F.gelu(inner) if variant == "gelu_on_h" else inner
    if variant == "w_in_w_out_swapped":
        w_in, w_out = w_out, w_in
    pre = inner[..., None] * w_in + (0 if variant in ("no_b_in", "b_in_outside") else bi)
    pre = inner[..., None] * (w_in + bi) if variant == "b_in_in_product" else pre
    if variant == "gelu_outside":
        pre, act = pre, lambda t: t
    hidden = act(pre) + (bi if variant == "b_in_outside" else 0)
    z = (hidden * w_out).sum(-1) if variant != "mean_over_hidden" else (hidden * w_out).mean(-1)
    z = z.sum(-1, keepdim=True).expand_as(z) if variant == "sum_over_C" else z
    z = z + (0 if variant == "no_b_out" else bo) * (w_in.shape[-1] if variant == "b_out_in_sum" else 1)
    if variant == "gelu_outside":
        z = F.gelu(z)
    squash = {
        "smooth_sigmoid": torch.sigmoid,
        "no_sigmoid": lambda t: t,
        "torch_hardsigmoid": F.hardsigmoid,
        "no_upper_clamp": F.relu,
    }.get(variant)
    if squash is not None:
        return squash(z), squash(z)
    return Leaky.apply(z, *(lower or (alpha, 0.0))), Leaky.apply(z, *(upper or (0.0, alpha)))


CI_VALUE_MISTAKES = [
    ("relu", "the MLP's hidden layer uses GELU (F.gelu), not ReLU"),
    ("no_gelu", "apply GELU to the MLP's hidden layer (w_in h + b_in)"),
    (
        "gelu_outside",
        "GELU goes on the hidden layer, inside the sum: z = Σ_j w_out GELU(w_in h + b_in) + b_out, not GELU of the "
        "MLP's output",
    ),
    ("no_b_in", "add b_in inside the GELU"),
    ("w_in_w_out_swapped", "w_in and w_out swapped: z = Σ_j w_out GELU(w_in h + b_in) + b_out"),
    ("b_in_in_product", "GELU(w_in h + b_in): the bias is added to the product, not to w_in (h (w_in + b_in))"),
    ("b_in_outside", "add b_in inside the GELU: GELU(w_in h + b_in), not GELU(w_in h) + b_in"),
    ("no_b_out", "add b_out after the sum over the hidden units"),
    ("b_out_in_sum", "add b_out once, after the sum over the hidden units: inside the sum it is added d_ci times"),
    ("gelu_on_h", "GELU goes on the hidden layer w_in h + b_in, not on h (the hidden layer is then linear)"),
    ("gelu_tanh", "use the exact GELU, F.gelu(x) (erf); approximate='tanh' differs by ~1e-4 relative"),
    ("mean_over_hidden", "sum over the hidden units (Σ_j w_out · hidden), don't average"),
    ("shared_mlp", "every subcomponent has its own MLP: use w_in[i, c], not one MLP for all subcomponents"),
    ("instance_0", "every instance has its own MLPs: keep the inst axis of the parameters"),
    ("instance_mean", hints.INSTANCE_MEAN),
    ("sum_over_C", hints.SUM_OVER_C),
    ("smooth_sigmoid", "apply the hard sigmoid (the leaky autograd functions), not torch.sigmoid"),
    ("torch_hardsigmoid", "F.hardsigmoid is relu6(z + 3) / 6, not clamp(z, 0, 1): use the leaky hard sigmoids"),
    ("no_sigmoid", "pass the MLP output through the hard sigmoids: causal importances lie in [0, 1]"),
    ("no_upper_clamp", "clamp at 1 too: the hard sigmoid is clamp(z, 0, 1), not a ReLU"),
]


def ci_value_candidates(p: dict[str, Tensor], alpha: float) -> tuple[Tensor, Mistakes]:
    """Forward values (lower == upper in the forward pass)."""
    with torch.no_grad():
        return ci_reference(p, alpha)[0], [(c, h, ci_reference(p, alpha, c)[0]) for c, h in CI_VALUE_MISTAKES]


def ci_grad_candidates(p: dict[str, Tensor], alpha: float) -> tuple[list[Tensor], list[tuple[str, str, list[Tensor]]]]:
    """Gradients of Σ lower·g_lower + upper·g_upper with respect to V and the MLP parameters."""
    leaves = {k: p[k].detach().clone().requires_grad_() for k in CI_PARAMS}
    q = {**p, **leaves}

    def grads(variant: str = "right", **slopes: Any) -> list[Tensor]:
        lo, up = ci_reference(q, alpha, variant, **slopes)
        lo, up = (
            (lo.detach() if variant == "lower_detached" else lo),
            (up.detach() if variant == "upper_detached" else up),
        )
        out = (lo * p["g_lower"]).sum() + (up * p["g_upper"]).sum()
        found = torch.autograd.grad(out, [leaves[k] for k in CI_PARAMS], allow_unused=True)
        return [g if g is not None else torch.zeros_like(leaves[k]) for k, g in zip(CI_PARAMS, found, strict=True)]

    L, Up = (alpha, 0.0), (0.0, alpha)
    mistakes = [
        (
            "swapped",
            "return (lower-leaky, upper-leaky) in that order: the first goes to the masks, the second to the "
            "minimality penalty",
            grads(lower=Up, upper=L),
        ),
        (
            "both_lower",
            "the second output's gradient is the lower sigmoid's (it leaks below 0, not above 1): it should be "
            "UpperLeakyHardSigmoid.apply(z, alpha), of z itself (not LowerLeakyHardSigmoid, nor applied to the first "
            "output)",
            grads(lower=L, upper=L),
        ),
        (
            "both_upper",
            "the first output's gradient is the upper sigmoid's (it leaks above 1, not below 0): it should be "
            "LowerLeakyHardSigmoid.apply(z, alpha), of z itself (not UpperLeakyHardSigmoid, nor applied to the "
            "second output)",
            grads(lower=Up, upper=Up),
        ),
        (
            "no_leak",
            "use the leaky hard sigmoids: a plain clamp passes no gradient outside [0, 1]",
            grads(lower=(0.0, 0.0), upper=(0.0, 0.0)),
        ),
        (
            "alpha_ignored",
            "pass self.alpha to the sigmoids (LowerLeakyHardSigmoid.apply(z, self.alpha))",
            grads(lower=(0.01, 0.0), upper=(0.0, 0.01)),
        ),
        ("inner_detached", "gradients must reach V: don't detach the inner activations V a", grads("inner_detached")),
        (
            "lower_no_leak",
            hints.LOWER_NO_LEAK,
            grads(lower=(0.0, 0.0)),
        ),
        (
            "upper_no_leak",
            hints.UPPER_NO_LEAK,
            grads(upper=(0.0, 0.0)),
        ),
        (
            "lower_detached",
            "the lower-leaky importances must carry gradients (the masks train the MLPs through them)",
            grads("lower_detached"),
        ),
        (
            "upper_detached",
            "the upper-leaky importances must carry gradients (the minimality penalty trains the MLPs through them)",
            grads("upper_detached"),
        ),
    ]
    return grads(), mistakes


# --------------------------------------------------------------------------------------------
# Exercise 7: masked_product
# --------------------------------------------------------------------------------------------
PRODUCT_LEAVES = ("U", "V", "mask")


def product_reference(p: dict[str, Tensor], variant: str = "right") -> Tensor:
    a, W, U, V, m, dm = (p[k] for k in ("a", "W", "U", "V", "mask", "delta_mask"))
    inner = torch.einsum("bid,icd->bic", a, V)
    delta = W - U @ V
    if variant == "delta_detached":
        delta = delta.detach()
    m = {"mask_squared": m**2, "mask_ignored": torch.ones_like(m), "mask_inverted": 1 - m}.get(variant, m)
    comps = torch.einsum("bic,ioc->bio", inner * m, U)
    if variant in ("mask_batch_mean", "mask_batch_sum"):  # one masked matrix for the whole batch
        comps = torch.einsum("bic,ioc->bio", inner * (m.mean(0) if variant == "mask_batch_mean" else m.sum(0)), U)
    if variant == "mask_mean":
        comps = torch.einsum("bic,ioc->bio", inner, U) * m.mean(-1, keepdim=True)
    dm = dm[..., None]
    delta_term = {
        "no_delta": 0 * mm(a, delta),
        "delta_unmasked": mm(a, delta),
        "full_W": dm * mm(a, W),
        "delta_sign": -dm * mm(a, delta),
        "delta_mask_inverted": (1 - dm) * mm(a, delta),
        "delta_of_masked": dm * (mm(a, W) - comps),
        "delta_mask_on_W": dm * mm(a, W) - mm(a, U @ V),
        "delta_mask_mean": dm.mean() * mm(a, delta),
    }.get(variant, dm * mm(a, delta))
    if variant == "delta_mask_everywhere":
        return dm * (comps + mm(a, delta))
    return comps + delta_term


PRODUCT_MISTAKES = [
    ("no_delta", "the delta mask forgotten: add the delta term m_Δ · (W - U V) a"),
    ("delta_unmasked", "multiply the delta term by its mask: delta_mask[..., None] * ((W - U V) a)"),
    ("full_W", "the delta is W - U V (what the subcomponents miss), not W"),
    ("delta_sign", "the delta is W - U V, not U V - W"),
    ("mask_ignored", "multiply each subcomponent's inner activation V a by its mask before going back up with U"),
    ("mask_squared", "apply the mask once"),
    ("mask_inverted", "a mask of 1 keeps a subcomponent whole: multiply by mask, not by 1 - mask"),
    ("delta_mask_everywhere", "the delta mask scales only the delta term, not the subcomponents' output"),
    ("delta_mask_inverted", "scale the delta term by delta_mask itself, not by 1 - delta_mask"),
    ("delta_of_masked", "the delta is (W - U V) a, what the unmasked subcomponents miss, not W a - U (mask ⊙ V a)"),
    ("delta_mask_on_W", "the delta mask scales the whole delta (W - U V) a, not only its W a part"),
    ("delta_mask_mean", "each example has its own delta mask: delta_mask[..., None] * delta, not delta_mask.mean()"),
    ("mask_batch_mean", "every example has its own masks: don't average the mask over the batch (one per instance)"),
    ("mask_batch_sum", hints.MASK_BATCH_SUM),
    (
        "mask_mean",
        "each subcomponent has its own mask: multiply V a by mask (one factor per subcomponent c) before U, not the "
        "whole output U V a by the mean mask",
    ),
]


def product_candidates(p: dict[str, Tensor]) -> tuple[Tensor, Mistakes]:
    with torch.no_grad():
        return product_reference(p), [(c, h, product_reference(p, c)) for c, h in PRODUCT_MISTAKES]


def product_grad_candidates(
    p: dict[str, Tensor], g: Tensor
) -> tuple[list[Tensor], list[tuple[str, str, list[Tensor]]]]:
    def grads(variant: str) -> list[Tensor]:
        q = {**p, **{k: p[k].detach().clone().requires_grad_() for k in PRODUCT_LEAVES}}
        return list(torch.autograd.grad((product_reference(q, variant) * g).sum(), [q[k] for k in PRODUCT_LEAVES]))

    hint = "keep the delta differentiable: W - U V depends on U and V (no .detach())"
    return grads("right"), [("delta_detached", hint, grads("delta_detached"))]


# --------------------------------------------------------------------------------------------
# Exercise 8: stochastic_reconstruction_losses
# --------------------------------------------------------------------------------------------
def masked_run(
    chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor, layers: set[int], others: str = "W", bias: bool = False
):
    """(output, activations after each matrix) with the matrices in `layers` masked (`bias`: layer_fn adds the
    bias too, so the chain adds it twice)."""

    def layer_fn(layer: int, a: Tensor) -> Tensor:
        out = product(layer, a)
        return out + chain.biases[layer] if bias and chain.biases[layer] is not None else out

    def product(layer: int, a: Tensor) -> Tensor:
        q = {"a": a, "W": chain.weights[layer], "U": p["U"][layer], "V": p["V"][layer]}
        if layer in layers:
            return product_reference({**q, "mask": p["masks"][layer], "delta_mask": p["delta_masks"][layer]})
        if others == "UV":  # the other matrices as U V, without their delta
            return mm(a, p["U"][layer] @ p["V"][layer])
        return mm(a, chain.weights[layer])

    out, inputs = chain.run(x, layer_fn)
    return out, [*inputs[1:], out]


def recon_reference(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor, variant: str = "right") -> Tensor:
    """(full, layerwise) stacked, for the reference or a mutant."""
    L = len(chain.weights)
    target, target_acts = chain(x), masked_run(chain, p, x, set())[1]
    if variant == "vs_input":
        target = x
    if variant == "target_UV":
        target = masked_run(chain, p, x, set(), "UV")[0]
    if variant == "masks_shifted":  # masks[l - 1]: matrix 0 gets the last matrix's masks
        p = {**p, **{k: p[k][-1:] + p[k][:-1] for k in ("masks", "delta_masks")}}
    reduce = {
        "mean_over_instances": lambda d: d.pow(2).mean(),
        "sum_over_outputs": lambda d: d.pow(2).sum(-1).mean(0).sum(),
        "sum_over_batch": lambda d: d.pow(2).mean(-1).sum(0).sum(),
        "not_squared": lambda d: d.abs().mean((0, 2)).sum(),
        "rmse": lambda d: d.pow(2).mean((0, 2)).sqrt().sum(),
        "rmse_total": lambda d: d.pow(2).mean((0, 2)).sum().sqrt(),
        **{name: reduction for name, (reduction, _) in RECON_REDUCTIONS.items()},
    }.get(variant, lambda d: d.pow(2).mean((0, 2)).sum())
    if variant == "delta_masks_ignored":
        p = {**p, "delta_masks": [torch.ones_like(d) for d in p["delta_masks"]]}
    if variant in ("delta_masks_first", "masks_first"):  # every matrix gets matrix 0's random masks
        key = variant.removesuffix("_first")
        p = {**p, key: [p[key][0]] * len(p[key])}
    others, bias = "UV" if variant == "others_without_delta" else "W", variant == "bias_twice"
    full = reduce(masked_run(chain, p, x, set(range(L)), bias=bias)[0] - target)
    sets = {
        "cumulative": [set(range(layer + 1)) for layer in range(L)],
        "all_layers": [set(range(L))] * L,
        "layerwise_first_only": [{0}],
        "layerwise_complement": [set(range(L)) - {layer} for layer in range(L)],
        "layerwise_last": [{L - 1}] * L,
        "layerwise_from_m": [set(range(layer, L)) for layer in range(L)],
    }.get(variant, [{layer} for layer in range(L)])
    per_layer = []
    for s in sets:
        out, acts = masked_run(chain, p, x, s, others, bias)
        if variant == "hidden_target":  # compare the masked matrix's own output activation
            (layer,) = s
            per_layer.append(reduce(acts[layer] - target_acts[layer]))
        else:
            per_layer.append(reduce(out - target))
    if variant == "layerwise_with_full":
        per_layer.append(full)
    layerwise = sum(per_layer) if variant == "layerwise_sum" else sum(per_layer) / len(per_layer)
    return torch.stack([full, layerwise])


RECON_REDUCTIONS = recon_reductions()

RECON_MISTAKES = [
    ("not_squared", "square the differences: a mean squared error"),
    ("rmse", "the loss is the mean squared error itself, not its square root (RMSE)"),
    ("rmse_total", "the loss is the mean squared error summed over instances, not the square root of that"),
    ("delta_masks_first", "each matrix l gets its own delta mask delta_masks[l], not matrix 0's for every one"),
    ("masks_first", "each matrix l gets its own masks masks[l], not matrix 0's for every one"),
    ("delta_masks_ignored", "pass each matrix's delta mask to masked_product (delta_masks[l]), not ones"),
    ("vs_input", "compare with the original model's output chain(x), not with the input x"),
    ("target_UV", "the target is the original model's output chain(x) (weights W_l), not the run with U_l V_l"),
    ("masks_shifted", "matrix l gets masks[l] and delta_masks[l]: an index off by one (masks[l - 1])?"),
    ("mean_over_instances", "sum the per-instance losses over instances (mean over output dims and batch only)"),
    ("sum_over_outputs", "take the mean over output dims, not the sum"),
    ("sum_over_batch", "take the mean over the batch, not the sum"),
    ("layerwise_sum", "average the layerwise losses over the matrices, don't sum them"),
    ("cumulative", "the layerwise loss masks only matrix l; every other matrix keeps its original weights"),
    ("all_layers", "the layerwise loss masks one matrix at a time, not all of them"),
    (
        "layerwise_complement",
        "the layerwise loss masks matrix l alone and keeps every other matrix original (not all matrices but l)",
    ),
    (
        "layerwise_last",
        "every layerwise run masked the last matrix: closures made in a loop read the loop variable when called, "
        "after the loop (late binding); bind it now, lambda l, a, m=m: ...",
    ),
    ("layerwise_from_m", "run m of the layerwise loss masks matrix m only (l == m), not m and every later one"),
    (
        "layerwise_first_only",
        "every layerwise run masked matrix 0: the loop over l doesn't use l (masks[0], or a {0} where {l} belongs); "
        "run l masks matrix l alone, and the layerwise loss is the mean of those L losses",
    ),
    ("layerwise_with_full", "average only the L runs with one matrix masked; the full run is the other output"),
    ("others_without_delta", "the matrices that are not masked keep their original weights W_l (not U_l V_l)"),
    ("hidden_target", "every loss compares the model's final output with chain(x), never a hidden activation"),
    ("bias_twice", "layer_fn replaces only the product W_l a: the chain adds the bias itself after it"),
]


def recon_candidates(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> tuple[Tensor, Mistakes]:
    with torch.no_grad():
        right = recon_reference(chain, p, x)
        mistakes = [(c, h, recon_reference(chain, p, x, c)) for c, h in RECON_MISTAKES]
        mistakes += [("reductions", h, recon_reference(chain, p, x, name)) for name, (_, h) in RECON_REDUCTIONS.items()]
        mistakes.append(("swapped", "return (full, layerwise) in that order", right.flip(0)))
    return right, mistakes


# --------------------------------------------------------------------------------------------
# Exercise 9: importance_minimality_loss
# --------------------------------------------------------------------------------------------
def minimality_reference(ci: list[Tensor], p: float, eps: float, variant: str = "right") -> Tensor:
    term = {
        "p_ignored": lambda g: g + eps,
        "p_inverted": lambda g: (g + eps).pow(1 / p),
        "eps_outside": lambda g: g.pow(p) + eps,
        "no_eps": lambda g: g.pow(p),
        "eps_clamp": lambda g: g.clamp_min(eps).pow(p),
        "pow_swapped": lambda g: torch.pow(p, g + eps),
        "minus_eps_p": lambda g: (g + eps).pow(p) - eps**p,
    }.get(variant, lambda g: (g + eps).pow(p))
    if variant == "mean_per_matrix":
        return sum(term(g).mean() for g in ci)
    if variant == "mean_everything":
        return torch.cat([term(g) for g in ci], dim=-1).mean()
    layers = ci[:1] if variant == "one_layer" else ci
    per_layer = [term(g).mean(-1) if variant == "mean_over_components" else term(g).sum(-1) for g in layers]
    per_example = sum(per_layer) / (len(ci) if variant == "mean_over_layers" else 1)  # [batch inst]
    if variant == "norm_per_matrix":
        per_example = sum(term(g).sum(-1).pow(1 / p) for g in layers)
    if variant == "norm":
        per_example = per_example.pow(1 / p)
    if variant == "p_outside":
        per_example = sum((g + eps).sum(-1) for g in ci).pow(p)
    if variant == "sum_over_batch":
        return per_example.sum(0).sum()
    return per_example.mean(0).mean() if variant == "mean_over_instances" else per_example.mean(0).sum()


MINIMALITY_MISTAKES = [
    ("mean_over_components", "sum over subcomponents, don't average: every important piece costs the same"),
    ("mean_over_layers", "sum over matrices: one sum over all subcomponents of all matrices, not a mean over matrices"),
    ("one_layer", "add up the penalties of every matrix, not only the first one"),
    ("sum_over_batch", "average over the batch, don't sum over it"),
    ("mean_over_instances", "sum over instances (each is its own decomposition)"),
    ("mean_per_matrix", "a .mean() per matrix averages over C and instances too: sum over C, mean over batch"),
    ("mean_everything", "sum over matrices and subcomponents and instances; only the batch is averaged"),
    ("p_ignored", "raise each importance to the power p: (g + eps) ** p"),
    ("p_inverted", "the exponent is p, not 1 / p"),
    ("eps_outside", "add eps inside the power, (g + eps) ** p, so the gradient stays finite at g = 0"),
    ("no_eps", "use the eps you are given, inside the power: (g + eps) ** p"),
    ("eps_clamp", "add eps to every importance, (g + eps) ** p: clamp_min(eps) only raises the ones below eps"),
    ("norm", "the penalty is the sum of (g + eps)^p itself, not its 1/p-th root (an L_p norm)"),
    ("pow_swapped", "(g + eps) ** p: torch.pow takes the base first, torch.pow(g + eps, p), not p ** (g + eps)"),
    ("minus_eps_p", "the penalty is (g + eps)^p itself: don't subtract eps^p (the cost of a zero importance)"),
    (
        "norm_per_matrix",
        "the penalty is Σ (g + eps)^p itself, not a p-norm per matrix: vector_norm(ord=p) takes the 1/p-th root",
    ),
    ("p_outside", "raise each importance to the power p, then sum: Σ (g + eps)^p, not (Σ (g + eps))^p"),
]


def minimality_candidates(ci: list[Tensor], p: float, eps: float) -> tuple[Tensor, Mistakes]:
    with torch.no_grad():
        right = minimality_reference(ci, p, eps)
        return right, [(c, h, minimality_reference(ci, p, eps, c)) for c, h in MINIMALITY_MISTAKES]


# --------------------------------------------------------------------------------------------
# Exercise 10: adversarial_sources
# --------------------------------------------------------------------------------------------
def adversarial_reference(
    loss_fn: Callable, init: list[Tensor], n_steps: int, step_size: float, variant: str = "right"
) -> list[Tensor]:
    n = {"one_step": 1, "extra_step": n_steps + 1, "one_step_short": n_steps - 1, "no_steps": 0}.get(variant, n_steps)
    s, first, running = [t.detach().clone() for t in init], None, None
    best = (float(loss_fn(s)), s)
    for _ in range(n):
        if variant == "clamp_before_step":
            s = [t.clamp(0, 1) for t in s]
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        first = grads if first is None else first
        grads = first if variant == "stale_gradient" else grads
        running = grads if running is None else [a + b for a, b in zip(running, grads, strict=True)]
        grads = running if variant == "grad_accumulates" else grads
        if variant == "shared_sign":  # one direction for every entry of every source: the summed gradient's sign
            total = sum(g.sum() for g in grads)
            grads = [torch.full_like(g, float(total)) for g in grads]
        if variant == "shared_sign_per_source":
            grads = [g.sum().expand_as(g) for g in grads]
        direction = {
            "no_sign": lambda g: g,
            "normalised_grad": lambda g: g / g.norm().clamp_min(1e-12),
            "sign_01": lambda g: (g > 0).to(g.dtype),
        }.get(variant, torch.sign)
        with torch.no_grad():
            sign = -1 if variant == "descent" else 1
            start = [t.detach().clone() for t in init] if variant == "from_init" else s
            s = [t + sign * step_size * direction(g) for t, g in zip(start, grads, strict=True)]
            if variant not in ("no_clamp", "clamp_at_end", "clamp_before_step"):
                s = [t.clamp(0, 1) for t in s]
            best = max(best, (float(loss_fn(s)), s), key=lambda b: b[0])
    s = best[1] if variant == "best_seen" else s
    if variant == "clamp_at_end":
        s = [t.clamp(0, 1) for t in s]
    return [t.detach() for t in s]


ADVERSARIAL_MISTAKES = [
    ("descent", "gradient *ascent*: the search looks for the masks that hurt the most (r + step · sign(grad))"),
    ("no_clamp", "project back onto [0, 1] after every step (clamp)"),
    ("clamp_at_end", "clamp after every step, not only at the end"),
    ("clamp_before_step", "clamp after each step (so the sources you return are in [0, 1]), not before it"),
    ("no_sign", "step by step_size · sign(gradient), not by the raw gradient"),
    (
        "normalised_grad",
        "step by step_size · sign(gradient) (every entry moves by step_size), not a normalised gradient",
    ),
    ("sign_01", "sign(gradient) is -1, 0 or +1: entries with a negative gradient step down"),
    ("one_step", "take n_steps steps"),
    ("extra_step", "take exactly n_steps steps"),
    ("one_step_short", "take exactly n_steps steps: one is missing (range(n_steps) runs n_steps times)"),
    ("no_steps", "take n_steps steps of ascent: these are the initial sources"),
    ("stale_gradient", "recompute the gradient at the current sources on every step"),
    (
        "from_init",
        "each step starts from the current sources, r = clamp(r + step_size · sign(∂loss/∂r), 0, 1), not from init",
    ),
    (
        "grad_accumulates",
        "each step used the sum of all gradients so far: .backward() adds into .grad, so zero it every step "
        "(r.grad = None) or use torch.autograd.grad",
    ),
    (
        "shared_sign",
        "every entry steps by the sign of its own partial derivative, sign(∂loss/∂r) elementwise, not one sign "
        "(of a summed gradient) for all entries",
    ),
    (
        "shared_sign_per_source",
        "every entry steps by the sign of its own partial derivative, sign(∂loss/∂r) elementwise, not one sign "
        "per source (of its summed gradient)",
    ),
]


def adversarial_candidates(loss_fn: Callable, init: list[Tensor], n_steps: int, step_size: float):
    flat = lambda ts: torch.cat([t.flatten() for t in ts])
    run = lambda variant: flat(adversarial_reference(loss_fn, init, n_steps, step_size, variant))
    return run("right"), [(c, h, run(c)) for c, h in ADVERSARIAL_MISTAKES]
