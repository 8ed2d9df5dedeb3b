"""Parts 5/5a: readings of a wrong loss_dict entry shared by every SAE forward (vanilla, Gated, JumpReLU, TopK).

`key_hint`: the formula for a loss_dict entry, so a wrong value never comes back with no hint. `loss_readings`:
L_reconstruction recomputed against other targets than h (the centred input h - b_dec, h + b_dec), and an
L0 count equal to d_sae on every example (a comparison that is true for zeros too, `>= 0`), and an L0 count where
the L1 sum is asked (`l0_where_l1`)."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

KEY_HINTS = {
    "L_reconstruction": "L_reconstruction = ((h_reconstructed - h) ** 2).mean(-1): the reconstruction compared with "
    "the input h itself, per example and instance",
    "L_sparsity": "recompute L_sparsity from that example's activations, as the exercise's formula says",
    "L_aux": "recompute L_aux from the exercise's formula, per example and instance",
}


def key_hint(hints: dict[str, str], key: str) -> str:
    """The hint for loss_dict[key]: the checker's own, else the shared formula, else a pointer to the formula."""
    return hints.get(key) or KEY_HINTS.get(key) or f"recompute loss_dict[{key!r}] from the exercise's formula"


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5))


def every_latent_counted(got: Tensor, want: Tensor, what: str, d_sae: int) -> None:
    """An L0 count equal to d_sae on every example, where the right counts are smaller: every latent counted."""
    g = got.detach().double()
    if g.numel() == 0 or _close(g, want) or not bool((g == d_sae).all()) or bool((want.detach() == d_sae).all()):
        return
    fail(
        f"{what} is {d_sae} for every example: every latent counted ({d_sae} = d_sae), zeros included",
        "count only the latents that fire: a comparison that is true for zeros too (>= 0) where > 0 (or != 0) "
        "belongs, e.g. (acts_post > 0).sum(-1)",
        code="every_latent_counted",
    )


def reconstruction_target(got: Tensor, want: Tensor, h_rec: Tensor, h: Tensor, b_dec: Tensor, what: str) -> None:
    """L_reconstruction equal to mean_d (h_reconstructed - t)² for a target t other than h: name the target."""
    if _close(got, want):
        return
    targets = {
        "the centred input x = h - b_dec (the encoder's input)": (
            h - b_dec,
            "b_dec is part of the reconstruction (h_reconstructed = acts @ W_dec + b_dec), so compare it with h "
            "itself: ((h_reconstructed - h) ** 2).mean(-1)",
        ),
        "h + b_dec (or h_reconstructed - b_dec against h)": (
            h + b_dec,
            "compare h_reconstructed, b_dec included once, with h itself: ((h_reconstructed - h) ** 2).mean(-1)",
        ),
    }
    for name, (target, hint) in targets.items():
        if _close(got, (h_rec - target).detach().pow(2).mean(-1)):
            fail(f"{what} compares h_reconstructed with {name}, not with h", hint, code="reconstruction_target")
    normalised_reconstruction(got, h_rec, h, what)


def normalised_reconstruction(got: Tensor, h_rec: Tensor, h: Tensor, what: str) -> None:
    """L_reconstruction divided by the input's squared norm (a normalised MSE, ‖h − ĥ‖² / ‖h‖²), per example or by
    the batch's mean ‖h‖², with the error summed or averaged over d_in."""
    err, size = (h_rec - h).detach().pow(2), h.detach().pow(2).sum(-1)
    for numer, n_name in ((err.sum(-1), "‖h − h_reconstructed‖²"), (err.mean(-1), "mean_d (h − h_reconstructed)²")):
        for denom, d_name in ((size, "that example's ‖h‖²"), (size.mean(0, keepdim=True), "the batch's mean ‖h‖²")):
            if _close(got, numer / denom):
                fail(
                    f"{what} is {n_name} divided by {d_name}: a normalised MSE (error relative to the input's size)",
                    "L_reconstruction is the plain mean squared error, not divided by the size of h: "
                    "((h_reconstructed - h) ** 2).mean(-1)",
                    code="normalised_mse",
                )


