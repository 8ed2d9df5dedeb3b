"""Section 6b's given code: freezing a run of the model, the attribution graph's nodes, pruning, the graph
figure and the per-latent dashboard (offline HTML). Inputs are never modified; figures are shown (or
returned with `show=False`). Imports no section code.

Node order in every graph (rows and columns of the adjacency matrix, ``adjacency[target, source]``):
active latents (sorted by position, then latent index), then one error node per position, then one
token node per position, then the logit nodes (the top next-token predictions at the last position).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from plotly_utils import as_array, show_or_return, to_numpy

POSITIVE, NEGATIVE = "#1f5fa8", "#c0392b"  # edge colours: excitatory blue, inhibitory red
KIND_COLOURS = {"token": "#7f7f7f", "latent": "#ff7f0e", "error": "#bcbd22", "logit": "#2ca02c"}


def visible(text: str) -> str:
    """Whitespace made visible for labels: space -> ␣, newline -> ⏎, tab -> ⇥ (other text unchanged)."""
    return text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥") or "∅"


# --------------------------------------------------------------------------------------------
# Freezing one run of the model
# --------------------------------------------------------------------------------------------
@dataclass
class FrozenRun:
    """What the local replacement model keeps fixed from one forward pass on one prompt (``seq`` tokens).

    ``embeds`` is the residual stream before the block (token + position embedding) at each position; the
    three ``*_scale`` tensors are the LayerNorm scales (``hook_scale``) of ln1, ln2 and ln_final; ``pattern``
    is the attention pattern; ``active`` marks the transcoder latents firing at each position; ``error`` is
    the MLP output minus the transcoder's output, the part of the MLP the transcoder misses.
    """

    tokens: Int[Tensor, " seq"]
    embeds: Float[Tensor, "seq d_model"]
    ln1_scale: Float[Tensor, "seq 1"]
    pattern: Float[Tensor, "head seq seq"]
    ln2_scale: Float[Tensor, "seq 1"]
    final_scale: Float[Tensor, "seq 1"]
    mlp_in: Float[Tensor, "seq d_model"]
    acts: Float[Tensor, "seq d_sae"]
    active: Bool[Tensor, "seq d_sae"]
    error: Float[Tensor, "seq d_model"]
    logits: Float[Tensor, "seq d_vocab"]


@torch.no_grad()
def freeze(model, tc, tokens: Int[Tensor, " seq"]) -> FrozenRun:
    """Run `model` on one prompt `tokens` [seq] (BOS first) and record what the local replacement model freezes."""
    tokens = torch.as_tensor(tokens).reshape(-1).to(model.cfg.device)
    names = (
        "blocks.0.hook_resid_pre",
        "blocks.0.ln1.hook_scale",
        "blocks.0.attn.hook_pattern",
        "blocks.0.ln2.hook_scale",
        "ln_final.hook_scale",
        tc.hook_name,
        tc.hook_name_out,
    )
    logits, cache = model.run_with_cache(tokens[None], names_filter=lambda n: n in names)
    mlp_in = cache[tc.hook_name][0]
    acts = tc.encode(mlp_in)
    return FrozenRun(
        tokens=tokens,
        embeds=cache["blocks.0.hook_resid_pre"][0],
        ln1_scale=cache["blocks.0.ln1.hook_scale"][0],
        pattern=cache["blocks.0.attn.hook_pattern"][0],
        ln2_scale=cache["blocks.0.ln2.hook_scale"][0],
        final_scale=cache["ln_final.hook_scale"][0],
        mlp_in=mlp_in,
        acts=acts,
        active=acts != 0,
        error=cache[tc.hook_name_out][0] - tc(mlp_in),
        logits=logits[0],
    )


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------
@dataclass
class AttributionGraph:
    """The nodes of one prompt's attribution graph, and (once computed) its edges.

    ``latent_pos`` / ``latent_idx``: position and index of each active latent node; ``logit_ids`` and
    ``logit_probs``: the next-token candidates at the last position and their probabilities;
    ``adjacency[target, source]``: the direct effect of each source node on each target node.
    """

    token_ids: list[int]
    token_labels: list[str]
    latent_pos: Int[Tensor, " n_latents"]
    latent_idx: Int[Tensor, " n_latents"]
    logit_ids: Int[Tensor, " n_logits"]
    logit_labels: list[str]
    logit_probs: Float[Tensor, " n_logits"]
    adjacency: Float[Tensor, "n_nodes n_nodes"] | None = None
    notes: dict = field(default_factory=dict)

    @property
    def n_pos(self) -> int:
        return len(self.token_ids)

    @property
    def n_latents(self) -> int:
        return len(self.latent_idx)

    @property
    def n_nodes(self) -> int:
        return self.n_latents + 2 * self.n_pos + len(self.logit_ids)

    def nodes(self, kind: str) -> slice:
        """The slice of node indices of one kind: 'latent', 'error', 'token' or 'logit'."""
        starts = {"latent": 0, "error": self.n_latents, "token": self.n_latents + self.n_pos}
        starts["logit"] = self.n_latents + 2 * self.n_pos
        sizes = {"latent": self.n_latents, "error": self.n_pos, "token": self.n_pos, "logit": len(self.logit_ids)}
        return slice(starts[kind], starts[kind] + sizes[kind])

    def kind(self, node: int) -> str:
        return next(
            k for k in ("latent", "error", "token", "logit") if self.nodes(k).start <= node < self.nodes(k).stop
        )

    def position(self, node: int) -> int:
        """The prompt position a node belongs to (logits: the last position)."""
        kind = self.kind(node)
        offset = node - self.nodes(kind).start
        if kind == "latent":
            return int(self.latent_pos[offset])
        return self.n_pos - 1 if kind == "logit" else offset

    def label(self, node: int) -> str:
        kind, offset = self.kind(node), node - self.nodes(self.kind(node)).start
        if kind == "latent":
            return f"#{int(self.latent_idx[offset])}@{int(self.latent_pos[offset])}"
        if kind == "error":
            return f"err@{offset}"
        if kind == "token":
            return f"{self.token_labels[offset]}@{offset}"
        return f"→{self.logit_labels[offset]} ({float(self.logit_probs[offset]):.0%})"


def graph_nodes(frozen: FrozenRun, tokenizer, n_logits: int = 5) -> AttributionGraph:
    """The nodes of `frozen`'s graph: active latents at every position, the top `n_logits` next tokens."""
    pos, idx = frozen.active.nonzero(as_tuple=True)  # row-major: sorted by position, then latent index
    probs = frozen.logits[-1].softmax(-1)
    top = probs.topk(n_logits)
    ids = frozen.tokens.tolist()
    return AttributionGraph(
        token_ids=ids,
        token_labels=[visible(tokenizer.decode([i])) for i in ids],
        latent_pos=pos,
        latent_idx=idx,
        logit_ids=top.indices,
        logit_labels=[visible(tokenizer.decode([int(i)])) for i in top.indices],
        logit_probs=top.values,
    )


