"""Hints for part 6b's checkers: a read hook whose stored input never reaches the write
hook (a local assigned inside the hook), a latent's id used where its node index belongs, two linearised-forward
flags (the residual carrying LN1's output, the pattern reduced over one of its axes), the kept value of a JumpReLU off
by a constant per latent, the embedding or unembedding matrix normalised, node_influence's sign handling and a deeper
graph, and quantile_examples' band-wise diagnosis (one example per sequence, out-of-band fill-ins, the top edge)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_band_distances as band_distances
from tests import part6b_circuits_band_groups as groups
from tests import part6b_circuits_band_readings as band_readings
from tests import part6b_circuits_bos_order as bos_order
from tests import part6b_circuits_influence_observed as observed
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_named_factors as factors
from tests import part6b_circuits_other_rows as other_rows
from tests import part6b_circuits_readbacks as readbacks
from tests import part6b_circuits_vector_slips as vector_slips
from tests.checking import fail

# `variant_forward` flags, merged into the checker's linearised-forward catalogue.
LINEARISED_HINTS = {
    "latents_added": "when `latents` is given, it replaces the gated pre-activations: f = latents, not "
    "pre * frozen.active + latents (yours adds the two)",
    "resid_x1": "the residual stream carries the embeddings themselves: resid_mid = embeds + attention output + b_O; "
    "x1 = LN1(embeds) is only the attention's input, it is not what the residual adds",
    "pattern_summed_q": "each query mixes the values with its own row of the pattern: z[h, q] = Σ_k pattern[h, q, k] "
    "v[h, k] ('h q k, h k e -> h q e'); yours weights each position's value by its pattern column summed over the "
    "queries (an output axis k where q belongs: '... -> h k e')",
    "embeds_twice": "the embeddings are added to the residual stream once, in resid_mid = embeds + attention output; "
    "the final residual is resid_mid + MLP output, with no second embeds (yours adds them again)",
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


# --------------------------------------------------------------------------------------------
# transcoder_forward: the value kept where a latent fires
# --------------------------------------------------------------------------------------------
def kept_value_offset(tc: Any, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """acts that fire exactly where pre > threshold but whose kept values are pre plus a constant of each latent's
    own: -b_enc names the value x @ W_enc without b_enc (the gate itself right), +b_enc names b_enc added twice;
    another constant is described. Inferred from the learner's acts, as a mutant (code, hint, acts, out)."""
    pre = x @ tc.W_enc + tc.b_enc
    want = pre * (pre > tc.threshold)
    fired = want != 0
    if acts.shape != want.shape or not fired.any() or not torch.equal(acts != 0, fired):
        return []
    flat_d, flat_f = (acts - want).reshape(-1, want.shape[-1]), fired.reshape(-1, want.shape[-1])
    c = (flat_d * flat_f).sum(0) / flat_f.sum(0).clamp_min(1)
    mutant = want + c * fired
    on = flat_f.any(0)
    if not torch.allclose(mutant, acts, rtol=1e-4, atol=1e-4) or torch.allclose(c[on], torch.zeros_like(c[on])):
        return []
    same = lambda v: bool(torch.allclose(c[on], v[on], rtol=1e-3, atol=1e-4))
    rule = "acts = pre · [pre > threshold]: the value kept where a latent fires is the same pre the gate compares"
    if same(-tc.b_enc):
        code, hint = (
            "value_without_b_enc",
            (
                "the gate is right (pre = x @ W_enc + b_enc compared with the threshold), but the value you keep "
                f"where a latent fires is x @ W_enc, without b_enc: {rule}"
            ),
        )
    elif same(tc.b_enc):
        code, hint = "value_b_enc_twice", f"the gate is right, but the value kept has b_enc added twice: {rule}"
    else:
        lo, hi = float(c[on].min()), float(c[on].max())
        code, hint = (
            "kept_value",
            (
                f"the gate is right (your acts fire exactly where pre > threshold), but where a latent fires your "
                f"value is pre plus a constant of that latent's own (from {lo:.3g} to {hi:.3g}): possible causes: a "
                "per-latent term added to or left out of the kept value (b_enc, the threshold), or the value computed "
                f"from another expression than the one the gate compares; {rule}"
            ),
        )
    out = mutant @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    return [(code, hint, mutant, out)]


