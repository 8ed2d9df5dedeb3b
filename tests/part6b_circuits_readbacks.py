"""Read-backs for part 6b: attribution edges summed over the targets at one position or built with the last
position's embedding; influence with softmax rows or elementwise powers, or a series stopped by a tolerance (a long
chain whose terms fall off fast); quantile bands built on another m than the max, values divided by m, indices from
a transposed flatten. Each names a cause only when re-running that cause reproduces the learner's output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_influence_observed as observed
from tests import part6b_circuits_mistakes as known
from tests.checking import fail
from tests.part6b_circuits_keepdim import row_sums_broadcast

CLOSE = {"rtol": 1e-3, "atol": 2e-4}


def _close(a: Any, b: Tensor, **tol: float) -> bool:
    try:
        a = torch.as_tensor(a).detach().to(b)
        return a.shape == b.shape and bool(torch.allclose(a, b, **(tol or CLOSE)))
    except (TypeError, RuntimeError, ValueError):
        return False


# ------------------------------------------------------------------------------------------------ attribution_edges
def edge_readbacks(out: Tensor, direct: Tensor, model: Any, tc: Any, frozen: Any, graph: Any) -> None:
    """Rows summed over every target at the same position (one backward per position), and token edges dotted with
    the last position's embedding at every position."""
    rows = known.target_rows(graph)
    tpos = torch.cat([graph.latent_pos.cpu(), torch.full((len(graph.logit_ids),), graph.n_pos - 1)])
    same = (tpos[:, None] == tpos[None, :]).to(direct)
    summed = direct.clone()
    summed[rows] = same @ direct[rows]
    if not torch.equal(same, torch.eye(len(rows)).to(same)) and _close(out, summed):
        fail(
            "each target's row is the sum of the right rows of every target at the same position: the edges come "
            "from one backward of the sum of all the targets at a position",
            "differentiate each target on its own (torch.autograd.grad(targets[i], inputs, retain_graph=True) per "
            "target), not the sum of the targets that share a position",
            code="position_summed",
        )
    pos, idx = graph.latent_pos, graph.latent_idx
    last = direct.clone()
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = frozen.acts[pos, idx].detach()
        pre, logits = known.variant_forward(model, tc, frozen, embeds, latents, frozen.error.detach())
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        for row, t in zip(rows, targets, strict=True):
            (g,) = torch.autograd.grad(t, (embeds,), retain_graph=True, allow_unused=True)
            g = torch.zeros_like(embeds) if g is None else g
            last[row, graph.nodes("token")] = (g * frozen.embeds.detach()[-1]).sum(-1)
    if _close(out, last):
        fail(
            "the token edges are the gradient at each position dotted with the LAST position's embedding; every "
            "other edge is right",
            "a token node's edge is (grad at its embedding · its own embedding).sum(-1): position p's gradient with "
            "embeds[p], not embeds[-1]",
            code="token_embed_position",
        )


# ------------------------------------------------------------------------------------------------ node_influence
def _series(a: Tensor, weights: Tensor) -> Tensor:
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return weights @ (torch.linalg.inv(eye - a) - eye)


def influence_readbacks(out: Tensor, A: Tensor, weights: Tensor) -> None:
    """Rows normalised with softmax (over every entry, or over the nonzero ones), the series built from elementwise
    powers Σ â^k (k = 1..N); then, observed, an influence far larger than the right one (I - Â nearly singular)."""
    a = A.abs()
    soft = a.softmax(-1)
    masked = a.masked_fill(a == 0, float("-inf")).softmax(-1).nan_to_num(0.0)
    for a_hat, how in ((soft, "over every entry"), (masked, "over the nonzero entries")):
        if _close(out, _series(a_hat, weights), rtol=1e-3, atol=1e-5):
            fail(
                f"the influence is that of Â = softmax(|A|) row by row ({how}), not |A| / its row sums",
                "normalise each row of |A| to sum to 1 by dividing by the row sum (a / a.sum(-1, keepdim=True), "
                "zero rows left at 0): softmax exponentiates, so the shares differ"
                + (" and zeros become positive (I - Â turns singular)" if how == "over every entry" else ""),
                code="softmax_rows",
            )
    a_hat = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    total = torch.zeros_like(a_hat)
    for n in range(1, len(a_hat) + 2):
        total = total + a_hat**n
        if _close(out, weights @ total, rtol=1e-4, atol=1e-6):
            fail(
                f"the influence is w @ (â + â² + … + â^{n}) with ELEMENTWISE powers (a ** k), not matrix powers",
                "a path of length k is counted by the matrix power Âᵏ = Â @ Â @ … (torch.linalg.matrix_power), "
                "whose sum is (I - Â)⁻¹ - I; a ** k only raises each edge weight to a power",
                code="elementwise_power",
            )
    right = _series(a_hat, weights)
    other_axis(out, A, weights)
    row_sums_broadcast(out, A, weights)
    damped(out, a_hat, weights)
    big = float(torch.as_tensor(out).detach().abs().max()) if torch.as_tensor(out).numel() else 0.0
    if big > 1e3 * float(right.abs().max()):
        seen, hint = observed.huge(out, right, A, weights)
        fail(seen, hint, code="values")


