"""Language-model helpers for section 6: load the shipped (or a public) model and SAE, data, HTML and figures.

Offline (the default) everything comes from ``utils/artifacts/``:

* ``load_model()``: the one-layer GELU ``HookedTransformer`` trained by ``python -m utils.train_lm`` on the
  Python standard library's source, with its byte-level BPE tokenizer;
* ``load_sae()``: the SAE on its MLP activations (``blocks.0.mlp.hook_post``) trained by
  ``python -m solutions.train_lm_sae``, stored in SAELens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``);
* ``load_eval_tokens()``: held-out token sequences (files the model never saw).

Online, the same functions load public ones through TransformerLens and SAELens, for example
``load_model("gpt2-small")`` and ``load_sae(release="gpt2-small-mlp-tm", sae_id="blocks.0.hook_mlp_out")``
(this SAE reads the MLP *output*, so its decoder directions already live in the residual stream).
Nothing here downloads anything unless a public name is passed.

Every SAE, whatever its source, comes back as an :class:`LMSAE` with ``W_enc: [d_in d_sae]``,
``W_dec: [d_sae d_in]``, ``b_enc``, ``b_dec``, ``hook_name``, ``encode`` and ``decode``.
This module imports no section code.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from plotly_utils import show_or_return, to_numpy
from utils.device import get_device

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LM_DIR = ARTIFACTS / "lm"
SAE_DIR = ARTIFACTS / "sae"
PUBLIC_MODEL = "gpt2-small"
PUBLIC_SAE = ("gpt2-small-mlp-tm", "blocks.0.hook_mlp_out")


# --------------------------------------------------------------------------------------------
# Model and tokenizer
# --------------------------------------------------------------------------------------------
def _missing(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}. The shipped artifacts live in utils/artifacts/; "
            "re-create them with `python -m utils.train_lm` and `python -m solutions.train_lm_sae`."
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
    """Write `sae` in SAELens's on-disk format: ``cfg.json`` + ``sae_weights.safetensors``.

    Weights are stored as `dtype` (float16 keeps the repo small); ``cfg.json`` says float32, and both
    SAELens and :func:`load_sae` cast them back to float32 when loading.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = {k: getattr(sae, k).detach().cpu().to(dtype).contiguous() for k in ("W_enc", "W_dec", "b_enc", "b_dec")}
    save_file(weights, str(path / "sae_weights.safetensors"))
    cfg = {
        "architecture": "standard",
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        # sae_lens_version names the on-disk format followed (SAELens >= 6 keeps `metadata` as written;
        # without it SAELens treats the file as pre-6.0 and would drop the hook name).
        "metadata": {
            "sae_lens_version": "6.0.0",
            "hook_name": sae.hook_name,
            "hook_head_index": None,
            **(metadata or {}),
        },
    }
    (path / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")


def _from_saelens_folder(path: Path) -> LMSAE:
    from safetensors.torch import load_file

    _missing(path / "cfg.json", "SAE config")
    cfg = json.loads((path / "cfg.json").read_text())
    arch = cfg.get("architecture", "standard")
    if arch not in ("standard", "jumprelu"):
        raise ValueError(f"this loader reads 'standard' and 'jumprelu' SAEs; {path} holds a {arch!r} SAE")
    w = load_file(str(path / "sae_weights.safetensors"))
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
def _visible(text: str) -> str:
    """Escape for HTML and make whitespace visible: newline -> ⏎ (and a line break), tab -> →."""
    out = html.escape(text).replace("\t", "→   ")
    return out.replace("\n", "⏎")


def max_activating_html(
    tokenizer,
    tokens: Int[Tensor, "seq ctx"],
    acts: Float[Tensor, "seq ctx"],
    seq_idx: Sequence[int] | Tensor,
    pos_idx: Sequence[int] | Tensor,
    title: str = "",
    left: int = 16,
    right: int = 4,
) -> str:
    """One row per example: `left` tokens before the max-activating token, `right` after.

    Each token's background shows the latent's activation there (orange, darker = stronger, scaled to
    the largest activation among the examples); the max-activating token is outlined. Hover shows the value.
    """
    tok_np = np.asarray(to_numpy(tokens))
    act_np = np.asarray(to_numpy(acts), dtype=float)
    seqs, poss = [int(s) for s in to_numpy(seq_idx)], [int(p) for p in to_numpy(pos_idx)]
    if len(seqs) != len(poss):
        raise ValueError(f"seq_idx and pos_idx should have the same length, got {len(seqs)} and {len(poss)}")
    scale = max((act_np[s, p] for s, p in zip(seqs, poss, strict=True)), default=1.0)
    scale = scale if scale > 0 else 1.0
    rows = []
    for s, p in zip(seqs, poss, strict=True):
        lo, hi = max(0, p - left), min(tok_np.shape[1], p + right + 1)
        cells = []
        for j in range(lo, hi):
            a = act_np[s, j]
            alpha = min(1.0, max(0.0, a / scale))
            border = "outline:2px solid #c0392b;" if j == p else ""
            text = _visible(tokenizer.decode([int(tok_np[s, j])]))
            cells.append(
                f'<span title="{a:.3f}" style="background:rgba(255,140,0,{alpha:.2f});{border}'
                f'padding:1px 0;white-space:pre">{text}</span>'
            )
        value = act_np[s, p]
        rows.append(
            '<tr><td style="text-align:right;padding-right:8px;color:#555;font-family:monospace">'
            f'{value:.2f}</td><td style="font-family:monospace;text-align:left">{"".join(cells)}</td></tr>'
        )
    head = f"<div style='font-weight:bold;margin:4px 0'>{html.escape(title)}</div>" if title else ""
    return f"<div>{head}<table style='border-collapse:collapse'>{''.join(rows)}</table></div>"


def show_html(markup: str) -> None:
    """Display HTML in a notebook (or print a note outside one)."""
    try:
        from IPython.display import HTML, display

        display(HTML(markup))
    except ImportError:  # pragma: no cover - IPython is always there in the notebooks
        print(markup)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def plot_density_histogram(
    frequencies: Float[Tensor, " d_sae"],
    dense_threshold: float = 0.1,
    title: str = "How often each latent fires",
    show: bool = True,
) -> go.Figure | None:
    """Histogram of log10(firing frequency) per latent; dead latents (frequency 0) are counted in the title."""
    freq = np.asarray(to_numpy(frequencies), dtype=float)
    alive = freq[freq > 0]
    n_dead, n_dense = int((freq <= 0).sum()), int((freq > dense_threshold).sum())
    fig = go.Figure(go.Histogram(x=np.log10(alive), nbinsx=60, marker_color="#1f77b4", name="live latents"))
    fig.add_vline(
        x=np.log10(dense_threshold),
        line_dash="dash",
        line_color="#d62728",
        annotation_text=f"dense (> {dense_threshold:g})",
    )
    fig.update_layout(
        title=f"{title}<br><sup>{len(freq)} latents: {n_dead} dead (never fire, not shown), {n_dense} dense</sup>",
        xaxis_title="log10(fraction of tokens on which the latent fires)",
        yaxis_title="number of latents",
        template="simple_white",
        height=380,
        showlegend=False,
    )
    return show_or_return(fig, show)


def plot_losses(losses: dict[str, float], title: str = "Next-token loss", show: bool = True) -> go.Figure | None:
    """Bar chart of named losses (nats per token)."""
    names, values = list(losses), [float(v) for v in losses.values()]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=values,
            text=[f"{v:.3f}" for v in values],
            textposition="outside",
            marker_color=["#2ca02c", "#1f77b4", "#d62728", "#7f7f7f"][: len(names)],
        )
    )
    fig.update_layout(
        title=title,
        yaxis_title="cross-entropy (nats / token)",
        template="simple_white",
        height=380,
        yaxis_range=[0, 1.15 * max(values)],
    )
    return show_or_return(fig, show)