# --------------------------------------------------------------------------------------------
# latent_de_embedding / latent_logit_effect: the matrix normalised, or the direction changed
# --------------------------------------------------------------------------------------------
def normalised_matrix(model: Any, tc: Any, i: int, side: str) -> list[tuple[str, str, Tensor]]:
    """The token view computed from W_E (or W_U) normalised or standardised per d_model coordinate or as a whole
    (per token, the layernorm and cosine mutants already cover it)."""
    unit = torch.nn.functional.normalize
    if side == "de":
        E, w = model.W_E, tc.W_enc[:, i]
        whole = "W_E standardised or rescaled as a whole (one global mean and std: (W_E - W_E.mean()) / W_E.std())"
        views = [
            (
                "each column of W_E (one per d_model coordinate) normalised over the vocabulary: "
                "F.normalize(W_E, dim=0)",
                unit(E, dim=0),
            ),
            (
                "each column of W_E standardised over the vocabulary: (W_E - W_E.mean(0)) / W_E.std(0)",
                (E - E.mean(0)) / E.std(0),
            ),
            (whole, (E - E.mean()) / E.std()),
            (whole, E / E.std()),
            ("W_E divided by its norm, W_E / W_E.norm()", E / E.norm()),
        ]
        tail = "the de-embedding uses the raw embeddings as they are, W_E @ W_enc[:, latent]"
        rows = [("embed_normalised", f"your values are those of {what}: {tail}", M @ w) for what, M in views]
        return rows + factors.latent_norm_scales(E @ w, tc, i, side)
    U, d = model.W_U, tc.W_dec[i]
    views = [
        (
            "each row of W_U (one per d_model coordinate) normalised over the vocabulary: F.normalize(W_U, dim=1)",
            unit(U, dim=1),
        ),
        (
            "W_U standardised as a whole (one global mean and std: (W_U - W_U.mean()) / W_U.std())",
            (U - U.mean()) / U.std(),
        ),
    ]
    tail = "the logit effect uses the raw unembedding as it is, W_dec[latent] @ W_U"
    rows = [("unembed_normalised", f"your values are those of {what}: {tail}", d @ M) for what, M in views]
    return rows + factors.latent_norm_scales(d @ U, tc, i, side)


def direction_mistakes(model: Any, tc: Any, i: int, actual: Tensor, side: str) -> list[tuple[str, str, Tensor]]:
    """known.direction_mistakes, with the 'direction' reading told as what it is: the output is the matrix times some
    d_model vector, which is the latent's own vector changed OR the latent's vector times the matrix rescaled per
    d_model coordinate (the two are the same product): list both."""
    rows = known.direction_mistakes(model, tc, i, actual, side)
    if [c for c, _, _ in rows] != ["direction"]:
        return rows
    named = vector_slips.named_vector(model, tc, i, actual, side) or other_rows.other_matrix_row(
        model, tc, i, actual, side
    )
    if named:
        return named
    right = model.W_E @ tc.W_enc[:, i] if side == "de" else tc.W_dec[i] @ model.W_U
    cosine = float(torch.cosine_similarity(actual.double(), right.double(), 0))
    if side == "de":
        form, vector, scaled = "W_E @ v", "W_enc[:, latent]", "each column of W_E (one per d_model coordinate)"
        eg, own = "F.normalize(W_E, dim=0)", "W_E @ W_enc[:, latent]"
    else:
        form, vector, scaled = "v @ W_U", "W_dec[latent]", "each row of W_U (one per d_model coordinate)"
        eg, own = "F.normalize(W_U, dim=1)", "W_dec[latent] @ W_U"
    one_hot = _one_hot_vector(model, actual, side)
    if one_hot is not None:
        c = one_hot
        column = f"model.W_E[:, {c}], column {c} of W_E" if side == "de" else f"model.W_U[{c}], row {c} of W_U"
        index = f"the latent's index {i} used as a d_model coordinate" if c == i else f"d_model coordinate {c}"
        return [
            (
                "matrix_slice",
                f"your values are {column} ({index}): the latent's own vector {vector} is missing; the view is "
                f"{own}, a product with the latent's vector",
                rows[0][2],
            )
        ]
    hint = (
        f"what you return is {form} for some d_model vector v, but v is not {vector} (cosine {cosine:.2f} with the "
        f"right values); possible causes: the matrix rescaled per d_model coordinate ({scaled} scaled by its own "
        f"factor, e.g. {eg} or a per-column std), or the vector changed ({vector} with something added, removed, "
        f"mixed in or rescaled per coordinate): the view is {own}, both as they are"
    )
    return [("direction", hint, rows[0][2])]


