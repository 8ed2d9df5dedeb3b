"""Diagnoses shared by parts 1 and 2 that describe what a wrong answer does, for mistakes nobody listed.

* Forward passes: where the output disagrees with the reference, by output pre-activation (a wrong output
  nonlinearity is right on one range and wrong on another); the hidden nonlinearity read off a one-feature model;
  and the gradients reaching the parameters (values can be right while a .detach() cuts the training signal).
* Losses: the weights and targets the learner's loss implies, read from its gradient with respect to `out`.
* Generators: the shape of a wrong rate table (constant, p's entries in another order, an affine function of p).

Every diagnosis here runs only after a test has failed (or, for the gradients, compares with the reference), so
it cannot fail a correct answer; each returns None when what it sees has no clear description.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import Tensor

from tests import part1_superposition_value_laws as value_laws
from tests import part1_superposition_value_shapes as value_shapes
from tests.checking import FAILURE_PROBABILITY, _describe_error, fail
from tests.part1_superposition_hints import (
    duplicated_block_failure,
    factor_name,
    gap_shape,
    importance_weights_hint,
    input_transform_hint,
    pair_slice_candidates,
)
from tests.part1_superposition_zero_input import zero_input_reading
from tests.precision import precision_reading

# A generator checker computes at most ~600 statistics (rates, pairwise joints, lagged joints, value means and
# quartiles, summed over its configurations); each gets FAILURE_PROBABILITY / GEN_TESTS.
GEN_TESTS = 1_000
DELTA = FAILURE_PROBABILITY / GEN_TESTS


def rate_tolerance(n: int | Tensor, p: Tensor | float) -> Tensor:
    """Bernstein tolerance on a frequency from n Bernoulli(p) draws, elementwise, at failure probability DELTA."""
    p = torch.as_tensor(p, dtype=torch.float64)
    n = torch.as_tensor(n, dtype=torch.float64).clamp_min(1)
    log_term = math.log(2 / DELTA)
    a = log_term / (3 * n)
    return a + torch.sqrt(a * a + 2 * p * (1 - p) * log_term / n)


def consistent(observed: Tensor, table: Tensor | float, n: int) -> bool:
    """`observed` frequencies (from n draws each) are all within tolerance of `table`."""
    table = torch.as_tensor(table, dtype=torch.float64).expand_as(observed)
    return bool(((observed - table).abs() <= rate_tolerance(n, table)).all())


# --------------------------------------------------------------------------------------------
# Forward passes
# --------------------------------------------------------------------------------------------
def relu_placement_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, act: Callable = lambda t: t) -> list:
    """Catalogue entries (code, hint, output) for the output ReLU and the bias combined otherwise than ReLU(z + b),
    with z = W_outᵀ act(W_in x) the weights term."""
    h = act(torch.einsum("...if,idf->...id", x, W_in))
    z = torch.einsum("...id,idf->...if", h, W_out)
    return [
        (
            "relu_before_bias",
            "a ReLU is applied to the weights term before b_final is added, ReLU(ReLU(z) + b_final): apply the output "
            "ReLU once, after adding b_final (z = the product with the weights)",
            torch.relu(torch.relu(z) + b),
        ),
        (
            "bias_on_input",
            "b_final is added to the input features before the first product, with no bias on the output: it is "
            "the output's bias, ReLU(Wᵀ · hidden + b_final), added after the second product",
            torch.relu(torch.einsum("...id,idf->...if", act(torch.einsum("...if,idf->...id", x + b, W_in)), W_out)),
        ),
        (
            "max_with_bias",
            "your output is torch.maximum(z, b_final) (z = the product with the weights): ReLU(z + b) is "
            "max(z + b, 0), the bias *added* and then compared with 0",
            torch.maximum(z, b.expand_as(z)),
        ),
    ]


def probe_forward(
    model: Callable,
    b: Tensor,
    shape: tuple[int, ...],
    device: torch.device,
    out: Tensor | None = None,
    z: Tensor | None = None,
    d_hidden: int = 0,
) -> tuple[str, str]:
    """(code, hint) for a wrong forward pass that matches no known mistake, from probing the learner's model.

    With every feature 0 the output must be ReLU(b_final) whatever the weights: that separates a mistake in how the
    bias enters from one in how the features are mapped. With the learner's `out` and the right weights term `z`
    (the output pre-activation without b_final), an output ReLU(c·z + b_final) is named with its factor c.
    """
    try:
        with torch.no_grad():
            zero_out = model(torch.zeros(shape, device=device))
        bias_right = (
            isinstance(zero_out, Tensor)
            and zero_out.shape == shape
            and torch.allclose(zero_out.detach().float(), torch.relu(b).expand(shape).float(), rtol=1e-4, atol=1e-5)
        )
    except Exception:  # the learner's code failed on the probe: say nothing more than the comparison does
        return "values", "compare each step with the formula: the two products with the weights, b_final, the ReLUs"
    if not bias_right:
        ok = isinstance(zero_out, Tensor) and zero_out.shape == shape and zero_out.is_floating_point()
        return zero_input_reading(zero_out.detach() if ok else None, b.expand(shape))
    if isinstance(out, Tensor) and z is not None and out.shape == z.shape and out.is_floating_point():
        o, zz, bb = out.detach().double(), z.detach().double(), b.detach().double().expand_as(z)
        on = o > 1e-6
        if int(on.sum()) >= 3 and float((zz[on] ** 2).sum()) > 0:
            c = float(((o - bb)[on] * zz[on]).sum() / (zz[on] ** 2).sum())
            if abs(c - 1) > 1e-3 and torch.allclose(o, torch.relu(c * zz + bb), rtol=1e-4, atol=1e-5):
                return "weights_term_scale", (
                    f"your output is ReLU(c·z + b_final) with z the product with the weights and c = {c:.4g}"
                    f"{factor_name(c, d_hidden) if d_hidden else ''}: "
                    "a constant factor on the weights term (a scaling such as 1/√d_hidden, a mean where a sum is "
                    "wanted, or a rescaled input); the forward pass has no such factor"
                )
    if isinstance(out, Tensor) and z is not None and out.shape == z.shape:  # rounding-sized everywhere: bf16/fp16
        rounded = precision_reading(out, torch.relu(z + b), rtol=1e-4, atol=1e-5, grid_only=False)
        if rounded:
            return rounded
    return "weights_term", (
        "with every feature 0 your output is right (ReLU(b_final)): the bias alone is handled right, and the part "
        "that depends on the features differs. Possible causes: the products with the weights (contract `feats`, then "
        "`d_hidden`, per instance); an extra or misplaced nonlinearity (a ReLU applied to W itself, or to the weights "
        "term before b_final is added); the bias combined otherwise than added (torch.maximum(z, b_final), a product); "
        "or a rescaled input or output (a constant factor, 2x - 1)"
    )


def own_feature_diagnosis(model: Callable, x: Tensor, right: Callable[[Tensor], Tensor]) -> tuple[str, str] | None:
    """(code, hint) when every output feature depends on its own input feature only (nudging input feature j changes
    no other output), where the right forward pass `right` mixes them: the products don't contract `feats`."""
    cross_got = cross_right = own_got = 0.0
    try:
        with torch.no_grad():
            base, base_right = model(x.clone()), right(x)
            for j in range(x.shape[-1]):
                x2 = x.clone()
                x2[..., j] += 0.5
                d, r = (model(x2) - base).abs().double(), (right(x2) - base_right).abs().double()
                others = torch.arange(x.shape[-1], device=x.device) != j
                cross_got = max(cross_got, float(d[..., others].max()))
                cross_right, own_got = (
                    max(cross_right, float(r[..., others].max())),
                    max(own_got, float(d[..., j].max())),
                )
    except Exception:  # the learner's code failed on the probe (or returned something else): no evidence either way
        return None
    if cross_got > 1e-6 or cross_right < 1e-3 or own_got < 1e-3:
        return None
    return "only_own_feature", (
        "each output feature depends only on its own input feature: nudging input feature j changes output j and no "
        "other, where the right forward pass mixes the features (output j reads every feature through the hidden "
        "layer). The products with the weights don't contract the feature axis; possible causes: the first product "
        "summed over `d_hidden` and kept `feats` ('... inst feats, inst d_hidden feats -> ... inst feats'), or "
        "elementwise products (x * W) where h = W x sums over `feats` ('... inst feats, inst d feats -> ... inst d')"
    )


