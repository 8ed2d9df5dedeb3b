"""The grader's side of a grading kernel: installed before any of the submission's cells, called after them.

`tools.grading_run` sends this file's source to a fresh kernel and calls `install(...)` before the first
cell of the submission runs (nothing here is imported from the repository: the kernel runs in a disposable
copy of the curriculum). `install`

1. imports the section's checkers (and with them the reference solution and the shared framework) from the
   copy, which the runner has just checked is byte-identical to the instructor's curriculum;
2. takes every curriculum module it loaded out of `sys.modules`: the checkers keep their own private
   module graph, so a submission that imports `tests.checking` and replaces its functions, or rewrites the
   copy's files and reloads them, changes its own modules, never the grader's;
3. deletes the section's reference solution and checkers from the copy (and from the import system), so the
   submission can't import them: a check is only ever given the submission's own code;
4. puts a stub module at `tests.<section>`, so the submission's own check cells run (as no-ops: the grader
   runs each check itself), and snapshots the attributes of the libraries the checkers rely on (torch,
   numpy, einops, builtins ...);
5. puts in `builtins`, under a random name known only to the runner, the function that runs one check:
   it restores any library attribute the submission replaced, evaluates the name the section's source
   passes to the check (e.g. `ToyModel`) in the submission's namespace, refuses an object that comes from
   the reference solution, calls the pristine checker, fails the check when the submission's code replaced a
   library attribute while being checked, and returns the verdict as JSON.

What a submission can still do from inside the same interpreter (walk the garbage collector or the stack to
reach the grader's private objects, write memory through ctypes, run threads that race the checker) is out
of scope: see the threat model in the README.
"""

from __future__ import annotations

CURRICULUM_PACKAGES = ("tests", "solutions", "utils", "plotly_utils")
# Libraries whose attributes the checkers use; replacing one (e.g. `torch.allclose = lambda *a, **k: True`)
# is undone before each check, and fails the check when it happens during one.
WATCHED_MODULES = ("builtins", "torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.testing", "numpy",
                   "numpy.random", "einops", "math", "random", "functools", "operator", "inspect", "traceback", "json",
                   "copy", "types", "contextlib", "warnings", "itertools")  # fmt: skip
IPYTHON_BUILTINS = {
    "get_ipython",
    "display",
    "exit",
    "quit",
    "_",
    "__",
    "___",
    "__IPYTHON__",
    "In",
    "Out",
    "input",
    "raw_input",
}


def install(root: str, section: str, checks: list[str], entry: str) -> None:
    import builtins
    import contextlib
    import importlib
    import json
    import os
    import shutil
    import sys
    import threading
    import types

    from IPython import get_ipython

    sys.dont_write_bytecode = True
    sys.path.insert(0, root)
    for library in ("numpy", "einops"):  # loaded now, so they are watched from the start
        with contextlib.suppress(ImportError):
            importlib.import_module(library)
    before = set(sys.modules)
    module = importlib.import_module(f"tests.{section}")
    checking = sys.modules["tests.checking"]
    checkers = {name: getattr(module, name) for name in checks}
    not_done, check_failed = checking.NotDone, checking.CheckFailed
    for name in [n for n in sys.modules if n not in before and n.split(".")[0] in CURRICULUM_PACKAGES]:
        del sys.modules[name]  # the grader's modules are now private: the submission's imports load fresh ones
    importlib.invalidate_caches()

    # The submission never sees this section's reference or checkers.
    for folder in ("solutions", "tests"):
        for path in os.listdir(os.path.join(root, folder)):
            if path == f"{section}.py" or path.startswith(f"{section}_"):
                os.remove(os.path.join(root, folder, path))
        shutil.rmtree(os.path.join(root, folder, "__pycache__"), ignore_errors=True)
    tests = importlib.import_module("tests")  # a fresh package, the submission's own
    stub = types.ModuleType(f"tests.{section}", "Stand-ins: in grading, the grader runs each check itself.")
    for name in checks:
        stub.__dict__[name] = _stand_in(name)
    sys.modules[stub.__name__] = stub
    setattr(tests, section, stub)

    shell = get_ipython()
    user_ns = shell.user_ns
    watched = _snapshot()
    dumps, evaluate, settrace, setprofile = json.dumps, builtins.eval, sys.settrace, sys.setprofile
    thread_settrace = threading.settrace

    def check(func: str, expression: str) -> str:
        verdict = {"status": "failed", "message": "", "replaced": _restore(watched)}
        settrace(None)
        setprofile(None)
        thread_settrace(None)
        try:
            obj = evaluate(expression, user_ns)
        except BaseException as err:
            verdict["message"] = f"`{expression}` is not defined when this check runs ({_describe(err)})"
            return dumps(verdict)
        origin = _borrowed(obj, section)
        if origin:
            verdict["message"] = (
                f"`{expression}` comes from {origin}, not from your notebook: the check grades your own code"
            )
            return dumps(verdict)
        try:
            checkers[func](obj)
        except not_done as outcome:
            verdict.update(status="not attempted", message=outcome.text())
        except check_failed as outcome:
            verdict["message"] = outcome.text()
        except KeyboardInterrupt:
            verdict["message"] = "interrupted"
        except BaseException as err:
            verdict["message"] = f"your code raised {_describe(err)}"
        else:
            verdict["status"] = "passed"
        during = _restore(watched)
        if during:
            verdict.update(status="failed", message=f"your code replaced {', '.join(during)} while being checked")
        verdict["replaced"] += during
        return dumps(verdict)

    setattr(builtins, entry, check)
    watched[(builtins, entry)] = ("builtins", check)


