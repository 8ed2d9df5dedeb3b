"""Measurements that name mistakes nobody listed, for part 5a's checkers (`tests.part5a_sae_architectures`).

* JumpReLU: the θ-gradient's window cut at θ (`HALF_WINDOW`, a catalogue entry).
* Heaviside and JumpReLU: where the learner's threshold pseudo-derivative is non-zero, measured at two bandwidths
  on a fine grid around θ: the bandwidth unused (the same gradient at both), a window of the wrong width or shape,
  or one far narrower than ε.
* Heaviside and JumpReLU: an x-gradient non-zero only inside the window (`grad_x_window`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part5_toy_saes_diagnosis as D
from tests import part5a_sae_architectures_metric_slips as MS
from tests import part5a_sae_architectures_mistakes as M
from tests.checking import fail
from tests.loss_difference_of_squares import difference_of_squares

BANDWIDTH = 0.1

# JumpReLU's θ-gradient with the window cut at θ: the output saved in forward instead of x (0 below θ, so
# K((out - θ)/ε) vanishes there) gives exactly this; so does masking the window with the forward's gate.
HALF_WINDOW = (
    "half_window",
    "your θ-gradient is right above θ but zero just below it: the window K((x - θ)/ε) must use the input x on "
    "both sides of θ (save x in forward, not the output; don't multiply the window by the gate 1[x > θ])",
    lambda x, th, bw: -th * (((x - th) / bw).abs() < 0.5).to(x.dtype) * (x > th).to(x.dtype) / bw,
)


def _window(impl: Any, bandwidth: float) -> tuple[float, float, Tensor] | None:
    """(largest |x - θ|, largest |gradient|, the gradient) where the threshold gradient of `impl` is non-zero,
    θ = 1, on a grid up to 8 plus points down to 1e-8 from θ (so a window far narrower than ε is seen too); None
    when it is zero everywhere (or the learner's backward fails here)."""
    fine = torch.logspace(-8, -1, 200, dtype=torch.float64)
    d = torch.cat([torch.linspace(-8, 8, 16001, dtype=torch.float64)[:-1] + 3e-4, fine, -fine])  # no edge hit
    x, th = (1.0 + d).requires_grad_(True), torch.ones_like(d).requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(impl.apply(x, th, bandwidth).sum(), th, allow_unused=True)
    except Exception:  # the learner's backward failing on these inputs: say nothing about the window
        return None
    if grad is None or not (grad.detach() != 0).any():
        return None
    on = grad.detach() != 0
    return float(d[on].abs().max()), float(grad.detach().abs().max()), grad.detach()


def _windows(impl: Any) -> dict:
    return {eps: _window(impl, eps) for eps in (BANDWIDTH, 4 * BANDWIDTH)}


def _ignores_bandwidth(measured: dict) -> str | None:
    """A hint when the threshold gradient is identical at two bandwidths: then the ε passed in is unused."""
    if any(m is None for m in measured.values()):
        return None
    (w1, p1, g1), (_, _, g4) = measured[BANDWIDTH], measured[4 * BANDWIDTH]
    if not torch.equal(g1, g4):
        return None
    return (
        f"your threshold gradient is identical at ε = {BANDWIDTH:g} and ε = {4 * BANDWIDTH:g}: non-zero for "
        f"|x - θ| up to ≈ {w1:.2g}, height ≈ {p1:.3g} (what a bandwidth of about {2 * w1:.2g} would give): the "
        "bandwidth passed to apply is unused (a hard-coded value?). Store it in forward (ctx.bandwidth = "
        "bandwidth) and use it in backward: -(factor/ε) K((x - θ)/ε)"
    )


def _window_hint(measured: dict) -> str:
    """Describe where the learner's threshold gradient is non-zero, measured at two bandwidths."""
    seen = ", ".join(f"|x - θ| up to {w[0]:.3g} at ε = {e:g}" for e, w in measured.items() if w is not None)
    base = f"your threshold gradient is non-zero outside the window |x - θ| < ε/2 ({seen}): "
    if measured[BANDWIDTH] is None or measured[4 * BANDWIDTH] is None:
        return base + "K is the rectangle 1[|u| < 1/2] with u = (x - θ)/ε"
    w1, w4 = measured[BANDWIDTH][0], measured[4 * BANDWIDTH][0]
    if min(w1, w4) > 7.9:
        return base + "it has no cutoff at all on |x - θ| <= 8: K is the rectangle 1[|u| < 1/2], zero elsewhere"
    if abs(w4 / w1 - 0.25) < 0.05:
        return base + (
            f"the window is ≈ {2 * w1 * BANDWIDTH:.2g}/ε wide and shrinks as ε grows, instead of ε wide: is u "
            "computed as (x - θ) · ε instead of (x - θ) / ε?"
        )
    profile = _profile(measured[BANDWIDTH][2])
    (lo1, hi1), (lo4, hi4) = _edges(measured[BANDWIDTH][2]), _edges(measured[4 * BANDWIDTH][2])
    centre, width = (lo4 + hi4) / 2 / (4 * BANDWIDTH), (hi4 - lo4) / (4 * BANDWIDTH)
    if abs(w4 / w1 - 4) < 0.2 and abs(centre) > 0.1:  # the window seen by its edges: off θ
        where = "below" if centre < 0 else "above"
        return (
            f"your threshold gradient is non-zero for x - θ between {lo1:.3g} and {hi1:.3g} at ε = {BANDWIDTH:g}, and "
            f"between {lo4:.3g} and {hi4:.3g} at ε = {4 * BANDWIDTH:g}: a window {width:.2g}·ε wide, {profile}, "
            f"centred {abs(centre):.2g}·ε {where} θ instead of on θ (K((x - θ)/ε) is non-zero for -ε/2 < x - θ < "
            "ε/2). E.g. a one-sided window (θ - ε < x <= θ, or θ <= x < θ + ε), the kernel's argument "
            "shifted (u ± 1/2, x - θ ± ε), or the window's edges written by hand with the wrong bounds"
        )
    if abs(w4 / w1 - 4) < 0.2:
        return base + (
            f"the window grows with ε but is {w4 / (2 * BANDWIDTH):.2g}·ε wide instead of ε, and {profile}. K is the "
            "flat rectangle 1[|u| < 1/2] with u = (x - θ)/ε. E.g. another kernel (a triangle 1 - |u|, a Gaussian), "
            "u divided by another multiple of ε, the cutoff at another |u|, or a θ other than each latent's own"
        )
    return base + f"{profile}. K is the rectangle 1[|u| < 1/2] with u = (x - θ)/ε, zero elsewhere"


def grad_x_window(name: str, grad_x: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, known: list) -> None:
    """Fail when the x-gradient is non-zero only inside the rectangle window |x - θ| < ε/2 (and not a catalogue
    mistake, in `known`): the window K((x - θ)/ε), the θ pseudo-derivative's kernel, given to x. Says the value it
    has there per unit of grad_output when that is one constant (1: K itself; 1/ε: K/ε), else where it is non-zero.
    """
    gx, want = grad_x.detach().double(), g.double()
    close = lambda a, b: a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6))
    if gx.shape != x.shape or not bool(torch.isfinite(gx).all()) or any(close(gx, v) for *_, v in known):
        return
    inside = ((x - th) / bw).abs() < 0.5
    on = gx.abs() > 1e-7
    if not bool(on.any()) or bool((on & ~inside).any()):
        return
    ratio = (gx / want)[inside]
    c = float(ratio.median())
    if bool(torch.allclose(ratio, torch.full_like(ratio, c), rtol=1e-4, atol=1e-6)):
        named = {1.0: "1, the window K((x - θ)/ε) itself", 1 / bw: f"1/ε = {1 / bw:g}, the window divided by ε"}
        label = next((v for k, v in named.items() if abs(c - k) <= 1e-4 * abs(k)), f"the constant {c:.4g}")
        there = f"equal to {label}, times grad_output, at every one of them"
    else:
        above, below = int((on & (x > th)).sum()), int((on & (x < th)).sum())
        there = f"non-zero at {int(on.sum())} of them ({above} above θ, {below} below)"
    right = (
        "the step 1[x > θ]: 1 wherever x > θ, however far above θ, and 0 below"
        if name == "JumpReLU"
        else "0 everywhere (the step is flat on both sides of θ): return None or zeros for x"
    )
    fail(
        f"the gradient of {name} with respect to x is 0 everywhere outside the window |x - θ| < ε/2 and, inside it "
        f"({int(inside.sum())} of the {x.numel()} test inputs), {there}",
        f"∂{name}/∂x is {right}; the window K((x - θ)/ε) is the step's pseudo-derivative, which goes to θ only "
        f"(the ∂/∂θ column of the table), not to x",
        code="grad_x_window",
    )


