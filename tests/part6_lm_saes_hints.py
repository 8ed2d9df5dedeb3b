"""More named mistakes for part 6's checkers: state carried from one call to the next (a second call with other
arguments, compared with the first call's), other positions or another test for 'fires' in the frequencies, a
loss increase reported for a loss, recovered computed on perplexities, and logit effects normalised into
probabilities or cosines; what the learner's hooks did to the activation (recorded) in steering and ablation, the
sequences a frequency counts twice, and losses normalised over another axis than the vocabulary."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import expect_matches, fail
from tests.mutants import call
from tests.part6_lm_saes_batch_slices import slicing_read_back
from tests.part6_lm_saes_edit_sources import g_sources, index_slips, zeroed_where_wrong
from tests.part6_lm_saes_elementwise import steer_max_min
from tests.part6_lm_saes_extra_mistakes import watching_hooks
from tests.part6_lm_saes_layouts import loss_inputs
from tests.part6_lm_saes_logit_edits import logits_edited_after
from tests.part6_lm_saes_readings import ablate_reencoded, f_shifted
from tests.part6_lm_saes_sequence_subset import only_some_sequences
from tests.part6_lm_saes_steer_scale import steer_scale
from tests.part6_lm_saes_steer_varying import steer_read_back
from tests.part6_lm_saes_variants import ablate_where_fires, steer_constant

STALE = (
    "a value kept from an earlier call (a global, a dict or attribute filled once, a default argument, an "
    "lru_cache) or a hard-coded argument"
)


def steer_second_call(
    again: Callable[[int, float], Tensor],
    ref: Callable,
    model: Any,
    sae: Any,
    tokens: Tensor,
    first: tuple,
    second: tuple,
) -> None:
    """Steering once more with another latent and coeff (`again(latent, coeff)` gives the learner's logits): a
    result made with the first call's latent and/or coeff is named as state carried between calls."""
    (l1, c1), (l2, c2) = first, second
    out = again(l2, c2)
    steered = lambda latent, coeff: ref(model, sae, tokens, latent, coeff)
    build = "build coeff · W_dec[latent] from this call's own arguments every time"
    mistakes = [
        (
            "stale_call",
            f"the second call (latent {l2}, coeff {c2}) returned the first call's steered logits (latent {l1}, coeff "
            f"{c1}): the steering vector is {STALE}; {build}",
            steered(l1, c1),
        ),
        (
            "stale_call",
            f"the second call (latent {l2}, coeff {c2}) steered with the first call's latent {l1}: the latent is "
            f"{STALE}; {build}",
            steered(l1, c2),
        ),
        (
            "stale_call",
            f"the second call (latent {l2}, coeff {c2}) steered with the first call's coeff {c1}: the coefficient is "
            f"{STALE}; {build}",
            steered(l2, c1),
        ),
    ]
    if c2 < 0 < c1:  # the first call's positive coeff was right: a sign-flip mutant there would have failed
        mistakes.append(
            (
                "coeff_sign",
                f"the second call (coeff {c2}) steered by {-c2} · W_dec[latent] (the first call, coeff {c1}, was "
                "right): the sign of a negative coeff is dropped; use coeff as given (no abs(), clamp or ReLU on it), "
                "a negative coeff steers away from the latent",
                steered(l2, -c2),
            )
        )
    expect_matches(
        out,
        steered(l2, c2),
        f"the steered logits of a second call (latent {l2}, coeff {c2})",
        mistakes,
        rtol=1e-4,
        atol=1e-4,
        dims="batch seq d_vocab",
        hint="add coeff * W_dec[latent] at sae.hook_name, every position, with this call's latent and coeff",
        reference=call(ref, model, sae, tokens, l2, c2),
    )


def ablate_second_call(model: Any, sae: Any, tokens: Tensor, first: int, second: int) -> list[tuple[str, str, Tensor]]:
    """The second ablation (latent `second`) made with the first call's activation f, decoder row, or both."""

    def ablated(f_latent: int, row: int) -> Tensor:
        def hook(a: Tensor, hook: Any) -> Tensor:
            return a - sae.encode(a)[..., f_latent, None] * sae.W_dec[row]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    fix = "compute f = sae.encode(act)[..., latent] inside the hook of this call, for this call's latent"
    return [
        (
            "stale_call",
            f"that is the first call's result (latent {first}) returned for latent {second}: the result or f is "
            f"{STALE}; {fix}",
            ablated(first, first),
        ),
        (
            "stale_f",
            f"that subtracts the first call's activations f of latent {first} times W_dec[{second}]: f is {STALE}; "
            f"{fix}",
            ablated(first, second),
        ),
        (
            "stale_call",
            f"that subtracts f of latent {second} times the first call's decoder row W_dec[{first}]: the row is "
            f"{STALE}; use W_dec[latent] of this call",
            ablated(second, first),
        ),
        *index_slips(model, sae, tokens, second),
    ]


def frequency_positions(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """`acts` [n_seq seq d_sae], every position: positions 1 .. seq-2 (the last dropped as well as BOS; the last
    alone is in frequency_mistakes), and 'fires' read as 'is the most active latent of the token'."""
    fired = (acts > 0).float()
    one_hot = F.one_hot(acts[:, 1:].argmax(-1), acts.shape[-1]).float()
    return [
        (
            "positions",
            "that counts positions 1 .. seq-2 (`[:, 1:-1]`): the last position was dropped too; it has no next token "
            "to predict, but its activations are real: count every position except 0 (`acts[:, 1:]`)",
            fired[:, 1:-1].mean((0, 1)),
        ),
        (
            "argmax_only",
            "that counts only the most active latent of each token (argmax or one-hot) as firing: a latent fires "
            "wherever its activation is > 0, and many latents fire on each token; count `acts > 0`",
            one_hot.mean((0, 1)),
        ),
    ]


def loss_increases(exp: dict[str, float]) -> dict[str, list[tuple[str, str, Tensor]]]:
    """A loss reported as its increase over the clean loss, and recovered computed on perplexities exp(loss)."""
    c, s, z = exp["clean"], exp["spliced"], exp["zero_ablated"]
    increase = lambda key: (
        "loss_increase",
        f"that is out[{key!r}] - out['clean'], the increase of the loss: return the loss itself (the model's mean "
        "cross-entropy with the hook), and compute differences only in recovered",
        torch.tensor(exp[key] - c, dtype=torch.float64),
    )
    out = {"spliced": [increase("spliced")], "zero_ablated": [increase("zero_ablated")], "recovered": []}
    if max(c, s, z) < 50:
        e = math.exp
        out["recovered"].append(
            (
                "perplexity",
                "that is recovered computed on perplexities exp(loss): recovered = (zero - spliced) / (zero - clean) "
                "on the losses themselves",
                torch.tensor((e(z) - e(s)) / (e(z) - e(c)), dtype=torch.float64),
            )
        )
    return out


def logit_normalised(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The latent's effect turned into a change of probabilities, or into cosines with the unembedding columns."""
    d = sae.W_dec[latent] @ model.W_out[0]  # [d_model]
    e = d @ model.W_U
    raw = "the logit effect is the raw change of the logits, W_dec[latent] @ W_out[0] @ W_U"
    b_U = getattr(model, "b_U", torch.zeros_like(e))
    return [
        (
            "probabilities",
            f"that is a change of probabilities, softmax(b_U + effect) - softmax(b_U): {raw}, with no softmax",
            torch.softmax(b_U + e, -1) - torch.softmax(b_U, -1),
        ),
        (
            "probabilities",
            f"that is a change of probabilities, softmax(effect) - softmax(0) (uniform): {raw}, with no softmax",
            torch.softmax(e, -1) - 1 / e.shape[-1],
        ),
        (
            "cosine",
            "that is the cosine similarity of W_dec[latent] @ W_out[0] with each column of W_U: "
            f"{raw}, a dot product not divided by either norm",
            F.cosine_similarity(d[:, None], model.W_U, dim=0),
        ),
    ]


# --------------------------------------------------------------------------------------------
# What the learner's hooks did (recorded), the sequences a frequency counts, losses on another softmax axis
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def recorded_edits(model: Any, hook_name: str) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Within the block, every hook the learner adds at `hook_name` (run_with_hooks, model.hooks, add_hook, a name
    filter: see watching_hooks) is recorded as (activation it received, activation it returned), both copied (an
    in-place edit is seen too)."""
    edits: list[tuple[Tensor, Tensor]] = []

    def record(name: Any, before: Tensor, act: Tensor, out: Any) -> None:
        new = act if out is None else out
        if name == hook_name and isinstance(new, Tensor) and new.shape == before.shape:
            edits.append((before, new.detach().clone()))

    with watching_hooks(model, record):
        yield edits


def edits_rerun(impl: Callable, model: Any, sae: Any, tokens: Tensor, latent: int) -> Callable[[float], list]:
    """rerun(c2): the hook edits recorded while the learner steers `latent` by c2 (none when the call fails)."""

    def rerun(c2: float) -> list:
        with recorded_edits(model, sae.hook_name) as edits:
            try:
                impl(model, sae, tokens.clone(), latent, c2)
            except Exception:  # the first call succeeded; a failing second one reads as no edit
                return []
        return edits

    return rerun


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-4)


def steer_edit(
    edits: list,
    model: Any,
    sae: Any,
    tokens: Tensor,
    latent: int,
    coeff: float,
    out: Tensor,
    rerun: Callable[[float], list] | None = None,
) -> None:
    """Steering must add the same vector coeff · W_dec[latent] at every position, whatever the activation: read the
    change each recorded hook made (the edit is additive when it is one vector everywhere, linear in coeff when
    that vector is coeff · W_dec[latent]) and name what differs. Runs only when the output matched nothing else.
    `rerun(c2)` gives the hook edits of a call with another coeff (whether a wrong amount follows coeff)."""
    logits_edited_after(edits, model, sae, tokens, latent, out, coeff)
    d = sae.W_dec[latent].double()
    for a, b in edits:
        a, b = a.double(), b.double()
        delta = (b - a).reshape(-1, d.shape[0])
        if torch.allclose(delta, coeff * d.expand_as(delta), rtol=1e-4, atol=1e-4):
            continue
        k = float(delta[0] @ d / (d @ d))
        if torch.allclose(delta, (k * d).expand_as(delta), rtol=1e-4, atol=1e-4):
            clean = model(tokens).double()
            run = model.run_with_hooks(
                tokens, fwd_hooks=[(sae.hook_name, lambda x, hook, k=k: x + k * sae.W_dec[latent])]
            )
            scale = coeff / k if abs(k) > 1e-9 else None
            if scale is not None and _close(out, clean + scale * (run.double() - clean)):
                fail(
                    f"your hook added {k:.4g} · W_dec[latent] (not coeff · W_dec[latent] = {coeff} · W_dec[latent]), "
                    f"and your logits are the clean ones plus {scale:.4g} × that run's change",
                    "a logit change scaled by coeff assumes the logits are linear in coeff; they are not (the final "
                    "LayerNorm comes after the hook): add coeff · W_dec[latent] in the hook and return that run's "
                    "logits",
                    code="scaled_logit_change",
                )
            if abs(k - coeff**2) < 1e-3:
                fail(
                    f"your hook added {k:.4g} · W_dec[latent] at every position, expected coeff · W_dec[latent] = "
                    f"{coeff} · W_dec[latent] (coeff² = {coeff**2:.4g}: coeff applied twice?)",
                    "scale the latent's decoder row by this call's coeff once, inside the hook",
                    code="steer_coeff",
                )
            steer_scale(k, coeff, model, sae, latent, rerun, tuple(tokens.shape))
        steer_constant(delta, sae, latent, coeff)
        if _close(b, a * (1 + coeff * d)) or _close(b, a * coeff * d) or _close(b, a + a * coeff * d):
            fail(
                "your hook's change to the activation differs between positions: it is the activation multiplied "
                "elementwise by coeff · W_dec[latent] (multiplicative steering)",
                "steering is additive: act + coeff · W_dec[latent], the same vector at every position whatever the "
                "activation is",
                code="steer_multiplicative",
            )
        steer_max_min(a, b, d, coeff)
        g = delta @ d / (d @ d)
        along = torch.allclose(delta, g[:, None] * d, rtol=1e-4, atol=1e-4)
        found = steer_read_back(a, b, d, coeff, sae, latent)
        fail(
            "your hook's change to the activation differs between positions"
            + (f" (g · W_dec[latent] with g from {float(g.min()):.4g} to {float(g.max()):.4g})" if along else "")
            + (
                ": your hook's output is exactly " + " or ".join(found) + " (recomputed on the activation it got)"
                if found
                else "; it is not a GELU or ReLU after the addition, a mask from act or f, a scale from f or "
                "‖act‖, a rescaling to ‖act‖, or the SAE splice (each recomputed on the activation it got)"
            ),
            "steering adds one vector, coeff · W_dec[latent], at every position whatever the activation is: return "
            "act + coeff · W_dec[latent]",
            code="steer_not_additive",
        )


def hook_combination(a: Tensor, b: Tensor, f: Tensor, sae: Any, latent: int) -> None:
    """The hook's output written as a combination α·act + β·x̂ + γ·f·W_dec[latent] + δ·b_dec (x̂ = sae.decode(
    sae.encode(act))), four numbers fitted over every position; when that is exact with whole coefficients other
    than the right (1, 0, −1, 0), the combination is told as it is (and the SAE error's share, act − x̂, named)."""
    terms = [a, sae.decode(sae.encode(a)), f[..., None] * sae.W_dec[latent], sae.b_dec.expand_as(a)]
    basis = torch.stack([t.reshape(-1).double() for t in terms], -1)
    c = torch.linalg.lstsq(basis, b.reshape(-1).double()[:, None]).solution[:, 0]
    y = b.reshape(-1).double()
    if (basis @ c - y).norm() > 1e-5 * (y.norm() + 1e-12) or not torch.allclose(c, c.round(), atol=1e-3):
        return
    k = [int(v) for v in c.round()]
    if k == [1, 0, -1, 0]:
        return
    names = ("act", "x̂", "f·W_dec[latent]", "b_dec")
    text = " ".join(
        f"{'+' if v > 0 else '−'} {'' if abs(v) == 1 else f'{abs(v)}·'}{n}" for v, n in zip(k, names, strict=True) if v
    )
    reading = ""
    if k == [1, -1, 1, 0]:
        reading = " = the SAE's error (act − x̂) plus the latent's own term: act − sae.decode(f with the latent zeroed)"
    fail(
        f"your hook returns {text.lstrip('+ ')}{reading} (x̂ = sae.decode(sae.encode(act)), f = the latent's "
        "activation), expected act − f·W_dec[latent]",
        "subtract only the latent's term from the activation: act − f · W_dec[latent] (equivalently, with "
        "g = f with every other latent zeroed, act − sae.decode(g) + b_dec)",
        code="hook_combination",
    )


def ablate_edit(edits: list, sae: Any, latent: int, run: tuple | None = None) -> None:
    """Ablating must return act − f · W_dec[latent] with f = sae.encode(act)[..., latent]: read each recorded
    hook's output and say how it differs (f taken from elsewhere, the SAE error dropped where the latent fires).
    `run` = (model, tokens, the learner's logits): logits changed with no edit at the hook are named first."""
    if run is not None:
        logits_edited_after(edits, run[0], sae, run[1], latent, run[2])
    for a, b in edits:
        f = sae.encode(a)[..., latent]
        d = sae.W_dec[latent]
        right = a - f[..., None] * d
        if _close(b, right):
            continue
        delta = (b - a).double()
        g = -(delta @ d.double()) / (d.double() @ d.double())
        if torch.allclose(delta, -g[..., None] * d.double(), rtol=1e-4, atol=1e-4):
            recon = sae.decode(sae.encode(a))
            pre = (a - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent]
            sources = [
                (
                    recon[..., latent],
                    "entry `latent` of the reconstruction sae(act) = sae.decode(sae.encode(act)) (a "
                    "coordinate of x̂, an MLP neuron, not the latent)",
                ),
                (a[..., latent], "entry `latent` of the activation itself, act[..., latent] (an MLP neuron)"),
                (
                    pre,
                    "the latent's pre-activation (act − b_dec) @ W_enc[:, latent] + b_enc[latent], no activation "
                    "function",
                ),
            ]
            for value, what in sources:
                if _close(g, value.double()):
                    fail(
                        f"your hook removes g · W_dec[latent] with g = {what}",
                        "f is the latent's activation: f = sae.encode(act)[..., latent]",
                        code="f_source",
                    )
            f_shifted(g, f.double())
            removed_fraction(g, f.double())
            g_sources(a, g, sae, latent)
            continue
        zeroed_where_wrong(b, ~torch.isclose(b, right, rtol=1e-4, atol=1e-4).all(-1), f > 0)
        ablate_reencoded(a, b, right, sae)
        hook_combination(a, b, f, sae, latent)
        wrong = ~torch.isclose(b, right, rtol=1e-4, atol=1e-4).all(-1)
        fires = f > 0
        if wrong.any() and torch.equal(wrong, fires):
            a0 = sae.encode(a)
            a0[..., latent] = 0
            if _close(b[fires], sae.decode(a0)[fires]):
                fail(
                    f"your hook's output is wrong exactly at the {int(fires.sum())} positions where the latent fires "
                    "(f > 0): there it is sae.decode(f with the latent zeroed), without the SAE's error",
                    "keep the error term everywhere: sae.decode(f with the latent zeroed) + (act − sae.decode(f)), "
                    "which is act − f · W_dec[latent]",
                    code="error_dropped",
                )
            ablate_where_fires(a, b, right, f, sae, latent)
            off = (b - right)[fires].double()
            d64 = d.double() / d.double().norm()
            along = float((off @ d64).norm() / off.norm().clamp_min(1e-30))
            fail(
                f"your hook's output is wrong exactly at the {int(fires.sum())} positions where the latent fires "
                f"(f > 0) and right elsewhere; there it differs from act − f · W_dec[latent] by a vector of mean norm "
                f"{float(off.norm(dim=-1).mean()):.3g} (the removed term f · W_dec[latent] has mean norm "
                f"{float((f[fires, None] * d).double().norm(dim=-1).mean()):.3g}), {along:.0%} of it along "
                "W_dec[latent]",
                "return act − f · W_dec[latent] with f = sae.encode(act)[..., latent], nothing else changed; a "
                "difference only where the latent fires has several possible causes, e.g. the SAE's error term "
                "dropped there, another f or another row, the result rescaled, or a further SAE step (an "
                "encode/decode) applied to the edited activation",
                code="fires_positions",
            )


def removed_fraction(g: Tensor, f: Tensor) -> None:
    """The hook removes g · W_dec[latent] with g = c · f for one constant c ≠ 1 (fitted by least squares)."""
    if float((f * f).sum()) == 0:
        return
    c = float((g * f).sum() / (f * f).sum())
    if abs(c - 1) > 1e-3 and abs(c) > 1e-3 and torch.allclose(g, c * f, rtol=1e-4, atol=1e-4):
        fail(
            f"your hook removes {c:.4g} × the latent's contribution: act − {c:.4g} · f · W_dec[latent] (fitted on "
            "the hook's output, f = sae.encode(act)[..., latent])",
            "ablating removes the whole contribution: act − f · W_dec[latent] (no factor)",
            code="ablate_fraction",
        )


def sequence_weights(out: Tensor, fired: Tensor, batch_size: int) -> None:
    """`fired` [n_seq seq-1 d_sae] (float). The learner's frequencies written as a combination of the per-sequence
    frequencies (least squares over the latents, exact when it is one): sequences counted twice are named (a
    right answer weighs every sequence equally; equal weights of another size are a scale, named elsewhere)."""
    per_seq = fired.mean(1).double().cpu()  # [n_seq d_sae]
    y = out.detach().double().cpu()
    if y.shape != per_seq.shape[1:] or not torch.isfinite(y).all():
        return
    v = torch.linalg.lstsq(per_seq.T, y[:, None]).solution[:, 0]
    if (per_seq.T @ v - y).norm() > 1e-5 * (y.norm() + 1e-12) or (v <= 1e-9).all():
        return
    v = torch.where(v > 1e-6 * v.max(), v, torch.zeros_like(v))  # lstsq leaves ~1e-9 where a weight is 0
    m = v / v[v > 0].min()
    if torch.allclose(m, m.round(), atol=0.02) and m.max() < 1.5:  # equal weights on a subset: name the subset
        only_some_sequences(y, per_seq, m.round().long(), batch_size)
    if not torch.allclose(m, m.round(), atol=0.02) or m.max() < 1.5 or m.max() > 5:
        return
    m = m.round().long()
    twice = [i for i in range(len(m)) if m[i] > 1]
    skipped = [i for i in range(len(m)) if m[i] == 0]
    rem = len(m) % batch_size
    if rem and not skipped and twice == list(range(len(m) - rem, len(m))) and int(m.max()) * rem == batch_size:
        fail(
            f"your frequencies weigh the sequences of the last, short batch ({' and '.join(map(str, twice))}; "
            f"{rem} of them, batch_size = {batch_size}) {int(m.max())} times as much as the others, each batch "
            "counting the same however many sequences it holds",
            "possible causes: a mean (or sum) of per-batch means, or a count of batches as the divisor, while "
            f"n_seq = {len(m)} isn't a multiple of batch_size; accumulate the counts and the number of tokens over "
            "all batches and divide once at the end",
            code="batch_means",
        )
    starts = [i for i in range(batch_size, len(m), batch_size)]
    strided = sorted(i for i in range(len(m)) if m[i] > 0) == list(range(0, len(m), batch_size))
    where = " (the first sequence of each later batch)" if twice == starts and not strided else ""
    times = lambda k: "twice" if k == 2 else f"{k} times"
    weighed = "; ".join(
        f"sequence{'s' * (len(idx) > 1)} {' and '.join(map(str, idx))} {times(k)}"
        for k in sorted({int(m[i]) for i in twice})
        for idx in [[i for i in twice if int(m[i]) == k]]
    )
    found = slicing_read_back([int(x) for x in m], batch_size)
    fail(
        f"your frequencies weigh {weighed} as much as the others{where}"
        + (f", and leave out sequence{'s' * (len(skipped) > 1)} {', '.join(map(str, skipped))}" if skipped else ""),
        (
            "these are exactly the weights of " + " or of ".join(found) + f" (simulated on these {len(m)} sequences); "
            if found
            else (
                f"only every {batch_size}-th sequence counts; "
                if strided
                else "those sequences are counted more than once; "
            )
            + "not batches cut with a strided slice, an end past the block or a smaller step (those weigh the "
            "sequences otherwise); "
        )
        + "take tokens[start : start + batch_size] for start in range(0, n_seq, batch_size): each sequence "
        "exactly once",
        code="strided_batches" if strided else "counted_twice",
    )


def softmax_axis_losses(model: Any, sae: Any, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """Each loss computed by hand with log_softmax over another axis than the vocabulary (sequence or batch), and
    the splice rescaled to the activation's norm."""
    runs = {
        "clean": [],
        "spliced": [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))],
        "zero_ablated": [(sae.hook_name, lambda a, hook: torch.zeros_like(a))],
    }
    out: dict[str, list[tuple[str, str, Tensor]]] = {k: [] for k in runs}
    names = {0: "batch", 1: "sequence"}
    for key, hooks in runs.items():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, :-1].double()
        for dim, name in names.items():
            lp = logits.log_softmax(dim=dim).gather(-1, tokens[:, 1:, None])
            out[key].append(
                (
                    "softmax_axis",
                    f"that is the cross-entropy with log_softmax over the {name} axis (dim={dim}): normalise over the "
                    "vocabulary, the last axis (log_softmax(dim=-1)), or use model(tokens, return_type='loss')",
                    torch.tensor(float(-lp.mean()), dtype=torch.float64),
                )
            )

    def renorm(a: Tensor, hook: Any) -> Tensor:
        rec = sae.decode(sae.encode(a))
        return rec * a.norm(dim=-1, keepdim=True) / rec.norm(dim=-1, keepdim=True)

    loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, renorm)])
    out["spliced"].append(
        (
            "renormalised_splice",
            "that is the loss with the reconstruction rescaled to the activation's norm: splice in "
            "sae.decode(sae.encode(act)) as it is (its norm is part of what the SAE gets right or wrong)",
            torch.tensor(float(loss), dtype=torch.float64),
        )
    )
    for key, extra in loss_inputs(model, sae, tokens).items():
        out[key] += extra
    return out
