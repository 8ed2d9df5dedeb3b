"""Small plotly helpers used in every notebook: imshow, line, scatter, bar, hist.

Each takes tensors, arrays or lists (never modifying them) and forwards extra keyword arguments to
plotly express. Every figure helper in the curriculum follows one convention: it shows the figure and
returns None, or with `show=False` returns the figure (to change or save it) without showing it.

What makes a figure readable is enforced here once for every figure drawn through these helpers: a fixed
colour range is widened to cover the data (a clipped range makes different panels look the same), figures are
at most MAX_WIDTH pixels wide, and reference lines (`hline`, `vline`) always have a visible width (the
`simple_white` template draws shapes with width 0).
Figures render offline: plotly.js is bundled with the `plotly` package, and `save_html` embeds it
rather than pointing at a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import torch

_LAYOUT_KEYS = ("title", "height", "width", "template", "showlegend")
MAX_WIDTH = 1000  # pixels: wider figures overflow a notebook column
REFERENCE_LINE = {"line_width": 1.5, "line_dash": "dot", "line_color": "grey"}


def to_numpy(x: Any) -> Any:
    """A numpy copy of a tensor (detached, on CPU); other values are returned as they are."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32 if x.is_floating_point() else x.dtype).numpy().copy()
    if isinstance(x, list | tuple) and x and isinstance(x[0], torch.Tensor):
        return [to_numpy(t) for t in x]
    return x


def as_array(x: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or list (for figure code that does arithmetic on it)."""
    return np.asarray(to_numpy(x), dtype=float)


def show_or_return(fig: go.Figure, show: bool = True) -> go.Figure | None:
    """Show the figure and return None, or (show=False) return it for further changes.

    Returning a figure that was already shown would display it twice when the call ends a notebook cell.
    """
    if not show:
        return fig
    fig.show()
    return None


def _finish(fig: go.Figure, kwargs_layout: dict, show: bool) -> go.Figure | None:
    layout = {k: v for k, v in kwargs_layout.items() if v is not None}
    if layout.get("width") is not None:
        layout["width"] = min(int(layout["width"]), MAX_WIDTH)
    fig.update_layout(**layout)
    return show_or_return(fig, show)


def covering_range(data: Any, low: float | None, high: float | None, symmetric: bool = False) -> tuple[float, float]:
    """A colour or axis range that contains every finite value of `data`: (low, high) widened where the data spill over.

    `symmetric` keeps the range centred on 0 (for diverging colour scales, so 0 stays white).
    """
    values = np.asarray(to_numpy(data), dtype=float)
    values = values[np.isfinite(values)]
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 1.0
    low = lo if low is None else min(low, lo)
    high = hi if high is None else max(high, hi)
    if symmetric:
        high = max(abs(low), abs(high))
        low = -high
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def hline(fig: go.Figure, y: float, **kwargs: Any) -> go.Figure:
    """A horizontal reference line that is visible in every template (a dotted grey line 1.5 px wide by default)."""
    fig.add_hline(y=y, **{**REFERENCE_LINE, **kwargs})
    return fig


def vline(fig: go.Figure, x: float, **kwargs: Any) -> go.Figure:
    """A vertical reference line that is visible in every template (a dotted grey line 1.5 px wide by default)."""
    fig.add_vline(x=x, **{**REFERENCE_LINE, **kwargs})
    return fig


def _split(kwargs: dict) -> tuple[dict, dict]:
    layout = {k: kwargs.pop(k) for k in _LAYOUT_KEYS if k in kwargs}
    return kwargs, layout


def imshow(x: Any, show: bool = True, facet_labels: list[str] | None = None, **kwargs: Any) -> go.Figure | None:
    """Heatmap of a 2D (or, with facet_col, 3D) array; diverging colours centred on 0 by default.

    One colour range for all facets (so they can be compared), covering the data: a `zmin`/`zmax` that would clip
    some values is widened to include them.
    """
    kwargs, layout = _split(kwargs)
    kwargs.setdefault("color_continuous_scale", "RdBu")
    data = to_numpy(x)
    diverging = kwargs["color_continuous_scale"] == "RdBu"
    if diverging:
        kwargs.pop("color_continuous_midpoint", None)  # the symmetric range below centres it on 0
    if diverging or "zmin" in kwargs or "zmax" in kwargs:
        kwargs["zmin"], kwargs["zmax"] = covering_range(
            data, kwargs.get("zmin"), kwargs.get("zmax"), symmetric=diverging
        )
    fig = px.imshow(data, **kwargs)
    if facet_labels is not None:
        # plotly names facet titles "facet_col=<index>" but does not list them in index order
        for annotation in fig.layout.annotations:
            index = int(annotation.text.split("=")[-1])
            annotation.text = facet_labels[index]
    return _finish(fig, layout, show)


def line(y: Any, x: Any = None, show: bool = True, **kwargs: Any) -> go.Figure | None:
    """One line per row of a 2D `y` (or a single line for 1D)."""
    kwargs, layout = _split(kwargs)
    y = np.asarray(to_numpy(y))
    if y.ndim == 1:
        fig = px.line(x=to_numpy(x) if x is not None else np.arange(len(y)), y=y, **kwargs)
    else:
        x_axis = to_numpy(x) if x is not None else np.arange(y.shape[1])
        names = kwargs.pop("names", [str(i) for i in range(y.shape[0])])
        fig = go.Figure([go.Scatter(x=x_axis, y=row, name=n, mode="lines") for row, n in zip(y, names, strict=True)])
        labels = kwargs.pop("labels", {})
        fig.update_layout(xaxis_title=labels.get("x"), yaxis_title=labels.get("y"))
        if kwargs.pop("log_y", False):
            fig.update_yaxes(type="log")
        if kwargs.pop("log_x", False):
            fig.update_xaxes(type="log")
    return _finish(fig, layout, show)


def scatter(x: Any, y: Any, show: bool = True, **kwargs: Any) -> go.Figure | None:
    kwargs, layout = _split(kwargs)
    fig = px.scatter(x=to_numpy(x), y=to_numpy(y), **kwargs)
    return _finish(fig, layout, show)


def bar(y: Any, x: Any = None, show: bool = True, **kwargs: Any) -> go.Figure | None:
    kwargs, layout = _split(kwargs)
    y = to_numpy(y)
    fig = px.bar(x=to_numpy(x) if x is not None else np.arange(len(y)), y=y, **kwargs)
    return _finish(fig, layout, show)


def hist(x: Any, show: bool = True, **kwargs: Any) -> go.Figure | None:
    kwargs, layout = _split(kwargs)
    fig = px.histogram(x=np.asarray(to_numpy(x)).ravel(), **kwargs)
    return _finish(fig, layout, show)


def save_html(fig: go.Figure, path: str | Path) -> Path:
    """Standalone HTML with plotly.js embedded (works offline: no CDN script tag)."""
    path = Path(path)
    fig.write_html(path, include_plotlyjs=True, full_html=True, auto_play=False)
    return path
