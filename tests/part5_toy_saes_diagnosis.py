"""Measurements that name mistakes nobody listed, for part 5's checkers (`tests.part5_toy_saes`).

* `__init__`: the distribution W_enc is drawn from (uniform, as Kaiming-uniform is, or not), and whether the
  untied decoder starts as W_enc transposed (the docstring asks for both).
* forward: which ingredient of acts_post or h_reconstructed is wrong (the reference with every combination of
  realistic alternatives for its input, weights, bias and nonlinearity), how a wrong per-example loss relates to
  the right one (squared, square root, a constant), and how the total loss splits into its reconstruction part
  and each instance's sparsity part (probed by changing `sparsity_coeff`).
* resampling: the usual crashes of a resampler, named (`call_resampler`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from tests import part5_toy_saes_enc_lengths as EL
from tests import part5_toy_saes_hidden_maps as HM
from tests import part5_toy_saes_init_bounds as IB
from tests import part5_toy_saes_loss_readings as RL
from tests import part5_toy_saes_probes as P
from tests import part5_toy_saes_resample_draws as RD
from tests.checking import FAILURE_PROBABILITY, fail
from tests.part5_toy_saes_readoffs import reconstruction_factor, sparsity_factor


def hidden(features: Tensor, W: Tensor) -> Tensor:
    return torch.einsum("bif,idf->bid", features, W)


def closest_features(drawn: list[Tensor], h: Tensor, W: Tensor, views: list[Callable] = ()) -> Tensor:
    """The features behind each (example, instance) cell of h. Every correct way of drawing is accepted: once for
    all, once per instance (column i of its own draw), once per example (generate_batch(1) in a loop): each cell
    may come from any draw, and each draw has the right distribution. Per instance (one draw for all its examples,
    so that a mask from a second draw can't pass as examples of it), the draw whose W x (or one of `views(x, W)`,
    the listed mistakes, so that a mistake made on per-instance draws is still named) is closest."""
    batch = h.shape[0]
    cands = [x for x in drawn if x.ndim == 3 and x.shape[0] == batch and x.shape == drawn[0].shape]
    if len(drawn) > 1 and sum(x.shape[0] for x in drawn) == batch:
        with contextlib.suppress(RuntimeError):  # draws of different shapes
            cands.append(torch.cat(drawn))
    for view in (lambda x, W: hidden(x, W), *views):  # a draw larger than the batch: rows matched under each view
        cands += [x for x in map(partial(_subset_rows, h=h, W=W, view=view), drawn) if x is not None]
    if not cands or cands[0].shape[:2] != h.shape[:2]:
        return min(drawn, key=lambda x: _distance(x, h, W))
    stack = torch.stack(cands)  # [draw batch inst feats]
    dist = (torch.einsum("kbif,idf->kbid", stack, W) - h.detach()).abs().sum((1, 3))  # [draw inst]
    best = float(dist.min(0).values.sum())
    for view in views:  # the one view (mistake) that explains h best picks the draws; W x wins a tie
        try:
            seen = torch.stack([view(x, W) for x in cands])
        except (RuntimeError, ValueError, IndexError):
            continue
        if seen.shape[1:] == h.shape:
            d = (seen - h.detach()).abs().sum((1, 3)).nan_to_num(float("inf"))
            if float(d.min(0).values.sum()) < best - 1e-6:
                dist, best = d, float(d.min(0).values.sum())
    pick = dist.argmin(0)[None, None, :, None].expand(1, *stack.shape[1:])
    return stack.gather(0, pick)[0]


def _distance(x: Tensor, h: Tensor, W: Tensor) -> float:
    """How far W x is from h; inf when the shapes don't line up (a draw of another batch size)."""
    try:
        return float((hidden(x, W) - h.detach()).abs().sum())
    except RuntimeError:
        return float("inf")


def _subset_rows(x: Tensor, h: Tensor, W: Tensor, view: Callable) -> Tensor | None:
    """A draw with more examples than h (drawn larger, then sliced or subsampled: a correct batch): its rows whose
    view(x, W) (W x, or a listed mistake) is closest to each example of h, in h's order. None for a draw of h's size
    or of another layout."""
    if x.ndim != 3 or x.shape[0] <= h.shape[0] or x.shape[1] != h.shape[1] or h.ndim != 3:
        return None
    try:
        seen = view(x, W)
        dist = torch.cdist(h.detach().flatten(1).double(), seen.flatten(1).double())  # [batch, drawn]
    except (RuntimeError, ValueError, IndexError):
        return None
    return x[dist.nan_to_num(float("inf")).argmin(-1)]


def feature_space_output(h: Tensor, drawn: list[Tensor], model: Any) -> None:
    """Name the mistake when generate_batch returned something in feature space ([batch inst feats])."""
    W = model.W.detach()
    for x in drawn:
        for code, hint, value in (
            ("features_returned", "map the features to the hidden space: h = W x (einsum with self.model.W)", x),
            (
                "model_output",
                "self.model(x) is the toy model's reconstruction of x; the SAE reads the hidden vector h = W x",
                model(x).detach(),
            ),
            (
                "decoded",
                "stop at the hidden vector h = W x: W^T W x maps it back to feature space",
                torch.einsum("bid,idf->bif", hidden(x, W), W),
            ),
        ):
            if value.shape == h.shape and torch.allclose(h.detach(), value, rtol=1e-4, atol=1e-5):
                fail(
                    f"generate_batch returned shape {tuple(h.shape)}: [batch inst feats], not [batch inst d_in]",
                    hint,
                    code,
                )