def plot_logit_effect(
    effect: Float[Tensor, " d_vocab"],
    tokenizer,
    k: int = 12,
    title: str = "Direct effect on the logits",
    show: bool = True,
) -> go.Figure | None:
    """Two horizontal bar charts: the `k` most boosted and the `k` most suppressed tokens."""
    from plotly.subplots import make_subplots

    eff = torch.as_tensor(to_numpy(effect), dtype=torch.float32)
    top, bottom = eff.topk(k), eff.topk(k, largest=False)
    label = lambda ids: [repr(tokenizer.decode([int(i)]))[1:-1] or "''" for i in ids]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["most boosted", "most suppressed"], horizontal_spacing=0.25)
    fig.add_trace(go.Bar(x=top.values.numpy(), y=label(top.indices), orientation="h", marker_color="#2ca02c"), 1, 1)
    fig.add_trace(
        go.Bar(x=bottom.values.numpy(), y=label(bottom.indices), orientation="h", marker_color="#d62728"), 1, 2
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="logit change per unit of activation")
    fig.update_layout(title=title, template="simple_white", height=120 + 24 * k, showlegend=False)
    return show_or_return(fig, show)


def plot_prediction_change(
    before: Float[Tensor, " d_vocab"],
    after: Float[Tensor, " d_vocab"],
    tokenizer,
    k: int = 10,
    title: str = "Next-token probabilities",
    labels: tuple[str, str] = ("before", "after"),
    show: bool = True,
) -> go.Figure | None:
    """Grouped bars of the top-`k` tokens (union of both) under two logit vectors, as probabilities."""
    b = torch.as_tensor(to_numpy(before), dtype=torch.float32).softmax(-1)
    a = torch.as_tensor(to_numpy(after), dtype=torch.float32).softmax(-1)
    ids = list(dict.fromkeys(b.topk(k).indices.tolist() + a.topk(k).indices.tolist()))
    names = [repr(tokenizer.decode([i]))[1:-1] for i in ids]
    fig = go.Figure(
        [
            go.Bar(x=names, y=b[ids].numpy(), name=labels[0], marker_color="#7f7f7f"),
            go.Bar(x=names, y=a[ids].numpy(), name=labels[1], marker_color="#ff7f0e"),
        ]
    )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_title="next token",
        yaxis_title="probability",
        xaxis_type="category",
        template="simple_white",
        height=380,
    )
    return show_or_return(fig, show)
