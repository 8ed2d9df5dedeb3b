"""Part 8, CausalImportance: where the nonlinearity sits and whether each subcomponent's MLP is its own.

* GELU applied to another piece (w_in, b_in or w_out) where the pre-activation w_in h + b_in belongs (exact
  values), and, generically, a hidden layer that is affine in h (a probe sweeping h), naming only the GELU
  placements whose mutants reproduce it (read back);
* a subcomponent-independence probe: one subcomponent's parameters (or its row of V) changed, and the importances
  of the other subcomponents (or instances) must not move: a matmul or a sum over another axis mixes them.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis

Mistakes = list[tuple[str, str, Tensor]]
ROLES = "z = Σ_j w_out GELU(w_in h + b_in) + b_out"


def ci_gelu_placements(p: dict[str, Tensor], alpha: float) -> Mistakes:
    """GELU applied to one parameter (w_in, b_in or w_out) instead of the pre-activation w_in h + b_in."""
    with torch.no_grad():
        return [
            (
                "gelu_misplaced",
                f"your values are those of GELU applied to {k} (F.gelu({k})) and none on the pre-activation: the "
                f"hidden layer is then linear in h. {ROLES}: GELU of the whole w_in h + b_in",
                mis.ci_reference({**p, k: F.gelu(p[k])}, alpha, "no_gelu")[0],
            )
            for k in ("w_in", "b_in", "w_out")
        ]


def gelu_read_back(p: dict[str, Tensor], lower: Tensor, alpha: float) -> list[str]:
    """The GELU placements whose mutant reproduces `lower` on the checker's inputs: GELU left out, or applied to
    two or three of w_in, b_in, w_out at once (one alone is `ci_gelu_placements`)."""
    found = []
    with torch.no_grad():
        for n in (0, 2, 3):
            for ks in itertools.combinations(("w_in", "b_in", "w_out"), n):
                value = mis.ci_reference({**p, **{k: F.gelu(p[k]) for k in ks}}, alpha, "no_gelu")[0]
                if value.shape == lower.shape and torch.allclose(lower, value, rtol=1e-4, atol=1e-5):
                    on = f"{' and '.join(ks)} ({', '.join(f'F.gelu({k})' for k in ks)}), none on w_in h + b_in"
                    found.append(f"GELU applied to {on}" if ks else "GELU left out")
    return found


def _probe(CausalImportance: type, p: dict[str, Tensor], device: torch.device) -> torch.nn.Module:
    n_inst, C, d_ci = p["w_in"].shape
    probe = CausalImportance(n_inst, C, d_ci, alpha=0.05, device=device)
    with torch.no_grad():
        for k in mis.CI_PARAMS[1:]:
            getattr(probe, k).copy_(p[k])
    return probe


def ci_affine_hidden(CausalImportance: type, p: dict[str, Tensor], lower: Tensor, alpha: float = 0.05) -> Mistakes:
    """The hidden activation read off a probe (w_in = 1, b_in = 0, w_out = 0.1 / d_ci, b_out = 0.5, h = t swept over
    [-3, 3]: z = 0.5 + 0.1 · act(t) stays inside [0, 1]) that is affine in t, k·t + c. A cause is named only when
    its mutant reproduces the learner's values on the checker's inputs (`gelu_read_back`); else the hint says what
    was seen and which placements were ruled out, with the probe slope each would give where it matches."""
    n_inst, _, d_ci = p["w_in"].shape
    t = torch.linspace(-3, 3, 25, device=lower.device, dtype=lower.dtype)
    try:
        probe = _probe(CausalImportance, p, lower.device)
        w_out = 0.1 / d_ci
        with torch.no_grad():
            for k, v in {"w_in": 1.0, "b_in": 0.0, "w_out": w_out, "b_out": 0.5}.items():
                getattr(probe, k).fill_(v)
            a = torch.zeros(25, n_inst, p["a"].shape[-1], device=lower.device, dtype=lower.dtype)
            a[..., 0] = t[:, None]
            V = torch.zeros_like(p["V"])
            V[..., 0] = 1.0
            act = ((torch.as_tensor(probe(a, V)[0]) - 0.5) / 0.1).reshape(25, -1)[:, 0]
    except Exception:  # a probe only
        return []
    X = torch.stack([t, torch.ones_like(t)], 1)
    k, c = torch.linalg.lstsq(X, act[:, None]).solution.flatten().tolist()
    if (act - (k * t + c)).abs().max() > 1e-4 or torch.allclose(act, F.gelu(t), atol=1e-4) or abs(k) < 1e-6:
        return []
    g = lambda x: float(F.gelu(torch.tensor(x)))
    slopes = {"GELU missing (or on b_in alone, 0 here)": 1.0, f"GELU on w_in: GELU(1) = {g(1.0):.4g}": g(1.0)}
    slopes[f"GELU on w_out: GELU(w_out) / w_out = {g(w_out) / w_out:.4g}"] = g(w_out) / w_out
    seen = (
        f"your MLP's hidden layer is affine in h: on a probe with w_in = 1, b_in = 0 and h = t swept over [-3, 3] its "
        f"activation is {k:.4g}·t {c:+.4g}, not GELU(t)"
    )
    fits = [name for name, s in slopes.items() if abs(k - s) < 1e-3 * max(1.0, abs(s))]
    seen += f" (its slope is the one {' or '.join(fits)} gives on this probe)" if fits else ""
    if found := gelu_read_back(p, lower, alpha):
        hint = (
            f"{seen}. Possible causes, read back on the checker's inputs (each reproduces your values): "
            f"{'; or '.join(found)}. {ROLES}: GELU of the whole w_in h + b_in"
        )
    else:
        hint = (
            f"{seen}. Read back on the checker's inputs, GELU left out or applied to w_in, b_in, w_out "
            f"(or any two of them, or all three) in place of the pre-activation gives other values than yours: "
            f"the cause isn't one of those. {ROLES}: GELU of the whole w_in h + b_in"
        )
    return [("hidden_affine", hint, lower)]


def ci_subcomponents_mixed(CausalImportance: type, p: dict[str, Tensor], lower: Tensor) -> Mistakes:
    """Changes one subcomponent's slice (instance i0, subcomponent c0) of each of V, w_in, b_in, w_out, b_out in a
    probe module with the checker's parameters: only that subcomponent's importances may change."""
    n_inst, C, _ = p["w_in"].shape
    i0, c0 = n_inst - 1, C - 2
    try:
        probe = _probe(CausalImportance, p, lower.device)
        with torch.no_grad():
            base = torch.as_tensor(probe(p["a"].clone(), p["V"].clone())[0]).detach()
            for k in mis.CI_PARAMS:
                q = {key: p[key].clone() for key in mis.CI_PARAMS}
                q[k][i0, c0] += (
                    0.7 * torch.linspace(-1, 1, q[k][i0, c0].numel(), device=lower.device).view_as(q[k][i0, c0]) + 0.5
                )
                probe = _probe(CausalImportance, q, lower.device)
                out = torch.as_tensor(probe(p["a"].clone(), q["V"])[0]).detach()
                moved = (out - base).abs() > 1e-5  # [batch inst C]
                moved[:, i0, c0] = False
                if not bool(moved.any()):
                    continue
                others = sorted({int(c) for c in moved[:, i0].nonzero()[:, 1]} - {c0})
                insts = sorted({int(i) for i in moved.any(-1).nonzero()[:, 1]} - {i0})
                parts = [f"subcomponents {others} of instance {i0}"] * bool(others) + [f"instances {insts}"] * bool(
                    insts
                )
                where = " and ".join(parts)
                hint = (
                    f"changing subcomponent {c0}'s {k}[{i0}, {c0}] alone changes the importances of {where}: each "
                    "subcomponent's MLP is its own, z[..., i, c] = Σ_j w_out[i, c, j] GELU(w_in[i, c, j] h[..., i, c] "
                    "+ b_in[i, c, j]) + b_out[i, c], elementwise and summed over the hidden axis j alone. A matmul "
                    "(hidden @ w_out.mT), an einsum with a shared letter, or a sum over another axis mixes them"
                )
                return [("subcomponents_mixed", hint, lower)]
    except Exception:  # a probe only
        return []
    return []


def ci_structure(CausalImportance: type, p: dict[str, Tensor], lower: Tensor, alpha: float) -> Mistakes:
    placed = ci_gelu_placements(p, alpha)
    if any(torch.allclose(lower, m, rtol=1e-4, atol=1e-5) for *_, m in placed):
        return placed  # named exactly: the generic probes would only repeat it
    return (
        placed
        + ci_subcomponents_mixed(CausalImportance, p, lower)
        + ci_affine_hidden(CausalImportance, p, lower, alpha)
    )
