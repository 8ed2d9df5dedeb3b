"""Helpers for the pytest suite that proves each checker: correct variants pass, buggy ones fail right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.checking import CheckFailed, NotDone


def assert_passes(check: Callable, impl: Any, device: str = "cpu") -> None:
    """The checker accepts `impl` (a correct variant)."""
    try:
        check(impl, device=device)
    except (CheckFailed, NotDone) as outcome:
        pytest.fail(f"a correct implementation was rejected:\n{outcome}")


def assert_fails(check: Callable, impl: Any, code: str, device: str = "cpu") -> CheckFailed:
    """The checker rejects `impl` (a buggy variant) with the hint identified by `code`."""
    with pytest.raises(CheckFailed) as info:
        check(impl, device=device)
    assert info.value.code == code, f"expected hint code {code!r}, got {info.value.code!r}:\n{info.value}"
    assert info.value.hint or info.value.code in ("shape", "not_tensor", "returned_none", "not_finite", "exception"), (
        f"a failure with code {code!r} should carry a hint:\n{info.value}"
    )
    return info.value


def assert_not_done(check: Callable, impl: Any, device: str = "cpu") -> NotDone:
    """The checker reports a stub as 'not implemented yet'."""
    with pytest.raises(NotDone) as info:
        check(impl, device=device)
    assert "not implemented yet" in str(info.value)
    return info.value


def stub(*args, **kwargs):
    """What an unfinished exercise does: the proofs pass it to show a checker reports "not implemented yet"."""
    raise NotImplementedError("not implemented yet")