def logit_weights(graph: AttributionGraph) -> Float[Tensor, " n_nodes"]:
    """The logit nodes' probabilities, zero on every other node (the weights of the influence computation)."""
    w = torch.zeros(graph.n_nodes, device=graph.logit_probs.device)
    w[graph.nodes("logit")] = graph.logit_probs
    return w


def _targets(graph: AttributionGraph, pre: Tensor, logits: Tensor) -> Tensor:
    """Target values in node order: the latents' pre-activations, then the last position's logits."""
    return torch.cat([pre[graph.latent_pos, graph.latent_idx], logits[-1, graph.logit_ids]])


def completeness_gap(forward: Callable, frozen: FrozenRun, graph: AttributionGraph) -> Float[Tensor, " n_targets"]:
    """For every latent and logit target: value - (sum of incoming edges + bias constant), which is ~0 when the
    edges are right. `forward(frozen, embeds, latents, error) -> (pre, logits)` is the local replacement model;
    the bias constant is its value with every token, latent and error set to zero."""
    zeros = torch.zeros_like
    bias = _targets(graph, *forward(frozen, zeros(frozen.embeds), zeros(frozen.acts), zeros(frozen.error)))
    values = torch.cat([frozen.acts[graph.latent_pos, graph.latent_idx], frozen.logits[-1, graph.logit_ids]])
    rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, graph.n_nodes))
    return values - graph.adjacency[rows].sum(-1) - bias