def loss_readings(got: Tensor, want: Tensor, key: str, h_rec: Tensor, h: Tensor, sae: Any) -> None:
    """The readings above that apply to loss_dict[key] (`h_rec`: the right reconstruction; `sae`: the reference)."""
    what = f"loss_dict[{key!r}]"
    if key == "L_reconstruction":
        reconstruction_target(got, want, h_rec.detach(), h.detach(), sae.b_dec.detach(), what)
        error_variance(got, want, h_rec.detach(), h.detach(), what)
    if key == "L_sparsity":
        every_latent_counted(got, want, what, sae.cfg.d_sae)
        l0_where_l1(got, want, h, sae, what)


def error_variance(got: Tensor, want: Tensor, h_rec: Tensor, h: Tensor, what: str) -> None:
    """L_reconstruction equal to the variance over d_in of the error (its mean removed first, unbiased or not) where
    the mean square of the error belongs: the two differ by the squared mean error (and a d_in/(d_in-1) factor)."""
    if _close(got, want):
        return
    err = (h_rec - h).double()
    for unbiased, how in (
        (True, "(h_reconstructed - h).var(-1)"),
        (False, "(h_reconstructed - h).var(-1, unbiased=False)"),
    ):
        if _close(got.double(), err.var(-1, unbiased=unbiased)):
            fail(
                f"{what} is the VARIANCE over d_in of the error, {how}: the error's mean is subtracted before "
                "squaring, so an error that is the same in every coordinate (an offset) costs nothing",
                "L_reconstruction is the mean of the squared error itself, nothing subtracted: "
                "((h_reconstructed - h) ** 2).mean(-1)",
                code="error_variance",
            )


def l0_where_l1(got: Tensor, want: Tensor, h: Tensor, sae: Any, what: str) -> None:
    """L_sparsity equal to the number of active latents (an L0 count) where the expected value is the L1 sum of the
    reference's activations; silent when the exercise's L_sparsity is itself a count (JumpReLU) or another quantity."""
    if _close(got, want):
        return
    try:
        with torch.no_grad():
            acts = sae.forward(h)[2]
    except Exception:  # a reference without this output shape: nothing to read
        return
    if not isinstance(acts, Tensor) or acts.shape[:-1] != got.shape:
        return
    acts = acts.detach().double()
    if _close(got, (acts != 0).sum(-1).double()) and _close(want, acts.abs().sum(-1)):
        fail(
            f"{what} is the number of active latents on each example (an L0 count, e.g. (acts > 0).sum(-1)): an "
            "integer count where the L1 norm, the sum of the activations' sizes, is asked",
            "L_sparsity = acts_post.abs().sum(-1): add up the activations' values, don't count the non-zero ones",
            code="l0_count",
        )


def _weight(const: int, slope: int) -> str:
    """The weight const + slope · c as code: 1, c, 1 - c, 1 + c, 0 ..."""
    c = {0: "", 1: "sparsity_coeff", -1: "-sparsity_coeff"}.get(slope, f"{slope} · sparsity_coeff")
    if not const:
        return c or "0"
    return f"{const}" + (f" - {c[1:]}" if c.startswith("-") else f" + {c}" if c else "")


def _paren(weight: str) -> str:
    return f"({weight})" if " " in weight else weight


