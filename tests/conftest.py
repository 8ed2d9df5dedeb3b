"""Suite-wide settings, and the tiers the tests are selected by.

Every test file belongs to one tier, by its name (so a new file is tiered without extra lines):

* ``proofs``: the checkers' proofs, the checker framework, the layout rules (seconds);
* ``science``: the phenomena each section claims, trained at affordable sizes, and the shipped artifacts;
* ``notebooks``: generated notebooks are fresh and run headless, and the figures in them pass the lint;
* ``grading``: the instructor's grader.

``pytest -m proofs`` runs the fast tier; ``-m "not science"`` skips the trainings.
"""

import pytest
import torch

# The suite runs on 2 cores with pytest-xdist (`-n 2`): one torch thread per worker avoids oversubscription,
# and the tensors in these tests are small enough that a second thread only adds synchronisation.
torch.set_num_threads(1)

TIERS = {
    "grading": ("test_grade",),
    "notebooks": ("test_notebooks", "test_figures"),
    "science": ("_science", "_artifacts", "_api", "test_saelens_interop"),
    "proofs": ("_checkers", "test_checking", "test_reference", "test_layout"),
}


def tier_of(stem: str) -> str:
    for tier, patterns in TIERS.items():
        if any(stem.startswith(p) if p.startswith("test_") else stem.endswith(p) for p in patterns):
            return tier
    raise ValueError(f"tests/{stem}.py belongs to no tier: name it test_<section>_checkers/_science/... (conftest.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, tier_of(item.path.stem)))
