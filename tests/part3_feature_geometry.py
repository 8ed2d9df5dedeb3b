"""Checkers for part 3 (feature geometry).

Both exercises are deterministic functions of W, so each checker compares the learner's output with
the formula computed here in float64 on the same inputs: several instances with different weights,
columns of different norms (0.3 to 1.7, so every square and every normalisation matters), overlapping
features, and sizes that differ from each other (inst, d_hidden and feats), so a wrong axis shows.

When the values are wrong, the learner's output is compared with a catalogue of mutants of the
reference (what each known mistake returns on the same inputs) and the mistake that reproduces it is
named; a wrong *shape* that a known mistake produces (a reduction over the wrong axes, the feature
axis taken for d_hidden) is named too. Then the edge cases the exercises promise: one instance,
float64 input, a feature whose column is zero, the input left unmodified.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

import solutions.part3_feature_geometry as ref
from tests.checking import checker, expect_close, expect_matches, expect_tensor, fail, generic_diagnosis
from tests.mutants import call
from tests.part1_superposition_hints import dtype_failure
from tests.part3_feature_geometry_centred import centred_square_readings
from tests.part3_feature_geometry_clamped_entries import clamped_entries_failure
from tests.part3_feature_geometry_column_slips import column_slip_readings, keepdim_shapes
from tests.part3_feature_geometry_coordinate_readbacks import ignores_others_failure, rotation_failure
from tests.part3_feature_geometry_degrees import degree_failure
from tests.part3_feature_geometry_denominators import (
    constant_denominator_failure,
    frobenius_statistic_readings,
    self_term_readings,
)
from tests.part3_feature_geometry_dim_slips import (
    common_divisor_candidates,
    one_divisor_failure,
    restricted_sum_failure,
)
from tests.part3_feature_geometry_dpf_laws import dpf_law_failure
from tests.part3_feature_geometry_dpf_readbacks import dpf_readback_failure, upcast_failure
from tests.part3_feature_geometry_eps_offsets import eps_offset_failure
from tests.part3_feature_geometry_floors import bent_ratio_failure, norm_constant_failure
from tests.part3_feature_geometry_other_norms import entrywise_ratio_failure, other_norm_readings
from tests.part3_feature_geometry_overlaps import overlap_square_candidates, whole_norm_candidates
from tests.part3_feature_geometry_readbacks import (
    dpf_readings,
    expect_no_zeroed,
    flat_join,
    squared_before_matmul_failure,
)
from tests.part3_feature_geometry_rounded import rounded_output_failure
from tests.part3_feature_geometry_scale_probes import (
    abs_dot_mutants,
    capped_norm_mutants,
    output_probe,
    per_instance_factor_failure,
    small_feature_failure,
)
from tests.part3_feature_geometry_slip_pairs import slip_pair_failure
from tests.part3_feature_geometry_squared_entries import squares_inside_dot_failure
from tests.part3_feature_geometry_subsets import constant_numerator_failure, subset_norm_failure
from tests.part3_feature_geometry_tiny_scale import check_float64_and_tiny
from tests.reshape_scrambles import regrouped_candidates

Mistake = tuple[str, str, Tensor]


def _weights(device: torch.device, n_inst: int = 3, d: int = 4, n_feats: int = 7) -> Tensor:
    """Random columns with norms between 0.3 and 1.7, so every normalisation and square matters."""
    W = torch.randn(n_inst, d, n_feats)
    W = W / W.norm(dim=1, keepdim=True) * (0.3 + 1.4 * torch.rand(n_inst, 1, n_feats))
    return W.to(device)


def _close(out: Tensor, value: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """`out` equals `value` (same shape, within tolerance), without ever raising on an odd tensor."""
    if tuple(out.shape) != tuple(value.shape) or out.device.type == "meta":
        return False
    if not (out.is_floating_point() or out.dtype in (torch.int64, torch.int32, torch.bool)):
        return False
    got = out.detach().double().cpu()
    return bool(torch.allclose(got, value.double().cpu(), rtol=rtol, atol=atol))


def expect_output(
    out: object,
    what: str,
    shape: Sequence[int],
    dims: str,
    dtype: torch.dtype | None,
    device: torch.device | None,
    shape_mistakes: Sequence[Mistake] = (),
    finite: bool = True,
) -> Tensor:
    """`expect_tensor`, but a wrong shape that a known mistake produces is named by that mistake."""
    if isinstance(out, Tensor) and tuple(out.shape) != tuple(shape):
        for code, hint, value in shape_mistakes:
            if _close(out, value):
                expected = "(" + ", ".join(f"{n}={s}" for n, s in zip(dims.split(), shape, strict=True)) + ")"
                fail(f"{what} has shape {tuple(out.shape)}, expected {expected}", hint, code=code)
    return expect_tensor(out, what, shape=shape, dims=dims, dtype=dtype, device=device, finite=finite)


def expect_unmodified(W: Tensor, before: Tensor, what: str, name: str = "W") -> None:
    """The learner's function left its input alone."""
    if not torch.equal(W, before):
        fail(
            f"{what} changed its input {name}",
            f"an in-place operation (`{name} /= ...`, `{name}.pow_(2)`, `{name}[...] = ...`) overwrote the "
            f"caller's tensor: use out-of-place operations (`{name} / ...`, `{name}.pow(2)`) so it is left alone",
            code="modified_input",
        )