def edge_by_ablation(forward: Callable, frozen: FrozenRun, graph: AttributionGraph, source: int, target: int) -> float:
    """The edge source -> target computed without gradients: the target's value minus its value with the source
    set to zero, every other node held at its value (`forward` as in `completeness_gap`)."""
    latents = torch.zeros_like(frozen.acts)
    latents[graph.latent_pos, graph.latent_idx] = frozen.acts[graph.latent_pos, graph.latent_idx]
    embeds, error = frozen.embeds.clone(), frozen.error.clone()
    row = target if target < graph.n_latents else graph.n_latents + target - graph.nodes("logit").start
    before = float(_targets(graph, *forward(frozen, embeds, latents, error))[row])
    kind, offset = graph.kind(source), source - graph.nodes(graph.kind(source)).start
    if kind == "latent":
        latents[graph.latent_pos[offset], graph.latent_idx[offset]] = 0
    elif kind in ("error", "token"):
        (error if kind == "error" else embeds)[offset] = 0
    return before - float(_targets(graph, *forward(frozen, embeds, latents, error))[row])


def prune(
    graph: AttributionGraph, influence: Float[Tensor, " n_nodes"], node_threshold: float = 0.8, max_nodes: int = 30
) -> Bool[Tensor, " n_nodes"]:
    """Nodes to draw: every logit and token node, plus the most influential latent and error nodes until they
    hold `node_threshold` of the latents' and errors' total influence, at most `max_nodes` nodes in all."""
    keep = torch.zeros(graph.n_nodes, dtype=torch.bool)
    keep[graph.nodes("logit")] = True
    keep[graph.nodes("token")] = True
    inner = torch.cat(
        [torch.arange(graph.n_nodes)[graph.nodes("latent")], torch.arange(graph.n_nodes)[graph.nodes("error")]]
    )
    scores = influence.detach().cpu()[inner].clamp_min(0)
    order = scores.argsort(descending=True)
    cumulative = scores[order].cumsum(0) / scores.sum().clamp_min(1e-12)
    n_needed = int((cumulative < node_threshold).sum()) + 1
    budget = max(0, max_nodes - int(keep.sum()))
    chosen = order[: min(n_needed, budget, len(order))]
    keep[inner[chosen]] = scores[chosen] > 0
    return keep