def random_forward(model: Callable, x: Tensor) -> tuple[str, str] | None:
    """(code, hint) when two calls of the forward pass on the same input give different outputs."""
    try:
        with torch.no_grad():
            a, b = model(x.clone()), model(x.clone())
        if (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.shape == b.shape
            and not torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6)
        ):
            return "forward_random", (
                "two calls of model(features) on the same input gave different outputs: your forward pass is random "
                "(dropout left on, e.g. F.dropout with its default training=True, or a random draw in forward); the "
                "forward pass is deterministic"
            )
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    return None


INPUT_TRANSFORMS = (
    ("2x - 1", lambda t: 2 * t - 1),
    ("(x + 1) / 2", lambda t: (t + 1) / 2),
    ("x - 1", lambda t: t - 1),
    ("1 - x", lambda t: 1 - t),
    ("-x", lambda t: -t),
    ("2x", lambda t: 2 * t),
    ("x / 2", lambda t: t / 2),
    ("x - 0.5", lambda t: t - 0.5),
    ("x²", lambda t: t * t),
    ("ReLU(x)", torch.relu),
)
# Part 1's inputs clipped to the range its batches hold ([0, 1]): the forward pass takes any input as it is.
CLIPPED_INPUTS = (
    ("x.clamp(0, 1) (clipped to [0, 1])", lambda t: t.clamp(0, 1)),
    ("x.clamp(max=1)", lambda t: t.clamp(max=1)),
    ("|x| (x.abs())", torch.abs),
)


def input_transform_diagnosis(
    out: Tensor, right: Callable[[Tensor], Tensor], x: Tensor, d_hidden: int = 0, transforms: tuple = INPUT_TRANSFORMS
) -> tuple[str, str] | None:
    """(code, hint) when `out` equals the right forward pass `right` applied to a transformed input T(x)."""
    if not isinstance(out, Tensor) or not out.is_floating_point():
        return None
    for label, transform in transforms:
        expected = right(transform(x))
        if out.shape == expected.shape and torch.allclose(out.detach().double(), expected.double(), atol=1e-5):
            return "input_transformed", input_transform_hint(label, d_hidden)
    return None


