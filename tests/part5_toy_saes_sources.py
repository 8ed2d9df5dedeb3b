"""Part 5: what a learner's output was computed from, read back on inputs where every source differs.

* generate_batch: an output in feature space ([batch inst feats]), or such an output cut to its first d_in values
  (the toy model's reconstruction, W^T W x before or after its b_final / ReLU, the features themselves), named as
  that quantity rather than as "differs at k positions".
* resample_advanced: the main check's inputs are axis-aligned prototypes (the same axis in every instance), so after
  normalising, instance 0's example and instance k's give the same direction and an example read from the wrong
  instance doesn't show there. A second, small call draws continuous random inputs that differ per instance (and a
  different b_dec per instance): each new decoder row must then be the normalised (h[i, k] - b_dec[k]) of SOME example
  i of its own instance k in a batch the resampler drew. The examples are random, so this compares behaviourally
  (membership), never with the reference's draws. No latent fires there (b_enc = -100), so the residual h - h_rec
  of a correct variant is h - b_dec too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
from tests import part5_toy_saes_diagnosis as D
from tests.checking import fail

# The probe's sizes: distinct from each other and from the main check's (4, 4, 1000, 400) and the fallback's
N_INST, D_IN, D_SAE, BATCH, SCALE = 3, 6, 8, 13, 0.37
SHORT = 0.15  # the last instance's inputs: b_dec + 0.15·(z + offset), ‖·‖ ≈ 0.55 < 1 (> 1 needs χ²₆ ≫ 40)
COS = 1 - 1e-4  # float32 rounding of a unit vector's cosine with itself is ~1e-7; random directions in 6-d: far below


def feature_space_output(h: Tensor, drawn: list[Tensor], model: Any) -> None:
    """Name generate_batch's output when it is a feature-space quantity: of shape [batch inst feats] (the diagnosis
    module's catalogue) or cut to [batch inst d_in] (its first d_in feature values)."""
    n_feats, d_in = model.W.shape[-1], model.W.shape[-2]
    if h.shape[2] == n_feats:
        D.feature_space_output(h, drawn, model)
    if h.shape[2] != d_in or not h.is_floating_point() or d_in >= n_feats:
        return
    W, b = model.W.detach(), model.b_final.detach()
    with torch.no_grad():
        for x in drawn:
            pre = torch.einsum("bid,idf->bif", torch.einsum("bif,idf->bid", x, W), W)
            for value, what, code in (
                (pre, "W^T W x (the toy model's output before its b_final and ReLU: W applied twice)", "decoded"),
                (pre + b, "W^T W x + b_final (the toy model's output before its ReLU)", "model_output"),
                (model(x).detach(), "the toy model's forward, ReLU(W^T W x + b_final)", "model_output"),
                (x, "the features themselves (never mapped by W)", "features_returned"),
            ):
                if value.shape[:2] == h.shape[:2] and torch.allclose(h.detach(), value[..., :d_in], 1e-4, 1e-5):
                    fail(
                        f"generate_batch returned the first d_in = {d_in} of the n_features = {n_feats} values of "
                        f"{what}, not the hidden vector",
                        "stop at the hidden layer: h = einsum(features, self.model.W, 'batch inst feats, inst d_in "
                        "feats -> batch inst d_in'); the toy model's forward maps h back to feature space",
                        code,
                    )