def _one_hot_vector(model: Any, actual: Tensor, side: str) -> int | None:
    """The d_model coordinate c when `actual` is one column of W_E (or one row of W_U), else None."""
    matrix = model.W_E if side == "de" else model.W_U.T
    v = torch.linalg.lstsq(matrix.double(), actual.double()[:, None]).solution.flatten()
    c = int(v.abs().argmax())
    if abs(float(v[c]) - 1) < 1e-3 and float(v.abs().sum() - v[c].abs()) < 1e-3:
        return c
    return None


# --------------------------------------------------------------------------------------------
# node_influence: the signs, and a graph deeper than the first one
# --------------------------------------------------------------------------------------------
def _influence_of(a_hat: Tensor, weights: Tensor) -> Tensor:
    eye = torch.eye(len(a_hat), dtype=torch.float64, device=a_hat.device)
    a_hat = a_hat.double()
    return weights.double() @ (torch.linalg.inv(eye - a_hat) - eye)


def _kept(a: Tensor) -> Tensor:
    """Â built from the entries of one sign only: relu(a) over its own row sums (zero rows stay zero)."""
    kept = a.clamp_min(0)
    return kept / kept.sum(-1, keepdim=True).clamp_min(1e-12)


def influence_signed(impl: Callable, A: Tensor, weights: Tensor, out: Tensor, right: Tensor) -> None:
    """Wrong on the signed adjacency, right on |A| (every edge positive: the right influence is the same, Â
    normalises |A|): the signs are mishandled. Name the reading of Â that reproduces the output, else list them."""
    try:
        positive = impl(A.abs().clone(), weights.clone())
    except Exception:
        return
    if not (
        isinstance(positive, Tensor)
        and positive.shape == right.shape
        and torch.allclose(positive.detach().to(right), right, rtol=1e-4, atol=1e-6)
    ):
        return
    s = A.double().sum(-1, keepdim=True)
    a = A.double()
    guard = lambda m: torch.where(s != 0, m / torch.where(s != 0, s, torch.ones_like(s)), torch.zeros_like(m))
    readings = {
        "A / A.sum(-1) with the signs kept, rows whose signed sum is not positive set to 0": torch.where(
            s > 0, a / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(a)
        ),
        "A / A.sum(-1).clamp_min(1e-12) with the signs kept": a / s.clamp_min(1e-12),
        "A / A.sum(-1) with the signs kept": guard(a),
        "(A / A.sum(-1).clamp_min(1e-12)).abs(): |·| taken after normalising the signed rows": (
            a / s.clamp_min(1e-12)
        ).abs(),
        "(A / A.sum(-1)).abs(): |·| taken after normalising the signed rows": guard(a).abs(),
        "|A| / A.sum(-1): |·| on the entries but not in the row sums": guard(a.abs()),
        "|A| / A.sum(-1).clamp_min(1e-12): |·| on the entries but not in the row sums": a.abs() / s.clamp_min(1e-12),
        "A / |A|.sum(-1) (F.normalize(A, p=1)): |·| in the row sums but not on the entries, the signs kept": a
        / a.abs().sum(-1, keepdim=True).clamp_min(1e-12),
        "A.clamp_min(0) normalised (relu(A)): only the positive (excitatory) edges kept: use |A|": _kept(a),
        "(-A).clamp_min(0) normalised: only the negative (inhibitory) edges kept, made positive: use |A|": _kept(-a),
    }
    seen = (
        "your influence is wrong on the signed adjacency and right on |adjacency| (every edge made positive, where the "
        "right influence is the same)"
    )
    rule = "Â = |A| / |A|.sum(-1): |A| in the entries AND in the row sums, before anything else"
    got = out.detach().double()
    for what, a_hat in readings.items():
        value = _influence_of(a_hat, weights)
        if value.isfinite().all() and torch.allclose(got, value, rtol=1e-3, atol=1e-6):
            fail(f"{seen}: it is the influence of Â = {what}", rule, code="signed_normaliser")
        if value.isfinite().all() and torch.allclose(got, value.abs(), rtol=1e-3, atol=1e-6):
            at_end = f"{seen}: it is |w @ B| with Â = {what}: |·| taken of the influence at the end, not of A's entries"
            fail(at_end, rule, code="signed_normaliser")
    fail(
        seen,
        "the signs are mishandled; possible causes: the rows of the signed A normalised (A / A.sum(-1): a row whose "
        "signed sum is negative or near 0 flips or blows up), |·| taken after normalising, |·| in the entries but not "
        "in the row sums (or in the row sums but not the entries: F.normalize(A, p=1)), a guard on the signed row sum "
        "that drops rows, or the negative edges dropped "
        f"(clamp_min(0)/relu) rather than made positive: {rule}",
        code="signed_normaliser",
    )