def summarise(
    graph: AttributionGraph, frozen: FrozenRun, influence: Tensor, describe: Callable[[int], str], n_latents: int = 4
) -> str:
    """Text: the predictions, how the top logit splits into latents / tokens / errors / biases, and the most
    influential latents with their edge into the top logit and the token nodes that feed them most."""
    A, top = graph.adjacency, graph.nodes("logit").start
    pairs = zip(graph.logit_labels, graph.logit_probs.tolist(), strict=True)
    predictions = ", ".join(f"{label!r} {p:.0%}" for label, p in pairs)
    parts = {kind: float(A[top, graph.nodes(kind)].sum()) for kind in ("latent", "token", "error")}
    logit = float(frozen.logits[-1, graph.logit_ids[0]])
    lines = [
        f"the model predicts {predictions}",
        f"logit of {graph.logit_labels[0]!r} = {logit:.2f}: latents {parts['latent']:+.2f}, tokens directly "
        f"{parts['token']:+.2f}, errors {parts['error']:+.2f}, biases {logit - sum(parts.values()):+.2f}",
    ]
    for offset in influence[graph.nodes("latent")].topk(min(n_latents, graph.n_latents)).indices.tolist():
        feeders = A[offset, graph.nodes("token")]
        fed = ", ".join(
            f"{graph.token_labels[p]}@{p} {float(feeders[p]):+.2f}"
            for p in feeders.abs().topk(min(3, graph.n_pos)).indices.tolist()
        )
        lines.append(
            f"  {graph.label(offset)} (influence {float(influence[offset]):.3f}, edge into {graph.logit_labels[0]!r} "
            f"{float(A[top, offset]):+.2f}): {describe(int(graph.latent_idx[offset]))}\n      fed most by {fed}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _spread(n: int, width: float) -> list[float]:
    """n evenly spaced x positions across [0, width] (one in the middle when n is 1)."""
    if n == 1:
        return [width / 2]
    return [width * i / (n - 1) for i in range(n)]


def _layout_positions(
    graph: AttributionGraph, keep: Tensor, influence: Tensor, per_row: int = 12
) -> dict[int, tuple[float, float]]:
    """Tokens at their prompt position on the bottom row; the kept latents and errors spread evenly across the
    width in rows of at most `per_row` (ordered by position, then influence); the predictions on top."""
    kept = keep.nonzero().flatten().tolist()
    width = float(max(1, graph.n_pos - 1))
    xy = {n: (float(graph.position(n)), 0.0) for n in kept if graph.kind(n) == "token"}
    middle = sorted(
        (n for n in kept if graph.kind(n) in ("latent", "error")),
        key=lambda n: (graph.position(n), -float(influence[n])),
    )
    rows = [middle[i : i + per_row] for i in range(0, len(middle), per_row)]
    for r, row in enumerate(rows):
        for node, x in zip(row, _spread(len(row), width), strict=True):
            xy[node] = (x, 1.0 + 0.7 * r)
    top = 1.0 + 0.7 * max(0, len(rows) - 1) + 1.2
    logits = [n for n in kept if graph.kind(n) == "logit"]
    for node, x in zip(logits, _spread(len(logits), width), strict=True):
        xy[node] = (x, top)
    return xy


def plot_attribution_graph(
    graph: AttributionGraph,
    keep: Bool[Tensor, " n_nodes"],
    influence: Float[Tensor, " n_nodes"],
    title: str = "Attribution graph",
    describe: dict[int, str] | None = None,
    max_edges: int = 80,
    show: bool = True,
) -> go.Figure | None:
    """The pruned graph: tokens at the bottom, latents (orange) and errors (olive) in the middle, the top
    predictions at the top. Edge width ∝ |weight|, blue excitatory, red inhibitory; hover over a node or an
    edge's midpoint for numbers. `describe` maps a latent index to a short description for the hover."""
    if graph.adjacency is None:
        raise ValueError("the graph has no edges yet: set graph.adjacency first")
    A = graph.adjacency.detach().cpu().float()
    keep = keep.cpu()
    xy = _layout_positions(graph, keep, influence.detach().cpu().float())
    kept = sorted(xy)
    sub = A[kept][:, kept]
    pairs = (sub != 0).nonzero().tolist()
    pairs = sorted(pairs, key=lambda ts: -abs(float(sub[ts[0], ts[1]])))[:max_edges]
    w_max = max((abs(float(sub[t, s])) for t, s in pairs), default=1.0) or 1.0
    fig = go.Figure()
    mids_x, mids_y, mids_text = [], [], []
    for t, s in pairs:
        w = float(sub[t, s])
        (x0, y0), (x1, y1) = xy[kept[s]], xy[kept[t]]
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                line=dict(width=0.5 + 6.0 * abs(w) / w_max, color=POSITIVE if w > 0 else NEGATIVE),
                opacity=0.25 + 0.6 * abs(w) / w_max,
                hoverinfo="skip",
                showlegend=False,
            )
        )
        mids_x.append((x0 + x1) / 2)
        mids_y.append((y0 + y1) / 2)
        mids_text.append(f"{graph.label(kept[s])} → {graph.label(kept[t])}: {w:+.3f}")
    fig.add_trace(
        go.Scatter(
            x=mids_x,
            y=mids_y,
            mode="markers",
            marker=dict(size=6, opacity=0),
            hovertext=mids_text,
            hoverinfo="text",
            showlegend=False,
        )
    )
    infl = influence.detach().cpu().float()
    symbols = {"token": "square", "latent": "circle", "error": "diamond", "logit": "hexagon"}
    for kind in ("token", "error", "latent", "logit"):
        nodes = [n for n in kept if graph.kind(n) == kind]
        if not nodes:
            continue
        hover, text = [], []
        for n in nodes:
            label = graph.label(n)
            extra = ""
            if kind == "latent" and describe:
                extra = "<br>" + html.escape(describe.get(int(graph.latent_idx[n]), ""))
            hover.append(f"{html.escape(label)}<br>influence {float(infl[n]):.3f}{extra}")
            text.append({"token": "", "latent": label.split("@")[0]}.get(kind, label))
        fig.add_trace(
            go.Scatter(
                x=[xy[n][0] for n in nodes],
                y=[xy[n][1] for n in nodes],
                mode="markers+text",
                marker=dict(
                    size=18 if kind != "token" else 14,
                    color=KIND_COLOURS[kind],
                    symbol=symbols[kind],
                    line=dict(width=1, color="#333"),
                ),
                text=text,
                textposition="bottom center" if kind == "token" else "top center",
                textfont=dict(size=11),
                hovertext=hover,
                hoverinfo="text",
                name={
                    "token": "input tokens",
                    "latent": "transcoder latents",
                    "error": "error terms",
                    "logit": "top predictions",
                }[kind],
            )
        )
    ys = [y for _, y in xy.values()]
    middle_y = sorted({y for n, (_, y) in xy.items() if graph.kind(n) in ("latent", "error")}) or [1.0]
    fig.update_layout(
        title=title,
        template="simple_white",
        width=980,
        height=420 + 60 * len(middle_y),
        xaxis=dict(
            title="input tokens (latents, errors and predictions are spread out: hover for their position)",
            tickvals=list(range(graph.n_pos)),
            ticktext=graph.token_labels,
            tickangle=-45,
            range=[-0.8, graph.n_pos - 0.2],
            zeroline=False,
        ),
        yaxis=dict(
            title="node",
            tickvals=[0, middle_y[0], max(ys)],
            ticktext=["tokens", "latents / errors", "predictions"],
            range=[-0.5, max(ys) + 0.6],
            zeroline=False,
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        hovermode="closest",
    )
    return show_or_return(fig, show)


def describe_latent(de_embedding: Tensor, logit_effect: Tensor, tokenizer, k: int = 3) -> str:
    """One line: the k tokens that drive a latent most directly and the k it promotes most."""
    show = lambda values: " ".join(visible(tokenizer.decode([i])) for i in values.topk(k).indices.tolist())
    return f"reads {show(de_embedding)} | promotes {show(logit_effect)}"


def show_pruned_graph(
    graph: AttributionGraph,
    influence: Tensor,
    describe: Callable[[int], str],
    title: str,
    node_threshold: float = 0.8,
    max_nodes: int = 30,
) -> Tensor:
    """`prune` the graph and draw it, with `describe(latent)` in the latents' hover text; returns the kept mask."""
    keep = prune(graph, influence, node_threshold=node_threshold, max_nodes=max_nodes)
    latents = graph.latent_idx.cpu()[keep[graph.nodes("latent")].cpu()].tolist()
    plot_attribution_graph(graph, keep, influence, title=title, describe={i: describe(i) for i in latents})
    return keep


def plot_token_views(
    de_embedding: Float[Tensor, " d_vocab"],
    logit_effect: Float[Tensor, " d_vocab"],
    tokenizer,
    k: int = 10,
    title: str = "",
    show: bool = True,
) -> go.Figure | None:
    """Three bar charts: the tokens whose embeddings drive a latent most, and the tokens it promotes / suppresses."""
    from plotly.subplots import make_subplots

    de, lo = torch.as_tensor(as_array(de_embedding)), torch.as_tensor(as_array(logit_effect))
    panels = [(de.topk(k), "#ff7f0e"), (lo.topk(k), "#2ca02c"), (lo.topk(k, largest=False), "#d62728")]
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.12,
        subplot_titles=["de-embedding: input tokens", "promoted next tokens", "suppressed next tokens"],
    )
    for col, (top, colour) in enumerate(panels, start=1):
        labels = [visible(tokenizer.decode([int(i)])) for i in top.indices]
        fig.add_trace(go.Bar(x=top.values.numpy(), y=labels, orientation="h", marker_color=colour), 1, col)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="W_E[token] · W_enc[:, latent]", row=1, col=1)
    fig.update_yaxes(title_text="token", row=1, col=1)
    fig.update_xaxes(title_text="logit change per unit", row=1, col=2)
    fig.update_xaxes(title_text="logit change per unit", row=1, col=3)
    fig.update_layout(title=title, template="simple_white", height=140 + 24 * k, width=980, showlegend=False)
    return show_or_return(fig, show)


