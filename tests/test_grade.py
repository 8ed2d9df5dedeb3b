"""The grader: every section grades all passed when solved and all not attempted when untouched, without writing
to what it grades; how it reads a submission (section, plan, flags); its config, exports, shards and parallel
runs; and the sandbox its kernels run in. The attacks on it are in test_grade_attacks.py."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from utils.paths import EXERCISES, ROOT, TOOLS, section_names

PART1 = "part1_superposition"


def build(name: str, exercise: bool):
    from tools.notebooks import build, section  # tools are imported where used, never at module level

    return build(section(name), exercise=exercise)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pristine():
    from tools.grading_plan import Pristine

    snapshot = Pristine()
    yield snapshot
    snapshot.close()


def gradable_sections() -> list[str]:
    return [s for s in section_names() if (ROOT / "tests" / f"{s}.py").exists() and (EXERCISES / f"{s}.ipynb").exists()]


# --------------------------------------------------------------------------------------------
# Every section, end to end
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", gradable_sections())
def test_every_section_grades_all_passed_and_all_not_attempted(name, tmp_path, pristine):
    from tools.grade import Config, grade_notebook

    solved_path, untouched_path = tmp_path / "solved" / f"{name}.ipynb", tmp_path / f"{name}.ipynb"
    solved_path.parent.mkdir()
    nbformat.write(build(name, exercise=False), solved_path)
    shutil.copy(EXERCISES / f"{name}.ipynb", untouched_path)  # a copy: others may rebuild exercises/ meanwhile
    before = digest(untouched_path)
    solved = grade_notebook(solved_path, Config(), pristine)
    assert not solved.error and solved.section == name, solved
    assert solved.totals()["passed"] == solved.totals()["total"] > 0, solved
    assert not [flag for flag in solved.review if "replaced" in flag], "an honest notebook replaces no library function"
    untouched = grade_notebook(untouched_path, Config(), pristine)
    assert not untouched.error and untouched.totals()["not attempted"] == untouched.totals()["total"], untouched
    assert not untouched.review and not untouched.notes
    assert digest(untouched_path) == before, "the grader never writes to a notebook"


def test_unreadable_notebook_is_reported_with_a_nonzero_exit(tmp_path, capsys):
    from tools.grade import main

    (tmp_path / "broken.ipynb").write_text("{ not json")
    (tmp_path / "link.ipynb").symlink_to(EXERCISES / f"{PART1}.ipynb")  # someone else's notebook, say
    assert main([str(tmp_path), "--json", "--no-progress"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert "could not read" in rows[0]["error"] and rows[0]["exercises"] == []
    assert "symbolic link" in rows[1]["error"]


# --------------------------------------------------------------------------------------------
# Reading a submission: its section, its plan, what deserves review
# --------------------------------------------------------------------------------------------
def test_the_section_comes_from_metadata_name_and_contents(pristine):
    from tools.grading_plan import identify

    exercise = build(PART1, exercise=True)
    same = identify(exercise, "part1_superposition.ipynb", pristine)
    assert same.section == PART1 and not same.notes
    assert identify(exercise, "alice.ipynb", pristine).section == PART1, "a name that names no section is fine"

    other = build("part2_privileged_basis", exercise=False)
    other.metadata["curriculum"]["source"] = f"solutions/{PART1}.py"
    relabelled = identify(other, "part1_superposition.ipynb", pristine)
    assert relabelled.section == "part2_privileged_basis", "its cells decide"
    assert len(relabelled.notes) == 2 and all("part1_superposition" in n for n in relabelled.notes)

    bare = nbformat.v4.new_notebook(cells=[c for c in exercise.cells if c.cell_type == "markdown"])
    assert identify(bare, "x.ipynb", pristine).section == PART1, "the section's own prose, without metadata"
    assert identify(nbformat.v4.new_notebook(), "bob_part3.ipynb", pristine).section == "part3_feature_geometry"
    unknown = identify(nbformat.v4.new_notebook(), "notes.ipynb", pristine)
    assert unknown.section is None and "could not tell" in unknown.notes[0]


def test_the_plan_runs_cells_then_the_graders_own_check_after_the_last_call(pristine):
    from tools.grading_plan import make_plan

    info = pristine.sections[PART1]
    nb = build(PART1, exercise=True)
    forward_cell = next(i for i, c in enumerate(nb.cells) if "test_forward(" in c.source)
    nb.cells[forward_cell].source = "tests.part1_superposition.test_forward(SomethingElse)"
    nb.cells.append(nbformat.v4.new_code_cell("from tests.part1_superposition import test_forward\ntest_forward(X)"))
    for name in ("calculate_loss", "generate_batch"):
        cell = next(c for c in nb.cells if f"test_{name}(" in c.source)
        cell.source = (
            f"# tests.part1_superposition.test_{name}(ToyModel)"
            if name == "calculate_loss"
            else (f"tests.part2_privileged_basis.test_{name}(ToyModel)")
        )
    plan = make_plan(nb, info)
    checks = [s for s in plan.steps if s["kind"] == "check"]
    forward = next(s for s in checks if s["func"] == "test_forward")
    assert forward["cell"] == len(nb.cells) and forward["expression"] == "ToyModel", "the section's name, last call"
    assert set(plan.unchecked) == {"test_calculate_loss", "test_generate_batch"}, "commented out, or another section's"
    cells = {s["cell"] for s in plan.steps if s["kind"] == "cell"}
    experiments = {i for i, c in enumerate(nb.cells, 1) if "experiment" in c.metadata.get("tags", [])}
    assert experiments and not cells & experiments, "experiments are not run"


def test_review_flags_name_what_a_learner_cell_reaches_for(pristine):
    from tools.grading_plan import review_flags

    info = pristine.sections[PART1]
    nb = build(PART1, exercise=True)
    assert review_flags(nb, info) == [], "the generated cells (the setup cell's subprocess included) are not flagged"
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nsys.modules['torch'].allclose = None\ntorch.isclose = f"))
    (flag,) = review_flags(nb, info)
    assert flag.startswith(f"cell {len(nb.cells)} uses sys.modules") and "replaced library functions" in flag
    assert any("verbatim" in f for f in review_flags(build(PART1, exercise=False), info))


# --------------------------------------------------------------------------------------------
# Config, shards, exports, parallel runs
# --------------------------------------------------------------------------------------------
def test_config_points_and_limits(tmp_path, pristine):
    from tools.grade import Config, check_config, load_config

    path = tmp_path / "grading.toml"
    path.write_text(
        'section = "part1_superposition"\n[points]\ndefault = 2\nforward = 3\n'
        '"part1_superposition.calculate_loss" = 5\n'
        "[limits]\ncell_seconds = 30\nmemory_gb = 2\n"
    )
    config = load_config(path)
    assert config.section == PART1 and config.cell_seconds == 30 and config.limits()["memory_bytes"] == 2 * 2**30
    assert [config.points_for(PART1, e) for e in ("forward", "calculate_loss", "generate_batch")] == [3, 5, 2]
    assert load_config(None).points_for(PART1, "forward") == 1
    path.write_text("sections = 1\n")
    with pytest.raises(SystemExit, match="unknown settings"):
        load_config(path)
    check_config(config, pristine)
    with pytest.raises(SystemExit, match="names no exercise: forwrd"):
        check_config(Config(points={"forwrd": 2}), pristine)
    with pytest.raises(SystemExit, match="can't be graded"):
        check_config(Config(section="part9_nothing"), pristine)


def test_shards_split_a_class_exactly_once():
    from tools.grade import shard

    items = list(range(10))
    parts = [shard(items, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(x for part in parts for x in part) == items and max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(SystemExit):
        shard(items, "4/3")


def fake_result(name: str, passed: int, section: str = PART1):
    from tools.grading_report import ExerciseResult, NotebookResult

    exercises = [
        ExerciseResult(
            section, f"ex{i}", "passed" if i < passed else "failed", "" if i < passed else "wrong\nHint: " + "x" * 100
        )
        for i in range(3)
    ]
    for e in exercises:
        e.points = e.max_points if e.status == "passed" else 0.0
    return NotebookResult(notebook=name, submission=name, section=section, exercises=exercises)


def test_exports_one_row_per_submission_one_column_per_exercise_and_full_feedback(tmp_path):
    from tools.grading_report import write_exports

    write_exports([fake_result("alice/a.ipynb", 3), fake_result("bob.ipynb", 1)], tmp_path)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [r["submission"] for r in rows] == ["alice/a.ipynb", "bob.ipynb"]
    assert [(r["score"], r["ex0"], r["ex1"], r["ex2"]) for r in rows] == [("3", "1", "1", "1"), ("1", "1", "0", "0")]
    assert json.loads((tmp_path / "grades.json").read_text())[1]["score"] == 1
    feedback = (tmp_path / "feedback" / "bob.md").read_text()
    assert "Hint: " + "x" * 100 in feedback and "1 / 3 points" in feedback, "the whole hint, not the table's cut"
    assert (tmp_path / "feedback" / "alice__a.md").exists()


def test_jobs_keep_the_order_and_merge_joins_shards(tmp_path, monkeypatch, capsys):
    import tools.grade as grade

    class Snapshot:
        def changed_in(self, root):
            return []

        def close(self):
            pass

    names = [f"n{i}.ipynb" for i in range(6)]
    for name in names:
        (tmp_path / name).write_text("{}")
    monkeypatch.setattr(grade, "Pristine", Snapshot)
    monkeypatch.setattr(grade, "grade_notebook", lambda path, config, pristine, submission: fake_result(submission, 2))
    for i in (1, 2):
        assert grade.main([str(tmp_path), "--jobs", "3", "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
    out = capsys.readouterr().out
    shown = [line.split()[0] for line in out.splitlines() if line.endswith(f"({PART1})")]
    assert shown == names[::2] + names[1::2], "each shard in order, whatever the jobs"
    assert grade.main(["--merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "all")]) == 0
    rows = list(csv.DictReader((tmp_path / "all" / "grades.csv").open()))
    assert [r["submission"] for r in rows] == names


def test_progress_bar(tmp_path, monkeypatch, capsys):
    import tools.grade as grade

    monkeypatch.setattr(
        grade, "Pristine", lambda: type("S", (), {"changed_in": lambda s, r: [], "close": lambda s: None})()
    )
    monkeypatch.setattr(grade, "grade_notebook", lambda path, config, pristine, submission: fake_result(submission, 1))
    grade.grade_all(
        [(tmp_path / "a.ipynb", "a.ipynb"), (tmp_path / "b.ipynb", "b.ipynb")], grade.Config(), 2, progress=True
    )
    assert "2/2" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------
def confined_python(tmp_path: Path, code: str, memory_gb: float = 0) -> subprocess.CompletedProcess:
    spec = {"memory_bytes": int(memory_gb * 2**30), "file_bytes": 2**20, "write": [str(tmp_path)],
            "read": sorted({sys.prefix, sys.base_prefix, "/proc/self"})}  # fmt: skip
    command = [
        sys.executable,
        "-I",
        "-S",
        str(TOOLS / "grading_sandbox.py"),
        json.dumps(spec),
        "--",
        sys.executable,
        "-c",
        code,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})


def test_the_sandbox_confines_files_network_memory_and_privileges(tmp_path):
    from tools.grading_sandbox import landlock_abi

    code = (
        "import os, socket\n"
        "def attempt(f):\n"
        "    try:\n        f()\n        return 'allowed'\n"
        "    except (OSError, MemoryError) as err:\n        return type(err).__name__\n"
        f"print(attempt(lambda: open({str(ROOT / 'README.md')!r}).read()))\n"
        "print(attempt(lambda: open('inside.txt', 'w').write('x')))\n"
        "print(attempt(lambda: open('/tmp/outside-grader-test.txt', 'w')))\n"
        "print(attempt(lambda: socket.create_connection(('127.0.0.1', 9), timeout=1)))\n"
        "print(attempt(lambda: bytearray(2 * 2**30)))\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0] if os.geteuid() == 0 else '0' * 16)\n"
    )
    done = confined_python(tmp_path, code, memory_gb=1)
    lines = done.stdout.split()
    assert len(lines) == 6, done.stderr
    readme, inside, outside, network, memory, capabilities = lines
    assert inside == "allowed" and memory == "MemoryError" and int(capabilities, 16) == 0
    if landlock_abi():
        assert readme == outside == "PermissionError"
    if landlock_abi() >= 4:
        assert network == "PermissionError"