def clipped_input_diagnosis(
    out: Tensor, right: Callable[[Tensor], Tensor], x: Tensor, d_hidden: int = 0
) -> tuple[str, str] | None:
    """(code, hint) when `out` is part 1's forward pass `right` on its input clipped to [0, 1] (CLIPPED_INPUTS)."""
    return input_transform_diagnosis(out, right, x, d_hidden, CLIPPED_INPUTS)


GRID = (-2.0, -1.0, -0.5, 0.0, 0.05, 0.2, 0.5, 1.0, 2.0)  # small positives: a threshold above 0 shows


_ACTIVATIONS = (  # read back on GRID (a hidden layer that is one of these, where a ReLU belongs)
    ("tanh (torch.tanh)", torch.tanh),
    ("a sigmoid (torch.sigmoid)", torch.sigmoid),
    ("GELU (F.gelu)", torch.nn.functional.gelu),
    ("GELU, tanh approximation", lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
    ("SiLU / swish (F.silu)", torch.nn.functional.silu),
    ("softplus (F.softplus)", torch.nn.functional.softplus),
    ("ELU (F.elu)", torch.nn.functional.elu),
    ("the identity (no hidden nonlinearity)", lambda t: t),
    ("a clamp to [-1, 1] (F.hardtanh)", lambda t: t.clamp(-1, 1)),
)


def hidden_probe(build: Callable[[float, float], torch.nn.Module], device: torch.device) -> tuple[str, str] | None:
    """(code, hint) when the hidden nonlinearity, read off a one-feature model, is not a ReLU.

    `build(B, w)` returns the learner's model with n_inst = n_features = d_hidden = 1, every weight w and b_final = B,
    so its output is ReLU(g(x) + B) with g the hidden nonlinearity. With B = 10 and B = 20 the two outputs must
    differ by exactly 10 (the output side adds b_final and passes it through); only then is g = out - 10 read.
    """
    x = torch.tensor(GRID, device=device).reshape(-1, 1, 1)
    try:
        with torch.no_grad():
            out0, out10, out20 = build(0.0)(x), build(10.0)(x), build(20.0)(x)
        if not all(isinstance(o, Tensor) and o.shape == x.shape for o in (out0, out10, out20)):
            return None
        if not torch.allclose((out20 - out10).double(), torch.full_like(x, 10.0).double(), atol=1e-4):
            return None
        # The hidden layer read at b_final = 10 must also explain the output at b_final = 0 (ReLU(g(x))): otherwise
        # b_final enters before the output too (e.g. subtracted from the input) and g is not the hidden nonlinearity.
        if not torch.allclose(out0.double(), torch.relu(out10.double() - 10), atol=1e-4):
            return None
        # With weights -1 on the input -x the hidden layer is g(x) again and the output ReLU(10 - g(x)): a b_final that
        # also enters the hidden layer (ReLU(W x + b)) reads as the identity above but fails this
        flipped = build(10.0, -1.0)(-x)
        if not torch.allclose(flipped.double(), torch.relu(20 - out10.double()), atol=1e-4):
            return None
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    g, xs = (out10.double() - 10).flatten().cpu(), x.double().flatten().cpu()
    right = torch.relu(xs)
    wrong = (g - right).abs() > 1e-3
    if not wrong.any():
        return None
    table = ", ".join(f"{v:g} → {float(gv):.3g}" for v, gv in zip(GRID, g, strict=True))
    named = next((what for what, f in _ACTIVATIONS if torch.allclose(g, f(xs), rtol=1e-3, atol=1e-4)), None)
    if wrong[xs <= 0].any():
        where = "wrong even where the hidden pre-activation is 0 or negative (a ReLU gives 0 there)"
        where += f": it is {named}" if named else ""
    else:
        where = "right where it is 0 or negative, wrong where it is positive (a ReLU passes it unchanged)"
        cut = float(xs[wrong].max())
        if bool((g[wrong] == 0).all()) and bool((xs > cut).any()):
            where = (
                f"0 for small positive values (up to {cut:g} at least) and the identity from "
                f"{float(xs[xs > cut].min()):g} on: a threshold above 0 (F.threshold(h, t, 0), h * (h > t) with t > 0)"
            )
        elif bool((g[xs > 0] - 1).abs().max() < 1e-6):
            where += (
                ": every positive value became 1 on this one-neuron probe; possible causes: the mask (h > 0) itself "
                "instead of h * mask or ReLU(h), or h divided by a statistic of itself over d_hidden (its norm, "
                "F.normalize(h, dim=-1), its sum h / h.sum(-1) or its max), each 1 here where d_hidden is 1"
            )
    return "hidden_nonlinearity", (
        f"the hidden nonlinearity is not a ReLU: on a one-feature model with weights 1 (and b_final = 10 taken off) "
        f"your hidden layer maps {table}; it is {where}. Use torch.relu (F.relu) on W x"
    )


def check_param_gradients(
    model: torch.nn.Module, x: Tensor, names: list[str], reference: Callable[[dict[str, Tensor]], Tensor]
) -> None:
    """The gradients of Σ G·model(x) (G fixed and random) with respect to the parameters `names` equal the
    reference's: right values with a .detach(), .data or torch.no_grad() inside forward fail here, not in training.

    `reference(params)` computes the right output from leaf copies of the parameters."""
    params = {n: getattr(model, n) for n in names}
    params = {n: v for n, v in params.items() if isinstance(v, Tensor) and v.requires_grad}
    if not params:
        return
    G = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)).to(x.device)
    leaves = {n: v.detach().clone().requires_grad_() for n, v in params.items()}
    right = torch.autograd.grad((reference(leaves) * G).sum(), list(leaves.values()))
    try:
        out = model(x)
        if not isinstance(out, Tensor) or not out.requires_grad:
            grads = [None] * len(params)
        else:
            grads = torch.autograd.grad((out * G).sum(), list(params.values()), allow_unused=True)
    except NotImplementedError:
        raise
    except Exception as err:
        fail(
            f"backpropagating through model(features) raised {type(err).__name__}: {err}",
            "the forward pass must be differentiable: no in-place edits of tensors autograd still needs (relu_(), "
            "+=), no numpy",
            code="backward_error",
        )
    for name, grad, ref in zip(params, grads, right, strict=True):
        if grad is None or (not bool(grad.abs().any()) and bool(ref.abs().any())):
            fail(
                f"model(features) has the right values, but no gradient reaches `{name}`",
                f"a .detach(), .data, torch.no_grad() or a copy (torch.tensor(...)) in forward cuts `{name}` off from "
                f"the output, so training could never change it: compute with self.{name} itself",
                code="no_param_grad",
            )
        if not torch.allclose(grad.detach().double(), ref.double().to(grad.device), rtol=1e-3, atol=1e-5):
            fail(
                f"model(features) has the right values, but its gradient with respect to `{name}` differs from the "
                "reference's",
                "part of the computation is hidden from autograd: a .detach(), .data or torch.no_grad() on an "
                f"intermediate result (the hidden activations?) leaves `{name}` with only part of its gradient",
                code="param_gradient",
            )


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def loss_gradient_diagnosis(grad: Tensor, out: Tensor, target: Tensor, imp: Tensor) -> tuple[str, str] | None:
    """(code, hint) from the gradient of a loss with respect to `out` [batch inst feats], when it is that of
    Σ_inst mean w (t - out)² with other per-(inst, feat) weights w, or with a target t shared by an example's features.

    The right gradient is 2 I (out - target) / (batch · feats)."""
    n_avg = out.shape[0] * out.shape[2]
    g, d = grad.detach().double(), (out - target).detach().double()
    ok = d.abs() > 1e-3
    w = torch.where(ok, g * n_avg / (2 * torch.where(ok, d, torch.ones_like(d))), torch.nan)
    cell = w.nanmean(0, keepdim=True)
    spread = torch.where(ok, (w - cell).abs(), torch.zeros_like(w))
    imp = imp.double().to(g.device)
    if bool(ok.any(0).all()) and bool((spread <= 1e-4 * (1 + cell.abs())).all()):
        weights = cell[0]
        uniform = uniform_weight_diagnosis(weights, imp)
        if uniform:
            return uniform
        if (weights > 0).all() and (imp > 0).all() and not bool((imp - imp.mean()).abs().max() < 1e-9):
            log_w, log_i = weights.log(), imp.log()
            alpha = float((log_w * log_i).sum() / (log_i * log_i).sum())
            if torch.allclose(weights, imp**alpha, rtol=1e-3) and abs(alpha - 1) > 1e-3:
                name = {0.5: " (its square root)", 2.0: " (its square)"}.get(round(alpha * 4) / 4, "")
                return "importance_power", (
                    f"the gradient with respect to `out` shows each squared error weighted by importance^{alpha:.3g}"
                    f"{name}, not by the importance itself: use self.importance as it is, I · (target - out)²"
                )
        return importance_weights_hint(weights, imp)
    t = out.detach().double() - g * n_avg / (2 * imp)
    if out.shape[2] > 1 and bool(((t - t[..., :1]).abs() <= 1e-4 * (1 + t.abs())).all()):
        return "target_reduced", (
            "the gradient with respect to `out` shows one target per example and instance, the same for all its "
            "features: a reduction over the feature axis (a norm or sum over dim=-1?) where the target is taken "
            "feature by feature"
        )
    return None


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------
def rate_pattern_diagnosis(observed: Tensor, p: Tensor, n: int, unit: str) -> tuple[str, str] | None:
    """(code, hint) describing a wrong rate table [inst units] (n draws each) against the right one p."""
    observed, p = observed.double().cpu(), p.double().cpu()
    if consistent(observed, observed.mean(), n) and not consistent(p, p.mean(), n):
        return "presence_constant", (
            f"every {unit} is present at about {float(observed.mean()):.1%} whatever its p: the presence draw does not "
            "use p (present where a uniform draw is below p, `rand < p`)"
        )
    if consistent(observed.flatten().sort().values, p.flatten().sort().values, n):
        if p.shape[0] != p.shape[1] and consistent(observed, p.T.reshape(p.shape), n):  # the only explanation
            return "presence_reordered", (
                f"every rate is one of p's values, but in the wrong place: they are p.T reshaped to [inst, {unit}s], "
                f"a [batch, {unit}s, inst] draw reshaped, not permuted; reorder axes with permute, transpose or "
                f"einops.rearrange, never reshape or view, and keep p's [inst, {unit}] order"
            )
        return "presence_reordered", (
            "every rate is one of p's values, but in the wrong place. Possible causes: slices of p given to the wrong "
            "block or generator (two slices swapped?), an index that picks other entries of p, or a reshape or view "
            f"where axes should be permuted (use permute or einops.rearrange); each entry uses its own p[inst, {unit}]"
        )
    first = p[:1].expand_as(p)
    if p.shape[0] > 1 and consistent(observed, first, n) and not consistent(p, first, n):
        return "first_instance_probability", (
            "every instance is present at instance 0's rates: the probabilities of instance 0 (p[0], or a [0] index "
            "on the instance axis) are used for all instances; keep p's `inst` axis"
        )
    normal = torch.special.ndtr(p)
    if consistent(observed, normal, n) and not consistent(p, normal, n):
        return "presence_normal", (
            "the rates are Φ(p), the normal CDF of p (about 0.5 + 0.4·p), not p: that is what `torch.randn(...) < p` "
            "gives. The presence draw compared with p is most likely normal (torch.randn) where it must be "
            "uniform: use torch.rand"
        )
    transforms = {
        f"p / p.sum(-1) (p normalised over the {unit}s, as if it were a distribution)": p / p.sum(-1, keepdim=True),
        "p / p.sum(0) (p normalised over the instances)": p / p.sum(0, keepdim=True),
        "sigmoid(p) (p taken as a logit: Bernoulli(logits=p) instead of probs=p)": torch.sigmoid(p),
        f"softmax(p) over the {unit}s": torch.softmax(p, -1),
        "p / p.max() (p rescaled to a largest value of 1)": p / p.max(),
    }
    for label, table in transforms.items():
        if consistent(observed, table, n) and not consistent(p, table, n):
            return "presence_transformed_p", (
                f"the rates are {label}, not p: p itself is transformed before the presence draw; compare "
                "torch.rand(...) with p as it is (`rand < p`)"
            )
    x, y = p.flatten(), observed.flatten()
    if float(x.var()) > 0:
        k = float((x * y).sum() / (x * x).sum())
        if 0.05 < k < 0.95 and consistent(observed, k * p, n):
            return "presence_fraction", (
                f"the rates are about {k:.2g}·p: a fixed share ({1 - k:.0%}) of the entries that should be present "
                "come out absent (exactly 0). Possible causes: a value or sign that can be exactly 0 "
                "(torch.randint(-1, 2) gives -1, 0 or 1; a rounded or int-cast value), a presence draw u in "
                f"`u < p` that ranges over [0, {1 / k:.2g}] instead of [0, 1] (a factor on torch.rand), or p itself "
                "transformed (normalised, p / p.sum(...), divided by a constant)"
            )
        a = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
        c = float(y.mean()) - a * float(x.mean())
        if a > 0.05 and consistent(observed, (a * p + c).clamp(0, 1), n):
            lo, hi = -c / a, (1 - c) / a
            return "presence_affine", (
                f"the rates follow {a:.2g}·p + {c:.2g} (about {c:.0%} at p = 0), not p: the draw u in `u < p` is not "
                f"U[0, 1]; a uniform u on [{lo:.2g}, {hi:.2g}] gives these rates. Possible causes: a shifted or "
                "scaled uniform (2 * rand - 1 gives (1 + p) / 2), a normal draw (randn gives Φ(p), about 0.5 + 0.4·p), "
                "a presence that is combined with a second draw, or p itself transformed (sigmoid(p): Bernoulli with "
                "logits=p; a normalised or shifted p); compare torch.rand(...) itself with p"
            )
    return None


