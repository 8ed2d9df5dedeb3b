"""generate_dataset divided by a power of the norm other than 1 (round BB): x = raw / ‖raw‖^a has norm ‖raw‖^(1-a),
so raw = x · N^(a / (1 - a)) with N the learner's example norm. For each a, the raw values are rebuilt from the
output alone and must look like the U[0, 1] draws (largest near 1, mean 1/2): then a is read back and named. This
holds at any presence rate (the earlier read-back of ‖x‖² needed values above 1, which a dense example never has)."""

from __future__ import annotations

from torch import Tensor

import tests.part4_double_descent_mistakes as mistakes
from tests.checking import fail

POWERS = {
    2.0: ("norm_squared", "divide by the norm ‖x‖, not by the squared norm ‖x‖² (x.pow(2).sum(-1))"),
    3.0: ("norm_power", "divide by the norm ‖x‖ itself, not by ‖x‖³"),
    0.5: ("norm_power", "divide by the norm ‖x‖ itself, not by its square root (‖x‖ ** 0.5: a sqrt too many)"),
    1.5: ("norm_power", "divide by the norm ‖x‖ itself, not by ‖x‖^1.5"),
}


def norm_power_failure(x: Tensor, what: str, code: str, hint: str) -> None:
    """x [examples inst feats] float64, non-negative, some example norms off 1; (code, hint) from norm_diagnosis: the
    read-back runs only where that diagnosis found no specific normalisation (its generic answers, and "not
    normalised", which a divisor ‖x‖^0.5 resembles: its values stay below 1 with a mean near 1/2)."""
    generic = code in ("not_unit_norm", "not_normalised") or (code == "norm_below_one" and "Not the count" in hint)
    if not generic:
        return
    norms = x.norm(dim=-1, keepdim=True)
    nonzero = norms[..., 0] > 0
    if int(nonzero.sum()) < 100 or float((norms[nonzero] - 1).abs().median()) < 0.05:
        return
    for a, (power_code, power_hint) in POWERS.items():
        raw = x * norms.clamp_min(1e-300) ** (a / (1 - a))
        values = raw[x > 0]
        top = float(values.max())
        mean_ok = abs(float(values.mean()) - 0.5) <= mistakes.tolerance(values.numel(), 1 / 12)
        if 0.9 <= top <= 1 + mistakes.NORM_TOL and mean_ok:
            fail(
                f"{what}: the example norms are off 1 (median {float(norms[nonzero].median()):.3g}), and your "
                f"examples read back as raw / ‖raw‖^{a:g} for raw values uniform on [0, 1]",
                f"{power_hint}: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)",
                code=power_code,
            )