def term_weights_failure(R: float, w: list[float], R_ref: float, w_ref: list[float], rec_ref: list[float]) -> None:
    """Read back the weights of the two terms when the loss is Σ_i batch-mean of (a + b c_i) L_rec + (d + e c_i) L_sp
    with a, b, d, e small integers (round BB): instance i's coefficient moves the loss by w[i] = b rec_ref[i] +
    e w_ref[i] (fitted over the instances), and the loss at c = 0 is R = a Σ rec_ref + d Σ w_ref. The right loss is
    (a, b, d, e) = (1, 0, 0, 1); (0, 1, 0, 1), the coefficient on both terms, is named by coeff_on_reconstruction.
    `rec_ref`, `w_ref`: the reference's per-instance batch means of L_reconstruction and L_sparsity."""
    n = len(w)
    if n != len(rec_ref) or n < 3:
        return
    basis = torch.tensor([rec_ref, w_ref], dtype=torch.float64).T  # [inst 2]
    if torch.linalg.matrix_rank(basis) < 2:
        return  # the two terms can't be told apart from these instances
    got = torch.tensor(w, dtype=torch.float64)
    b, e = torch.linalg.lstsq(basis, got[:, None]).solution.flatten().tolist()
    close = lambda x, y: abs(x - y) <= 1e-4 * max(1.0, abs(y))
    b_int, e_int = round(b), round(e)
    if abs(b - b_int) > 1e-3 or abs(e - e_int) > 1e-3 or (b_int, e_int) == (1, 1) or abs(b_int) + abs(e_int) > 2:
        return
    if not all(close(g, b_int * r + e_int * s) for g, r, s in zip(w, rec_ref, w_ref, strict=True)):
        return
    total_rec, total_sp = sum(rec_ref), sum(w_ref)
    fits = [(a, d) for a in (0, 1) for d in (0, 1) if close(R, a * total_rec + d * total_sp)]
    if len(fits) != 1 or (fits[0], b_int, e_int) == ((1, 0), 0, 1) or (fits[0], b_int, e_int) == ((0, 0), 1, 1):
        return
    (a, d) = fits[0]
    convex = (a, b_int, d, e_int) == (1, -1, 0, 1)
    fail(
        ("your loss is a convex combination, " if convex else "your loss is ")
        + f"{_paren(_weight(a, b_int))} · L_reconstruction + {_paren(_weight(d, e_int))} · L_sparsity "
        f"(read back from how sparsity_coeff[i] moves it, {[round(x, 4) for x in w]} per unit, expected "
        f"{[round(x, 4) for x in w_ref]}, and its value at sparsity_coeff = 0, {R:.4g}, expected {R_ref:.4g})",
        "L_reconstruction has weight 1 and L_sparsity weight sparsity_coeff: loss = (L_reconstruction + "
        "sparsity_coeff * L_sparsity).mean(0).sum()",
        code="convex_combination" if convex else "term_weights",
    )


def coeff_on_reconstruction(R: float, w: list[float], R_ref: float, w_ref: list[float], rec_ref: list[float]) -> None:
    """Fail when sparsity_coeff multiplies the whole per-example loss, c_i · (L_rec + L_sparsity), not only the
    sparsity term: the loss at c = 0 is then 0, and instance i's coefficient moves the loss by its reconstruction
    part (rec_ref[i], the reference's batch mean of L_reconstruction) plus its sparsity part w_ref[i]. Other
    weights of the two terms that are linear in the coefficient are read back first (`term_weights_failure`)."""
    tol = lambda b: 1e-4 * max(1.0, abs(b))
    if len(rec_ref) != len(w):
        return
    term_weights_failure(R, w, R_ref, w_ref, rec_ref)  # (1 - c)·L_rec + c·L_sparsity and the like
    if abs(R_ref) < 1e-6 or abs(R) > tol(R_ref):
        return
    if not all(abs(a - (r + b)) <= tol(r + b) for a, r, b in zip(w, rec_ref, w_ref, strict=True)):
        return
    fail(
        "sparsity_coeff multiplies the reconstruction term too: your loss is 0 with sparsity_coeff = 0 (expected "
        f"{R_ref:.4g}), and sparsity_coeff[i] scales instance i's L_reconstruction + L_sparsity "
        f"({[round(a, 4) for a in w]} per unit, expected {[round(b, 4) for b in w_ref]} from L_sparsity alone)",
        "weight only the sparsity term: loss = (L_reconstruction + sparsity_coeff * L_sparsity).mean(0).sum(), "
        "not sparsity_coeff * (L_reconstruction + L_sparsity)",
        code="coeff_on_reconstruction",
    )


# More (code, hint, output, bug) rows for M.FORWARD_MISTAKES (its module is at the line limit): the error's norm
# divided by d_in (a square root left in a mean), and the coefficient squared.
FORWARD_EXTRA: list[tuple[str, str, str, dict]] = [
    (
        "reconstruction_detached",
        "the reconstruction term carries no gradient (L_reconstruction.detach(), .data or no_grad in the loss), so "
        "only the sparsity term trains the SAE: add L_reconstruction itself to the loss",
        "grad",
        {"terms": "rec_detached"},
    ),
    (
        "rec_norm_over_d_in",
        "L_reconstruction is the mean over d_in of the SQUARED error, ((h_reconstructed - h) ** 2).mean(-1): yours "
        "is the error's norm ‖h_reconstructed − h‖ divided by d_in (a square root where no root belongs)",
        "L_reconstruction",
        {"rec": "norm_over_d"},
    ),
    (
        "coeff_squared",
        "weight L_sparsity by sparsity_coeff as it is: yours used sparsity_coeff ** 2 (coeff · L_sparsity, not "
        "coeff² · L_sparsity)",
        "loss",
        {"terms": "coeff_squared"},
    ),
]


