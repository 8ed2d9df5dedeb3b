"""SAELens's on-disk SAE format, written and read in this one place.

An SAE is a folder with ``cfg.json`` (architecture, sizes, dtype, ``metadata`` with the hook name) and
``sae_weights.safetensors``. Section 6's shipped SAE, the SAEs `tools/train_lm_sae.py` writes, and the
toy SAEs section 5b exports (`utils.saelens_interop.export_to_saelens`) all go through `write_sae_folder`;
`read_sae_folder` reads any of them back, and SAELens's own `SAE.load_from_disk` reads them too (the
suite checks both). Weights load with safetensors, never pickle. Imports neither `sae_lens` nor section code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
# The SAELens version whose format we follow. SAELens >= 6 keeps `metadata` as written; without this
# marker it treats a folder as pre-6.0 and drops the hook name.
FORMAT_VERSION = "6.0.0"


def write_sae_folder(
    path: str | Path,
    architecture: str,
    weights: dict[str, Tensor],
    metadata: dict[str, Any],
    extra_cfg: dict[str, Any] | None = None,
    stored_dtype: torch.dtype | None = None,
) -> Path:
    """Write an SAE (``W_enc: [d_in d_sae]`` and the architecture's other weights) to the folder `path`.

    `stored_dtype` (e.g. float16, to keep a shipped file small) changes only how the weights are stored;
    ``cfg.json`` keeps the weights' own dtype, and both readers cast back to it when loading.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if "W_enc" not in weights or weights["W_enc"].ndim != 2:
        raise ValueError("an SAE folder needs a 2D W_enc [d_in d_sae] among its weights")
    d_in, d_sae = weights["W_enc"].shape
    dtype = weights["W_enc"].dtype
    stored = {k: w.detach().cpu().to(stored_dtype or w.dtype).contiguous() for k, w in weights.items()}
    save_file(stored, str(path / WEIGHTS_FILE))
    cfg = {
        "architecture": architecture,
        "d_in": int(d_in),
        "d_sae": int(d_sae),
        "dtype": str(dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        **(extra_cfg or {}),
        "metadata": {"sae_lens_version": FORMAT_VERSION, **metadata},
    }
    (path / CFG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def read_sae_folder(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(cfg, weights) of an SAE folder; weights are cast to the dtype ``cfg.json`` names. Clear errors for a
    path that is not an SAE folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; expected an SAE folder ({CFG_FILE} + {WEIGHTS_FILE})")
    missing = [name for name in (CFG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not an SAE folder in SAELens's format: {', '.join(missing)} missing")
    try:
        cfg = json.loads((path / CFG_FILE).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path / CFG_FILE} is not valid JSON: {error}") from None
    architecture = cfg.get("architecture") if isinstance(cfg, dict) else None
    if not isinstance(architecture, str):
        raise ValueError(f"{path / CFG_FILE} names no known SAELens architecture (got {architecture!r})")
    dtype = getattr(torch, str(cfg.get("dtype", "float32")), torch.float32)
    weights = {k: w.to(dtype) for k, w in load_file(str(path / WEIGHTS_FILE)).items()}
    return cfg, weights
