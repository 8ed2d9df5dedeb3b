"""basis_alignment: calls beyond the checker's main W (a small column, one instance, one feature) and an output that
is the same for every instance (W pooled over the instances)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part7_open_problems as ref
from tests.checking import expect_tensor, fail, returned


def small_column(impl: Callable, W: Tensor) -> None:
    """A column small but not zero (‖Wᵢ‖ = 9e-4) keeps its alignment (0.80 here): only exact zeros give 0. Within
    5% of the value, so an epsilon up to 1e-5 in the denominator still passes."""
    W = W.clone()
    W[1, :, 4] = torch.tensor([2e-4, -7e-4, 5e-4], device=W.device)
    got = returned(impl(W.clone()), "basis_alignment(W)")
    want = ref.basis_alignment(W)[1, 4]
    if isinstance(got, Tensor) and got.shape == (4, 6) and not (got[1, 4] - want).abs() < 0.05 * want:
        fail(
            f"basis_alignment(W) is {float(got[1, 4]):.4g} for a feature whose column is small but not zero "
            f"(‖Wᵢ‖ = {float(W[1, :, 4].norm()):.2g}, instance 1, feature 4), expected {float(want):.4g}",
            "only an exactly zero column gets 0: test norm > 0 (not norm > some threshold), and keep any epsilon "
            "far below the norms (a clamp or + eps of 1e-12)",
            code="small_column",
        )


def size_one_calls(impl: Callable, W: Tensor) -> None:
    """The contract takes W [inst, neurons, feats] of any sizes: with one instance (or one feature) the output keeps
    that axis of size 1. A bare `.squeeze()` (after keepdim) drops it there and nowhere else."""
    for what, small, axis in (("one instance", W[1:2], "inst"), ("one feature", W[:, :, 4:5], "feats")):
        want = ref.basis_alignment(small)
        got = returned(impl(small.clone()), f"basis_alignment(W) for W with {what}")
        if isinstance(got, Tensor) and got.shape != want.shape and got.numel() == want.numel():
            fail(
                f"for W with {what}, shape {list(small.shape)}, basis_alignment(W) has shape {tuple(got.shape)}, "
                f"expected (inst, feats) = {tuple(want.shape)}: the `{axis}` axis of size 1 was dropped",
                "a bare .squeeze() drops every axis of size 1, not only the one you kept with keepdim: "
                "squeeze only the neuron axis (.squeeze(1)), or reduce without keepdim",
                code="squeezed",
            )
        got = expect_tensor(got, f"basis_alignment(W) for W with {what}", shape=tuple(want.shape), dims="inst feats")
        if not torch.allclose(got.detach().to(want.dtype), want, rtol=1e-4, atol=1e-5):
            fail(
                f"basis_alignment(W) for W with {what} (shape {list(small.shape)}) differs from the expected values, "
                "though it is right on the larger W",
                "nothing may depend on how many instances or features there are: reduce over dim 1 only",
                code="size_one",
            )


def instances_alike_hint(got: Tensor, expected: Tensor, W: Tensor) -> None:
    """Fail when every instance got the same alignment while the right ones differ between instances: W (or the
    result) pooled over the instance axis. Named exactly when it is the alignment of W.mean(0) (W.sum(0) gives the
    same ratios) or the mean of the right alignments; otherwise the observation and its possible causes."""
    g, e = got.detach().double().cpu(), expected.detach().double().cpu()
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    first = g[:1].expand_as(g)
    if g.shape[0] < 2 or not close(g, first) or close(e, e[:1].expand_as(e)):
        return
    pooled = ref.basis_alignment(W.double().mean(0, keepdim=True)).cpu().expand_as(g)
    if close(g, pooled):
        cause = "they are the alignment of W averaged over the instances (W.mean(0) or W.sum(0)), given to each"
    elif close(g, e.mean(0, keepdim=True).expand_as(e)):
        cause = "they are the mean over the instances of the right alignments, given to each"
    else:
        cause = (
            "possible causes: W reduced over the instance axis (dim 0) before the ratio, one instance's result "
            "broadcast or expanded to all, or an index that ignores the instance"
        )
    fail(
        f"basis_alignment(W) is the same for every one of the {g.shape[0]} instances, while each instance has its "
        f"own W and its own alignments: {cause}",
        "each instance is a separate model: reduce over the neurons (dim 1) only, keeping the inst axis of W "
        "[inst, neurons, feats] all the way through",
        code="instances_pooled",
    )


def constant_output_hint(got: Tensor, W: Tensor) -> None:
    """Fail when every non-zero feature got the same value while the right alignments differ: a constant is no
    rescaling of the alignment (a fitted slope of ~0 says nothing). All ones: numerator and denominator are one
    quantity (max |W| over max |W|, a norm over itself)."""
    nz = (W.norm(dim=1) > 0).cpu()
    g = got.detach().double().cpu()[nz]
    if g.numel() < 3 or not torch.isfinite(g).all() or float(g.max() - g.min()) > 1e-6 * max(1.0, float(g.abs().max())):
        return
    value = float(g[0])
    if abs(value - 1) < 1e-6:
        fail(
            "basis_alignment(W) is 1 for every non-zero feature: the numerator and the denominator are the same "
            "quantity",
            "the numerator is max over neurons |W_ki| and the denominator the L2 norm over the neurons ‖Wᵢ‖ "
            "(W.norm(dim=1), ord 2), not max |W| again",
            code="alignment_constant",
        )
    fail(
        f"basis_alignment(W) is {value:.6g} for every non-zero feature, while the right alignments differ between "
        "features (from 1/√d to 1)",
        "the output must depend on each feature's column: max over neurons |W_ki| divided by ‖Wᵢ‖ (the L2 norm over "
        "dim 1); a constant, a size or a reduction over every axis took its place",
        code="alignment_constant",
    )


def parts_read_back(got: Tensor, W: Tensor) -> None:
    """Read the learner's numerator back (got · ‖Wᵢ‖, with the right denominator) and denominator back
    (max |W_ki| / got, with the right numerator) on the non-zero features, and name them when they are one of the
    usual stand-ins: an eps added to the norm, the range or the signed max or max W² in the numerator."""
    Wd = W.detach().double().cpu()
    norm, top = Wd.norm(dim=1), Wd.abs().amax(1)
    g = got.detach().double().cpu()
    nz = norm > 0
    upside_down = nz & (g != 0) & torch.isfinite(g)
    spread_out = bool((top[upside_down] < norm[upside_down] * (1 - 1e-3)).any())  # not every column one-hot
    inverted = spread_out and bool(upside_down.eq(nz).all())
    if inverted and bool(torch.allclose(1 / g[nz], top[nz] / norm[nz], rtol=1e-4, atol=1e-7)):
        fail(
            "basis_alignment(W) is ‖Wᵢ‖ / max_k |W_ki| on every non-zero feature: the ratio upside down (1 on an "
            "axis, up to √d when spread, instead of 1/√d up to 1)",
            "divide the largest magnitude by the norm, max_k |W_ki| / ‖Wᵢ‖ (W.abs().amax(dim=1) / "
            "W.norm(dim=1)), not the norm by the largest magnitude",
            code="alignment_inverted",
        )
    rest = (Wd.pow(2).sum(1) - top.pow(2)).clamp_min(0).sqrt()  # the norm of the other entries
    by_rest = top / rest.clamp_min(1e-300)
    spread = nz & (rest > 1e-6 * norm)  # the columns where it is finite; one-hot columns give 0, inf or NaN
    if int(spread.sum()) >= 4 and bool(torch.allclose(g[spread], by_rest[spread], rtol=1e-4, atol=1e-7)):
        fail(
            "basis_alignment(W) is max|W_ki| / sqrt(Σ_k W_ki² − max_k W_ki²) on every feature with more than one "
            "non-zero entry: the denominator is the norm of the OTHER entries (the largest left out)",
            "the denominator is the norm of the whole column, largest entry included: ‖Wᵢ‖ = sqrt(Σ_k W_ki²) "
            "(W.norm(dim=1)), so a one-hot column scores exactly 1",
            code="denominator_others",
        )
    if int(nz.sum()) < 4 or not torch.isfinite(g[nz]).all() or not bool((g[nz] > 0).all()):
        return
    extra = (top / g - norm)[nz]  # the denominator minus ‖Wᵢ‖
    c = float(extra.median())
    # float32 outputs read back to ~1e-6 of the norm: the constant must stand well above that, everywhere alike.
    alike = bool(((extra - c).abs() <= 1e-5 * norm[nz] + 1e-3 * c).all())
    if alike and c > 3e-5 * float(norm[nz].max()):
        fail(
            f"basis_alignment(W) is max|W_ki| / (‖Wᵢ‖ + {c:.3g}) on every non-zero feature: an eps of {c:.3g} added "
            "to the norm",
            f"an eps of {c:.3g} is not small next to these norms (it lowers every value): leave it out and handle "
            "the zero columns with torch.where(norm > 0, ..., 0.0) and a clamp far below the norms (1e-12)",
            code="denominator_eps",
        )
    numerator = (g * norm)[nz]
    readings = [
        ("max W − min W (the range of the column)", Wd.amax(1) - Wd.amin(1)),
        ("max |W_ki| − min |W_ki|", top - Wd.abs().amin(1)),
        ("max W_ki² (squared, not the absolute value)", Wd.pow(2).amax(1)),
        ("max W_ki (signed, no absolute value)", Wd.amax(1)),
        ("−min W_ki (the most negative entry)", -Wd.amin(1)),
        ("logsumexp over neurons of |W_ki| (a smooth max, not the max)", Wd.abs().logsumexp(1)),
        ("logsumexp over neurons of W_ki (a smooth max of the signed entries)", Wd.logsumexp(1)),
        ("Σ_k softmax(|W_ki|) · |W_ki| (a softmax-weighted, smooth max)", (Wd.abs().softmax(1) * Wd.abs()).sum(1)),
    ]
    _name_reading(
        numerator,
        top[nz],
        [(w, v[nz]) for w, v in readings],
        "with the right denominator ‖Wᵢ‖, your numerator",
        "the numerator is the largest magnitude in the column, max over neurons of |W_ki| (W.abs().amax(dim=1))",
        "numerator_reading",
    )
    denominator = (top / g)[nz]
    readings = [
        (
            "‖Wᵢ‖² / 2, half the squared norm: `x ** 1/2` parses as `(x ** 1) / 2`, not a square root (write "
            "`x ** 0.5`, `x.sqrt()` or W.norm(dim=1))",
            Wd.pow(2).sum(1) / 2,
        ),
        ("‖Wᵢ‖², the squared norm (the square root is missing)", Wd.pow(2).sum(1)),
        ("Σ_k |W_ki|, the L1 norm (not the Euclidean norm)", Wd.abs().sum(1)),
        ("sqrt(mean_k W_ki²), the RMS over neurons (a mean where the norm sums)", Wd.pow(2).mean(1).sqrt()),
        ("Σ_k W_ki² / n_neurons, the mean square (a mean and no square root)", Wd.pow(2).mean(1)),
    ]
    _name_reading(
        denominator,
        norm[nz],
        [(w, v[nz]) for w, v in readings],
        "with the right numerator max|W_ki|, your denominator",
        "the denominator is the Euclidean norm of the column over the neurons, ‖Wᵢ‖ = sqrt(Σ_k W_ki²) (W.norm(dim=1))",
        "denominator_reading",
    )


def _name_reading(got: Tensor, right: Tensor, readings: list, said: str, hint: str, code: str) -> None:
    """Name the first stand-in (what, value) that the learner's read-back part equals on every non-zero feature."""
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-7))
    for what, value in readings:
        if close(got, value) and not close(got, right):
            fail(f"basis_alignment(W): {said} is {what} on every non-zero feature", hint, code=code)