def _edges(grad: Tensor) -> tuple[float, float]:
    """The smallest and largest x - θ (signed, rounded to 1e-3) where a gradient measured on `_window`'s grid is
    non-zero."""
    fine = torch.logspace(-8, -1, 200, dtype=torch.float64)
    d = torch.cat([torch.linspace(-8, 8, 16001, dtype=torch.float64)[:-1] + 3e-4, fine, -fine])[grad != 0]
    return round(float(d.min()), 3) + 0.0, round(float(d.max()), 3) + 0.0


def reduced_broadcast(
    got: Tensor, want: Tensor, what: str, hint: str, noun: str = "gradient", dims: tuple[str, ...] | None = None
) -> None:
    """Fail when `got` is `want` averaged or summed over one axis and broadcast back (the same value at every
    position along that axis): `hint` says what each element should get instead. `noun`: what `want` is (in the
    message); `dims`: the axes' names (else their numbers)."""
    if got.shape != want.shape or got.ndim < 2:
        return
    g, w = got.detach().double(), want.detach().double()
    for axis in range(w.ndim):
        name = f"the {dims[axis]} axis" if dims else f"axis {axis}"
        for how, red in (("averaged", w.mean(axis, keepdim=True)), ("summed", w.sum(axis, keepdim=True))):
            if (
                w.shape[axis] > 1
                and not torch.allclose(red.expand_as(w), w, rtol=1e-4, atol=1e-5)
                and torch.allclose(g, red.expand_as(w), rtol=1e-4, atol=1e-5)
            ):
                fail(
                    f"{what} is the same at every position along {name} (size {w.shape[axis]}): it is the "
                    f"expected {noun} {how} over {name} and broadcast back",
                    hint,
                    code="reduced_broadcast",
                )


