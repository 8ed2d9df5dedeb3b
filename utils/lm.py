"""Language models for sections 6 and 6b: load the shipped (or a public) model, its SAE and held-out data.

Offline (the default) everything comes from ``utils/artifacts/``:

* ``load_model()``: the one-layer GELU ``HookedTransformer`` trained by ``python -m tools.train_lm`` on the
  Python standard library's source, with its byte-level BPE tokenizer;
* ``load_sae()``: the SAE on its MLP activations (``blocks.0.mlp.hook_post``) trained by
  ``python -m tools.train_lm_sae``, stored in SAELens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``);
* ``load_eval_tokens()``: held-out token sequences (files the model never saw).

Online, the same functions load public ones through TransformerLens and SAELens, for example
``load_model("gpt2-small")`` and ``load_sae(release="gpt2-small-mlp-tm", sae_id="blocks.0.hook_mlp_out")``
(this SAE reads the MLP *output*, so its decoder directions already live in the residual stream).
Nothing here downloads anything unless a public name is passed.

Every SAE, whatever its source, comes back as an :class:`LMSAE` with ``W_enc: [d_in d_sae]``,
``W_dec: [d_sae d_in]``, ``b_enc``, ``b_dec``, ``hook_name``, ``encode`` and ``decode``.
Section 6's figures and HTML live in ``utils/part6_lm_saes.py``. This module imports no section code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from utils.device import get_device
from utils.paths import ARTIFACTS, LM_DIR, SAE_DIR  # noqa: F401 (re-exported for the tools)
from utils.saelens_format import read_sae_folder, write_sae_folder

PUBLIC_MODEL = "gpt2-small"
PUBLIC_SAE = ("gpt2-small-mlp-tm", "blocks.0.hook_mlp_out")


# --------------------------------------------------------------------------------------------
# Model and tokenizer
# --------------------------------------------------------------------------------------------
def _missing(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}. The shipped artifacts live in utils/artifacts/; "
            "re-create them with `python -m tools.train_lm` and `python -m tools.train_lm_sae`."
        )


def load_tokenizer(path: Path | str = LM_DIR / "tokenizer"):
    """The shipped byte-level BPE tokenizer (a transformers fast tokenizer), read from disk only."""
    from transformers import AutoTokenizer

    _missing(Path(path), "tokenizer")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_model(name: str | None = None, device: str | torch.device | None = None, path: Path | str = LM_DIR):
    """A ``HookedTransformer`` in eval mode: the shipped model (``name=None``) or a public one by name (online).

    The shipped model's LayerNorm scales are folded into the following weights and the unembedding is
    centred (as TransformerLens does for public models), which changes none of its outputs or MLP
    activations but makes "decoder direction · W_out · W_U" a clean direct logit effect.
    """
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    device = torch.device(device) if device is not None else get_device()
    if name is not None:
        return HookedTransformer.from_pretrained(name, device=str(device)).eval()
    path = Path(path)
    _missing(path / "model.safetensors", "model weights")
    config = json.loads((path / "config.json").read_text())
    cfg = HookedTransformerConfig(**config, device=str(device))
    model = HookedTransformer(cfg, tokenizer=load_tokenizer(path / "tokenizer"), default_padding_side="right")
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    model.load_and_process_state_dict(
        state, fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True
    )
    model.to(device)
    return model.eval().requires_grad_(False)


def load_eval_tokens(
    device: str | torch.device | None = None, n_seq: int | None = None, path: Path | str = LM_DIR
) -> Int[Tensor, "seq ctx"]:
    """Held-out token sequences ``[n_seq, n_ctx]`` (int64), each starting with BOS."""
    from safetensors.torch import load_file

    file = Path(path) / "eval_tokens.safetensors"
    _missing(file, "evaluation tokens")
    tokens = load_file(str(file))["tokens"].long()
    tokens = tokens[:n_seq] if n_seq is not None else tokens
    return tokens.to(device if device is not None else get_device())


# --------------------------------------------------------------------------------------------
# SAEs
# --------------------------------------------------------------------------------------------
class LMSAE(nn.Module):
    """A ReLU (or JumpReLU) SAE on one hook point: acts = ReLU((x - b_dec) W_enc + b_enc), x̂ = acts W_dec + b_dec."""

    W_enc: Float[Tensor, "d_in d_sae"]
    W_dec: Float[Tensor, "d_sae d_in"]
    b_enc: Float[Tensor, " d_sae"]
    b_dec: Float[Tensor, " d_in"]

    def __init__(
        self,
        W_enc: Tensor,
        W_dec: Tensor,
        b_enc: Tensor,
        b_dec: Tensor,
        hook_name: str,
        threshold: Tensor | None = None,
        apply_b_dec_to_input: bool = True,
        metadata: dict | None = None,
    ):
        super().__init__()
        d_in, d_sae = W_enc.shape
        if W_dec.shape != (d_sae, d_in) or b_enc.shape != (d_sae,) or b_dec.shape != (d_in,):
            raise ValueError(
                f"inconsistent SAE shapes: W_enc {tuple(W_enc.shape)}, W_dec {tuple(W_dec.shape)}, "
                f"b_enc {tuple(b_enc.shape)}, b_dec {tuple(b_dec.shape)}"
            )
        self.W_enc, self.W_dec = nn.Parameter(W_enc.float()), nn.Parameter(W_dec.float())
        self.b_enc, self.b_dec = nn.Parameter(b_enc.float()), nn.Parameter(b_dec.float())
        self.threshold = None if threshold is None else nn.Parameter(threshold.float())
        self.hook_name = hook_name
        self.apply_b_dec_to_input = apply_b_dec_to_input
        self.metadata = dict(metadata or {})
        self.requires_grad_(False)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        x = x - self.b_dec if self.apply_b_dec_to_input else x
        pre = x @ self.W_enc + self.b_enc
        if self.threshold is not None:
            return pre * (pre > self.threshold)
        return torch.relu(pre)

    def decode(self, acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        return self.decode(self.encode(x))


def save_sae(sae: LMSAE, path: Path | str, metadata: dict | None = None, dtype: torch.dtype = torch.float16) -> None:
    """Write `sae` in SAELens's on-disk format (`utils.saelens_format`), weights stored as `dtype`
    (float16 keeps the repo small; loading casts them back to float32)."""
    weights = {k: getattr(sae, k).detach().float() for k in ("W_enc", "W_dec", "b_enc", "b_dec")}
    meta = {"hook_name": sae.hook_name, "hook_head_index": None, **(metadata or {})}
    write_sae_folder(path, "standard", weights, meta, stored_dtype=dtype)


def _from_saelens_folder(path: Path) -> LMSAE:
    _missing(path / "cfg.json", "SAE config")
    cfg, w = read_sae_folder(path)
    arch = cfg["architecture"]
    if arch not in ("standard", "jumprelu"):
        raise ValueError(f"this loader reads 'standard' and 'jumprelu' SAEs; {path} holds a {arch!r} SAE")
    meta = cfg.get("metadata", {})
    hook_name = meta.get("hook_name") or cfg.get("hook_name")
    if not hook_name:
        raise ValueError(f"{path / 'cfg.json'} names no hook (metadata.hook_name)")
    return LMSAE(
        w["W_enc"],
        w["W_dec"],
        w["b_enc"],
        w["b_dec"],
        hook_name,
        threshold=w.get("threshold"),
        apply_b_dec_to_input=cfg.get("apply_b_dec_to_input", True),
        metadata=meta,
    )


def from_saelens(sae: Any) -> LMSAE:
    """Convert a loaded ``sae_lens.SAE`` (standard or JumpReLU) into an :class:`LMSAE`."""
    arch = sae.cfg.architecture() if callable(getattr(sae.cfg, "architecture", None)) else "standard"
    if arch not in ("standard", "jumprelu"):
        raise ValueError(f"only 'standard' and 'jumprelu' SAEs are supported here, got {arch!r}")
    threshold = sae.threshold.detach() if arch == "jumprelu" else None
    return LMSAE(
        sae.W_enc.detach(),
        sae.W_dec.detach(),
        sae.b_enc.detach(),
        sae.b_dec.detach(),
        sae.cfg.metadata.hook_name,
        threshold=threshold,
        apply_b_dec_to_input=getattr(sae.cfg, "apply_b_dec_to_input", True),
        metadata={"model_name": getattr(sae.cfg.metadata, "model_name", None)},
    )


def load_sae(
    path: Path | str | None = None,
    release: str | None = None,
    sae_id: str | None = None,
    device: str | torch.device | None = None,
) -> LMSAE:
    """An :class:`LMSAE`: the shipped one (no arguments), one in SAELens's format on disk (`path`), or a
    public SAELens release (`release`, `sae_id`; needs the network and the ``sae-lens`` package)."""
    device = torch.device(device) if device is not None else get_device()
    if release is not None:
        if sae_id is None:
            raise ValueError("a SAELens release needs an sae_id too, e.g. load_sae(release=..., sae_id=...)")
        from sae_lens import SAE

        sae = from_saelens(SAE.from_pretrained(release, sae_id, device="cpu"))
    else:
        sae = _from_saelens_folder(Path(path) if path is not None else SAE_DIR)
    return sae.to(device)


# --------------------------------------------------------------------------------------------
# Activations over a dataset
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def hook_activations(model, hook_name: str, tokens: Tensor, batch_size: int = 64) -> Tensor:
    """Activations at `hook_name` for every token: ``[n_seq, n_ctx, d]`` (computed in batches)."""
    layer = int(hook_name.split(".")[1]) if hook_name.startswith("blocks.") else None
    stop = layer + 1 if layer is not None else None  # skip the unembedding: it is most of the cost
    outs = []
    for i in range(0, len(tokens), batch_size):
        _, cache = model.run_with_cache(tokens[i : i + batch_size], names_filter=hook_name, stop_at_layer=stop)
        outs.append(cache[hook_name])
    return torch.cat(outs)


def token_strings(tokenizer, tokens: Sequence[int] | Tensor) -> list[str]:
    """Each token id as the text it stands for (spaces and newlines kept)."""
    ids = tokens.tolist() if isinstance(tokens, Tensor) else list(tokens)
    return [tokenizer.decode([i]) for i in ids]


# --------------------------------------------------------------------------------------------
# HTML: max-activating examples (inline styles only, so it renders offline in Jupyter, Colab, VS Code)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
