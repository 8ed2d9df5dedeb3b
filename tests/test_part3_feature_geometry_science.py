"""Science checks for part 3: every phenomenon its summary claims, on the notebook's two sweeps.

The sweeps are the notebook's (`train_geometry_sweep`: uniform importance, 10 hidden dimensions, 4000 steps
of the notebook's schedule, one CPU thread, seed 0): 50 features at the 22 sparsities of
`geometry.SWEEP_INVERSE_P`, and 13 features ("room to spare") at the 9 of `geometry.ROOMY_INVERSE_P`.
About a minute of CPU together on an idle 2-core machine.

Shapes are identified from the geometry (`geometry.feature_blocks`: features linked by |cos| > 0.25, each group
with the dimensions it spans), and a feature is "at a fraction" when its dimensionality is within 0.01 of it,
which tells 2/5 from 3/8 (0.025 apart). Measured values (seeds 0 and 1 of the 50-feature sweep, seeds 0-2 of the
13-feature sweep) are in the comments; run this file as a script to measure them again.
"""

from __future__ import annotations

import pytest
import torch

from solutions.part3_feature_geometry import compute_dimensionality, dimensions_per_feature, train_geometry_sweep
from utils import part3_feature_geometry as geometry

WIDE, ROOMY = geometry.SWEEP_INVERSE_P, geometry.ROOMY_INVERSE_P


