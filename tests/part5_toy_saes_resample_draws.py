"""Part 5 resampling: readings of how the new random direction was used, for resample_simple's checker.

* The draw normalised over another axis: each new direction is a torch.randn draw divided by a norm over m numbers,
  so every entry squared has mean exactly 1/m (by symmetry) and a row's squared norm d_in/m. m = d_in is the row's
  own norm (correct); the latents axis, the instances, a whole instance or the whole draw are read back by name.
* The encoder written before the direction was normalised (order of operations): the encoder columns point along v
  but their lengths / resample_scale are the norms of unnormalised Gaussian draws, whose squares have mean d_in.
* b_enc of the resampled latents kept its old values: the write was lost (never made, or made into the copy that
  indexing with an index list or mask returns).
* Directions not uniform on the sphere although centred: first whether the coordinates share one scale (each one's
  mean square is 1/d_in for exchangeable coordinates), then where the extra mass sits. The largest |coordinate| of
  a row is smaller on average than a uniform direction's when the rows crowd towards the cube's corners (a normalised
  uniform draw, torch.rand · 2 - 1) and larger when they crowd towards the axes (a normalised heavy-tailed draw:
  Laplace, exponential with random signs, Student-t, Cauchy).
Each window is 5% on a mean over thousands of rows (its relative standard deviation is below 1%); these readings
only name a failure already found, a correct answer never reaches them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

WINDOW = 0.05


def draw_axis(sae: Any, norms: Tensor) -> None:
    """Decoder rows not unit: when their mean squared norm is d_in / m for m the size of another axis (or axes) of
    the draw, fail naming it. `norms` [n]: the resampled rows' norms."""
    n_inst, d_in, d_sae = sae.cfg.n_inst, sae.cfg.d_in, sae.cfg.d_sae
    total = n_inst * d_sae * d_in
    axes = {
        f"the latents axis (d_sae = {d_sae}: dim=1 of a [inst d_sae d_in] draw)": d_sae,
        f"the instances axis (n_inst = {n_inst}: dim=0 of a [inst d_sae d_in] draw)": n_inst,
        f"the latents and instances together (n_inst·d_sae = {n_inst * d_sae})": n_inst * d_sae,
        f"a whole instance at once (d_sae·d_in = {d_sae * d_in}: one norm per instance)": d_sae * d_in,
        f"the whole draw at once (n_inst·d_sae·d_in = {total}: one norm, no dim)": total,
    }
    ms = float(norms.double().pow(2).mean())
    hits = [name for name, m in axes.items() if m != d_in and abs(ms / (d_in / m) - 1) < WINDOW]
    if not hits:
        return
    fail(
        f"resampled decoder rows have norms between {norms.min():.3g} and {norms.max():.3g}, expected 1; their mean "
        f"square {ms:.3g} is d_in / m for m the size of " + " or ".join(hits) + ", what a Gaussian draw normalised "
        f"over that axis gives (each entry divided by a norm over m numbers, not over its row's own d_in = {d_in})",
        "the draw was normalised over the wrong axis: normalise each new direction over its own d_in entries, "
        "`v / v.norm(dim=-1, keepdim=True)` on the [... d_in] draw (dim=-1, the last axis)",
        code="normalized_wrong_axis",
    )


def encoder_before_normalising(enc: Tensor, rows: Tensor, scale: float) -> None:
    """Encoder columns along v with lengths that vary per latent: when (length / resample_scale)² has mean d_in,
    an unnormalised Gaussian draw's squared norm, fail naming the order of operations."""
    if not (torch.nn.functional.cosine_similarity(enc, rows, dim=-1) > 1 - 1e-4).all():
        return
    lengths = enc.double().norm(dim=-1) / scale
    d_in = rows.shape[-1]
    ms = float(lengths.pow(2).mean())
    if float(lengths.max() / lengths.min().clamp_min(1e-30)) < 1.01 or abs(ms / d_in - 1) > WINDOW:
        return
    fail(
        "the new encoder columns point along the new decoder directions v but have lengths between "
        f"{float(lengths.min()) * scale:.4g} and {float(lengths.max()) * scale:.4g} (expected resample_scale = "
        f"{scale}); (length / resample_scale)² has mean {ms:.3g} ≈ d_in = {d_in}, the squared norm of an "
        "unnormalised torch.randn draw: each encoder column is resample_scale × the raw draw, before it was normalised",
        "order of operations: normalise the draw first (v = d / ‖d‖), then write v into the decoder and "
        "resample_scale · v into the encoder (normalising in place after the encoder was written is too late)",
        code="enc_before_normalising",
    )


def bias_write_lost(sae: Any, before: dict, dead: Tensor) -> None:
    """b_enc of the dead latents not zero: when it kept its old values, name the lost write."""
    got, old = sae.b_enc.detach()[dead], before["b_enc"][dead]
    if (got == 0).all() or not (got == old).all():
        return
    fail(
        f"the encoder bias b_enc of all {got.numel()} resampled latents kept its old values (not zero), while their "
        "weights were rewritten",
        "the write to b_enc was lost: either it is missing, or it went into a copy: indexing with an index list or "
        "a mask (`b_enc[i][idx]`, `b_enc.data[mask]`) returns a copy, so `.zero_()`, `.fill_(0)` or `.copy_()` on it "
        "changes only the copy. Assign instead: `b_enc[i, idx] = 0` or `b_enc.data[dead] = 0.0`",
        code="b_enc_not_reset",
    )


