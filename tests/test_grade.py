"""The grader: all passed on solutions, all not attempted on untouched exercises, the right verdicts on a
learner's mix of right and wrong answers, and the graded file left untouched."""

from __future__ import annotations

import hashlib
import json
import shutil

import nbformat
import pytest

from utils.paths import EXERCISES, section_names

pytestmark = pytest.mark.slow
PART1_EXERCISE = EXERCISES / "part1_superposition.ipynb"


def grade_notebook(path):
    from tools.grade import grade_notebook  # tools are imported where used, never at module level

    return grade_notebook(path)


def main(argv):
    from tools.grade import main

    return main(argv)


def build(name: str, exercise: bool):
    from tools.notebooks import build, section

    return build(section(name), exercise=exercise)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_solution_notebook_grades_all_passed(tmp_path):
    path = tmp_path / "solution.ipynb"
    nbformat.write(build("part1_superposition", exercise=False), path)
    result = grade_notebook(path)
    assert result.totals()["passed"] == result.totals()["total"] == 7, result


def test_untouched_exercise_notebook_grades_all_not_attempted():
    before = digest(PART1_EXERCISE)
    result = grade_notebook(PART1_EXERCISE)
    assert not result.error
    assert [e.status for e in result.exercises] == ["not attempted"] * 7
    assert digest(PART1_EXERCISE) == before, "the grader must never write to a notebook"


LEARNER_FORWARD = """\
        # an unusual but correct answer: one matrix per instance
        WtW = self.W.mT @ self.W
        return torch.relu(torch.einsum("ifg,...ig->...if", WtW, features) + self.b_final)"""
LEARNER_BATCH = """\
        # a wrong answer: the mask is `rand > p`
        shape = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        return torch.where(torch.rand(shape) > self.feature_probability, torch.rand(shape), 0.0)"""


def test_learner_notebook_outside_the_repo(tmp_path):
    nb = nbformat.read(PART1_EXERCISE, as_version=4)
    cell = next(c for c in nb.cells if "def forward(" in c.source)
    stub = '        # YOUR CODE HERE\n        raise NotImplementedError("not implemented yet")'
    assert cell.source.count(stub) == 3
    cell.source = cell.source.replace(stub, LEARNER_FORWARD, 1).replace(stub, LEARNER_BATCH, 1)
    path = tmp_path / "learner.ipynb"
    nbformat.write(nb, path)
    before = digest(path)
    result = grade_notebook(path)
    status = {e.exercise: e for e in result.exercises}
    assert status["forward"].status == "passed"
    assert status["generate_batch"].status == "failed" and "rand > p" in status["generate_batch"].message
    assert status["calculate_loss"].status == "not attempted"
    assert digest(path) == before


def test_json_output(tmp_path, capsys):
    shutil.copy(PART1_EXERCISE, tmp_path / "a.ipynb")
    assert main([str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["totals"] == {"passed": 0, "failed": 0, "not attempted": 7, "total": 7}


def test_unreadable_notebook_is_reported_not_crashed(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{ not json")
    assert "could not read" in grade_notebook(path).error


@pytest.mark.parametrize("name", section_names())
def test_every_section_grades_all_passed_and_all_not_attempted(name, tmp_path):
    path = tmp_path / "solution.ipynb"
    nbformat.write(build(name, exercise=False), path)
    solved = grade_notebook(path)
    assert not solved.error and solved.totals()["passed"] == solved.totals()["total"] > 0, solved
    untouched = grade_notebook(EXERCISES / f"{name}.ipynb")
    assert not untouched.error and untouched.totals()["not attempted"] == untouched.totals()["total"], untouched