def deep_influence_inputs(device: torch.device) -> tuple[Tensor, Tensor, int]:
    """An 18-node DAG in the graph's order: latents 0-12 in a chain (latent t reads latent t + 1, some also a token),
    error 13, tokens 14-15, logits 16-17 (weights 0.6 / 0.3): its longest path has 14 edges. Returns (A, w, depth)."""
    g = torch.Generator().manual_seed(17)
    n = 18
    A = torch.zeros(n, n)
    w = lambda big: (
        (1 + float(torch.rand(1, generator=g)))
        * (3 if big else 0.5)
        * (1 if float(torch.rand(1, generator=g)) < 0.6 else -1)
    )
    for t in range(12):
        A[t, t + 1] = w(True)
        if t % 3 == 0:
            A[t, 14 + t % 2] = w(False)
    A[12, 14], A[12, 13] = w(True), w(False)
    for t, sources in {16: [0, 5, 13], 17: [0, 3, 9, 15]}.items():
        for src in sources:
            A[t, src] = w(t == 16 and src == 0)
    weights = torch.zeros(n)
    weights[16], weights[17] = 0.6, 0.3
    depth = [0] * n
    for t in [*range(15, -1, -1), 16, 17]:  # every source before the targets that read it
        depth[t] = max((depth[src] + 1 for src in A[t].nonzero().flatten().tolist()), default=0)
    return A.to(device), weights.to(device), max(depth)


def deep_graph(impl: Callable, device: torch.device, reference: Callable) -> None:
    """The influence on a DAG whose longest path (14 edges) is longer than any fixed cut of the series below it:
    a series Σ Âⁿ stopped after N terms (exact on the first graph, whose paths have at most 3 edges) is named."""
    A, weights, depth = deep_influence_inputs(device)
    got = impl(A.clone(), weights.clone())
    want = reference(A, weights)
    got = torch.as_tensor(got, device=device)
    if got.shape == want.shape and torch.allclose(got.to(want), want, rtol=1e-4, atol=1e-6):
        return readbacks.chain_graph(impl, device, reference)
    seen = (
        f"node_influence is right on the first graph (paths of at most 3 edges) but not on an {len(A)}-node graph "
        f"whose longest path has {depth} edges"
    )
    series = "influence sums the paths of every length: Σ_{n>=1} Âⁿ = (I - Â)⁻¹ - I (torch.linalg.inv or solve)"
    if got.shape == want.shape:
        a_hat = A.abs() / A.abs().sum(-1, keepdim=True).clamp_min(1e-12)
        term, total = weights.clone(), torch.zeros_like(weights)
        for n in range(1, depth):
            term = term @ a_hat
            total = total + term
            if torch.allclose(got.to(total), total, rtol=1e-4, atol=1e-6):
                fail(
                    f"{seen}: yours is w @ (Â + Â² + … + Â^{n}), the series stopped after {n} terms",
                    f"{series}; a series cut after {n} terms misses every path longer than {n} edges",
                    code="truncated_series",
                )
    fail(
        f"{seen}: " + observed.unexplained_long_graph(got, want, A, weights, depth - 1)
        if got.shape == want.shape
        else f"{seen}: yours has shape {tuple(got.shape)}, expected {tuple(want.shape)}",
        f"nothing tied to the first graph's size or depth: {series}",
        code="deep_graph",
    )


