"""Behavioural probes for part 6b's checkers: two losses in each other's places, and NaN influences told apart by a
probe (an elementwise reciprocal for the matrix inverse, or unguarded row sums)."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_extra_mistakes as extra
from tests import part6b_circuits_hints as hints
from tests.checking import fail
from tests.learner_errors import _is_learner_frame
from tests.part6b_circuits_error_leaf import error_value_unread
from tests.part6b_circuits_skip_forms import skip_forms
from tests.part6b_circuits_tied_decoder import other_decoders
from tests.part6b_circuits_zero_columns import zero_columns


def keys_swapped(got: dict[str, float], exp: dict[str, float], close: Callable[[float, float], bool]) -> None:
    """Two of the losses each hold the other's expected value (and those two values differ): their keys are swapped."""
    names = ("clean", "replaced", "zero_ablated")
    rounded_losses(got, exp, close, names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if close(exp[a], exp[b]) or close(got[a], exp[a]):
                continue
            if close(got[a], exp[b]) and close(got[b], exp[a]):
                fail(
                    f"out[{a!r}] = {got[a]:.5f} and out[{b!r}] = {got[b]:.5f}: each is the other's expected loss "
                    f"(expected {exp[a]:.5f} and {exp[b]:.5f})",
                    f"the values of {a!r} and {b!r} are swapped: check which run's loss goes under which key",
                    code="keys_swapped",
                )


def rounded_losses(got: dict, exp: dict, close: Callable[[float, float], bool], names: tuple[str, ...]) -> None:
    """Every loss that is off is the expected one rounded to d decimals (a multiple of 10^-d within half a unit of
    it): the losses were rounded (round(x, 3), a formatted string read back) before being returned."""
    off = [n for n in names if not close(got[n], exp[n])]
    multiple = lambda n, d: abs(got[n] - round(got[n], d)) <= 1e-6 * max(1.0, abs(got[n]))
    for group in (names, off):  # every loss rounded alike names the number of decimals; else those that are off
        for d in range(1, 5):
            if off and all(multiple(n, d) and abs(got[n] - exp[n]) <= 0.51 * 10.0**-d for n in group):
                seen = ", ".join(f"out[{n!r}] = {got[n]:.{d}f} (expected {exp[n]:.5f})" for n in off)
                fail(
                    f"{seen}: the right loss{'es' * (len(off) > 1)} rounded to {d} decimal{'s' * (d != 1)}"
                    + " (or more)" * (group is off),
                    "don't round: return the losses as they are (float(loss) or loss.item()); rounding also shifts "
                    "`recovered` when it is computed from the rounded values",
                    code="rounded",
                )


def influence_nan(out: Tensor, A: Tensor, weights: Tensor, impl: Callable) -> None:
    """NaN in the influence. Both an unguarded row normalisation (0 / 0 in rows without inputs) and an elementwise
    1 / (I - Â) (1 / 0 = inf off the diagonal, then inf · 0 with the zero logit weights) give NaN at every node
    here, so a probe tells them apart: with every logit weight positive, the elementwise reciprocal gives +inf
    (no 0 · inf left) where the unguarded division still gives NaN."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a_abs = A.abs()
    guarded = a_abs / a_abs.sum(-1, keepdim=True).clamp_min(1e-12)
    ones = torch.ones_like(weights)
    elementwise = ones @ (1 / (eye - guarded) - eye)
    try:
        probe = torch.as_tensor(impl(A.clone(), ones.clone())).detach()
    except Exception:
        probe = None
    reciprocal = (
        "1 / (I - Â) (or (I - Â) ** -1) is the elementwise reciprocal: the zeros off the diagonal become inf, and inf "
        "· 0 gives NaN; the series I + Â + Â² + … sums to the MATRIX inverse, torch.linalg.inv(I - Â) (or "
        "torch.linalg.solve)"
    )
    rows = "rows with no incoming edges sum to 0: clamp the row sums before dividing (clamp_min(1e-12))"
    if (
        probe is not None
        and probe.shape == elementwise.shape
        and not probe.isnan().any()
        and torch.equal(probe.isinf(), elementwise.isinf())
        and elementwise.isinf().any()
    ):
        fail(
            "the influence contains NaN; with every logit weight 1 it is +inf at the nodes where an elementwise "
            "1 / (I - Â) is",
            reciprocal,
            code="elementwise_inverse",
        )
    fail(
        f"the influence contains NaN (at nodes {out.isnan().nonzero().flatten().tolist()})",
        f"possible causes: {rows}; or {reciprocal}",
        code="zero_rows",
    )


# `variant_forward` flags from the fresh14 trial, merged into the checker's linearised-forward catalogue.
LINEARISED_PROBED = {
    "global_mean": "each normalisation subtracts the mean over d_model at each position (v.mean(-1, keepdim=True)), "
    "not one mean over every position and feature (v.mean())",
    "skip_untransposed": "the skip connection is x @ W_skip.T (tc.skip(x)): W_skip is [d_out d_in] like a Linear "
    "layer's weight, so x @ W_skip (square here, so no error) multiplies by its transpose",
    "skip_embeds": "the skip connection was fed the raw embeddings: like the encoder it reads the MLP input x = "
    "LN2(resid_mid) (frozen scale), tc.skip(x), not embeds",
    "skip_x1": "the skip connection was fed LN1 of the embeddings (the attention's input): like the encoder it reads "
    "the MLP input x = LN2(resid_mid), tc.skip(x)",
}


def de_embedding_probed(model: Any, tc: Any, i: int) -> list[tuple[str, str, Tensor]]:
    enc = tc.W_enc[:, i]
    direct = model.W_E @ enc
    return [
        (
            "positional",
            "leave the position embedding out (here its mean over positions, W_pos.mean(0)): it is the same for "
            "every token at a position, so it shifts every token's value alike",
            (model.W_E + model.W_pos.mean(0)) @ enc,
        ),
        (
            "threshold_scale",
            "the values are divided by the latent's threshold: return W_E @ W_enc[:, latent] as it is, in the "
            "units of the pre-activation",
            direct / tc.threshold[i],
        ),
    ]


def bool_index_error(err: Exception) -> None:
    """An error on a 1-d tensor whose length is the number of True entries of a boolean mask of 2+ axes held by
    the same learner frame: `pre[mask]` kept the selected values only, flattened."""
    for frame, _ in traceback.walk_tb(err.__traceback__):
        if not _is_learner_frame(frame.f_code.co_filename):
            continue
        items = [(n, v) for n, v in frame.f_locals.items() if isinstance(v, Tensor)]
        masks = [(n, v) for n, v in items if v.dtype == torch.bool and v.ndim >= 2]
        for name, flat in items:
            if flat.ndim != 1 or flat.dtype == torch.bool:
                continue
            for mask_name, mask in masks:
                if flat.numel() == int(mask.sum()) and flat.numel() not in mask.shape:
                    fail(
                        f"your code raised {type(err).__name__}: {err}",
                        f"`{name}` is 1-d with {flat.numel()} entries, the number of True entries of `{mask_name}` "
                        f"{list(mask.shape)}: boolean indexing (x[{mask_name}]) keeps only the selected values, "
                        f"flattened; keep the shape with torch.where({mask_name}, x, 0.0) or x * {mask_name}",
                        code="bool_index",
                    )


def hook_width_error(err: Exception, d_model: int, d_sae: int) -> None:
    """A size mismatch between d_model and d_sae raised inside the model's forward (not on a line of the learner's):
    a hook probably returned the latents where the activation belongs."""
    frames = traceback.extract_tb(err.__traceback__)
    sizes = {int(n) for n in re.findall(r"\d+", str(err))}
    if not frames or _is_learner_frame(frames[-1].filename) or not {d_model, d_sae} <= sizes:
        return
    fail(
        f"your code raised {type(err).__name__}: {err}, inside the model's forward pass",
        f"a tensor of width {d_sae} (d_sae, the transcoder's latents; d_vocab may be the same size) met the "
        f"residual stream (d_model = {d_model}) "
        "in the model: probably a hook returned something else than an activation of the shape it received; the "
        "hook on tc.hook_name_out must return the transcoder's output, [batch, seq, d_model] "
        "(transcoder_forward(tc, x)[1]), not its latents ([0])",
        code="hook_width",
    )


def token_total(direct: Tensor, graph: Any) -> list[tuple[str, str, Tensor]]:
    """Every token column (or token and error column) of a row holding the sum of its block's edges (one number for
    all positions): `(grad * x).sum()` without a dim sums over positions AND d_model."""
    blocks = {"token": graph.nodes("token"), "error": graph.nodes("error")}
    out = []
    for names in (["token"], ["token", "error"]):  # the error block alone: error_edges_equal (reads its total)
        mutant = direct.clone()
        for b in names:
            mutant[:, blocks[b]] = direct[:, blocks[b]].sum(-1, keepdim=True)
        which = " and ".join(names)
        hint = (
            f"each {which} node's edge is the total over every position (one number broadcast to all of them): "
            "(gradient * x).sum() without a dim sums over positions AND d_model; sum over d_model only "
            "(.sum(-1)), one edge per position"
        )
        out.append(("token_total", hint, mutant))
    return out


def influence_probed(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    a = A.abs()
    s = a.sum(-1, keepdim=True)
    a = torch.where(s > 0, a / s.clamp_min(1e-30), torch.zeros_like(a))
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return [
        *influence_slips(A, weights, a, eye),
        (
            "matrix_exp",
            "that is w @ (exp(Â) - I): exp weights a path of length n by 1/n!, but influence sums every path with "
            "weight 1: Σ Âⁿ (n >= 1) = (I - Â)⁻¹ - I (torch.linalg.inv or solve)",
            weights @ (torch.linalg.matrix_exp(a) - eye),
        ),
    ]


def influence_slips(A: Tensor, weights: Tensor, a: Tensor, eye: Tensor) -> list[tuple[str, str, Tensor]]:
    """Fresh16: the clamp put on |A| itself (a zero row becomes uniform); the strongest single logit kept."""
    floored = A.abs().clamp_min(1e-12)
    floored = floored / floored.sum(-1, keepdim=True)
    paths = torch.linalg.solve(eye - a, a)  # Σ Âⁿ, n >= 1: B[t, s]
    return [
        (
            "clamped_entries",
            "you clamped the entries of |A| (clamp_min) instead of the row sums: every zero entry becomes 1e-12, so a "
            "row with no edges normalises to a uniform row (1/n each) and I - Â can become singular; clamp only the "
            "row sums, |A| / |A|.sum(-1, keepdim=True).clamp_min(1e-12)",
            weights @ torch.linalg.solve(eye - floored, floored),
        ),
        (
            "max_over_logits",
            "that is the strongest single logit's contribution, max_t w_t · B[t, s]: influence is the weighted sum "
            "over the logits, w @ B = Σ_t w_t · B[t, s]",
            (weights[:, None] * paths).max(0).values,
        ),
    ]


def band_shift(out: Any, expected: list, n_bands: int) -> None:
    """Every band's values are those of the band one step above or below (edges m(n-j)/n off by one step)."""
    got = [torch.as_tensor(g[0]).detach().double().cpu() for g in out]
    want = [e[0].double().cpu() for e in expected]
    same = lambda g, w: g.shape == w.shape and torch.allclose(g, w, atol=1e-6)
    for step, where in ((1, "higher"), (-1, "lower")):
        pairs = [(got[j], want[j - step]) for j in range(n_bands) if 0 <= j - step < n_bands]
        if any(len(w) for _, w in pairs) and all(same(g, w) for g, w in pairs):
            fail(
                f"each band holds the examples of the band one step {'below' if step == 1 else 'above'} it: your "
                f"band edges are one step {where} than band j's (m(n-j-1)/n, m(n-j)/n] (m = the largest activation "
                "outside position 0, n = n_bands), so one band falls outside (0, m] and one is missing",
                "band j (j = 0 the highest) is (m·(n-j-1)/n, m·(n-j)/n]: check the edges for j = 0 give (m·(n-1)/n, m]",
                code="band_shift",
            )