CAT_SIZES = re.compile(r"Sizes of tensors must match except in dimension (-?\d+)")


def cat_axis_failure(err: Exception, what: str, feature_axis: int) -> None:
    """Fail with the concatenation axis named when `err` is torch.cat's size mismatch on another axis."""
    match = CAT_SIZES.search(str(err))
    if match and int(match.group(1)) != feature_axis:
        fail(
            f"{what} raised {type(err).__name__}: {err}",
            f"torch.cat joined the blocks along dim {match.group(1)}: the blocks share [batch, inst] and differ in "
            "their number of features, so concatenate along the feature axis (dim=-1)",
            code="cat_axis",
        )


def axis_multiple_failure(out: object, shape: tuple[int, ...], dims: str, what: str) -> None:
    """Fail naming the axes when `out` has the right number of elements but one axis is a multiple of its expected
    size and another a fraction: a repeat, repeat_interleave or cat along the wrong axis."""
    if not isinstance(out, Tensor) or out.ndim != len(shape) or tuple(out.shape) == shape:
        return
    names = dims.split()
    grown = [i for i, (g, e) in enumerate(zip(out.shape, shape, strict=True)) if g > e and g % e == 0]
    shrunk = [i for i, (g, e) in enumerate(zip(out.shape, shape, strict=True)) if g < e and g > 0 and e % g == 0]
    if len(grown) == 1 and len(shrunk) == 1 and out.numel() == math.prod(shape):
        i, j = grown[0], shrunk[0]
        want = ", ".join(f"{d}={s}" for d, s in zip(names, shape, strict=True))
        fail(
            f"{what} has shape {tuple(out.shape)}, expected ({want})",
            f"the `{names[i]}` axis has {out.shape[i]} = {out.shape[i] // shape[i]} × {shape[i]} entries and "
            f"`{names[j]}` has {out.shape[j]} instead of {shape[j]}: a repeat, repeat_interleave or cat along the "
            f"wrong axis (dim={i} where dim={j} or -1 was meant?)",
            code="repeated_axis",
        )