# --------------------------------------------------------------------------------------------
# quantile_examples: band-wise diagnosis
# --------------------------------------------------------------------------------------------
def implied_centre(flat: Tensor, lo: float, hi: float, values: Tensor) -> str:
    """If the chosen values are a contiguous run of the band's sorted values, the centres c they are the closest to
    form an interval [(left neighbour + largest) / 2, (smallest + right neighbour) / 2]: report it, and the mean of
    the band's values if it lies there (a possible cause, not a certain one)."""
    band = flat[(flat > lo) & (flat <= hi)].double().sort().values
    chosen = values.double().sort().values
    idx = [int((band - v).abs().argmin()) for v in chosen.tolist()]
    if idx != list(range(idx[0], idx[0] + len(idx))):
        return ""
    a, b = idx[0], idx[-1]
    left = float(band[a - 1] + band[b]) / 2 if a > 0 else -math.inf
    right = float(band[a] + band[b + 1]) / 2 if b + 1 < len(band) else math.inf
    mean = float(band.mean())
    mean_note = f"; the mean of the band's values, {mean:.3g}, lies there" if left <= mean <= right else ""
    return f" (they are the closest to a point between {left:.3g} and {right:.3g}{mean_note})"


def one_per_sequence(out: Any, expected: list, acts: Tensor, k: int, n_bands: int) -> None:
    """Every returned example from a different sequence while the expected groups repeat one: the bands filled from
    each sequence's largest activation (named when the groups are exactly those), or else examples dropped by
    sequence (listed as possible causes, only when examples are missing)."""
    try:
        got_seq = torch.cat([torch.as_tensor(g[1]).long().flatten().cpu() for g in out])
    except (TypeError, RuntimeError, IndexError, ValueError):
        return
    want_seq = torch.cat([e[1].long().flatten().cpu() for e in expected])
    if len(got_seq) < 2 or len(got_seq.unique()) < len(got_seq) or len(want_seq.unique()) == len(want_seq):
        return
    body = groups.without_position_zero(acts)
    best = body.max(1).values
    member = lambda v, lo, hi, j: (v > lo) & (v <= hi)
    per_seq = groups.member_bands(best, k, n_bands, float(body.max()), member)
    s = int(want_seq.mode().values)
    positions = sorted(int(e[2][i]) for e in expected for i in (e[1].long() == s).nonzero().flatten().tolist())
    seen = (
        f"every example you return comes from a different sequence ({len(got_seq)} examples, {len(got_seq)} "
        f"sequences), while the expected groups take several from one sequence (sequence {s}: positions {positions})"
    )
    rule = (
        "every (sequence, position) is a candidate: set position 0 to 0 in a copy, flatten all the activations and "
        "band them"
    )
    if groups.same_bands(out, per_seq):
        fail(
            seen + "; your groups are the bands filled from each sequence's largest activation only",
            rule + "; a per-sequence max first (acts.max(1)) keeps one example per sequence",
            code="one_per_sequence",
        )
    if len(got_seq) < len(want_seq):
        fail(
            seen,
            "possible causes: one example kept per sequence before the bands are filled (a per-sequence max, or the "
            f"other positions of a sequence dropped once it is chosen); {rule}",
            code="one_per_sequence",
        )


