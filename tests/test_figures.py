"""A lint over every figure in every executed solution notebook: what a program can see of "readable".

It fails on
* invisible shapes: a line shape (``add_hline``/``add_vline``/``add_shape``) without an explicit width
  (the ``simple_white`` template draws shapes with width 0);
* placeholder text ("new text": a subplot annotation that was never filled in);
* data outside a fixed colour range (``zmin``/``zmax``, ``cmin``/``cmax``) or a fixed axis range, so
  that several panels look the same because the data is clipped;
* a figure wider than 1000 px;
* a figure whose visible axes have no titles at all.

Rendering each figure and looking at it stays a human's job; this catches the regressions.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from typing import Any

import nbformat
import numpy as np
import pytest

from utils.paths import SOLUTIONS, section_names

PLOTLY = "application/vnd.plotly.v1+json"
MAX_WIDTH = 1000
SLACK = 0.01  # data may overshoot a fixed range by 1% of its span (markers drawn on the edge)


def figures(name: str) -> Iterator[tuple[str, dict]]:
    """(where, figure dict) for every plotly output of an executed solution notebook."""
    path = SOLUTIONS / f"{name}.ipynb"
    if not path.exists():
        return
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for j, out in enumerate(cell.get("outputs", [])):
            fig = out.get("data", {}).get(PLOTLY)
            if fig:
                yield f"{name} cell {i} output {j}", fig


def values(x: Any) -> np.ndarray:
    """Numbers of a trace field as a flat float array (decoding plotly's base64 'bdata'); non-numbers dropped."""
    if isinstance(x, dict) and "bdata" in x:
        arr = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x.get("dtype", "f8")))
        return arr.astype(float).ravel()
    if isinstance(x, list | tuple):
        out: list[float] = []
        for item in x:
            out.extend(values(item).tolist() if isinstance(item, list | tuple | dict) else _number(item))
        return np.asarray(out, dtype=float)
    return np.asarray(_number(x), dtype=float)


def _number(x: Any) -> list[float]:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return []
    return [float(x)] if math.isfinite(x) else []


def _outside(data: np.ndarray, low: float, high: float) -> bool:
    if data.size == 0:
        return False
    slack = SLACK * abs(high - low)
    return bool(data.min() < low - slack or data.max() > high + slack)


def _traces(fig: dict) -> Iterator[dict]:
    yield from fig.get("data", [])
    for frame in fig.get("frames", []) or []:
        yield from frame.get("data", [])


def _axis_key(ref: str | None, letter: str) -> str:
    """'x2' -> 'xaxis2'; None -> 'xaxis'."""
    suffix = (ref or letter)[1:]
    return f"{letter}axis{suffix}"


def lint(fig: dict) -> list[str]:
    """Every problem the lint finds in one figure (a plotly JSON dict)."""
    layout = fig.get("layout", {})
    problems = []
    width = layout.get("width")
    if width is not None and width > MAX_WIDTH:
        problems.append(f"{width} px wide (at most {MAX_WIDTH})")
    for shape in layout.get("shapes", []) or []:
        line_width = (shape.get("line") or {}).get("width")
        if shape.get("type", "line") == "line" and not line_width:
            problems.append("a line shape without an explicit line width is invisible in simple_white")
        if shape.get("type") in ("rect", "circle") and not line_width and not shape.get("fillcolor"):
            problems.append(f"a {shape.get('type')} shape with neither a line width nor a fill is invisible")
    texts = [a.get("text", "") for a in layout.get("annotations", []) or []]
    title = layout.get("title")
    texts.append(title.get("text", "") if isinstance(title, dict) else (title or ""))
    if any(isinstance(t, str) and t.strip().lower() == "new text" for t in texts):
        problems.append('placeholder annotation "new text"')
    problems += _colour_ranges(fig, layout)
    problems += _axis_ranges(fig, layout)
    problems += _axis_titles(layout)
    return problems


