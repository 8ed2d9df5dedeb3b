"""Suite-wide settings, and the tiers the tests are selected by.

Every test file belongs to one tier, by its name (so a new file is tiered without extra lines):

* ``proofs``: the checkers' proofs, the checker framework, the layout rules (minutes);
* ``science``: the phenomena each section claims, trained at affordable sizes, and the shipped artifacts;
* ``notebooks``: generated notebooks are fresh and run headless, and the figures in them pass the lint;
* ``grading``: the instructor's grader.

``pytest -m proofs`` runs the fast tier; ``-m "not science"`` skips the trainings.

Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``) the long tests go first, so that the two workers
finish together instead of one waiting on a training started last, and each science or grading file runs on one
worker, so its module-scoped fixtures (the trainings and gradings its tests share) are computed once.
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


# the order the tiers run in: the longest tests first (notebook runs, then trainings), the many short proofs last
RUN_ORDER = ("notebooks", "science", "grading", "proofs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers = {}
    for item in items:
        tier = tiers[item] = tier_of(item.path.stem)
        item.add_marker(getattr(pytest.mark, tier))
        if tier in ("science", "grading"):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))  # one worker per file: fixtures built once
    items.sort(key=lambda item: RUN_ORDER.index(tiers[item]))  # stable: a file's tests keep their order