def _open_top(out: Any, acts: Tensor, k: int, n_bands: int) -> bool:
    """Whether the groups are those of bands open at the top (a < hi; a >= lo or a > lo; the top band closed or
    not), read on every band at once."""
    body = groups.without_position_zero(acts)
    flat, top = body.flatten(), float(body.max())
    for closed_low, closed_max in ((False, False), (False, True), (True, False), (True, True)):
        member = lambda v, lo, hi, j, cl=closed_low, cm=closed_max: (
            ((v >= lo) if cl else (v > lo)) & ((v <= hi) if (cm and j == 0) else (v < hi)) & (v > 0)
        )
        if groups.same_bands(out, groups.member_bands(flat, k, n_bands, top, member)):
            return True
    return False


def band_diagnosis(
    acts: Tensor, j: int, n_bands: int, values: Tensor, expected: Tensor, out: Any, k: int
) -> tuple[str, str]:
    """(hint, code) for band j's wrong values: the right ones in the wrong order; examples from outside the band
    filling it up to k; a value on the lower edge; the upper edge's value missing (claimed only when every band
    fits bands open at the top, else described); the right number of examples from inside the band that are not
    the ones closest to its middle; or else the formula."""
    body = acts.clone()
    body[:, 0] = 0
    top = float(body.max())
    lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
    if values.shape == expected.shape and torch.allclose(values.sort().values, expected.sort().values):
        return "the right examples in the wrong order: sort each group by decreasing activation", "not_sorted"
    in_band = (values > lo) & (values <= hi)
    kept = values[in_band].sort().values
    if len(values) > len(expected) and kept.shape == expected.shape and torch.allclose(kept, expected.sort().values):
        outside = ", ".join(f"{v:.3g}" for v in values[~in_band].tolist())
        return (
            f"band {j} holds {len(values)} examples, but only {len(expected)} activations lie in it ({lo:.3g}, "
            f"{hi:.3g}]; the others ({outside}) are outside the band: possible causes: k taken from a band holding "
            f"fewer than k = {k}, take min(k, number in the band) (entries masked out, e.g. with an infinite "
            "distance, are still picked when k are taken), or a band test missing one of its edges (a > lo only, or "
            "a <= hi only): test (a > lo) & (a <= hi)",
            "short_band",
        )
    on_edge = [v for v in values.tolist() if math.isclose(v, lo, rel_tol=1e-6, abs_tol=1e-12)]
    inside = lambda low_ok, high_ok: bool((((values > lo) | low_ok) & ((values <= hi) & high_ok)).all())
    closed_bottom = inside(torch.isclose(values, torch.tensor(lo, dtype=values.dtype)), True)
    if on_edge and closed_bottom and not bool(torch.isclose(expected, torch.tensor(on_edge[0])).any()):
        if not any(known.same_values(out, c) for c in known.closed_bottom_values(acts, k, n_bands)):
            return (
                f"band {j} holds {on_edge[0]:.3g}, which sits on its lower edge {lo:.3g} for bands ({lo:.3g}, "
                f"{hi:.3g}] on the max {top:.3g}, but bands closed at the bottom (a >= lo) don't give your groups: "
                "possible causes, e.g. band edges from another m than the max, or another band test",
                "values",
            )
        return (
            f"band {j} holds {on_edge[0]:.3g}, its lower edge: a band is open at the bottom, ({lo:.3g}, {hi:.3g}], so "
            "a value exactly on the edge belongs to the band below (and 0 to no band): use a > lo, not a >= lo",
            "boundary",
        )
    missing_top = [v for v in expected.tolist() if math.isclose(v, hi, rel_tol=1e-6) and v not in values.tolist()]
    if missing_top and values.shape[0] <= expected.shape[0] and inside(False, values < hi):
        if _open_top(out, acts, k, n_bands):
            return (
                f"band {j} is missing {missing_top[0]:.3g}, its upper edge: a band is closed at the top, ({lo:.3g}, "
                f"{hi:.3g}]: use a <= hi, not a < hi",
                "boundary",
            )
        return (
            f"band {j} is missing {missing_top[0]:.3g}, which sits on its upper edge, but the other bands don't fit "
            f"bands open at the top (a < hi): possible causes: examples dropped before the bands are filled (a filter "
            f"on the candidates, one example per sequence), or the band open at the top; band {j} is ({lo:.3g}, "
            f"{hi:.3g}] and every (sequence, position) whose activation lies in it is a candidate",
            "values",
        )
    if values.shape == expected.shape and bool(((values > lo) & (values <= hi)).all()):
        return (
            f"these are inside band {j} ({lo:.3g}, {hi:.3g}] but not the {len(expected)} closest to its middle "
            f"{(lo + hi) / 2:.3g}{implied_centre(body.flatten(), lo, hi, values)}: rank the band's activations by "
            "|a - middle|, smallest first, with middle = (lo + hi) / 2",
            "not_closest",
        )
    return "band j: (m(n-j-1)/n, m(n-j)/n]; the k closest to its middle; sorted by decreasing value", "values"


