"""Read-backs for part 5a: a learner's output re-derived from one concrete slip (the hint names it only when the
slip reproduces the output), and float64 calls (the contract allows float64 inputs: the result keeps them).

- `upstream_transformed` / `theta_centre_pooled`: a threshold gradient using grad_output.sign() / .abs(), or a
  window centred on a pooled θ (θ.mean(), one value per axis) instead of each element's own θ.
- `float64_kept`: the learner's function on float64 copies of the inputs: the result must be float64 and (given the
  reference) float64-accurate; a float32 buffer or .float() inside shows as a float32 result or float32 accuracy.
- `jumprelu_decode_options`, `auxk_inf_decoded`, `recovery_order_slips`: catalogue rows read back from the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests import part5_toy_saes_diagnosis as D
from tests import part5a_sae_architectures_fitted as FIT
from tests import part5a_sae_architectures_mistakes as M
from tests import part5a_sae_architectures_slips as SL
from tests.checking import fail


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5))


def upstream_transformed(got: Tensor, kernel: Tensor, g: Tensor, name: str) -> None:
    """Fail when the threshold gradient is the right kernel times sign(grad_output) or |grad_output|."""
    for label, t in (("grad_output.sign()", g.sign()), ("grad_output.abs()", g.abs())):
        if not torch.equal(t, g) and _close(got, kernel * t):
            fail(
                f"the gradient of {name} with respect to threshold is the right kernel times {label} (read back: "
                "it reproduces yours at every position): the upstream gradient's magnitude (or sign) is lost",
                f"multiply by grad_output itself, -(factor/ε) · K((x - θ)/ε) · grad_output, not by {label}",
                code="grad_output_transformed",
            )


def theta_centre_pooled(got: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, dth: Callable, name: str) -> None:
    """Fail when the threshold gradient is what a window centred on θ pooled (mean, median, first element; over
    everything or one axis) gives, with each element's own θ elsewhere (JumpReLU's factor) or the pooled one."""
    pools = (
        ("θ.mean()", lambda t, d: t.mean() if d is None else t.mean(d, keepdim=True)),
        ("θ.median()", lambda t, d: t.median() if d is None else t.median(d, keepdim=True).values),
        ("θ[0]", lambda t, d: t.flatten()[0] if d is None else t.narrow(d, 0, 1)),
    )
    for how, pool in pools:
        for dims in (None, *range(th.dim())):
            centre = pool(th, dims).expand_as(th)
            if torch.equal(centre, th) or not bool((centre != 0).all()):
                continue
            for v in (dth(x, centre, bw) * g, dth(x, centre, bw) * g * th / centre):
                if not _close(got, v):
                    continue
                where = "one value for every element" if dims is None else f"one value per slice along axis {dims}"
                fail(
                    f"the gradient of {name} with respect to threshold is what a window centred on {how} ({where}) "
                    "gives (read back: it reproduces yours), not a window on each element's own θ",
                    "K((x - θ)/ε) uses each element's own threshold: the window is |x - θ| < ε/2 around that "
                    f"element's θ; don't pool θ ({how}) in backward",
                    code="window_centre_pooled",
                )


# Counts of a 0/1 mask: `.float()` on the mask is the idiomatic (and proven correct) conversion; float32 holds the
# counts' means to ~1e-7 relative, so a float32 result of float64 activations is accepted there.
COUNTS = ("l0_norm", "dead_latent_fraction")


def float64_kept(impl: Callable, args: tuple, what: str, reference: Callable | None = None, got: Any = None) -> None:
    """Call `impl` on float64 copies of the floating inputs: the result must be float64 (an integer count is
    accepted, as on float32 inputs), and with `reference` match it to float64 accuracy (1e-9 relative: a correct
    float64 computation differs by ~1e-15, a float32 intermediate by ~1e-7).

    Only when `got` (the learner's result on the float32 inputs) matches the reference there: a values mistake is
    named by the value comparison that follows, not hidden behind a dtype diagnosis. `reference` defaults to the
    solution's function named by `what`; with `got` it is only the gate, not the float64 accuracy check."""
    ref = getattr(ref_a, what.split("(")[0], None)
    if got is not None and callable(ref):
        want32 = ref(*(a.detach() if isinstance(a, Tensor) else a for a in args))
        if not (isinstance(got, Tensor) and _close(got.detach(), want32)):
            return
    wide = tuple(a.detach().double().requires_grad_(a.requires_grad) if _floating(a) else a for a in args)
    try:
        out = impl(*wide)
    except Exception as err:  # the learner's function failing on float64 inputs the contract allows
        fail(
            f"{what} raised {type(err).__name__} on float64 inputs: {str(err).splitlines()[0][:200]}",
            "the inputs may be float64: build new tensors with the inputs' dtype (zeros_like, new_zeros, "
            "dtype=x.dtype), not torch.zeros(shape) (float32) or .float()",
            code="float64_inputs",
        )
    if not isinstance(out, Tensor) or not out.is_floating_point():
        return
    if out.dtype != torch.float64 and what.split("(")[0] not in COUNTS:
        fail(
            f"{what} returned {out.dtype} values for float64 inputs",
            "keep the inputs' dtype: the result of float64 inputs is float64. E.g. a .float() or a buffer made with "
            "torch.zeros(shape) / torch.tensor(...) without dtype= turns it to float32; use zeros_like / .to(x.dtype)",
            code="float64_inputs",
        )
    if reference is None:
        return
    want = reference(*(a.detach() if isinstance(a, Tensor) else a for a in wide))
    if out.shape != want.shape or torch.allclose(out.detach(), want, rtol=1e-9, atol=1e-12):
        return
    err = float((out.detach() - want).abs().max())
    if torch.allclose(out.detach(), want, rtol=1e-4, atol=1e-5):
        fail(
            f"{what} on float64 inputs is float64 but only float32-accurate (largest difference {err:.2g}, about 1e-7 "
            "relative; a float64 computation is within ~1e-15)",
            "some intermediate is float32: e.g. a buffer made with torch.zeros(shape) (no dtype), values cast with "
            ".float(), a float32 constant tensor. Use zeros_like / new_zeros / dtype=pre.dtype throughout",
            code="float64_inputs",
        )


def auxk_float64(
    impl: Callable, pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int, got: Any
) -> None:
    """`float64_kept` for auxk_loss, W_dec's rows made unit in float64 (a learner re-normalising them then changes
    nothing beyond ~1e-16, where float32-normalised rows would move by ~1e-7); only when `got` (the learner's
    float32 result) is right, so that a values mistake is named by the value comparison."""
    if not (isinstance(got, Tensor) and _close(got.detach(), ref_a.auxk_loss(pre, residual, dead, W_dec, k_aux))):
        return
    wide_dec = torch.nn.functional.normalize(W_dec.detach().double(), dim=-1).requires_grad_(W_dec.requires_grad)
    float64_kept(impl, (pre, residual, dead, wide_dec, k_aux), "auxk_loss(...)", ref_a.auxk_loss)


def _floating(a: Any) -> bool:
    return isinstance(a, Tensor) and a.is_floating_point()


def jumprelu_decode_options(sae: Any, h: Tensor) -> tuple[Any, list]:
    """h_reconstructed's ingredients (`D.decode_options`: another decoder, pre for acts, b_dec ...) for JumpReLU."""
    pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
    return D.decode_options(sae, pre, M.jumprelu_forward(sae, h)[2])


def auxk_inf_decoded(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list:
    """`FIT.auxk_centred_d_in`'s rows, and (code, hint, value): the -inf fill of live latents scattered as it is,
    the decoded inf/nan zeroed after."""
    centred = FIT.auxk_centred_d_in(pre, residual, dead, W_dec, k_aux)
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    if bool(top.values.isfinite().all()):
        return centred
    r_hat = torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, top.indices, top.values), W_dec)
    value = (residual - torch.nan_to_num(r_hat, nan=0.0, posinf=0.0, neginf=0.0)).pow(2).mean(-1).detach()
    hint = (
        "read back: scattering the top-k values as they are (the -inf that masks live latents included) and zeroing "
        "the decoded inf/nan afterwards (e.g. nan_to_num) reproduces yours: where fewer than k_aux latents are dead "
        "the whole decoded residual is lost, not just the -inf slots. Replace the non-finite top-k values by 0 "
        "before scattering"
    )
    return [*centred, ("auxk_inf_decoded", hint, value)]


def recovery_order_slips(W_feat: Tensor, W_dec: Tensor) -> list:
    """`SL.recovery_more`'s rows, and (code, hint, value): a smooth max (logsumexp) over latents, the
    second-largest cosine."""
    f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + 1e-8)
    d_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    cos = torch.einsum("isd,idf->isf", d_hat, f_hat)
    return [
        *SL.recovery_more(W_feat, W_dec),
        (
            "smooth_max",
            "your values are logsumexp over the latents of the cosines (a smooth max, always above the max): take the "
            "max itself, cos.max(dim=1).values (or .amax(1))",
            torch.logsumexp(cos, 1),
        ),
        (
            "second_largest",
            "your values are the second-largest cosine over the latents (sort(...).values[:, -2] or topk(2)[1]): the "
            "best latent is the largest, index -1 of an ascending sort, or .max(dim=1).values",
            cos.sort(1).values[:, -2],
        ),
    ]