def unexplained(out: Tensor, expected: Tensor, values: Sequence[Mistake], dims: str, rtol=1e-4, atol=1e-5) -> bool:
    """`out` is wrong, and neither a catalogue mutant nor a generic diagnosis of `expect_matches` explains it."""
    if not isinstance(out, Tensor) or not out.is_floating_point() or tuple(out.shape) != tuple(expected.shape):
        return False
    got = out.detach().double().cpu()
    if _close(got, expected, rtol, atol) or any(_close(got, v, rtol, atol) for _, _, v in values):
        return False
    return generic_diagnosis(got, expected.double().cpu(), dims, rtol, atol) is None


def norm_threshold_failure(out: Tensor, expected: Tensor, W: Tensor, what: str) -> None:
    """The values are right for every feature on one side of a column-norm threshold and wrong on the other: a clamp
    or a threshold on ‖W_i‖ (clamp(min=1) where an epsilon was meant). Random errors don't sort by norm."""
    got, exp = out.detach().double().cpu(), expected.double().cpu()
    norms = W.detach().double().norm(dim=1).cpu()
    wrong = ~torch.isclose(got, exp, rtol=1e-4, atol=1e-5)
    if int(wrong.sum()) < 2 or int((~wrong).sum()) < 2:
        return
    bad, good = norms[wrong], norms[~wrong]
    if float(bad.max()) < float(good.min()):
        lo, hi, side = float(bad.max()), float(good.min()), "shorter"
    elif float(bad.min()) > float(good.max()):
        lo, hi, side = float(good.max()), float(bad.min()), "longer"
    else:
        return
    cause = (
        "1 lies in between: a clamp(min=1) or max(‖W_i‖, 1) on the norm, where a tiny epsilon (clamp_min(1e-12)) "
        "was meant to guard only zero columns?"
        if lo < 1 <= hi
        else "a clamp or a threshold on the norm?"
    )
    fail(
        f"{what} is wrong for exactly the {int(wrong.sum())} features whose column is {side} than a threshold "
        f"between ‖W_i‖ = {lo:.4g} and {hi:.4g}, and right for all the others",
        f"your values depend on which side of a norm threshold a column lies: {cause} Normalise every column by its "
        "own norm, Ŵ_i = W_i / ‖W_i‖",
        code="norm_threshold",
    )


def dimensionality_structure(
    fn: Callable[[Tensor], Tensor], v: Tensor, out: Tensor, name: str = "vector", sym: tuple[str, str] = ("v", "v̂")
) -> None:
    """Name what an unexplained dimensionality formula gets wrong from how it reacts to changed inputs.

    `v` is [inst n d] (n vectors of d coordinates; `fn` takes that layout). D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)² is
    (1) changed by every other vector j, (2) not the same function of ‖v_i‖ for every i, (3) unchanged by a
    rotation of all the vectors (it only uses dot products) and (4) unchanged by a common scale. Each probe
    states an observed fact about the learner's function, so the hint is true whatever the cause.
    """
    base = out.detach().double().cpu()
    x, u = sym

    probe = output_probe(fn, base)

    same = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))
    g = torch.Generator().manual_seed(11)
    if v.shape[0] > 1:  # each instance's values depend on its own vectors only
        moved = v.detach().clone()
        moved[0] = (torch.randn(moved[0].shape, generator=g) * 1.5).to(v)
        after = probe(moved)
        if after is not None and not same(after[1:], base[1:]):
            k = 1 + int((~torch.isclose(after[1:], base[1:], rtol=1e-4, atol=1e-6)).any(-1).double().argmax())
            fail(
                f"redrawing the {name}s of instance 0 changed the values of instance {k}: your D of one instance "
                "depends on another instance's vectors",
                f"each instance is a separate set of {name}s: compute every dot product, norm and matrix (a Gram "
                f"matrix {x}ᵀ{x}, the overlaps) per instance, from that instance's own {name}s (instance 0's matrix "
                "used for every instance? a sum or mean over the instance axis?)",
                code="instances_mixed",
            )
    n = v.shape[1]
    # Redraw each vector j in turn: D_i must change for every other i. reached[i, j]: D_i changed when j was redrawn.
    reached, g_each = torch.zeros(n, n, dtype=torch.bool), torch.Generator().manual_seed(13)
    for k in range(n):
        moved = v.detach().clone()
        moved[:, k] = (torch.randn(moved[:, k].shape, generator=g_each) * 1.5).to(v)
        after = probe(moved)
        if after is None:
            break
        reached[:, k] = ~torch.isclose(after, base, rtol=1e-4, atol=1e-6).all(0)
    else:
        off = ~torch.eye(n, dtype=torch.bool)
        for side, pattern in (("j > i", torch.ones(n, n, dtype=torch.bool).triu(1)), ("j < i", off.tril(-1))):
            if torch.equal(reached & off, pattern):
                fail(
                    f"your D_i depends on the other {name}s on one side only: redrawing {name} j changes D_i exactly "
                    f"for the {name}s i with {side} (as if each D_i read only the {name}s on one side of it)",
                    f"each pair of {name}s counted once? The denominator sums a triangle of the [n, n] matrix of "
                    "squared overlaps (triu / tril, or a loop over j > i / j < i), so the off-diagonal overlaps count "
                    "once instead of in both orders (and with triu(1) / tril(-1) the j = i term is missing too); sum "
                    f"({u}_i·{x}_j)² over every j, both orders of each pair, the j = i term included",
                    code="triangle_only",
                )
    moved = v.detach().clone()
    moved[:, 0] = (torch.randn(moved[:, 0].shape, generator=g) * 1.5).to(v)
    after = probe(moved)
    if after is not None and same(after[:, 1:], base[:, 1:]):
        ignores_others_failure(base, v, name, sym)
    constant_denominator_failure(base, v, name, sym)
    q, _ = torch.linalg.qr(torch.randn(v.shape[-1], v.shape[-1], generator=g, dtype=torch.float64))
    turned = probe((v.detach().double().cpu() @ q).to(v))
    if turned is not None and not same(turned, base):
        clamped_entries_failure(base, v, sym)
        rotation_failure(base, turned, v, sym)
    scaled = probe(2 * v.detach())
    if scaled is not None:
        factor = scaled / base
        if bool(torch.isfinite(factor).all()) and same(factor, factor.flatten()[:1].expand_as(factor)):
            k = math.log2(float(factor.flatten()[0]))
            if abs(k) > 0.01:
                degree_failure(base, v, sym)
                fail(
                    f"your values grow {2**k:.4g}× when every vector is doubled (they scale like c^{k:.3g}); D_i is "
                    "scale-free",
                    f"numerator and denominator must have the same degree (‖{x}_i‖² over Σ_j ({u}_i·{x}_j)²: both "
                    f"c²): a power of a norm is off by {k:.3g} (e.g. a unit vector left unnormalised, one normalised "
                    f"once too often (a Gram Σ_j {u}_j {x}_jᵀ with one side unit), a norm not squared or squared "
                    "twice), or the overlaps are not dot products (pairwise distances "
                    f"‖{x}_i - {x}_j‖ from torch.cdist scale like c, not like the dot products' c²)",
                    code="not_scale_free",
                )