def _profile(grad: Tensor) -> str:
    """Describe the shape of a threshold gradient measured on `_window`'s grid (θ = 1): flat, triangular, or
    varying with x - θ."""
    fine = torch.logspace(-8, -1, 200, dtype=torch.float64)
    d = torch.cat([torch.linspace(-8, 8, 16001, dtype=torch.float64)[:-1] + 3e-4, fine, -fine]).abs()
    on = grad != 0
    dd, hh = d[on], grad[on].abs().double()
    top, low = float(hh.max()), float(hh.min())
    if low > 0.99 * top:
        return f"flat (height ≈ {top:.3g})"
    width = float(dd.max())
    slope = torch.linalg.lstsq(torch.stack([torch.ones_like(dd), dd], 1), hh[:, None]).solution[:, 0]
    a, b = float(slope[0]), float(slope[1])
    fit = a + b * dd
    if b < 0 and float((fit - hh).abs().max()) < 0.02 * top:
        return (
            f"triangular: largest (≈ {a:.3g}) at x = θ, falling linearly to 0 at |x - θ| ≈ {-a / b:.2g}, "
            "instead of flat"
        )
    inner, outer = hh[dd < width / 4], hh[dd > 3 * width / 4]
    falls = inner.numel() > 0 and outer.numel() > 0 and float(inner.mean()) > float(outer.mean())
    return (
        "largest at x = θ and falling off away from it, instead of flat" if falls else "not flat: it varies with x - θ"
    )


def threshold_window(impl: Any, grad_th: Tensor, outside: bool) -> tuple[str, str] | None:
    """(code, hint) from the threshold gradient measured at two bandwidths, for a wrong gradient: ε unused (the
    same gradient at both), non-zero outside the window, or 0 on every test input yet non-zero very close to θ
    (a window far narrower than ε). None when none of these is seen (then the catalogue decides; "None or
    zeros" only fits a gradient that is 0 everywhere)."""
    measured = _windows(impl)
    ignored = _ignores_bandwidth(measured)
    if ignored is not None:
        return "bandwidth_ignored", ignored
    if outside:
        return "kernel_shape", _window_hint(measured)
    if not (grad_th != 0).any() and measured[BANDWIDTH] is None:
        return _window_far(impl)
    if measured[BANDWIDTH] is None or measured[4 * BANDWIDTH] is None:
        return None
    w1, w4 = measured[BANDWIDTH][0], measured[4 * BANDWIDTH][0]
    if (grad_th != 0).any() and abs(w4 / w1 - 4) < 0.2 and 2 * w1 / BANDWIDTH < 0.9:
        r = 2 * w4 / (4 * BANDWIDTH)  # the wider window: the grid's spacing matters less
        return "window_width", (
            f"your threshold gradient is non-zero only for |x - θ| up to {w1:.3g} at ε = {BANDWIDTH:g} and up to "
            f"{w4:.3g} at ε = {4 * BANDWIDTH:g}: the window grows with ε but is {r:.2g}·ε wide instead of ε "
            f"({_profile(measured[BANDWIDTH][2])}). K is 1[|u| < 1/2] with u = (x - θ)/ε: is u divided by "
            f"{r:.2g}·ε instead of ε, or the rectangle cut at |u| < {r / 2:.2g} instead of 1/2?"
        )
    if (grad_th != 0).any():
        return None
    seen = ", ".join(f"|x - θ| up to {m[0]:.2g} (height {m[1]:.3g}) at ε = {e:g}" for e, m in measured.items())
    return "window_too_narrow", (
        f"your threshold gradient is 0 on every test input off θ but non-zero very close to θ ({seen}): the window is "
        "far narrower than ε. K is 1[|u| < 1/2] with u = (x - θ)/ε: is ε used as passed, and u divided by it?"
    )


def _window_far(impl: Any) -> tuple[str, str] | None:
    """A threshold gradient that is 0 on every test input and within 8 of θ: is it non-zero farther away (θ = 1,
    ε = BANDWIDTH, x up to 60 from θ)? Then it is not "None or zeros": say where it is non-zero, and the likely
    causes. None when it is 0 there too (or the backward fails)."""
    d = torch.linspace(-60, 60, 240001, dtype=torch.float64) + 3e-4
    x, th = (1.0 + d).requires_grad_(True), torch.ones_like(d).requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(impl.apply(x, th, BANDWIDTH).sum(), th, allow_unused=True)
    except Exception:  # the learner's backward failing on these inputs: say nothing
        return None
    if grad is None or not (grad.detach() != 0).any():
        return None
    on = x.detach()[grad.detach() != 0]
    lo, hi = float(on.min()), float(on.max())
    centre = (lo + hi) / 2
    likely = ""
    if abs(centre - 1 / BANDWIDTH) < 0.1:
        likely = (
            f" It is centred on θ/ε = {1 / BANDWIDTH:g}: K's argument is x - θ / ε, which divides only θ (operator "
            "precedence): write K((x - θ) / ε) with the parentheses."
        )
    causes = likely or (
        " Possible causes: the kernel's argument built wrongly (operator precedence: x - θ / ε or x / ε - θ for "
        "(x - θ) / ε; another tensor than x - θ), or a window centred elsewhere than θ"
    )
    return "window_misplaced", (
        f"your threshold gradient is 0 at every test input (all within 8 of θ) but non-zero for x between {lo:.3g} "
        f"and {hi:.3g} at θ = 1, ε = {BANDWIDTH:g}; K((x - θ)/ε) is non-zero only for |x - θ| < ε/2, i.e. "
        f"{1 - BANDWIDTH / 2:g} < x < {1 + BANDWIDTH / 2:g}.{causes}"
    )


# JumpReLU's θ-gradient with another factor than θ: exp(θ) (θ read as a log-threshold and exponentiated again), θ²,
# 1/θ (θ/ε misread as 1/(θε)).
def _rect(u: Tensor) -> Tensor:
    return (u.abs() < 0.5).to(u.dtype)


