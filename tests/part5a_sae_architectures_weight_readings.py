"""part5a_sae_architectures: generic read-backs of WHICH parameter was used WHERE.

- `gated_acts_weights`: the Gated SAE's acts ingredients (`DG.gated_acts_options`), with the projection of each path
  read with the decoder (W_dec_normalized transposed) instead of the shared W_enc.
- `with_decoder_norms`: h_reconstructed's ingredients with the decoder normalised by a whole-matrix norm
  (Frobenius per instance, or over every instance) instead of each latent's row.
- `jumprelu_l0_pooled`: L_sparsity's Heaviside given θ pooled (mean, median, max, min, first) over latents or
  instances instead of each latent's own θ, read back when acts_post and h_reconstructed are right.
- `auxk_first_instance`: auxk_loss with every instance decoded with instance 0's decoder.
- `OUTPUT_AS_THETA_X` / `OUTPUT_AS_THETA_TH`: a backward that reads the forward's output back where θ belongs
  (save_for_backward(x, out) unpacked as x, θ).
Every reading is the reference computed with that one change; a hint names it only when it reproduces the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part5a_sae_architectures_diagnosis as DG
from tests import part5a_sae_architectures_mistakes as M
from tests.checking import fail


def gated_acts_weights(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list]:
    """`DG.gated_acts_options` with its first ingredient (what each path reads) widened to which matrix each path
    projects with: W_enc for both (right), or W_dec_normalized transposed for the magnitude or the gate path."""
    _, options = DG.gated_acts_options(sae, h)
    W_enc, W_hat = sae.W_enc, sae.W_dec_normalized.mT
    proj = lambda x, W: torch.einsum("bid,ids->bis", x, W)
    x = h - sae.b_dec

    def combine(projs: tuple, gate_bias: Any, mag_in: str, scale: Tensor | float, mag_bias: Any, on: str) -> Tensor:
        p_gate, p = projs
        gate = p_gate + gate_bias
        mag = {"gate": gate, "relu_proj": p.relu()}.get(mag_in, p) * scale + mag_bias
        switch = {"relu": gate.relu, "sigmoid": gate.sigmoid}.get(on, lambda: (gate > 0).to(h.dtype))()
        return switch * mag.relu()

    first = [(c, hint, lambda f=f: tuple(proj(xi, W_enc) for xi in f())) for c, hint, f in options[0]]
    shared = "the two paths share W_enc (π_gate = x @ W_enc + b_gate, π_mag = (x @ W_enc) · exp(r_mag) + b_mag); "
    first += [
        (
            "mag_projects_with_decoder",
            "the magnitude path projects x with W_dec_normalized (transposed) instead of W_enc: "
            + shared
            + "the decoder only decodes",
            lambda: (proj(x, W_enc), proj(x, W_hat)),
        ),
        (
            "gate_projects_with_decoder",
            "the gate path projects x with W_dec_normalized (transposed) instead of W_enc: "
            + shared
            + "the decoder only decodes",
            lambda: (proj(x, W_hat), proj(x, W_enc)),
        ),
    ]
    return combine, [first, *options[1:]]


def with_decoder_norms(options_fn: Callable) -> Callable:
    """h_reconstructed's ingredients from `options_fn`, plus a decoder divided by a whole-matrix norm."""

    def options(sae: Any, h: Tensor) -> tuple[Callable[..., Tensor], list]:
        combine, opts = options_fn(sae, h)
        W = sae.W_dec
        whole = "it decodes with W_dec divided by {} instead of W_dec_normalized (each latent's row over d_in)"
        opts[1] = [
            *opts[1],
            (
                "decoder_frobenius_normalised",
                whole.format("its whole matrix's (Frobenius) norm per instance, W_dec.norm(dim=(-2, -1))"),
                lambda: W / W.norm(dim=(-2, -1), keepdim=True),
            ),
            ("decoder_norm_all", whole.format("the norm of the whole tensor, W_dec.norm()"), lambda: W / W.norm()),
        ]
        return combine, opts

    return options