def other_axis(out: Tensor, A: Tensor, weights: Tensor) -> None:
    """Â read back as |A| divided by the column sums (each node's OUTGOING total), per row (a.sum(0)[:, None]:
    row t by node t's outgoing total) or per column (a.sum(0, keepdim=True)), a zero total clamped or set to 1."""
    a = A.abs().double()
    col = a.sum(0)
    w = weights.double()
    for how, fix in (("clamped", lambda s: s.clamp_min(1e-12)), ("set to 1", lambda s: torch.where(s == 0, 1, s))):
        for name, a_hat in (
            ("row t divided by node t's outgoing total (a.sum(0)[:, None]: the column sums)", a / fix(col)[:, None]),
            ("each column divided by its sum (a.sum(0, keepdim=True): columns sum to 1)", a / fix(col)[None, :]),
        ):
            if _close(out, _series(a_hat, w), rtol=1e-3, atol=1e-5):
                fail(
                    f"your influence is that of Â = |A| normalised by the other axis's totals: {name}, a zero total "
                    f"{how}; re-running with that Â gives your output",
                    "Â[t, s] is the share of target t's INCOMING weight from source s: divide row t by ITS row sum "
                    "(a / a.sum(-1, keepdim=True), dim=-1 sums over the sources), not by a column sum",
                    code="column_normalised",
                )


def damped(out: Tensor, a_hat: Tensor, weights: Tensor) -> None:
    """A damping factor c (PageRank style) read back: w @ ((I - cÂ)⁻¹ - I) for common c."""
    for c in (0.85, 0.9, 0.95, 0.99, 0.8, 0.5):
        if _close(out, _series(c * a_hat, weights), rtol=1e-4, atol=1e-6):
            fail(
                f"your influence is w @ ((I - {c:g}·Â)⁻¹ - I): the paths are damped by {c:g} per edge (a PageRank-"
                "style damping factor); re-running with that factor gives your output",
                "no damping: influence = w @ ((I - Â)⁻¹ - I) counts every path with the product of its normalised "
                "edge weights, each path of length n through Âⁿ",
                code="damped",
            )


def chain_inputs(device: torch.device) -> tuple[Tensor, Tensor]:
    """A 12-node chain (node t reads node t - 1 with weight 0.3 and its own token leaf 12 + t with 0.7), the logit
    weight on the last node: the terms Âⁿ fall by 0.3 per step, their total drops below 1e-2 after ~6 steps, yet the
    paths of 7..11 edges still carry influence above 1e-6 (0.3¹⁰ · 0.7 ≈ 4e-6 at the far end)."""
    n_chain = 12
    A = torch.zeros(2 * n_chain, 2 * n_chain)
    for t in range(n_chain):
        A[t, n_chain + t] = 0.7
        if t:
            A[t, t - 1] = -0.3 if t % 2 else 0.3
    weights = torch.zeros(2 * n_chain)
    weights[n_chain - 1] = 1.0
    return A.to(device), weights.to(device)


