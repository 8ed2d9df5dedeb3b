"""Every check in every section's source passes on that section's reference code."""

from __future__ import annotations

import importlib

import pytest

from utils.notebooks import check_calls, sections

CALLS = [(sec, mod, func, arg) for sec in sections() for mod, func, arg in check_calls(sec)]


@pytest.mark.parametrize(("sec", "module", "func", "arg"), CALLS, ids=[f"{m}.{f}" for _, m, f, _ in CALLS])
def test_reference_passes(sec, module, func, arg):
    reference = importlib.import_module(f"solutions.{sec.name}")
    checker = getattr(importlib.import_module(f"tests.{module}"), func)
    impl = eval(arg, vars(reference)) if arg.strip() else None  # a name (or expression) from the source
    checker(impl, device="cpu")
