"""The grader's results and what it writes: the table, the class's CSV and JSON, each learner's feedback.

One `NotebookResult` per submission holds one `ExerciseResult` per exercise of its section (passed, failed
or not attempted, with the checker's full message and hint, and the points), plus what happened on the way:
the section it turned out to be, cells that hung or crashed, errors in the learner's cells, and flags for the
instructor's review. `write_exports` writes `grades.csv` (one row per submission, one column per exercise,
the points earned), `grades.json` (everything) and `feedback/<submission>.md` (for the learner).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATUSES = ("passed", "failed", "not attempted")
MARKS = {"passed": "✅ passed", "failed": "❌ failed", "not attempted": "⏳ not attempted"}


@dataclass
class ExerciseResult:
    section: str
    exercise: str
    status: str  # one of STATUSES
    message: str = ""
    points: float = 0.0
    max_points: float = 1.0


@dataclass
class NotebookResult:
    notebook: str  # as the instructor named it
    submission: str = ""  # relative to the folder graded: the row's name in the exports
    section: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str = ""  # the notebook could not be read or graded at all
    notes: list[str] = field(default_factory=list)  # for the learner and the instructor
    cell_errors: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)  # for the instructor only
    seconds: float = 0.0
    kernel_starts: int = 0

    def totals(self) -> dict[str, int]:
        counts = {s: sum(e.status == s for e in self.exercises) for s in STATUSES}
        return {**counts, "total": len(self.exercises)}

    def score(self) -> tuple[float, float]:
        return sum(e.points for e in self.exercises), sum(e.max_points for e in self.exercises)

    def to_dict(self) -> dict:
        score, max_score = self.score()
        return {**asdict(self), "totals": self.totals(), "score": score, "max_score": max_score}

    @classmethod
    def from_dict(cls, row: dict) -> NotebookResult:
        fields = {k: v for k, v in row.items() if k in cls.__dataclass_fields__ and k != "exercises"}
        return cls(**fields, exercises=[ExerciseResult(**e) for e in row.get("exercises", [])])


def _short(message: str, width: int = 90) -> str:
    text = " | ".join(line.strip() for line in message.splitlines() if line.strip())
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(x: float) -> str:
    return f"{x:g}"


def format_table(result: NotebookResult) -> str:
    lines = [f"\n{result.notebook}" + (f"  ({result.section})" if result.section else "")]
    if result.error:
        lines.append(f"  (could not be graded: {result.error})")
    lines += [f"  note: {note}" for note in result.notes]
    if not result.exercises:
        lines.append("  no checked exercises found")
        return "\n".join(lines)
    width = max(len(e.exercise) for e in result.exercises)
    for e in result.exercises:
        detail = f"  {_short(e.message)}" if e.status != "passed" and e.message else ""
        lines.append(f"  {e.exercise:<{width}}  {MARKS[e.status]:<17}{detail}")
    t, (score, max_score) = result.totals(), result.score()
    lines.append(
        f"  total: {t['passed']} passed, {t['failed']} failed, {t['not attempted']} not attempted (of {t['total']}); "
        f"{_number(score)}/{_number(max_score)} points"
    )
    lines += [f"  for review: {flag}" for flag in result.review]
    return "\n".join(lines)


def columns(results: list[NotebookResult]) -> list[tuple[str, str]]:
    """(section, exercise) of every exercise graded, in the order first met."""
    seen: dict[tuple[str, str], None] = {}
    for r in results:
        for e in r.exercises:
            seen.setdefault((e.section, e.exercise), None)
    return list(seen)


def write_csv(results: list[NotebookResult], path: Path) -> None:
    cols = columns(results)
    several = len({s for s, _ in cols}) > 1
    header = ["submission", "section", "score", "max_score", "passed", "failed", "not_attempted"]
    header += [f"{s}.{e}" if several else e for s, e in cols] + ["error", "notes", "review"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in results:
            by_key = {(e.section, e.exercise): e for e in r.exercises}
            t, (score, max_score) = r.totals(), r.score()
            row = [r.submission or r.notebook, r.section, _number(score), _number(max_score)]
            row += [t["passed"], t["failed"], t["not attempted"]]
            row += [_number(by_key[c].points) if c in by_key else "" for c in cols]
            row += [r.error, " | ".join(r.notes), " | ".join(r.review)]
            writer.writerow(row)


def feedback_name(submission: str) -> str:
    stem = submission.removesuffix(".ipynb").replace("/", "__").replace("\\", "__")
    return f"{stem}.md"


def feedback(result: NotebookResult) -> str:
    """The learner's report, in Markdown: every result, and each check's full message and hint."""
    score, max_score = result.score()
    lines = [f"# Feedback on `{result.submission or result.notebook}`", ""]
    if result.section:
        lines.append(f"Section `{result.section}`: **{_number(score)} / {_number(max_score)} points**.")
    if result.error:
        lines += ["", f"This notebook could not be graded: {result.error}"]
    lines += [""] + [f"- {note}" for note in result.notes]
    if result.exercises:
        lines += ["", "| exercise | result | points |", "| --- | --- | ---: |"]
        lines += [
            f"| `{e.exercise}` | {MARKS[e.status]} | {_number(e.points)} / {_number(e.max_points)} |"
            for e in result.exercises
        ]
    todo = [e for e in result.exercises if e.status != "passed"]
    if todo:
        lines += ["", "## What the checks said"]
        for e in todo:
            lines += ["", f"### `{e.exercise}`: {e.status}", "", "```text", e.message or "(no message)", "```"]
    if result.cell_errors:
        lines += ["", "## Errors raised by your cells", ""] + [f"- {err}" for err in result.cell_errors]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def write_exports(results: list[NotebookResult], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(results, folder / "grades.csv")
    (folder / "grades.json").write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")
    feedback_folder = folder / "feedback"
    feedback_folder.mkdir(exist_ok=True)
    for r in results:
        (feedback_folder / feedback_name(r.submission or Path(r.notebook).name)).write_text(
            feedback(r), encoding="utf-8"
        )


def read_exports(paths: list[Path]) -> list[NotebookResult]:
    """The results in `grades.json` files (or folders holding one), e.g. of several shards, in order."""
    results = []
    for path in paths:
        path = path / "grades.json" if path.is_dir() else path
        results += [NotebookResult.from_dict(row) for row in json.loads(path.read_text(encoding="utf-8"))]
    return sorted(results, key=lambda r: r.submission or r.notebook)
