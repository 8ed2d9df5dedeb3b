"""Section 6's given figures and HTML: max-activating examples in context, the density histogram, losses,
logit effects and prediction changes. Inputs are never modified; figures are shown (or returned with
`show=False`) and work offline. Imports no section code."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor

from plotly_utils import show_or_return, to_numpy


def visible_token(text: str) -> str:
    """A token's text as a plot label that can't be blank: space -> ␣ (runs of 4 or more as ␣×n), newline -> ⏎,
    tab -> →, the empty string -> ∅."""
    out = text.replace("\t", "→").replace("\n", "⏎")
    out = re.sub(" {4,}", lambda run: f"␣×{len(run.group())}", out)
    return out.replace(" ", "␣") or "∅"


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
        line_width=2,
        annotation_text=f"dense (> {dense_threshold:g})",
        annotation_position="top left",
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
    label = lambda ids: [visible_token(tokenizer.decode([int(i)])) for i in ids]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["most boosted", "most suppressed"], horizontal_spacing=0.25)
    fig.add_trace(go.Bar(x=top.values.numpy(), y=label(top.indices), orientation="h", marker_color="#2ca02c"), 1, 1)
    fig.add_trace(
        go.Bar(x=bottom.values.numpy(), y=label(bottom.indices), orientation="h", marker_color="#d62728"), 1, 2
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_yaxes(title_text="next token (␣ space, ⏎ newline)", row=1, col=1)
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
    names = [visible_token(tokenizer.decode([i])) for i in ids]
    fig = go.Figure(
        [
            go.Bar(x=names, y=b[ids].numpy(), name=labels[0], marker_color="#7f7f7f"),
            go.Bar(x=names, y=a[ids].numpy(), name=labels[1], marker_color="#ff7f0e"),
        ]
    )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_title="next token (␣ space, ⏎ newline)",
        yaxis_title="probability",
        xaxis_type="category",
        template="simple_white",
        height=380,
    )
    return show_or_return(fig, show)
