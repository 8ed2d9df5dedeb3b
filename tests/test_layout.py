"""The repository's layout rules, read from the code itself.

* Dependencies point one way: `plotly_utils` <- `utils/` <- `solutions/` <- `tests/`; `tools/` may use
  them all and nothing imports `tools/` at module level (or in an `if MAIN:` block).
* `utils/` imports no section code: no `solutions/`, no `tests/`; its shared modules (device, training,
  paths, ...) import no section's given code either.
* A section (its source, checkers, proofs and given code) imports only itself and earlier sections.
* Solutions import checkers only inside `if MAIN:` blocks (the notebook's check cells).
* No function is assigned onto a class outside a class body (no monkey-patching).
* No source file is over 800 lines.
* Every exercise's four addresses named in the README exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from utils.paths import ROOT, check_calls, section_names

PACKAGES = ("utils", "solutions", "tests", "tools")
MAX_LINES = 800
SECTIONS = section_names()


def python_files() -> list[Path]:
    files = [ROOT / "plotly_utils.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).glob("*.py"))
    return files


def _is_main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "MAIN"


def imports(path: Path) -> list[tuple[str, str]]:
    """(module imported, where) for every import in the file; where is "module", "main" (an `if MAIN:`
    block at module level) or "local" (inside a function or class)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                inner = "local"
            elif where == "module" and _is_main_guard(child):
                inner = "main"
            if isinstance(child, ast.Import):
                found.extend((alias.name, where) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, where))
                found.extend((f"{child.module}.{alias.name}", where) for alias in child.names)
            visit(child, inner)

    visit(tree, "module")
    return found


def package_of(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in (*PACKAGES, "plotly_utils") else None


def section_of(name: str) -> str | None:
    """The section a module or file stem belongs to (`part5a_sae_architectures`, `test_part5b_absorption_checkers`,
    `part5b_absorption_mistakes` ...), or None for shared code."""
    stem = name.removeprefix("test_")
    matches = [s for s in SECTIONS if stem == s or stem.startswith(s + "_")]
    return max(matches, key=len) if matches else None


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def violations() -> list[str]:
    order = {s: i for i, s in enumerate(SECTIONS)}
    problems = []
    for path in python_files():
        package = "plotly_utils" if path.name == "plotly_utils.py" else path.parent.name
        own_section = section_of(path.stem)
        for module, where in imports(path):
            target = package_of(module)
            if target is None:
                continue
            parts = module.split(".")
            if target == "tools" and package != "tools" and where != "local":
                problems.append(f"{rel(path)} imports {module} at module level (tools are imported where used)")
            if package in ("plotly_utils", "utils") and target in ("solutions", "tests", "tools"):
                problems.append(f"{rel(path)} imports {module}: utils/ imports no section code, checkers or tools")
            if package == "plotly_utils" and target == "utils":
                problems.append(f"{rel(path)} imports {module}: plotly_utils is the bottom layer")
            if package == "solutions" and target == "tests" and where != "main":
                problems.append(f"{rel(path)} imports {module} outside `if MAIN:`")
            if package == "solutions" and target == "tools":
                problems.append(f"{rel(path)} imports {module}")
            imported_section = section_of(parts[1]) if len(parts) > 1 and target != "plotly_utils" else None
            if imported_section is None:
                continue
            if package == "utils" and own_section is None:
                problems.append(f"{rel(path)} (shared) imports {module}, a section's own code")
            if own_section is not None and order[imported_section] > order[own_section]:
                problems.append(f"{rel(path)} ({own_section}) imports {module}, a later section")
    return problems


def test_dependencies_point_one_way():
    problems = violations()
    assert not problems, "\n".join(problems)


def test_the_import_rule_catches_what_it_should(tmp_path, monkeypatch):
    """The reader sees module-level, `if MAIN:` and function-level imports, and tells them apart."""
    source = tmp_path / "example.py"
    source.write_text(
        "import tools.grade\nfrom utils import lm\nMAIN = True\nif MAIN:\n    import tests.part1_superposition\n"
        "def f():\n    from tools.notebooks import build\n"
    )
    found = imports(source)
    assert ("tools.grade", "module") in found and ("utils.lm", "module") in found
    assert ("tests.part1_superposition", "main") in found and ("tools.notebooks", "local") in found
    assert section_of("test_part5b_absorption_checkers") == "part5b_absorption"
    assert section_of("part5a_sae_architectures") == "part5a_sae_architectures"
    assert section_of("sae_training") is None


def assignments_onto_classes(path: Path) -> list[str]:
    """`Class.attr = ...` or `setattr(Class, ...)` anywhere in a file, for a class defined or imported there."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            classes |= {a.asname or a.name for a in node.names if a.name[:1].isupper()}
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in classes:
                found.append(f"{rel(path)}:{node.lineno}: {target.value.id}.{target.attr} = ...")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "setattr"
            and node.args
            and isinstance(node.args[0], ast.Name | ast.Attribute)
        ):
            first = node.args[0]
            name = first.id if isinstance(first, ast.Name) else first.attr
            if name in classes or (isinstance(first, ast.Attribute) and name[:1].isupper()):
                found.append(f"{rel(path)}:{node.lineno}: setattr({name}, ...)")
    return found


def test_no_function_is_patched_onto_a_class():
    found = [hit for path in python_files() for hit in assignments_onto_classes(path)]
    assert not found, "define methods in the class body (or a subclass):\n" + "\n".join(found)


def test_the_patch_finder_catches_what_it_should(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from x import Model\nclass A:\n    pass\ndef f(self): pass\nA.f = f\nModel.g = f\n"
        "setattr(A, 'h', f)\nself_like = object()\nobj = A()\nobj.x = 1\n"
    )
    monkey = assignments_onto_classes(source)
    assert len(monkey) == 3, monkey


def deferred_curriculum_imports(path: Path) -> list[str]:
    """Imports of curriculum modules (tests, solutions, utils) inside a function of `path`."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n.split(".")[0] in ("tests", "solutions", "utils") for n in names):
                    found.append(f"{rel(path)}:{node.lineno}")
    return found


def test_checkers_import_their_modules_at_module_level():
    # The grader loads a section's checkers, then deletes that section's files from the copy the submission runs
    # in: an import deferred into a function fails when a check runs there (ImportError instead of a verdict).
    checkers = [p for p in (ROOT / "tests").glob("part*.py")]
    found = [hit for path in checkers for hit in deferred_curriculum_imports(path)]
    assert not found, "import curriculum modules at the top of checker modules:\n" + "\n".join(found)


def test_the_deferred_import_finder_catches_what_it_should(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("import torch\nfrom tests import a\ndef f():\n    from tests.b import c\n    import torch\n")
    assert deferred_curriculum_imports(source) == [f"{rel(source)}:4"]


@pytest.mark.parametrize("path", python_files(), ids=rel)
def test_no_file_is_over_800_lines(path):
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_LINES, f"{rel(path)} has {n_lines} lines: split it along its natural seams"


def test_readme_addresses_resolve():
    """Every section and exercise is in the README's address table, and every path there exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- addresses:start -->")[1].split("<!-- addresses:end -->")[0]
    paths = set(re.findall(r"`((?:solutions|tests|utils)/[\w./]+\.py)`", table))
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README names files that don't exist: {missing}"
    for name in SECTIONS:
        assert f"`solutions/{name}.py`" in table, f"{name} is missing from the README's address table"
        for _, func, _ in check_calls(name):
            assert f"`{func.removeprefix('test_')}`" in table, f"exercise {func} of {name} is not in the README table"