def quantile_probed(out: Any, expected: list, acts: Tensor, k: int, n_bands: int) -> None:
    """Band-wise: the distances to the band's middle returned as the values; every band cut to the same count c < k
    (k split among the bands)."""
    band_shift(out, expected, n_bands)
    body = acts.clone()
    body[:, 0] = 0
    top = float(body.max())
    got = [torch.as_tensor(g[0]).detach().double().cpu() for g in out]
    want = [e[0].double().cpu() for e in expected]
    mids = [top * (2 * (n_bands - j) - 1) / (2 * n_bands) for j in range(n_bands)]
    dist = [(w - m).abs().sort().values for w, m in zip(want, mids, strict=True)]
    if any(len(w) for w in want) and all(
        g.shape == d.shape and torch.allclose(g.sort().values, d, atol=1e-5) for g, d in zip(got, dist, strict=True)
    ):
        fail(
            "each band's values are the distances of its examples to the band's middle",
            "rank by |a - middle|, but return the activations themselves (acts at the chosen positions), sorted "
            "by decreasing value",
            code="distances",
        )
    counts = {len(g) for g in got}
    c = max(counts)
    evidence = c > 0 or c == k // n_bands  # every band empty reads as k split only when k // n_bands is 0
    fits = all(len(g) == min(c, len(w)) for g, w in zip(got, want, strict=True))
    if evidence and c < k and fits and max(map(len, want)) > c:
        split = f" (k // n_bands = {k} // {n_bands} = {k // n_bands})" if c == k // n_bands else ""
        fail(
            f"each band holds at most {c} examples, expected up to k = {k} per band{split}",
            "k is the number of examples for EACH band, not a total to split among the bands",
            code="k_per_band",
        )


