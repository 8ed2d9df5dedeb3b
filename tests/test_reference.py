"""Every check in every section's source passes on that section's reference code."""

from __future__ import annotations

import importlib

import pytest

from utils.paths import check_calls, section_names

CALLS = [(name, mod, func, arg) for name in section_names() for mod, func, arg in check_calls(name)]


@pytest.mark.parametrize(("name", "module", "func", "arg"), CALLS, ids=[f"{m}.{f}" for _, m, f, _ in CALLS])
def test_reference_passes(name, module, func, arg):
    reference = importlib.import_module(f"solutions.{name}")
    checker = getattr(importlib.import_module(f"tests.{module}"), func)
    impl = eval(arg, vars(reference)) if arg.strip() else None  # a name (or expression) from the source
    checker(impl, device="cpu")
