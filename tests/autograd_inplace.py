"""Autograd's "modified by an inplace operation" error, raised when a CHECKER differentiates the learner's output.

The error surfaces in the checker's own `torch.autograd.grad` / `.backward()` call, so without this reading the shared
error description sees no learner frame and reads it as the checker's trouble with the output ("wrong type or
shape"). It is the learner's code: an in-place op (`.add_`, `+=`, `.clamp_`, `x[mask] = 0`, ...) changed a tensor
autograd had saved for the backward pass. `inplace_reading` says so; `tests.checking` uses it for every checker.
"""

from __future__ import annotations

import re
import traceback

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


def inplace_reading(err: BaseException, what: str) -> tuple[str, str] | None:
    """(message, hint) naming the learner's in-place edit when `err` is autograd's version-counter error raised
    outside the learner's frames (i.e. in a checker's backward over the learner's output); otherwise None."""
    text = str(err)
    if not isinstance(err, RuntimeError) or "modified by an inplace operation" not in text:
        return None
    if any(_is_learner_frame(f.filename) for f in traceback.extract_tb(err.__traceback__)):
        return None  # the learner's own backward call: the shared description quotes their line
    node = re.search(r"output \d+ of (\w+?)(?:Backward\d*)?\b", text)
    shape = re.search(r"\[torch\.\w+ \[([\d, ]*)\]\]", text)
    op = _OPS.get(node.group(1), f"{node.group(1)}") if node else "an earlier operation"
    where = f"the output of {op}" + (f", shape [{shape.group(1)}]," if shape else "")
    return (
        f"backpropagating through {what} failed: an in-place operation changed {where} which autograd saved to "
        "compute the gradient",
        f"don't modify in place (.add_, .div_, .clamp_, +=, /=, x[...] = ...) a tensor the gradient needs, here "
        f"{op}: write it out of place, e.g. `norm + eps` instead of `norm.add_(eps)`",
    )