def identity_skip_terms(tc: Any, x: Tensor, acts: Tensor, out: Tensor) -> list[tuple[str, str, Tensor]]:
    """Another decoder matrix (tied_decoder.other_decoders), the identity skip (_identity_skip), a skip term in
    another form (skip_forms)."""
    return other_decoders(tc, x, acts, out) + _identity_skip(tc, x, acts, out) + skip_forms(tc, x, acts)


def _identity_skip(tc: Any, x: Tensor, acts: Tensor, out: Tensor) -> list[tuple[str, str, Tensor]]:
    """out fitted (least squares) by acts @ W_dec, b_dec, x @ W_skip.T and x itself: an exact fit with small integer
    weights in which x has a weight names an identity skip (x where x @ W_skip.T belongs), with any other term's
    weight that is off."""
    if tc.W_skip is None or out.shape != (*x.shape[:-1], tc.d_out) or x.shape[-1] != tc.d_out:
        return []
    terms = {"acts @ W_dec": acts @ tc.W_dec, "b_dec": tc.b_dec.expand_as(out), "x @ W_skip.T": x @ tc.W_skip.T}
    terms["x itself"] = x
    basis = torch.stack([t.flatten() for t in terms.values()], 1).double()
    weights = torch.linalg.lstsq(basis, out.detach().flatten().double()[:, None]).solution.flatten()
    rounded = weights.round()
    if not torch.allclose(weights, rounded, atol=1e-3) or rounded[-1] == 0 or rounded.abs().max() > 2:
        return []
    said = {0: "is missing", -1: "has the wrong sign", 2: "is added twice"}
    wrong = [f"the skip term {said[int(w)]}" for w in rounded[2:3].tolist() if w != 1]
    wrong += [f"{name} {said[int(w)]}" for name, w in zip(terms, rounded[:2].tolist(), strict=False) if w != 1]
    x_said = "x itself is added" if rounded[-1] == 1 else f"x itself appears with weight {int(rounded[-1])}"
    return [
        (
            "identity_skip",
            "; ".join([x_said, *wrong]) + ": the skip connection is the learned map x @ W_skip.T, not x (an identity "
            "skip); out = acts @ W_dec + b_dec (+ x @ W_skip.T when tc.W_skip is not None)",
            (basis @ rounded).to(out.dtype).reshape(out.shape),
        )
    ]