_POOLS: tuple[tuple[str, Callable[[Tensor, int], Tensor]], ...] = (
    ("the mean", lambda t, d: t.mean(d, keepdim=True)),
    ("the median", lambda t, d: t.median(d, keepdim=True).values),
    ("the max", lambda t, d: t.amax(d, keepdim=True)),
    ("the min", lambda t, d: t.amin(d, keepdim=True)),
    ("the first", lambda t, d: t.narrow(d, 0, 1)),
)


def jumprelu_l0_pooled(learner: Any, reference: Any, h: Tensor) -> None:
    """When the learner's acts_post and h_reconstructed are right but L_sparsity is what Heaviside gives with θ
    pooled over latents or instances (one value per instance / latent / for all): fail naming it."""
    try:
        with torch.no_grad():
            d, _, acts, h_rec = learner(h.clone())
            got = d["L_sparsity"].detach().to(h.dtype)
    except Exception:  # a malformed return or an error: the main check names it
        return
    close = lambda a, b: isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.to(b.dtype), b, 1e-4, 1e-5)
    with torch.no_grad():
        want, _, want_acts, want_rec = reference(h)
        if not (close(acts, want_acts) and close(h_rec, want_rec)) or close(got, want["L_sparsity"]):
            return
        pre = torch.einsum("bid,ids->bis", h - reference.b_dec, reference.W_enc) + reference.b_enc
        th = reference.log_threshold.exp()
        for axis, dims in (("latents (one θ per instance)", (-1,)), ("instances", (0,)), ("everything", (0, -1))):
            for how, pool in _POOLS:
                pooled = th
                for dim in dims:
                    pooled = pool(pooled, dim)
                if torch.equal(pooled.expand_as(th), th) or not close(got, (pre > pooled).to(h.dtype).sum(-1)):
                    continue
                fail(
                    f"loss_dict['L_sparsity'] is the count of latents with pre > {how} θ over {axis}, not each "
                    "latent's own θ",
                    "L_sparsity = Heaviside.apply(pre, θ, bandwidth).sum(-1) with θ = exp(log_threshold) per "
                    f"instance and latent: don't pool θ ({how} over {axis.split(' (')[0]})",
                    code="l0_theta_pooled",
                )


def auxk_first_instance(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list:
    """(code, hint, value): every instance decoded with instance 0's decoder W_dec[0]."""
    W0 = W_dec[:1].expand_as(W_dec)
    hint = (
        "every instance is decoded with instance 0's decoder (W_dec_normalized[0]): decode instance i with its own "
        'W_dec_normalized[i], einsum "batch inst d_sae, inst d_sae d_in -> batch inst d_in"'
    )
    return [("auxk_decoder_first_instance", hint, M.auxk_variant(pre, residual, dead, W0, k_aux).detach())]


def _saved_output(x: Tensor, th: Tensor, step_only: bool) -> Tensor:
    """The forward's output, which a backward reading saved_tensors as (x, θ) takes for θ."""
    step = (x > th).to(x.dtype)
    return step if step_only else x * step


_THETA = (
    "your backward reads the forward's output back where θ belongs (e.g. ctx.save_for_backward(x, out) unpacked "
    "as x, threshold): {} is what the right backward gives with θ replaced by the output. Save x and threshold"
)
OUTPUT_AS_THETA_X = [
    (
        "output_as_threshold",
        _THETA.format("∂/∂x = 1[x > out] · grad_output"),
        lambda x, th, bw: (x > _saved_output(x, th, False)).to(x.dtype),
    )
]
OUTPUT_AS_THETA_TH = [
    (
        "output_as_threshold",
        _THETA.format("∂/∂θ = -(out/ε) · K((x - out)/ε) · grad_output"),
        lambda x, th, bw: -(o := _saved_output(x, th, False)) * M.rect((x - o) / bw) / bw,
    )
]
