"""The grader against a class that cheats and breaks things: one folder of adversarial part 1 notebooks,
graded in one run (`--jobs 2`), as an instructor would, with a secret in the grader's environment.

Each test below proves one attack of the threat model (README, "Grading a folder of notebooks") gains
nothing: no credit for a forged or borrowed result, the repository byte-identical, every honest exercise of
every notebook graded, each notebook within its time limit, no process left behind, no secret read.
The folder is graded once per test session (pytest-xdist workers share the run through a file lock), by the
grader of a copy of this repository made for the run: the copy plays the instructor's repository, so the
attacks on it can't touch this one, and nobody else's edits to this one can look like an attack.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import psutil
import pytest

from utils.paths import ROOT

pytestmark = pytest.mark.slow
SECTION = "part1_superposition"
EXERCISES = [
    "forward",
    "generate_batch",
    "calculate_loss",
    "generate_correlated_features",
    "generate_anticorrelated_features",
    "generate_uncorrelated_features",
    "generate_combined_batch",
]
FORWARD, BATCH, LOSS = 0, 1, 2  # the solution fences, in notebook order; 3-6 are CorrelatedToyModel's
CELL_SECONDS, NOTEBOOK_SECONDS, MEMORY_GB = 10, 150, 3
SECRET = "grader-secret-3b9f1c"
MARKER = "grader-orphan-7d2e4a"  # in the command line of every process the orphan notebook starts
LEAK = Path("/tmp") / "grader-leak-7d2e4a.txt"
STUB = 'raise NotImplementedError("not implemented yet")'
FENCE = re.compile(r"( *)### BEGIN SOLUTION\n(.*?)\1### END SOLUTION\n?", re.S)
WATCHED = ("tests", "solutions", "utils", "tools", "exercises")


def notebook(exercise: bool = False):
    from tools.notebooks import build, section  # tools are imported where used, never at module level

    return build(section(SECTION), exercise=exercise)


def with_bodies(nb, bodies: dict[int, str]):
    """The solution notebook with the k-th solution fence replaced by `bodies[k]` (the others kept)."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue

        def replace(match: re.Match) -> str:
            nonlocal count
            k, count = count, count + 1
            indent = match.group(1)
            body = bodies.get(k, textwrap.dedent(match.group(2)))
            return "".join(f"{indent}{line}\n" if line.strip() else "\n" for line in body.strip("\n").splitlines())

        cell.source = FENCE.sub(replace, cell.source)
    return nb


def stubs(*keep: int):
    """The solution notebook with every exercise a stub except the fences in `keep`."""
    return with_bodies(notebook(), {k: STUB for k in range(7) if k not in keep})


def add_cell(nb, after: str, source: str):
    """Insert a code cell after the first cell whose source contains `after`."""
    index = next(i for i, c in enumerate(nb.cells) if after in c.source)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


CHECK = f"tests.{SECTION}.test_"
AFTER_FORWARD_CHECK = f"{CHECK}forward("
AFTER_BATCH_CHECK = f"{CHECK}generate_batch("
AFTER_LOSS_CHECK = f"{CHECK}calculate_loss("


def always_pass_checkers() -> str:
    lines = ["def _passed(*args, **kwargs):", "    print('passed')"]
    return "\n".join(lines + [f"test_{e} = _passed" for e in EXERCISES]) + "\n"


