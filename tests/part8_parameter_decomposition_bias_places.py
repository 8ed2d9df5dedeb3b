"""CausalImportance: a bias added in the wrong place, or in a second place as well.

z = Σ_j w_out GELU(w_in h + b_in) + b_out has two biases and, per subcomponent, four places they could go: on h
before the MLP, inside the GELU, on the hidden layer after it, and after the sum over the hidden units. Each bias
shape fits some of them ([inst C] broadcasts over the hidden axis after an unsqueeze; [inst C hidden] only on the
hidden axis). The checker moves each bias to each other place that fits it, or adds it there too, and names the
placement that reproduces the learner's importances. Placements the main catalogue has (b_in outside the GELU, b_in
on w_in, b_out missing or inside the sum) keep their own codes there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

RIGHT = "z = Σ_j w_out GELU(w_in h + b_in) + b_out: b_in inside the GELU, b_out once, after the sum over j"

# b_out [inst C]: where it can go (each place a function of h, b_out -> (h, pre-GELU term, post-GELU term, z term))
B_OUT_PLACES = {
    "h": "on h before the MLP (h + b_out, then w_in (h + b_out) + b_in)",
    "pre": "inside the GELU (GELU(w_in h + b_in + b_out))",
    "hidden": "on the hidden layer after the GELU (GELU(...) + b_out, then times w_out)",
}


def _z(p: dict[str, Tensor], h_add: Tensor | float, pre_add: Tensor | float, hid_add: Tensor | float, z_add) -> Tensor:
    h = torch.einsum("bid,icd->bic", p["a"], p["V"]) + h_add
    hidden = F.gelu(h[..., None] * p["w_in"] + p["b_in"] + pre_add) + hid_add
    return (hidden * p["w_out"]).sum(-1) + z_add


def ci_bias_places(p: dict[str, Tensor]) -> list[tuple[str, str, Tensor]]:
    """(code, hint, forward values) for b_out moved to, or also added at, another place."""
    with torch.no_grad():
        bo = p["b_out"]
        out = []
        for place, what in B_OUT_PLACES.items():
            adds = {"h": (bo, 0.0, 0.0), "pre": (0.0, bo[..., None], 0.0), "hidden": (0.0, 0.0, bo[..., None])}[place]
            for also in (True, False):
                if place == "hidden" and not also:
                    continue  # the catalogue's b_out_inside: (GELU(...) + b_out) · w_out, b_out moved there
                z = _z(p, *adds, bo if also else 0.0)
                how = f"also added {what}, besides after the sum" if also else f"added {what} instead of after the sum"
                hint = f"your importances match b_out {how}: a bias in the wrong place. {RIGHT}"
                out.append(("bias_place", hint, z.clamp(0, 1)))
        return out