# --------------------------------------------------------------------------------------------
# __init__: the initial values
# --------------------------------------------------------------------------------------------
def check_init_values(sae: Any) -> None:
    """W_enc is uniform and symmetric on [-b, b] (Kaiming-uniform, whatever fan it used) in every instance, and an
    untied _W_dec starts as W_enc transposed. `sae`: built with a large d_sae, so the statistics are sharp."""
    W = sae.W_enc.detach().double()
    IB.normalised_axes_failure(W)  # columns (or rows) all of one length: normalised after the draw
    # Each instance is scaled by its own largest |w| (its bound b̂, may differ per instance). For U[-b, b], b̂ is
    # below b(1 - t) with probability (1 - t)^n: t = 0.004, n >= 6000 gives < e^-24, and the CDF of U[-b̂, b̂] is then
    # within t/2 of U[-b, b]'s. DKW on the pooled N = n_inst · n values: sup |F_N - F| <= sqrt(ln(2/δ) / 2N)
    # with probability 1 - δ, δ = FAILURE_PROBABILITY. A correct init fails with probability < 1e-6.
    t = 0.004
    scaled = (W / W.flatten(1).abs().amax(-1)[:, None, None]).flatten().sort().values
    N = scaled.numel()
    tol = math.sqrt(math.log(2 / FAILURE_PROBABILITY) / (2 * N)) + t / 2
    cdf = torch.arange(1, N + 1, dtype=torch.float64) / N
    uniform = (scaled + 1) / 2
    gap = float(torch.maximum((cdf - uniform).abs(), (cdf - 1 / N - uniform).abs()).max())
    if gap > tol:
        z = (W - W.mean()) / W.std()
        kurtosis = float(z.pow(4).mean())
        bounds = W.flatten(1).abs().amax(-1)
        fail(
            f"W_enc's values are not uniform on [-b, b]: their CDF is {gap:.3f} away from a uniform one "
            f"(tolerance {tol:.3f}); largest |w| per instance {[round(float(b), 3) for b in bounds]}, "
            f"standard deviation {float(W.std()):.3g}, kurtosis {kurtosis:.2f} (uniform 1.8, normal 3)",
            "initialise W_enc with nn.init.kaiming_uniform_(torch.empty(n_inst, d_in, d_sae)), as the docstring asks"
            + (": torch.randn and the *_normal_ inits draw a normal distribution" if abs(kurtosis - 3) < 0.3 else ""),
            code="init_not_uniform",
        )
    IB.check_init_bound(W)
    if sae._W_dec is None:
        return
    D, E = sae._W_dec.detach().double(), W.transpose(-1, -2)
    if torch.allclose(D, E, rtol=1e-6, atol=1e-7):
        return
    cos = torch.nn.functional.cosine_similarity(D, E, dim=-1)
    if bool((cos > 1 - 1e-5).all()):
        ratio = D.norm(dim=-1) / E.norm(dim=-1)
        fail(
            "every row of _W_dec points along W_enc's matching column, but with another length "
            f"(ratio between {float(ratio.min()):.3g} and {float(ratio.max()):.3g})",
            "start the decoder as an exact copy: `self.W_enc.detach().transpose(-1, -2).clone()`, not rescaled or "
            "normalised (forward normalises it when it decodes)",
            code="decoder_rescaled",
        )
    if not D.any():
        fail(
            "the untied _W_dec is all zeros: it doesn't start as W_enc transposed",
            "was it cloned from W_enc before W_enc was initialised (e.g. from torch.zeros, then kaiming_uniform_ in "
            "place)? Initialise W_enc first, then `self._W_dec = nn.Parameter(self.W_enc.detach().transpose(-1, -2)"
            ".clone())`",
            code="decoder_zero",
        )
    # The same multiset of values in other places (reshape/view instead of transpose): sorted, they are equal.
    if D.shape == E.shape and torch.equal(D.flatten(1).sort(-1).values, E.flatten(1).sort(-1).values):
        fail(
            "the untied _W_dec holds exactly W_enc's values, instance by instance, but in other positions: "
            "a reshape or view of W_enc, not its transpose",
            "reshape/view keep the memory order, so [inst d_in d_sae] read as [inst d_sae d_in] scrambles the "
            "entries: use `self.W_enc.detach().transpose(-1, -2).clone()`",
            code="decoder_reshaped",
        )
    # Independent draws: the entry correlation is ~N(0, 1/N); |r| > 0.1 has probability < e^-90 at N >= 18000.
    r = float(torch.corrcoef(torch.stack([D.flatten(), E.flatten()]))[0, 1])
    fail(
        f"the untied _W_dec doesn't start as W_enc transposed (correlation of their entries {r:.3f})",
        (
            "initialise the decoder as a copy of the encoder, `self.W_enc.detach().transpose(-1, -2).clone()`, "
            "not with its own random draw"
            if abs(r) < 0.1
            else "initialise the decoder as exactly `self.W_enc.detach().transpose(-1, -2).clone()`"
        ),
        code="decoder_not_W_enc_T",
    )


