"""Part 5a slips in auxk_loss and the metrics, as catalogue entries (code, hint, value) built from the checker's own
inputs: the AuxK latents chosen once for the whole batch, decoded with the wrong rows or picked without the dead
mask; L0 counting every latent (0 ** 0 == 1); the FVE's batch mean divided by another size, or its shortcut total
Σh² - batch·Σ_d mean² with another factor; feature recovery matched one-to-one; dead latents found with a
tolerance (torch.isclose). `with_tiny_alive` gives dead_latent_fraction's input latents alive only at tiny values.

Each entry is the right computation with one thing changed, so a correct implementation never meets one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part5a_sae_architectures_metric_measures as MM
from tests import part5a_sae_architectures_metric_readings as MR
from tests import part5a_sae_architectures_metric_variants as MV

Mutant = tuple[str, str, Tensor]


def _decode(dead_acts: Tensor, W_dec: Tensor) -> Tensor:
    return torch.einsum("bis,isd->bid", dead_acts, W_dec)


def auxk_slips(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list[Mutant]:
    """auxk_loss with the same dead latents for every example (ranked by a batch statistic), the top values
    decoded with the first k_aux decoder rows (no scatter), the dead mask replaced by this example's pre <= 0, and
    (`MV.auxk_k_from_instance0`) k taken from instance 0's dead count."""
    entries: list[Mutant] = []
    for name, score in (("mean", pre.mean(0)), ("max", pre.amax(0)), ("sum of the ReLU", pre.relu().sum(0))):
        top = torch.where(dead, score, -torch.inf).topk(k_aux, dim=-1)
        mask = torch.zeros_like(dead).scatter(-1, top.indices, top.values.isfinite())
        value = (residual - _decode(torch.where(mask, pre, torch.zeros_like(pre)), W_dec)).pow(2).mean(-1)
        hint = (
            f"your loss uses the same dead latents for every example (as if ranked once by their batch {name} of "
            "pre): it differs only where an instance has more than k_aux dead latents. The top k_aux dead latents "
            "are chosen per example: torch.where(dead, pre, -inf).topk(k_aux, dim=-1) over d_sae of each example"
        )
        entries.append(("auxk_shared_latents", hint, value))
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    unscattered = torch.einsum("bik,ikd->bid", values, W_dec[:, :k_aux])
    hint = (
        "you decoded the top k_aux values with W_dec_normalized's first k_aux rows: each value belongs to the latent "
        "top.indices names. Scatter the values back to their latents' positions (torch.zeros_like(pre).scatter(-1, "
        "top.indices, values)) before decoding, or gather the rows top.indices"
    )
    entries.append(("auxk_rows_unscattered", hint, (residual - unscattered).pow(2).mean(-1)))
    top = torch.where(pre <= 0, pre, -torch.inf).topk(k_aux, dim=-1)
    vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
    hint = (
        "your loss ignores the `dead` argument: it picks the latents not firing on this example (pre <= 0 or "
        "pre < 0). "
        "Dead means dead[inst, latent] (silent for many steps), the same for every example: choose among "
        "torch.where(dead, pre, -inf)"
    )
    entries.append(("auxk_dead_ignored", hint, (residual - _decode(acts, W_dec)).pow(2).mean(-1)))
    return (
        entries
        + MV.auxk_k_from_instance0(pre, residual, dead, W_dec, k_aux)
        + MV.auxk_unit_values(pre, residual, dead, W_dec, k_aux)
    )


def l0_every_latent(acts: Tensor) -> list[Mutant]:
    """L0 counting every latent, zeros included: (|a| ** 0).sum(-1) (0 ** 0 is 1 in torch) or (a >= 0).sum(-1); and
    (`MV.l0_int_cast`) counting after an integer cast."""
    d = acts.shape[-1]
    hint = (
        f"{d} = d_sae: every latent counted, zeros included (0 ** 0 is 1 in torch; a >= 0 comparison). Count the "
        "non-zero ones: (acts != 0).sum(-1) or (acts > 0), then mean over the batch"
    )
    every = torch.full(acts.shape[1:2], float(d), dtype=acts.dtype)
    return [
        ("counted_every_latent", hint, every),
        *MV.l0_int_cast(acts),
        *MR.l0_readings(acts),
        *MM.l0_soft_count(acts),
    ]


def _fve(h: Tensor, h_rec: Tensor, total: Tensor) -> Tensor:
    return 1 - (h - h_rec).pow(2).sum((0, 2)) / total


