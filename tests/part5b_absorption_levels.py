"""part5b read-backs added after held-out round BB (fresh55), each a family rather than one mistake:

* absorption_fraction compared with a positive level where the contract reads 0 ("off" is acts == 0, "active" is
  acts > 0): the right fraction is the same when every activation is multiplied by 1000, so a fraction that becomes
  right then is a level test (a tolerance such as acts < 1e-2); scaling only the parents' own latents, or only the
  others, says which test it is.
* batch_topk: a known mistake combined with a ReLU of the kept values (two slips at once), named as both.
* matryoshka_loss that renormalises the (already normalised) decoder rows: its loss does not move when
  W_dec_normalized is doubled, while the right one does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from solutions import part5b_absorption as ref
from tests import part5b_absorption_probes as probes
from tests.checking import CheckFailed, fail
from tests.part5b_absorption_fractions import carrier_rule
from tests.part5b_absorption_mistakes import topk_candidates
from tests.part5b_absorption_mistakes import topk_diagnosis as _listed_topk_diagnosis

_BARE = ("values", "one_slice")  # failures no catalogue entry or relation named
SCALE = 1000.0


# --------------------------------------------------------------------------------------------
# absorption_fraction: activations read against a level other than 0
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def absorption_unnamed(impl: Callable, device: torch.device | str, th: float, inputs: tuple) -> Iterator[None]:
    """The random-inputs check: a bare failure is first read for a carrier rule, then for an activity level."""
    try:
        with probes.unnamed("values", lambda _: carrier_rule(impl, device, th)):  # a carrier set, named
            yield
    except CheckFailed as err:
        if err.code in _BARE:
            activity_tolerance(err, impl, inputs, th)
        raise


def activity_tolerance(err: CheckFailed, impl: Callable, inputs: tuple, th: float) -> None:
    """Fail (code activity_tolerance) when the learner's fraction becomes the right one once every activation is
    multiplied by SCALE (the right fraction only reads acts == 0 and acts > 0, so it does not move); name the test
    (the parent latent's "off", or the carriers' "active") when scaling only those latents fixes it."""
    features, acts, W_dec, W_feat, parent_of = inputs
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, list(parent_of), th)

    def right_with(scaled: Tensor) -> bool:
        try:
            out = impl(
                features.clone(), scaled.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=th
            )
        except Exception:  # a probe that fails says nothing
            return False
        if not isinstance(out, Tensor) or out.shape != expected.shape:
            return False
        return bool(torch.allclose(out.detach().to(expected.dtype), expected, rtol=1e-4, atol=1e-5))

    if not right_with(acts * SCALE):
        return
    cos = torch.einsum(
        "isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), W_feat / W_feat.norm(dim=1, keepdim=True)
    )
    own = torch.zeros(acts.shape[1:], dtype=torch.bool, device=acts.device)  # [inst d_sae]: the parents' latents
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        own[torch.arange(acts.shape[1], device=acts.device), cos[:, :, p].argmax(-1)] = True
    parent_side = right_with(torch.where(own, acts * SCALE, acts))
    carrier_side = right_with(torch.where(own, acts, acts * SCALE))
    if parent_side and not carrier_side:
        which = (
            "the parent latent counts as off only when its activation is exactly 0 (acts == 0): yours also calls a "
            "small positive activation off (a tolerance such as acts < 1e-2, or <= eps)"
        )
    elif carrier_side and not parent_side:
        which = (
            "a carrier counts as active as soon as its activation is > 0: yours needs it above a positive level "
            "(acts > eps, or a tolerance)"
        )
    else:
        which = (
            "small positive activations are read as off: 'off' is acts == 0 and 'active' is acts > 0, with no "
            "tolerance or level"
        )
    fail(
        f"{err.message}. With every activation multiplied by {SCALE:g} (which leaves the right fraction as it is: only "
        "acts == 0 against acts > 0 matters) your fraction becomes the right one",
        f"your code compares activations with a positive level instead of 0: {which}",
        code="activity_tolerance",
    )


# --------------------------------------------------------------------------------------------
# batch_topk: a listed mistake and a ReLU at once
# --------------------------------------------------------------------------------------------
def topk_diagnosis(impl: Callable, out: Tensor, pre: Tensor, k: int, others: list) -> tuple[str, str] | None:
    """The listed diagnosis; else a listed mistake whose kept negatives were also zeroed (a ReLU or clamp inside)."""
    found = _listed_topk_diagnosis(impl, out, pre, k, others)
    if found is not None or not bool((pre < 0).any()):
        return found
    for code, hint, value in topk_candidates(pre, k):
        clamped = value.clamp_min(0)
        if code != "relu_inside" and not torch.equal(clamped, value) and torch.allclose(out, clamped):
            return code, (
                f"two slips: {hint}; and the negative entries that were kept are zeroed too (a ReLU or clamp inside "
                "batch_topk: keep them, encode applies the ReLU before it)"
            )
    return None


# --------------------------------------------------------------------------------------------
# matryoshka_loss: the decoder rows normalised again
# --------------------------------------------------------------------------------------------
def matryoshka_terms(err: CheckFailed, impl: Callable, out: Tensor, args: tuple, sizes: tuple[int, ...]) -> None:
    """Fail (code decoder_renormalised) when the learner's loss is unchanged with W_dec_normalized doubled (the right
    one changes: every reconstruction doubles); else the prefix-terms read-back."""
    acts, W, b, h = args
    try:
        doubled = impl(acts.clone(), 2 * W, b.clone(), h.clone(), sizes)
    except Exception:  # a probe that fails says nothing
        doubled = None
    moved = not torch.allclose(ref.matryoshka_loss(acts, 2 * W, b, h, sizes), ref.matryoshka_loss(acts, W, b, h, sizes))
    same = isinstance(doubled, Tensor) and doubled.shape == out.shape and moved
    if same and torch.allclose(doubled.detach(), out.detach(), rtol=1e-5, atol=1e-6):
        fail(
            f"{err.message}; it stays the same when W_dec_normalized is doubled, while the right loss changes "
            "(every reconstruction doubles)",
            "your code normalises the decoder rows again: W_dec_normalized already has unit rows, so decode "
            "with it as given, acts[..., :m] · W_dec_normalized[:, :m] (a norm over another axis, such as the "
            "latents of a prefix, changes the rows)",
            code="decoder_renormalised",
        )
    probes.loss_terms(err, out, args, sizes)