def not_sphere_failure(rows: Tensor, j: int, gap: float, tol: float) -> None:
    """Coordinate j of the new unit directions `rows` [n d_in] failed the uniform-on-[-1, 1] CDF test (largest gap
    `gap` > `tol`): fail naming where the mass went (cube corners, axes), by the mean largest |coordinate| of a row
    against a uniform direction's (simulated on 2^20 seeded draws: its standard error is below 3e-4). Six standard
    errors of the rows' own mean (n in the thousands) separate the two sides."""
    n, d = rows.shape
    # each coordinate's mean square is 1/d for any draw whose coordinates are exchangeable (iid); for a uniform
    # direction x_j² has variance 3/(d(d+2)) - 1/d². Six standard errors (per coordinate) of the sample mean
    ms = rows.double().pow(2).mean(0)
    se = math.sqrt((3 / (d * (d + 2)) - 1 / d**2) / n)
    if ((ms - 1 / d).abs() > 6 * se).any():
        fail(
            f"the new directions are not uniform on the sphere: the mean square of each coordinate is "
            f"{[round(float(m), 4) for m in ms]}, where uniform directions give 1/d_in = {1 / d:.4f} ± {6 * se:.4f} "
            "for every coordinate: some coordinates were drawn with a larger scale than others",
            "draw every coordinate with the same distribution (torch.randn(n_dead, d_in), no per-coordinate scale "
            "or factor), then normalise the vector",
            code="anisotropic_draw",
        )
    gen = torch.Generator().manual_seed(0)
    sphere = torch.randn(2**20, d, generator=gen, dtype=torch.float64)
    expected = float((sphere.abs().amax(-1) / sphere.norm(dim=-1)).mean())
    top = rows.double().abs().amax(-1)
    mean, bound = float(top.mean()), 6 * float(top.std()) / n**0.5 + 1e-3
    seen = f"coordinate {j} of the new directions is not uniform on [-1, 1] (largest CDF gap {gap:.3f} > {tol:.3f}), "
    seen += f"as it is for directions uniform on a sphere in {d}D; a row's largest |coordinate| averages {mean:.3f} "
    seen += f"(uniform directions: {expected:.3f})"
    if mean < expected - bound:
        fail(
            seen + ": the rows crowd towards the corners of the cube",
            "normalise a Gaussian vector (torch.randn): a normalised uniform vector (torch.rand · 2 - 1) crowds "
            "towards the corners of the cube",
            code="cube_not_sphere",
        )
    if mean > expected + bound:
        fail(
            seen + ": the rows crowd towards the coordinate axes",
            "normalise a Gaussian vector (torch.randn): a normalised heavy-tailed draw (Laplace, exponential with "
            "random signs, Student-t, Cauchy) crowds towards the axes",
            code="axes_not_sphere",
        )
    fail(
        seen,
        "only a Gaussian vector (torch.randn) divided by its norm is uniform on the sphere: draw the directions that "
        "way",
        code="not_sphere",
    )


def sign_hint(positive: Tensor) -> str:
    """The hint for new directions whose coordinates are not positive half the time (`positive` [d_in]: the
    fraction positive per coordinate): one sign only means they were made positive; both signs, unequally often,
    mean an offset was added to the draw."""
    if bool(((positive > 0.99) | (positive < 0.01)).any()):
        return (
            "directions must be symmetric around 0: draw them with torch.randn, and don't make them positive "
            "(torch.rand, .abs() or a ReLU all do)"
        )
    return (
        "directions must be symmetric around 0: both signs occur, but not equally often: an offset added to the "
        "draw (a constant, b_dec, a mean) before normalising? Normalise a plain torch.randn vector"
    )


def length_law(norms: Tensor, d_in: int) -> None:
    """Decoder rows not unit, read back as c · ‖v‖^e of the Gaussian draw v ~ N(0, I_d_in): log ‖v‖² is a log-gamma
    variable (shape d_in/2), whose spread and skew fit e and whose mean then fits c. Named: e = -1, c = 1 (v / ‖v‖²,
    a squared norm as the divisor) and e = 1, c = 1/√d_in (v / √d_in: the expected norm, not each draw's own)."""
    if norms.numel() < 1000 or not bool((norms > 0).all()):
        return
    L = norms.double().log()
    k = torch.tensor(d_in / 2, dtype=torch.float64)
    tri, tetra = float(torch.special.polygamma(1, k)), float(torch.special.polygamma(2, k))
    sd = float(L.std())
    skew = float(((L - L.mean()) ** 3).mean()) / sd**3
    e = -math.copysign(2 * sd / math.sqrt(tri), skew)  # log ‖v‖ = ½ log χ², skewed left: e > 0 keeps the sign
    if abs(skew - math.copysign(1, e) * tetra / tri**1.5) > 0.15:  # not a power of a Gaussian draw's norm
        return
    c = math.exp(float(L.mean()) - e / 2 * (float(torch.special.digamma(k)) + math.log(2)))
    readings = {
        (-1.0, 1.0): (
            "v / ‖v‖²: each draw divided by its squared norm (a power of the norm too many)",
            "divide by the norm itself, v / v.norm(dim=-1, keepdim=True) (not .norm() ** 2 or .pow(2).sum())",
        ),
        (1.0, 1 / math.sqrt(d_in)): (
            f"v / √d_in: every draw divided by one constant (√d_in = {math.sqrt(d_in):.4g}, a Gaussian vector's "
            "typical norm), so the rows are unit only on average",
            "divide each draw by its own norm, v / v.norm(dim=-1, keepdim=True)",
        ),
    }
    for (e0, c0), (what, hint) in readings.items():
        if abs(e - e0) < 0.05 and abs(c / c0 - 1) < 0.05:
            fail(
                f"resampled decoder rows have norms between {float(norms.min()):.3g} and {float(norms.max()):.3g}, "
                f"expected 1; read back from their spread, they are {what} (lengths ≈ {c:.3g} · ‖v‖^{e:.2f} of a "
                "Gaussian draw v)",
                hint,
                code="draw_length_law",
            )