def measure(n_features: int, inverse_p: list[float], seed: int = 0):
    """(W, D*, per-feature dimensionality, represented) of a sweep trained from `seed` on one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is as fast and isn't slowed down by parallel workers
    try:
        model, _ = train_geometry_sweep(n_features, inverse_p, 4_000, seed=seed, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    W = model.W.detach()
    return W, dimensions_per_feature(W), compute_dimensionality(W), W.pow(2).sum(1) > geometry.REPRESENTED


def shapes(W, D, represented, inverse_p, low, high):
    """name -> list of the dimensionalities of each group with that name, over instances with low <= 1/p <= high."""
    found: dict[str, list[list[float]]] = {}
    for k, x in enumerate(inverse_p):
        if low <= x <= high:
            for group, dims in geometry.feature_blocks(W[k], represented[k]):
                name = geometry.POLYTOPES.get((len(group), dims), f"{len(group)} in {dims}")
                found.setdefault(name, []).append(D[k, group].tolist())
    return found


def near(values: list[list[float]], fraction: float, tol: float = geometry.TOLERANCE) -> float:
    """The share of the features of these groups whose dimensionality is within `tol` of `fraction`."""
    flat = [v for group in values for v in group]
    return sum(abs(v - fraction) <= tol for v in flat) / max(1, len(flat))


@pytest.fixture(scope="module")
def wide():
    return measure(50, WIDE)


@pytest.fixture(scope="module")
def roomy():
    return measure(13, ROOMY)


@pytest.mark.slow
def test_plateau_at_one_half(wide):
    W, dstar, D, represented = wide
    plateau = [WIDE.index(x) for x in (2.0, 2.3, 2.7, 3.2)]
    # Across the plateau the sparsity changes by a factor 1.6 but D* stays at 1/2 (measured 0.490-0.558, the
    # largest at 2.0 in seed 1); the neighbours are far from it (0.89-0.90 at 1.4, 0.29-0.30 at 6.0).
    assert ((dstar[plateau] - 0.5).abs() < 0.07).all(), dstar
    assert ((dstar[plateau[1:]] - 0.5).abs() < 0.02).all(), dstar
    assert dstar[WIDE.index(1.4)] > 0.65 and dstar[WIDE.index(6.0)] < 0.4, dstar
    # On the plateau every represented feature is in an antipodal pair, at 1/2 (measured: 10 pairs at 2.3, 2.7 and
    # 3.2 in both seeds, 9 or 10 at 2.0; every feature within 0.01 of 1/2).
    for k in plateau[1:]:
        assert geometry.describe_blocks(geometry.feature_blocks(W[k], represented[k])) == "10 antipodal pairs", k
        assert (D[k][represented[k]] - 0.5).abs().max() <= 0.01, D[k][represented[k]]


@pytest.mark.slow
def test_triangles_next_to_pairs_before_the_plateau(wide):
    found = shapes(wide[0], wide[2], wide[3], WIDE, 1.4, 1.85)
    # Measured: seed 0 two triangles at 1.55 and two at 1.65, seed 1 one at 1.40 and one at 1.65; their
    # dimensionalities 0.64-0.67 (a triangle overlaps its neighbours a little, so it sits just below 2/3).
    assert len(found.get("triangle", [])) >= 1, found.keys()
    assert near(found["triangle"], 2 / 3, tol=0.03) == 1, found["triangle"]
    assert len(found.get("antipodal pair", [])) >= 5, found.keys()


@pytest.mark.slow
def test_pentagons_and_square_antiprisms(wide):
    found = shapes(wide[0], wide[2], wide[3], WIDE, 3.9, 4.8)
    # Measured: seed 0 five pentagons and three square antiprisms, seed 1 seven and two.
    pentagons, antiprisms = found.get("pentagon", []), found.get("square antiprism", [])
    assert len(pentagons) >= 2 and len(antiprisms) >= 1, found.keys()
    # A polytope alone in its subspace sits on its fraction; one that its neighbours overlap a little drops below it
    # (a pentagon's features towards 3/8), so the dimensionality alone cannot always name the shape. The cleanest
    # group of each kind sits on its own fraction, within 0.012 of it for every feature: a window narrower than
    # half the 0.025 between 2/5 and 3/8 (measured: the best pentagon within 0.0096 and 0.0028 of 2/5, the best
    # square antiprism within 0.0029 and 0.0117 of 3/8, in seeds 0 and 1).
    best_pentagon = min(max(abs(v - 2 / 5) for v in group) for group in pentagons)
    best_antiprism = min(max(abs(v - 3 / 8) for v in group) for group in antiprisms)
    assert best_pentagon <= 0.012 and best_antiprism <= 0.012, (pentagons, antiprisms)


@pytest.mark.slow
def test_features_alone_next_to_pairs(roomy):
    W, _, D, represented = roomy
    sparse = [k for k, x in enumerate(ROOMY) if x >= 2.45]
    described = [geometry.describe_blocks(geometry.feature_blocks(W[k], represented[k])) for k in sparse]
    # With 13 features in 10 dimensions, from 1/(1-S) = 2.45 on most instances keep 7 features alone and store the
    # other 6 as 3 antipodal pairs: 7 + 3 = 10 dimensions (measured in 4 of these 5 instances for each of seeds
    # 0-2); the lone features sit at 1 and the pairs at 1/2, within 0.01.
    full = [k for k, text in zip(sparse, described, strict=True) if text == "7 alone, 3 antipodal pairs"]
    assert len(full) >= 3, described
    counts = geometry.count_near_sticky(D[full], represented[full])
    assert (counts["1"] == 7).all() and (counts["1/2"] == 6).all(), counts


@pytest.mark.slow
def test_a_tetrahedron(roomy):
    W, _, D, represented = roomy
    found = shapes(W, D, represented, ROOMY, 1.3, 4.0)
    # Measured: one tetrahedron in seed 0 (at 1.6, dimensionalities 0.754-0.763), three in seed 1 (two within 0.03
    # of 3/4), one in seed 2 (0.72-0.78): the tetrahedron shows up, but it is rarer and less regular than the pairs.
    tetrahedra = found.get("tetrahedron", [])
    assert len(tetrahedra) >= 1, found.keys()
    assert any(max(abs(v - 0.75) for v in group) <= 0.04 for group in tetrahedra), tetrahedra


if __name__ == "__main__":
    for n_features, inverse_p, seeds in [(50, WIDE, (0, 1)), (13, ROOMY, (0, 1, 2))]:
        for seed in seeds:
            W, dstar, D, rep = measure(n_features, inverse_p, seed)
            print(f"{n_features} features, seed {seed}")
            print(geometry.sticky_summary(torch.tensor(inverse_p), W, dstar, D, rep))
            for name, groups in shapes(W, D, rep, inverse_p, 0, 100).items():
                if name in ("triangle", "tetrahedron", "pentagon", "square antiprism"):
                    print(f"  {name}: {[[round(v, 3) for v in g] for g in groups]}")