def latent_weight_hint(got: Tensor, acts: Tensor, want: Tensor, what: str, candidates: dict[str, Tensor]) -> None:
    """For a per-example sum over latents (want = Σ_s |acts[b, i, s]|): when `got` [batch inst] is exactly
    Σ_s |acts[b, i, s]| · w[i, s] with per-latent weights w not all 1 (least squares per instance over the latents
    that fire, batch > d_sae), fail saying so and naming the weights when they equal a candidate [inst d_sae]."""
    g, a = got.detach().double(), acts.detach().double().abs()
    if g.shape != want.shape or g.shape != a.shape[:2] or torch.allclose(g, want.double(), rtol=1e-4, atol=1e-5):
        return
    fired = (a > 0).any(0)  # [inst d_sae]: only these latents' weights are identified
    w = torch.zeros(a.shape[1:], dtype=torch.float64, device=a.device)
    for i in range(a.shape[1]):
        cols = a[:, i, fired[i]]
        if cols.shape[1] == 0 or cols.shape[0] <= cols.shape[1] or torch.linalg.matrix_rank(cols) < cols.shape[1]:
            return
        w[i, fired[i]] = torch.linalg.lstsq(cols, g[:, i, None]).solution[:, 0]
    fit = torch.einsum("bis,is->bi", a, w)
    weights = w[fired]
    if not torch.allclose(fit, g, rtol=1e-4, atol=1e-5) or (weights.max() - weights.min()).abs() < 1e-4:
        return  # not a weighted sum, or one constant weight (a scale factor: the generic diagnosis names it)
    named = [n for n, c in candidates.items() if torch.allclose(weights, c.detach().double()[fired], rtol=1e-3)]
    fail(
        f"{what} is Σ over latents of |acts_post| times a per-latent weight between {float(weights.min()):.4g} and "
        f"{float(weights.max()):.4g}, not the plain sum (every weight 1)"
        + (f": the weights are {named[0]}" if named else ""),
        f"{what} = acts_post.abs().sum(-1): no per-latent weighting"
        + (f" by {named[0]}" if named else " (by a norm of the latent's weights?)"),
        code="latent_weighted",
    )


# --------------------------------------------------------------------------------------------
# forward: which ingredient is wrong
# --------------------------------------------------------------------------------------------
Ingredient = tuple[str, str, Callable[..., Any]]  # (code, description, value)


def ingredient_diagnosis(
    got: Tensor, want: Tensor, what: str, combine: Callable[..., Tensor], options: list[list[Ingredient]]
) -> None:
    """Fail naming the ingredients of `what` that differ from the reference, when `got` is `combine` applied to
    one option per ingredient (option 0 of each is the reference's). Every combination is tried, so two
    mistakes at once are named too. Does nothing when no combination (or only ambiguous ones) matches."""
    if got.shape != want.shape or torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return
    found: list[tuple[int, ...]] = []
    for choice in itertools.product(*[range(len(o)) for o in options]):
        if not any(choice):
            continue
        value = combine(*[options[i][c][2]() for i, c in enumerate(choice)])
        if value.shape == got.shape and torch.allclose(got, value, rtol=1e-4, atol=1e-5):
            found.append(choice)
    if not found:
        return
    fewest = min(sum(c > 0 for c in choice) for choice in found)
    simplest = [c for c in found if sum(x > 0 for x in c) == fewest]
    described = ["; ".join(options[i][c][1] for i, c in enumerate(choice) if c > 0) for choice in simplest]
    codes = ["+".join(options[i][c][0] for i, c in enumerate(choice) if c > 0) for choice in simplest]
    hint = described[0] if len(set(described)) == 1 else "two readings fit: " + "; or ".join(dict.fromkeys(described))
    fail(f"{what} differs from the expected values; it is what the reference gives when {hint}", hint, codes[0])


def vanilla_acts_options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list[list[Ingredient]]]:
    def combine(x: Tensor, W: Tensor, bias: Tensor | float, nonlin: str) -> Tensor:
        pre = torch.einsum("bid,ids->bis", x, W)
        return {
            "after": lambda: (pre + bias).relu(),
            "before": lambda: pre.relu() + bias,
            "none": lambda: pre + bias,
            "negative": lambda: (pre + bias).clamp(max=0),
            **{n: (lambda f=f: f(pre + bias)) for n, (_, f) in SMOOTH.items()},
        }[nonlin]()

    b_dec, W_hat = sae.b_dec, sae.W_dec_normalized
    return combine, [
        [
            ("x", "", lambda: h - b_dec),
            ("no_b_dec_subtraction", "the encoder reads h, not h - b_dec", lambda: h),
            ("b_dec_added", "the encoder reads h + b_dec, not h - b_dec", lambda: h + b_dec),
            (
                "input_normalised",
                "h is normalised to unit norm before the encoder (the SAE reads h at its real scale)",
                lambda: torch.nn.functional.normalize(h, dim=-1) - b_dec,
            ),
        ],
        [
            ("W", "", lambda: sae.W_enc),
            ("encoder_from_decoder", "the encoder is W_dec_normalized transposed, not W_enc", lambda: W_hat.mT),
            ("encoder_from_W_dec", "the encoder is W_dec transposed (unnormalised), not W_enc", lambda: sae.W_dec.mT),
            (
                "encoder_normalized",
                "W_enc's columns are normalised too: only the decoder rows are (use W_enc as it is)",
                lambda: sae.W_enc / sae.W_enc.norm(dim=1, keepdim=True),
            ),
        ],
        [
            ("b", "", lambda: sae.b_enc),
            ("no_b_enc", "b_enc is missing", lambda: 0.0),
            ("b_enc_subtracted", "b_enc is subtracted, not added", lambda: -sae.b_enc),
            (
                "b_dec_folded_as_sum",
                "b_dec folded into b_enc as a sum, b_enc − b_dec.sum(-1): (h − b_dec) @ W_enc = h @ W_enc − b_dec @ "
                "W_enc, so the centring term is b_dec @ W_enc (one per latent), not the sum of b_dec's entries",
                lambda: sae.b_enc - sae.b_dec.sum(-1, keepdim=True),
            ),
        ],
        [
            ("relu", "", lambda: "after"),
            ("relu_before_bias", "the ReLU comes before b_enc is added", lambda: "before"),
            ("no_relu", "there is no ReLU", lambda: "none"),
            (
                "relu_keeps_negative",
                "the nonlinearity keeps the negative part, min(x, 0) (clamp(max=0)): ReLU is clamp(min=0)",
                lambda: "negative",
            ),
            *[(n, f"the nonlinearity is {what}, not ReLU", lambda n=n: n) for n, (what, _) in SMOOTH.items()],
        ],
    ]