# --------------------------------------------------------------------------------------------
# dimensions_per_feature
# --------------------------------------------------------------------------------------------
DPF_FORMULA = "D* = d_hidden / ‖W‖²_F per instance: W.shape[1] / W.pow(2).sum((1, 2))"
PAIR_NAMES = {"vectors": "features", "coords": "d_hidden (dim=1)", "v": "W"}
CD_FORMULA = "D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)², Ŵ_i = W_i / ‖W_i‖, the sum over every feature j of the instance"


def _dpf_mistakes(W: Tensor) -> tuple[Tensor, list[Mistake], list[Mistake]]:
    """d_hidden / ‖W‖²_F per instance, and what the usual mistakes give (same shape; other shapes)."""
    W = W.double()
    n_inst, d, n_feats = W.shape
    frob_sq = W.pow(2).sum((1, 2))
    right = d / frob_sq
    values = [
        (
            "frobenius_square",
            "divide by the *squared* Frobenius norm: the sum of W², no square root",
            d / frob_sq.sqrt(),
        ),
        ("inverted", "it's d_hidden / ‖W‖²_F, not ‖W‖²_F / d_hidden", frob_sq / d),
        *dpf_readings(W, frob_sq),
        *capped_norm_mutants(W),
        *frobenius_statistic_readings(W),
        *centred_square_readings(W),
        (
            "numerator_rank",
            "the numerator is d_hidden = W.shape[1], the number of hidden dimensions, not the rank of W[inst] "
            "(torch.linalg.matrix_rank): they differ when W has a zero or dependent row",
            torch.linalg.matrix_rank(W).double() / frob_sq,
        ),
        (
            "norms_summed_squared",
            "‖W‖²_F is the sum of the *squared* column norms, Σ_i ‖W_i‖², not the square of their sum (Σ_i ‖W_i‖)²",
            d / W.norm(dim=1).sum(-1).pow(2),
        ),
        (
            "l1_norms_squared",
            "‖W_i‖ is the Euclidean norm (sqrt of the sum of squares), not the L1 norm Σ_d |W_di|: your denominator "
            "is Σ_i (Σ_d |W_di|)²; ‖W‖²_F = Σ_i ‖W_i‖² = W.pow(2).sum((1, 2))",
            d / W.abs().sum(1).pow(2).sum(-1),
        ),
        (
            "hardcoded_d_hidden",
            "take d_hidden from W (W.shape[1]) instead of writing the notebook's 10: the check uses other sizes",
            10 / frob_sq,
        ),
        (
            "mean_not_sum",
            "‖W‖²_F is the *sum* of the squares of all entries of W[inst], not their mean",
            d / W.pow(2).mean((1, 2)),
        ),
        (
            "norms_not_squared",
            "sum the *squared* column norms: ‖W‖²_F = Σ_i ‖W_i‖², not Σ_i ‖W_i‖",
            d / W.norm(dim=1).sum(-1),
        ),
        (
            "all_instances",
            "reduce each instance separately: sum over dims (1, 2), not over the whole tensor",
            (d / frob_sq.sum()).expand(n_inst),
        ),
        (
            "instances_crossed",
            "your denominator is Σ_j Σ_{d,f} W[i] ⊙ W[j], summed over every other instance j too: the two einsum "
            "operands use different instance letters ('idf,jdf->i'). Use one letter for both, 'idf,idf->i', or "
            "W.pow(2).sum((1, 2))",
            d / (W * W.sum(0)).sum((1, 2)),
        ),
        (
            "ratio_per_feature",
            "D* is one ratio per instance, d_hidden / Σ_i ‖W_i‖² (the squared norms summed first), not the sum over "
            "features of d_hidden / ‖W_i‖² (a sum of per-feature ratios)",
            (d / W.pow(2).sum(1)).sum(-1),
        ),
        (
            "ratio_per_feature",
            "D* is one ratio per instance, d_hidden / Σ_i ‖W_i‖² (the squared norms summed first), not the mean over "
            "features of d_hidden / ‖W_i‖² (an average of per-feature ratios)",
            (d / W.pow(2).sum(1)).mean(-1),
        ),
        (
            "first_instance",
            "every instance got instance 0's value: compute it for each W[inst] (sum over dims (1, 2))",
            right[:1].expand(n_inst),
        ),
        (
            "spectral_norm",
            "‖W‖_F is the Frobenius norm (all entries squared and summed); matrix_norm(W, ord=2) is the largest "
            "singular value, another norm",
            d / torch.linalg.matrix_norm(W, ord=2) ** 2,
        ),
        ("abs_not_squared", "square the entries: ‖W‖²_F = Σ W², not Σ |W|", d / W.abs().sum((1, 2))),
        (
            "row_norms_summed_squared",
            "your denominator is (Σ_d ‖row_d‖)², the norms of the d_hidden rows W[inst, d, :] summed and then "
            "squared: ‖W‖²_F is the sum of the *squared* row (or column) norms, Σ_d ‖row_d‖² = W.pow(2).sum((1, 2))",
            d / W.norm(dim=2).sum(-1).pow(2),
        ),
        (
            "norm_of_squared_norms",
            "your denominator is the L2 norm of diag(WᵀW) (the squared column norms ‖W_i‖², then a norm over them, "
            "sqrt(Σ_i ‖W_i‖⁴)): ‖W‖²_F is their *sum*, Σ_i ‖W_i‖² = the trace of WᵀW (W.pow(2).sum((1, 2)))",
            d / W.pow(2).sum(1).norm(dim=-1),
        ),
        (
            "l1_norm_squared",
            "your denominator is (Σ |W|)², the entrywise L1 norm of W[inst] squared: ‖W‖²_F squares each entry "
            "before summing, Σ W² (W.pow(2).sum((1, 2)), or torch.linalg.norm(W, dim=(1, 2)) ** 2 with its default "
            "Frobenius norm)",
            d / W.abs().sum((1, 2)) ** 2,
        ),
        (
            "nuclear_norm",
            "‖W‖_F is the Frobenius norm (√ of the sum of squared entries = √ of the sum of squared singular values); "
            "ord='nuc' is the nuclear norm, the sum of the singular values, another norm",
            d / torch.linalg.matrix_norm(W, ord="nuc") ** 2,
        ),
        *[
            (  # ‖WᵀW‖_F = ‖W Wᵀ‖_F (the same singular values): one entry names both
                "gram_norm",
                "‖W‖²_F is the sum of W's squared entries (the trace of WᵀW), not the Frobenius norm of the Gram "
                "matrix WᵀW (or W Wᵀ): divide by W.pow(2).sum((1, 2))",
                d / torch.linalg.matrix_norm(W.mT @ W) ** power,
            )
            for power in (1, 2)
        ],
        (
            "gram_sum",
            "‖W‖²_F is the *trace* of W Wᵀ (its diagonal), not the sum of all its entries",
            d / (W @ W.transpose(1, 2)).sum((1, 2)),
        ),
        (
            "gram_sum",
            "‖W‖²_F is the *trace* of WᵀW (its diagonal, Σ_i W_i·W_i), not the sum of all its entries (Σ_ij W_i·W_j "
            "also counts the overlaps between features)",
            d / (W.transpose(1, 2) @ W).sum((1, 2)),
        ),
        (
            "mean_over_features",
            f"your values are feats = {n_feats} × the right ones. Possible causes: a mean over the features where "
            "‖W‖²_F is their *sum* of ‖W_i‖², or a numerator that counts d_hidden · feats instead of d_hidden "
            "(W.flatten(1).shape[1], W[0].numel()): D* = d_hidden / ‖W‖²_F, d_hidden = W.shape[1]",
            d / W.pow(2).sum(1).mean(-1),
        ),
    ]
    shapes = [
        (
            "all_instances",
            "reduce each instance separately: sum over dims (1, 2), keep the inst axis",
            d / frob_sq.sum(),
        ),
        ("first_instance", "compute one value per instance, not only for W[0]", right[0]),
        (
            "per_feature",
            "sum over the features too: one number per instance, d_hidden / Σ over (d_hidden, feats) of W²",
            d / W.pow(2).sum(1),
        ),
        (
            "reduce_axes",
            "you have one value per feature: the sum ran over inst and d_hidden (dims 0 and 1). Two slips give this: "
            "W.T on a 3-d tensor, which reverses *all* its axes to [feats, d_hidden, inst] (so (W.T ** 2).sum((1, 2)) "
            "sums over d_hidden and inst; W.mT swaps only the last two), or the wrong dims in the sum. Sum W² over "
            "d_hidden and feats (dims 1 and 2) and keep the inst axis (dim 0)",
            d / W.pow(2).sum((0, 1)),
        ),
        (
            "reduce_axes",
            "sum over d_hidden and feats (dims 1 and 2) and keep the inst axis (dim 0)",
            d / W.pow(2).sum((0, 2)),
        ),
        (
            "reduce_axes",
            "sum over d_hidden and feats (dims 1 and 2) and keep the inst axis (dim 0)",
            d / W.pow(2).sum(2),
        ),
        *[
            (
                "diagonal_dims",
                "torch.diagonal takes dims 0 and 1 by default (here inst and d_hidden): pass dim1=-2, dim2=-1 "
                "(or use .diagonal(dim1=1, dim2=2)) to take each instance's own diagonal",
                d / torch.diagonal(gram, dim1=a, dim2=b).sum(-1),
            )
            for gram in (W @ W.mT, W.mT @ W)
            for a, b in ((0, 1), (0, 2))
        ],
    ]
    return right, values + other_norm_readings(W), shapes


