"""CausalImportance: a weight of the MLP moved across the GELU.

z = Σ_j w_out GELU(w_in h + b_in) + b_out: w_in and b_in act before the GELU, w_out after it. Each weight moved to
the other side of the GELU gives another function of h; the checker computes each and names the one that reproduces
the learner's importances (w_in after the GELU keeps its own code in the probes' catalogue).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_layer_reads as reads

RIGHT = "z = Σ_j w_out GELU(w_in h + b_in) + b_out: w_out multiplies each hidden unit after the GELU"


def ci_weight_places(p: dict[str, Tensor]) -> list[tuple[str, str, Tensor]]:
    """Forward values of the lower output (clamp(z, 0, 1)) with w_out inside the GELU, on the whole pre-activation
    or on h alone."""
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])[..., None]
        w_in, b_in, w_out, b_out = (p[k] for k in ("w_in", "b_in", "w_out", "b_out"))
        places = {
            "GELU(w_out · (w_in h + b_in))": F.gelu((w_in * h + b_in) * w_out),
            "GELU(w_out · w_in h + b_in)": F.gelu(w_out * w_in * h + b_in),
        }
        return [
            (
                "w_out_in_gelu",
                f"w_out is inside the GELU, Σ_j {name}: it weights each hidden unit after the nonlinearity. {RIGHT}",
                (hidden.sum(-1) + b_out).clamp(0, 1),
            )
            for name, hidden in places.items()
        ] + reads.ci_nonlinearity_places(p)  # the GELU after the sum, the hard sigmoid per hidden unit
