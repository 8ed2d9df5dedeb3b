"""Every check in every section's source passes on that section's reference code, and every catalogue of
known mistakes it consults can tell its mistakes apart on the checker's inputs."""

from __future__ import annotations

import importlib

import pytest

from tests.checking import audit_catalogues
from utils.paths import check_calls, section_names

CALLS = [(name, mod, func, arg) for name in section_names() for mod, func, arg in check_calls(name)]


@pytest.mark.parametrize(("name", "module", "func", "arg"), CALLS, ids=[f"{m}.{f}" for _, m, f, _ in CALLS])
def test_reference_passes_and_mistakes_are_separable(name, module, func, arg):
    reference = importlib.import_module(f"solutions.{name}")
    checker = getattr(importlib.import_module(f"tests.{module}"), func)
    impl = eval(arg, vars(reference)) if arg.strip() else None  # a name (or expression) from the source
    with audit_catalogues() as problems:
        checker(impl, device="cpu")
    assert not problems, "the checker's inputs can't tell these mistakes apart:\n" + "\n".join(problems)
