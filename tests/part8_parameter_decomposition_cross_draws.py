"""sample_masks: a delta mask that reuses another matrix's random numbers (round BA).

The per-matrix check (`diagnosis.check_delta`) compares delta mask l with matrix l's own draws r; a delta mask taken
from another matrix's draws (an index slip, `rs[l + 1][..., 0]`, `rs[-1 - l][..., -1]`) passes it, and its law and
the correlation checks (which pair matrix 0's delta with matrix 0's draws only) see nothing either. Here every
delta mask is compared with every column of every other matrix's r, by `diagnosis.shared_draws` (its tolerance
holds for any pair of columns: a correct answer's independent draws agree with probability 0).
"""

from __future__ import annotations

from torch import Tensor

from tests.outcomes import fail
from tests.part8_parameter_decomposition_diagnosis import shared_draws


def delta_from_other_matrix(rs: list[Tensor], deltas: list[Tensor]) -> None:
    """Fails (delta_reuse) when delta mask l [n inst] equals a column of r [n inst C] of another matrix m ≠ l."""
    for layer, d in enumerate(deltas):
        d = d.detach()
        for other, r in enumerate(rs):
            cols = [c for c in range(r.shape[-1]) if other != layer and shared_draws(d, r[..., c])]
            if cols:
                fail(
                    f"delta mask {layer} reuses the random numbers of matrix {other}'s masks (those of its "
                    f"subcomponent {cols[0]}): r = (mask - g) / (1 - g) of matrix {other} and delta mask {layer} "
                    "are the same draws",
                    f"draw the delta mask separately for every matrix (torch.rand(g.shape[:-1]) for each g), not "
                    f"from another matrix's draws: an index slip (rs[l + 1], rs[-1 - l] or rs[{other}] where "
                    "matrix l's own fresh draw belongs)?",
                    code="delta_reuse",
                )
