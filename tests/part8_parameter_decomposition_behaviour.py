"""Behavioural probes and one-off mutants for part 8's checkers (`tests.part8_parameter_decomposition`), from the
ninth and tenth fresh held-out measurements: what a wrong answer does, observed on inputs built to show it,
rather than one mutant matched.

* svd_terms: terms in the right rank-one directions u_k v_kᵀ whose sizes are not σ_k (1/σ, σ/Σσ, ... named);
* CausalImportance: the hidden activation read off a module whose output is 0.5 + 0.1 · act(t), and importances
  that don't change when V's rows or the inputs are rescaled (normalised);
* sample_masks: masks that only take 0 and 1, and the span each cell's draws cover as lines in its g (the formula
  that gives it: (g + r) / 2 spans [g/2, (1 + g)/2]; r drawn on [g, 1] spans [g, 1]);
* masked_product: an output that doesn't change when every mask of an example is scaled by one factor;
* adversarial_sources: gradients small but not 0 (a threshold on |g|), and another number of steps than n_steps
  on a loss whose ascent goes back and forth (every count of one parity fits: all are listed);
* one tensor expected, a tuple or list returned: said so, with what to return instead;
* CausalImportance: inner activations h = c · V a with c a usual scale (1/√d_in, ...), and the slope each leaky
  sigmoid actually uses outside [0, 1], measured on b_out pushed far below 0 and far above 1 (an alpha not passed
  leaks with the default 0.01);
* importance_minimality_loss: the penalty of all-zero importances, where (0 + eps)^p still counts (named when
  the penalty of importances all 0.3 is right);
* adversarial_sources: the sources it returns after 0 steps (they should be init itself);
* one-off mutants: ablation's difference of squares, faithfulness with U V summed over instances, masked_product's
  delta term scaled by the mean mask, a layerwise accumulator started from the full loss;
* (thirteenth measurement) svd_terms: n_inst terms (min(W.shape)), one instance's S, U or Vh used for all;
  CausalImportance: two parameters in each other's places, and a factor on the hidden sum (or z) fitted where the
  importances lie inside (0, 1) and named by the sizes it fits (1/√d_ci); sample_masks: point masses at the ends
  of [0, 1] the same in every cell (a clipped draw); masked_product: masks replaced and the output unchanged (not
  used); the layerwise loss returned per matrix; eps as a floor after the power, seen on all-zero importances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_ci_readbacks as ci_readbacks
from tests import part8_parameter_decomposition_ci_structure as structure
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_pairings as pairings
from tests import part8_parameter_decomposition_penalty_pairs as penalty_pairs
from tests import part8_parameter_decomposition_readings as readings
from tests import part8_parameter_decomposition_undrawn_masks as undrawn
from tests.checking import CheckFailed, fail
from tests.part8_parameter_decomposition_piece_scales import piece_scales
from tests.part8_parameter_decomposition_probes import sequential_mistakes

Mistakes = list[tuple[str, str, Tensor]]


def term_size_hint(out: Tensor, W: Tensor, code: str) -> tuple[str, str] | None:
    """(code, hint) when every term is a multiple c_k u_k v_kᵀ of the right rank-one direction but c_k is not σ_k:
    the function of σ the sizes c_k follow when it is a usual one (code "term_size"), else the sizes seen (`code`)."""
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    unit = torch.einsum("iak,ikb->ikab", U, Vh)  # u_k v_kᵀ, Frobenius norm 1
    if not isinstance(out, Tensor) or out.shape != unit.shape or not out.is_floating_point():
        return None
    c = (out.double() * unit).sum((-2, -1))  # [inst r]
    if not torch.allclose(out.double(), c[..., None, None] * unit, rtol=1e-3, atol=1e-5):
        return None
    known = {
        "1 / σ_k: divided by the singular value instead of multiplied": 1 / S,
        "σ_k / Σ_j σ_j: σ normalised to sum to 1": S / S.sum(-1, keepdim=True),
        "σ_k / σ_1: σ divided by the largest one": S / S[..., :1],
        "σ_k / ‖σ‖: σ normalised to norm 1": S / S.norm(dim=-1, keepdim=True),
        "σ_k² / Σ_j σ_j²: the share of the squared norm": S**2 / S.pow(2).sum(-1, keepdim=True),
        "√σ_k: the square root of the singular value": S.sqrt(),
        "σ_k²: the singular value squared": S**2,
        "1: no singular value at all": torch.ones_like(S),
        "σ_k averaged over the instances (S.mean(0)): every instance must keep its own σ": S.mean(0).expand_as(S),
    }
    named = [what for what, value in known.items() if torch.allclose(c.abs(), value, rtol=1e-3, atol=1e-6)]
    sign = " (some with the opposite sign)" if bool((c < 0).any()) else ""
    seen = ", ".join(f"{float(x):.3g}" for x in c[0])
    sigma = ", ".join(f"{float(x):.3g}" for x in S[0])
    if sign and torch.allclose(c.abs(), S, rtol=1e-3, atol=1e-6):
        return "sign_flip", (
            f"every term is ±σ_k u_k v_kᵀ, some with the opposite sign (instance 0: {seen}; σ = {sigma}): a sign "
            "flipped on u_k (a canonical sign) must flip v_k too, so that σ_k u_k v_kᵀ is unchanged"
        )
    if named:
        return "mixes_instances" if "instances" in named[0] else "term_size", (
            f"every term has the right direction u_k v_kᵀ, but its size is {named[0]}{sign} (instance 0: {seen}; "
            f"σ = {sigma}): each term is σ_k u_k v_kᵀ, σ_k times the outer product of column k of U and row k of Vh"
        )
    return code, (
        f"every term has the right direction u_k v_kᵀ, but not the size σ_k{sign}: instance 0's terms have sizes "
        f"{seen}, where σ = {sigma}; each term is σ_k u_k v_kᵀ, S[..., k] times the outer product"
        + (
            ". The sizes of one instance change with another instance's W: something sums or averages over the inst "
            "axis (every instance has its own σ, S[i])"
            if code == "mixes_instances"
            else ""
        )
    )


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "F.silu (SiLU / Swish, x·sigmoid(x))": F.silu,
    "F.relu": F.relu,
    "F.mish (x·tanh(softplus(x)))": F.mish,
    "GELU's tanh approximation (F.gelu(x, approximate='tanh'))": lambda t: F.gelu(t, approximate="tanh"),
    "x·sigmoid(1.702 x) (the sigmoid approximation of GELU)": lambda t: t * torch.sigmoid(1.702 * t),
    "0.5 x (1 + erf(x / 2)): a GELU written by hand with the √2 forgotten (GELU is 0.5 x (1 + erf(x / √2)))": (
        lambda t: 0.5 * t * (1 + torch.erf(t / 2))
    ),
    "0.5 x (1 + erf(x)): a GELU written by hand with the / √2 forgotten (GELU is 0.5 x (1 + erf(x / √2)))": (
        lambda t: 0.5 * t * (1 + torch.erf(t))
    ),
    "x (1 + erf(x / √2)): a GELU written by hand with the 0.5 forgotten": lambda t: t * (1 + torch.erf(t / 2**0.5)),
    "F.elu": F.elu,
    "F.leaky_relu(x, alpha) (alpha is the leaky sigmoids' slope, after z; the hidden layer has no leak)": (
        lambda t: F.leaky_relu(t, 0.05)  # ci_behaviour's probe module has alpha = 0.05
    ),
    "F.leaky_relu (slope 0.01)": lambda t: F.leaky_relu(t, 0.01),
    "F.softplus": F.softplus,
    "torch.sigmoid": torch.sigmoid,
    "torch.tanh": torch.tanh,
    "no activation at all (the identity)": lambda t: t,
}


def svd_term_count(out: Any, W: Tensor) -> None:
    """Fails (code term_count) when the output has n_inst terms where r = min(d_out, d_in) belong and n_inst is
    min(W.shape): the count of terms took in the instance axis (the inputs' n_inst differs from r on one W)."""
    n_inst, d_out, d_in = W.shape
    r = min(d_out, d_in)
    if not isinstance(out, Tensor) or out.ndim != 4 or out.shape[0] != n_inst or out.shape[2:] != W.shape[1:]:
        return
    if out.shape[1] == 1 < r:
        U, S, Vh = torch.linalg.svd(W.detach(), full_matrices=False)
        top = (U[..., :1] * S[:, None, :1]) @ Vh[:, :1]  # σ_1 u_1 v_1ᵀ
        same = torch.allclose(out.detach()[:, 0].to(top), top, 1e-4, 1e-5)
        fail(
            f"svd_terms(W) for W of shape {tuple(W.shape)} has 1 term, expected r = min(d_out, d_in) = {r}"
            + (" (your one term is the top term σ_1 u_1 v_1ᵀ)" if same else ""),
            "only one term kept: a slice or index ([:1], [0], [..., :1]) on U, S or Vh, or keepdim on a reduction? "
            "Keep all r terms, largest σ first: the terms add up to W",
            code="one_term",
        )
    if out.shape[1] != n_inst or n_inst == r:
        return
    fail(
        f"svd_terms(W) for W of shape {tuple(W.shape)} has {n_inst} terms, expected r = min(d_out, d_in) = {r}",
        f"{n_inst} is n_inst, the number of instances (W.shape[0]){' = min(W.shape)' if n_inst < r else ''}: the "
        "count of terms took in the instance axis (min(W.shape) is the min over all three axes, or a loop over "
        "range(len(W)))? There are r = min(W.shape[-2:]) = min(d_out, d_in) terms per instance",
        code="term_count",
    )


def svd_one_instance(W: Tensor) -> Mistakes:
    """The terms with one instance's singular values (or singular vectors) used for every instance: an einsum or
    index that dropped `inst` from one factor (S[0] where S belongs)."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = lambda U_, S_, Vh_: torch.einsum("iak,ik,ikb->ikab", U_, S_, Vh_)
    found: Mistakes = []
    for i in range(W.shape[0]):
        for name, factors in (("singular values S", (U, S[i].expand_as(S), Vh)), ("U", (U[i].expand_as(U), S, Vh))):
            hint = (
                f"your terms use instance {i}'s {name} for every instance ({name.split()[-1]}[{i}]): keep the inst "
                "axis of every factor, each instance has its own SVD (einsum 'inst d_out r, inst r, inst r d_in -> "
                "inst r d_out d_in')"
            )
            found.append(("one_instance_factor", hint, terms(*factors)))
        hint = f"your terms use instance {i}'s Vh for every instance (Vh[{i}]): keep the inst axis of every factor"
        found.append(("one_instance_factor", hint, terms(U, S, Vh[i].expand_as(Vh))))
    return found


def ci_behaviour(CausalImportance: type, module: torch.nn.Module, p: dict[str, Tensor], lower: Tensor) -> Mistakes:
    """[(code, hint, lower)] for what two probes observe of the learner's module: its hidden activation, read off a
    module whose output is 0.5 + 0.1 · act(t) (h = t swept over [-3, 3], w_in = 1, b_in = 0, w_out = 0.1 / d_ci,
    b_out = 0.5: inside [0, 1], where the clamp is the identity), when it is a usual one other than GELU; and
    importances that don't change when V's rows (or the inputs a) are rescaled, which they must."""
    if random := pairings.ci_random(module, p, lower):  # a random forward fools every probe below
        return random
    found: Mistakes = []
    n_inst, C, d_ci = p["w_in"].shape
    t = torch.linspace(-3, 3, 25, device=lower.device)
    try:
        probe = CausalImportance(n_inst, C, d_ci, alpha=0.05, device=lower.device)
        with torch.no_grad():
            for k, v in {"w_in": 1.0, "b_in": 0.0, "w_out": 0.1 / d_ci, "b_out": 0.5}.items():
                getattr(probe, k).fill_(v)
            a = torch.zeros(25, n_inst, p["a"].shape[-1], device=lower.device)
            a[..., 0] = t[:, None]
            V = torch.zeros_like(p["V"])
            V[..., 0] = 1.0
            act = ((probe(a, V)[0] - 0.5) / 0.1).reshape(25, -1)
        if bool((act - act[:, :1]).abs().max() < 1e-4) and not torch.allclose(act[:, 0], F.gelu(t), atol=1e-4):
            named = [k for k, f in ACTIVATIONS.items() if torch.allclose(act[:, 0], f(t), atol=1e-4)]
            if named:
                hint = f"your MLP's hidden activation is {named[0]}, not GELU: hidden = F.gelu(w_in h + b_in)"
                found.append(("activation", hint, lower))
        with torch.no_grad():
            scale = torch.tensor([2.0, 0.5, 3.0, 0.25], device=lower.device)[:C, None]
            rescaled = {
                "V's rows are rescaled (by factors 0.25 to 3)": ((p["a"], p["V"] * scale), "V / V.norm(dim=-1, ...)"),
                "the inputs a are doubled": ((2 * p["a"], p["V"]), "a / a.norm(dim=-1, ...)"),
            }
            for name, (args, norm) in rescaled.items():
                if torch.allclose(module(*args)[0], lower, rtol=1e-4, atol=1e-6):
                    hint = (
                        f"your importances don't change when {name}, and they must: h = V a, with V and a as given. "
                        f"Was it normalised ({norm}), or h divided by its size?"
                    )
                    found.append(("normalised_inputs", hint, lower))
    except Exception:  # a probe that the learner's module can't run says nothing
        return found + structure.ci_structure(CausalImportance, p, lower, 0.05)
    if batch := pairings.ci_batch_independence(module, p, lower):  # a batch statistic: not normalised per example
        found = [f for f in found if f[0] != "normalised_inputs"]
        batch = ci_readbacks.batch_statistics(p, lower) or batch
    return (found + pairings.ci_reductions(p) + batch + ci_sum_factor(p, lower)) + structure.ci_structure(
        CausalImportance, p, lower, 0.05
    )


def binary_masks(m: Tensor, g: Tensor, layer: int) -> None:
    """Fails when mask `layer` takes only the values 0 and 1, saying whether each cell's share of ones is its g (a
    coin flip kept with probability g). Tolerance: a cell's share of ones over n = 4000 Bernoulli(g) draws is within
    sqrt(ln(2 · 24 / 1e-6) / (2n)) = 0.047 of g for all 24 cells with probability 1 - 1e-6 (Hoeffding); 0.05 used."""
    undrawn.undrawn(m, g, layer)  # m = g (no draw) and m = g ** r, named first
    if not bool(((m == 0) | (m == 1)).all()) or bool((m == 0).all()) or bool((m == 1).all()):
        return
    shares = m.double().mean(0)
    seen = "each cell's share of ones is its g" if bool(((shares - g[0]).abs() < 0.05).all()) else "never in between"
    fail(
        f"mask {layer} takes only the values 0 and 1 ({seen})",
        "a mask is not a coin flip keeping the piece with probability g (torch.bernoulli(g), or rand < g): it is a "
        "continuous scale between g and 1, m = g + (1 - g) r with r = torch.rand_like(g)",
        code="binary_mask",
    )


def point_masses(r: Tensor, g: Tensor, layer: int) -> None:
    """Fails (code point_masses) when r = (m - g) / (1 - g) [n inst C] sits exactly at 0 or exactly at 1 on a share
    of its draws: a uniform r has no point mass (a float draw hits an exact end about once in 2^24), so a share
    over 1% is a clipped or overwritten draw. Only masses the same in every cell (r clipped whatever g is) are
    named here, and the law whose shares they are when they fit within 0.05 (a cell's share over n = 4000 draws
    is within 0.047 of its probability for all 24 cells with probability 1 - 1e-6, Hoeffding; cells whose shares
    differ by more than 0.1 have different probabilities). Masses that follow each cell's g (max(g, r) at 0,
    (g + r).clamp(max=1) at 1) are left to the checks after this one."""
    at0, at1 = (r.abs() < 1e-6).double().mean(0), ((r - 1).abs() < 1e-6).double().mean(0)  # [inst C]
    s0, s1 = float(at0.mean()), float(at1.mean())
    if max(s0, s1) <= 0.01 or max(float(at0.max() - at0.min()), float(at1.max() - at1.min())) > 0.1:
        return  # none, or masses that change with the cell's g: a transform of g + r (named by later checks)
    clipped_normal = abs(s0 - 0.5) < 0.05 and abs(s1 - 0.1587) < 0.05  # P(N < 0) = 1/2, P(N > 1) = 0.1587
    law = (
        " These are the shares of a standard normal clipped to [0, 1] (torch.randn(...).clamp(0, 1): 50% below 0, "
        "16% above 1), not of a uniform draw."
        if clipped_normal
        else ""
    )
    fail(
        f"r = (mask - g) / (1 - g) of matrix {layer} is exactly 0 on {s0:.0%} and exactly 1 on {s1:.0%} of its "
        f"{r.shape[0]} draws: point masses at the ends of [0, 1], which a uniform r never has.{law}",
        "the ends are hit when a draw on a wider range is clamped into [0, 1] (a normal, torch.randn, or a rand that "
        "was scaled or shifted), or when values are set to 0 or 1 by a condition (torch.where); r is uniform on "
        "[0, 1] itself: torch.rand_like(g), no clamp needed",
        code="point_masses",
    )


def span_law(v: Tensor, g: Tensor) -> tuple[str, str] | None:
    """(the span, the formula) when the smallest and largest of each cell's draws v [n inst C] follow lines in the
    cell's g [n inst C] (constant along n): v spans [a + b·g, c + d·g], as a + b·g + ((c - a) + (d - b)·g)·r does
    with r uniform on [0, 1]. Tolerance: a uniform law on a span of width w ≤ 1 leaves its ends uncovered by more
    than 0.01 in n = 4000 draws with probability (1 - 0.01/w)^n ≤ e^-40, so lines through the true ends fit the
    observed ones within 0.01; a residual above 0.015 means the ends aren't lines (or the law isn't uniform).
    Coefficients within 0.015 of a multiple of 0.05 are shown as that multiple; ends whose slopes in g are all below
    0.1 give None (a law that ignores g, e.g. a mean of two uniform draws, is left to the moment tests)."""
    gg = g[0].flatten().double()
    X = torch.stack([torch.ones_like(gg), gg], 1)
    coefs = []
    for end in (v.min(0).values, v.max(0).values):
        y = end.flatten().double()
        sol = torch.linalg.lstsq(X, y[:, None]).solution.flatten()
        if float((X @ sol - y).abs().max()) > 0.015:
            return None
        coefs += [
            round(float(c) * 20) / 20 if abs(float(c) * 20 - round(float(c) * 20)) < 0.3 else float(c) for c in sol
        ]
    a, b, c, d = coefs
    if max(abs(b), abs(d)) < 0.1:  # ends that don't follow g: a law of its own, which the moment tests name
        return None

    def line(k: float, slope: float) -> str:
        g = "g" if abs(slope - 1) < 1e-9 else "-g" if abs(slope + 1) < 1e-9 else f"{slope:.3g}·g"
        parts = ([f"{k:.3g}"] if abs(k) > 1e-9 else []) + ([g] if abs(slope) > 1e-9 else [])
        return " + ".join(parts).replace("+ -", "- ") or "0"

    width, start = line(c - a, d - b), line(a, b)
    scale = f"({width})·r" if " " in width or width.startswith("-") else f"{width}·r"
    formula = scale if start == "0" else f"{start} + {scale}"
    return f"[{line(a, b)}, {line(c, d)}]", formula


def r_span(r: Tensor, g: Tensor, layer: int) -> None:
    """Fails when r = (mask - g) / (1 - g) spans a range that follows g rather than [0, 1]: g applied twice."""
    law = span_law(r, g)
    if law is None:
        return
    fail(
        f"r = (mask - g) / (1 - g) of matrix {layer} spans {law[0]} (the smallest and largest of each cell's "
        f"{r.shape[0]} draws, against the cell's g), not [0, 1]",
        "r's range depends on g, so g went in twice: the mask is g + (1 - g) r with r = torch.rand_like(g) "
        "itself, not r drawn on [g, 1] (or a mask interpolated from g again)",
        code="g_twice",
    )


def mask_scale_invariance(masked_product: Callable, p: dict[str, Tensor], out: Tensor) -> Mistakes:
    """What replacing the masks shows (_mask_scale_invariance), then pieces u_c v_cᵀ rescaled (piece_scales)."""
    return _mask_scale_invariance(masked_product, p, out) + piece_scales(p, out)


def _mask_scale_invariance(masked_product: Callable, p: dict[str, Tensor], out: Tensor) -> Mistakes:
    """[(code, hint, out)] for what replacing the masks shows: an output that doesn't change at all when the masks
    are replaced by 1 - themselves (other values in (0.1, 0.9), which change the right output): they are not used
    (an unused delta mask is in the catalogue, delta_unmasked); else one that doesn't change when every mask of an
    example is scaled by one factor (0.5 to 0.9, per example), which changes the right output too (each mask scales
    its own subcomponent)."""
    keys = ("a", "W", "U", "V", "mask", "delta_mask")
    base = {k: v.detach().clone() for k, v in p.items()}

    def unchanged(**changed: Tensor) -> bool:
        q = {**base, **changed}
        try:
            with torch.no_grad():
                other = masked_product(*(q[k] for k in keys))
        except Exception:  # a probe only
            return False
        same = isinstance(other, Tensor) and other.shape == out.shape and torch.allclose(other, out, 1e-4, 1e-6)
        return same and not torch.allclose(mis.product_reference(q), mis.product_reference(base), 1e-4, 1e-6)

    if unchanged(mask=1 - base["mask"]):
        hint = (
            "your output doesn't change when `mask` is replaced by other values (1 - mask), and it must: the masks "
            "are not used. Each mask scales its own subcomponent and delta_mask the delta: U (mask ⊙ V a) + "
            "delta_mask · (W - U V) a (the full W a is the output with every mask 1)"
        )
        return [("masks_unused", hint, out)]
    if not unchanged(
        mask=base["mask"] * torch.linspace(0.5, 0.9, base["mask"].shape[0], device=out.device)[:, None, None]
    ):
        return []
    hint = (
        "your output doesn't change when every mask of an example is scaled by the same factor (0.5 to 0.9), and it "
        "must: each mask scales its own subcomponent, U (mask ⊙ V a). Were the masks normalised over the "
        "subcomponents (mask / mask.sum(-1), or by their max or norm)? Use them as given"
    )
    return [("mask_normalised", hint, out)]


def small_gradient_probe(adversarial_sources: Callable, n_steps: int, step: float, device: Any) -> None:
    """A linear loss Σ w·s whose gradients w are small but never 0, |w| from 1e-7 to 1e-1 (positive for sources[0],
    negative for sources[1]): sign(w) is ±1 whatever |w|, so every entry moves n_steps whole steps (up for
    sources[0], down for sources[1], from 0.3 and 0.7: no clamp). Fails, naming the size, when the entries with
    the smallest gradients stayed where they started and the others moved."""
    sizes = 10.0 ** torch.arange(-7, 0, device=device, dtype=torch.float32)
    loss_fn = lambda s: (s[0] * sizes).sum() - (s[1] * sizes).sum()
    init = [torch.full((7,), 0.3, device=device), torch.full((7,), 0.7, device=device)]
    out = [torch.as_tensor(o).detach().to(device) for o in adversarial_sources(loss_fn, init, n_steps, step)]
    if [o.shape for o in out] != [t.shape for t in init]:
        return
    still = torch.stack([(o - t).abs() < 1e-6 for o, t in zip(out, init, strict=True)]).all(0)  # per size
    n = int(still.sum())
    if 0 < n < len(sizes) and bool(still[:n].all()):
        stayed, moved = float(sizes[n - 1]), float(sizes[n])
        raise CheckFailed(
            "on a linear loss whose gradients are small but not 0 (|∂loss/∂r| from 1e-7 to 0.1), the entries with "
            f"gradients up to {stayed:.0e} never moved; those from {moved:.0e} up did",
            "sign(∂loss/∂r) is ±1 for any non-zero gradient, however small, so every entry moves by step_size: "
            f"don't treat gradients below some size (here between {stayed:.0e} and {moved:.0e}) as 0 (a threshold "
            "like g.abs() > 1e-2, or a rounded gradient); use g.sign() itself",
            code="small_gradient",
        )


def coupled_mistakes(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    """The sequential updates, and the sources after another number of steps than n_steps (0 to n_steps + 2): the
    coupled ascent goes back and forth, so counts of one parity end in the same place; the hint lists the counts
    that fit and the usual causes instead of asserting one."""
    flat = lambda sources: torch.cat([t.flatten() for t in sources])
    mistakes = sequential_mistakes(loss_fn, init, n_steps, step) + readings.held_at_init(loss_fn, init, n_steps, step)
    known = [flat(mis.adversarial_reference(loss_fn, init, n_steps, step))] + [m for *_, m in mistakes]
    groups: list[tuple[list[int], Tensor]] = []
    for n in [n for n in range(n_steps + 3) if n != n_steps]:
        out = flat(mis.adversarial_reference(loss_fn, init, n, step))
        same = [counts for counts, value in groups if torch.allclose(value, out, rtol=1e-4, atol=1e-5)]
        if same:
            same[0].append(n)
        elif not any(torch.allclose(k, out, rtol=1e-4, atol=1e-5) for k in known):
            groups.append(([n], out))
    split = n_steps // len(init)
    for counts, value in groups:
        listed = " or ".join(str(n) for n in counts)
        hint = (
            f"your sources are where {listed} step{'s' if counts != [1] else ''} put them, not n_steps = {n_steps} "
            f"(this ascent goes back and forth, so every step count of one parity ends in the same place): a loop "
            "that runs another number of steps than n_steps (a range off by one?), or one that stops early (a "
            "break when the loss stops rising?)"
            + (f", or n_steps split among the {len(init)} sources (n_steps // {len(init)})" if split in counts else "")
            + "; take exactly n_steps steps, each moving every source"
        )
        mistakes.append(("step_count", hint, value))
    return mistakes


def layerwise_per_matrix(layerwise: Any, n_matrices: int) -> None:
    """Fails (code layerwise_list) when the layerwise loss is the L per-matrix losses themselves (a list or tuple
    of L one-number tensors, or a tensor of shape (L,)) where their mean belongs."""
    listed = isinstance(layerwise, tuple | list) and all(isinstance(t, Tensor) and t.numel() == 1 for t in layerwise)
    stacked = isinstance(layerwise, Tensor) and tuple(layerwise.shape) == (n_matrices,)
    if not (listed and len(layerwise) == n_matrices) and not stacked:
        return
    kind = f"a {type(layerwise).__name__} of {n_matrices} losses" if listed else f"a tensor of shape ({n_matrices},)"
    fail(
        f"the layerwise stochastic reconstruction loss should be one scalar tensor, got {kind}: one per matrix "
        f"(L = {n_matrices})",
        "average the per-matrix losses into one scalar: the layerwise loss is the mean over the L matrices of the "
        "loss with only that matrix masked, torch.stack(losses).mean()",
        code="layerwise_list",
    )


def one_tensor(out: Any, what: str, hint: str) -> None:
    """Fail (code not_tensor, with a hint) when `out` is a tuple or list where one tensor was expected."""
    if isinstance(out, tuple | list):
        kinds = ", ".join(type(o).__name__ for o in out)
        fail(
            f"{what} should be one torch.Tensor, got a {type(out).__name__} of {len(out)} ({kinds})",
            hint,
            code="not_tensor",
        )


SVD_RETURNED = (
    "you returned the factors of the SVD: build the terms from them, term k = S[..., k] · outer(U[..., :, k], "
    "Vh[..., k, :]), and return them stacked in one tensor [inst r d_out d_in]"
)
TUPLE_FORWARD = (
    "forward returns one tensor, clamp(x, 0, 1): only backward returns one gradient per input of forward (a None "
    "for alpha)"
)
LIST_PENALTY = "add the matrices' penalties into one scalar tensor (sum over matrices), don't return them as a list"


# --------------------------------------------------------------------------------------------
# CausalImportance
# --------------------------------------------------------------------------------------------
def ci_scale_mistakes(p: dict[str, Tensor], alpha: float) -> Mistakes:
    """Inner activations h = c · V a for usual scales c (sizes of a, V)."""
    d_in, C = p["V"].shape[-1], p["V"].shape[-2]
    scales = {
        f"1/√d_in = 1/√{d_in}": d_in**-0.5,
        f"1/d_in = 1/{d_in}": 1 / d_in,
        f"1/√C = 1/√{C}": C**-0.5,
        f"1/C = 1/{C}": 1 / C,
        f"√d_in = √{d_in}": d_in**0.5,
    }
    roles = "z = Σ_j w_out GELU(w_in h + b_in) + b_out: w_in multiplies h, b_in is added inside the GELU, w_out weighs"
    with torch.no_grad():
        swaps = [  # two parameters in each other's places (w_in and w_out: in the catalogue)
            (
                "roles_swapped",
                f"{one} and {other} are in each other's places (your values are those of {roles.split(':')[0]} "
                f"with {one} and {other} exchanged): {roles.split(': ')[1]} the hidden units",
                mis.ci_reference({**p, one: p[other], other: p[one]}, alpha)[0],
            )
            for one, other in (("w_in", "b_in"), ("b_in", "w_out"))
        ]
        return (
            swaps
            + ci_mlp_order(p)
            + ci_readbacks.bias_twice(p)
            + [
                (
                    "inner_scaled",
                    f"your importances are those of inner activations h = V a × {name}: h is V a itself, no scaling "
                    "(this is not attention's scaled dot product)",
                    mis.ci_reference({**p, "V": p["V"] * c}, alpha)[0],
                )
                for name, c in scales.items()
            ]
        )


GELU_HAND = "GELU(x) = 0.5 x (1 + erf(x/√2)); x (1 + erf(x/√2)) without the 0.5 is 2·GELU"


def ci_sum_factor(p: dict[str, Tensor], lower: Tensor) -> Mistakes:
    """[(code, hint, lower)] when, wherever the learner's importances lie strictly inside (0, 1) (where the clamp
    is the identity, so lower = z), the sum over the hidden units (z - b_out), or z itself, is c × the expected
    one for one constant c ≠ 1 (fitted by least squares, required to hold on every such entry, at least 10). The
    factor is named by the sizes it fits (d_ci, C, d_in, the batch, n_inst, their roots and inverses), all of
    them, or stated alone."""
    n_inst, C, d_ci = p["w_in"].shape
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])
        hidden = (F.gelu(h[..., None] * p["w_in"] + p["b_in"]) * p["w_out"]).sum(-1)
    inside = (lower > 1e-4) & (lower < 1 - 1e-4)
    if int(inside.sum()) < 10:
        return []
    sizes = {"d_ci": d_ci, "C": C, "d_in": p["a"].shape[-1], "the batch": p["a"].shape[0], "n_inst": n_inst}
    for what, got, right in (
        ("Σ_j w_out GELU(w_in h + b_in) (before b_out is added)", (lower - p["b_out"])[inside], hidden[inside]),
        ("z (b_out included)", lower[inside], (hidden + p["b_out"])[inside]),
    ):
        c = float((got * right).sum() / (right * right).sum())
        if abs(c - 1) < 1e-3 or abs(c) < 1e-6 or not torch.allclose(got, c * right, rtol=1e-4, atol=1e-5):
            continue
        near = lambda x, c=c: abs(c - x) < 1e-4 * max(1.0, x)
        fits = [f"{n} = {name}" for name, n in sizes.items() if near(n)]
        fits += [f"1/{n} = 1/{name}" for name, n in sizes.items() if near(1 / n)]
        fits += [f"√{n} = √{name}" for name, n in sizes.items() if near(n**0.5)]
        fits += [f"1/√{n} = 1/√{name}" for name, n in sizes.items() if near(n**-0.5)]
        causes = ["a scale such as __init__'s 1/√d_ci copied into forward"] if any("√" in f for f in fits) else []
        causes += ["a mean where a sum belongs, or the reverse"] if any("√" not in f for f in fits) else []
        if near(2.0) or near(0.5):  # a hand-written GELU scales every hidden unit alike: indistinguishable here
            causes.append(f"a GELU off by a factor {c:.4g} ({GELU_HAND})")
        why = f" ({' or '.join(fits)}: {', or '.join(causes)}?)" if fits else " (a missing or extra constant factor?)"
        why = f" ({', or '.join(causes)}?)" if causes and not fits else why
        hint = (
            f"your {what} is {c:.4g} × the expected one{why}: z = Σ_j w_out GELU(w_in h + b_in) + b_out, the plain "
            "sum over the hidden units, no scaling (the init scales the parameters, not the forward)"
        )
        return [("sum_scaled", hint, lower)]
    return []


GRAD_HINT = (  # said once both sigmoids' slopes outside [0, 1] were measured to be alpha (leak_depths.ci_slopes)
    "the importances are right but this gradient is not, and both leaky sigmoids' slopes outside [0, 1] were "
    "measured and are alpha = self.alpha (so not their backward). The gradient must be the one of the forward as "
    "computed: z = Σ_j w_out GELU(w_in h + b_in) + b_out with h = V a, all in autograd, every parameter used as "
    "itself (no .detach(), constant or .item() in its place, no straight-through or custom backward on the way)"
)


# --------------------------------------------------------------------------------------------
# importance_minimality_loss
# --------------------------------------------------------------------------------------------
def zeros_probe(fn: Callable, ci: list[Tensor], p: float, eps: float) -> None:
    """The penalty of importances that are all exactly 0: n_inst · Σ_l C_l · eps^p (each (0 + eps)^p counts)."""
    zeros = [torch.zeros_like(g) for g in ci]
    try:
        got = fn(zeros, p, eps)
    except Exception:  # a probe only
        return
    if not isinstance(got, Tensor) or got.numel() != 1:
        return
    expected = ci[0].shape[1] * sum(g.shape[-1] for g in ci) * eps**p
    n = ci[0].shape[1] * sum(g.shape[-1] for g in ci)
    if abs(float(got) - n * eps) < 1e-4 * n * eps and abs(p - 1) > 1e-3:  # each zero counted eps, not eps^p
        try:
            plain = fn([torch.full_like(g, 0.3) for g in ci], p, eps)  # 0.3^p > eps: does eps change it at all?
        except Exception:  # a probe only
            return
        if isinstance(plain, Tensor) and plain.numel() == 1 and abs(float(plain) - n * 0.3**p) < 1e-4 * n * 0.3**p:
            fail(
                f"importance_minimality_loss of importances that are all exactly 0 is {float(got):.4g} = instances "
                f"× subcomponents × eps, expected {expected:.4g} = instances × subcomponents × eps^p; of importances "
                "all 0.3 it is instances × subcomponents × 0.3^p, without eps",
                "eps is only a floor applied after the power (g.pow(p).clamp(min=eps), or torch.maximum(g ** p, eps)"
                "?): it belongs inside the power, (g + eps) ** p, for every importance",
                code="eps_after_power",
            )
    try:  # right where no importance is 0 (so eps and p are used as asked), 0 where all are
        inside = fn([torch.full_like(g, 0.3) for g in ci], p, eps)
    except Exception:  # a probe only
        return
    right = ci[0].shape[1] * sum(g.shape[-1] for g in ci) * (0.3 + eps) ** p
    if not isinstance(inside, Tensor) or inside.numel() != 1 or abs(float(inside) - right) > 1e-4 * right:
        return
    if abs(float(got)) < 1e-3 * expected:
        fail(
            f"importance_minimality_loss of importances that are all exactly 0 is {float(got):.4g}, expected "
            f"{expected:.4g} = instances × subcomponents × eps^p",
            "zeros skipped: (0 + eps)^p still counts: apply (g + eps) ** p to every importance, 0 included (no "
            "torch.where(g > 0, ...) or mask on g)",
            code="zeros_skipped",
        )


# --------------------------------------------------------------------------------------------
# adversarial_sources
# --------------------------------------------------------------------------------------------
def start_probe(
    adversarial_sources: Callable, loss_fn: Callable, init: list[Tensor], flat: Tensor, step: float
) -> None:
    """After 0 steps the sources are init itself; a start elsewhere (zeros, ones, random) is named. Skipped when
    n_steps is ignored (the 0-step output is the n-step one)."""
    try:
        out = adversarial_sources(loss_fn, [t.clone() for t in init], 0, step)
        out0 = torch.cat([torch.as_tensor(o).detach().flatten() for o in out])
    except Exception:  # a probe only
        return
    start = torch.cat([t.flatten() for t in init])
    if out0.shape != start.shape or torch.allclose(out0, start, atol=1e-6) or torch.allclose(out0, flat, atol=1e-6):
        return
    pairings.start_rounded(out0, start)  # init rounded, binarised or clamped: not a start elsewhere
    shown, initial = (", ".join(f"{float(v):.3g}" for v in t[:4]) for t in (out0, start))
    fail(
        f"with n_steps = 0 adversarial_sources returns {shown}, ..., not init ({initial}, ...)",
        "init ignored: the ascent starts from init (copies of it, [s.detach().clone() for s in init]), not from "
        "zeros or fresh values",
        code="init_ignored",
    )


# --------------------------------------------------------------------------------------------
# one-off mutants
# --------------------------------------------------------------------------------------------
def ablation_squares(chain: Any, terms: Tensor, x: Tensor) -> Mistakes:
    with torch.no_grad():
        y0, K = chain(x), terms.shape[1]
        runs = [mis.run_with_first(chain, chain.weights[0] - terms[:, k], x) for k in range(K)]
        out = torch.stack([(y.pow(2) - y0.pow(2)).mean(-1) for y in runs]).permute(2, 0, 1)
    hint = (
        "the loss is the mean of the squared difference, (y_ablated - y)², not the difference of the squares, "
        "y_ablated² - y² (which can be negative)"
    )
    return [("difference_of_squares", hint, out), *ablation_slips(chain, terms, x)]


def faithfulness_inst_summed(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    n = sum(W[0].numel() for W in weights)
    sq = sum(
        (W - torch.einsum("iac,icb->ab", u, v)).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)
    )
    hint = (
        "your U V is summed over the instances (an einsum output 'd_out d_in' without inst): keep inst in the "
        "product, 'inst d_out C, inst C d_in -> inst d_out d_in' (or U @ V), each instance has its own"
    )
    return [("instances_summed", hint, (sq / n).sum())]


def product_delta_mean_mask(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        out = mis.product_reference({**p, "delta_mask": p["mask"].mean(-1)})
    hint = "the delta term is scaled by delta_mask (its own draw), not by the mean of the subcomponent masks"
    return [("delta_mask_from_masks", hint, out), *product_sum_of_factors(p)]


def recon_accumulator(right: Tensor, chain: Any, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    L = len(chain.weights)
    layerwise = (right[0] + right[1] * L) / L
    hint = (
        f"your layerwise loss is (full + Σ_l loss_l) / L: the accumulator starts from the full loss; start it from "
        f"0, the mean of the L = {L} single-matrix losses alone"
    )
    out = [("layerwise_from_full", hint, torch.stack([right[0], layerwise]))]
    return (
        out
        + readings.full_as_sum(right, L)
        + readings.recon_others(chain, p, x)
        + pairings.recon_permuted_masks(chain, p, x)
    )


def minimality_reductions(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """[(code, hint, value)] for every combination of reductions with the mean over subcomponents among them (the
    ones that aren't a constant factor of the right value, which `scalar_hint` names): each axis summed or averaged,
    two or more at once. The single swaps and the mean per matrix (over C and instances) are in the catalogue."""
    wrong = {
        "batch": "a sum over the batch where a mean was asked",
        "inst": "a mean over instances where a sum was asked",
        "matrices": "a mean over matrices where a sum was asked",
    }
    out = []
    with torch.no_grad():
        terms = [(g + eps).pow(p).mean(-1) for g in ci]  # [batch inst] per matrix: the mean over C, always here
        for mask in range(1, 8):
            picked = [axis for n, axis in enumerate(wrong) if mask >> n & 1]
            if picked == ["inst"]:  # = the catalogue's mean_per_matrix
                continue
            per_example = sum(terms) / (len(ci) if "matrices" in picked else 1)
            per_inst = per_example.sum(0) if "batch" in picked else per_example.mean(0)
            value = per_inst.mean() if "inst" in picked else per_inst.sum()
            why = " and ".join(["a mean over subcomponents where a sum was asked"] + [wrong[a] for a in picked])
            hint = (
                f"the reductions: {why}. Sum over subcomponents and matrices, mean over the batch, sum over instances"
            )
            out.append(("reductions", hint, value))
    out += penalty_pairs.penalty_pairs(ci, p, eps)  # an eps slip and a reduction slip at once
    return out + readings.minimality_penalties(ci, p, eps) + pairings.minimality_soft_max(ci, p, eps)


def minimality_sums(ci: list[Tensor]) -> dict[str, int]:
    """The axes the penalty sums over, for `scalar_hint`: a mean over one of them divides by its size."""
    n_sub = sum(g.shape[-1] for g in ci)
    return {"instances": ci[0].shape[1], "matrices": len(ci), f"all Σ_l C_l = {n_sub} subcomponents": n_sub}


def ci_mlp_order(p: dict[str, Tensor]) -> Mistakes:
    """The MLP's steps in another order: the bias added before the weight, or a product of sums over the hidden
    units (Σ_j hidden_j)(Σ_j w_out_j) where the sum of products Σ_j w_out_j hidden_j was asked."""
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])[..., None]
        hidden = F.gelu(h * p["w_in"] + p["b_in"])
        summed = hidden.sum(-1) * p["w_out"].sum(-1) + p["b_out"]
        early = (F.gelu((h + p["b_in"]) * p["w_in"]) * p["w_out"]).sum(-1) + p["b_out"]
    return [
        (
            "product_of_sums",
            "your z is (Σ_j hidden_j)(Σ_j w_out_j): each factor summed over the hidden units on its own; weight each "
            "hidden unit first, then sum: z = Σ_j w_out_j GELU(w_in_j h + b_in_j) + b_out ((hidden * w_out).sum(-1))",
            summed.clamp(0, 1),
        ),
        (
            "bias_before_weight",
            "the hidden layer is GELU(w_in h + b_in): your code adds b_in before multiplying by w_in, GELU((h + b_in) "
            "w_in)",
            early.clamp(0, 1),
        ),
    ]


def product_sum_of_factors(p: dict[str, Tensor]) -> Mistakes:
    """U (m ⊙ V a) with each factor summed over C on its own: (Σ_c m_c (V a)_c)(Σ_c U_c)."""
    with torch.no_grad():
        inner = torch.einsum("bid,icd->bic", p["a"], p["V"]) * p["mask"]
        out = inner.sum(-1, keepdim=True) * p["U"].sum(-1)
        out = out + p["delta_mask"][..., None] * torch.einsum("bid,iod->bio", p["a"], p["W"] - p["U"] @ p["V"])
    hint = (
        "your subcomponent part is (Σ_c m_c (V a)_c) · (Σ_c U[:, :, c]): V a and U summed over C each on its own; "
        "multiply each subcomponent's column of U by its own masked activation, then sum over C: U (m ⊙ V a) "
        "(einsum 'batch inst C, inst d_out C -> batch inst d_out')"
    )
    return [("product_of_sums", hint, out), *pairings.product_mask_powers(p)]


def ablation_slips(chain: Any, terms: Tensor, x: Tensor) -> Mistakes:
    """The Euclidean distance ‖Δy‖ as the loss; W_0 - T_k rebuilt from the terms as Σ_{j≠k} T_j (right only when
    they add up to W_0, which the checker's generic terms don't); the input of a later matrix (chain.run(x)[1][l],
    l ≥ 2) taken as the output."""
    with torch.no_grad():
        y0, W0, K = chain(x), chain.weights[0], terms.shape[1]
        runs = lambda first: [mis.run_with_first(chain, first(k), x) for k in range(K)]
        stack = lambda values: torch.stack(values).permute(2, 0, 1)
        ablated = runs(lambda k: W0 - terms[:, k])
        out = [
            (
                "distance",
                "your losses are the Euclidean distance ‖y_ablated - y‖ (the root of the sum of squares): the loss is "
                "the mean over output dims of the squared change, (y_ablated - y).pow(2).mean(-1), no root",
                stack([(y - y0).pow(2).sum(-1).sqrt() for y in ablated]),
            ),
            (
                "rebuilt_from_terms",
                "your ablated matrix is Σ_{j≠k} T_j, rebuilt from the terms: that is W_0 - T_k only when the terms add "
                "up to W_0 exactly, which the terms you are given need not do (here they don't); remove the term from "
                "the matrix itself, chain.weights[0] - terms[:, k]",
                stack([(y - y0).pow(2).mean(-1) for y in runs(lambda k: terms.sum(1) - terms[:, k])]),
            ),
        ]
        for layer in range(2, len(chain.weights)):
            inputs = lambda first: chain.run(x, lambda n, a: mis.mm(a, first if n == 0 else chain.weights[n]))[1]
            base = inputs(W0)[layer]
            hint = (
                f"your losses measure the change of chain.run(x)[1][{layer}], the input of matrix {layer} (run returns "
                "(output, inputs): its second entry lists what each matrix multiplies); the output is chain(x), or "
                "chain.run(x)[0]"
            )
            changes = [(inputs(W0 - terms[:, k])[layer] - base).pow(2).mean(-1) for k in range(K)]
            out.append(("hidden_change", hint, stack(changes)))
    return out
