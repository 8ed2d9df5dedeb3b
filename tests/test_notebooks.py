"""Generated notebooks are fresh, well-formed, and run headless."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from utils.paths import CHECK_CALL, section_names

PLOTLY = "application/vnd.plotly.v1+json"
NAMES = section_names()

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def nb():
    """The notebook builder (tools are imported where used, never at module level)."""
    import tools.notebooks

    return tools.notebooks


@pytest.mark.parametrize("name", NAMES)
def test_exercise_notebook_is_fresh_and_has_no_outputs(nb, name):
    sec = nb.section(name)
    assert sec.exercise_notebook.exists(), f"run `make notebooks`: {sec.exercise_notebook} is missing"
    committed = nbformat.read(sec.exercise_notebook, as_version=4)
    assert nb.same_sources(committed, nb.build(sec, exercise=True)), (
        f"{sec.exercise_notebook} is out of date with {sec.source}: run `make notebooks`"
    )
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", NAMES)
def test_solution_notebook_is_fresh_and_executed(nb, name):
    sec = nb.section(name)
    assert sec.solution_notebook.exists(), f"run `make notebooks`: {sec.solution_notebook} is missing"
    committed = nbformat.read(sec.solution_notebook, as_version=4)
    assert nb.same_sources(committed, nb.build(sec, exercise=False)), (
        f"{sec.solution_notebook} is out of date with {sec.source}: run `make notebooks`"
    )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "the solution notebook is committed unexecuted"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"the committed solution notebook has errors: {errors[0].get('ename')}"
    for cell in code:  # a helper that shows *and* returns its figure displays it twice at the end of a cell
        figures = [json.dumps(o.data.get(PLOTLY), sort_keys=True) for o in cell.outputs if PLOTLY in o.get("data", {})]
        assert len(figures) == len(set(figures)), f"a figure is displayed twice by:\n{cell.source[:300]}"


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_is_stubbed_and_checked(nb, name):
    sec = nb.section(name)
    source = sec.source.read_text(encoding="utf-8")
    exercise = nb.build(sec, exercise=True)
    text = "\n".join(c.source for c in exercise.cells)
    assert nb.BEGIN not in text and "### END SOLUTION" not in text
    assert text.count("raise NotImplementedError") == source.count(nb.BEGIN)
    calls = CHECK_CALL.findall(source)
    assert calls, "a section without checks"
    for cell in exercise.cells:  # one check per cell, so a stub stops only its own check and every exercise is graded
        assert len(CHECK_CALL.findall(cell.source)) <= 1, f"split this cell into one check each:\n{cell.source}"
    module = importlib.import_module(f"tests.{sec.name}")
    checkers = {
        name
        for name, f in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("test_") and f.__module__ == module.__name__
    }
    called = {func for mod, func, _ in calls if mod == sec.name}
    assert checkers == called, (
        f"checkers never called in the notebook: {checkers - called}; called but missing: {called - checkers}"
    )


def test_unwrap_main_dedents_and_flags_notebook_only_cells(nb):
    code, only = nb.unwrap_main("if MAIN:\n    x = 1\n    if x:\n        print(x)\n")
    assert code == "x = 1\nif x:\n    print(x)" and only
    code, only = nb.unwrap_main('import torch\nMAIN = __name__ == "__main__"\nif MAIN:\n    y = 2\n')
    assert code == "import torch\ny = 2" and not only


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solution_notebook_runs_headless(nb, name):
    sec = nb.section(name)
    nb.execute(nb.build(sec, exercise=False), cwd=sec.source.parent, env={"CURRICULUM_FAST": "1"})


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_run_all_on_exercise_notebook_stops_at_first_stub(nb, name):
    sec = nb.section(name)
    notebook = nb.build(sec, exercise=True)
    with pytest.raises(CellExecutionError) as info:
        nb.execute(notebook, cwd=sec.exercise_notebook.parent, env={"CURRICULUM_FAST": "1"})
    err = info.value
    assert err.ename == "NotDone", f"Run all stopped on {err.ename}: {err.evalue}"
    assert "not implemented yet" in err.evalue
    first_check = next(c for c in notebook.cells if c.cell_type == "code" and CHECK_CALL.search(c.source))
    assert re.search(CHECK_CALL, str(err)), "the run should stop at a check cell"
    assert first_check.source in str(err), "Run all should stop at the first check"


def test_setup_cell_installs_section_packages_only_where_needed(nb):
    """Large installs only where a section imports them: sae-lens for 5b, the language-model stack for 6."""
    assert "sae-lens" in nb.setup_cell("part5b_absorption")
    assert "transformer_lens" in nb.setup_cell("part6_lm_saes")
    for name in ("part1_superposition", "part5_toy_saes", "part7_open_problems"):
        cell = nb.setup_cell(name)
        assert "sae-lens" not in cell and "transformer_lens" not in cell
    for name in ("part1_superposition", "part5b_absorption", "part6_lm_saes"):
        assert "einops" in nb.setup_cell(name) and "torch" not in nb.setup_cell(name).split("missing = ")[1]


def test_setup_cell_reports_why_a_step_failed(nb, tmp_path):
    """A failed install shows pip's own reason, not just an exit status; the URL comes from pyproject.toml."""
    from tools.install import REPO_URL

    cell = nb.setup_cell("part1_superposition")
    assert f'"{REPO_URL}"' in cell
    namespace: dict = {}
    exec(cell.split("IN_COLAB =")[0], namespace)  # defines `run` only
    with pytest.raises(RuntimeError, match="No module named"):
        namespace["run"]([sys.executable, "-c", "import a_module_that_does_not_exist"])
