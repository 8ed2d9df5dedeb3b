"""Autograd's "modified by an inplace operation" error, raised when a CHECKER differentiates the learner's output.

The error surfaces in the checker's own `torch.autograd.grad` / `.backward()` call, so the shared error description
sees no learner frame and reads it as the checker's trouble with the output ("wrong type or shape"). It is the
learner's code: an in-place op (`.add_`, `+=`, `.clamp_`, `x[mask] = 0`, ...) changed a tensor autograd had saved for
the backward pass. `learner_backward` wraps a checker's backward call and names that; any other error passes on.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from tests.checking import fail
from tests.learner_errors import _is_learner_frame

# autograd's node names (with "Backward<n>" stripped) read as the operation a learner wrote
_OPS = {
    "LinalgVectorNorm": "a norm (.norm(...) / torch.linalg.vector_norm)",
    "Norm": "a norm (.norm(...))",
    "Sqrt": "a square root (.sqrt())",
    "Rsqrt": "a reciprocal square root (.rsqrt())",
    "Pow": "a power (** or .pow)",
    "Exp": "an exponential (.exp())",
    "Log": "a logarithm (.log())",
    "Relu": "a ReLU",
    "Sigmoid": "a sigmoid",
    "Tanh": "a tanh",
    "Div": "a division",
    "Mul": "a product",
    "Sum": "a sum",
    "Mean": "a mean",
    "Abs": "an absolute value (.abs())",
}


def inplace_failure(err: BaseException, what: str) -> None:
    """Fail naming the learner's in-place edit when `err` is autograd's version-counter error raised outside the
    learner's frames (i.e. in the checker's backward over the learner's output); otherwise do nothing."""
    text = str(err)
    if not isinstance(err, RuntimeError) or "modified by an inplace operation" not in text:
        return
    if any(_is_learner_frame(f.filename) for f in traceback.extract_tb(err.__traceback__)):
        return  # the learner's own backward call: the shared description quotes their line
    node = re.search(r"output \d+ of (\w+?)(?:Backward\d*)?\b", text)
    shape = re.search(r"\[torch\.\w+ \[([\d, ]*)\]\]", text)
    op = _OPS.get(node.group(1), f"{node.group(1)}") if node else "an earlier operation"
    where = f"the output of {op}" + (f", shape [{shape.group(1)}]," if shape else "")
    fail(
        f"backpropagating through {what} failed: an in-place operation changed {where} which autograd saved to "
        "compute the gradient",
        f"don't modify in place (.add_, .div_, .clamp_, +=, /=, x[...] = ...) a tensor the gradient needs, here "
        f"{op}: write it out of place, e.g. `norm + eps` instead of `norm.add_(eps)`",
        code="inplace_autograd",
    )


@contextmanager
def learner_backward(what: str) -> Iterator[None]:
    """Run a checker's backward over the learner's output; name autograd's in-place error as the learner's."""
    try:
        yield
    except RuntimeError as err:
        inplace_failure(err, what)
        raise
