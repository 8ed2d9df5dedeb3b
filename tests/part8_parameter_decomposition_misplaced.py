"""Part 8: a quantity in the wrong place, read back generically.

* `param_in_place`: CausalImportance with one MLP parameter standing where another belongs (b_out as the hidden
  bias, w_in as w_out, ...), the replaced one unused;
* `per_term_factor`: ablation losses off by a factor that depends on (inst, k) only, read back and compared with
  named per-term quantities (‖T_k‖², ‖T_k‖, ...); an unnamed factor is described, not diagnosed;
* `output_dim_dropped`: ablation losses that leave one output dim out of the mean (`d[..., :-1]`);
* `part_scaled`: masked_product with its pieces part (or delta part) scaled by a named count (the pieces averaged);
* `power_after_sum`: the minimality penalty with the power applied after the sum over C with eps
  added once to the sum ((Σ_c (g + eps))^p and the batch mean first are named in the catalogue).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis

Mistakes = list[tuple[str, str, Tensor]]
CI_HINT = "z = Σ_j w_out GELU(w_in h + b_in) + b_out: each parameter in its own place"


def ci_params_in_place(p: dict[str, Tensor], alpha: float = 0.05) -> Mistakes:
    """The importances (forward values: alpha only shapes the backward) with one parameter in another's place."""
    out: Mistakes = []
    with torch.no_grad():
        for dst in ("w_in", "b_in", "w_out", "b_out"):
            for src in ("w_in", "b_in", "w_out", "b_out"):
                value = p[src] if p[src].dim() == p[dst].dim() else p[src][..., None] if dst != "b_out" else None
                if src == dst or value is None:
                    continue
                hint = (
                    f"your importances are what the MLP gives with {src} used in {dst}'s place ({dst} unused: a "
                    f"copy-paste slip?): {CI_HINT}"
                )
                out.append(("param_in_place", hint, mis.ci_reference({**p, dst: value.expand_as(p[dst])}, alpha)[0]))
    return out


def _ablation_right(chain, terms: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    y = chain(x)
    d = torch.stack([mis.run_with_first(chain, chain.weights[0] - terms[:, k], x) - y for k in range(terms.shape[1])])
    return d, d.pow(2).mean(-1).permute(2, 0, 1)  # Δy [k batch inst d_out], losses [inst k batch]


def ablation_factors(chain, terms: Tensor, x: Tensor, out: Tensor) -> Mistakes:
    """Per-(inst, k) factors named, one output dim left out, and an unnamed per-term factor described."""
    found: Mistakes = []
    with torch.no_grad():
        d, right = _ablation_right(chain, terms, x)
        norm2 = terms.pow(2).sum((-2, -1))  # [inst k]
        named = {
            "‖T_k‖² (the squared Frobenius norm of terms[:, k])": norm2,
            "‖T_k‖ (the Frobenius norm of terms[:, k])": norm2.sqrt(),
            "mean(T_k²) (the mean square entry of terms[:, k])": norm2 / terms[0, 0].numel(),
        }
        for name, q in named.items():
            for how, f in (("divided by", 1 / q), ("multiplied by", q)):
                hint = (
                    f"your losses are the expected ones {how} {name}: the loss is the plain mean over output dims "
                    "of (y_ablated - chain(x))², not normalised by (nor weighted with) the size of the term removed"
                )
                found.append(("per_term_factor", hint, right * f[..., None]))
        n = d.shape[-1]
        for j in (n - 1, 0):
            keep = [i for i in range(n) if i != j]
            for what, value in (
                ("mean", d[..., keep].pow(2).mean(-1)),
                ("sum / d_out", d[..., keep].pow(2).sum(-1) / n),
            ):
                hint = (
                    f"your losses leave output dim {j} out ({what} of Δy² over the other {n - 1} dims, e.g. "
                    f"{'d[..., :-1]' if j == n - 1 else 'd[..., 1:]'}): average over all {n} output dims"
                )
                found.append(("output_dim_dropped", hint, value.permute(2, 0, 1)))
        out = out.detach().to(right.dtype)
        if out.shape == right.shape and right.abs().gt(1e-12).all():
            f = (out * right).sum(-1) / right.pow(2).sum(-1)  # [inst k], least squares over the batch
            fits = torch.allclose(out, right * f[..., None], rtol=1e-4, atol=1e-7)
            if fits and not torch.allclose(f, torch.ones_like(f), rtol=1e-4) and f.std() > 1e-3 * f.abs().mean():
                hint = (
                    "your losses are the expected ones times a factor that depends only on the instance and the term "
                    f"(the same for every example; factors for instance 0: {[round(float(v), 4) for v in f[0, :4]]}"
                    "...), none of the sizes of T_k it was compared with. Possible causes: a per-term normalisation "
                    "or weighting, or the ablated run using a rescaled term. The loss is the plain mean over output "
                    "dims of (y_ablated - chain(x))², with W_0 - terms[:, k] as the first matrix"
                )
                found.append(("per_term_factor", hint, out))
    return found


def product_parts_scaled(p: dict[str, Tensor]) -> Mistakes:
    out: Mistakes = []
    with torch.no_grad():
        inner = torch.einsum("bid,icd->bic", p["a"], p["V"])
        pieces = torch.einsum("bic,ioc->bio", inner * p["mask"], p["U"])
        delta = p["delta_mask"][..., None] * mis.mm(p["a"], p["W"] - p["U"] @ p["V"])
        C, d_in = p["U"].shape[-1], p["V"].shape[-1]
        counts = {"C (the number of subcomponents)": C, "d_in": d_in, "d_out": p["U"].shape[-2]}
        counts |= {"n_inst": p["a"].shape[1], "batch": p["a"].shape[0]}
        for name, c in counts.items():
            for s, how in ((1 / c, f"divided by {c}"), (c, f"multiplied by {c}")):
                avg = " (the C pieces averaged instead of summed?)" if c == C and s < 1 else ""
                for part, value in (
                    ("U (mask ⊙ V a)", s * pieces + delta),
                    ("delta_mask · (W - U V) a", pieces + s * delta),
                ):
                    hint = (
                        f"your output has {part} {how}, {c} = {name}{avg if part[0] == 'U' else ''}: the output is "
                        "U (mask ⊙ V a) + delta_mask · (W - U V) a, the pieces summed with their masks, unscaled"
                    )
                    out.append(("part_scaled", hint, value))
    return out


def minimality_power_after_sum(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    with torch.no_grad():
        forms = {
            "(Σ_c g + eps)^p, the power applied after the sum over C": lambda g: (g.sum(-1) + eps).pow(p),
        }
        return [
            (
                "power_after_sum",
                f"your value is {name}: raise each importance to the power p first, Σ_c (g + eps)^p "
                "((Σ g)^p ≠ Σ g^p for p ≠ 1), then sum over C and the matrices, average over the batch",
                sum(f(g) for g in ci).mean(0).sum(),
            )
            for name, f in forms.items()
        ]
