"""Read-back for part 5a's TopK `k_ignored` reading: which fixed k (if any) reproduces the learner's acts_post.

The probe sees the same number of latents kept with cfg.k = 2 and 3. That alone does not say why; the read-back
runs the reference with every k' from 1 to d_sae on the probe's own SAEs and batches and names a k fixed at k'
only when the reference with k' gives the learner's acts_post for both configs. Fields of the config that hold the
value k' are reported as an observation (same value), and "the largest value as the cut-off" only when k' = 1 (a
top-1, which is what that cut-off computes)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

import solutions.part5a_sae_architectures as ref_a
from tests.part5_toy_saes import twin

# SAE, batch, learner's acts_post: one per cfg.k tried by the probe
Run = tuple[torch.nn.Module, Tensor, Tensor]


def fixed_k(runs: list[Run]) -> int | None:
    """The k' in 1..d_sae for which the reference forward gives each run's acts_post (within 1e-5), or None."""
    d_sae = runs[0][0].cfg.d_sae
    for k in range(1, d_sae + 1):
        ok = True
        for sae, h, acts in runs:
            ref = twin(sae, ref_a.TopKToySAE)
            ref.cfg = dataclasses.replace(sae.cfg, k=k)
            with torch.no_grad():
                want = ref(h)[2]
            if not isinstance(acts, Tensor) or acts.shape != want.shape:
                return None
            if not torch.allclose(acts.detach().to(want.dtype), want, rtol=1e-4, atol=1e-5):
                ok = False
                break
        if ok:
            return k
    return None


def k_ignored_hint(runs: list[Run]) -> str:
    """The hint for `k_ignored`: a fixed k named only when it reproduces acts_post, otherwise what was seen."""
    cfg = runs[0][0].cfg
    k = fixed_k(runs)
    if k is None:
        return (
            f"no fixed k from 1 to d_sae = {cfg.d_sae} reproduces your acts_post (the reference run with that k "
            "gives other values), so it is not simply a k fixed in the code: the number kept must follow the config, "
            "topk(self.cfg.k, dim=-1), and the kept values are the pre-activations after ReLU"
        )
    same = [f"cfg.{f.name}" for f in dataclasses.fields(cfg) if f.name != "k" and getattr(cfg, f.name) == k]
    also = f" ({k} is also the value of {', '.join(same)})" if same else ""
    top1 = (
        "; a cut-off at the largest value (top.values[..., :1] or values[..., 0]) instead of the k-th largest "
        "(top.values[..., -1:]) computes the same top-1"
        if k == 1
        else ""
    )
    return (
        f"your acts_post equals the reference's with k = {k} for both cfg.k = 2 and 3 (read back on the same "
        f"inputs): k is {k} whatever the config{also}{top1}. The number kept must follow the config: "
        "topk(self.cfg.k, dim=-1)"
    )
