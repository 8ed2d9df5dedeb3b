"""Part 4: calling the learner's function, with the errors of the call itself named (a signature the call can't
take, a method that calls itself without end, an attribute read with the wrong accessor)."""

from __future__ import annotations

import re
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from torch import nn

from tests.checking import fail


def call_learner(fn: Callable, what: str, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function; a call its signature can't take is named (not reported as a crash)."""
    try:
        return fn(*args, **kwargs)
    except TypeError as err:
        if err.__traceback__ is not None and err.__traceback__.tb_next is None:  # raised by the call itself
            fail(f"{what} could not be called: {err}", "keep the signature of the exercise's stub", code="signature")
        raise
    except RecursionError as err:
        recursion_failure(err, what)
        raise
    except AttributeError as err:
        accessor_failure(err, what, args)
        raise


def recursion_failure(err: RecursionError, what: str) -> None:
    """Name a function that calls itself without end: the same line repeats down the RecursionError's traceback."""
    frames = traceback.extract_tb(err.__traceback__)
    counts = Counter((f.filename, f.lineno, f.name) for f in frames)
    if not counts:
        return
    (_, _, name), n = counts.most_common(1)[0]
    line = next(f.line for f in frames if f.name == name)
    if n < 20:
        return  # a deep but finite chain of different calls: the generic error report shows it
    fail(
        f"{what} never returns: `{name}` calls itself ({n} nested calls before Python's RecursionError) on the line "
        f"`{line}`",
        "infinite recursion: the method calls itself, and that call calls it again, with nothing to stop it. Compute "
        "the result instead of calling the same function (for a method of the model, use the attribute or buffer it "
        "should return, e.g. self.train_data, not self.<the same method>(...))",
        code="recursion",
    )


_ACCESSORS = {"an nn.Parameter": "get_parameter", "a buffer": "get_buffer", "an nn.Module": "get_submodule"}


def accessor_failure(err: AttributeError, what: str, args: tuple) -> None:
    """Name an attribute fetched with the wrong one of torch's get_parameter / get_buffer / get_submodule: torch says
    what it is not; the module in the call's arguments says what it is (a buffer registered with register_buffer is
    no parameter, and the reverse)."""
    found = re.search(r"`([\w.]+)` is not (an nn\.Parameter|a buffer|an nn\.Module)", str(err))
    if not found:
        return
    name, kind = found.groups()
    module = next((a for a in args if isinstance(a, nn.Module)), None)
    buffers = dict(module.named_buffers()) if module is not None else {}
    params = dict(module.named_parameters()) if module is not None else {}
    modules = dict(module.named_modules()) if module is not None else {}
    actual = next(
        (
            (label, accessor)
            for table, label, accessor in (
                (buffers, "a buffer (register_buffer: data, not trained)", "get_buffer"),
                (params, "an nn.Parameter", "get_parameter"),
                (modules, "a submodule", "get_submodule"),
            )
            if name in table
        ),
        None,
    )
    seen = f"self.{name} is {actual[0]}" if actual else f"self.{name} is not {kind}"
    fix = f"self.{name}" + (f" (or self.{actual[1]}('{name}'))" if actual else "")
    fail(
        f"{what} raised AttributeError: {err}; {seen}",
        f"{_ACCESSORS[kind]}('{name}') only finds {kind}"
        + (f", and {name} is {actual[0]}" if actual else "")
        + f": read it as {fix}",
        code="wrong_accessor",
    )
