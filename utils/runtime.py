"""Run-time switches read from the environment.

`CURRICULUM_FAST=1` makes the notebooks use tiny step counts. The test-suite and the grader set it so
executing every notebook headless takes seconds; the figures are then meaningless, the code paths are not.
"""

import os

FAST: bool = os.environ.get("CURRICULUM_FAST", "0") not in ("", "0", "false", "False")


def steps(full: int, fast: int = 20) -> int:
    """`full` normally, `fast` under CURRICULUM_FAST=1."""
    return fast if FAST else full