@checker("dimensions_per_feature", kind="function")
def test_dimensions_per_feature(dimensions_per_feature: Callable, device: torch.device) -> str:
    W = _weights(device, n_inst=6, d=5, n_feats=8)  # sizes unlike each other and W.ndim = 3: a wrong count shows
    W = W * (6.25 / W.pow(2).sum((1, 2), keepdim=True)).clamp_min(1).sqrt()  # D* <= 0.8: a cap at 1 shows on 0.05 W
    W[1, 2] = 0.0  # instance 1 has a zero hidden dimension (rank 4 < d_hidden = 5), so the rank is not d_hidden
    W_in = W.clone()
    right, values, shapes = _dpf_mistakes(W)
    what = "dimensions_per_feature(W)"
    out = dimensions_per_feature(W_in)
    entrywise_ratio_failure(out, W, what)
    upcast_failure(out, W, what)
    out = expect_output(out, what, (6,), "inst", W.dtype, device, shapes)
    expect_unmodified(W_in, W, what)
    if not _close(out, right):
        counts = W.shape[1] / out.detach().double().cpu()
        if torch.isfinite(counts).all() and torch.allclose(counts, counts.round(), atol=1e-4):
            fail(
                f"{what} is {[round(v, 4) for v in out.tolist()]}: d_hidden divided by whole numbers "
                f"{counts.round().int().tolist()}, expected {[round(v, 4) for v in right.tolist()]}",
                "the denominator is a whole number in every instance, e.g. a count of features or a rounded norm; D* "
                "divides by ‖W‖²_F, the sum of all the squared entries of W[inst] (a half-represented feature counts "
                "for its ‖W_i‖²)",
                code="counted_features",
            )
    if not _close(out, right) and not any(_close(out, v) for _, _, v in values):
        subset_norm_failure(out, W, what)
    if not _close(out, right) and not any(_close(out, v) for _, _, v in values):
        dpf_law_failure(dimensions_per_feature, W, out, what)  # a wrong power or an eps; a numerator alone: below
        constant_numerator_failure(out, W, what)
        dpf_readback_failure(out, W, what)
    expect_matches(
        out,
        right,
        what,
        values,
        dims="inst",
        hint=DPF_FORMULA,
        reference=call(ref.dimensions_per_feature, W),
    )
    # a small W (‖W‖²_F well below 1 in every instance), so a floor or clamp on the denominator shows
    small = W * 0.05
    right_s = W.shape[1] / small.pow(2).sum((1, 2))
    what_s = "dimensions_per_feature(0.05 * W)"
    out_s = expect_tensor(dimensions_per_feature(small.clone()), what_s, shape=(6,), dims="inst", device=device)
    if not _close(out_s, right_s):
        both = torch.cat([out.detach().double().cpu(), out_s.detach().double().cpu()])
        frobs = torch.cat([W.double().pow(2).sum((1, 2)), small.double().pow(2).sum((1, 2))]).cpu()
        bent_ratio_failure(
            both,
            torch.tensor(float(W.shape[1])),
            frobs,
            f"{what} and {what_s}",
            "d_hidden",
            "‖W‖²_F",
            code="small_norm",
        )
        den = (W.shape[1] / out_s.detach().double().cpu()).tolist()
        fail(
            f"{what_s} is {[round(v, 4) for v in out_s.tolist()]}, expected {[round(v, 4) for v in right_s.tolist()]} "
            f"(right for W itself): its denominator reads {[round(v, 4) for v in den]} where ‖W‖²_F is "
            f"{[round(v, 4) for v in small.pow(2).sum((1, 2)).tolist()]}",
            "the result is right for large ‖W‖²_F but not small: a floor on the denominator (clamp_min(1), "
            "max(·, 1)) or a large eps added to it? Divide by ‖W‖²_F itself",
            code="small_norm",
        )
    # one instance: the inst axis must stay
    one = W[:1].clone()
    out1 = dimensions_per_feature(one)
    if isinstance(out1, Tensor) and out1.ndim == 0:
        fail(
            "for W with one instance the output is a 0-dim tensor, expected shape (inst=1,)",
            "keep the inst axis: reduce over dims (1, 2) only, and don't .squeeze() or .item()",
            code="squeezed",
        )
    out1 = expect_tensor(out1, "dimensions_per_feature(W[:1])", shape=(1,), dims="inst")
    expect_close(out1, right[:1], "dimensions_per_feature(W[:1])", DPF_FORMULA, code="values", dims="inst")
    # a wide W (d_hidden 6 > n_features 4): d_hidden read as min(W.shape[1:]), or as the feature count, shows
    wide = _weights(device, n_inst=2, d=6, n_feats=4)
    what_w = "dimensions_per_feature(W) with d_hidden 6 > n_features 4"
    out_w = expect_tensor(dimensions_per_feature(wide.clone()), what_w, shape=(2,), dims="inst", device=device)
    right_w = 6 / wide.double().pow(2).sum((1, 2)).cpu()
    if not _close(out_w, right_w):
        constant_numerator_failure(out_w, wide, what_w)
    expect_close(out_w, right_w, what_w, DPF_FORMULA, code="values", dims="inst")
    check_float64_and_tiny(dimensions_per_feature, W, device)
    return "d_hidden / ‖W‖²_F per instance"


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def _reference(W: Tensor) -> Tensor:
    """‖W_i‖⁴ / Σ_j (W_i·W_j)² in float64, 0 for a zero column."""
    W = W.double()
    norms_sq = W.pow(2).sum(1)
    den = torch.einsum("kdi,kdj->kij", W, W).pow(2).sum(-1)
    return torch.where(den > 0, norms_sq**2 / den, torch.zeros_like(den))