F_ = torch.nn.functional
SMOOTH = {  # smooth relatives of ReLU a learner may reach for: acts_post = f(pre)
    "gelu": ("GELU (F.gelu)", F_.gelu),
    "gelu_tanh": ("GELU, tanh approximation", lambda x: F_.gelu(x, approximate="tanh")),
    "silu": ("SiLU / swish (F.silu)", F_.silu),
    "softplus": ("softplus", F_.softplus),
    "elu": ("ELU", F_.elu),
    "leaky_relu": ("leaky ReLU (slope 0.01)", F_.leaky_relu),
}


def decode_options(sae: Any, pre: Tensor, acts: Tensor) -> tuple[Callable[..., Tensor], list[list[Ingredient]]]:
    """h_reconstructed = codes @ decoder + bias, with realistic alternatives for each (any architecture)."""

    def combine(codes: Tensor, W: Tensor, bias: Tensor | float) -> Tensor:
        return torch.einsum("bis,isd->bid", codes, W) + bias

    b_dec = sae.b_dec
    return combine, [
        [
            ("acts", "", lambda: acts),
            ("decoded_pre_relu", "it decodes the pre-activations (before the ReLU), not acts_post", lambda: pre),
        ],
        [
            ("W", "", lambda: sae.W_dec_normalized),
            ("unnormalized_decoder", "it decodes with W_dec, not W_dec_normalized", lambda: sae.W_dec),
            (
                "decoder_first_instance",
                "every instance decodes with instance 0's decoder (W_dec_normalized[0]), not its own",
                lambda: sae.W_dec_normalized[:1].expand_as(sae.W_dec_normalized),
            ),
            ("decoder_is_encoder", "it decodes with W_enc transposed, not W_dec_normalized", lambda: sae.W_enc.mT),
            (
                "decoder_is_normalised_encoder",
                "it decodes with W_enc normalised over d_in and transposed, not W_dec_normalized (W_dec's own rows)",
                lambda: (sae.W_enc / sae.W_enc.norm(dim=-2, keepdim=True).clamp_min(1e-12)).mT,
            ),
            (
                "decoder_normalised_over_d_sae",
                "it decodes with W_dec normalised over d_sae (dim=-2), not each latent's row over d_in (dim=-1)",
                lambda: sae.W_dec / (sae.W_dec.norm(dim=-2, keepdim=True) + sae.cfg.weight_normalize_eps),
            ),
        ],
        [
            ("b", "", lambda: b_dec),
            ("no_b_dec_add", "b_dec is not added back after decoding", lambda: 0.0),
            ("b_dec_subtracted", "b_dec is subtracted after decoding instead of added", lambda: -b_dec),
            ("b_dec_added_twice", "b_dec is added twice", lambda: 2 * b_dec),
            ("b_dec0_added", "every instance adds back b_dec[0] (instance 0's), not its own", lambda: b_dec[0]),
        ],
    ]


def vanilla_decode_options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list[list[Ingredient]]]:
    return decode_options(sae, pre := torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc, pre.relu())


def relation_hint(got: Tensor, want: Tensor, what: str, constants: dict[str, float] | None = None) -> None:
    """Fail describing how a wrong per-example quantity relates to the right one, when it is a simple function of
    it (its square, its square root, one constant everywhere); otherwise do nothing."""
    if got.shape != want.shape or torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return
    g, w = got.detach().double(), want.detach().double()
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    if close(g, w.pow(2)):
        fail(
            f"{what} is the square of the expected value, example by example",
            f"{what} is not squared: drop the ** 2 (or .pow(2)) applied after the sum",
            code="squared",
        )
    if (w >= 0).all() and close(g, w.sqrt()):
        fail(f"{what} is the square root of the expected value", f"{what} has no square root", code="square_root")
    if close(g, g.flatten()[0].expand_as(g)) and not close(w, w.flatten()[0].expand_as(w)):
        c = float(g.flatten()[0])
        named = [n for n, v in (constants or {}).items() if abs(v - c) < 1e-6]
        fail(
            f"{what} is {c:.4g} for every example" + (f" (= {named[0]})" if named else ""),
            f"{what} varies from example to example: compute it from that example's activations"
            + (f", don't fill in {named[0]}" if named else ""),
            code="constant",
        )