def fve_slips(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """FVE with the batch mean h.sum(0) / s for each size s other than the batch, and the shortcut total
    Σh² - c·Σ_d mean_d² with c = 1 or another size instead of the batch; and `MV.fve_ratio_slips`."""
    n, inst, d = h.shape
    others = {"d_in": d, "n_inst": inst, "batch - 1": n - 1, "batch·d_in": n * d}
    entries: list[Mutant] = []
    for name, s in others.items():
        if s == n:
            continue
        total = (h - h.sum(0, keepdim=True) / s).pow(2).sum((0, 2))
        hint = (
            f"your batch mean divides h.sum(0) by {name} ({s}), not by the batch size ({n}): a mean with the wrong "
            "count. Use h.mean(0) (h.sum(0) / h.shape[0]) for the mean over the batch"
        )
        entries.append(("mean_divisor", hint, _fve(h, h_rec, total)))
    sq, means = h.pow(2).sum((0, 2)), h.mean(0).pow(2).sum(-1)
    for name, c in {"1": 1, "d_in": d, "n_inst": inst, "batch - 1": n - 1}.items():
        if c == n:
            continue
        told = "forgotten" if name == "1" else f"replaced by {name} ({c})"
        hint = (
            f"your total is Σh² - Σ_d mean_d² with the × batch factor {told}: the shortcut is Σ(h - mean)² = Σh² - "
            f"batch · Σ_d mean_d² (batch = {n}). Or compute (h - h.mean(0)).pow(2).sum over batch and d_in directly"
        )
        entries.append(("shortcut_factor", hint, _fve(h, h_rec, sq - c * means)))
    entries += MV.fve_residual_slips(h, h_rec) + MM.fve_centre(h, h_rec)
    return entries + MV.fve_ratio_slips(h, h_rec) + MR.fve_readings(h, h_rec)


def _greedy(cos: Tensor) -> Tensor:
    out = cos.amax(1).clone()  # features left unmatched keep their plain max
    for i in range(cos.shape[0]):
        c = cos[i].clone()
        for _ in range(min(c.shape)):
            s, f = divmod(int(c.argmax()), c.shape[1])
            out[i, f] = cos[i, s, f]
            c[s, :], c[:, f] = -torch.inf, -torch.inf
    return out


def recovery_one_to_one(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """feature_recovery with latents matched to features one-to-one (greedy, and the optimal assignment when scipy
    is there): each latent serves one feature only."""
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), f_hat)
    hint = (
        "you matched latents to features one-to-one (each latent used for one feature only): the recovery of a "
        "feature is the max over ALL latents of the cosine, and one latent may serve several features. Take "
        "cos.max(dim=latents) with no matching"
    )
    values = [_greedy(cos)]
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        linear_sum_assignment = None
    if linear_sum_assignment is not None:
        best = cos.amax(1).clone()
        for i in range(cos.shape[0]):
            rows, cols = linear_sum_assignment(cos[i].detach().cpu().double().numpy(), maximize=True)
            best[i, torch.as_tensor(cols)] = cos[i, torch.as_tensor(rows), torch.as_tensor(cols)]
        values.append(best)
    return [("one_to_one_matching", hint, v) for v in values]


def with_tiny_alive(acts: Tensor) -> Tensor:
    """acts with three ordinary live latents made alive only at tiny values (peaks 6e-8, 2e-8 and 4e-13, their
    squares still normal floats, so a norm over the batch stays non-zero): a tolerance such as torch.isclose's atol
    1e-8 counts the last dead (it fires on half the batch, so no firing-rate rule does), a cast to float16 (0 below
    2**-25 ≈ 3e-8) the last two, a tolerance of float32's eps (1.2e-7) or a small mean all three. The right
    fractions are unchanged (they stay alive)."""
    acts[:, 0, 4], acts[:, 2, 2], acts[:, 1, 3] = 0.0, 0.0, 0.0
    acts[[7, 40, 41], 0, 4] = torch.tensor([2e-8, 1e-12, 1e-9], dtype=acts.dtype, device=acts.device)
    acts[[30, 31], 1, 3] = torch.tensor([6e-8, 5e-8], dtype=acts.dtype, device=acts.device)
    acts[1::2, 2, 2] = 1e-15  # firing on half the batch: not a rarely firing latent
    acts[200, 2, 2] = 4e-13
    # instance 2: latent 2 zero on the first and last example, latent 0 alive on the last one too (mean still below
    # 1e-9): checking only those two examples counts 1 of 7 dead, no firing-rate rule (0) or max index (2) does
    acts[-1, 2, 2], acts[-1, 2, 0] = 0.0, 3e-7
    return MR.edge_only_latents(acts)


def isclose_hint(also: str) -> str:
    """The hint for dead_latent_fraction with |a| <= 1e-8 counted as zero (torch.isclose / numpy.isclose's default
    atol); `also`: the other tolerances the same output stands for."""
    return (
        f"latents with |a| ≤ 1e-8 counted dead (torch.isclose(acts, 0) or np.isclose, default atol 1e-8; {also}): "
        "the contract says exactly zero on every example; compare with == 0 or use > 0"
    )