def build_class(folder: Path, repo: Path) -> dict[str, object]:
    """Write the adversarial class; {submission: what it may earn}."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}

    def save(name: str, nb, points: int) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        expected[name] = points

    # An honest learner: an unusual but right forward, a wrong generate_batch, the rest not done.
    honest = with_bodies(
        notebook(),
        {
            FORWARD: "WtW = self.W.mT @ self.W\n"
            "return torch.relu(torch.einsum('ifg,...ig->...if', WtW, features) + self.b_final)",
            BATCH: "shape = (batch_size, self.cfg.n_inst, self.cfg.n_features)\n"
            "return torch.where(torch.rand(shape) > self.feature_probability, torch.rand(shape), 0.0)",
            **{k: STUB for k in range(2, 7)},
        },
    )
    save("honest.ipynb", honest, 1)

    # Forged outcome lines, in the old log and anywhere one might be, and forged success lines printed.
    forged = add_cell(
        stubs(),
        AFTER_LOSS_CHECK,
        "import glob, json, os, tempfile\n"
        f"rows = [json.dumps({{'section': '{SECTION}', 'check': f'test_{{e}}', 'exercise': e, 'status': 'passed', "
        f"'message': ''}}) for e in {EXERCISES!r}]\n"
        "paths = [os.environ.get('CURRICULUM_GRADE_LOG'), os.path.join(tempfile.gettempdir(), 'grade.jsonl')]\n"
        "paths += glob.glob('/tmp/**/*.jsonl', recursive=True) + glob.glob('/tmp/grade-*/**/*.json', recursive=True)\n"
        "for p in filter(None, paths):\n"
        "    try:\n"
        "        open(p, 'a').write('\\n'.join(rows) + '\\n')\n"
        "    except OSError as err:\n"
        "        print(err)\n"
        f"for e in {EXERCISES!r}:\n"
        "    print(f'\\x1b[32m✅ {e}: passed\\x1b[0m')\n",
    )
    save("forged_log.ipynb", forged, 0)

    # The checkers' own machinery called or replaced, and the libraries they compare with patched; a wrong
    # forward (zeros) and a generate_batch that patches torch while being checked.
    recorder = with_bodies(
        notebook(),
        {
            FORWARD: "return torch.zeros_like(features)",
            BATCH: "torch.allclose = lambda *a, **k: True\n"
            "return torch.zeros(batch_size, self.cfg.n_inst, self.cfg.n_features)",
            **{k: STUB for k in range(2, 7)},
        },
    )
    recorder = add_cell(
        recorder,
        "import tests.",
        "import tests.checking as checking, torch\n"
        "for call in (lambda: checking._record('part1_superposition', 'test_forward', 'forward', None),):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as err:\n"
        "        print(err)\n"
        "checking.expect_close = checking.expect_matches = checking.fail = lambda *a, **k: None\n"
        "checking.checker = lambda *a, **k: (lambda fn: fn)\n"
        "torch.allclose = torch.equal = lambda *a, **k: True\n"
        "torch.isclose = lambda a, b, *x, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)\n"
        f"tests.{SECTION}.test_forward = lambda *a, **k: print('✅ forward: passed')\n",
    )
    save("fake_recorder.ipynb", recorder, 0)

    # The checkers and reference rewritten, in the disposable copy and in the instructor's repository.
    attempts = [f"{repo}/tests/{SECTION}.py", f"{repo}/solutions/{SECTION}.py", f"{repo}/tests/checking.py",
                f"{repo}/tools/grading_kernel.py", f"{repo}/tests/evil.py"]  # fmt: skip
    repository = [str(repo / f"exercises/{SECTION}.ipynb"), str(repo / f"tests/{SECTION}.py")]
    tamper = add_cell(
        stubs(),
        AFTER_FORWARD_CHECK,
        "import importlib, os, sys\nfrom pathlib import Path\n"
        "root = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / 'plotly_utils.py').exists())\n"
        f"fake = {always_pass_checkers()!r}\n"
        "written = []\n"
        f"for target in [root / 'tests/{SECTION}.py', root / 'tests/checking.py', root / 'solutions/{SECTION}.py',\n"
        f"               *map(Path, {attempts!r})]:\n"
        "    try:\n"
        "        target.write_text(fake)\n"
        "        written.append(str(target))\n"
        "    except OSError as err:\n"
        "        print(err)\n"
        f"for path in map(Path, {repository!r}):\n"
        "    try:\n"
        "        path.unlink()\n"
        "        written.append(str(path))\n"
        "    except OSError as err:\n"
        "        print(err)\n"
        "for name in [m for m in sys.modules if m.startswith('tests')]:\n"
        "    del sys.modules[name]\n"
        f"import tests.{SECTION}\n"
        "raise RuntimeError(f'written: {written}')\n",
    )
    save("tamper.ipynb", tamper, 0)

    # A copy of the repository next to the notebook, with checkers that pass everything, put first on the path.
    carol = folder / "carol"
    (carol / "tests").mkdir(parents=True)
    (carol / "plotly_utils.py").write_text("")
    (carol / "tests" / "__init__.py").write_text("")
    (carol / "tests" / f"{SECTION}.py").write_text(always_pass_checkers())
    copied = add_cell(
        stubs(),
        "# Setup (run first)",
        f"import os, sys\nos.chdir({str(carol)!r})\nsys.path.insert(0, {str(carol)!r})\n"
        "for name in [m for m in sys.modules if m.startswith('tests')]:\n"
        "    del sys.modules[name]\n",
    )
    save("carol/part1_superposition.ipynb", copied, 0)

    # Solved, but the check cells of two exercises deleted: they stay in the denominator.
    deleted = notebook()
    for name in ("calculate_loss", "generate_combined_batch"):
        deleted.cells = [c for c in deleted.cells if f"{CHECK}{name}(" not in c.source]
    save("deleted_checks.ipynb", deleted, 5)

    # A wrong forward, then the reference checked (and bound to the exercise's name) in every way at hand.
    reference = with_bodies(
        notebook(), {FORWARD: "return torch.zeros_like(features)", **{k: STUB for k in range(1, 7)}}
    )
    reference = add_cell(
        reference,
        AFTER_FORWARD_CHECK,
        "import importlib.util\n"
        "try:\n"
        f"    import solutions.{SECTION} as ref\n"
        f"    tests.{SECTION}.test_forward(ref.ToyModel)\n"
        "    ToyModel = ref.ToyModel\n"
        "except Exception as err:\n"
        "    print(err)\n"
        "try:\n"
        f"    spec = importlib.util.spec_from_file_location('ref2', {str(repo / 'solutions' / (SECTION + '.py'))!r})\n"
        "    ref2 = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(ref2)\n"
        "    ToyModel = ref2.ToyModel\n"
        "except Exception as err:\n"
        "    print(err)\n"
        f"tests.{SECTION}.test_forward(ToyModel)\n",
    )
    save("reference.ipynb", reference, 0)

    # Section 2's solved notebook, renamed and relabelled as section 1's.
    from tools.notebooks import build, section

    other = build(section("part2_privileged_basis"), exercise=False)
    other.metadata["curriculum"]["source"] = f"solutions/{SECTION}.py"
    save("bob/part1_superposition.ipynb", other, 0)

    # Hangs: a top-level loop, a method that loops when checked, a loop that ignores the interrupt.
    loops = with_bodies(notebook(), {BATCH: "while True:\n    pass"})
    loops = add_cell(loops, AFTER_FORWARD_CHECK, "while True:\n    pass")
    loops = add_cell(
        loops,
        AFTER_LOSS_CHECK,
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass",
    )
    save("infinite_loop.ipynb", loops, 6)

    # A cell that kills the kernel, and a method that kills it when checked.
    dead = with_bodies(notebook(), {LOSS: "import os\nos._exit(3)"})
    dead = add_cell(dead, AFTER_FORWARD_CHECK, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    save("dead_kernel.ipynb", dead, 6)

    # 4 GB, in a cell and in a method being checked.
    memory = with_bodies(notebook(), {LOSS: "big = torch.ones(2**30)\nreturn big.sum()"})
    memory = add_cell(memory, AFTER_FORWARD_CHECK, "import torch\nblob = torch.ones(2**30)  # 4 GB")
    memory = add_cell(memory, AFTER_FORWARD_CHECK, "blob = bytearray(4 * 2**30)")
    save("memory.ipynb", memory, 6)

    # Processes meant to outlive the kernel: a child, a new session, a double-forked daemon.
    sleeper = f"[sys.executable, '-c', 'import time; time.sleep(600)', {MARKER!r}]"
    orphans = add_cell(
        notebook(),
        AFTER_FORWARD_CHECK,
        "import os, subprocess, sys\n"
        f"subprocess.Popen({sleeper})\n"
        f"subprocess.Popen({sleeper}, start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, {sleeper})\n"
        "    os._exit(0)\n",
    )
    save("orphans.ipynb", orphans, 7)

    # The grader's environment, read every way at hand, and written out.
    env = add_cell(
        notebook(),
        AFTER_FORWARD_CHECK,
        "import os\nfrom pathlib import Path\n"
        "found = [f'{k}={v}' for k, v in os.environ.items() if 'SECRET' in k or 'secret' in v]\n"
        "try:\n"
        "    pids = os.listdir('/proc')\n"
        "except OSError:\n"
        "    pids = []\n"
        "for path in ['/proc/self/environ', f'/proc/{os.getppid()}/environ', '/proc/1/environ',\n"
        "             *(f'/proc/{p}/environ' for p in pids)]:\n"
        "    try:\n"
        "        text = Path(path).read_bytes().decode(errors='replace')\n"
        "        found += [v for v in text.split('\\0') if 'secret' in v.lower()]\n"
        "    except OSError:\n"
        "        pass\n"
        "for target in ['/tmp/grader-leak-7d2e4a.txt', 'leak.txt']:\n"
        "    try:\n"
        "        Path(target).write_text(repr(found))\n"
        "    except OSError:\n"
        "        pass\n"
        "raise RuntimeError(f'leaked: {found!r}')\n",
    )
    save("read_env.ipynb", env, 7)
    return expected


def copy_repository(target: Path) -> Path:
    """The files a grader needs, copied: a repository of its own for the run."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in ("plotly_utils.py", "pyproject.toml", "requirements.txt"):
        if (ROOT / name).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    for folder in WATCHED:
        shutil.copytree(ROOT / folder, target / folder, ignore=ignore)
    return target