_COLUMN = re.compile(
    r"sparsity_coeff\s*(\[\s*:\s*,\s*None\s*\]|\[\s*\.\.\.\s*,\s*None\s*\]|\.unsqueeze\(\s*(-1|1)\s*\)|"
    r"\.(view|reshape)\(\s*-1\s*,\s*1\s*\))"
)


def coeff_column_failure(err: BaseException, frame: Any, line: str, names: list[str], n_inst: int, batch: int) -> None:
    """forward raised a size mismatch between n_inst and the batch on a line where sparsity_coeff is a column
    ([:, None], unsqueeze(-1), view(-1, 1) written there, or a local [inst, 1] holding its values): sparsity_coeff
    is [inst] and broadcasts against [batch inst] as it is."""
    sizes = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", str(err))
    if sizes is None or n_inst == batch or {int(sizes[1]), int(sizes[2])} != {n_inst, batch}:
        return
    match = _COLUMN.search(line)
    written = f"`{match[0]}`" if match else None
    coeff = getattr(frame.f_locals.get("self"), "sparsity_coeff", None)
    for name in names if written is None and isinstance(coeff, Tensor) and coeff.shape == (n_inst,) else []:
        value = frame.f_locals.get(name)
        if isinstance(value, Tensor) and value.shape == (n_inst, 1) and torch.equal(value[:, 0], coeff):
            written = f"`{name}` (sparsity_coeff as a column)"
    if written is None:
        return
    fail(
        f"forward raised {type(err).__name__}: {str(err).splitlines()[0]}, on a line with {written}: "
        f"sparsity_coeff is [inst] = [{n_inst}], and there it is a column [inst, 1] = [{n_inst}, 1], whose "
        f"inst axis then lines up with the batch axis ({batch}) of the [batch inst] = [{batch}, {n_inst}] losses",
        "sparsity_coeff ([inst]) broadcasts against the [batch inst] per-example losses as it is, "
        "sparsity_coeff * L_sparsity (or as a row, sparsity_coeff[None, :]); a column [inst, 1] ([:, None], "
        "unsqueeze(-1)) pairs it with the batch axis instead",
        code="coeff_column",
    )


def confirmed_reason(why: str, h: Tensor, ratio: Any, reason: Any) -> str:
    """`why`: a reason read from one constant factor on the batch `h` (a count or size relation, e.g. "a count off
    by one"). Keep it only if a second batch (fewer examples, other values) gives the same reason with its own
    sizes, so a factor that fits a size relation by coincidence names nothing. `ratio(x)`: the learner's part over
    the reference's on batch x; `reason(factor, x)`: the reason read for that factor on x."""
    if not why:
        return why
    x = h[: max(2, h.shape[0] - 7)] * 1.25 - 0.1
    try:
        again = reason(ratio(x), x)
    except Exception:  # the learner's forward failing on the second batch: keep nothing unconfirmed
        return ""
    # the skeleton: numbers, and the labels naming where a size comes from ("(h.shape[0])"), left out
    shape = lambda text: re.sub(r"\d+(\.\d+)?", "#", re.sub(r" \((?:cfg|h|x|self)\.[^()]*\)", "", text))
    return why if shape(again) == shape(why) else ""


def coeff_transformed(loss: float, R: float, w_ref: list[float], coeffs: Tensor) -> None:
    """The loss is not linear in sparsity_coeff, but equals R + Σ_i g(c_i) · w_ref_i (w_ref_i: instance i's right
    sparsity part per unit of coefficient) for g one transform of the coefficient: fail naming g. At c = 0 and at
    one-hot c, sqrt and square agree with the identity, so only the checker's own coefficients show g."""
    for name, g in (("√sparsity_coeff", torch.sqrt), ("sparsity_coeff²", torch.square)):
        want = R + float((g(coeffs.double().cpu()) * torch.tensor(w_ref, dtype=torch.float64)).sum())
        if abs(want - loss) <= 1e-4 * max(1.0, abs(loss)):
            fail(
                f"loss is {loss:.6g}: each instance's sparsity term is weighted by {name} (read back), not by "
                "sparsity_coeff itself",
                "loss = (L_reconstruction + sparsity_coeff · L_sparsity), mean over the batch, sum over instances: "
                "multiply by self.sparsity_coeff as it is",
                code="coeff_transformed",
            )
