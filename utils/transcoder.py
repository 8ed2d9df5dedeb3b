"""The transcoder section 6b ships for the shipped language model, and how to load it offline.

A transcoder stands in for an MLP: it reads what the MLP reads and predicts what the MLP writes, through
a wide, sparse layer of latents. Ours reads ``blocks.0.ln2.hook_normalized`` (the MLP's input, after the
second LayerNorm) and predicts ``blocks.0.hook_mlp_out`` (what the MLP adds to the residual stream):

    pre  = x W_enc + b_enc                          x: [... d_in]
    acts = pre · [pre > threshold]                  (JumpReLU; a plain ReLU when there is no threshold)
    out  = acts W_dec + b_dec (+ x W_skipᵀ when the transcoder has a skip connection)

It is trained by ``python -m tools.train_transcoder`` and stored in ``utils/artifacts/transcoder/`` in
SAELens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``, architecture
``jumprelu_transcoder``), with a ``manifest.json`` that records the command, the settings, the metrics
and the sha256 of every file. :func:`load_transcoder` checks those hashes before reading the weights
(with safetensors, never pickle), so a corrupted or edited file is caught at load time.

This module imports no section code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from utils.device import get_device
from utils.paths import TRANSCODER_DIR
from utils.saelens_format import read_sae_folder, write_sae_folder

HOOK_IN = "blocks.0.ln2.hook_normalized"
HOOK_OUT = "blocks.0.hook_mlp_out"
MANIFEST = "manifest.json"
# SAELens's names for the transcoder architectures this loader reads (all four of SAELens 6).
ARCHITECTURES = ("transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder")


class Transcoder(nn.Module):
    """A (JumpReLU, optionally skip) transcoder from `hook_name` (input) to `hook_name_out` (output).

    Weights: ``W_enc [d_in d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae d_out]``, ``b_dec [d_out]``,
    ``threshold [d_sae]`` or None (ReLU), ``W_skip [d_out d_in]`` or None (no skip connection).
    """

    W_enc: Float[Tensor, "d_in d_sae"]
    W_dec: Float[Tensor, "d_sae d_out"]
    b_enc: Float[Tensor, " d_sae"]
    b_dec: Float[Tensor, " d_out"]

    def __init__(
        self,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        threshold: Tensor | None = None,
        W_skip: Tensor | None = None,
        hook_name: str = HOOK_IN,
        hook_name_out: str = HOOK_OUT,
        metadata: dict | None = None,
    ):
        super().__init__()
        d_in, d_sae = W_enc.shape
        d_out = W_dec.shape[-1]
        shapes_ok = W_dec.shape == (d_sae, d_out) and b_enc.shape == (d_sae,) and b_dec.shape == (d_out,)
        shapes_ok &= threshold is None or threshold.shape == (d_sae,)
        shapes_ok &= W_skip is None or W_skip.shape == (d_out, d_in)
        if not shapes_ok:
            sizes = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "threshold": threshold}
            described = ", ".join(
                f"{k} {tuple(v.shape)}" for k, v in {**sizes, "W_skip": W_skip}.items() if v is not None
            )
            raise ValueError(f"inconsistent transcoder shapes: {described}")
        self.W_enc, self.b_enc = nn.Parameter(W_enc.float()), nn.Parameter(b_enc.float())
        self.W_dec, self.b_dec = nn.Parameter(W_dec.float()), nn.Parameter(b_dec.float())
        self.threshold = None if threshold is None else nn.Parameter(threshold.float())
        self.W_skip = None if W_skip is None else nn.Parameter(W_skip.float())
        self.hook_name, self.hook_name_out = hook_name, hook_name_out
        self.metadata = dict(metadata or {})
        self.requires_grad_(False)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def d_out(self) -> int:
        return self.W_dec.shape[1]

    @property
    def architecture(self) -> str:
        return (
            ("jumprelu_" if self.threshold is not None else "")
            + ("skip_" if self.W_skip is not None else "")
            + ("transcoder")
        )

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        return x @ self.W_enc + self.b_enc

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        pre = self.pre_acts(x)
        if self.threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.threshold)

    def encode_one(self, x: Float[Tensor, "... d_in"], latent: int) -> Float[Tensor, "..."]:
        """One latent's activation, `encode(x)[..., latent]` without computing the others."""
        pre = x @ self.W_enc[:, latent] + self.b_enc[latent]
        if self.threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.threshold[latent])

    def decode(self, acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_out"]:
        return acts @ self.W_dec + self.b_dec

    def skip(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        """The skip connection's term, zero when there is none."""
        if self.W_skip is None:
            return torch.zeros(*x.shape[:-1], self.d_out, device=x.device, dtype=x.dtype)
        return x @ self.W_skip.T

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        return self.decode(self.encode(x)) + self.skip(x)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_transcoder(
    tc: Transcoder, path: Path | str, metadata: dict[str, Any] | None = None, dtype: torch.dtype = torch.float16
) -> Path:
    """Write `tc` in SAELens's on-disk format, weights stored as `dtype` (loading casts them back to float32)."""
    weights = {"W_enc": tc.W_enc, "b_enc": tc.b_enc, "W_dec": tc.W_dec, "b_dec": tc.b_dec}
    if tc.threshold is not None:
        weights["threshold"] = tc.threshold
    if tc.W_skip is not None:
        weights["W_skip"] = tc.W_skip
    weights = {k: v.detach().float().cpu() for k, v in weights.items()}
    meta = {"hook_name": tc.hook_name, "hook_name_out": tc.hook_name_out, "hook_head_index": None, **(metadata or {})}
    # SAELens's transcoders have no input-side decoder bias: apply_b_dec_to_input must be false.
    extra = {"d_out": tc.d_out, "apply_b_dec_to_input": False}
    return write_sae_folder(path, tc.architecture, weights, meta, extra_cfg=extra, stored_dtype=dtype)


def verify_hashes(folder: Path | str) -> dict[str, Any]:
    """Check every file listed in the folder's ``manifest.json`` against its recorded sha256; return the manifest.

    Raises FileNotFoundError (no manifest, or a listed file missing) or ValueError (a hash differs).
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} not found: the shipped transcoder lives in utils/artifacts/transcoder/; "
            "re-create it with `python -m tools.train_transcoder`"
        )
    manifest = json.loads(manifest_path.read_text())
    recorded = manifest.get("sha256") or {}
    if not recorded:
        raise ValueError(f"{manifest_path} records no sha256 hashes")
    for name, digest in recorded.items():
        file = folder / name
        if not file.is_file():
            raise FileNotFoundError(f"{file} is listed in {manifest_path} but missing")
        if sha256_file(file) != digest:
            raise ValueError(
                f"{file} does not match the sha256 recorded in {manifest_path}: the file was changed or corrupted "
                "(restore it from the repository, or retrain with `python -m tools.train_transcoder`)"
            )
    return manifest


def read_transcoder(path: Path | str) -> Transcoder:
    """A transcoder from an SAELens-format folder (any of the four SAELens transcoder architectures)."""
    path = Path(path)
    cfg, w = read_sae_folder(path)
    arch = cfg["architecture"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"{path} holds a {arch!r}, not a transcoder (one of {', '.join(ARCHITECTURES)})")
    meta = cfg.get("metadata") or {}
    if not meta.get("hook_name") or not meta.get("hook_name_out"):
        raise ValueError(f"{path / 'cfg.json'} should name both hooks (metadata.hook_name and metadata.hook_name_out)")
    return Transcoder(
        w["W_enc"],
        w["b_enc"],
        w["W_dec"],
        w["b_dec"],
        threshold=w.get("threshold") if arch.startswith("jumprelu") else None,
        W_skip=w.get("W_skip") if "skip" in arch else None,
        hook_name=meta["hook_name"],
        hook_name_out=meta["hook_name_out"],
        metadata=meta,
    )


def load_transcoder(
    path: Path | str = TRANSCODER_DIR, device: str | torch.device | None = None, check_hashes: bool = True
) -> Transcoder:
    """The shipped transcoder (or one in another folder), on `device` (default: `utils.device.get_device()`).

    With `check_hashes` (the default) every file must match the sha256 in the folder's ``manifest.json``.
    """
    path = Path(path)
    if check_hashes:
        verify_hashes(path)
    device = torch.device(device) if device is not None else get_device()
    return read_transcoder(path).to(device)


def manifest(path: Path | str = TRANSCODER_DIR) -> dict[str, Any]:
    """The shipped transcoder's manifest (command, settings, measured metrics, hashes)."""
    return json.loads((Path(path) / MANIFEST).read_text())