def loss_probe(sae: Any, reference: Any, h: Tensor, forward: Callable, call: Callable) -> None:
    """When the total loss is wrong: split it by changing sparsity_coeff. loss(c) = R + Σ_i c_i w_i should hold with
    R the reconstruction part (the loss at c = 0) and w_i = mean over the batch of instance i's L_sparsity. Name
    the part that is wrong; do nothing when the loss isn't linear in the coefficients or all parts look right."""
    n_inst = sae.sparsity_coeff.shape[0]
    coeffs = sae.sparsity_coeff.detach().clone()

    def loss_at(model: Any, c: Tensor, fn: Callable, x: Tensor = h) -> float:
        with torch.no_grad():
            model.sparsity_coeff.copy_(c)
            try:
                return float(fn(model, x)[1])
            finally:
                model.sparsity_coeff.copy_(coeffs)

    probes = [torch.zeros_like(coeffs)] + [
        torch.eye(n_inst, dtype=coeffs.dtype, device=coeffs.device)[i] for i in range(n_inst)
    ]
    try:
        mine = [loss_at(sae, c, call) for c in [*probes, coeffs]]
    except Exception:  # the learner's forward misbehaving here is reported by the main check
        return
    want = [loss_at(reference, c, forward) for c in [*probes, coeffs]]
    R, w = mine[0], [m - mine[0] for m in mine[1 : n_inst + 1]]
    R_ref, w_ref = want[0], [m - want[0] for m in want[1 : n_inst + 1]]
    scale = max(1.0, abs(mine[-1]))
    if abs(R + sum(c * x for c, x in zip(coeffs.tolist(), w, strict=True)) - mine[-1]) > 1e-4 * scale:
        RL.coeff_transformed(mine[-1], R, w_ref, coeffs)  # sqrt(coeff), coeff²: the coefficient used transformed
        return  # not linear in sparsity_coeff: nothing simple to say
    with torch.no_grad():  # the reference's per-instance reconstruction part: the batch mean of L_reconstruction
        rec_ref = forward(reference, h)[0]["L_reconstruction"].mean(0).tolist()
    RL.coeff_on_reconstruction(R, w, R_ref, w_ref, rec_ref)
    close = lambda a, b: abs(a - b) <= 1e-4 * max(1.0, abs(b))
    parts = []
    if not close(R, R_ref):
        factor = R / R_ref if R_ref else float("nan")
        why = reconstruction_factor(factor, h.shape[0], n_inst, h.shape[-1])
        ratio = lambda x: loss_at(sae, probes[0], call, x) / loss_at(reference, probes[0], forward, x)
        why = RL.confirmed_reason(why, h, ratio, lambda f, x: reconstruction_factor(f, x.shape[0], n_inst, x.shape[-1]))
        parts.append(f"the reconstruction part (your loss with sparsity_coeff = 0) is {factor:.4g} × the expected{why}")
    if not all(close(a, b) for a, b in zip(w, w_ref, strict=True)):
        if all(abs(b) < 1e-9 for b in w_ref):
            parts.append(
                f"your loss changes with sparsity_coeff (by {[round(x, 4) for x in w]} per unit of each instance's "
                "coefficient), but this loss has no sparsity term: leave the L1 penalty out"
            )
        elif len(set(round(x, 6) for x in w)) == 1 and close(w[0], sum(w_ref) / n_inst):
            parts.append(
                "each instance's coefficient changes your loss by the same amount, the average of all instances' "
                "sparsity terms: one coefficient (sparsity_coeff.mean() or [0]) shared by every instance? Multiply "
                "each instance's L_sparsity by its own sparsity_coeff[i]"
            )
        else:
            ratios = [a / b if b else float("nan") for a, b in zip(w, w_ref, strict=True)]
            parts.append(
                "the sparsity part of instance i (how your loss changes with sparsity_coeff[i]) is "
                f"{[round(r, 4) for r in ratios]} × the expected"
                + sparsity_factor(ratios, h.shape[0], n_inst, sae.W_enc.shape[-1])
            )
    if parts:
        fail(
            f"loss is {mine[-1]:.6g}, expected {want[-1]:.6g}: " + "; ".join(parts),
            "the loss is the batch mean, summed over instances, of the per-example terms in the exercise's formula"
            + (
                " (here no sparsity term at all)"
                if all(abs(b) < 1e-9 for b in w_ref)
                else " (each instance's sparsity term weighted by its own sparsity_coeff[i])"
            )
            + ": fix the part named above",
            code="loss_parts",
        )