THETA_FACTORS = [
    (
        "exp_theta_factor",
        "the factor is θ itself, -(θ/ε) K((x - θ)/ε): JumpReLU receives θ = exp(log_threshold) already, so don't "
        "exponentiate it again in backward",
        lambda x, th, bw: -th.exp() * _rect((x - th) / bw) / bw,
    ),
    ("theta_squared_factor", "the factor is θ, not θ²", lambda x, th, bw: -th * th * _rect((x - th) / bw) / bw),
    (
        "inverse_theta_factor",
        "the factor θ multiplies, -(θ/ε) · K((x - θ)/ε): you divided by θ, -K/(θ·ε)",
        lambda x, th, bw: -_rect((x - th) / bw) / (th * bw),
    ),
    (
        "x_over_theta_factor",
        "the factor is θ, -(θ/ε) · K((x - θ)/ε) · grad_output: yours is x/θ (a ratio where θ alone belongs)",
        lambda x, th, bw: -(x / th) * _rect((x - th) / bw) / bw,
    ),
    (
        "x_factor",
        "the factor is θ, -(θ/ε) · K((x - θ)/ε) · grad_output: yours is x (the input where the threshold belongs)",
        lambda x, th, bw: -x * _rect((x - th) / bw) / bw,
    ),
]


def smooth_step(out: Tensor, want: Tensor, on: Tensor, u: Tensor, name: str, step: str) -> tuple[str, str] | None:
    """(message, hint) when the forward output of a step function lies strictly between 0 and the step's value `on`
    wherever it is neither (a smooth or partial step: sigmoid, clamped ramp), else None. `u` = (x - θ)/ε."""
    g = out.detach().to(want.dtype)
    other = (g != 0) & (g != on) & (g != want)
    if not other.any():
        return None
    frac = g[other] / on[other]
    if not bool(((frac > 0) & (frac < 1)).all()):
        return None
    i = int(other.flatten().nonzero()[0])
    return (
        f"{name} forward takes values strictly between 0 and {step} at {int(other.sum())}/{g.numel()} positions "
        f"(e.g. {float(g.flatten()[i]):.4g} where (x - θ)/ε = {float(u.flatten()[i]):.3g}): a smooth or partial step",
        f"the forward pass is the exact step ({step} where x > θ, else 0): a sigmoid, ramp or window belongs only in "
        "backward (the straight-through estimator uses it for the gradient, never for the value)",
    )


def jumprelu_acts_options(sae: Any, h: Tensor) -> tuple[Any, list]:
    """acts_post = JumpReLU(pre, θ) with realistic alternatives for its input, bias and threshold."""

    def combine(projected: Tensor, bias: Any, theta: Any) -> Tensor:
        pre = projected + bias
        return pre * (pre > theta).to(pre.dtype)

    cfg, enc = sae.cfg, lambda x, W: torch.einsum("bid,ids->bis", x, W)
    tied = "the encoder is the decoder transposed (W_dec_normalized.mT, tied weights): this SAE has its own encoder, "
    return combine, [
        [
            ("x", "", lambda: enc(h - sae.b_dec, sae.W_enc)),
            ("no_b_dec_subtraction", "the encoder reads h, not h - b_dec", lambda: enc(h, sae.W_enc)),
            (
                "decoder_encoder",
                tied + "pre = (h - b_dec) @ W_enc + b_enc",
                lambda: enc(h - sae.b_dec, sae.W_dec_normalized.mT),
            ),
        ],
        [("b_enc", "", lambda: sae.b_enc), ("no_b_enc", "the pre-activation has no b_enc", lambda: 0.0)],
        [
            ("theta", "", lambda: sae.log_threshold.exp()),
            ("no_exp", "the threshold is log_threshold, not exp(log_threshold)", lambda: sae.log_threshold),
            (
                "softplus_threshold",
                "the threshold is softplus(log_threshold), not exp(log_threshold)",
                lambda: torch.nn.functional.softplus(sae.log_threshold),
            ),
            (
                "threshold_from_config",
                "the threshold is cfg.jumprelu_init_threshold (the config's initial value), not the trained parameter "
                "exp(self.log_threshold)",
                lambda: cfg.jumprelu_init_threshold,
            ),
            (
                "threshold_is_bandwidth",
                "the threshold is cfg.jumprelu_bandwidth, not exp(self.log_threshold)",
                lambda: cfg.jumprelu_bandwidth,
            ),
        ],
    ]