def _describe(err: BaseException) -> str:
    """`Type: message`, whatever the exception's own __str__ does."""
    try:
        return f"{type(err).__name__}: {str(err)[:2000]}"
    except BaseException:
        return type(err).__name__


def _stand_in(name: str):
    def check(*args: object, **kwargs: object) -> None:
        print(f"({name}: in grading, the grader runs this check itself)")

    check.__name__ = name
    return check


def _owners() -> list[tuple[str, object]]:
    """The modules and classes to watch, by name: those of WATCHED_MODULES that are loaded, and torch's Tensor."""
    import sys

    owners = [(name, sys.modules[name]) for name in WATCHED_MODULES if name in sys.modules]
    torch = sys.modules.get("torch")
    if torch is not None:
        owners += [(f"torch.{cls.__name__}", cls) for cls in torch.Tensor.__mro__ if cls is not object]
        owners += [("torch.nn.Module", torch.nn.Module), ("torch.nn.Parameter", torch.nn.Parameter)]
    return owners


def _snapshot() -> dict:
    """{(owner, attribute): value} for every function, class or module attribute of the watched owners."""
    import types

    kinds = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, type)
    snapshot = {}
    for label, owner in _owners():
        for name, value in list(vars(owner).items()):
            if name in IPYTHON_BUILTINS and label == "builtins":
                continue
            if callable(value) or isinstance(value, kinds) or hasattr(value, "__get__"):
                snapshot[(owner, name)] = (label, value)
    return snapshot


def _restore(snapshot: dict) -> list[str]:
    """Put back every watched attribute that was replaced or deleted; the names of those that were."""
    import contextlib

    changed = []
    for (owner, name), entry in snapshot.items():
        label, value = entry
        current = vars(owner).get(name, _restore)
        if current is value or _same_method(current, value):
            continue
        if _library_wrapper(current, value):
            snapshot[(owner, name)] = (label, current)  # e.g. torch._dynamo wrapping torch.manual_seed on import
            continue
        changed.append(f"{label}.{name}")
        with contextlib.suppress(AttributeError, TypeError):  # an immutable type can't have been changed anyway
            setattr(owner, name, value)
    return changed


def _same_method(a: object, b: object) -> bool:
    """The same function bound anew to the same object (IPython rebinds a few builtins on every run)."""
    import types

    return (
        isinstance(a, types.MethodType)
        and isinstance(b, types.MethodType)
        and a.__func__ is b.__func__
        and a.__self__ is b.__self__
    )


def _library_wrapper(new: object, old: object) -> bool:
    """Whether `new` is an installed library's wrapper of `old` (functools.wraps, defined under the Python prefix)."""
    import sys

    code = getattr(new, "__code__", None)
    prefixes = tuple({sys.prefix, sys.base_prefix})
    return getattr(new, "__wrapped__", None) is old and code is not None and code.co_filename.startswith(prefixes)


def _borrowed(obj: object, section: str) -> str:
    """Where `obj` comes from when that is the section's reference solution or the checkers, else "".

    By module name, and by the file its functions' code was compiled from (the reference loaded by path).
    """
    import functools

    reference_file = f"solutions/{section}.py"
    candidates = [obj, getattr(obj, "__func__", None)]
    if isinstance(obj, functools.partial):
        candidates.append(obj.func)
    classes = list(obj.__mro__) if isinstance(obj, type) else []
    for candidate in candidates + classes:
        module = getattr(candidate, "__module__", None) or ""
        if module in (f"solutions.{section}", "tests") or module.startswith("tests."):
            return f"`{module}`"
    functions = [c for c in candidates if c is not None]
    for cls in classes:
        functions += list(vars(cls).values())
    for function in functions:
        function = getattr(function, "__func__", None) or getattr(function, "fget", None) or function
        code = getattr(function, "__code__", None)
        if code is not None and code.co_filename.replace("\\", "/").endswith(reference_file):
            return f"the reference solution ({reference_file})"
    return ""
