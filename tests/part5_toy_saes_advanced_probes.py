"""resample_advanced's second calls, each on a small SAE of its own, in the order the checker runs them: an instance
with no live latent (the "1.0" fallback), inputs that differ per instance, a batch where one example dominates
(sampling with replacement), an instance with tiny but non-zero losses (not skipped), and a tied SAE (W_dec a view of
W_enc: the decoder row written through the property, the scaled encoder column written last)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tests import part5_toy_saes_fallbacks as FB
from tests import part5_toy_saes_replacement as RP
from tests import part5_toy_saes_small_scale as SC
from tests import part5_toy_saes_sources as S
from tests import part5_toy_saes_tied_lengths as TL


def advanced_probes(impl: Callable, device: torch.device, call_resampler: Callable, reference_sae: Callable) -> None:
    for probe in (FB.all_dead_instance, S.own_instance_examples, RP.dominant_example, SC.tiny_loss_instance):
        probe(impl, device, call_resampler, reference_sae)
    TL.tied_advanced(impl, device, call_resampler, reference_sae)
