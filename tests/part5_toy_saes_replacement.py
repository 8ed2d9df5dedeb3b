"""Part 5 resample_advanced: the picks are independent draws WITH replacement, also when there are fewer dead
latents than examples.

The main check has more dead latents (900) than examples (400), so replacement is forced there and an implementation
that only asks for it when it must (`replacement=n_dead > batch_size`) passes. This small call has 3 dead latents per
instance and a batch of 16 in which one example is far from b_dec (‖h - b_dec‖ = 1000, the others 1): its weight
L_rec² ∝ ‖h - b_dec‖⁴ is 1e12 times each other example's, so each independent pick is that example except with
probability 15e-12, and all 6 picks are except with probability < 1e-10 (union bound). Drawn without replacement,
the 2nd and 3rd picks of an instance must be other examples. Nothing fires (b_enc = -1e6), so h_rec = b_dec and the
residual h - h_rec of a correct variant is h - b_dec too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
from tests.checking import fail

N_INST, D_IN, D_SAE, BATCH, N_DEAD, SCALE, BIG = 2, 5, 6, 16, 3, 0.37, 1000.0
COS = 1 - 1e-4  # float32 rounding of a unit vector's cosine with itself is ~1e-7; random 5-d directions: far below


def dominant_example(impl: Callable, device: torch.device, call_resampler: Callable, reference_sae: Callable) -> None:
    """Every dead latent's new decoder row must be the dominant example's normalised h - b_dec. Rows that are
    distinct examples of the batch (the dominant one at most once per instance) name sampling without replacement."""
    sae = reference_sae(ref.ToySAE, device, n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, sparsity_coeff=0.1)
    gen = torch.Generator().manual_seed(47)
    b_dec = sae.b_dec.detach().clone()
    drawn: list[Tensor] = []

    def generate(batch_size: int) -> Tensor:
        u = torch.nn.functional.normalize(torch.randn(int(batch_size), N_INST, D_IN, generator=gen), dim=-1)
        u[0] *= BIG  # example 0 dominates the loss in every instance
        h = (b_dec.cpu() + u).to(device)
        drawn.append(h.clone())
        return h

    sae.generate_batch = generate
    with torch.no_grad():
        sae.b_enc.fill_(-1e6)  # |(h - b_dec) @ W_enc| <= 1000 · ‖column‖ (≈ 1 here): nothing fires
    frac = torch.zeros(4, N_INST, D_SAE, device=device)
    frac[:, :, : D_SAE - N_DEAD] = 0.2  # the last N_DEAD latents of each instance are dead
    call_resampler(lambda: impl(sae, frac, SCALE, BATCH))
    if not drawn:
        return
    rows = sae.W_dec.detach()[:, D_SAE - N_DEAD :]  # [inst n_dead d_in]
    picks: list[list[tuple[int, int]]] = []  # per instance: (draw, example) of each new row, or (-1, -1)
    for k in range(N_INST):
        found = []
        for r in rows[k]:
            hit = [
                (t, int(i))
                for t, X in enumerate(drawn)
                for i in ((torch.nn.functional.normalize(X[:, k] - b_dec[k], dim=-1) @ r) > COS).nonzero()[:, 0]
            ]
            found.append(hit[0] if hit else (-1, -1))
        picks.append(found)
    if all(i == 0 for found in picks for _, i in found):
        return
    if all(i >= 0 and len(set(found)) == len(found) for found in picks for _, i in found):
        fail(
            f"with {N_DEAD} dead latents per instance and a batch of {BATCH} in which one example's loss is 1e12 "
            "times every other's (weight L_rec²), the correct draws pick that example for every dead latent (all but "
            "surely), but your new decoder rows are distinct examples in each instance (examples "
            f"{[[i for _, i in found] for found in picks]}): the picks were drawn without replacement, which the "
            "main check, with more dead latents than examples, cannot show",
            "draw the examples independently, with replacement, whatever the number of dead latents: "
            "torch.multinomial(weights, n_dead, replacement=True)",
            code="sampled_without_replacement",
        )
    fail(
        f"with {N_DEAD} dead latents per instance and a batch of {BATCH} in which one example's loss is 1e12 times "
        "every other's (weight L_rec²), the new decoder rows should all be that example's normalised h - b_dec, but "
        f"they are examples {[[i for _, i in found] for found in picks]} of the batch (-1: no example of it)",
        "pick each dead latent's example independently, with probability ∝ L_rec² (with replacement), and use "
        "normalise(h[picked, inst] - b_dec[inst])",
        code="dominant_example_missed",
    )
