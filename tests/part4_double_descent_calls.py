"""Part 4: calling the learner's function, with the errors of the call itself named (a signature the call can't
take, a method that calls itself without end, an attribute read with the wrong accessor)."""

from __future__ import annotations

import re
import traceback
import types
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from solutions.part1_superposition import ToyModelConfig
from solutions.part4_double_descent import DoubleDescentModel
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


def training_slice_failure(got: Any, data: Any, what: str, batch_size: int) -> None:
    """generate_batch returned a run of consecutive training examples (a slice of self.train_data) instead of all of
    them: name the slice by its ends, and the batch size when its length is that."""
    n = data.shape[0]
    if got.ndim != data.ndim or tuple(got.shape[1:]) != tuple(data.shape[1:]) or not 0 < got.shape[0] < n:
        return
    m = got.shape[0]
    for start in range(n - m + 1):
        if not torch.allclose(got, data[start : start + m]):
            continue
        part = "the first" if start == 0 else "the last" if start + m == n else f"examples {start} to {start + m - 1},"
        why = (
            "batch_size rows: training is full batch: return the whole self.train_data and ignore batch_size"
            if m == batch_size
            else ("a train/validation split (half of them)? " if 2 * m == n else "a slice of self.train_data? ")
            + "generate_batch returns the whole training set self.train_data, every example, unchanged"
        )
        fail(
            f"{what} returned {part} {m} of the {n} training examples (rows {start}:{start + m}), expected all {n}",
            why,
            code="batch_size_rows" if m == batch_size else "training_slice",
        )


def size_one_axis_failure(out: Any, shape: tuple[int, ...], names: tuple[str, ...], what: str) -> None:
    """A call with an axis of size 1 (one instance): an output with that axis dropped is a .squeeze() (or an
    index [:, 0]) that only shows when the size is 1; name it before the generic shape message."""
    if not isinstance(out, torch.Tensor) or tuple(out.shape) == tuple(shape):
        return
    dropped = [i for i, size in enumerate(shape) if size == 1]
    if dropped and tuple(out.shape) == tuple(s for s in shape if s != 1):
        axes = ", ".join(names[i] for i in dropped)
        fail(
            f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)}: the axis {axes} of size 1 is gone",
            "keep every axis even when its size is 1: a .squeeze() without a dim (or an index like [:, 0]) drops it; "
            "use squeeze(dim) with the axis you mean, or no squeeze at all",
            code="squeezed",
        )


def size_one_batch_failure(generate_batch: Callable, device: Any) -> None:
    """generate_batch on a model with n_inst = 1 (the config allows it): a .squeeze() drops the inst axis there."""
    cfg = ToyModelConfig(n_inst=1, n_features=50, d_hidden=2)
    model = DoubleDescentModel(cfg, n_train=40, feature_probability=0.1, device=device)
    model.generate_batch = types.MethodType(generate_batch, model)
    what = "generate_batch(16) on a model with n_inst = 1"
    out = call_learner(generate_batch, what, model, 16)
    size_one_axis_failure(out, tuple(model.train_data.shape), ("examples", "inst", "feats"), what)
    # n_train = 1 (the contract allows any n_train >= 1): a .squeeze(0) drops the examples axis there
    model = DoubleDescentModel(ToyModelConfig(n_inst=3, n_features=50, d_hidden=2), 1, 0.1, device=device)
    model.generate_batch = types.MethodType(generate_batch, model)
    what = "generate_batch(16) on a model with n_train = 1"
    out = call_learner(generate_batch, what, model, 16)
    size_one_axis_failure(out, tuple(model.train_data.shape), ("examples", "inst", "feats"), what)
