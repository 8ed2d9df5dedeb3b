"""Grade learner notebooks: run each headless and report every exercise as passed, failed or not attempted.

    python -m tools.grade                       # every notebook under exercises/
    python -m tools.grade submissions/ a.ipynb  # folders (searched recursively) and files
    python -m tools.grade submissions/ --json   # machine-readable

Each notebook runs in a fresh kernel with `CURRICULUM_FAST=1`, skipping cells tagged `experiment`
(training and plots, which no check depends on), and continuing past errors so every exercise gets a
verdict. The checkers append their outcomes to a log the grader reads. The notebook files are only
ever read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from tools.notebooks import CHECK_CALL, EXERCISES, execute

STATUSES = ("passed", "failed", "not attempted")


@dataclass
class ExerciseResult:
    section: str
    exercise: str
    status: str  # one of STATUSES
    message: str = ""


@dataclass
class NotebookResult:
    notebook: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str = ""  # the notebook could not be run at all

    def totals(self) -> dict[str, int]:
        counts = {s: sum(e.status == s for e in self.exercises) for s in STATUSES}
        return {**counts, "total": len(self.exercises)}


def find_notebooks(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.exists():
            found.append(path)
        else:
            raise SystemExit(f"not a notebook or folder: {path}")
    return found


def expected_checks(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(section, checker function) for each check call in the notebook, in order, without repeats."""
    seen, checks = set(), []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for section, func, _ in CHECK_CALL.findall(cell.source):
            if (section, func) not in seen:
                seen.add((section, func))
                checks.append((section, func))
    return checks


def _cell_error(cell: nbformat.NotebookNode) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}"
    return ""


def grade_notebook(path: Path, timeout: int = 300) -> NotebookResult:
    result = NotebookResult(notebook=str(path))
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # unreadable JSON, wrong format
        result.error = f"could not read the notebook: {err}"
        return result
    checks = expected_checks(nb)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "grade.jsonl"
        log.touch()
        env = {"CURRICULUM_GRADE_LOG": str(log), "CURRICULUM_FAST": "1"}
        try:
            executed = execute(
                nb, cwd=path.resolve().parent, env=env, timeout=timeout, allow_errors=True, skip_tags=("experiment",)
            )
        except Exception as err:  # kernel died or a cell timed out
            executed, result.error = None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    outcome = {(r["section"], r["check"]): r for r in rows}  # the last outcome of each check counts
    cells = executed.cells if executed else []
    for section, func in checks:
        row = outcome.get((section, func))
        if row is not None:
            result.exercises.append(ExerciseResult(section, row["exercise"], row["status"], row["message"]))
            continue
        # The check never reported: its cell failed before calling it (e.g. a NameError or a syntax error).
        message = result.error or _error_of_check_cell(cells, section, func) or "the check did not run"
        result.exercises.append(ExerciseResult(section, func.removeprefix("test_"), "failed", message))
    return result


def _error_of_check_cell(cells: list, section: str, func: str) -> str:
    call = f"tests.{section}.{func}("
    for cell in cells:
        if cell.cell_type == "code" and call in cell.source:
            return _cell_error(cell)
    return ""


def _short(message: str, width: int = 90) -> str:
    text = " | ".join(line.strip() for line in message.splitlines() if line.strip())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(result: NotebookResult) -> str:
    lines = [f"\n{result.notebook}"]
    if result.error:
        lines.append(f"  (notebook did not finish: {result.error})")
    if not result.exercises:
        lines.append("  no checked exercises found")
        return "\n".join(lines)
    width = max(len(e.exercise) for e in result.exercises)
    marks = {"passed": "✅ passed", "failed": "❌ failed", "not attempted": "⏳ not attempted"}
    for e in result.exercises:
        detail = f"  {_short(e.message)}" if e.status == "failed" else ""
        lines.append(f"  {e.exercise:<{width}}  {marks[e.status]:<17}{detail}")
    t = result.totals()
    lines.append(
        f"  total: {t['passed']} passed, {t['failed']} failed, {t['not attempted']} not attempted (of {t['total']})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade learner notebooks headless.")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks or folders (default: exercises/)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    notebooks = find_notebooks(args.paths or [EXERCISES])
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    results = []
    for path in notebooks:
        results.append(grade_notebook(path, timeout=args.timeout))
        if not args.json:
            print(format_table(results[-1]), flush=True)
    if args.json:
        print(json.dumps([{**asdict(r), "totals": r.totals()} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main())