def _mistakes(W: Tensor) -> tuple[list[Mistake], list[Mistake]]:
    """What the usual mistakes return on W: (same shape as the answer, other shapes)."""
    W = W.double()
    n_feats = W.shape[-1]
    norms_sq = W.pow(2).sum(1)  # [inst feats]
    W_hat = W / W.norm(dim=1, keepdim=True)
    dots = torch.einsum("kdi,kdj->kij", W_hat, W)  # Ŵ_i · W_j
    W_row = W / W.norm(dim=2, keepdim=True)  # normalised along the feature axis (wrong)
    dots_row = torch.einsum("kdi,kdj->kij", W_row, W)
    dots_both = torch.einsum("kdi,kdj->kij", W_hat, W_hat)
    dots_raw = torch.einsum("kdi,kdj->kij", W, W)
    eye = torch.eye(n_feats, dtype=torch.bool)
    den = dots.pow(2).sum(-1)
    values = [  # (code, hint, value)
        (
            "not_squared",
            "square each dot product in the denominator: Σ_j (Ŵ_i·W_j)², not Σ_j |Ŵ_i·W_j|",
            norms_sq / dots.abs().sum(-1),
        ),
        *[
            (
                "not_squared",
                "square each dot product in the denominator: Σ_j (Ŵ_i·W_j)², not the signed sum Σ_j Ŵ_i·W_j",
                norms_sq / signed,
            )
            for signed in (dots.sum(-1), dots.sum(-1).clamp_min(1e-30))  # a clamp against 0 turns a negative sum huge
        ],
        (
            "square_of_sum",
            "square each dot product *before* summing: Σ_j (Ŵ_i·W_j)², not (Σ_j Ŵ_i·W_j)²",
            norms_sq / dots.sum(-1).pow(2),
        ),
        (
            "self_term",
            "the sum runs over every j *including* j = i (a feature alone then has dimensionality 1)",
            norms_sq / dots.pow(2).masked_fill(eye, 0).sum(-1),
        ),
        (
            "normalise_axis",
            "normalise each feature's column W[:, :, i]: take the norm over d_hidden (dim=1), not over features",
            norms_sq / dots_row.pow(2).sum(-1),
        ),
        (
            "normalise_both",
            "normalise only the first vector of each dot product: Ŵ_i · W_j, not Ŵ_i · Ŵ_j",
            norms_sq / dots_both.pow(2).sum(-1),
        ),
        (
            "not_normalised",
            "the denominator uses the unit vector Ŵ_i = W_i / ‖W_i‖ in each dot product, not W_i itself (the same "
            "values come from leaving the numerator ‖W_i‖² out: 1 / Σ_j (Ŵ_i·W_j)²)",
            norms_sq / dots_raw.pow(2).sum(-1),
        ),
        (
            "numerator_square",
            "your values are the right ones divided by ‖W_i‖: a power of the norm is off by one somewhere, e.g. the "
            "numerator ‖W_i‖ where ‖W_i‖² was meant, or the squared overlaps (W_i·W_j)² divided by ‖W_i‖ where "
            "(Ŵ_i·W_j)² = (W_i·W_j)² / ‖W_i‖² needs the square",
            norms_sq.sqrt() / den,
        ),
        (
            "self_term_twice",
            "your denominator counts the self-term (Ŵ_i·W_i)² = ‖W_i‖² twice: the sum over every j already includes "
            "j = i, so don't add ‖W_i‖² to it",
            norms_sq / (den + norms_sq),
        ),
        *self_term_readings(norms_sq, den),
        (
            "numerator_power",
            "your values are the right ones times ‖W_i‖², which either of two slips gives: the unit vector computed as "
            "W_i / ‖W_i‖² (divide by the norm ‖W_i‖, with its square root), or the two forms mixed (with Ŵ_i in the "
            "denominator the numerator is ‖W_i‖²; ‖W_i‖⁴ goes with W_i · W_j, unnormalised)",
            norms_sq**2 / den,
        ),
        (
            "sum_axis",
            "your values are 1 / Σ_j (Ŵ_i·Ŵ_j)² (every norm cancelled), which these mistakes give: the sum over i "
            "instead of j (sum over dim=-1, the *second* feature index: Σ_j (Ŵ_i·W_j)²); the wrong vector's norm "
            "(Σ_j (W_i·Ŵ_j)² instead of Σ_j (Ŵ_i·W_j)², e.g. cos²_ij times a norm broadcast along the wrong axis: "
            "‖W_i‖² where ‖W_j‖² belongs, norms[:, :, None] vs norms[:, None, :]); or both vectors normalised and "
            "the numerator left out",
            norms_sq / dots.pow(2).sum(-2),
        ),
        (
            "mean_not_sum",
            "the denominator is a *sum* over j, not a mean over the features",
            norms_sq / dots.pow(2).mean(-1),
        ),
        *[
            (
                "distances_not_overlaps",
                "your denominator sums squared *distances* ‖W_i - W_j‖² (torch.cdist, or a norm of a difference) "
                "where it should sum squared *dot products* (Ŵ_i·W_j)²: the overlaps are the Gram matrix Ŵᵀ W "
                "(einsum over d_hidden, or W.mT @ W divided by the norms), not pairwise distances",
                num / torch.cdist(W.mT, W.mT).pow(2).sum(-1),
            )
            for num in (norms_sq, norms_sq**2)
        ],
        (
            "instance_mixing",
            "each instance is a separate model: only sum over features j of the *same* instance (one inst "
            "index in both operands of the einsum)",
            norms_sq / torch.einsum("kdi,ldj->kij", W_hat, W).pow(2).sum(-1),
        ),
        (
            "first_instance",
            "every instance got instance 0's values: compute the overlaps of each W[inst] with itself",
            (norms_sq / den)[:1].expand_as(norms_sq),
        ),
        (
            "instance_mean",
            "every instance got the mean over the instances: keep one value per (inst, feature), no reduction "
            "over inst",
            (norms_sq / den).mean(0, keepdim=True).expand_as(norms_sq),
        ),
        (
            "factor_d_hidden",
            f"your values are off by a factor d_hidden = {W.shape[1]}: nothing in D_i is divided or multiplied "
            "by the number of hidden dimensions",
            norms_sq / den / W.shape[1],
        ),
        (
            "factor_d_hidden",
            f"your values are off by a factor d_hidden = {W.shape[1]}: nothing in D_i is divided or multiplied "
            "by the number of hidden dimensions",
            norms_sq / den * W.shape[1],
        ),
    ]
    values += abs_dot_mutants(W, norms_sq, W_hat) + common_divisor_candidates(W)
    values += overlap_square_candidates(W.mT, "Ŵ_i·W_j", "Ŵ_j·W_i", "W_i·W_j", "G = WᵀW", "‖W_i‖", "M = W Wᵀ")
    values += whole_norm_candidates(W.mT, "W", "W.norm(dim=1, keepdim=True), over d_hidden")
    values += regrouped_candidates(W, _reference, "W", ("inst", "d_hidden", "feats"))
    right = _reference(W)
    shapes = [
        ("transposed_output", "return [inst, feats]: the output has the instances first", right.T),
        (
            "feature_axis",
            "the columns W[inst, :, i] are the features: d_hidden is dim 1 and the features dim 2 (you computed "
            "the dimensionality of the rows)",
            _reference(W.transpose(1, 2)),
        ),
        (
            "all_pairs",
            "sum the squared overlaps over j, so there is one number per feature",
            norms_sq[..., None] / dots,
        ),
        *flat_join(right),
    ]
    return values + column_slip_readings(W), shapes + keepdim_shapes(W)