def digest_repository(repo: Path) -> dict[str, str]:
    files = {}
    for path in repo.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def marked_processes() -> list[int]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if MARKER in " ".join(p.info["cmdline"] or []):
            found.append(p.info["pid"])
    return found


def grade_class(base: Path) -> dict:
    folder, out, repo = base / "class", base / "out", copy_repository(base / "repository")
    expected = build_class(folder, repo)
    before = digest_repository(repo)
    LEAK.unlink(missing_ok=True)
    command = [sys.executable, "-m", "tools.grade", str(folder), "--section", SECTION, "--out", str(out), "--jobs", "2",
               "--timeout", str(CELL_SECONDS), "--notebook-timeout", str(NOTEBOOK_SECONDS), "--memory-gb",
               str(MEMORY_GB), "--no-progress"]  # fmt: skip
    done = subprocess.run(
        command, cwd=repo, env={**os.environ, "GRADER_TEST_SECRET": SECRET}, capture_output=True, text=True
    )
    after = digest_repository(repo)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    orphans = marked_processes()
    for pid in orphans:  # don't leave them to the next test run if the grader failed
        psutil.Process(pid).kill()
    return {
        "expected": expected,
        "returncode": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "results": {r["submission"]: r for r in json.loads((out / "grades.json").read_text())},
        "csv": (out / "grades.csv").read_text(),
        "feedback": {p.name: p.read_text() for p in (out / "feedback").iterdir()},
        "changed": changed,
        "orphans": orphans,
        "leaked_file": LEAK.exists(),
        "repository": str(repo),
    }


