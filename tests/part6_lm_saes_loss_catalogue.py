"""The catalogue of reconstruction_losses mistakes: every known wrong way to compute the four losses, each run on
the checker's model, SAE and tokens (about a hundred forward passes, so the checker builds it only for a wrong
answer)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from tests.part6_lm_saes_ablation_variants import loss_readings
from tests.part6_lm_saes_extra_mistakes import recovered_extra, recovered_per_sequence
from tests.part6_lm_saes_hints import loss_increases
from tests.part6_lm_saes_mistakes import loss_mistakes
from tests.part6_lm_saes_probes import hooks_reused, recovered_formulas, splice_slips
from tests.part6_lm_saes_variants import splice_variants


def loss_catalogue(model: Any, sae: Any, tokens: Tensor, exp: dict[str, float]) -> dict[str, list]:
    """(code, hint, value) mutants for each of the keys clean, spliced, zero_ablated and recovered."""
    mistakes = loss_mistakes(model, sae, tokens, exp)
    for key, extra in loss_increases(exp).items():
        mistakes[key] += extra
    mistakes["recovered"] += recovered_extra(exp) + recovered_per_sequence(model, sae, tokens)
    mistakes["recovered"] += recovered_formulas(
        exp["clean"], exp["spliced"], exp["zero_ablated"], mistakes["recovered"]
    )
    mistakes["spliced"] += hooks_reused(model, sae, tokens) + splice_slips(model, sae, tokens)
    mistakes["spliced"] += splice_variants(model, sae, tokens)
    for readings in loss_readings(model, sae, tokens):
        for key, extra in readings.items():
            mistakes[key] = mistakes[key] + extra
    return mistakes