def own_instance_examples(
    impl: Callable, device: torch.device, call_resampler: Callable, reference_sae: Callable
) -> None:
    """Second call of resample_advanced on continuous random inputs that differ per instance: every new decoder row
    of instance k must be a normalised h[i, k] - b_dec[k] of an example i it drew. Otherwise name which instance's
    input and which instance's b_dec it is (code other_instance_input), or describe it."""
    sae = reference_sae(ref.ToySAE, device, n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, sparsity_coeff=0.1)
    gen = torch.Generator().manual_seed(23)
    offset = torch.linspace(-1.0, 1.5, N_INST * D_IN).reshape(N_INST, D_IN)  # away from b_dec, per instance
    drawn: list[Tensor] = []

    def generate(batch_size: int) -> Tensor:
        h = torch.randn(int(batch_size), N_INST, D_IN, generator=gen) + offset
        h[:, -1] = b_dec[-1].cpu() + SHORT * h[:, -1]  # the last instance's ‖h - b_dec‖ < 1: a norm floor shows
        h = h.to(device)
        drawn.append(h.clone())
        return h

    b_dec = sae.b_dec.detach().clone()
    sae.generate_batch = generate
    with torch.no_grad():  # nothing fires, so h_rec = b_dec: the residual h - h_rec (a correct variant) is h - b_dec
        sae.b_enc.fill_(-100.0)
    frac = torch.zeros(5, N_INST, D_SAE, device=device)
    for k in range(N_INST):
        frac[:, k, : k + 1] = 0.2  # instance k: latents 0..k alive, the rest dead (a different count per instance)
    before = sae.W_dec.detach().clone()
    call_resampler(lambda: impl(sae, frac, SCALE, BATCH))
    if not drawn:
        return
    X = torch.cat(drawn)  # [n inst d_in]: every example of every draw
    after = sae.W_dec.detach()
    # directions[m, n]: normalised (input of instance m) - (b_dec of instance n), [m n examples d_in]
    directions = torch.nn.functional.normalize(X.transpose(0, 1)[:, None] - b_dec[None, :, None], dim=-1)
    sources, unmatched, short = [], [], []
    for k in range(N_INST):
        for j in range(k + 1, D_SAE):
            r = after[k, j]
            if torch.equal(r, before[k, j]) or not torch.isfinite(r).all() or abs(float(r.norm()) - 1) > 1e-3:
                short += _scaled_example(r, directions[k, k], X[:, k] - b_dec[k])
                continue  # unchanged or not a unit row: the main check's business
            hit = ((directions @ r) > COS).any(-1).nonzero().tolist()  # [(m, n)] that give this row
            if [k, k] in hit:
                continue
            (sources if hit else unmatched).append((k, j, hit))
    if sources:
        firsts = [(k, hit[0][0], hit[0][1]) for k, _, hit in sources]  # (instance, input's instance, b_dec's)
        read, minus = _whose([(k, m) for k, m, _ in firsts], "inputs"), _whose([(k, n) for k, _, n in firsts], "b_dec")
        k, j, hit = sources[0]
        fail(
            f"on inputs that differ per instance, {len(sources)} new decoder rows are {read} minus {minus}, "
            f"normalised (e.g. instance {k}, latent {j}: h[i, {hit[0][0]}] - b_dec[{hit[0][1]}]): "
            + (
                "the b_dec subtracted belongs to another instance"
                if read.startswith("their own")
                else "the picked examples were read from the wrong instance of the batch"
            ),
            "read each picked example from its own instance: W_dec[inst, latent] = normalise(h[picked, inst] - "
            "b_dec[inst]) (the sampling weights, the example index, the input and b_dec must all belong to the same "
            "instance)",
            code="other_instance_input",
        )
    if unmatched:
        k, j, _ = unmatched[0]
        r = after[k, j]
        best = float((directions[k, k] @ r).max())
        fail(
            f"on inputs that differ per instance, {len(unmatched)} new decoder rows are not the normalised "
            f"h[i, k] - b_dec[k] of any example i of their own instance k in the batches your resampler drew (nor of "
            f"another instance's example): e.g. instance {k}, latent {j}, whose closest such direction has cosine "
            f"{best:.4f}",
            "each new decoder row is one drawn example of its own instance, minus that instance's b_dec, normalised: "
            "W_dec[inst, latent] = normalise(h[picked, inst] - b_dec[inst]). Possible causes: a mix of examples or "
            "of instances, an input from another batch than the one drawn, or b_dec changed before it was read",
            code="not_an_example",
        )
    short_rows(short)


def _scaled_example(row: Tensor, directions: Tensor, examples: Tensor) -> list[tuple[float, float]]:
    """[(‖h - b_dec‖, row length)] when a non-unit row points along one drawn example of its own instance, else []."""
    length = float(row.norm())
    if not 1e-6 < length < 1e6:
        return []
    cos = directions @ (row / length)
    i = int(cos.argmax())
    return [(float(examples[i].norm()), length)] if float(cos[i]) > COS else []


def short_rows(short: list[tuple[float, float]]) -> None:
    """Rows along their own example but not of unit length (where ‖h - b_dec‖ < 1, as on the probe's last instance):
    read back the floor c of a length ‖x‖ / max(‖x‖, c), otherwise say what was seen (an eps added, ‖x‖ / (‖x‖ + eps),
    big enough to show here already fails the main check's unit rows, whose examples have ‖x‖ >= 1)."""
    if not short:
        return
    x, n = torch.tensor(short, dtype=torch.float64).T
    seen = (
        f"on a second call whose last instance has inputs with ‖h - b_dec‖ < 1, {len(short)} new decoder rows "
        f"point along their example's "
        f"h - b_dec but have lengths {float(n.min()):.4g} to {float(n.max()):.4g}, not 1"
    )
    fix = "normalise to unit length: v = (h - b_dec) / ‖h - b_dec‖ (F.normalize; any guard against 0 must be tiny)"
    c = x / n  # a length ‖x‖ / max(‖x‖, c) gives c = ‖x‖ / length on every short example
    if float(c.max() - c.min()) <= 1e-3 * float(c.mean()):
        floor = f"{float(c.mean()):.4g}"
        fail(
            f"{seen}: each is (h - b_dec) / max(‖h - b_dec‖, {floor})",
            f"{fix}; a floor of {floor} shrinks every example shorter than it",
            "dec_norm_floor",
        )
    fail(seen, fix, "dec_not_unit")


def _whose(pairs: list[tuple[int, int]], what: str) -> str:
    """'their own instance's X' / "instance m's X" / "other instances' X" for (row's instance, source instance)."""
    if all(k == m for k, m in pairs):
        return f"their own instance's {what}"
    sources = {m for _, m in pairs}
    return f"instance {sources.pop()}'s {what}" if len(sources) == 1 else f"other instances' {what}"