# --------------------------------------------------------------------------------------------
# generate_batch: which linear map the learner applied
# --------------------------------------------------------------------------------------------
def linear_map_hint(h: Tensor, features: Tensor, W: Tensor) -> None:
    """When h is a linear map of the features in every instance (fitted by least squares), describe the map:
    one shared by all instances (W averaged, summed, or another instance's), named when recognised."""
    P.input_slice_hint(h, features, W)  # first: another instance's features (then h is not linear in its own)
    P.batch_scaling_hint(h, hidden(features, W))  # examples zeroed, or each coordinate rescaled by a batch statistic
    x, y = features.detach().double(), h.detach().double()
    n_inst = x.shape[1]
    seen = (x != 0).any(0)  # [inst feats]: the columns the data can identify
    maps = []
    for i in range(n_inst):
        cols = seen[i].nonzero().flatten()
        if cols.numel() == 0:
            return
        sol = torch.linalg.lstsq(x[:, i][:, cols], y[:, i]).solution  # [feats_seen d_in]
        if not torch.allclose(x[:, i][:, cols] @ sol, y[:, i], rtol=1e-4, atol=1e-4):
            return  # not linear in the features
        full = torch.full((x.shape[2], y.shape[2]), float("nan"), dtype=torch.float64)
        full[cols.cpu()] = sol.cpu()
        maps.append(full.T)  # [d_in feats]
    A = torch.stack(maps)
    Wd = W.detach().double().cpu()
    both = ~A.isnan()

    def same(a: Tensor, b: Tensor) -> bool:
        b = b.expand_as(a)
        known = ~a.isnan()
        return bool(torch.allclose(a[known], b[known], rtol=1e-3, atol=1e-4))

    if same(A, Wd):
        return
    shared = bool(both.all()) and all(same(A[i], A[0]) for i in range(n_inst))
    for name, value in (
        ("the average of W over instances, W.mean(0)", Wd.mean(0)),
        ("the sum of W over instances, W.sum(0)", Wd.sum(0)),
        *[(f"instance {j}'s W", Wd[j]) for j in range(n_inst)],
    ):
        if same(A, value[None]):
            fail(
                f"your h is linear in the features, but every instance uses the same map: {name}",
                "use each instance's own W: einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> "
                "batch inst d_in') keeps the inst axis",
                code="instance_mixing",
            )
    if shared:
        fail(
            "your h is linear in the features, but every instance uses the same map (not any instance's own W)",
            "use each instance's own W: keep the inst axis in the einsum",
            code="instance_mixing",
        )
    HM.map_after_W_failure(A, Wd)  # a map applied after W x (W Wᵀ, a per-coordinate scale)


# --------------------------------------------------------------------------------------------
# Advanced resampling: is the choice of inputs random at all?
# --------------------------------------------------------------------------------------------
def check_random_choice(run_again: Callable[[], None], spare: Any, rows: Tensor, expected: Tensor) -> None:
    """Run the resampler a second time on an identical copy (`spare`: same dead latents, same losses) and compare
    the inputs picked (each new direction is one input type's e_j). A random choice differs: two runs of 900 picks
    among types of probability <= 16/22 agree with probability < 0.73^900. Identical picks mean the choice is
    deterministic (topk, argmax, sort)."""
    run_again()
    other = spare.W_dec.detach()[expected]
    if other.shape == rows.shape and rows.shape[0] > 100 and torch.equal(other.argmax(-1), rows.argmax(-1)):
        fail(
            "two runs on identical SAEs (same dead latents, same losses) picked exactly the same input for every "
            "dead latent: your choice of inputs is not random",
            "draw the inputs at random with probability ∝ L_reconstruction² (torch.multinomial(weights, n_dead, "
            "replacement=True)), instead of always taking the worst examples (topk, argmax or sorting)",
            code="deterministic_choice",
        )


# --------------------------------------------------------------------------------------------
# Simple resampling: a fresh draw on every call
# --------------------------------------------------------------------------------------------
def check_fresh_draws(run_again: Callable[[], None], first: Any, second: Any, changed: Tensor) -> None:
    """`first` was just resampled; advance the global random stream, then resample `second`, an identical copy
    made before. If the second call wrote the same directions and left the global generator in the state the first
    call left it in, the function reseeds the global generator; if they are the same while the global stream moved
    on, a private generator is reseeded with a constant on every call (the draws repeat across calls)."""
    state = torch.random.get_rng_state()
    torch.rand(16)  # a resampler that doesn't reseed leaves the stream past this draw
    run_again()
    same_state = torch.equal(torch.random.get_rng_state(), state)
    a, b = first.W_enc.detach(), second.W_enc.detach()
    if same_state and a.shape == b.shape and bool(changed.any()) and torch.equal(a, b):
        fail(
            "two calls on identical SAEs wrote exactly the same new directions, and each call left the global random "
            "generator in the same state: the function reseeds it",
            "don't call torch.manual_seed inside the resampler: it resets the global random stream, so every draw "
            "after each resample (new directions, and the training batches too) repeats",
            code="reseeded",
        )
    if a.shape == b.shape and bool(changed.any()) and torch.equal(a, b):
        fail(
            "two calls on identical SAEs wrote exactly the same new directions although the global random stream had "
            "moved on between them: the directions come from a generator seeded with a constant on every call",
            "draw fresh directions on each call (torch.randn without a generator, or one generator made once and "
            "not reseeded): reseeding a torch.Generator with a fixed seed inside the function gives a latent "
            "resampled twice the same direction again, and every run the same resampling",
            code="fixed_seed",
        )


