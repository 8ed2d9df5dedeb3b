"""Grade learner notebooks: each exercise passed, failed or not attempted, decided by the grader alone.

    python -m tools.grade                                    # every notebook under exercises/
    python -m tools.grade submissions/ --section part1_superposition --out grades/ --jobs 4
    python -m tools.grade submissions/ --shard 2/8 --out grades-2/   # one of 8 independent batch jobs
    python -m tools.grade --merge grades-*/ --out grades/            # the shards' results as one class

How a notebook is graded (the README's "Grading a folder of notebooks" has the threat model):

1. Before any submission runs, the curriculum is read once (`grading_plan.Pristine`): its files and their
   hashes, staged in a private folder, and what each section's source says its exercises and checks are.
2. The notebook is read (never written), its section decided from its metadata, file name and contents, and
   its plan made: its code cells (experiments left out), and after the last cell calling each check, the
   grader's own call of that check on the name the section's source gives it (`ToyModel`...).
3. A separate runner (`tools.grading_run`) executes the plan in a confined kernel inside a disposable copy
   of the curriculum; the grader's checkers are loaded there before the first cell and kept out of the
   submission's reach. A hung or crashed cell is reported and the kernel restarted.
4. Each exercise's verdict is the grader's own call of the checker: nothing the notebook prints, logs or
   calls counts. Points come from the config (1 per exercise by default).

Exit status: 0 when every notebook was graded, 1 when one could not be read or graded (or the curriculum
changed during grading), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools.grading_plan import Pristine, identify, make_plan, review_flags
from tools.grading_report import (
    STATUSES,  # noqa: F401 - re-exported: the statuses a result can have
    ExerciseResult,
    NotebookResult,
    format_table,
    read_exports,
    write_exports,
)
from tools.grading_sandbox import landlock_abi
from utils.paths import EXERCISES, ROOT

RUNNER_MARGIN = 60  # seconds the grader waits for a runner beyond the notebook's own limit
MAX_NOTEBOOK_BYTES = 64 * 2**20


@dataclass
class Config:
    """What an instructor may set, in a TOML (Python >= 3.11) or JSON file given with --config."""

    section: str | None = None  # the section the class was asked to submit; other sections earn nothing
    points: dict[str, float] = field(default_factory=dict)  # "default", "<exercise>" or "<section>.<exercise>"
    cell_seconds: float = 120
    notebook_seconds: float = 900
    memory_gb: float = 3  # beyond what Python, torch and the checkers take
    start_seconds: float = 120  # starting a kernel and loading the checkers (counts towards the notebook's limit)
    device: str = "cpu"
    confine: bool = True  # Landlock, where the system has it

    def points_for(self, section: str, exercise: str) -> float:
        for key in (f"{section}.{exercise}", exercise, "default"):
            if key in self.points:
                return float(self.points[key])
        return 1.0

    def limits(self) -> dict:
        return {
            "cell_seconds": self.cell_seconds,
            "notebook_seconds": self.notebook_seconds,
            "memory_bytes": int(self.memory_gb * 2**30),
            "file_bytes": 2**30,
            "start_seconds": self.start_seconds,
        }


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        raw = json.loads(text)
    else:
        import tomllib  # Python >= 3.11; on 3.10 use a JSON config

        raw = tomllib.loads(text)
    limits = raw.pop("limits", {})
    config = Config(section=raw.pop("section", None), points=raw.pop("points", {}), **limits)
    if raw:
        raise SystemExit(f"{path}: unknown settings {sorted(raw)} (known: section, [points], [limits])")
    return config


def check_config(config: Config, pristine: Pristine) -> None:
    """Refuse a section or a points key that names nothing gradable (a typo would silently change grades)."""
    sections = getattr(pristine, "sections", None)
    if sections is None:
        return
    if config.section and config.section not in sections:
        reason = getattr(pristine, "broken", {}).get(config.section, "no such section")
        raise SystemExit(f"--section {config.section}: can't be graded ({reason}); known: {', '.join(sections)}")
    known = {"default"} | {e for info in sections.values() for e in info.exercises}
    known |= {f"{s}.{e}" for s, info in sections.items() for e in info.exercises}
    unknown = sorted(set(config.points) - known)
    if unknown:
        raise SystemExit(f"[points] names no exercise: {', '.join(unknown)}")


def find_notebooks(paths: list[Path]) -> list[tuple[Path, str]]:
    """(path, name in the exports) for every notebook under `paths`, sorted."""
    found = []
    for path in paths:
        if path.is_dir():
            walked = []
            for folder, subfolders, files in os.walk(path):  # not into linked folders: another learner's, say
                subfolders[:] = [d for d in subfolders if d != ".ipynb_checkpoints"]
                walked += [Path(folder) / f for f in files if f.endswith(".ipynb")]
            found += [(p, p.relative_to(path).as_posix()) for p in sorted(walked)]
        elif path.suffix == ".ipynb" and path.exists():
            found.append((path, path.name))
        else:
            raise SystemExit(f"not a notebook or folder: {path}")
    return found


def shard(items: list, spec: str | None) -> list:
    """The i-th of n interleaved parts (`--shard i/n`, 1-based) of a sorted list."""
    if not spec:
        return items
    try:
        i, n = (int(x) for x in spec.split("/"))
        assert 1 <= i <= n
    except (ValueError, AssertionError):
        raise SystemExit(f"--shard takes i/n with 1 <= i <= n, got {spec!r}") from None
    return items[i - 1 :: n]


# --------------------------------------------------------------------------------------------
# One notebook
# --------------------------------------------------------------------------------------------
def grade_notebook(
    path: Path, config: Config | None = None, pristine: Pristine | None = None, submission: str = "", timeout=None
) -> NotebookResult:
    """Grade one notebook (`timeout`, if given, is the per-cell limit in seconds)."""
    config = config or Config()
    if timeout is not None:
        config = dataclasses.replace(config, cell_seconds=timeout)
    own = pristine is None
    pristine = pristine or Pristine()
    try:
        return _grade(Path(path), config, pristine, submission or Path(path).name)
    finally:
        if own:
            pristine.close()


def _grade(path: Path, config: Config, pristine: Pristine, submission: str) -> NotebookResult:
    result = NotebookResult(notebook=str(path), submission=submission)
    if path.is_symlink():
        result.error = "could not read the notebook: it is a symbolic link (to someone else's file?), not a notebook"
        return result
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        result.error = f"could not read the notebook: it is over {MAX_NOTEBOOK_BYTES // 2**20} MB"
        return result
    try:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:
        result.error = (
            f"could not read the notebook: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        )
        return result
    identity = identify(nb, path.name, pristine)
    result.notes += identity.notes
    section = identity.section
    if config.section and section != config.section:
        result.section = config.section
        info = pristine.sections[config.section]
        why = (
            f"this is a notebook of {section}, not {config.section}" if section else f"not a {config.section} notebook"
        )
        result.exercises = [_exercise(config, info.name, ex, "not attempted", why) for ex in info.exercises]
        return result
    if section is None:
        result.error = identity.notes[-1]
        return result
    if section in pristine.broken:
        result.error = f"section {section} can't be graded: {pristine.broken[section]}"
        return result
    info = pristine.sections[section]
    result.section = section
    result.review = review_flags(nb, info)
    plan = make_plan(nb, info)
    outcome = {"outcomes": [], "kernel_starts": 0, "seconds": 0.0, "error": ""}
    if any(step["kind"] == "check" for step in plan.steps):
        outcome = _run(plan.steps, section, [f for f, _ in info.checks], text, config, pristine)
    result.seconds, result.kernel_starts = outcome["seconds"], outcome["kernel_starts"]
    if outcome["error"]:
        result.error = f"the grader failed on this notebook: {outcome['error']}"
    verdicts = {}
    for step, out in zip(plan.steps, outcome["outcomes"], strict=False):
        if step["kind"] == "check":
            verdicts[step["func"]] = (step, out)
        elif out["status"] == "error":
            result.cell_errors.append(f"cell {step['cell']}: {out['ename']}: {_first_line(out['evalue'])}")
        elif out["status"] in ("timeout", "dead"):
            what = "hung" if out["status"] == "timeout" else "crashed the kernel"
            result.notes.append(f"cell {step['cell']} ({_preview(step['source'])}) {what}: {out['detail']}")
    for func, _ in info.checks:
        exercise = func.removeprefix("test_")
        if func in plan.unchecked:
            why = f"no cell calls its check (`tests.{section}.{func}(...)`): was it deleted?"
            result.exercises.append(_exercise(config, section, exercise, "not attempted", why))
            continue
        if func not in verdicts:  # the runner failed before reaching it
            result.exercises.append(_exercise(config, section, exercise, "failed", "not checked: the grader failed"))
            continue
        step, out = verdicts[func]
        status, message = _verdict(out, step)
        result.exercises.append(_exercise(config, section, exercise, status, message))
        replaced = out.get("verdict", {}).get("replaced", [])
        if replaced:
            result.review.append(
                f"before or during the {exercise} check, the notebook had replaced {', '.join(replaced)}"
            )
    return result


def _verdict(out: dict, step: dict) -> tuple[str, str]:
    where = f"(checked after cell {step['cell']})"
    if out["status"] == "ok":
        return out["verdict"]["status"], out["verdict"]["message"]
    if out["status"] == "timeout":
        return "failed", f"the check did not finish: {out['detail']} {where}; does your code loop forever?"
    if out["status"] == "dead":
        return "failed", f"the check did not finish: {out['detail']} {where}"
    if out["status"] == "not run":
        return "failed", out["detail"].replace("not run: ", "not checked: ")
    return "failed", f"the grader could not run this check: {out.get('ename')}: {out.get('evalue')}"


def _exercise(config: Config, section: str, exercise: str, status: str, message: str) -> ExerciseResult:
    max_points = config.points_for(section, exercise)
    return ExerciseResult(section, exercise, status, message, max_points if status == "passed" else 0.0, max_points)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def _preview(source: str) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip() and not s.strip().startswith("#")), "")
    return f"`{line[:60]}`"


def _run(steps: list, section: str, checks: list, text: str, config: Config, pristine: Pristine) -> dict:
    """Run the plan in a runner process; its result (see tools.grading_run)."""
    job = {
        "section": section,
        "checks": checks,
        "steps": steps,
        "staging": str(pristine.staging),
        "manifest": pristine.manifest(section),
        "limits": config.limits(),
        "device": config.device,
        "confine": config.confine,
        "notebook_name": "submission.ipynb",
        "notebook_text": text,
    }
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    with tempfile.TemporaryDirectory(prefix="grade-job-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        limit = config.notebook_seconds + RUNNER_MARGIN
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.grading_run", str(job_path), str(result_path)],
            cwd=ROOT,
            env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            return {"outcomes": [], "kernel_starts": 0, "seconds": limit, "error": f"the runner overran {limit:g} s"}
        if not result_path.exists():
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"outcomes": [], "kernel_starts": 0, "seconds": 0.0, "error": f"the runner failed: {tail[0]}"}
        return json.loads(result_path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# A class
# --------------------------------------------------------------------------------------------
def grade_all(
    notebooks: list[tuple[Path, str]], config: Config, jobs: int = 1, progress: bool | None = None, on_result=None
) -> tuple[list[NotebookResult], list[str]]:
    """Grade notebooks `jobs` at a time; the results in order, and the curriculum files that changed meanwhile."""
    from tqdm import tqdm

    pristine = Pristine()
    try:
        check_config(config, pristine)
    except SystemExit:
        pristine.close()
        raise
    results: list[NotebookResult | None] = [None] * len(notebooks)
    lock, shown = threading.Lock(), [0]
    bar = tqdm(
        total=len(notebooks), unit="notebook", file=sys.stderr, disable=None if progress is None else not progress
    )

    def one(index: int) -> None:
        path, name = notebooks[index]
        result = grade_notebook(path, config, pristine, submission=name)
        with lock:
            results[index] = result
            bar.update()
            while shown[0] < len(results) and results[shown[0]] is not None:  # report in order, as soon as possible
                if on_result:
                    on_result(results[shown[0]])
                shown[0] += 1

    try:
        with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
            for future in [pool.submit(one, i) for i in range(len(notebooks))]:
                future.result()
        changed = pristine.changed_in(ROOT)
    finally:
        bar.close()
        pristine.close()
    return results, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade learner notebooks headless, each in a sandbox.")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks or folders (default: exercises/)")
    parser.add_argument("--section", help="the section the class was asked to submit (others earn nothing)")
    parser.add_argument("--config", type=Path, help="a TOML or JSON file: section, [points], [limits]")
    parser.add_argument("--out", type=Path, help="write grades.csv, grades.json and feedback/*.md here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="notebooks graded at a time (default 1)")
    parser.add_argument("--shard", help="grade only part i of n (1-based), e.g. 2/8, for independent batch jobs")
    parser.add_argument("--merge", action="store_true", help="combine the grades.json of PATHS (shards) into --out")
    parser.add_argument("--timeout", "--cell-timeout", dest="cell_seconds", type=float, help="seconds per cell")
    parser.add_argument("--notebook-timeout", dest="notebook_seconds", type=float, help="seconds per notebook")
    parser.add_argument("--memory-gb", type=float, help="memory a notebook may use beyond torch and the checkers")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    for name in ("section", "cell_seconds", "notebook_seconds", "memory_gb"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.merge:
        if not args.out:
            parser.error("--merge needs --out")
        results = read_exports(args.paths)
        write_exports(results, args.out)
        print(f"merged {len(results)} results into {args.out}")
        return 1 if any(r.error for r in results) else 0
    notebooks = shard(find_notebooks(args.paths or [EXERCISES]), args.shard)
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    if config.confine and not landlock_abi():
        print(
            "warning: this system has no Landlock, so submissions run with your own file access: they can read "
            "other submissions and write your files (the grader reports any change to the curriculum)",
            file=sys.stderr,
        )
    show = None if args.json else (lambda r: print(format_table(r), flush=True))
    progress = False if args.no_progress else None
    results, changed = grade_all(notebooks, config, jobs=args.jobs, progress=progress, on_result=show)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    if args.out:
        write_exports(results, args.out)
    unreadable = [r for r in results if r.error]
    if unreadable:
        print(
            f"{len(unreadable)} notebook(s) could not be graded: " + ", ".join(r.notebook for r in unreadable),
            file=sys.stderr,
        )
    if changed:
        print(f"the curriculum changed during grading: {', '.join(changed)}", file=sys.stderr)
    return 1 if unreadable or changed else 0


if __name__ == "__main__":
    sys.exit(main())