def auxk_extra(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int, want: Tensor) -> list:
    """More AuxK mistakes (code, hint, value): the loss normalised by the residual's size, and the top-k slots past
    the dead latents (fewer dead than k_aux) filled from pre, i.e. with live latents."""
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    live_fill = torch.zeros_like(pre).scatter(-1, top.indices, pre.gather(-1, top.indices))
    rec = torch.einsum("bis,isd->bid", live_fill, W_dec)
    right = torch.zeros_like(pre).scatter(-1, top.indices, torch.where(top.values.isfinite(), top.values, 0.0))
    r_hat = torch.einsum("bis,isd->bid", right, W_dec)  # the right decoded estimate of the residual
    relu_hint = "ReLU applied to the decoded estimate r̂ (a d_in vector that is negative as often as positive): " \
        "the residual estimate is the chosen dead latents' values times W_dec_normalized, with no ReLU"  # fmt: skip
    return (
        _auxk_choice(pre, residual, dead, W_dec, k_aux)
        + MS.auxk_slips(pre, residual, dead, W_dec, k_aux)
        + [("decoded_relu", relu_hint, (residual - r_hat.relu()).pow(2).mean(-1))]
        + difference_of_squares(residual, r_hat, lambda e: e.mean(-1), "residual", "residual_hat")
        + [
            (
                f"normalised_by_residual_{name.replace(' ', '_')}",
                f"auxk_loss is the plain mean over d_in of the squared error, not divided by the residual's {name} "
                "(no normalisation; the scale is set by the AuxK coefficient)",
                want / value,
            )
            for name, value in (
                ("mean square", residual.pow(2).mean(-1)),
                ("squared norm", residual.pow(2).sum(-1)),
                ("norm", residual.norm(dim=-1)),
                ("batch mean square", residual.pow(2).mean((0, 2))),
            )
        ]
        + [
            (
                "live_fill",
                "where an instance has fewer than k_aux dead latents, top-k fills the extra slots with -inf: set those "
                "values to 0 (gathering them from pre decodes live latents there)",
                (residual - rec).pow(2).mean(-1),
            ),
            (
                "nothing_decoded",
                "your loss is mean(residual²) for every example, as if no latent were decoded: every chosen value is "
                "0. Possible causes: the mask built by arithmetic, pre·dead + (1 - dead)·(-inf), where 0·(-inf) = NaN "
                "makes every dead latent NaN, which the top-k ranks first and the NaN-to-0 step then zeroes (use "
                "torch.where(dead, pre, -inf)); the decoded term left out; or a mask that keeps no latent",
                residual.pow(2).mean(-1),
            ),
            (
                "divided_by_k_aux",
                f"auxk_loss is the plain mean over d_in of the squared error: yours is divided by k_aux (= {k_aux})",
                want / k_aux,
            ),
            (
                "times_k_aux",
                f"auxk_loss is the plain mean over d_in of the squared error: yours is multiplied by k_aux (= {k_aux})",
                want * k_aux,
            ),
        ]
    )


def _auxk_choice(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list:
    """AuxK with the wrong dead latents chosen: live ones masked to 0 (not -inf), the k_aux smallest, or example 0's
    choice for the whole batch."""
    finite = lambda v: torch.where(v.isfinite(), v, torch.zeros_like(v))
    loss = lambda acts: (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2).mean(-1)
    masked = torch.where(dead, pre, -torch.inf)
    low = torch.where(dead, pre, torch.inf).topk(k_aux, dim=-1, largest=False)
    first = masked[:1].topk(k_aux, dim=-1).indices.expand(pre.shape[0], -1, -1)
    first_acts = torch.zeros_like(pre).scatter(-1, first, finite(masked.gather(-1, first)))
    hint = (
        "your loss decodes the right dead latents only where an instance has at most k_aux of them: where it has "
        "more, it decodes other ones than each example's k_aux largest dead pre-activations. "
    )
    dropped = next(h for c, h, _ in M.AUXK_MISTAKES if c == "dropped_negatives")
    return [
        (  # live latents masked to 0: with fewer than k_aux live ones, negative dead values are decoded
            "dropped_negatives",
            dropped,
            M.auxk_variant(pre, residual, dead, W_dec, k_aux, mask_zero=True),
        ),
        (
            "smallest_dead",
            hint + "Yours match the k_aux *smallest* (topk(..., largest=False), or a sort in ascending order): "
            "keep the largest, topk(k_aux, dim=-1) with the live latents masked to -inf",
            loss(torch.zeros_like(pre).scatter(-1, low.indices, finite(low.values))),
        ),
        *(
            (
                "first_example_choice",
                hint + "Yours match example 0's choice (its top-k indices) used for every example of the batch: "
                "take the top k_aux per example, over dim=-1 of the whole [batch inst d_sae] tensor, not of pre[0]",
                loss(acts),
            )
            for acts in (first_acts, first_acts[:1].expand_as(pre))
        ),
    ]


def auxk_output(out: Any, batch: int, n_inst: int, d_in: int) -> None:
    """Checks on auxk_loss's output before its shape and values: inf or NaN, a decoded stand-in for -inf, the batch
    reduced too, or the mean over another axis of [batch inst d_in] than d_in."""
    if not (isinstance(out, Tensor) and out.is_floating_point() and out.device.type != "meta"):
        return
    if not torch.isfinite(out.detach()).all():
        nan = " (NaN: -inf · 0 is NaN, so multiplying by a 0/1 mask doesn't clear -inf: use torch.where or " \
            "masked_fill)" if out.detach().isnan().any() else ""  # fmt: skip
        fail(
            "auxk_loss returned inf or NaN",
            "where an instance has fewer dead latents than k_aux, the top-k picks some -inf values: replace them "
            f"by 0 before decoding{nan}",
            code="inf",
        )
    if out.detach().abs().max() > 1e6:
        fail(
            f"auxk_loss returned values up to {out.detach().abs().max():.3g}",
            "a stand-in for -inf (like -1e9, or nan_to_num's most negative float) was decoded: where fewer than "
            "k_aux latents are dead, replace the masked values by 0 before decoding",
            code="sentinel_decoded",
        )
    if out.shape == (n_inst,) or out.shape == ():
        fail(
            f"auxk_loss returned shape {tuple(out.shape)}, expected (batch={batch}, inst={n_inst})",
            "return the per-example loss: mean over d_in only, no reduction over the batch",
            code="reduced_batch",
        )
    full = {"batch": batch, "inst": n_inst, "d_in": d_in}  # the squared error's axes: [batch inst d_in]
    for axis, name in enumerate(full):
        kept = {n: v for n, v in full.items() if n != name}
        if name != "d_in" and out.shape == tuple(kept.values()):
            fail(
                f"auxk_loss returned shape {tuple(out.shape)} = ({', '.join(kept)}), expected (batch={batch}, "
                f"inst={n_inst})",
                f"the squared error (residual - decoded)² is [batch inst d_in]: yours is reduced over {name} (dim "
                f"{axis}) instead of over d_in: take .mean(-1)",
                code="reduced_wrong_axis",
            )


# catalogue hints that can't be sure of the cause: what was seen, and the possible causes
AUXK_HINTS = {
    "all_dead_latents": "your loss decodes every dead latent of an example, not only its k_aux largest. Possible "
    "causes: no top-k at all, or the top-k (and scatter) along another axis, such as dim=1 (the instances), where "
    "a latent is dead in fewer than k_aux instances: take topk(k_aux, dim=-1) over the latents and scatter along -1",
}


def ratio_pooled(out: Tensor, num: Tensor, den: Tensor) -> None:
    """For a metric 1 - num/den per instance: fail when the implied numerator (1 - out)·den or denominator
    num/(1 - out) is one value for every instance while the right one is not: pooled over instances."""
    o = out.detach().double()
    for part, implied, right in (("numerator Σ(h - h_rec)²", (1 - o) * den, num), ("denominator", num / (1 - o), den)):
        same = lambda v, rtol: bool(torch.allclose(v, v.mean().expand_as(v), rtol=rtol))
        if torch.isfinite(implied).all() and same(implied, 1e-4) and not same(right, 1e-3):
            fail(
                f"the implied {part} (from your value and the right other part) is the same for every instance "
                f"({float(implied[0]):.4g}), "
                "but the instances differ: as if pooled over the instances",
                "reduce over the batch and d_in only, per instance (e.g. F.mse_loss without reduction='none' "
                "averages over everything, instances included)",
                code="pooled_over_instances",
            )


def recovery_zero_norms(impl: Any, W_feat: Tensor, W_dec: Tensor) -> None:
    """The metric on inputs with an all-zero decoder row and an all-zero feature column (whose cosines are
    undefined, so only finiteness is checked): NaN or inf there means no epsilon in the norms."""
    W_feat, W_dec = W_feat.clone(), W_dec.clone()
    W_dec[:, 3], W_feat[:, :, 4] = 0.0, 0.0
    out = impl(W_feat, W_dec)
    if isinstance(out, Tensor) and out.is_floating_point() and not torch.isfinite(out).all():
        fail(
            f"with an all-zero decoder row and an all-zero feature column in the inputs, feature_recovery returned "
            f"NaN or inf at {int((~torch.isfinite(out)).sum())}/{out.numel()} positions",
            "add a small epsilon to the norms before dividing (a zero vector's cosine is then 0, not 0/0 = NaN)",
            code="nan_zero_norm",
        )


def recovery_extra(W_feat: Tensor, W_dec: Tensor) -> list:
    """The latent picked by the raw dot product (not the cosine), its cosine reported; cosines summed over latents."""
    f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + 1e-8)
    cos = torch.einsum("isd,idf->isf", W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8), f_hat)
    raw = torch.einsum("isd,idf->isf", W_dec, W_feat)
    return [
        (
            "picked_by_dot_product",
            "take the max of the cosine itself over the latents: the latent with the largest raw dot product (a long "
            "decoder row) is not always the one with the largest cosine",
            cos.gather(1, raw.argmax(1, keepdim=True))[:, 0],
        ),
        (
            "latents_summed",
            "your values are the cosines summed over the latents (an einsum whose output drops d_sae, 'i s d, i d f "
            "-> i f', sums them): keep d_sae ('-> i s f') and take the max over it, .amax(dim=1)",
            cos.sum(1),
        ),
    ]


