"""How a check stops: `CheckFailed` (the learner's code ran but is wrong), `NotDone` (a stub) and `fail`.

Kept apart from tests/checking.py so the small reading modules that checking imports (tests/input_edits.py, ...)
can fail a check without importing checking back.
"""

from __future__ import annotations

_RED, _RESET = "\x1b[31m", "\x1b[0m"


class CheckOutcome(Exception):
    """Base of the two ways a check can stop. Renders as a few lines in IPython."""

    label = ""

    def __init__(self, message: str, hint: str | None = None, code: str = "failed"):
        self.message, self.hint, self.code = message, hint, code
        self.exercise = ""  # filled in by @checker
        super().__init__(self.text())

    def text(self) -> str:
        where = f"{self.exercise}: " if self.exercise else ""
        hint = f"\nHint: {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def __str__(self) -> str:
        return self.text()

    def _render_traceback_(self) -> list[str]:
        first, *rest = self.text().splitlines()
        return [f"{_RED}{self.label} {first}{_RESET}", *rest]


class NotDone(CheckOutcome):
    """The exercise (or something it needs) still raises NotImplementedError."""

    label = "⏳"


class CheckFailed(CheckOutcome, AssertionError):
    """The learner's code ran but did not do what the exercise asks."""

    label = "❌"


def fail(message: str, hint: str | None = None, code: str = "failed") -> None:
    raise CheckFailed(message, hint, code)
