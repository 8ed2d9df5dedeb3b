"""Fast batched training for the double-descent section (part 4), plus its figures.

One call to :func:`train_sweep` trains a toy model ReLU(WᵀWx + b) for every (dataset size T, seed)
pair at once. The tricks that make the whole sweep fit in minutes on a 2-core CPU:

* every (T, seed) pair is an *instance* with its own W and b; the training sets of all instances are
  stacked into one ragged array of rows (instance k owns rows ``offsets[k]:offsets[k + 1]``), so no
  padding and no mask multiplications are needed;
* the training sets of one seed are nested (size T uses the first T examples of that seed's pool),
  which makes the curve over T smooth and generating the data cheap;
* inputs are stored sparsely (about ``n_features * p`` non-zeros per example), so ``h = Wx`` is a
  gather and a scatter-add instead of a dense matmul;
* forward and backward are written by hand: the only dense [rows, features] tensor is the ReLU
  output, reused in place as the gradient, so a step reads it about four times and autograd keeps
  nothing alive;
* the optimiser is torch's AdamW (decoupled weight decay) on [inst, ...] parameters: it is
  element-wise, so instances stay independent.

The loss of one instance is the mean over its training examples of ‖x − x'‖² (summed over features);
the total is the sum over instances, so every instance gets exactly the gradient of its own loss.

This module imports nothing from ``solutions/``: the section's reference code and this trainer are
two implementations of the same model, and the pytest suite compares them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor
from tqdm.auto import tqdm

from plotly_utils import show_or_return, to_numpy
from utils.device import get_device
from utils.schedules import warmup_cosine_lr


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class SweepConfig:
    """One double-descent sweep: every dataset size in `sizes`, `n_seeds` times each.

    The defaults are the CPU setting of the notebook: 1000 features with p = 0.01 keep the paper's
    10 active features per example at a tenth of its width; sizes stop at 1300 because the second
    descent is complete by T ≈ 800 at this width. 2000 full-batch steps with 100 warm-up steps at a
    learning rate of 3e-3 let the small-T models fit their training sets exactly and the models near
    the peak overfit far enough that the bump doubles the test loss. (At 1e-3 the same sweep gives a
    bump of about 3%: the models at the peak have not yet grown the large weights that make their
    errors confident.)
    """

    n_features: int = 1_000
    d_hidden: int = 2
    feature_probability: float = 0.01
    sizes: Sequence[int] = field(default_factory=lambda: [3, 5, 8, 13, 20, 32, 50, 80, 130, 200, 320, 500, 800, 1300])
    n_seeds: int = 2
    steps: int = 2_000
    warmup_steps: int = 100
    lr: float = 3e-3
    weight_decay: float = 1e-2
    n_test: int = 2_000
    seed: int = 0

    def __post_init__(self) -> None:
        self.sizes = [int(t) for t in self.sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be positive integers, got {self.sizes}")
        for name in ("n_features", "d_hidden", "n_seeds", "steps", "n_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.feature_probability <= 1:
            raise ValueError(f"feature_probability must lie in (0, 1], got {self.feature_probability}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps), got {self.warmup_steps} with steps={self.steps}")

    @property
    def n_inst(self) -> int:
        return len(self.sizes) * self.n_seeds


def full_fidelity_config() -> SweepConfig:
    """The paper's setting: 10,000 features, 2 hidden dimensions, S = 0.999, 50,000 steps, T from 3 to 30,000.

    Meant for a GPU (about 40 instances x up to 30,000 examples x 10,000 features per step).
    """
    sizes = np.unique(np.round(np.logspace(math.log10(3), math.log10(30_000), 25)).astype(int)).tolist()
    return SweepConfig(
        n_features=10_000,
        d_hidden=2,
        feature_probability=0.001,
        sizes=sizes,
        n_seeds=2,
        steps=50_000,
        warmup_steps=2_500,
        lr=1e-3,
        n_test=10_000,
    )


# --------------------------------------------------------------------------------------------
# Data: sparse, unit-norm examples
# --------------------------------------------------------------------------------------------
@dataclass
class SparseRows:
    """A [rows, n_features] matrix stored by its non-zeros (COO): entry e is at (row[e], col[e])."""

    n_rows: int
    n_features: int
    row: Tensor
    col: Tensor
    val: Tensor

    def to_dense(self) -> Float[Tensor, "rows feats"]:
        out = torch.zeros(self.n_rows, self.n_features, device=self.val.device)
        out[self.row, self.col] = self.val
        return out

    def take(self, n: int) -> SparseRows:
        """The first n rows."""
        keep = self.row < n
        return SparseRows(n, self.n_features, self.row[keep], self.col[keep], self.val[keep])


def sparse_unit_rows(
    n_rows: int, n_features: int, p: float, generator: torch.Generator, device: torch.device, chunk: int = 4096
) -> SparseRows:
    """Each feature present with probability p, U[0, 1] when present, then each row scaled to unit norm.

    Rows with no feature present stay zero. Generated in chunks so 10,000 features x 30,000 rows
    never exist as one dense tensor.
    """
    rows, cols, vals = [], [], []
    for start in range(0, n_rows, chunk):
        n = min(chunk, n_rows - start)
        present = torch.rand(n, n_features, generator=generator) < p
        values = torch.rand(n, n_features, generator=generator)
        r, c = present.nonzero(as_tuple=True)
        v = values[r, c]
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
    row, col, val = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    norm_sq = torch.zeros(n_rows).index_add_(0, row, val * val)
    val = val / norm_sq[row].sqrt()
    return SparseRows(n_rows, n_features, row.to(device), col.to(device), val.to(device))


def gram_dimensionality(vectors: Float[Tensor, "inst n d"]) -> Float[Tensor, "inst n"]:
    """Dimensionality ‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)² of every vector, via the d x d Gram matrix (O(n d²), not O(n²)).

    Σⱼ (v̂ᵢ·vⱼ)² = v̂ᵢᵀ (Σⱼ vⱼvⱼᵀ) v̂ᵢ, so D_i = ‖vᵢ‖⁴ / (vᵢᵀ G vᵢ). Zero vectors get 0.
    """
    vectors = vectors.double()
    gram = torch.einsum("kni,knj->kij", vectors, vectors)
    quad = torch.einsum("kni,kij,knj->kn", vectors, gram, vectors)
    norm_sq = (vectors**2).sum(-1)
    return torch.where(quad > 0, norm_sq**2 / quad.clamp_min(1e-300), 0.0).float()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """Everything measured in a sweep. Axis `inst` is (size, seed) flattened as size-major."""

    cfg: SweepConfig
    W: Float[Tensor, "inst d_hidden feats"]
    b: Float[Tensor, "inst feats"]
    train_loss: Float[Tensor, "sizes seeds"]
    test_loss: Float[Tensor, "sizes seeds"]
    train_hidden: list[Tensor]  # per instance: [T, d_hidden] hidden vectors of its training examples
    seconds: float
    loss_history: Float[Tensor, "logs inst"]

    @property
    def sizes(self) -> Tensor:
        return torch.tensor(self.cfg.sizes)

    def inst(self, size_index: int, seed: int = 0) -> int:
        return size_index * self.cfg.n_seeds + seed

    def feature_dimensionality(self) -> Float[Tensor, "inst feats"]:
        return gram_dimensionality(self.W.transpose(1, 2))

    def datapoint_dimensionality(self) -> list[Tensor]:
        return [gram_dimensionality(h[None])[0] for h in self.train_hidden]


def _hidden(W_t: Tensor, data: SparseRows, row_inst: Tensor) -> Tensor:
    """h = Wx for every row, from the sparse entries (W_t is [inst, feats, d])."""
    contrib = W_t[row_inst[data.row], data.col] * data.val[:, None]
    return torch.zeros(data.n_rows, W_t.shape[-1], device=W_t.device, dtype=W_t.dtype).index_add_(0, data.row, contrib)


def _block_loss_and_grad(
    Wb_k: Tensor, h1_k: Tensor, ent_flat: Tensor, ent_val: Tensor, buffer: Tensor, want: str
) -> tuple[float | None, Tensor | None, Tensor | None]:
    """Loss mean_t ‖x_t − ReLU(Wᵀh_t + b)‖² of one instance and/or its gradients.

    Wb_k is [d + 1, feats] (W with b as an extra row), h1_k is [T, d + 1] (h with a column of ones),
    so one matmul gives the pre-activations and one gives the gradients of W (output side) and b.
    The non-zeros of this instance's rows x are at flat positions `ent_flat` (row * feats + col, rows
    local) with values `ent_val`.
    `want` is "loss", "grad" or "both". Returns (loss, grad of Wb [d + 1, feats], grad of h [T, d]).
    """
    n_rows, d = h1_k.shape[0], Wb_k.shape[0] - 1
    out = torch.mm(h1_k, Wb_k, out=buffer[: n_rows * Wb_k.shape[1]].view(n_rows, -1)).relu_()  # the dense tensor
    flat = out.view(-1)
    on_support = flat[ent_flat]
    loss = None
    if want != "grad":
        # Σ (x − out)² = Σ out² − Σ_support out² + Σ_support (x − out)²
        total = out.pow(2).sum() - on_support.pow(2).sum() + (ent_val - on_support).pow(2).sum()
        loss = float(total) / n_rows
    if want == "loss":
        return loss, None, None
    # d loss / d z = 2 (out − x) · 1[z > 0] / T. Off the support x = 0, and out = 0 wherever z <= 0,
    # so `out` itself is the gradient there; fix the support entries, and apply 2 / T to the small results.
    flat.scatter_(0, ent_flat, torch.where(on_support > 0, on_support - ent_val, 0.0))
    scale = 2 / n_rows
    grad_Wb = (h1_k.T @ out).mul_(scale)  # [d + 1, feats]: rows 0..d-1 for W, row d for b
    grad_h = (out @ Wb_k[:d].T).mul_(scale)  # [T, d]
    return loss, grad_Wb, grad_h


def _with_ones(h: Tensor) -> Tensor:
    return torch.cat([h, torch.ones(h.shape[0], 1, device=h.device, dtype=h.dtype)], 1)


def _buffer(n_rows: int, n_features: int, device: torch.device) -> Tensor:
    return torch.empty(n_rows * n_features, device=device)


def evaluate(W: Float[Tensor, "inst d feats"], b: Float[Tensor, "inst feats"], data: SparseRows) -> Tensor:
    """Loss mean_t ‖x_t − ReLU(Wᵀ W x_t + b)‖² of every instance on the same data set. Returns [inst]."""
    losses = []
    buffer = _buffer(data.n_rows, data.n_features, W.device)
    row_inst = torch.zeros(data.n_rows, dtype=torch.long, device=W.device)
    with torch.no_grad():
        for k in range(W.shape[0]):
            h = _hidden(W[k : k + 1].transpose(1, 2), data, row_inst)
            Wb = torch.cat([W[k], b[k][None]], 0)
            flat = data.row * data.n_features + data.col
            losses.append(_block_loss_and_grad(Wb, _with_ones(h), flat, data.val, buffer, "loss")[0])
    return torch.tensor(losses)


@dataclass
class PackedData:
    """The training sets of all instances stacked as one ragged sparse array (instance k owns a block of rows)."""

    blocks: list[SparseRows]
    rows: SparseRows
    offsets: list[int]
    row_inst: Tensor
    block_flat: list[Tensor]  # per block: row * feats + col of its non-zeros (rows local)
    ent_flat: Tensor  # per non-zero: inst * feats + col

    @classmethod
    def pack(cls, blocks: list[SparseRows]) -> PackedData:
        n = blocks[0].n_features
        offsets = [0, *np.cumsum([blk.n_rows for blk in blocks]).tolist()]
        row = torch.cat([blk.row + offsets[k] for k, blk in enumerate(blocks)])
        rows = SparseRows(
            offsets[-1], n, row, torch.cat([blk.col for blk in blocks]), torch.cat([blk.val for blk in blocks])
        )
        device = row.device
        sizes = torch.tensor(offsets, device=device).diff()
        row_inst = torch.repeat_interleave(torch.arange(len(blocks), device=device), sizes)
        block_flat = [blk.row * n + blk.col for blk in blocks]
        return cls(blocks, rows, offsets, row_inst, block_flat, row_inst[rows.row] * n + rows.col)


def sweep_loss_and_grad(
    Wb: Float[Tensor, "inst d_plus_1 feats"], data: PackedData, buffer: Tensor, want_loss: bool = True
) -> tuple[Tensor, list[float | None]]:
    """Gradient of Σ_k loss_k with respect to Wb = [W; b] (and each loss_k if `want_loss`), by hand."""
    n_inst, d, n = Wb.shape[0], Wb.shape[1] - 1, Wb.shape[2]
    with torch.no_grad():
        h1 = _with_ones(_hidden(Wb[:, :d].transpose(1, 2), data.rows, data.row_inst))
        grad = torch.empty_like(Wb)
        grad_h = torch.empty(data.rows.n_rows, d, device=Wb.device, dtype=Wb.dtype)
        losses = []
        for k, blk in enumerate(data.blocks):
            lo, hi = data.offsets[k], data.offsets[k + 1]
            loss, grad[k], grad_h[lo:hi] = _block_loss_and_grad(
                Wb[k], h1[lo:hi], data.block_flat[k], blk.val, buffer, "both" if want_loss else "grad"
            )
            losses.append(loss)
        # input side of W: h_t = Σ_i x_ti W[:, i], so grad W[k, :, i] += Σ_t x_ti grad_h[t]
        contrib = grad_h[data.rows.row] * data.rows.val[:, None]
        input_side = torch.zeros(n_inst * n, d, device=Wb.device, dtype=Wb.dtype).index_add_(0, data.ent_flat, contrib)
        grad[:, :d] += input_side.view(n_inst, n, d).transpose(1, 2)
    return grad, losses


def train_sweep(
    cfg: SweepConfig, device: torch.device | str | None = None, progress: bool = True, cpu_threads: int | None = 1
) -> SweepResult:
    """Train one toy model per (size, seed), all in one loop, full batch, AdamW + warm-up-cosine.

    On a CPU the loop runs on `cpu_threads` threads (None: torch's setting). One is the default: the
    per-instance blocks are small, and on a busy machine two threads were several times slower than
    one (threads waiting for each other), while on an idle one the gain of a second thread is modest.
    """
    device = torch.device(device) if device is not None else get_device()
    threads = torch.get_num_threads()
    if device.type == "cpu" and cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    try:
        return _train_sweep(cfg, device, progress)
    finally:
        torch.set_num_threads(threads)


def _train_sweep(cfg: SweepConfig, device: torch.device, progress: bool) -> SweepResult:
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    t_max, n, d = max(cfg.sizes), cfg.n_features, cfg.d_hidden
    pools = [sparse_unit_rows(t_max, n, cfg.feature_probability, gen, device) for _ in range(cfg.n_seeds)]
    tests = [sparse_unit_rows(cfg.n_test, n, cfg.feature_probability, gen, device) for _ in range(cfg.n_seeds)]
    # Instance k = (size i, seed s) with k = i * n_seeds + s; its training set is the first T rows of pool s.
    data = PackedData.pack([pools[s].take(t) for t in cfg.sizes for s in range(cfg.n_seeds)])
    buffer = _buffer(t_max, n, device)

    # W and b live in one parameter Wb = [W; b] of shape [inst, d + 1, feats]; AdamW decays both.
    std = (2 / (d + n)) ** 0.5
    Wb = torch.cat([torch.randn(cfg.n_inst, d, n, generator=gen) * std, torch.zeros(cfg.n_inst, 1, n)], 1)
    Wb = Wb.to(device).requires_grad_()
    opt = torch.optim.AdamW([Wb], lr=cfg.lr, weight_decay=cfg.weight_decay)
    log_every = max(1, cfg.steps // 50)
    history = []
    bar = tqdm(range(cfg.steps), disable=not progress, mininterval=10.0, desc=f"training {cfg.n_inst} models")
    for step in bar:
        opt.param_groups[0]["lr"] = cfg.lr * warmup_cosine_lr(step, cfg.steps, cfg.warmup_steps)
        log = step % log_every == 0 or step == cfg.steps - 1
        Wb.grad, losses = sweep_loss_and_grad(Wb.detach(), data, buffer, want_loss=log)
        opt.step()
        if log:
            history.append(losses)
            bar.set_postfix(loss=f"{sum(losses):.4g}")
    Wb = Wb.detach()
    W, b = Wb[:, :d], Wb[:, d]
    train_loss = torch.cat([evaluate(W[k : k + 1], b[k : k + 1], blk) for k, blk in enumerate(data.blocks)])
    test_loss = torch.stack(
        [evaluate(W[s :: cfg.n_seeds], b[s :: cfg.n_seeds], tests[s]) for s in range(cfg.n_seeds)], 1
    )
    zeros = [torch.zeros(blk.n_rows, dtype=torch.long, device=device) for blk in data.blocks]
    train_hidden = [_hidden(W[k : k + 1].transpose(1, 2), blk, zeros[k]).cpu() for k, blk in enumerate(data.blocks)]
    return SweepResult(
        cfg=cfg,
        W=W.cpu().contiguous(),
        b=b.cpu().contiguous(),
        train_loss=train_loss.reshape(len(cfg.sizes), cfg.n_seeds),
        test_loss=test_loss,
        train_hidden=train_hidden,
        seconds=time.perf_counter() - start,
        loss_history=torch.tensor(history),
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
_SEED_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def plot_loss_vs_size(
    sizes: Sequence[int] | Tensor,
    train_loss: Float[Tensor, "sizes seeds"],
    test_loss: Float[Tensor, "sizes seeds"],
    title: str = "Loss against the number of training examples T",
    show: bool = True,
) -> go.Figure | None:
    """Left: test loss alone (log-log, its own range so the bump shows). Right: train and test loss together.

    Lines are means over seeds, faint dots individual seeds; the star marks the double-descent peak.
    """
    T = np.asarray(to_numpy(torch.as_tensor(sizes)), dtype=float)
    train, test = np.asarray(to_numpy(train_loss), dtype=float), np.asarray(to_numpy(test_loss), dtype=float)
    peak = find_loss_peak(torch.as_tensor(test))[1]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["test loss", "train and test loss"], horizontal_spacing=0.1)
    panels = [(1, [("test", test, "#d62728")]), (2, [("test", test, "#d62728"), ("train", train, "#1f77b4")])]
    for col, curves in panels:
        for name, values, colour in curves:
            first = col == 2 or name == "train"
            fig.add_trace(
                go.Scatter(
                    x=T,
                    y=values.mean(1),
                    mode="lines+markers",
                    name=f"{name} loss (mean over seeds)",
                    line=dict(color=colour, width=3),
                    legendgroup=name,
                    showlegend=first,
                ),
                row=1,
                col=col,
            )
            for s in range(values.shape[1]):
                fig.add_trace(
                    go.Scatter(
                        x=T,
                        y=values[:, s],
                        mode="markers",
                        marker=dict(color=colour, size=5, opacity=0.4),
                        name=f"{name}, single seeds",
                        legendgroup=f"{name}-seeds",
                        showlegend=first and s == 0,
                    ),
                    row=1,
                    col=col,
                )
        fig.add_trace(
            go.Scatter(
                x=[T[peak]],
                y=[test.mean(1)[peak]],
                mode="markers",
                name=f"test-loss peak: T = {int(T[peak])}",
                marker=dict(symbol="star", size=16, color="black"),
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(type="log", title="training examples T")
    fig.update_yaxes(type="log", title="loss: mean over examples of ‖x − x'‖²", col=1)
    fig.update_yaxes(type="log", exponentformat="power", col=2)
    fig.update_layout(title=title, template="simple_white", height=450, width=990, legend=dict(font_size=11))
    return show_or_return(fig, show)


def plot_datapoints_and_features(
    hidden: Sequence[Tensor] | Tensor,
    W: Float[Tensor, "inst 2 feats"],
    titles: Sequence[str] | None = None,
    title: str | None = None,
    n_features_shown: int = 300,
    share_rows: bool = False,
    show: bool = True,
) -> go.Figure | None:
    """Per instance (a column), the hidden vectors h = Wx of its training examples (top, red) and its feature
    columns Wᵢ (bottom, blue), each drawn as a line from the origin.

    `hidden`: per instance a [T, 2] tensor (a list, or one [inst, T, 2] tensor). Only the `n_features_shown`
    longest features are drawn (the rest are ~0). Each panel is square and centred on the origin; with
    `share_rows` the panels of a row share one scale (for instances that are meant to be compared), otherwise
    each panel is scaled to its own vectors (read the scale from its ticks).
    """
    W_np = np.asarray(to_numpy(W), dtype=float)
    if W_np.ndim != 3 or W_np.shape[1] != 2:
        raise ValueError(f"W should have shape [inst, 2, feats], got {W_np.shape}")
    hs = [np.asarray(to_numpy(h), dtype=float) for h in hidden]
    n_inst = W_np.shape[0]
    if len(hs) != n_inst:
        raise ValueError(f"got hidden vectors for {len(hs)} instances and W for {n_inst}")
    names = list(titles) if titles is not None else [f"instance {k}" for k in range(n_inst)]
    fig = make_subplots(
        rows=2, cols=n_inst, subplot_titles=names, horizontal_spacing=0.35 / n_inst, vertical_spacing=0.1
    )
    rows = []
    for k in range(n_inst):
        w = W_np[k].T  # [feats, 2]
        keep = np.argsort(-np.linalg.norm(w, axis=1))[:n_features_shown]
        rows.append([hs[k], w[keep]])
    limits = [[1.1 * max(1e-6, float(np.abs(v).max()) if len(v) else 1.0) for v in pair] for pair in rows]
    if share_rows:
        limits = [[max(lim[r] for lim in limits) for r in range(2)] for _ in limits]
    for k in range(n_inst):
        for row, (vecs, colour) in enumerate(zip(rows[k], ["#d62728", "#1f77b4"], strict=True), start=1):
            xs = np.stack([np.zeros(len(vecs)), vecs[:, 0], np.full(len(vecs), np.nan)], 1).ravel()
            ys = np.stack([np.zeros(len(vecs)), vecs[:, 1], np.full(len(vecs), np.nan)], 1).ravel()
            fig.add_trace(
                go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=1.5), opacity=0.7, hoverinfo="skip"),
                row=row,
                col=k + 1,
            )
            fig.add_trace(
                go.Scatter(x=vecs[:, 0], y=vecs[:, 1], mode="markers", marker=dict(color=colour, size=4)),
                row=row,
                col=k + 1,
            )
            lim = limits[k][row - 1]
            index = (row - 1) * n_inst + k + 1
            anchor = "x" if index == 1 else f"x{index}"
            fig.update_xaxes(range=[-lim, lim], nticks=5, tickfont_size=9, row=row, col=k + 1)
            fig.update_yaxes(range=[-lim, lim], nticks=5, tickfont_size=9, scaleanchor=anchor, row=row, col=k + 1)
    fig.update_yaxes(title_text="training examples: h = Wx", title_font_size=11, row=1, col=1)
    fig.update_yaxes(title_text="features: Wᵢ", title_font_size=11, row=2, col=1)
    fig.update_xaxes(title_text="hidden dim 1", title_font_size=11, row=2)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        title=title, template="simple_white", showlegend=False, height=560, width=min(1000, 140 + 215 * n_inst)
    )
    return show_or_return(fig, show)


def top_dimensionality(dims: Tensor, k: int = 5) -> float:
    """Mean of the k largest dimensionalities in a set (all of them if there are fewer than k)."""
    return float(dims.topk(min(k, dims.numel())).values.mean())


def dimensionality_summary(result: SweepResult, k: int = 5) -> tuple[Tensor, Tensor]:
    """Per (size, seed): mean of the k largest data-point dimensionalities, and the same for features."""
    feats = result.feature_dimensionality()
    data = result.datapoint_dimensionality()
    n_sizes, n_seeds = len(result.cfg.sizes), result.cfg.n_seeds
    data_top = torch.tensor([top_dimensionality(d, k) for d in data]).reshape(n_sizes, n_seeds)
    feat_top = torch.tensor([top_dimensionality(f, k) for f in feats]).reshape(n_sizes, n_seeds)
    return data_top, feat_top


def plot_dimensionality_vs_size(
    sizes: Sequence[int] | Tensor,
    datapoint_dims: Sequence[Tensor],
    feature_dims: Sequence[Tensor],
    n_seeds: int,
    k: int = 5,
    max_points: int = 60,
    title: str = "Dimensionality of data points and of features against T",
    show: bool = True,
) -> go.Figure | None:
    """Dots: the `max_points` largest dimensionalities of each model (data points red, features blue).

    Lines: the mean of the k largest, averaged over seeds. `datapoint_dims` and `feature_dims` hold one
    1D tensor per instance, ordered (size, seed) size-major as in `SweepResult`.
    """
    T = [int(t) for t in to_numpy(torch.as_tensor(sizes))]
    if len(datapoint_dims) != len(T) * n_seeds or len(feature_dims) != len(T) * n_seeds:
        raise ValueError(
            f"expected {len(T) * n_seeds} instances (sizes x seeds), got {len(datapoint_dims)} and {len(feature_dims)}"
        )
    fig = go.Figure()
    rng = np.random.default_rng(0)
    for name, dims, colour in [("data points", datapoint_dims, "#d62728"), ("features", feature_dims, "#1f77b4")]:
        xs, ys, tops = [], [], np.zeros((len(T), n_seeds))
        for k_inst, d in enumerate(dims):
            values = np.sort(np.asarray(to_numpy(d), dtype=float))[::-1]
            i, s = divmod(k_inst, n_seeds)
            tops[i, s] = values[:k].mean()
            shown = values[:max_points]
            xs.append(T[i] * np.exp(rng.uniform(-0.08, 0.08, len(shown))))  # jitter on the log axis
            ys.append(shown)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate(xs),
                y=np.concatenate(ys),
                mode="markers",
                name=f"{name} (each dot one)",
                marker=dict(color=colour, size=3, opacity=0.35),
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=T,
                y=tops.mean(1),
                mode="lines+markers",
                name=f"{name}: mean of top {k}",
                line=dict(color=colour, width=3),
            )
        )
    fig.update_xaxes(type="log", title="training examples T")
    fig.update_yaxes(title="dimensionality", range=[0, 1.05])
    fig.update_layout(title=title, template="simple_white", height=450, width=800)
    return show_or_return(fig, show)


def find_loss_peak(test_loss: Float[Tensor, "sizes seeds"]) -> tuple[int, int]:
    """(index of the dip, index of the peak) of the seed-averaged test loss.

    The peak is the most prominent interior local maximum: the size j that maximises
    min(loss[j] - min(loss[:j]), loss[j] - min(loss[j + 1:])), i.e. the largest rise that is followed
    by a fall. (A small training set can have a high test loss too, an over-fitted model, but that is
    the start of the first descent, not the double-descent bump.) The dip is the lowest point before it.
    """
    mean = test_loss.double().mean(-1)
    if len(mean) < 3:
        raise ValueError("need at least 3 dataset sizes to find a peak")
    scores = [min(mean[j] - mean[:j].min(), mean[j] - mean[j + 1 :].min()) for j in range(1, len(mean) - 1)]
    peak = 1 + int(torch.stack(scores).argmax())
    return int(mean[:peak].argmin()), peak
