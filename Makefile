# Quick start: `make lab` (learners) and `make test` (developers, CI). Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test setup notebooks execute bench lint grade clean

$(STAMP): requirements.txt utils/install.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m utils.install
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

lab: $(STAMP)
	$(PY) -m utils.install --lab
	$(PY) -m jupyter lab exercises/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)  # root: containers, Colab-like VMs

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

notebooks: $(STAMP)         ## rebuild both notebooks of every section from solutions/part*.py, then execute the solutions
	$(PY) -m utils.notebooks build
	$(PY) -m utils.notebooks execute

bench: $(STAMP)             ## time every solution notebook and every checker; writes bench.md and the README table
	$(PY) -m tests.bench

grade: $(STAMP)             ## grade the learner notebooks in exercises/ (or PATHS=...)
	$(PY) -m tests.grade $(PATHS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
