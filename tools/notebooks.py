"""Build the two notebooks of a section from its single source, and execute notebooks headless.

A section's source is `solutions/<section>.py` in jupytext's percent format. It is importable
(reference code) and it is the notebook (prose in markdown cells). Three conventions connect them:

* `if MAIN:` blocks hold what only the notebook runs (experiments, plots, checks). Importing the
  module skips them; the builder unwraps them into plain top-level code.
* `### BEGIN SOLUTION` / `### END SOLUTION` fence the reference answer. The solution notebook keeps
  the fence (nbgrader's convention); the exercise notebook gets a `NotImplementedError` stub.
* A call `tests.<section>.test_<exercise>(...)` is a check; the grader finds exercises by these calls.

`python -m tools.notebooks build` writes `exercises/<section>.ipynb` (no outputs) and
`solutions/<section>.ipynb` (source only); `python -m tools.notebooks execute` then runs the
solution notebooks in place. Nothing else is ever written.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tools.install import NOTEBOOK_PACKAGES, REPO_URL, SECTION_PACKAGES
from utils.paths import CHECK_CALL, EXERCISES, ROOT, SOLUTIONS, section_names

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MAIN_GUARD = "if MAIN:"
MAIN_DEFINITION = 'MAIN = __name__ == "__main__"'
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}

SETUP_CELL_TEMPLATE = f'''\
# Setup (run first): finds the curriculum folder (in Colab, fetches it), installs missing packages
# (never torch), and makes `utils`, `tests` and `solutions` importable. Safe to re-run.
import importlib.util, os, subprocess, sys
from pathlib import Path


def run(cmd: list[str]) -> None:  # on failure, show git's or pip's own reason, not just an exit status
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{{' '.join(cmd[:4])}} ... failed:\\n{{(done.stderr or done.stdout)[-3000:]}}")


IN_COLAB = "google.colab" in sys.modules
REPO_URL = os.environ.get("CURRICULUM_REPO_URL", "{REPO_URL}")
root = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "plotly_utils.py").exists()), None)
if root is None and os.environ.get("CURRICULUM_ROOT"):  # a notebook run from outside the repository
    root = Path(os.environ["CURRICULUM_ROOT"])
if root is None and IN_COLAB:
    root = Path("/content/superposition-saes")
    if not root.exists():
        run(["git", "clone", "--depth=1", REPO_URL, str(root)])
if root is None:
    raise RuntimeError("Can't find the curriculum: open this notebook from inside its folder (with plotly_utils.py).")
missing = [pkg for module, pkg in {{packages!r}}.items() if importlib.util.find_spec(module) is None]
if missing:
    run([sys.executable, "-m", "pip", "install", "--quiet", *missing])
if str(root) not in sys.path:
    sys.path.insert(0, str(root))
'''


def setup_cell(section_name: str) -> str:
    """The setup cell's code for a section: the common packages plus the section's own (tools.install)."""
    packages = {**NOTEBOOK_PACKAGES, **SECTION_PACKAGES.get(section_name, {})}
    return SETUP_CELL_TEMPLATE.replace("{packages!r}", repr(packages)).rstrip("\n")


@dataclass(frozen=True)
class Section:
    name: str  # e.g. "part1_superposition"

    @property
    def source(self) -> Path:
        return SOLUTIONS / f"{self.name}.py"

    @property
    def solution_notebook(self) -> Path:
        return SOLUTIONS / f"{self.name}.ipynb"

    @property
    def exercise_notebook(self) -> Path:
        return EXERCISES / f"{self.name}.ipynb"


def sections() -> list[Section]:
    return [Section(name) for name in section_names()]


def section(name: str) -> Section:
    matches = [s for s in sections() if s.name == name or s.name.startswith(name + "_")]
    if len(matches) != 1:
        raise SystemExit(f"unknown section {name!r}; known: {', '.join(s.name for s in sections())}")
    return matches[0]


# --------------------------------------------------------------------------------------------
# Source -> notebooks
# --------------------------------------------------------------------------------------------
def unwrap_main(code: str) -> tuple[str, bool]:
    """Replace each top-level `if MAIN:` block by its dedented body.

    Returns (code, only_main): whether every statement of the cell was inside `if MAIN:` blocks,
    i.e. the cell is notebook-only (an experiment or a check) rather than a definition.
    """
    lines = code.splitlines()
    out, i = [], 0
    guarded, unguarded = False, False
    while i < len(lines):
        if lines[i].rstrip() == MAIN_GUARD:
            guarded = True
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            out.extend(textwrap.dedent("\n".join(block)).splitlines())
        elif lines[i].strip() == MAIN_DEFINITION:
            i += 1
        else:
            if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                unguarded = True
            out.append(lines[i])
            i += 1
    return "\n".join(out).strip("\n"), guarded and not unguarded


def stub_solutions(code: str) -> str:
    """Replace each BEGIN/END SOLUTION fence by a stub at the fence's indentation."""
    out, inside = [], False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("not implemented yet")']
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def build(sec: Section, exercise: bool) -> nbformat.NotebookNode:
    """The solution (exercise=False) or exercise (exercise=True) notebook of a section."""
    nb = jupytext.reads(sec.source.read_text(encoding="utf-8"), fmt="py:percent")
    cells = []
    for cell in nb.cells:
        cell = copy.deepcopy(cell)
        tags: list[str] = []
        if cell.cell_type == "code":
            source, only_main = unwrap_main(cell.source)
            if not source.strip():
                continue
            if BEGIN in source:
                tags.append("exercise")
                if exercise:
                    source = stub_solutions(source)
            if CHECK_CALL.search(source):
                tags.append("check")
            elif only_main:
                tags.append("experiment")
            cell.source = source
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {"tags": tags} if tags else {}
        cells.append(cell)
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    setup = nbformat.v4.new_code_cell(setup_cell(sec.name), metadata={"tags": ["setup"]})
    cells.insert(first_code, setup)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    for i, cell in enumerate(out.cells):
        cell.id = f"{'ex' if exercise else 'sol'}-{i:03d}"  # stable ids: rebuilding changes nothing
    # The hash of the generated cells lets a rebuild tell an untouched notebook from one a learner edited.
    out.metadata["curriculum"] = {"source": f"solutions/{sec.name}.py", "generated_sha256": content_hash(out)}
    return out