@pytest.fixture(scope="session")
def graded(tmp_path_factory) -> dict:
    """The class graded once, shared by every xdist worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return grade_class(tmp_path_factory.mktemp("grade_attacks"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's, common to its workers
    cache = shared / "grade_attacks.json"
    with open(shared / "grade_attacks.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not cache.exists():
            cache.write_text(json.dumps(grade_class(shared / "grade_attacks")))
    return json.loads(cache.read_text())


def statuses(graded: dict, name: str) -> dict[str, str]:
    return {e["exercise"]: e["status"] for e in graded["results"][name]["exercises"]}


def confined() -> bool:
    from tools.grading_sandbox import landlock_abi

    return landlock_abi() > 0


# --------------------------------------------------------------------------------------------
# The bar
# --------------------------------------------------------------------------------------------
def test_no_forged_or_borrowed_credit_and_every_honest_exercise(graded):
    score = {name: r["score"] for name, r in graded["results"].items()}
    assert score == graded["expected"], graded["stdout"]
    for r in graded["results"].values():
        assert [e["exercise"] for e in r["exercises"]] == EXERCISES, "every notebook is graded on the section's list"


def test_the_repository_is_byte_identical(graded):
    if not confined():
        pytest.skip("without Landlock a submission can write the instructor's files (the grader reports it)")
    assert graded["changed"] == [], "changed during grading: " + ", ".join(graded["changed"])


def test_every_notebook_within_its_limit_and_the_run_completes(graded):
    assert graded["returncode"] == 0 or not confined(), graded["stderr"]
    for name, r in graded["results"].items():
        assert r["seconds"] <= NOTEBOOK_SECONDS, (name, r["seconds"])
        assert not r["error"], (name, r["error"])


# --------------------------------------------------------------------------------------------
# One attack each
# --------------------------------------------------------------------------------------------
def test_honest_learner(graded):
    assert statuses(graded, "honest.ipynb") == {
        "forward": "passed",
        "generate_batch": "failed",
        **{e: "not attempted" for e in EXERCISES[2:]},
    }
    assert "rand > p" in graded["feedback"]["honest.md"], "the feedback holds the full hint"


def test_forged_log_lines_and_printed_successes_earn_nothing(graded):
    assert set(statuses(graded, "forged_log.ipynb").values()) == {"not attempted"}


def test_calling_or_replacing_the_checkers_machinery_earns_nothing(graded):
    result = graded["results"]["fake_recorder.ipynb"]
    status = statuses(graded, "fake_recorder.ipynb")
    assert status["forward"] == "failed" and status["generate_batch"] == "failed"
    batch = next(e for e in result["exercises"] if e["exercise"] == "generate_batch")
    assert "replaced torch.allclose while being checked" in batch["message"]
    assert any("torch.allclose" in flag and "torch.isclose" in flag for flag in result["review"])


def test_tampering_with_tests_and_solutions_earns_nothing(graded):
    assert set(statuses(graded, "tamper.ipynb").values()) == {"not attempted"}
    written = next(e for e in graded["results"]["tamper.ipynb"]["cell_errors"] if "written:" in e)
    assert f"curriculum/tests/{SECTION}.py" in written, "the disposable copy was rewritten, to no effect"
    if confined():
        assert graded["repository"] not in written, "the instructor's repository was not"


def test_a_copy_of_the_repository_in_the_submission_folder_is_never_used(graded):
    assert set(statuses(graded, "carol/part1_superposition.ipynb").values()) == {"not attempted"}


def test_deleted_check_cells_leave_their_exercises_not_attempted(graded):
    status = statuses(graded, "deleted_checks.ipynb")
    assert status["calculate_loss"] == status["generate_combined_batch"] == "not attempted"
    assert list(status.values()).count("passed") == 5
    result = graded["results"]["deleted_checks.ipynb"]
    assert result["totals"]["total"] == 7 and result["max_score"] == 7


def test_the_reference_checked_instead_earns_nothing(graded):
    status = statuses(graded, "reference.ipynb")
    assert status["forward"] == "failed", graded["results"]["reference.ipynb"]


def test_a_renamed_notebook_of_another_section_is_reported_as_such(graded):
    result = graded["results"]["bob/part1_superposition.ipynb"]
    assert set(statuses(graded, "bob/part1_superposition.ipynb").values()) == {"not attempted"}
    assert any("part2_privileged_basis" in note for note in result["notes"])
    assert "notebook of part2_privileged_basis" in result["exercises"][0]["message"]


def test_hung_cells_are_reported_and_later_exercises_still_graded(graded):
    result = graded["results"]["infinite_loop.ipynb"]
    status = statuses(graded, "infinite_loop.ipynb")
    assert status["generate_batch"] == "failed" and list(status.values()).count("passed") == 6
    batch = next(e for e in result["exercises"] if e["exercise"] == "generate_batch")
    assert "did not finish" in batch["message"]
    hung = [note for note in result["notes"] if "hung" in note]
    assert len(hung) == 2 and "`while True:`" in hung[0], result["notes"]
    assert result["kernel_starts"] == 2, "the loop that ignores interrupts costs one restart"


def test_a_dead_kernel_is_reported_and_later_exercises_still_graded(graded):
    result = graded["results"]["dead_kernel.ipynb"]
    status = statuses(graded, "dead_kernel.ipynb")
    assert status["calculate_loss"] == "failed" and list(status.values()).count("passed") == 6
    assert any("crashed the kernel" in note and "import os, signal" in note for note in result["notes"]), result[
        "notes"
    ]
    assert result["kernel_starts"] == 3


def test_a_4_gb_allocation_fails_without_taking_the_notebook_down(graded):
    result = graded["results"]["memory.ipynb"]
    status = statuses(graded, "memory.ipynb")
    assert status["calculate_loss"] == "failed" and list(status.values()).count("passed") == 6
    assert result["kernel_starts"] == 1
    assert any("MemoryError" in err for err in result["cell_errors"]), result["cell_errors"]
    assert any("allocate" in err for err in result["cell_errors"]), result["cell_errors"]


def test_no_process_outlives_the_grading(graded):
    assert graded["orphans"] == []
    assert set(statuses(graded, "orphans.ipynb").values()) == {"passed"}


def test_the_environment_is_not_readable(graded):
    assert set(statuses(graded, "read_env.ipynb").values()) == {"passed"}
    if not confined():
        pytest.skip("without Landlock a kernel can read other processes' /proc/<pid>/environ")
    assert "leaked: []" in graded["feedback"]["read_env.md"], "the cell ran, and found nothing"
    everything = graded["stdout"] + graded["stderr"] + graded["csv"] + json.dumps(graded["results"])
    everything += "".join(graded["feedback"].values())
    assert SECRET not in everything
    assert not graded["leaked_file"]
