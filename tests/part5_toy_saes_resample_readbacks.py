"""Part 5 resampling read-backs: live decoder rows changed only in length (a renormalisation of every row), live
encoder columns changed alone (a write over the whole W_enc), new directions on the cube's corners (a sign taken
before normalising), and which instances a loop left alone (one short of the end, after an all-zero instance, or
below a loss threshold)."""

from __future__ import annotations

import math
import traceback
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def renormalised_live_rows(sae: Any, before: dict, expected: Tensor, active: Tensor) -> None:
    """Live latents whose decoder rows changed in length only (same direction), encoder and bias untouched."""
    W, W0 = sae.W_dec.detach(), before["W_dec"]
    live = ~expected & active[:, None] & (W != W0).any(-1)
    if not live.any() or (sae.W_enc.detach() != before["W_enc"]).any(1)[live].any():
        return
    new, old = W[live].double(), W0[live].double()
    cos = (new * old).sum(-1) / (new.norm(dim=-1) * old.norm(dim=-1)).clamp_min(1e-30)
    if (cos < 1 - 1e-6).any():
        return
    n_new, n_old = new.norm(dim=-1), old.norm(dim=-1)
    unit = bool(torch.allclose(n_new, torch.ones_like(n_new), atol=1e-4))
    fail(
        f"{int(live.sum())} latents that are not dead had their decoder rows changed in length only: same direction, "
        f"norms {n_old.min():.3g}..{n_old.max():.3g} before, {n_new.min():.3g}..{n_new.max():.3g} after (read back); "
        "their encoder columns are untouched",
        (
            "every decoder row was renormalised to unit length (e.g. W_dec /= W_dec.norm(dim=-1, keepdim=True) after "
            "resampling)"
            if unit
            else "every decoder row was rescaled"
        )
        + ": write only the dead latents' rows; the live rows keep their length (W_dec_normalized normalises them "
        "in the forward pass)",
        code="live_rows_renormalised",
    )


def corner_directions(rows: Tensor) -> None:
    """Every new direction with all |entries| equal to 1/√d_in: {±1}^d_in normalised (a sign taken first)."""
    d_in = rows.shape[-1]
    if rows.numel() and ((rows.abs() - 1 / math.sqrt(d_in)).abs() < 1e-4).all():
        fail(
            f"every new direction has all its entries equal to ±1/√d_in = ±{1 / math.sqrt(d_in):.4g} (read back): "
            f"they lie on the {2**d_in} corners of the cube, not spread over the sphere",
            "a sign was taken before normalising (e.g. torch.randn(...).sign(), or randint(0, 2) · 2 - 1): normalise "
            "the Gaussian vector itself, v = torch.randn(...); v / v.norm(dim=-1, keepdim=True)",
            code="sign_directions",
        )


def skipped_instances(changed: Tensor, expected: Tensor, active: Tensor, q: Tensor | None) -> None:
    """Whole instances left alone while the others are right: name the loop reading that reproduces the set."""
    n = expected.shape[0]
    skipped = [k for k in range(n) if expected[k].any() and not changed[k].any()]
    if not skipped or not all(torch.equal(changed[k], expected[k]) for k in range(n) if k not in skipped):
        return
    zero = [k for k in range(n) if not active[k]]
    causes = []
    if skipped == [n - 1]:
        causes.append(
            f"a loop that stops one short (e.g. range(n_inst - 1)), so instance {n - 1}, the last, is never reached"
        )
    if skipped == [0]:
        causes.append("a loop that starts at 1 (e.g. range(1, n_inst)), so instance 0 is never reached")
    if zero and skipped == [k for k in range(zero[0] + 1, n) if expected[k].any()]:
        causes.append(
            f"a `return` or `break` where `continue` was meant at instance {zero[0]}, whose losses are all 0 "
            "(skip only that instance)"
        )
    observed = ""
    if q is not None:
        top = q.double().amax(-1) / q.shape[-1]  # each instance's largest L_reconstruction
        lo, hi = top[skipped], top[[k for k in range(n) if active[k] and k not in skipped]]
        observed = f"; the largest L_reconstruction there is {[round(float(v), 4) for v in lo]}, elsewhere ≥ "
        observed += f"{float(hi.min()):.3g}" if hi.numel() else "-"
        if (lo > 0).all() and (hi.numel() == 0 or lo.max() < hi.min()):
            causes.append(
                "an instance skipped when its losses are small (a threshold, e.g. `if w.max() < 1e-3: continue`), "
                "where only an instance whose losses are ALL zero has nothing to sample"
            )
    fail(
        f"instances {skipped} were left entirely alone (their dead latents too); the others are right" + observed,
        ("possible causes: " + "; or ".join(causes) if len(causes) > 1 else causes[0])
        if causes
        else "every instance is resampled, each from its own losses",
        code="instances_skipped",
    )