def importance_candidate(imp: Tensor) -> tuple[str, str, Tensor]:
    """The rate table of a presence mask drawn against the model's importance instead of its feature_probability."""
    return (
        "importance_as_probability",
        "the rates are the model's importance values (capped at 1): the presence mask is drawn against "
        "self.importance; compare with self.feature_probability",
        imp.double().clamp(0, 1),
    )


def sign_sharing_failure(batch: Tensor, what: str, unit: str = "feature") -> None:
    """Diagnosis for signed values (after a failed test): fail naming the axes a shared sign is constant along, when
    every present value of every (inst, unit) cell with at least 40 present values has one sign. A right generator
    gives a cell 40 values of one sign with probability 2^-39 < 1e-11."""
    present = batch != 0
    counts = present.sum(0)
    positive = torch.where(present, batch > 0, False).sum(0)
    full = counts >= 40
    if not bool(full.any()) or not bool(((positive == 0) | (positive == counts))[full].all()):
        return
    sign = torch.where(positive > 0, 1, -1)[full]
    if bool((sign > 0).all()) or bool((sign < 0).all()):
        return  # one sign everywhere: unsigned (or negated) values, which the value-law tests name
    signs = torch.where(full, torch.where(positive > 0, 1, -1), 0)
    per_inst = all(len(set(row[row != 0].tolist())) <= 1 for row in signs)
    per_unit = all(len(set(col[col != 0].tolist())) <= 1 for col in signs.T)
    if per_inst:
        where = (
            f"one sign per instance, shared over the batch and the {unit}s (drawn with shape [inst] or [1, inst, 1])"
        )
    elif per_unit:
        where = f"one sign per {unit}, shared over the batch and the instances"
    else:
        where = f"one sign per (instance, {unit}), shared over the batch (drawn without the batch axis)"
    fail(
        f"{what}: in every (instance, {unit}) the present values all have the same sign ({int((sign > 0).sum())} "
        f"cells all positive, {int((sign < 0).sum())} all negative)",
        f"the sign is {where}: draw the values (or their sign) with the full shape [batch, inst, {unit}s]",
        code="sign_shared",
    )


