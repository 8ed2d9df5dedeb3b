"""Generated notebooks are fresh, well-formed, and run headless."""

from __future__ import annotations

import importlib
import inspect
import json
import re

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from utils.notebooks import BEGIN, CHECK_CALL, build, execute, same_sources, sections, setup_cell, unwrap_main

SECTIONS = sections()
PLOTLY = "application/vnd.plotly.v1+json"
IDS = [s.name for s in SECTIONS]


@pytest.mark.parametrize("sec", SECTIONS, ids=IDS)
def test_exercise_notebook_is_fresh_and_has_no_outputs(sec):
    assert sec.exercise_notebook.exists(), f"run `make notebooks`: {sec.exercise_notebook} is missing"
    committed = nbformat.read(sec.exercise_notebook, as_version=4)
    assert same_sources(committed, build(sec, exercise=True)), (
        f"{sec.exercise_notebook} is out of date with {sec.source}: run `make notebooks`"
    )
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


@pytest.mark.parametrize("sec", SECTIONS, ids=IDS)
def test_solution_notebook_is_fresh_and_executed(sec):
    assert sec.solution_notebook.exists(), f"run `make notebooks`: {sec.solution_notebook} is missing"
    committed = nbformat.read(sec.solution_notebook, as_version=4)
    assert same_sources(committed, build(sec, exercise=False)), (
        f"{sec.solution_notebook} is out of date with {sec.source}: run `make notebooks`"
    )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "the solution notebook is committed unexecuted"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"the committed solution notebook has errors: {errors[0].get('ename')}"
    for cell in code:  # a helper that shows *and* returns its figure displays it twice at the end of a cell
        figures = [json.dumps(o.data.get(PLOTLY), sort_keys=True) for o in cell.outputs if PLOTLY in o.get("data", {})]
        assert len(figures) == len(set(figures)), f"a figure is displayed twice by:\n{cell.source[:300]}"


@pytest.mark.parametrize("sec", SECTIONS, ids=IDS)
def test_every_exercise_is_stubbed_and_checked(sec):
    source = sec.source.read_text(encoding="utf-8")
    exercise = build(sec, exercise=True)
    text = "\n".join(c.source for c in exercise.cells)
    assert BEGIN not in text and "### END SOLUTION" not in text
    assert text.count("raise NotImplementedError") == source.count(BEGIN)
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


def test_unwrap_main_dedents_and_flags_notebook_only_cells():
    code, only = unwrap_main("if MAIN:\n    x = 1\n    if x:\n        print(x)\n")
    assert code == "x = 1\nif x:\n    print(x)" and only
    code, only = unwrap_main('import torch\nMAIN = __name__ == "__main__"\nif MAIN:\n    y = 2\n')
    assert code == "import torch\ny = 2" and not only


@pytest.mark.slow
@pytest.mark.parametrize("sec", SECTIONS, ids=IDS)
def test_solution_notebook_runs_headless(sec):
    execute(build(sec, exercise=False), cwd=sec.source.parent, env={"CURRICULUM_FAST": "1"})


@pytest.mark.slow
@pytest.mark.parametrize("sec", SECTIONS, ids=IDS)
def test_run_all_on_exercise_notebook_stops_at_first_stub(sec):
    nb = build(sec, exercise=True)
    with pytest.raises(CellExecutionError) as info:
        execute(nb, cwd=sec.exercise_notebook.parent, env={"CURRICULUM_FAST": "1"})
    err = info.value
    assert err.ename == "NotDone", f"Run all stopped on {err.ename}: {err.evalue}"
    assert "not implemented yet" in err.evalue
    first_check = next(c for c in nb.cells if c.cell_type == "code" and CHECK_CALL.search(c.source))
    assert re.search(CHECK_CALL, str(err)), "the run should stop at a check cell"
    assert first_check.source in str(err), "Run all should stop at the first check"


def test_setup_cell_installs_section_packages_only_where_needed():
    """sae-lens is a large install: only the section that uses it asks for it (in Colab, where it's missing)."""
    assert "sae-lens" in setup_cell("part5b_absorption")
    assert "sae-lens" not in setup_cell("part1_superposition")
    for name in ("part1_superposition", "part5b_absorption"):
        assert "einops" in setup_cell(name) and "torch" not in setup_cell(name).split("missing = ")[1]
