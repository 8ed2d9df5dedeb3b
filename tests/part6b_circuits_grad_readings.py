"""attribution_edges read back from the learner's gradients (held-out round BB).

* A leaf's `.grad` that stays None: a latent's pre-activation does not depend on any latent (one layer: nothing flows
  from one latent to another), so `.backward()` on a latent target leaves the latent leaf's `.grad` None, and
  `leaf.grad * leaf` raises a TypeError; the checker names the None gradient instead of a generic None.
* Gradients that accumulate from one target to the next for some kinds of leaf only (`.backward()` per target with
  only one leaf's `.grad` reset): the columns of those kinds are running sums of the right rows, the others right.
* Rows that are copies of other targets' right rows (one row written into several: the loop index reused, a row
  broadcast into a slice of rows).
* Token or error edges whose dot product pairs every position's gradient with every position's vector and sums one
  axis (`(grad @ vector.T).sum(0)`): each column is the gradient summed over positions · the node's own vector.
"""

from __future__ import annotations

import inspect
import linecache
import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_probes as probes
from tests.checking import fail

CLOSE = {"rtol": 1e-3, "atol": 2e-4}
KINDS = ("latent", "error", "token")


def edges_call(impl: Callable, model: Any, tc: Any, frozen: Any, graph: Any) -> Any:
    """probes.edges_call, with a None `.grad` used as a value (TypeError / AttributeError on NoneType) named."""
    try:
        return probes.edges_call(impl, model, tc, frozen, graph)
    except (TypeError, AttributeError) as err:
        none_grad(err)
        raise


def none_grad(err: Exception) -> None:
    """Fail (code grad_none) when the learner's line that raised on a None reads a `.grad`."""
    if "NoneType" not in str(err):
        return
    frames = list(traceback.walk_tb(err.__traceback__))
    if not frames:
        return
    frame, lineno = frames[-1]
    try:  # the function that raised: reading a .grad after .backward() there, or on the raising line itself
        body = inspect.getsource(frame)
    except (OSError, TypeError):
        body = ""
    line = linecache.getline(frame.f_code.co_filename, lineno).strip()
    if not (re.search(r"\.grad\b", line) or (re.search(r"\.grad\b", body) and ".backward(" in body)):
        return
    fail(
        f"your code raised {type(err).__name__}: {err}, on the line `{line}`; it reads .grad after .backward(): "
        "a None there is most likely a leaf's .grad",
        "a leaf's .grad is None until a backward pass reaches it, and no pass reaches a leaf the target does not "
        "depend on: a latent's pre-activation depends on no latent (in a one-layer model nothing flows from one "
        "latent to another). Read a missing gradient as zeros (`torch.zeros_like(leaf) if leaf.grad is None else "
        "leaf.grad`), or use torch.autograd.grad(target, leaves, allow_unused=True, materialize_grads=True)",
        code="grad_none",
    )


def edge_readings(out: Tensor, direct: Tensor, graph: Any, rows: list[int], run: tuple) -> None:
    """The readings above, in order: accumulated gradients, copied rows, cross-position dot products."""
    accumulated(out, direct, graph, rows)
    copied_rows(out, direct, graph, rows)
    cross_position(out, direct, graph, rows, run)


def accumulated(out: Tensor, direct: Tensor, graph: Any, rows: list[int]) -> None:
    """`.backward()` per target without zeroing `.grad` makes each row the sum of the right rows of every target before
    it (in the graph's order or the reverse): for every kind of source, or for some kinds only."""
    for order in (rows, rows[::-1]):
        if len(order) < 2:
            return
        summed, ok = [], True
        for kind in KINDS:
            got, want = out[order][:, graph.nodes(kind)], direct[order][:, graph.nodes(kind)]
            if torch.allclose(got, want, **CLOSE):
                continue
            if torch.allclose(got, want.cumsum(0), **CLOSE):
                summed.append(kind)
            else:
                ok = False
        if not ok or not summed:
            continue
        hint = (
            "`.backward()` adds into `.grad`: zero it (`x.grad = None`) before each target, or use "
            "torch.autograd.grad(target, inputs, retain_graph=True), which returns fresh gradients"
        )
        if len(summed) == len(KINDS):
            fail(
                "each row of the adjacency matrix is the sum of the right rows of every target before it: "
                "the gradients accumulate from one target to the next",
                hint,
                code="grad_accumulated",
            )
        right = [k for k in KINDS if k not in summed]
        fail(
            f"the {' and '.join(summed)} columns of each row are the sums of the right ones of every target before "
            f"it (the {' and '.join(right)} columns are right): the gradients of the {' and '.join(summed)} leaves "
            "accumulate from one target to the next",
            "`.backward()` adds into every leaf's `.grad`: reset the .grad of EVERY leaf (latent values, error and "
            "embeddings) before each target, or use torch.autograd.grad(target, leaves, retain_graph=True), which "
            "returns fresh gradients",
            code="grad_accumulated",
        )


