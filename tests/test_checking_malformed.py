"""No checker crashes on what a learner hands it: every checker, fed a battery of malformed answers, answers
with its own one-line verdict (a failure naming what is wrong, or "not implemented yet"), never with an
exception from inside the checker's code.

The battery is built from each section's source: a check's argument names the reference object (a class,
a function or an autograd Function); for a class, the methods that hold a `### BEGIN SOLUTION` fence and
that the checker calls are the ones it judges, and each is replaced in turn by one that returns junk.
"""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest
import torch
from torch import nn

from tests.checking import CheckFailed, NotDone
from utils.paths import SOLUTIONS, check_calls, section_names

JUNK = {
    "None": None,
    "int": 42,
    "string": "oops",
    "list": [1.0, 2.0],
    "empty list": [],
    "dict": {},
    "pair of None": (None, None),
    "scalar NaN": torch.tensor(float("nan")),
    "tiny tensor": torch.zeros(1),
    "int tensor": torch.zeros(3, 4, dtype=torch.long),
    "NaN matrix": torch.full((2, 2), float("nan")),
    "meta tensor": torch.empty(2, 3, device="meta"),
    "sparse tensor": torch.eye(3).to_sparse(),
    "half tensor": torch.zeros(3, 4, dtype=torch.half),
}


def _raise(*args, **kwargs):
    raise RuntimeError("boom (raised by the learner's code)")


def exercised_methods(section: str, cls: type) -> list[str]:
    """Methods (and properties) of `cls` whose body in the section source holds a solution fence."""
    source = (SOLUTIONS / f"{section}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and "### BEGIN SOLUTION" in (
                    ast.get_source_segment(source, item) or ""
                ):
                    names.append(item.name)
    return names


def _stub(*args, **kwargs):
    raise NotImplementedError


def calls(checker, reference: type, method: str) -> bool:
    """Whether `checker` calls `method`: with it stubbed out, the check no longer passes. A check must not
    judge methods of later exercises (a learner may not have written them yet), so only these get junk."""
    original = inspect.getattr_static(reference, method)
    attr = property(_stub) if isinstance(original, property) else _stub
    try:
        checker(type("Probe", (reference,), {method: attr}), device="cpu")
    except Exception:  # NotDone, or any failure: the method is used
        return True
    return False


def junk_variants(section: str, reference: object, checker) -> dict[str, object]:
    """name -> a malformed implementation shaped like `reference` (same kind of object)."""
    variants: dict[str, object] = {"None passed": None, "int passed": 7}
    if inspect.isclass(reference):
        variants["an instance, not the class"] = object()
        variants["a function, not the class"] = _raise
        methods = [m for m in exercised_methods(section, reference) if calls(checker, reference, m)]
        for method in methods:
            original = inspect.getattr_static(reference, method)
            for label, value in {**JUNK, "raises": _raise}.items():
                if method == "__init__":
                    if label != "None":
                        continue

                    def body(self, *args, **kwargs):
                        nn.Module.__init__(self) if isinstance(self, nn.Module) else None

                elif label == "raises":
                    body = _raise
                else:
                    body = (lambda v: lambda *args, **kwargs: v)(value)
                if isinstance(original, property):
                    attr = property(body)
                elif isinstance(original, staticmethod):
                    attr = staticmethod(body)
                else:
                    attr = body
                variants[f"{method} returns {label}"] = type(f"Junk{reference.__name__}", (reference,), {method: attr})
    else:
        variants["a class, not a function"] = type("NotAFunction", (), {})
        for label, value in JUNK.items():
            variants[f"returns {label}"] = (lambda v: lambda *args, **kwargs: v)(value)
        variants["raises"] = _raise
    return variants


CASES = []
for _name in section_names():
    for _module, _func, _arg in check_calls(_name):
        CASES.append((_name, _module, _func, _arg))


@pytest.mark.parametrize(("section", "module", "func", "arg"), CASES, ids=[f"{m}.{f}" for _, m, f, _ in CASES])
def test_checker_never_crashes_on_malformed_answers(section, module, func, arg):
    reference_module = importlib.import_module(f"solutions.{section}")
    checker = getattr(importlib.import_module(f"tests.{module}"), func)
    reference = eval(arg, vars(reference_module))
    crashes = []
    for label, impl in junk_variants(section, reference, checker).items():
        try:
            checker(impl, device="cpu")
        except NotDone:
            continue
        except CheckFailed as outcome:
            if outcome.code == "bad_output":
                crashes.append(f"{label}: the checker's own code raised: {outcome.message.splitlines()[0]}")
            continue
        except Exception as error:
            crashes.append(f"{label}: {type(error).__name__}: {error}")
            continue
        crashes.append(f"{label}: accepted")
    assert not crashes, f"{module}.{func}:\n" + "\n".join(crashes)
