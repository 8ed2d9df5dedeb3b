"""Read-back for a batch_topk budget other than cfg.k: which fields of the config hold that number, and whether
batch_topk was seen called with it. A field is named only when its value is that budget; otherwise the text says
what was observed and names no cause."""

from __future__ import annotations

import dataclasses
from typing import Any


def fields_equal(cfg: Any, value: int) -> list[str]:
    """The integer fields of `cfg` (a dataclass) whose value is `value` (k itself left out)."""
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return []
    return [
        f.name
        for f in dataclasses.fields(cfg)
        if f.name != "k"
        and isinstance(getattr(cfg, f.name), int)
        and not isinstance(getattr(cfg, f.name), bool)
        and getattr(cfg, f.name) == value
    ]


def budget_text(other: int, k: int, cfg: Any = None, calls: Any = ()) -> str:
    """The hint's tail for an output equal to batch_topk(pre, k=other)."""
    seen = f"; batch_topk was called with k = {other}" if other in calls else ""
    names = [f"cfg.{n}" for n in fields_equal(cfg, other)]
    sums = {"k + 1": k + 1, "k - 1": k - 1, "2·k": 2 * k, "k // 2": k // 2, "k²": k * k}
    names += [f"{text} (from cfg.k = {k})" for text, value in sums.items() if value == other]
    known = f", and here {' and '.join(names)} equal {other}" if names else ""
    if cfg is not None and not names:
        known = f"; no field of the config is {other}, nor k ± 1, 2·k, k // 2 or k²"
    return f"{seen}. Any budget of {other} gives this output: a literal {other}{known}. Pass self.cfg.k"