def content_hash(nb: nbformat.NotebookNode) -> str:
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def edited_by_learner(path: Path) -> bool:
    """Whether a notebook's cells differ from what the builder wrote there (so a rebuild would lose work)."""
    if not path.exists():
        return False
    nb = nbformat.read(path, as_version=4)
    recorded = nb.metadata.get("curriculum", {}).get("generated_sha256")
    return recorded is not None and recorded != content_hash(nb)


def same_sources(a: nbformat.NotebookNode, b: nbformat.NotebookNode) -> bool:
    """Whether two notebooks have the same cells (type, source, tags), ignoring outputs."""

    def key(nb: nbformat.NotebookNode) -> list[tuple]:
        return [(c.cell_type, c.source, tuple(c.metadata.get("tags", []))) for c in nb.cells]

    return key(a) == key(b)


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def build_all(names: list[str] | None = None, force: bool = False) -> None:
    for sec in [section(n) for n in names] if names else sections():
        target = sec.exercise_notebook
        if edited_by_learner(target) and not force:
            print(
                f"skipped {target.relative_to(ROOT)}: it has edits that were not generated (yours?). "
                "Copy it elsewhere to keep them, or rebuild with --force to overwrite."
            )
        else:
            write(build(sec, exercise=True), target)
        solution = build(sec, exercise=False)
        old = sec.solution_notebook
        # Keep the committed outputs when the source did not change: a rebuild must not force a re-run.
        if not (old.exists() and same_sources(nbformat.read(old, as_version=4), solution)):
            write(solution, sec.solution_notebook)
            print(f"built {sec.name} (solution notebook needs `make execute`)")
        else:
            print(f"built {sec.name} (solution notebook unchanged)")


# --------------------------------------------------------------------------------------------
# Executing notebooks headless
# --------------------------------------------------------------------------------------------
def execute(
    nb: nbformat.NotebookNode,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: int = 600,
    allow_errors: bool = False,
    skip_tags: tuple[str, ...] = (),
) -> nbformat.NotebookNode:
    """Execute a copy of `nb` in a fresh kernel and return it; `nb` itself is never modified.

    Cells tagged with any of `skip_tags` are left out (the grader skips experiments).
    """
    nb = copy.deepcopy(nb)
    if skip_tags:
        nb.cells = [c for c in nb.cells if not set(c.metadata.get("tags", [])) & set(skip_tags)]
    kernel_env = {**os.environ, "PLOTLY_RENDERER": "plotly_mimetype", "CURRICULUM_ROOT": str(ROOT), **(env or {})}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    # The kernel's own stderr (start-up warnings) would only clutter the caller's output.
    client.execute(env=kernel_env, stderr=subprocess.DEVNULL)
    return nb


def execute_solutions(names: list[str] | None = None, fast: bool = False) -> dict[str, float]:
    """Run solution notebooks end to end, writing outputs back (they are generated files)."""
    times = {}
    for sec in [section(n) for n in names] if names else sections():
        nb = build(sec, exercise=False)
        start = time.perf_counter()
        try:
            done = execute(nb, cwd=SOLUTIONS, env={"CURRICULUM_FAST": "1" if fast else "0"}, timeout=1800)
        except CellExecutionError as err:
            raise SystemExit(f"{sec.name}: solution notebook failed\n{err}") from None
        times[sec.name] = time.perf_counter() - start
        if not fast:
            write(done, sec.solution_notebook)
        print(f"executed {sec.name} in {times[sec.name]:.1f}s")
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "execute"])
    parser.add_argument("sections", nargs="*", help="section names or prefixes (default: all)")
    parser.add_argument("--force", action="store_true", help="overwrite exercise notebooks even if edited")
    args = parser.parse_args(argv)
    if args.command == "build":
        build_all(args.sections, force=args.force)
    else:
        execute_solutions(args.sections)


if __name__ == "__main__":
    sys.exit(main())