def other_losses(sae: Any) -> dict[str, Tensor]:
    """Per input type of the advanced check's prototype batch (example i is type i % 4), the per-example losses
    other than L_reconstruction that sampling weights might wrongly follow, [inst types]."""
    with torch.no_grad():
        h = sae.generate_batch(4)
        order = (h[:, 0] - sae.b_dec[0]).abs().argmax(-1).argsort()  # the batch's types shift from call to call
        loss_dict = sae(h[order])[0]
        shifted = sae(h[order] - sae.b_dec)[0]["L_reconstruction"]  # the forward given h - b_dec
    out = {k: v.T.double() for k, v in loss_dict.items() if k != "L_reconstruction" and v.ndim == 2}
    if "L_sparsity" in loss_dict:  # the per-example total loss, the sparsity term weighted as in the loss (fresh54)
        out["total"] = (loss_dict["L_reconstruction"] + sae.sparsity_coeff * loss_dict["L_sparsity"]).T.double()
    return out | {"input_minus_b_dec": shifted.T.double()}


# --------------------------------------------------------------------------------------------
# Resampling: shared draws, and the usual indexing crash
# --------------------------------------------------------------------------------------------
def check_shared_draws(W_dec: Tensor, dead: Tensor) -> None:
    """Each dead latent gets its own direction: not one for all, one per instance, or one per latent index.
    W_dec: the decoder after resampling [inst d_sae d_in]; dead: [inst d_sae]."""
    key = W_dec.detach().round(decimals=5)
    n_unique = torch.unique(key[dead], dim=0).shape[0]
    if n_unique == 1:
        fail(
            "every resampled latent got the same direction",
            "draw a separate direction for each dead latent",
            "same_direction",
        )
    if n_unique <= dead.shape[0]:
        fail(
            "all dead latents of an instance got the same direction",
            "draw one direction per dead latent, not one per instance",
            code="shared_per_instance",
        )
    for a in range(dead.shape[0]):
        for b in range(a + 1, dead.shape[0]):
            both = dead[a] & dead[b]
            if both.sum() > 1 and (key[a, both] == key[b, both]).all(-1).float().mean() > 0.5:
                fail(
                    "a latent dead in several instances got the same direction in each",
                    "draw a separate direction for every (instance, latent) pair: one randn of shape [n_dead, d_in]",
                    code="shared_across_instances",
                )


def describe_index_error(err: IndexError) -> None:
    """Fail with a hint when a boolean [inst d_sae] mask met a tensor it doesn't index (W_enc, or a wrong mask)."""
    mask = re.search(r"mask \[([\d, ]+)\].*indexed tensor \[([\d, ]+)\]", str(err))
    if not mask:
        return
    mask_shape, indexed = mask.group(1).split(","), mask.group(2).split(",")
    if len(mask_shape) == 2 and len(indexed) == 3 and indexed[-1].strip() == mask_shape[-1].strip():
        hint = (
            "a [inst d_sae] mask indexes the first two axes, but W_enc is [inst d_in d_sae]: index "
            "sae.W_enc.data.transpose(-1, -2)[dead] (or loop over instances and use W_enc[k][:, idx])"
        )
    else:
        hint = (
            f"your dead mask has shape [{mask.group(1)}], expected [inst d_sae]: reduce frac_active_in_window "
            "([window inst d_sae]) over the window axis, dim=0"
        )
    fail(f"your resampler raised IndexError: {str(err).splitlines()[0]}", hint, code="mask_index")


def size_factor_hint(got: Tensor, want: Tensor, what: str, sizes: dict[str, int]) -> None:
    """Fail naming the factor when `got` is one constant c × `want` everywhere and c is a known size, its inverse or
    a ratio of two known sizes (e.g. d_in/d_sae: a sum over d_in divided by d_sae). Observation plus possible causes:
    several sizes can give the same c, so every match is listed."""
    g, w = got.detach().double(), want.detach().double()
    if g.shape != w.shape or (w.abs() < 1e-6).all() or torch.allclose(g, w, rtol=1e-4, atol=1e-5):
        return
    mask = w.abs() > 1e-6
    c = float((g[mask] / w[mask]).median())
    if not torch.allclose(g, c * w, rtol=1e-4, atol=1e-5) or abs(c) < 1e-12:
        return
    items = [(n, v) for n, v in sizes.items() if v > 1]
    names = [n for n, v in items if abs(c - v) < 1e-4 * v] + [f"1/{n}" for n, v in items if abs(c * v - 1) < 1e-4]
    names += [f"{a}/{b}" for (a, x), (b, y) in itertools.permutations(items, 2) if x != y and abs(c - x / y) < 1e-4 * c]
    if names:
        fail(
            f"{what} is {c:.4g} × the expected everywhere (= {' = '.join(names)})",
            "a reduction or division uses the wrong size: e.g. a sum divided by the size of a different axis, a mean "
            "where a sum was asked (or the reverse); check each .mean / .sum / division against the formula",
            code="size_factor",
        )


def uncatalogued(out: Tensor, want: Tensor, mistakes: list) -> bool:
    """True when `out` is wrong and matches none of the catalogue's (code, hint, value) mutants."""
    fits = lambda v: v.shape == out.shape and bool(torch.allclose(out.to(v.dtype), v, rtol=1e-4, atol=1e-5))
    return not fits(want) and not any(fits(v) for _, _, v in mistakes)


