# Quick start: `make lab` (learners) and `make test` (developers, CI). Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast setup notebooks execute bench lint grade clean

$(STAMP): requirements.txt tools/install.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m tools.install
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

lab: $(STAMP)
	$(PY) -m tools.install --lab
	$(PY) -m jupyter lab exercises/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)  # root: containers, Colab-like VMs

test: $(STAMP)             ## the whole suite (what CI runs)
	$(PY) -m pytest -n 2 --dist loadgroup -q

test-fast: $(STAMP)        ## the proofs tier only: checkers, framework, layout rules (minutes)
	$(PY) -m pytest -n 2 --dist loadgroup -q -m proofs

notebooks: $(STAMP)         ## rebuild both notebooks of every section from solutions/part*.py, then execute the solutions
	$(PY) -m tools.notebooks build
	$(PY) -m tools.notebooks execute

bench: $(STAMP)             ## time every solution notebook and every checker; writes bench.md and the README table
	$(PY) -m tools.bench

grade: $(STAMP)             ## grade the learner notebooks in exercises/ (or PATHS=...)
	$(PY) -m tools.grade $(PATHS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