# Wrong middles a band's ranking may use, as (what, middle(lo, hi)).
MIDDLES = (
    ("hi (the band's top edge, not its middle)", lambda lo, hi: hi),
    ("lo (the band's bottom edge, not its middle)", lambda lo, hi: lo),
    ("lo + hi / 2 (the brackets around lo + hi missing)", lambda lo, hi: lo + hi / 2),
    ("lo + hi (the / 2 forgotten)", lambda lo, hi: lo + hi),
    ("(hi - lo) / 2 (the half-width, not the middle)", lambda lo, hi: (hi - lo) / 2),
    ("hi - lo / 2 (the brackets around hi - lo missing)", lambda lo, hi: hi - lo / 2),
    ("hi / 2", lambda lo, hi: hi / 2),
    ("(lo + hi) // 2 (floor division)", lambda lo, hi: (lo + hi) // 2),
    ("lo - (hi - lo) / 2 (the middle of the band below: the band index off by one)", lambda lo, hi: lo - (hi - lo) / 2),
    ("hi + (hi - lo) / 2 (the middle of the band above: the band index off by one)", lambda lo, hi: hi + (hi - lo) / 2),
)


def wrong_middle(out: Any, acts: Tensor, k: int, n_bands: int, impl: Callable | None = None) -> None:
    """The groups are the k in-band activations closest to some other point than the band's middle (lo + hi) / 2:
    name every written middle that reproduces every band. When the k largest fit too (a point at or above a band's
    top ranks them so), a call with k = 1 tells them apart where the lowest band has more than one example (there
    lo + hi / 2 is the true middle); if both still fit, both causes are listed, never the largest alone."""
    bos_order.removed_after_choosing(out, acts, k, n_bands)
    band_readings.band_readings(out, acts, k, n_bands)
    band_distances.other_closeness(out, acts, k, n_bands)
    body = groups.without_position_zero(acts)
    flat, top = body.flatten(), float(body.max())
    if groups.same_bands(out, groups.ranked_bands(flat, top, k, n_bands, lambda lo, hi: (lo + hi) / 2)):
        return
    fits = [(what, m) for what, m in MIDDLES if groups.same_bands(out, groups.ranked_bands(flat, top, k, n_bands, m))]
    if not fits:
        return
    largest, probed = groups.same_bands(out, groups.ranked_bands(flat, top, k, n_bands, None)), False
    smallest = groups.same_bands(out, groups.ranked_bands(flat, top, k, n_bands, lambda lo, hi: lo))
    if largest and impl is not None:
        try:
            one = impl(acts.clone(), 1, n_bands)
        except Exception:  # a probe only: the main call's diagnosis stands
            one = None
        right_one = groups.ranked_bands(flat, top, 1, n_bands, lambda lo, hi: (lo + hi) / 2)
        if one is not None and not groups.same_bands(one, right_one):
            fits = [(w, m) for w, m in fits if groups.same_bands(one, groups.ranked_bands(flat, top, 1, n_bands, m))]
            largest, probed = groups.same_bands(one, groups.ranked_bands(flat, top, 1, n_bands, None)), True
            if not fits:
                return
    points, written = " or to ".join(w for w, _ in fits), " or ".join(w for w, _ in fits)
    rule = "rank the band's activations by |a - middle| with middle = (lo + hi) / 2, the brackets around lo + hi"
    for extreme, fit, side, order, code in (
        (largest, "largest", "at or above the band's top", "by value (topk)", "largest"),
        (smallest, "smallest", "at or below the band's bottom", "by increasing value", "not_closest"),
    ):
        if extreme:
            fail(
                f"your groups are the {fit} in-band examples of each band, which is also what ranking by the distance "
                f"to {points} gives (in these bands that point lies {side})",
                f"possible causes: a middle written {written}, or the examples ranked {order} instead of by closeness "
                f"to the middle; {rule}",
                code=code,
            )
    fail(
        f"your groups are the k in-band activations closest to {points}, not to each band's middle (lo + hi) / 2"
        + (" (told apart from the largest by a call with k = 1)" if probed else ""),
        rule,
        code="wrong_middle",
    )


def soft_gate(tc: Any, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """acts = pre times a factor strictly between 0 and 1 for many entries, rising with pre - threshold: a smooth
    gate (a sigmoid, named when it is one) where the JumpReLU's hard step belongs. Inferred from the learner's acts,
    as a mutant (code, hint, acts, out)."""
    pre = x @ tc.W_enc + tc.b_enc
    if acts.shape != pre.shape or not acts.isfinite().all():
        return []
    z = (pre - tc.threshold).double().flatten()
    use = pre.double().flatten().abs() > 1e-3
    r = (acts.double().flatten() / pre.double().flatten())[use]
    z = z[use]
    between = (r > 0.01) & (r < 0.99)
    if r.numel() < 10 or not bool(((r > -1e-4) & (r < 1 + 1e-4)).all()) or float(between.double().mean()) < 0.05:
        return []
    rank = lambda t: t.argsort().argsort().double()
    rz, rr = rank(z), rank(r)
    spearman = float(torch.corrcoef(torch.stack([rz, rr]))[0, 1])
    if spearman < 0.95:
        return []
    rule = "the JumpReLU gate is a hard step: acts = pre · [pre > threshold], either 0 or pre, nothing in between"
    named = [
        ("sigmoid(pre - threshold)", torch.sigmoid(pre - tc.threshold)),
        ("sigmoid(pre)", torch.sigmoid(pre)),
        ("sigmoid(pre - threshold) with pre = relu(pre)", torch.sigmoid(pre - tc.threshold) * (pre > 0)),
    ]
    what = next((w for w, g in named if torch.allclose(pre * g, acts, rtol=1e-4, atol=1e-4)), None)
    seen = (
        f"your acts are pre · {what}, a soft gate"
        if what
        else (
            f"your acts are pre times a factor strictly between 0 and 1 for {float(between.double().mean()):.0%} of "
            f"the entries (from {float(r.min()):.3g} to {float(r.max()):.3g}), rising smoothly with pre - threshold: "
            "a soft gate (e.g. a sigmoid)"
        )
    )
    out = acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    return [("soft_gate", f"{seen}; {rule}", acts.clone(), out)]


def non_finite_band(acts: Tensor, j: int, n_bands: int, values: Any, expected: Tensor, out: Any, k: int) -> None:
    """Band j's values hold NaN or ±inf: when they are the band's right entries plus entries from outside it
    (masked ones, e.g. position 0 set to -inf, picked by a topk(k) over a band holding fewer than k), name that
    before the non-finite values are reported."""
    if not isinstance(values, Tensor) or values.ndim != 1 or not values.is_floating_point():
        return
    if torch.isfinite(values).all():
        return
    hint, code = band_diagnosis(acts, j, n_bands, values.float(), expected.float(), out, k)
    if code != "short_band":
        return
    got = [round(v, 3) for v in values.tolist()]
    fail(
        f"band {j}: values {got}, expected {[round(v, 3) for v in expected.tolist()]} (only {len(expected)} "
        f"activations lie in band {j}, fewer than k = {k}; the non-finite values come from outside it)",
        hint.replace("(entries masked out", "(topk(k) pulled in entries outside the band: entries masked out"),
        code=code,
    )