# --------------------------------------------------------------------------------------------
# Errors and outputs named by the check's own sizes
# --------------------------------------------------------------------------------------------
SIZE_MISMATCH = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)")


def call_naming_axes(
    fn: Callable[[], object], sizes: dict[int, str], advice: str | Callable[[str, str], str]
) -> object:
    """Run fn(); when the learner's code raises a size mismatch between two sizes that the check gave distinct axes,
    name those axes (the generic hint only knows the numbers)."""
    try:
        return fn()
    except RuntimeError as err:
        match = SIZE_MISMATCH.search(str(err))
        a, b = (int(match[1]), int(match[2])) if match else (None, None)
        outcome = _describe_error(err)
        if a not in sizes or b not in sizes or a == b or outcome.code != "exception":
            raise
        advice = advice if isinstance(advice, str) else advice(sizes[a], sizes[b])
        outcome.hint = (
            f"the `{sizes[a]}` axis (size {a}) of one operand met the `{sizes[b]}` axis (size {b}) of the other: "
            f"broadcasting lines axes up from the right, so {advice}"
        )
        outcome.code = "axes_met"
        raise outcome from None


def expect_loss_tensor(loss: object, what: str) -> None:
    """A loss returned as a Python number (.item(), float(...)) has no gradient: name that before the type check."""
    if isinstance(loss, (float, int)) and not isinstance(loss, bool):
        fail(
            f"{what} returned a Python {type(loss).__name__}, expected a 0-dim torch.Tensor",
            "no .item() or float(...) at the end: return the tensor itself, so the loss keeps its gradient",
            code="not_tensor",
        )


def uniform_weight_diagnosis(weights: Tensor, imp: Tensor) -> tuple[str, str] | None:
    """The loss gradient shows one weight w for every (inst, feat): the importance was not applied per element."""
    w = float(weights.mean())
    if not bool((weights - w).abs().max() <= 1e-4 * (1 + abs(w))) or bool((imp - imp.mean()).abs().max() < 1e-9):
        return None
    n_inst = imp.shape[0]
    if abs(w - float(imp.sum()) / n_inst) <= 1e-3 * (1 + abs(w)):
        why = (
            f" = Σ importance / n_inst ({w:.3g}): the importance multiplied an error already averaged into one number "
            "(F.mse_loss reduces to a scalar by default, reduction='mean'); keep the per-element errors "
            "(reduction='none', or (target - out) ** 2), weight them, then reduce"
        )
    elif abs(w - float(imp.mean())) <= 1e-3 * (1 + abs(w)):
        why = f" = the mean importance ({w:.3g}): the importance was averaged before weighting; weight element-wise"
    else:
        why = f" ({w:.3g}): the importance is not applied per (inst, feat), I[inst, feat] · (target - out)²"
    return (
        "importance_uniform",
        f"the gradient with respect to `out` shows every squared error with the same weight{why}",
    )


