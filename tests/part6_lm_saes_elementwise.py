"""Part 6 read-backs that name what a wrong output IS before any guess at a cause: an elementwise function of the
steering row or an elementwise max/min against it, an affine transform of the logit effect (centred, divided by
its std or norm), a firing threshold that is a statistic of the activations, fewer than k top activations that
are the right ones' first entries, and a weight of the shared model edited in place before the learner's code
raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import CheckFailed, fail
from tests.checking import _describe_error as describe_error


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-4)


def steer_elementwise_row(v: Tensor, d: Tensor, coeff: float) -> None:
    """v (one vector added at every position) an elementwise function of the decoder row d: named as read back."""
    fix = "steer with coeff · W_dec[latent], the decoder row as it is (every entry, with its sign), at every position"
    for what, value in (
        ("coeff · relu(W_dec[latent]) (only the row's positive entries)", coeff * F.relu(d)),
        ("coeff · W_dec[latent].clamp(max=0) (only the row's negative entries)", coeff * d.clamp(max=0)),
        ("coeff · |W_dec[latent]| (the row's absolute values)", coeff * d.abs()),
        ("coeff · sign(W_dec[latent]) (the row's signs)", coeff * d.sign()),
        ("relu(coeff · W_dec[latent])", F.relu(coeff * d)),
        ("coeff · W_dec[latent]² (the row squared elementwise)", coeff * d * d),
    ):
        if _close(v, value):
            fail(
                f"your hook adds the same vector v at every position, and v = {what}, not coeff · W_dec[latent]",
                fix + ": no elementwise function (relu, clamp, abs, sign) applied to it",
                code="steer_elementwise",
            )


def steer_max_min(a: Tensor, b: Tensor, d: Tensor, coeff: float) -> None:
    """The hook's output b an elementwise max or min of the activation a and the steering vector coeff · d."""
    v = (coeff * d).expand_as(a)
    for what, value in (
        ("torch.maximum(act, coeff · W_dec[latent])", torch.maximum(a, v)),
        ("torch.minimum(act, coeff · W_dec[latent])", torch.minimum(a, v)),
    ):
        if _close(b, value):
            fail(
                f"your hook returns {what}, an elementwise max/min (a clamp) against the steering vector, so its "
                "change to the activation differs between positions (0 wherever the activation already wins)",
                "steering is additive: act + coeff · W_dec[latent], the same vector added at every position whatever "
                "the activation is",
                code="steer_clamped",
            )


def logit_affine(out: Tensor, expected: Tensor) -> None:
    """out = α · expected + β over the whole vocabulary (α ≠ 1 or β ≠ 0): say what the transform is, and name
    a standardisation (centred, divided by the std or the norm) when α, β reproduce it."""
    y, e = out.detach().double().flatten().cpu(), expected.detach().double().flatten().cpu()
    if y.shape != e.shape or not torch.isfinite(y).all() or e.std() < 1e-12:
        return
    basis = torch.stack([e, torch.ones_like(e)], -1)
    alpha, beta = torch.linalg.lstsq(basis, y[:, None]).solution[:, 0].tolist()
    if (basis @ torch.tensor([alpha, beta], dtype=torch.float64) - y).norm() > 1e-4 * (y.norm() + 1e-12):
        return
    if abs(alpha - 1) < 1e-3:
        return  # no change, or a plain shift: the generic offset reading names the shift (e.g. by the max)
    # centring is told only when the mean is not ~0 (a centred W_U gives effects of mean ~0: nothing to tell)
    meaningful = abs(float(e.mean())) > 1e-3 * float(e.abs().max())
    centred = meaningful and abs(beta + alpha * float(e.mean())) < 1e-4 * abs(alpha) * float(e.abs().max())
    c = e - e.mean() if centred else e
    scales = [
        ("its standard deviation (std)", float(c.std())),
        ("its population std (unbiased=False)", float(c.std(unbiased=False))),
        ("its norm", float(c.norm())),
        ("its largest absolute value", float(c.abs().max())),
    ]
    scale = next((w for w, s in scales if s > 0 and abs(alpha * s - 1) < 1e-3), None)
    if not centred and not scale and abs(beta) < 1e-4 * abs(alpha) * float(e.abs().max()):
        return  # a plain factor: the generic scale diagnosis names it by the inputs' sizes
    if centred and scale:
        what = f"the right effect minus its mean over the vocabulary, divided by {scale} (standardised / z-scored)"
    elif centred:
        what = f"the right effect minus its mean over the vocabulary, times {alpha:.4g} (centred)"
    elif scale:
        what = f"the right effect divided by {scale} (rescaled as a normalisation or z-score does)"
    else:
        what = f"{alpha:.4g} × the right effect {'+' if beta >= 0 else '−'} {abs(beta):.4g} (an affine transform)"
    fail(
        f"your logit effect is {what}",
        "return the raw logit changes W_dec[latent] @ W_out[0] @ W_U: no centring, scaling or standardising "
        "(standardise only when comparing or plotting)",
        code="logit_affine",
    )