# --------------------------------------------------------------------------------------------
# Gated SAE: the ingredients of each path (moved from the checker module, near 800 lines)
# --------------------------------------------------------------------------------------------
def gated_acts_options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list]:
    """acts_post = 1[gate > 0] · ReLU(magnitude), with realistic alternatives for each ingredient of the paths."""
    x = h - sae.b_dec

    def combine(xs: tuple, gate_bias: Any, mag_in: str, scale: Tensor | float, mag_bias: Any, on: str) -> Tensor:
        p_gate, p = (torch.einsum("bid,ids->bis", x_in, sae.W_enc) for x_in in xs)  # the two paths' projections
        gate = p_gate + gate_bias
        mag = {"gate": gate, "relu_proj": p.relu()}.get(mag_in, p) * scale + mag_bias
        switch = {"relu": gate.relu, "sigmoid": gate.sigmoid}.get(on, lambda: (gate > 0).to(h.dtype))()
        return switch * mag.relu()

    return combine, [
        [
            ("x", "", lambda: (x, x)),
            ("no_b_dec_subtraction", "the encoder reads h, not h - b_dec", lambda: (h, h)),
            ("gate_reads_h", "the gate path reads h, not h - b_dec (the magnitude path is right)", lambda: (h, x)),
            ("mag_reads_h", "the magnitude path reads h, not h - b_dec (the gate path is right)", lambda: (x, h)),
        ],
        [
            ("gate", "", lambda: sae.b_enc),
            ("no_b_gate", "the gate path has no b_gate (b_enc)", lambda: 0.0),
            ("gate_bias_b_mag", "the gate path adds b_mag instead of b_gate (b_enc)", lambda: sae.b_mag),
        ],
        [
            ("proj", "", lambda: "proj"),
            (
                "gate_bias_in_mag",
                "the magnitude path scales x @ W_enc + b_gate (the gate's pre-activation) instead of x @ W_enc alone",
                lambda: "gate",
            ),
            (
                "relu_before_mag_scale",
                "the magnitude path applies ReLU to x @ W_enc before scaling and adding b_mag: π_mag = (x @ W_enc) · "
                "exp(r_mag) + b_mag, and the only ReLU is the last step, ReLU(π_mag)",
                lambda: "relu_proj",
            ),
        ],
        [
            ("exp", "", lambda: sae.r_mag.exp()),
            ("r_mag_no_exp", "the magnitude scale is r_mag, not exp(r_mag)", lambda: sae.r_mag),
            ("no_r_mag", "the magnitude path is not scaled by exp(r_mag)", lambda: 1.0),
            *[
                (f"r_mag_{name}", f"the magnitude scale is {name}(r_mag), not exp(r_mag)", lambda f=f: f(sae.r_mag))
                for name, f in (("softplus", torch.nn.functional.softplus), ("sigmoid", torch.sigmoid))
            ],
        ],
        [
            ("b_mag", "", lambda: sae.b_mag),
            ("no_b_mag", "the magnitude path has no b_mag", lambda: 0.0),
            ("mag_bias_b_enc", "the magnitude path adds b_enc instead of b_mag", lambda: sae.b_enc),
        ],
        [
            ("step", "", lambda: "step"),
            (
                "relu_gate_times_mag",
                "the magnitude is multiplied by ReLU(π_gate) instead of the 0/1 switch 1[π_gate > 0]",
                lambda: "relu",
            ),
            (
                "sigmoid_gate",
                "the magnitude is multiplied by the soft gate sigmoid(π_gate) instead of the 0/1 switch "
                "1[π_gate > 0] (the gate's value is a hard step; the gate path is trained through L_sparsity and "
                "L_aux, not through a smooth switch)",
                lambda: "sigmoid",
            ),
        ],
    ]


