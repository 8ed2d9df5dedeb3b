"""steer_with_latent read back when the hook's change to the activation differs between positions: a few hook edits
that make the change vary (a function after the addition, a mask from the activation or from f, a scale read from
f or from the activation's norm, a rescaling to the activation's norm, the SAE splice without its error term), each
computed on the activation the learner's hook was given; only those that give exactly the hook's output are named."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

V = "coeff · W_dec[latent]"


def steer_candidates(a: Tensor, d: Tensor, coeff: float, sae: Any, latent: int) -> list[tuple[str, Tensor]]:
    """(the hook in words, its output on act = a); a, d in float64, a [... d_mlp]."""
    v = coeff * d
    s = a + v
    f = sae.encode(a.to(sae.W_dec.dtype)).double()[..., latent : latent + 1]
    recon = sae.decode(sae.encode(a.to(sae.W_dec.dtype))).double()
    norm = a.norm(dim=-1, keepdim=True)
    return [
        (f"F.gelu(act + {V}) (GELU applied after the addition)", F.gelu(s)),
        (f"torch.relu(act + {V}) (ReLU applied after the addition)", torch.relu(s)),
        (f"act + {V} · (act > 0) (the vector added only on the positive neurons)", a + v * (a > 0)),
        (f"act + {V} · (act < 0) (the vector added only on the negative neurons)", a + v * (a < 0)),
        (f"act + {V} · (f > 0) (added only where the latent fires)", a + v * (f > 0)),
        (f"act + {V} · (f <= 0) (added only where the latent does not fire)", a + v * (f <= 0)),
        (f"act + f · {V} (the vector scaled by the latent's activation f)", a + f * v),
        (f"act + ‖act‖ · {V} (the vector scaled by the activation's norm)", a + norm * v),
        (
            f"(act + {V}) rescaled to ‖act‖ (the steered activation normalised to the old norm)",
            s * norm / s.norm(dim=-1, keepdim=True).clamp_min(1e-12),
        ),
        (f"sae.decode(sae.encode(act)) + {V} (the SAE splice, without the error act − x̂)", recon + v),
        (
            f"sae.decode(sae.encode(act + {V})) (the steered activation passed through the SAE)",
            sae.decode(sae.encode(s.to(sae.W_dec.dtype))).double(),
        ),
    ]


def steer_read_back(a: Tensor, b: Tensor, d: Tensor, coeff: float, sae: Any, latent: int) -> list[str]:
    """The candidate hooks whose output on the learner's input `a` is the learner's output `b`."""
    return [
        what
        for what, value in steer_candidates(a, d, coeff, sae, latent)
        if value.shape == b.shape and torch.allclose(value, b, rtol=1e-4, atol=1e-4)
    ]
