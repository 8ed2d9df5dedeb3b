"""The repository's layout in one place: where sources, notebooks, checkers and shipped artifacts live.

A section's name (e.g. ``part1_superposition``) is its address in every folder:

* ``solutions/<section>.py``: the single source (reference code and prose), built into
  ``solutions/<section>.ipynb`` (executed) and ``exercises/<section>.ipynb`` (stubs);
* ``tests/<section>.py``: its checkers; ``tests/test_<section>_*.py``: their proofs and science tests;
* ``utils/<section>.py``: its given code and figures, when it has any.

Standard library only: the installer imports this before anything else is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
TESTS = ROOT / "tests"
UTILS = ROOT / "utils"
TOOLS = ROOT / "tools"
ARTIFACTS = UTILS / "artifacts"
LM_DIR = ARTIFACTS / "lm"  # section 6's shipped language model and tokenizer
SAE_DIR = ARTIFACTS / "sae"  # section 6's shipped SAE (SAELens on-disk format)
TRANSCODER_DIR = ARTIFACTS / "transcoder"  # section 6b's shipped transcoder (SAELens on-disk format)

SECTION_GLOB = "part*.py"
# A check in a section's source: `tests.<section>.test_<exercise>(<argument>)`.
CHECK_CALL = re.compile(r"tests\.(\w+)\.(test_\w+)\(([^()]*)\)")


def section_names() -> list[str]:
    """Every section, in curriculum order (the order of their names)."""
    return sorted(p.stem for p in SOLUTIONS.glob(SECTION_GLOB))


def check_calls(name: str) -> list[tuple[str, str, str]]:
    """(checker module, checker function, argument expression) for every check in a section's source."""
    return CHECK_CALL.findall((SOLUTIONS / f"{name}.py").read_text(encoding="utf-8"))