def gated_decode_options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list]:
    x = h - sae.b_dec
    proj = torch.einsum("bid,ids->bis", x, sae.W_enc)
    gate, mag = proj + sae.b_enc, proj * sae.r_mag.exp() + sae.b_mag
    return D.decode_options(sae, mag, (gate > 0).to(h.dtype) * mag.relu())


def _aux_options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list]:
    """L_aux = ((ReLU(π_gate) @ W_dec_normalized + b_dec - h) ** 2).mean(-1), with alternatives for each ingredient."""
    proj = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc)
    gate, mag = proj + sae.b_enc, proj * sae.r_mag.exp() + sae.b_mag

    def combine(decoded: Tensor, W: Tensor, bias: Tensor | float, mean: bool) -> Tensor:
        err = (torch.einsum("bis,isd->bid", decoded, W) + bias - h).pow(2)
        return err.mean(-1) if mean else err.sum(-1)

    what = "L_aux decodes {} instead of the gate path's ReLU(π_gate)"
    return combine, [
        [
            ("gate_post", "", gate.relu),
            ("aux_decodes_mag", what.format("ReLU(π_mag), the magnitude path,"), mag.relu),
            ("aux_decodes_mag_pre", what.format("π_mag (the magnitude path, no ReLU)"), lambda: mag),
            ("aux_decodes_acts", what.format("acts_post"), lambda: (gate > 0).to(h.dtype) * mag.relu()),
            ("aux_decodes_gate_pre", what.format("π_gate without its ReLU"), lambda: gate),
            ("aux_decodes_indicator", what.format("the 0/1 switch 1[π_gate > 0]"), lambda: (gate > 0).to(h.dtype)),
            (
                "aux_decodes_gate_scaled",
                what.format("ReLU(π_gate) · exp(r_mag)"),
                lambda: gate.relu() * sae.r_mag.exp(),
            ),
        ],
        [
            ("W_hat", "", lambda: sae.W_dec_normalized),
            ("aux_unnormalized", "L_aux decodes with W_dec instead of W_dec_normalized", lambda: sae.W_dec),
        ],
        [("b_dec", "", lambda: sae.b_dec), ("aux_no_b_dec", "L_aux's reconstruction has no + b_dec", lambda: 0.0)],
        [("mean", "", lambda: True), ("aux_sum", "L_aux is summed over d_in instead of averaged", lambda: False)],
    ]


def gated_aux(learner: Any, reference: Any, h: Tensor, listed: list[Tensor]) -> None:
    """When the learner's acts_post and h_reconstructed are right but L_aux is not, and no catalogued L_aux (`listed`)
    fits: name the ingredients of L_aux that differ (what is decoded, the decoder, b_dec, the reduction). `learner`
    is a copy of the learner's SAE (its forward is called once more here, on a copy of h). Does nothing otherwise:
    the main check reports it."""
    try:
        with torch.no_grad():
            d, _, acts, h_rec = learner(h.clone())
            got = d["L_aux"].detach().to(h.dtype)
    except Exception:  # a malformed return or an error: the main check names it
        return
    with torch.no_grad():
        want, _, want_acts, want_rec = reference(h)
        close = lambda a, b: (
            isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.to(b.dtype), b, 1e-4, 1e-5)
        )
        if not (close(acts, want_acts) and close(h_rec, want_rec)) or any(
            close(got, v) for v in [want["L_aux"], *listed]
        ):
            return
        D.ingredient_diagnosis(got, want["L_aux"].detach(), "loss_dict['L_aux']", *_aux_options(reference, h))