# --------------------------------------------------------------------------------------------
# The latent dashboard (inline styles only: renders offline in Jupyter, Colab, VS Code and a browser)
# --------------------------------------------------------------------------------------------
def _html_token(text: str) -> str:
    return html.escape(visible(text) if text.strip() == "" else text.replace("\n", "⏎").replace("\t", "⇥"))


def _context_row(tokenizer, tokens: np.ndarray, acts: np.ndarray, s: int, p: int, scale: float, left: int = 12) -> str:
    cells = []
    for j in range(max(0, p - left), min(tokens.shape[1], p + 3)):
        a = float(acts[s, j])
        alpha = min(1.0, max(0.0, a / scale))
        outline = "outline:2px solid #c0392b;" if j == p else ""
        cells.append(
            f'<span title="{a:.3f}" style="background:rgba(255,140,0,{alpha:.2f});{outline}white-space:pre">'
            f"{_html_token(tokenizer.decode([int(tokens[s, j])]))}</span>"
        )
    return (
        f'<tr><td style="text-align:right;padding-right:6px;color:#555">{float(acts[s, p]):.2f}</td>'
        f'<td style="font-family:monospace;text-align:left">{"".join(cells)}</td></tr>'
    )


def _token_table(tokenizer, values: Tensor, title: str, colour: str, k: int) -> str:
    top = values.topk(k) if colour != NEGATIVE else values.topk(k, largest=False)
    biggest = float(top.values.abs().max()) or 1.0
    rows = "".join(
        f'<tr><td style="font-family:monospace;white-space:pre;text-align:left">'
        f"{html.escape(visible(tokenizer.decode([int(i)])))}</td>"
        f'<td><div style="background:{colour};height:10px;width:{int(80 * abs(float(v)) / biggest)}px"></div></td>'
        f'<td style="color:#555">{float(v):+.2f}</td></tr>'
        for v, i in zip(top.values, top.indices, strict=True)
    )
    return f'<div style="margin-right:18px"><strong>{title}</strong><table>{rows}</table></div>'