class HookRuns:
    """Within `with HookRuns(model) as runs:`, every model.run_with_hooks call is recorded (its arguments and its
    (name, hook) list), and the hook point whose hook raised, if one did."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls, self.raised_at = model, [], None

    def __enter__(self) -> HookRuns:
        original = self.model.run_with_hooks

        def watched(name: Any, fn: Callable) -> Callable:
            def hook(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except Exception:
                    self.raised_at = name
                    raise

            return hook

        def spy(*args: Any, fwd_hooks: Any = (), **kwargs: Any) -> Any:
            try:
                hooks = list(fwd_hooks)
                self.calls.append((args, kwargs, hooks))
                wrapped = [(name, watched(name, fn)) for name, fn in hooks]
            except (TypeError, ValueError):
                wrapped = fwd_hooks
            return original(*args, fwd_hooks=wrapped, **kwargs)

        self.model.run_with_hooks = spy
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.model.run_with_hooks


def names_swapped(runs: HookRuns, tc: Any, expected: float, close: Callable[[float, float], bool], seen: str) -> None:
    """A recorded run hooking both tc.hook_name and tc.hook_name_out that, rerun with the two names exchanged, gives
    the expected replaced loss: the input was read at the output's hook point and written at the input's."""
    pair = {tc.hook_name: tc.hook_name_out, tc.hook_name_out: tc.hook_name}
    for args, kwargs, hooks in runs.calls:
        names = [name for name, _ in hooks if isinstance(name, str)]
        if sorted(set(names)) != sorted(pair) or len(names) != len(hooks):
            continue
        try:
            loss = runs.model.run_with_hooks(*args, fwd_hooks=[(pair[n], fn) for n, fn in hooks], **kwargs)
            loss = float(loss)
        except Exception:
            continue
        if close(loss, expected):
            fail(
                f"{seen}; with the names of your two hooks exchanged, the run gives the expected replaced loss "
                f"{expected:.5f}",
                "the hook names are swapped: the one that stores the input must be at tc.hook_name (the MLP's input, "
                "which runs first) and the one that returns tc(x) at tc.hook_name_out (its output, which runs "
                "after); TransformerLens runs hooks in the forward order of their points, whatever the list's order",
                code="hook_names_swapped",
            )


def cosine_view(model: Any, tc: Any, i: int, side: str) -> list[tuple[str, str, Tensor]]:
    """The token view as cosine similarities (both the token vectors and the latent's direction unit-normalised)."""
    unit = lambda v, dim: torch.nn.functional.normalize(v, dim=dim)
    if side == "de":
        value, what = unit(model.W_E, -1) @ unit(tc.W_enc[:, i], 0), "W_E @ W_enc[:, latent]"
    else:
        value, what = unit(tc.W_dec[i], 0) @ unit(model.W_U, 0), "W_dec[latent] @ W_U"
    return [
        (
            "cosine",
            f"that is the cosine similarity of each token's vector with the latent's direction: the view is the raw "
            f"dot product {what}, no normalisation (the norms are part of how strongly the latent and the token "
            "interact)",
            value,
        )
    ]


SIZE_ERRORS = (
    r"expanded size of the tensor \((\d+)\) must match the existing size \((\d+)\)",  # slot, then value
    r"value tensor of shape \[([\d, ]*)\] cannot be broadcast to indexing result of shape \[([\d, ]*)\]",  # value, slot
)


def edges_call(impl: Callable, model: Any, tc: Any, frozen: Any, graph: Any) -> Any:
    """extra.edges_call, with an assignment of a value whose size is another of the graph's sizes than its slot's
    named (a d_model axis left where one value per position belongs: a sum over the wrong axis)."""
    try:
        result = extra.edges_call(impl, model, tc, frozen, graph)
    except RuntimeError as err:
        sizes = {
            "n_pos (one token and one error node per position)": graph.n_pos,
            "n_latents (latent nodes)": graph.n_latents,
            "n_logits (logit nodes)": len(graph.logit_ids),
            "n_nodes": graph.n_nodes,
            "d_model": model.cfg.d_model,
            "d_sae": tc.d_sae,
            "d_vocab": model.cfg.d_vocab,
        }
        _assignment_sizes(err, sizes, graph.n_pos, model.cfg.d_model)
        raise
    except IndexError as err:
        hints.latent_id_as_node(err, graph)
        raise
    error_value_unread(impl, model, tc, frozen, graph, result)
    return result


def _assignment_sizes(err: RuntimeError, sizes: dict[str, int], n_pos: int, d_model: int) -> None:
    for k, pattern in enumerate(SIZE_ERRORS):
        match = re.search(pattern, str(err))
        if match is None:
            continue
        first, second = ([int(n) for n in g.replace(",", " ").split()] for g in match.groups())
        slot, value = (first, second) if k == 0 else (second, first)
        name = lambda n: " or ".join(w for w, s in sizes.items() if s == n) or "none of the graph's sizes"
        if not slot or not value or (slot[-1] not in sizes.values() and value[-1] not in sizes.values()):
            return
        said = (
            f"your code raised RuntimeError: {err}; an assignment put {value[-1]} values ({name(value[-1])}) into a "
            f"slot of {slot[-1]} ({name(slot[-1])})"
        )
        hint = "the value has another size than its slot: a reduction over the wrong axis, or the wrong slice?"
        if value[-1] == d_model and slot[-1] == n_pos and n_pos != d_model:
            hint = (
                "the value still has the d_model axis where the slot holds one edge per position: the edge from a "
                "token or error node is a dot product over d_model, (grad * vector).sum(-1); a sum over another axis "
                "(sum(0), over the positions) leaves d_model"
            )
        fail(said, hint, code="edge_size")


def loss_relation(key: str, got: float, exp: dict[str, float], close: Callable, counts: dict[str, int]) -> None:
    """out[key] is not the loss itself but a relation of the right losses (a difference or ratio with another), or
    the loss times a count of the inputs (the batch, the positions predicted, the tokens): say which."""
    names = {"clean": "clean", "replaced": "replaced", "zero_ablated": "zero"}
    mine = exp[key]
    relations = []
    for other, label in names.items():
        if other == key:
            continue
        v = exp[other]
        relations += [
            (mine - v, f"{names[key]} - {label}", f"the difference with the {label} loss"),
            (v - mine, f"{label} - {names[key]}", f"the difference with the {label} loss"),
            (mine / v, f"{names[key]} / {label}", f"the ratio to the {label} loss"),
        ]
    for value, formula, what in relations:
        if close(got, value) and not close(value, mine):
            fail(
                f"out[{key!r}] = {got:.5f}, expected {mine:.5f}; yours is {formula} = {value:.5f}",
                f"out[{key!r}] is the {names[key]} loss itself, not {what}: report each loss as it is (the recovered "
                "fraction is the only derived number)",
                code=f"{key}_relative",
            )
    for name, n in counts.items():
        for factor, how in ((n, "summed over"), (1 / n, "divided again by")):
            if n > 1 and close(got, mine * factor):
                fail(
                    f"out[{key!r}] = {got:.5f}, expected {mine:.5f}: {got / mine:.4g} × the expected, and {n} is "
                    f"{name}",
                    f"the loss is the mean cross-entropy over every predicted token; yours looks {how} {name} "
                    f"({n}): e.g. per-sequence mean losses summed over the batch, or per-token losses summed where "
                    "the mean belongs: `model(tokens, return_type='loss')` gives the mean",
                    code="loss_scale",
                )


def source_blocks(out: Tensor, direct: Tensor, graph: Any, rows: list[int], counts: dict[str, int]) -> None:
    """Only one kind of source (latent, error or token columns) wrong, the others right: name a constant factor on
    it (a count of the inputs: a mean over d_model where the dot product belongs) or the edges kept only where the
    source sits at the target's own position (the paths through attention dropped); else the checker goes on."""
    zero_columns(out, direct, graph, rows)
    kinds = ("latent", "error", "token")
    tol = dict(rtol=1e-3, atol=2e-4)
    blocks = {k: (out[rows][:, graph.nodes(k)].double(), direct[rows][:, graph.nodes(k)].double()) for k in kinds}
    wrong = [k for k, (b, d) in blocks.items() if not torch.allclose(b, d, **tol)]
    if len(wrong) != 1:
        return
    kind = wrong[0]
    b, d = blocks[kind]
    right = " and ".join(k for k in kinds if k != kind)
    rule = "edge = d(target)/d(source) · source: the gradient dotted with the source's vector, summed over d_model"
    c = float((b * d).sum() / (d * d).sum().clamp_min(1e-30))
    if torch.allclose(b, c * d, **tol):
        named = [f"1/{n}, one over {name}" for name, n in counts.items() if abs(c * n - 1) < 1e-3]
        named += [f"{n}, {name}" for name, n in counts.items() if abs(c / n - 1) < 1e-3]
        why = f" ({' or '.join(named)}: a mean where a sum belongs, or the reverse)" if named else ""
        fail(
            f"your {kind} edges are {c:.4g} × the right ones{why}; the {right} edges are right",
            rule,
            code=f"{kind}_edges_scaled",
        )
    equal_across(b, d, kind, right, rule)
    pos = lambda r: int(graph.latent_pos[r]) if r < graph.n_latents else graph.n_pos - 1
    target_pos = torch.tensor([pos(r) for r in rows])
    source_pos = graph.latent_pos.cpu() if kind == "latent" else torch.arange(graph.n_pos)
    own = (target_pos[:, None] == source_pos[None, :]).to(d.device)
    if torch.allclose(b, d * own, **tol) and not torch.allclose(d, d * own, **tol):
        fail(
            f"your {kind} edges are right where the source sits at the target's own position and zero at every "
            f"other position; the {right} edges are right",
            "a source at an earlier position reaches the target through attention: take the gradient of the target "
            f"with respect to the {kind} vectors of every position, not only the target's own; {rule}",
            code=f"{kind}_edges_own_position",
        )
    bound = b >= d.abs() * (1 - 1e-3) - 2e-4  # |g|·|v| ≥ |g · v| (Cauchy–Schwarz), for every edge
    if bool((b >= -2e-4).all() and bound.all()) and not torch.allclose(b, d.abs(), **tol):
        fail(
            f"your {kind} edges are all ≥ 0 and each at least the size of the right edge (|yours| ≥ |right| "
            f"everywhere, as a product of norms |grad|·|{kind} vector| is by Cauchy–Schwarz); the {right} edges "
            "are right",
            f"the edge is the dot product, (grad * {kind}).sum(-1), signed: not grad.norm(dim=-1) * "
            f"{kind}.norm(dim=-1); {rule}",
            code=f"{kind}_edges_norms",
        )


def equal_across(b: Tensor, d: Tensor, kind: str, right: str, rule: str) -> None:
    """The learner's `kind` edges (rows: targets, columns: the `kind` nodes, one per position) hold one number per
    row, the same in every `kind` node, where the right ones differ: name it, and say when that number is the row's
    total of the right edges (a sum over the positions too, copied into every node) or their mean."""
    tol = dict(rtol=1e-3, atol=2e-4)
    same = lambda t: torch.allclose(t, t[:, :1].expand_as(t), **tol)
    if b.shape[1] < 2 or not same(b) or same(d):
        return
    n = b.shape[1]
    which = [
        name
        for name, v in (("total", d.sum(-1)), ("mean", d.mean(-1)), ("first", d[:, 0]), ("last", d[:, -1]))
        if torch.allclose(b[:, 0], v, **tol)
    ]
    what = {
        "total": f"the row's total over all {n} {kind} nodes, the gradient · {kind} summed over the positions as "
        "well as d_model and copied into every node",
        "mean": f"the mean of the row's right {kind} edges over the {n} positions",
        "first": f"the right edge of the first {kind} node, copied into every node",
        "last": f"the right edge of the last {kind} node, copied into every node",
    }
    got = f": {what[which[0]]}" if which else ""
    fail(
        f"your {kind} edges are equal across the {n} {kind} nodes of each target's row (one number per row{got}), "
        f"where the right edges differ from position to position; the {right} edges are right",
        f"each {kind} node is one position, with its own edge: sum the product gradient · {kind} over d_model only "
        f"(.sum(-1)), leaving one edge per position, and write each into its own column; {rule}",
        code=f"{kind}_edges_equal",
    )


# ---------------------------------------------------------------- the gate compared another quantity
def gate_quantities(tc: Any, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """acts = pre · [q > threshold] with q another quantity than pre (b_enc left out of the comparison, x centred
    by b_dec first): mutants (code, hint, acts, out), the out built from those acts."""
    pre = x @ tc.W_enc + tc.b_enc
    quantities = [("x @ W_enc (b_enc left out)", x @ tc.W_enc)]
    if tc.b_dec.shape[-1] == x.shape[-1]:
        quantities.append(("(x - b_dec) @ W_enc + b_enc", (x - tc.b_dec) @ tc.W_enc + tc.b_enc))
    rows = []
    for said, q in quantities:
        a = pre * (q > tc.threshold)
        out = a @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
        hint = (
            f"your gate compares {said} with the threshold, while the kept value is pre = x @ W_enc + b_enc: "
            "compare pre itself, acts = pre · [pre > threshold] (the same pre on both sides)"
        )
        rows.append(("gate_quantity", hint, a, out))
    return rows


# ---------------------------------------------------------------- whose edges a misplaced row holds
def misplaced_rows(out: Tensor, direct: Tensor, graph: Any) -> None:
    """Every non-zero row of the learner's adjacency equals some row of the right one: when some sit at another
    row, say which node's edges each misplaced block holds and where they belong (rows are targets)."""
    moved = []
    for i in range(out.shape[0]):
        if not out[i].abs().max() > 0 or torch.allclose(out[i], direct[i], rtol=1e-3, atol=2e-4):
            continue
        js = [j for j in range(direct.shape[0]) if torch.allclose(out[i], direct[j], rtol=1e-3, atol=2e-4)]
        if not js or not direct[js[0]].abs().max() > 0:
            return
        moved.append((i, js[0]))
    if not moved:
        return
    shown = "; ".join(f"row {i} holds the edges into {graph.label(j)} (row {j})" for i, j in moved[:4])
    more = f" and {len(moved) - 4} more" if len(moved) > 4 else ""
    kinds = {name: graph.nodes(name) for name in ("latent", "error", "token", "logit")}
    lay = ", ".join(f"{name} {s.start}..{s.stop - 1}" for name, s in kinds.items() if s.stop > s.start)
    fail(
        f"your adjacency has the right edges in the wrong rows: {shown}{more}",
        f"row r of adjacency holds the edges INTO node r, in the graph's node order ({lay}): write a target's "
        "edges at its own node index (graph.nodes('latent') / graph.nodes('logit')), not at a running count of "
        "the targets",
        code="rows_misplaced",
    )


# ---------------------------------------------------------------- edges: the value factor, the sign of a dot
def edge_factors(out: Tensor, direct: Tensor, graph: Any, values: Tensor, rows: Any) -> None:
    """Two relations on the learner's edges: the latent columns are the gradients alone (times the source value they
    give the right edges), or the token/error edges are magnitudes (never negative, each at least |right edge|, the
    Cauchy-Schwarz bound |g·v| <= |g||v| and <= sum |g ⊙ v|) where the right ones are signed dot products."""
    L = graph.nodes("latent")
    got, want = out[rows], direct[rows]
    lat_got, lat_want = got[:, L], want[:, L]
    if not torch.allclose(lat_got, lat_want, rtol=1e-3, atol=2e-4) and lat_want.abs().max() > 0:
        if torch.allclose(lat_got * values, lat_want, rtol=1e-3, atol=2e-4):
            fail(
                "the edges out of latent nodes are the gradients alone: times each source latent's value they "
                "give the right edges",
                "an edge is gradient × source value (the source's direct effect): d(target)/d(f_s) · f_s for a "
                "latent, (grad · vector).sum(-1) for a token or error node",
                code="gradient_only",
            )
        return
    vec = torch.cat([got[:, graph.nodes("error")], got[:, graph.nodes("token")]], -1)
    right = torch.cat([want[:, graph.nodes("error")], want[:, graph.nodes("token")]], -1)
    if (right < -1e-4).any() and (vec >= 0).all() and (vec >= right.abs() - 1e-3 * right.abs().max() - 2e-4).all():
        fail(
            "the token and error edges are never negative and each is at least |the right edge|, while the right "
            f"ones are signed ({int((right < -1e-4).sum())} negative): a magnitude where a signed dot product belongs",
            "possible causes: |grad|·|vector| (a product of norms), sum |grad ⊙ vector|, or |grad · vector|: the edge "
            "from a token or error node is the signed dot product (grad * vector).sum(-1)",
            code="vector_magnitude",
        )