# The factor F in front of a threshold gradient -(F/ε)·K((x - θ)/ε)·grad_output: what F may have been instead
# (each times a power of ε below: (x - θ)/ε is x - θ with power -1)
_FACTORS: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "1": lambda x, th, bw: torch.ones_like(x),
    "θ": lambda x, th, bw: th,
    "x": lambda x, th, bw: x,
    "x - θ": lambda x, th, bw: x - th,
    "θ - x": lambda x, th, bw: th - x,
    "x·1[x > θ] (the forward output)": lambda x, th, bw: x * (x > th).to(x.dtype),
    "1[x > θ] (the forward output)": lambda x, th, bw: (x > th).to(x.dtype),
}
_POWER_HINTS = {
    -1: "you divide by ε twice (ε²): the pseudo-derivative divides by ε once, -(F/ε)·K(u) (u = (x - θ)/ε only "
    "feeds K, it doesn't scale the height)",
    1: "the division by ε is missing: the rectangle's height is 1/ε, -(F/ε)·K((x - θ)/ε)",
    2: "you multiply by ε where the formula divides by it: -(F/ε)·K((x - θ)/ε)",
    -2: "you divide by ε three times: the formula divides by ε once, -(F/ε)·K((x - θ)/ε)",
}


def _threshold_grad(impl: Any, x: Tensor, th: Tensor, g: Tensor, bw: float) -> Tensor | None:
    x, th = x.clone().requires_grad_(True), th.clone().requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad((impl.apply(x, th, bw) * g).sum(), th, allow_unused=True)
    except Exception:  # the learner's backward failing here: the main check reports it
        return None
    return None if grad is None else grad.detach()


def theta_factor(impl: Any, got: Tensor, x: Tensor, th: Tensor, g: Tensor, name: str) -> None:
    """Fail when a wrong threshold gradient is -(F/ε)·K((x - θ)/ε)·grad_output with F a simple quantity (x, x - θ,
    θ - x, 1, θ) times a power of ε other than the exercise's F (1 for Heaviside, θ for JumpReLU), the same at
    ε and 4ε (so a power of ε is told from a constant that merely equals one at ε): name F and the power. Does
    nothing otherwise."""
    right = "1" if name == "Heaviside" else "θ"
    got4 = _threshold_grad(impl, x, th, g, 4 * BANDWIDTH)
    if got4 is None:
        return
    fits = []
    for f_name, f in _FACTORS.items():
        for p, sign in itertools.product((0, -1, 1, -2, 2), (1, -1) if f_name in ("1", "θ", "x") else (1,)):
            if (f_name, p) == (right, 0):
                continue  # the sign flipped alone is the catalogue's
            ok = True
            for grad, bw in ((got, BANDWIDTH), (got4, 4 * BANDWIDTH)):
                pred = -sign * f(x, th, bw) * bw**p / bw * _rect((x - th) / bw) * g
                ok = ok and bool(torch.allclose(grad.detach().to(pred.dtype), pred, rtol=1e-4, atol=1e-5))
            if ok and (f(x, th, BANDWIDTH) * _rect((x - th) / BANDWIDTH) != 0).any():
                fits.append((f_name, p, sign))
    if len(fits) != 1:
        return  # none, or ambiguous: the main check describes what it sees
    f_name, p, sign = fits[0]
    power = {0: "", 1: "·ε", -1: "/ε", 2: "·ε²", -2: "/ε²"}[p]
    f_name = f"({f_name})" if p and " " in f_name else f_name  # (x - θ)/ε, not x - θ/ε
    minus = "-" if sign < 0 else ""
    seen = (
        f"the gradient of {name} with respect to threshold is -(F/ε)·K((x - θ)/ε)·grad_output with F = "
        f"{minus}{f_name}{power} (at ε = {BANDWIDTH:g} and at ε = {4 * BANDWIDTH:g}); {name}'s factor is F = {right}"
    )
    flipped = " The sign is flipped too: the leading minus of -(F/ε)·K(u) is missing" if sign < 0 else ""
    if f_name == right:  # a power of ε only
        fail(
            f"{seen}: your values are {minus}ε^{p} = {sign * BANDWIDTH**p:g} × the expected ones at ε = {BANDWIDTH:g}",
            _POWER_HINTS[p] + "." * bool(flipped) + flipped,
            code="epsilon_power",
        )
    fail(
        seen,
        f"the factor in front of K((x - θ)/ε)/ε is {right}, not {minus}{f_name}{power}: see the ∂/∂θ column." + flipped,
        code="theta_factor",
    )


def topk_first_slots(acts: Tensor, want: Tensor, k: int) -> None:
    """Fail when acts_post holds each example's k largest values (right values) in its first k latents and zeros
    elsewhere, where the reference keeps them at their own latents: the top-k indices were dropped."""
    a, w = acts.detach(), want.detach().to(acts.dtype)
    if a.shape != w.shape or torch.allclose(a, w, atol=1e-5) or not (a[..., k:] == 0).all():
        return
    top = w.topk(k, dim=-1).values
    if not torch.allclose(a[..., :k].sort(-1, descending=True).values, top, rtol=1e-4, atol=1e-5):
        return
    moved = int((~torch.isclose(a, w, rtol=1e-4, atol=1e-5)).any(-1).sum())
    fail(
        f"acts_post holds each example's k = {k} largest values in its first {k} latents (d_sae 0–{k - 1}) and zeros "
        f"elsewhere: the values are right but not at the latents they came from ({moved} of {a.shape[0] * a.shape[1]} "
        "examples and instances differ)",
        "put each value back at its own latent: torch.zeros_like(pre).scatter(-1, top.indices, top.values) "
        "(concatenating top.values with zeros, or writing them into [..., :k], loses the indices)",
        code="values_not_scattered",
    )


def per_example_broadcast(got: Tensor, want: Tensor, what: str) -> None:
    """A per-example count reduced over the batch (or the instances) and broadcast back, named."""
    hint = f"{what} is one number per example and instance: reduce over the latents only (.sum(-1)), not the batch"
    reduced_broadcast(got, want, what, hint, noun="value", dims=("batch", "inst"))