def complement_factor_hint(got: Tensor, want: Tensor, mistakes: list, what: str, sizes: dict[str, int]) -> None:
    """For a metric 1 - A/B (uncatalogued and wrong): fail naming the factor when the output is 1 - c·(1 - want) with
    c a known size or its inverse, i.e. A and B reduced differently (a mean in one, a sum in the other). Tested as
    a hypothesis on `got` itself (1 - got loses float32 precision when got is close to 1)."""
    if not uncatalogued(got, want, mistakes):
        return
    g, w = got.detach().double(), want.detach().double()
    for name, v in sizes.items():
        for c, label in ((v, name), (1 / v, f"1/({name})" if "·" in name else f"1/{name}")):
            if torch.allclose(g, 1 - c * (1 - w), rtol=1e-4, atol=1e-5):
                fail(
                    f"1 - your value is {c:.4g} × 1 - the expected value, for every {what} (= {label})",
                    "the ratio's numerator and denominator are reduced differently: a mean in one and a sum in the "
                    "other (or a division by a different size); reduce both the same way over the same axes",
                    code="ratio_size_factor",
                )


def integer_fraction(out: Any, what: str) -> None:
    """Fail when a metric whose expected values are fractions (not whole numbers) comes back as integers."""
    if isinstance(out, Tensor) and out.dtype != torch.bool and not (out.is_floating_point() or out.is_complex()):
        fail(
            f"{what} has the integer dtype {out.dtype}, but the expected values are fractions (not whole numbers)",
            "integer arithmetic drops the fraction: // is floor division (use /), and an integer tensor stays integer "
            "when divided in place; convert a count with .float() before dividing (or was the count never divided?)",
            code="integer_result",
        )


def resample_enc_mismatch(enc: Tensor, rows: Tensor, old: Tensor, scale: float) -> None:
    """Encoder columns != scale · (new decoder rows): name what they are, else describe them and list causes."""
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))
    what = "the new encoder columns are not resample_scale times the new decoder directions"
    for value, hint, code in (
        (
            old,
            "the encoder columns kept their old values: not written, or written into a copy (`t[mask]` with a "
            "mask or index list returns a copy, so `t[mask].copy_(v)` is lost): assign with `t[mask] = v`",
            "enc_untouched",
        ),
        (rows, "the encoder column is resample_scale · v, not v itself: resample_scale was ignored", "scale_ignored"),
        (rows / scale, "multiply by resample_scale, don't divide", "scale_inverted"),
        (torch.zeros_like(rows), "the encoder column is resample_scale · v, not zero", "enc_zero"),
        (-rows * scale, "the encoder column is −resample_scale · v: the sign is flipped (use +)", "enc_negated"),
        (
            old + rows * scale,
            "each new encoder column is the old column plus resample_scale · v: replace it (=), don't add to it (+=)",
            "enc_added",
        ),
    ):
        if close(enc, value):
            fail(what, hint, code)
    RD.encoder_before_normalising(enc, rows, scale)  # lengths of unnormalised draws: the order of operations
    cos = torch.nn.functional.cosine_similarity(enc, rows, dim=-1)
    if (cos > 1 - 1e-4).all():
        EL.encoder_length_reading(enc, rows, old, scale, what)  # a rule of resample_scale, d_in or the old length
        lengths = enc.norm(dim=-1)
        fail(
            f"{what}: they point along v but have lengths between {float(lengths.min()):.4g} and "
            f"{float(lengths.max()):.4g}, expected resample_scale = {scale}",
            "encoder column = resample_scale · v exactly (v of unit length): check the factor applied",
            code="enc_length",
        )
    fail(
        f"{what}: they don't point along the new decoder rows (cosine between {float(cos.min()):.3g} and "
        f"{float(cos.max()):.3g})",
        "decoder row v, encoder column resample_scale · v with the same v. Possible causes: a second random draw for "
        "the encoder; a flipped sign; the new value mixed with (added to) the old column; rows/columns indexed apart",
        code="enc_mismatch",
    )


def call_resampler(fn: Callable[[], Any]) -> None:
    """Run the learner's resampler, naming the usual crashes."""
    try:
        with torch.no_grad():
            fn()
    except (TypeError, AttributeError) as err:
        if "NoneType" in str(err):
            fail(
                f"with tied weights your resampler raised {type(err).__name__}: {err}",
                "write decoder rows through the property sae.W_dec (a view of W_enc when tied), not sae._W_dec",
                code="used_private_W_dec",
            )
        raise
    except IndexError as err:
        describe_index_error(err)
        raise
    except RuntimeError as err:
        if "without replacement" in str(err):
            fail(
                f"torch.multinomial raised: {err}",
                "draw with replacement=True: there can be more dead latents than examples",
                code="no_replacement",
            )
        if "infinity or NaN" in str(err):
            fail(
                f"torch.multinomial raised: {err}",
                "the sampling weights contain inf or NaN: a division by a loss of 0? (an instance can have every loss "
                "0: skip it)",
                code="weights_not_finite",
            )
        if "invalid multinomial distribution" in str(err) or "sum of probabilities" in str(err):
            fail(
                f"torch.multinomial raised: {err}",
                "an instance whose losses are all 0 has nothing to resample towards: skip it (check the weights' sum)",
                code="zero_loss_instance",
            )
        raise


def rerun(impl: Callable, spare: Any, frac: Tensor, scale: float, batch_size: int) -> Callable[[], None]:
    """A second run of the resampler on `spare`, its batch generator rewound (whether the choice is random shows)."""

    def again() -> None:
        spare.generate_batch.rewind()
        call_resampler(lambda: impl(spare, frac.clone(), scale, batch_size))

    return again