@checker("compute_dimensionality", kind="function")
def test_compute_dimensionality(compute_dimensionality: Callable, device: torch.device) -> str:
    # 1) values: 3 instances, 4 dimensions, 7 features of different norms
    W = _weights(device)
    W_in = W.clone()
    what = "compute_dimensionality(W)"
    values, shapes = _mistakes(W)
    out = compute_dimensionality(W_in)
    upcast_failure(out, W, what)
    out = expect_output(out, what, (3, 7), "inst feats", torch.float32, device, shapes)
    expect_unmodified(W_in, W, what)
    expected = _reference(W)
    expect_no_zeroed(out, expected, what, W, compute_dimensionality)
    if unexplained(out, expected, values, "inst feats"):
        squared_before_matmul_failure(out, W, what)
        squares_inside_dot_failure(out, W, what)
        norm_constant_failure(out, expected, W, what)  # √(‖W_i‖² + c) in Ŵ: the same values as + c on the numerator
        eps_offset_failure(out, W, what)  # before the threshold probe: an eps moves small columns most
        for probe in (norm_threshold_failure, norm_constant_failure, per_instance_factor_failure, one_divisor_failure):
            probe(out, expected, W, what)
        restricted_sum_failure(out, W, what)
        Wd, names = W.double(), ("‖W_i‖⁴", "Σ_j (W_i·W_j)²")
        bent_ratio_failure(
            out, Wd.pow(2).sum(1).pow(2), torch.einsum("kdi,kdj->kij", Wd, Wd).pow(2).sum(-1), what, *names
        )
        rounded_output_failure(out, expected, what)
        slip_pair_failure(out, W.mT, what, PAIR_NAMES, CD_FORMULA)
        dimensionality_structure(
            lambda v: compute_dimensionality(v.transpose(1, 2)), W.transpose(1, 2), out, "feature", ("W", "Ŵ")
        )
    expect_matches(
        out, expected, what, values, dims="inst feats", hint=CD_FORMULA, reference=call(ref.compute_dimensionality, W)
    )
    # 2) one instance: the inst axis must stay
    out1 = compute_dimensionality(W[:1].clone())
    if isinstance(out1, Tensor) and out1.shape == (7,):
        fail(
            "for W of shape (1, 4, 7) the output has shape (7,), expected (inst=1, feats=7)",
            "keep the inst axis: don't .squeeze() (it drops the inst axis when there is one instance)",
            code="squeezed",
        )
    out1 = expect_tensor(out1, "compute_dimensionality(W[:1])", shape=(1, 7), dims="inst feats")
    expect_matches(
        out1,
        expected[:1],
        "compute_dimensionality(W[:1])",
        dims="inst feats",
        hint=CD_FORMULA,
        reference=call(ref.compute_dimensionality, W[:1]),
    )
    # 3) known configurations: an orthogonal feature (1), an antipodal pair (1/2), a triangle (2/3)
    angles = torch.tensor([0.0, 2.0944, 4.1888])
    plane = torch.stack([angles.cos(), angles.sin()])  # [2, 3], a triangle in dims 0-1
    W_known = torch.zeros(1, 4, 6)
    W_known[0, :2, :3] = plane * 0.9
    W_known[0, 2, 3], W_known[0, 2, 4] = 1.1, -1.1
    W_known[0, 3, 5] = 0.7
    known = compute_dimensionality(W_known.to(device))
    known = expect_tensor(known, "compute_dimensionality(W) with one instance", shape=(1, 6), dims="inst feats")
    expect_close(
        known,
        torch.tensor([[2 / 3] * 3 + [0.5, 0.5, 1.0]]),
        "dimensionality of a triangle, an antipodal pair and a lone feature",
        "expected 2/3, 1/2 and 1: your formula agrees with the definition on random weights but not on this "
        "symmetric configuration; look for a threshold or a special case in your code",
        code="polytopes",
        rtol=1e-3,
        atol=1e-4,
    )
    # 4) float64 in, float64 out
    out64 = compute_dimensionality(W.double())
    dtype_failure(out64, torch.float64, "compute_dimensionality(W.double())")
    expect_tensor(
        out64, "compute_dimensionality(W.double())", shape=(3, 7), dims="inst feats", dtype=torch.float64, finite=False
    )
    small_feature_failure(compute_dimensionality, device, what)  # only an all-zero column gets 0
    # 5) a zero feature: defined as 0, and the other features are unaffected
    W_zero = W.clone()
    W_zero[1, :, 2] = 0
    W_zero[0, :, 6] = 0
    out0 = compute_dimensionality(W_zero)
    out0 = expect_tensor(
        out0, "compute_dimensionality(W) with a zero feature", shape=(3, 7), dims="inst feats", finite=False
    )
    at_zero = out0[[1, 0], [2, 6]]
    if not torch.isfinite(out0).all():
        fail(
            f"a feature whose column is all zeros gets {at_zero.tolist()}, expected 0 "
            f"({int((~torch.isfinite(out0)).sum())} non-finite values in the output)",
            "for a zero column ‖W_i‖² and Σ_j (Ŵ_i·W_j)² are both 0, so the value is 0 / 0 and must be guarded to "
            "0: either Ŵ_i = W_i / ‖W_i‖ is unprotected (its NaN also passes a `den != 0` test: clamp the norm, "
            "clamp_min(1e-12)) or the test lets den = 0 through (`den >= 0` is always true): "
            "torch.where(denominator > 0, ..., 0)",
            code="zero_feature",
        )
    if not torch.allclose(at_zero.double().cpu(), torch.zeros(2, dtype=torch.float64), atol=1e-6):
        fail(
            f"a feature whose column is all zeros gets {at_zero.tolist()}, expected 0",
            "a dropped feature has no share of any dimension: define its dimensionality as 0",
            code="zero_feature_value",
        )
    expect_close(
        out0,
        _reference(W_zero),
        "compute_dimensionality(W) with a zero feature",
        "a zero feature contributes nothing to other features' sums: the others should not change",
        code="zero_feature_others",
        dims="inst feats",
    )
    return "values, known polytopes, one instance, float64, zero features"
