"""Hints for part 6b's checkers: a read hook whose stored input never reaches the write
hook (a local assigned inside the hook), a latent's id used where its node index belongs, and two linearised-forward
flags (the residual carrying LN1's output, the pattern reduced over one of its axes)."""

from __future__ import annotations

import re
from typing import Any

from tests.checking import fail

# `variant_forward` flags, merged into the checker's linearised-forward catalogue.
LINEARISED_HINTS = {
    "resid_x1": "the residual stream carries the embeddings themselves: resid_mid = embeds + attention output + b_O; "
    "x1 = LN1(embeds) is only the attention's input, it is not what the residual adds",
    "pattern_summed_q": "each query mixes the values with its own row of the pattern: z[h, q] = Σ_k pattern[h, q, k] "
    "v[h, k] ('h q k, h k e -> h q e'); yours weights each position's value by its pattern column summed over the "
    "queries (an output axis k where q belongs: '... -> h k e')",
    "pattern_summed_k": "each query mixes the values with its own row of the pattern: z[h, q] = Σ_k pattern[h, q, k] "
    "v[h, k]; yours gives each position its own value (the pattern's rows, which sum to 1, summed over the keys: "
    "'h q k, h q e -> h q e' pairs the pattern with the query's value instead of each key's)",
}


def _hook_fn(fn: Any) -> Any:
    """The plain function behind a hook (a functools.partial's func), or None."""
    fn = getattr(fn, "func", fn)
    return fn if hasattr(fn, "__code__") else None


def lost_hook_input(err: Exception, runs: Any, tc: Any) -> None:
    """The hook at tc.hook_name_out raised on a None (or unbound) input: name a read hook in the same run that
    assigns, as a local of its own, a name the write hook reads from outside (Python makes any name assigned inside
    a function local to it, so the outer variable the write hook sees is never set). Otherwise list the causes."""
    text = f"{type(err).__name__}: {err}"
    none = isinstance(err, TypeError) and "NoneType" in str(err)
    unbound = isinstance(err, NameError) and ("free variable" in str(err) or "not associated" in str(err))
    if runs.raised_at != tc.hook_name_out or not (none or unbound):
        return
    seen = f"your code raised {text} in the hook at tc.hook_name_out: the input it passed on was never set"
    for _, _, hooks in runs.calls:
        if not any(name == tc.hook_name_out for name, _ in hooks):
            continue
        write = [_hook_fn(fn) for name, fn in hooks if name == tc.hook_name_out]
        free = {v for fn in write if fn is not None for v in fn.__code__.co_freevars}
        for name, fn in hooks:
            fn = _hook_fn(fn)
            if name == tc.hook_name_out or fn is None:
                continue
            code = fn.__code__
            local = sorted(set(code.co_varnames[code.co_argcount :]) & free)
            if local:
                v = local[0]
                fail(
                    seen + f"; your hook at {name!r} ({code.co_name}) assigns `{v}`, and the write hook reads `{v}`",
                    f"an assignment `{v} = ...` inside a function makes `{v}` a new local of that function: the "
                    f"outer `{v}` the write hook reads is never set. Store the input in a dict made outside "
                    f"(`seen['x'] = act`, then `tc(seen['x'])`), or declare `nonlocal {v}` in the read hook",
                    code="hook_local",
                )
    fail(
        seen,
        "possible causes: the read hook stores the input in a variable local to itself (`x = act` inside a "
        "function; use a dict made outside, or `nonlocal x`), the read hook is not in the same run_with_hooks call, "
        "or it reads at a hook point that runs after tc.hook_name_out",
        code="hook_input_lost",
    )


def latent_id_as_node(err: IndexError, graph: Any) -> None:
    """An index past the adjacency's n_nodes that is one of the latents' ids (graph.latent_idx, 0 .. d_sae - 1): a
    latent's id in the transcoder used where its node index belongs (graph.nodes('latent'))."""
    match = re.search(r"index (\d+) is out of bounds for dimension (\d+) with size (\d+)", str(err))
    if match is None:
        return
    index, size = int(match.group(1)), int(match.group(3))
    ids = [int(i) for i in graph.latent_idx]
    if size != graph.n_nodes or index < size or index not in ids:
        return
    fail(
        f"your code raised IndexError: {err}; {index} is not a node index (the adjacency has {size} nodes) but "
        f"a latent's id in the transcoder (graph.latent_idx[{ids.index(index)}])",
        "the adjacency's rows and columns are node indices: a latent's id (graph.latent_idx, which of the d_sae "
        "latents) is not its node index; the latent nodes' rows are torch.arange(graph.n_nodes)[graph.nodes('latent')]",
        code="latent_id_as_node",
    )