def _density_bars(values: np.ndarray, n_bins: int = 24) -> str:
    if len(values) == 0:
        return "<i>never fires on this sample</i>"
    counts, edges = np.histogram(values, bins=n_bins, range=(0.0, float(values.max())))
    tallest = counts.max() or 1
    bars = "".join(
        f'<div title="{edges[i]:.2f}–{edges[i + 1]:.2f}: {c}" style="display:inline-block;width:8px;margin-right:1px;'
        f'height:{max(1, int(60 * c / tallest))}px;background:#ff7f0e;vertical-align:bottom"></div>'
        for i, c in enumerate(counts)
    )
    return (
        f'<div style="height:62px;display:flex;align-items:flex-end">{bars}</div>'
        f'<div style="color:#555;font-size:90%">activation 0 to {float(values.max()):.2f} (when firing)</div>'
    )


def band_titles(n_bands: int) -> list[str]:
    """Titles of the activation bands of `quantile_examples`, highest first: "band 3/4-4/4 of max", ..."""
    return [
        f"band {n_bands - j - 1}/{n_bands}-{n_bands - j}/{n_bands} of the largest activation" for j in range(n_bands)
    ]


def dashboard_html(
    latent: int,
    acts: Float[Tensor, "n_seq seq"],
    tokens: Int[Tensor, "n_seq seq"],
    tokenizer,
    de_embedding: Float[Tensor, " d_vocab"],
    logit_effect: Float[Tensor, " d_vocab"],
    groups: list[tuple[str, tuple[Tensor, Tensor, Tensor]]],
    k_tokens: int = 8,
) -> str:
    """One latent's dashboard: firing frequency and activation histogram, de-embedding, promoted and
    suppressed tokens, and example groups ``(title, (values, seq_idx, pos_idx))`` with highlighted context
    (orange ∝ activation / the latent's largest activation; the example's token outlined)."""
    act_np, tok_np = as_array(acts), np.asarray(to_numpy(tokens))
    body = act_np[:, 1:]
    firing = body[body > 0]
    scale = float(body.max()) if body.size and body.max() > 0 else 1.0
    head = (
        f'<div style="font-size:120%;font-weight:bold">Latent #{latent}</div>'
        f'<div style="color:#555">fires on {len(firing) / max(1, body.size):.3%} of {body.size:,} tokens; '
        f"largest activation {scale:.2f}</div>"
    )
    tables = (
        '<div style="display:flex;flex-wrap:wrap;margin:8px 0">'
        f'<div style="margin-right:18px"><strong>activation density</strong>{_density_bars(firing)}</div>'
        + _token_table(
            tokenizer, torch.as_tensor(as_array(de_embedding)), "de-embedding (input tokens)", "#ff7f0e", k_tokens
        )
        + _token_table(tokenizer, torch.as_tensor(as_array(logit_effect)), "promotes", POSITIVE, k_tokens)
        + _token_table(tokenizer, torch.as_tensor(as_array(logit_effect)), "suppresses", NEGATIVE, k_tokens)
        + "</div>"
    )
    sections = []
    for title, (_, seq_idx, pos_idx) in groups:
        rows = "".join(
            _context_row(tokenizer, tok_np, act_np, int(s), int(p), scale)
            for s, p in zip(to_numpy(seq_idx).tolist(), to_numpy(pos_idx).tolist(), strict=True)
        )
        rows = rows or "<tr><td><i>no examples in this range</i></td></tr>"
        sections.append(
            f"<div><strong>{html.escape(title)}</strong><table style='border-collapse:collapse'>{rows}</table></div>"
        )
    return (
        '<div style="border:1px solid #ccc;border-radius:6px;padding:10px;margin:8px 0;max-width:960px;'
        f'font-family:sans-serif;font-size:13px">{head}{tables}{"".join(sections)}</div>'
    )


def save_dashboards(parts: list[str], path: str | Path, title: str = "Transcoder latents") -> Path:
    """A standalone HTML page (no scripts, no network) holding the given dashboards."""
    path = Path(path)
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h2 style='font-family:sans-serif'>{html.escape(title)}</h2>{''.join(parts)}</body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path


def show_html(markup: str) -> None:
    """Display HTML in a notebook (or print it outside one)."""
    try:
        from IPython.display import HTML, display

        display(HTML(markup))
    except ImportError:  # pragma: no cover - IPython is always there in the notebooks
        print(markup)