def chain_graph(impl: Callable, device: torch.device, reference: Callable) -> None:
    """The influence on a long chain whose path terms fall off fast: a series stopped once a term is small (a
    tolerance, exact on graphs whose Âⁿ hits 0 first) is named with the step it stopped at."""
    A, weights = chain_inputs(device)
    got = impl(A.clone(), weights.clone())
    want = reference(A, weights)
    if _close(got, want, rtol=1e-4, atol=1e-7):
        return
    a_hat = A.abs() / A.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    term, total = torch.eye(len(A), device=device), torch.zeros_like(a_hat)
    seen = f"node_influence is wrong on a {len(A)}-node chain (longest path {len(A) // 2} edges, Âⁿ shrinking by 0.3"
    for n in range(1, len(A) // 2):
        term = term @ a_hat
        total = total + term
        if _close(got, weights @ total, rtol=1e-4, atol=1e-7):
            nxt = term @ a_hat
            fail(
                f"{seen} a step): yours is w @ (Â + … + Â^{n}), the series stopped after {n} terms, where the next "
                f"term Â^{n + 1} totals {float(nxt.sum()):.2g} (small but not zero)",
                "a loop that stops once a term is small (a tolerance) drops the long paths; on a DAG Âⁿ is exactly 0 "
                "past the longest path: loop until the term is all zeros, or use (I - Â)⁻¹ - I (torch.linalg.inv)",
                code="truncated_series",
            )
    fail(
        f"{seen} a step) though it is right on the first graph: "
        + observed.unexplained_long_graph(got, want, A, weights, len(A) // 2 - 1),
        "influence = w @ ((I - Â)⁻¹ - I), Â = |A| / row sums: every path counts, however long, with the product of "
        "its |edge| shares",
        code="deep_graph",
    )


# ------------------------------------------------------------------------------------------------ quantile_examples
def _bands(flat: Tensor, k: int, n_bands: int, m: float) -> list[Tensor]:
    groups = []
    for j in range(n_bands):
        lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
        vals = flat[(flat > lo) & (flat <= hi)]
        groups.append(vals[(vals - (lo + hi) / 2).abs().argsort()[:k]].sort(descending=True).values)
    return groups


def _values(out: Any) -> list[Tensor] | None:
    try:
        return [torch.as_tensor(g[0]).detach().double().cpu().flatten() for g in out]
    except (TypeError, IndexError, RuntimeError, ValueError):
        return None


def _same(got: list[Tensor], want: list[Tensor]) -> bool:
    return len(got) == len(want) and all(
        a.shape == b.shape and torch.allclose(a, b.to(a), rtol=1e-5, atol=1e-7) for a, b in zip(got, want, strict=True)
    )


def quantile_readbacks(out: Any, acts: Tensor, k: int, n_bands: int) -> None:
    """Values divided by the max; bands built on another m (a quantile or another firing value) than the max, read
    back by re-running the bands on that m; indices of acts.T.flatten() unravelled as if sequence-major."""
    got = _values(out)
    if got is None:
        return
    flat = acts.detach().double().cpu().clone()
    flat[:, 0] = 0
    n_seq, seq_len = flat.shape
    flat = flat.flatten()
    m = float(flat.max())
    right = _bands(flat, k, n_bands, m)
    if _same(got, right):
        _transposed(out, acts, n_seq, seq_len)
        return
    if _same([g * m for g in got], right):
        fail(
            f"every value is the right one divided by the max m = {m:.3g}: the values are in units of m",
            "return the activations themselves (acts[seq, pos]); m only sets the band edges",
            code="values_over_max",
        )
    firing = flat[flat > 0]
    candidates = {
        f"the {q:g} quantile of the firing values": float(torch.quantile(firing, q))
        for q in (0.9, 0.95, 0.975, 0.98, 0.99, 0.995, 0.999)
    }
    for r, v in enumerate(firing.sort(descending=True).values[1:6].tolist(), start=2):
        candidates.setdefault(f"the {r}th largest firing value", v)
    for name, cand in candidates.items():
        if abs(cand - m) > 1e-9 * m and _same(got, _bands(flat, k, n_bands, cand)):
            fail(
                f"your groups are those of bands built on m = {cand:.4g} ({name}), not on the max {m:.4g}: re-running "
                "the bands with that m gives your values",
                f"m is the largest activation outside position 0 (acts[:, 1:].max()), not a quantile or a robust max; "
                f"the bands split (0, m] into {n_bands} equal parts",
                code="band_max",
            )


def _transposed(out: Any, acts: Tensor, n_seq: int, seq_len: int) -> None:
    """The right values whose indices are i // seq_len, i % seq_len of positions i in acts.T.flatten()."""
    flat_t = acts.detach().cpu().T.flatten()
    try:
        hits = []
        for values, seq_idx, pos_idx in out:
            i = torch.as_tensor(seq_idx).cpu().long() * seq_len + torch.as_tensor(pos_idx).cpu().long()
            hits.append(bool(torch.equal(flat_t[i], torch.as_tensor(values).detach().cpu().to(flat_t))))
            hits[-1] &= not torch.equal(acts.detach().cpu()[seq_idx.long().cpu(), pos_idx.long().cpu()], values.cpu())
    except (TypeError, IndexError, RuntimeError, ValueError, AttributeError):
        return
    if any(hits):
        fail(
            "the values are right, but each (seq_idx, pos_idx) is i // seq_len, i % seq_len of the value's index i "
            "in acts.T.flatten() (position-major): the flatten and the unravelling disagree",
            "flatten acts itself (sequence-major: i = seq · seq_len + pos) before unravelling with i // seq_len, "
            f"i % seq_len (seq_len = {seq_len}); acts.T.flatten() holds position p, sequence s at p · n_seq + s "
            f"(n_seq = {n_seq})",
            code="transposed_flatten",
        )