def stationarity_failure(present: Tensor, p: Tensor, what: str) -> None:
    """Examples must be identically distributed: presence rates in contiguous chunks of the batch agree.

    Chunk c (m examples) against the whole batch: r_c - r = (1 - 1/K)(r_c - p) - (1/K) Σ_{j≠c} (r_j - p), a sum of
    independent bounded terms with variance (1 - 1/K) p(1 - p) / m <= 1 / (4m), so the Bernstein tolerance of one
    frequency from m draws with p = 1/2 (rate_tolerance(m, 0.5), failure probability DELTA per cell) bounds it."""
    n, k = present.shape[0], p.shape[0]
    chunks = max(k, 2)
    m = n // chunks
    overall = present.double().mean(0)
    parts = [present[c * m : (c + 1) * m].double().mean(0) for c in range(chunks)]
    tol = rate_tolerance(m, 0.5)
    if all(bool(((r - overall).abs() <= tol).all()) for r in parts):
        return
    rows = chunks == k and all(bool(((r - p[c].double()).abs() <= tol).all()) for c, r in enumerate(parts))
    seen = (
        f"in each of {k} consecutive parts of the batch every instance has the rates of one row of p (examples "
        f"0-{m - 1}: p[0], "
        f"{m}-{2 * m - 1}: p[1], ...), so p's instance rows are mixed into each other"
        if rows
        else "the rates drift along the batch axis"
    )
    fail(
        f"{what}: the presence rates differ between parts of the batch: {seen}",
        "the examples are not identically distributed: a tensor drawn in another axis order (e.g. [inst, batch, "
        "feats]) and then .reshape/.view'd instead of permuted (use .permute, .transpose or einops.rearrange), or "
        "blocks of examples drawn with different settings and concatenated along the batch axis",
        code="batch_not_stationary",
    )