def latent_index_error(err: IndexError, sae: Any, batch_size: int) -> None:
    """An index out of bounds on the batch axis, where the learner's indexing tensor holds latent indices (values
    up to d_sae - 1, beyond the batch): read back from the failing frame's integer tensors."""
    text = str(err)
    if f"with size {batch_size}" not in text:
        return
    frames = [f for f, _ in traceback.walk_tb(err.__traceback__) if "torch" not in f.f_code.co_filename]
    if not frames:
        return
    d_sae = sae.cfg.d_sae
    for name, v in frames[-1].f_locals.items():
        if (
            isinstance(v, Tensor)
            and v.dtype in (torch.int64, torch.int32)
            and v.ndim == 1
            and v.numel()
            and batch_size + 1 < int(v.max()) < d_sae
            and int(v.min()) >= 0
        ):
            fail(
                f"your resampler raised IndexError: {text.splitlines()[0]}; `{name}` holds values {int(v.min())}.."
                f"{int(v.max())} (read back), past the batch (batch_size = {batch_size}) but within d_sae = {d_sae}",
                f"`{name}` holds latent indices (e.g. the dead latents' positions) used to pick examples from the "
                "batch: index h with the sampled example indices (torch.multinomial's output) instead",
                code="latent_index_as_example",
            )


def live_encoder_columns(sae: Any, before: dict, expected: Tensor, active: Tensor) -> None:
    """The decoder rows and encoder biases changed at exactly the dead latents, but encoder columns of live latents
    changed too: the encoder write reached every latent. Read back: the live columns scaled by one factor (W_enc
    multiplied as a whole), or rebuilt from the decoder rows (W_enc set from W_dec transposed for every latent)."""
    enc, enc0 = sae.W_enc.detach().transpose(-1, -2), before["W_enc"].transpose(-1, -2)  # [inst d_sae d_in]
    dec_changed = (sae.W_dec.detach() != before["W_dec"]).any(-1) & active[:, None]
    bias_changed = (sae.b_enc.detach() != before["b_enc"]) & active[:, None]
    live = (enc != enc0).any(-1) & active[:, None] & ~expected
    if not live.any() or not torch.equal(dec_changed, expected) or (bias_changed & ~expected).any():
        return
    new = enc[live].double()
    reading = ""
    sources = {
        "their old columns": (enc0[live].double(), "the whole W_enc multiplied after the write, e.g. W_enc *= s"),
        "their decoder rows": (
            before["W_dec"][live].double(),
            "the whole encoder set from the decoder, e.g. W_enc.copy_(W_dec.mT · c), not only the dead columns",
        ),
    }
    for source, (old, why) in sources.items():
        c = (new * old).sum(-1) / old.pow(2).sum(-1).clamp_min(1e-30)
        same = torch.allclose(c, c[:1].expand_as(c), rtol=1e-4)
        if same and torch.allclose(new, c[:, None] * old, rtol=1e-4, atol=1e-6):
            reading = f": read back, every live column is {float(c[0]):.4g} × {source} ({why})"
            break
    fail(
        f"the encoder columns of {int(live.sum())} latents that are not dead changed, while their decoder rows and "
        f"encoder biases were left alone (the dead latents' were all rewritten){reading}",
        "write the encoder column of the dead latents only, with the same [inst d_sae] mask as the decoder rows "
        "(W_enc.data.transpose(-1, -2)[dead] = ...): an operation on the whole W_enc reaches the live latents too",
        code="live_encoder_changed",
    )