def copied_rows(out: Tensor, direct: Tensor, graph: Any, rows: list[int]) -> None:
    """Every target row equal to some target's right row, some to ANOTHER target's (several rows the same)."""
    want = direct[rows]
    source = []
    for r in rows:
        same = [i for i in range(len(rows)) if torch.allclose(out[r], want[i], **CLOSE)]
        if not same:
            return
        source.append(rows.index(r) if rows.index(r) in same else same[0])
    wrong = [(r, rows[s]) for r, s in zip(rows, source, strict=True) if rows[s] != r]
    if not wrong or len(set(source)) in (1, len(source)):  # a permutation, or one row everywhere: named elsewhere
        return
    shown = "; ".join(f"{graph.label(r)}'s is {graph.label(s)}'s" for r, s in wrong[:3])
    fail(
        f"{len(wrong)} target rows are copies of another target's right row ({shown}): several rows hold the same "
        "edges",
        "each target's row comes from its own backward pass: the gradient of that target, written into that "
        "target's row (check the loop variable used for the target and for the row, and that no single row is "
        "assigned to a slice of rows)",
        code="rows_copied",
    )


def _gradients(run: tuple, graph: Any) -> list[tuple[Tensor, Tensor]]:
    """Per target (graph order): the gradients at the error and token nodes, [n_pos d_model] each."""
    model, tc, frozen = run
    pos, idx = graph.latent_pos, graph.latent_idx
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        error = frozen.error.detach().clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = frozen.acts[pos, idx]
        pre, logits = known.variant_forward(model, tc, frozen, embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        grads = []
        for t in targets:
            ge, gx = torch.autograd.grad(t, (error, embeds), retain_graph=True, allow_unused=True)
            zero = lambda g, like: torch.zeros_like(like) if g is None else g
            grads.append((zero(ge, error), zero(gx, embeds)))
    return grads


def cross_position(out: Tensor, direct: Tensor, graph: Any, rows: list[int], run: tuple) -> None:
    """Token / error columns = (Σ_p grad_p) · vector_q, or grad_q · (Σ_p vector_p): all-pairs dot products summed."""
    frozen = run[2]
    block = lambda m, k: m[rows][:, graph.nodes(k)]
    bad = [k for k in ("error", "token") if not torch.allclose(block(out, k), block(direct, k), **CLOSE)]
    if not bad:
        return
    grads = _gradients(run, graph)
    vectors = {"error": frozen.error.detach(), "token": frozen.embeds.detach()}
    forms = {
        "the gradient summed over positions · the node's vector, (grad @ vector.T).sum(0)": lambda g, v: g.sum(0) @ v.T,
        "each node's gradient · the vectors summed over positions, (grad @ vector.T).sum(1)": lambda g, v: g @ v.sum(0),
    }
    for what, form in forms.items():
        if all(
            torch.allclose(
                block(out, k),
                torch.stack([form(g[0] if k == "error" else g[1], vectors[k]) for g in grads]),
                **CLOSE,
            )
            for k in bad
        ):
            fail(
                f"your {' and '.join(bad)} edges are {what}: every position's gradient met every position's vector",
                "a vector node's edge pairs the gradient AT that node with that node's own vector: (grad * vector)"
                ".sum(-1), one number per position (not a matrix product grad @ vector.T, which pairs all positions)",
                code="position_pairs",
            )