def combined_length_failure(
    out: object, shape: tuple[int, int, int], nc: int, na: int, what: str, pair_kinds: Callable
) -> None:
    """The combined batch has the wrong number of features: read each block's size off the pair structure
    (pairs always on together, then pairs never both on, then the rest) and name the first block of the wrong size.
    `pair_kinds(present, n_pairs)` labels adjacent pairs 'together', 'never' or 'independent'."""
    n, k, f = shape
    if not isinstance(out, Tensor) or out.ndim != 3 or tuple(out.shape[:2]) != (n, k) or out.shape[2] == f:
        return
    g = out.shape[2]
    kinds = pair_kinds(out.detach().cpu() != 0, g // 2)
    t = next((j for j, kind in enumerate(kinds) if kind != "together"), len(kinds))
    a = next((j for j, kind in enumerate(kinds[t:]) if kind != "never"), len(kinds) - t)
    got = {"correlated": 2 * t, "anticorrelated": 2 * a, "uncorrelated": g - 2 * (t + a)}
    want = {"correlated": 2 * nc, "anticorrelated": 2 * na, "uncorrelated": f - 2 * (nc + na)}
    seen = ", ".join(f"{name} {got[name]} (expected {want[name]})" for name in got)
    message = f"{what} has {g} features, expected {f}; read from the pair structure, the blocks have: {seen}"
    name = next(name for name in got if got[name] != want[name])
    duplicated_block_failure(out, message, got, want)
    if got[name] == 0:
        fail(
            message,
            f"the {name} block is missing (or empty: a slice of p whose stop is not past its start?): "
            "concatenate all three blocks [correlated | anticorrelated | uncorrelated]",
            code="missing_block",
        )
    if name == "uncorrelated" and want[name] == 0 and got[name] == f:
        fail(
            message,
            "with n_uncorrelated = 0, p[:, -n_uncorrelated:] is p[:, -0:], all of p: slice the uncorrelated block "
            "from its start, p[:, 2 * (n_corr + n_anti):]",
            code="uncorrelated_negative_slice",
        )
    if name == "uncorrelated" and got[name] - want[name] == 2 * na and 2 * na != nc + na:
        fail(
            message,
            "the uncorrelated block is too long by the anticorrelated block's 2 * n_anticorrelated_pairs features: "
            "it starts at feature 2 * (n_correlated_pairs + n_anticorrelated_pairs), not 2 * n_correlated_pairs",
            code="uncorrelated_start",
        )
    if name == "uncorrelated" and got[name] - want[name] == nc + na:
        fail(
            message,
            "the uncorrelated block is too long: it starts at feature 2 * (n_correlated_pairs + "
            "n_anticorrelated_pairs), not n_correlated_pairs + n_anticorrelated_pairs"
            + (" (or 2 * n_correlated_pairs: the anticorrelated block left out of the offset)" if nc == na else ""),
            code="uncorrelated_start",
        )
    if name == "uncorrelated":
        fail(message, "give the uncorrelated block p[:, 2 * (n_corr + n_anti):]", code="block_length")
    slips = pair_slice_candidates(name, got[name] // 2, nc, na)
    fail(
        message,
        f"the {name} block's slice of p has {got[name] // 2} probabilities where one per pair ({want[name] // 2}) "
        "was expected"
        + (f" (as {' or '.join(slips)} gives)" if slips else "")
        + ": the right slice is p[:, start:stop:2] with start and stop feature indices (correlated 0 to 2 * n_corr, "
        "anticorrelated 2 * n_corr to 2 * (n_corr + n_anti)); a missing step 2 doubles the count, a stop of "
        "n_corr instead of 2 * n_corr halves it",
        code="block_length",
    )


def generator_cfg_failure(call: Callable[[], object], retry: Callable[[], object], method: str) -> object:
    """Run a generator on a model whose cfg does not describe p's block; when it raises but runs on a model whose
    cfg matches p, the learner read the block's size from self.cfg."""
    try:
        return call()
    except NotImplementedError:
        raise
    except Exception as err:
        try:
            ran = isinstance(retry(), Tensor)
        except Exception:
            ran = False
        if not ran:
            raise err from None
        fail(
            f"{method}(n, p) raised {type(err).__name__}: {err}, on a model whose cfg counts no pairs (the block "
            "comes in through p); it runs when self.cfg's counts match p",
            "each generator makes one block of the batch (generate_batch passes it a slice of the probabilities): "
            "take its size from p.shape, not from self.cfg",
            code="block_shape",
        )


# --------------------------------------------------------------------------------------------
# Out-of-range values: describe the law the present values follow, list the mistakes that give it
# --------------------------------------------------------------------------------------------
def _snap(x: float, span: float) -> float:
    """Round to the nearest multiple of 0.5 when within 5% of the observed span (min/max of a large sample)."""
    r = round(x * 2) / 2
    return r if abs(x - r) < 0.05 * span else x


def reshaped_batched(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, act: Callable) -> Tensor:
    """The forward pass on x [batch inst feats] reshaped (not permuted) to [inst batch feats], reshaped back."""
    xs = x.reshape(x.shape[-2], -1, x.shape[-1])
    h = act(torch.einsum("ibf,idf->ibd", xs, W_in))
    return torch.relu(torch.einsum("ibd,idf->ibf", h, W_out).reshape(x.shape) + b)


def value_shape(values: Tensor, low: float, high: float, quarters: Tensor) -> str:
    """After the law has failed: what the pooled values look like (atoms at the bounds, where the mass piles up)."""
    if normal := value_shapes.middle_normal_reading(values, low, high, quarters.tolist()):
        return normal
    if gap := gap_shape(values, low, high):
        return gap
    at_bounds = float(((values == low) | (values == high)).double().mean())
    if at_bounds > 0.01:
        return f"{at_bounds:.0%} of the values are exactly {low:g} or {high:g}: a clamped wider distribution? "
    if product := value_laws.product_law(values, low, high):
        return product
    q = quarters.tolist()
    if shape := value_shapes.shape_reading(values, low, high, q):
        return shape
    if min(q[0], q[3]) > max(q[1], q[2]):
        return value_laws.ends_shape(values, low, high)
    return ""


def describe_value_law(batch: Tensor, values: Tensor, low: float, high: float) -> tuple[str, str] | None:
    """(code, hint) naming the law of out-of-range present values, with its possible causes; None if unsure.

    Descriptive only (the batch is already rejected): the Kolmogorov-Smirnov distance of the values to a candidate
    law is compared with the DKW bound eps = sqrt(ln(2/δ) / 2n) (P(sup|F_n - F| > eps) ≤ δ), plus 0.01 of slack for
    the snapped endpoints, so a sample of the candidate law is described as such with probability ≥ 1 - δ."""
    law, width = f"U[{low:g}, {high:g}]", high - low
    v = values.double().sort().values
    n = v.numel()
    if n < 100:
        return None
    lo, hi = float(v[0]), float(v[-1])
    span = hi - lo
    eps = math.sqrt(math.log(2 / FAILURE_PROBABILITY) / (2 * n)) + 0.01
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    if bool((batch != 0).all()) and lo >= low - 1e-6 and hi <= high + width * 1.001 and hi > high:
        frac = float((v > high).double().mean())
        return "values_plus_mask", (
            f"no entry is exactly 0 (absent features must be 0) and {frac:.1%} of the entries exceed {high:g}, up to "
            f"{hi:.3g}: the entries look like the raw draw plus 1 where present, e.g. the mask added to the values "
            "(`mask + values`) instead of multiplied, or the values not zeroed where absent plus an offset; "
            f"present entries should be {law} and absent ones exactly 0"
        )
    a, b = _snap(lo, span), _snap(hi, span)
    if b > a and float((ecdf - ((v - a) / (b - a)).clamp(0, 1)).abs().max()) < eps:
        seen = f"present values look like U[{a:g}, {b:g}] (min {lo:.3g}, max {hi:.3g})"
        if abs((b - a) - width) < 0.02 * width and abs(a - low) > 0.02 * width:
            return "values_shifted", (
                f"{seen}: the right width {width:g} shifted by {a - low:+g}, so an offset is added or a "
                "subtraction is missing (e.g. `2 * rand` without its `- 1`, or `1 + rand`); draw them from " + law
            )
        if abs(a - low) < 0.02 * width and (b - a) > width:
            return "values_scaled", (
                f"{seen}: {law} stretched by a factor {(b - a) / width:.3g} (a factor on torch.rand that should "
                f"not be there, or the wrong one); draw them from {law}"
            )
        return "value_range", f"{seen}, not {law}: a wrong scale and offset on torch.rand"
    if lo >= 0 and float((ecdf - torch.erf(v / math.sqrt(2))).abs().max()) < eps:
        return "values_abs_normal", (
            f"present values look like |N(0, 1)| (mean {float(v.mean()):.2f}, max {hi:.3g}): e.g. "
            f"torch.randn(...).abs() where torch.rand was meant; draw them from {law}"
        )
    return value_laws.exponential_law(v, law) or value_laws.normal_law(v, law)