def statistic_threshold(err: CheckFailed, out: Tensor, acts: Tensor, batch_size: int) -> None:
    """acts [n_seq seq d_sae] (positions that count): frequencies equal to the fraction of tokens above a threshold
    that is a statistic of the activations (a mean or median), not 0: named as read back."""
    a = acts.detach().double().cpu()
    y = out.detach().double().cpu()
    per_batch = torch.cat(
        [
            a[s : s + batch_size].mean((0, 1), keepdim=True).expand_as(a[s : s + batch_size])
            for s in range(0, a.shape[0], batch_size)
        ]
    )
    thresholds = [
        ("the token's mean activation over the latents (acts.mean(-1))", a.mean(-1, keepdim=True)),
        ("the token's median activation over the latents", a.median(-1, keepdim=True).values),
        ("the latent's mean activation over all tokens", a.mean((0, 1), keepdim=True)),
        ("the latent's mean activation over its batch", per_batch),
        ("the mean of all activations", a.mean()),
    ]
    for what, t in thresholds:
        for op, compare in ((">", torch.gt), (">=", torch.ge)):
            if torch.allclose(y, compare(a, t).double().mean((0, 1)), atol=1e-6, rtol=0):
                fail(
                    err.message,
                    f"your frequencies are exactly the fraction of tokens with act {op} {what}: a threshold that is a "
                    "statistic of the activations. A latent fires when its activation is > 0 (acts > 0), nothing "
                    "higher",
                    code="statistic_threshold",
                )


def too_few_prefix(values: Tensor, right: Tensor, k: int) -> str:
    """' : they are the first n of the right top k' (n = len(values)) when they are, else ''."""
    n = values.shape[0]
    if n == 0 or not torch.allclose(values.detach().double().cpu(), right[:n].double().cpu()):
        return ""
    return f": they are exactly the first {n} of the right top k" + (" (k − 1: one entry short)" * (n == k - 1))


def edited_then_raised(modules: tuple, originals: list[dict[str, Tensor]], err: Exception, restore: Callable) -> Any:
    """The learner's code raised after editing a weight of the shared model/SAE in place: restore and name it."""
    zeroed = [
        f"{type(m).__name__}.{n}"
        for m, o in zip(modules, originals, strict=True)
        for n, t in m.state_dict().items()
        if t.shape == o[n].shape and not torch.equal(t, o[n]) and not t.any()
    ]
    changed = restore(modules, originals)
    if not changed or isinstance(err, CheckFailed):
        return
    how = ": it is all zeros now (zeroed in place, e.g. W.zero_() to ablate)" if changed[0] in zeroed else ""
    fail(
        f"{describe_error(err).message}\n(before raising, your function changed {changed[0]} in place{how}"
        + (f"; and {len(changed) - 1} more" * (len(changed) > 1))
        + ")",
        "ablate in a hook (return torch.zeros_like(act) at the hook point), never by editing the model's weights: "
        "an edited weight changes every later run, and the losses computed after it (a zero difference)",
        code="modified_weights",
    )