def _colour_ranges(fig: dict, layout: dict) -> list[str]:
    problems = []
    for key, axis in layout.items():
        if not key.startswith("coloraxis") or not isinstance(axis, dict):
            continue
        low, high = axis.get("cmin"), axis.get("cmax")
        if low is None or high is None:
            continue
        for trace in _traces(fig):
            if trace.get("coloraxis", "coloraxis") == key:
                data = values(trace.get("z", [])) if "z" in trace else values((trace.get("marker") or {}).get("color"))
                if _outside(data, low, high):
                    problems.append(
                        f"{key} is fixed to [{low}, {high}] but the data spans [{data.min():.3g}, {data.max():.3g}]"
                    )
    for trace in _traces(fig):
        for owner, low_key, high_key, field in (
            (trace, "zmin", "zmax", "z"),
            (trace.get("marker") or {}, "cmin", "cmax", "color"),
        ):
            low, high = owner.get(low_key), owner.get(high_key)
            if low is None or high is None:
                continue
            data = values(owner.get(field, []))
            if _outside(data, low, high):
                problems.append(
                    f"a {trace.get('type', 'trace')}'s colour range is fixed to [{low}, {high}] "
                    f"but its data spans [{data.min():.3g}, {data.max():.3g}]"
                )
    return problems


def _axis_ranges(fig: dict, layout: dict) -> list[str]:
    problems = []
    for trace in _traces(fig):
        kind = trace.get("type", "scatter")
        if kind not in ("scatter", "scattergl", "bar"):
            continue
        horizontal = trace.get("orientation") == "h"
        for letter in ("x", "y"):
            axis = layout.get(_axis_key(trace.get(f"{letter}axis"), letter)) or {}
            fixed = axis.get("range")
            if not fixed or axis.get("autorange") is True or None in fixed:
                continue
            data = values(trace.get(letter, []))
            if kind == "bar" and (letter == "x") == horizontal:
                data = np.append(data, 0.0)  # bars start at 0
            if axis.get("type") == "log":
                data = np.log10(data[data > 0])
            low, high = sorted(float(v) for v in fixed)
            if _outside(data, low, high):
                problems.append(
                    f"{letter} axis range fixed to [{low:.3g}, {high:.3g}] but a {kind} spans "
                    f"[{data.min():.3g}, {data.max():.3g}]"
                )
    return problems


def _axis_titles(layout: dict) -> list[str]:
    """Some visible x axis and some visible y axis must have a title (facets share the first one's)."""
    problems = []
    for letter in ("x", "y"):
        axes = [a for k, a in layout.items() if k.startswith(f"{letter}axis") and isinstance(a, dict)]
        shown = [a for a in axes if a.get("visible", True) is not False and a.get("showticklabels", True) is not False]
        if not shown:
            continue
        titled = [a for a in axes if isinstance(a.get("title"), dict) and (a["title"].get("text") or "").strip()]
        if not titled:
            problems.append(f"no {letter} axis has a title")
    return problems


NAMES = section_names()


@pytest.mark.parametrize("name", NAMES)
def test_every_figure_passes_the_lint(name):
    found = [f"{where}: {problem}" for where, fig in figures(name) for problem in lint(fig)]
    assert not found, "\n".join(found)


def test_the_lint_catches_what_it_should():
    good = {
        "data": [{"type": "heatmap", "z": [[0, 1], [2, 3]], "zmin": 0, "zmax": 3}],
        "layout": {"width": 800, "xaxis": {"title": {"text": "x"}}, "yaxis": {"title": {"text": "y"}}},
    }
    assert lint(good) == []
    cases = {
        "wide": {"layout": {**good["layout"], "width": 1800}},
        "invisible": {"layout": {**good["layout"], "shapes": [{"type": "line", "x0": 0, "x1": 1}]}},
        "placeholder": {"layout": {**good["layout"], "annotations": [{"text": "new text"}]}},
        "clipped colour": {"data": [{"type": "heatmap", "z": [[0, 5]], "zmin": 0, "zmax": 1}]},
        "clipped axis": {
            "data": [{"type": "bar", "orientation": "h", "x": [0.5, 3.6], "y": [0, 1]}],
            "layout": {**good["layout"], "xaxis": {"range": [0, 1.3], "title": {"text": "norm"}}},
        },
        "untitled": {"layout": {"xaxis": {}, "yaxis": {"title": {"text": "y"}}}},
        "clipped coloraxis": {
            "data": [
                {
                    "type": "heatmap",
                    "z": {"dtype": "f8", "bdata": base64.b64encode(np.array([0.0, 9.0]).tobytes()).decode()},
                }
            ],
            "layout": {**good["layout"], "coloraxis": {"cmin": 0, "cmax": 1}},
        },
    }
    for label, change in cases.items():
        fig = {"data": change.get("data", good["data"]), "layout": change.get("layout", good["layout"])}
        assert lint(fig), f"the lint missed: {label}"
    hidden = {"data": [], "layout": {"xaxis": {"visible": False}, "yaxis": {"showticklabels": False}}}
    assert lint(hidden) == []
