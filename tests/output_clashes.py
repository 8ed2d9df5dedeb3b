"""Errors a CHECKER's own code meets because of what the learner returned, read as the learner's choice of output.

With no learner frame in the traceback, the shared error description would otherwise call them the checker's trouble
("wrong type or shape"). Two are told apart by torch's own words: a dtype clash (a `.half()` / float64 output met the
checker's float32 arithmetic) and a sparse tensor (torch's dispatcher error, which lists every backend).
`tests.checking` uses `output_reading` for every checker.
"""

from __future__ import annotations

import re

_DTYPE_CLASH = re.compile(  # torch's words for two dtypes that met in one operation
    r"(Half|Float|Double|BFloat16|Long|Int|Bool|ComplexFloat) did not match"
    r"|expected (m1 and m2|mat1 and mat2|both vectors|all arguments) to have the same dtype"
    r"|expected scalar type \w+ but found \w+|result type \w+ can't be cast"
)


def first_sentence(text: str, limit: int = 240) -> str:
    """The start of a long error (torch's dispatcher errors list every backend): up to the first line break."""
    first = text.split("\n", 1)[0]
    return first if len(first) <= limit else first[:limit] + " ..."


def output_reading(err: BaseException) -> tuple[str, str, str] | None:
    """(message, hint, code) when the checker's error says what is wrong with the output's dtype or layout."""
    said = str(err)
    if _DTYPE_CLASH.search(said):
        return (
            f"checking your output raised {type(err).__name__}: {first_sentence(said)} (a dtype clash)",
            "your output's dtype differs from the inputs' (float32 here): keep the inputs' dtype, e.g. no "
            ".half()/.double()/.float() conversion and no tensor created without dtype=",
            "dtype",
        )
    if "sparse" in said.lower():
        return (
            f"checking your output raised {type(err).__name__}: an operation is not supported on sparse tensors",
            "your output is (or holds) a sparse tensor: return a dense one (drop .to_sparse(), or call "
            ".to_dense()); zeros are part of the answer",
            "sparse",
        )
    return None
