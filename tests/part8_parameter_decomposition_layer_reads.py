"""Read-backs of which part of the model a loss looks at: the matrices a faithfulness sum covers, the activation a
reconstruction loss compares, the direction an ablation removes, and where CausalImportance's nonlinearities sit.

Each candidate is computed from the checker's own inputs and only named when it reproduces the learner's values.
"""

from __future__ import annotations

from itertools import combinations

import einops
import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def faithfulness_subsets(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """The loss over a proper subset of the matrices (a zip over weights[1:], a loop stopping one short), divided by
    the whole N or by the subset's own count."""
    with torch.no_grad():
        se = [(W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)]
        sizes, L = [W[0].numel() for W in weights], len(weights)
        out = []
        for r in (L - 1,):  # one matrix left out (fewer kept: already the catalogue's one-matrix readings)
            for kept in combinations(range(L), r):
                left = [n for n in range(L) if n not in kept]
                part = sum(se[n] for n in kept)
                names = ", ".join(f"weights[{n}]" for n in left)
                seen = (
                    f"your value is the loss summed over matrices {list(kept)} only: {names} left out of the sum "
                    f"(e.g. a zip over weights[1:] or a range stopping one short)"
                )
                fix = f"; every one of the L = {L} matrices' W_l - U_l V_l belongs in the sum"
                out.append(("matrix_skipped", seen + f", divided by N = {sum(sizes)}" + fix, (part / sum(sizes)).sum()))
                n_kept = sum(sizes[n] for n in kept)
                out.append(
                    ("matrix_skipped", seen + f", divided by their own count {n_kept}" + fix, (part / n_kept).sum())
                )
        return out


def recon_hidden_activation(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """(full, layerwise) comparing the activation that matrix j multiplies (chain.run(...)[1][j], j >= 1) instead of
    the model's output."""
    with torch.no_grad():
        L = len(chain.weights)

        def acts(layers: set[int]) -> list[Tensor]:
            def layer_fn(layer: int, a: Tensor) -> Tensor:
                q = {"a": a, "W": chain.weights[layer], "U": p["U"][layer], "V": p["V"][layer]}
                if layer in layers:
                    return mis.product_reference(
                        {**q, "mask": p["masks"][layer], "delta_mask": p["delta_masks"][layer]}
                    )
                return einops.einsum(a, q["W"], "... i d, i o d -> ... i o")

            return chain.run(x, layer_fn)[1]

        target, full, each = chain.run(x)[1], acts(set(range(L))), [acts({n}) for n in range(L)]
        out = []
        for j in range(1, L):
            mse = lambda got, j=j: (got[j] - target[j]).pow(2).mean((0, 2)).sum()
            hint = (
                f"your losses are those of comparing the activation that matrix {j} multiplies (chain.run(x, "
                f"layer_fn)[1][{j}], a hidden activation) with the unmasked one: the loss compares the model's "
                "output, chain(x, layer_fn) against chain(x)"
            )
            out.append(("hidden_activation", hint, torch.stack([mse(full), sum(mse(a) for a in each) / L])))
        return out


def ablation_input_direction(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """W_0 (I - P_k) a: term k's input direction(s) projected out of a instead of W_0 - T_k: P_k from the top right
    singular vector of terms[:, k], or from its whole row space."""
    with torch.no_grad():
        base, out = chain(x), []
        _, S, Vh = torch.linalg.svd(terms, full_matrices=False)  # Vh [inst K r d_in]
        rank = (S.amax(-1, keepdim=True) * 1e-6 < S).sum(-1)  # [inst K]
        reads = {
            "its top right singular vector v_k (W_0 (I - v_k v_kᵀ) a)": Vh[..., :1, :],
            "its whole row space (W_0 (I - V_kᵀ V_k) a)": Vh
            * (torch.arange(Vh.shape[-2]) < rank[..., None])[..., None],
        }
        for name, rows in reads.items():
            losses = []
            for k in range(terms.shape[1]):
                P = rows[:, k].transpose(-1, -2) @ rows[:, k]  # [inst d_in d_in]

                def layer_fn(layer: int, a: Tensor, P: Tensor = P) -> Tensor:
                    if layer == 0:
                        a = a - einops.einsum(a, P, "b i d, i e d -> b i e")
                    return einops.einsum(a, chain.weights[layer], "b i d, i o d -> b i o")

                losses.append((chain(x, layer_fn) - base).pow(2).mean(-1))  # [batch inst]
            hint = (
                f"your losses are those of projecting term k's input direction out of a, along {name}, instead of "
                "removing the term from the weights: the ablated run multiplies a by W_0 - terms[:, k]"
            )
            out.append(("input_direction", hint, torch.stack(losses).permute(2, 0, 1)))
        return out


def ci_nonlinearity_places(p: dict[str, Tensor]) -> Mistakes:
    """Lower outputs (clamp(·, 0, 1)) with the GELU after the w_out sum, or the hard sigmoid on each hidden unit."""
    RIGHT = "z = Σ_j w_out GELU(w_in h + b_in) + b_out, and the hard sigmoids act on z once"
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])[..., None]
        w_in, b_in, w_out, b_out = (p[k] for k in ("w_in", "b_in", "w_out", "b_out"))
        lin = ((w_in * h + b_in) * w_out).sum(-1)
        after = "the GELU is applied after the w_out sum (a linear hidden layer, GELU on z): "
        out = [
            ("gelu_after_sum", after + "GELU(Σ_j w_out (w_in h + b_in)) + b_out. " + RIGHT, F.gelu(lin) + b_out),
        ]
        unit = w_out * F.gelu(w_in * h + b_in)
        d_ci = unit.shape[-1]
        per = "the hard sigmoid is applied to each hidden unit's contribution and the results summed over d_ci: "
        for b_name, summed in {
            f"b_out / {d_ci} inside each": unit.add(b_out[..., None] / d_ci).clamp(0, 1).sum(-1),
            "b_out added after the sum": unit.clamp(0, 1).sum(-1) + b_out,
        }.items():
            for outer, value in (("", summed), (", clamped again", summed.clamp(0, 1))):
                out.append(("sigmoid_per_unit", f"{per}{b_name}{outer}. {RIGHT}", value))
        return [(c, hint, v.clamp(0, 1) if c == "gelu_after_sum" else v) for c, hint, v in out]
