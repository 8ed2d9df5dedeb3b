"""Section 7 read-backs: a wrong argmax target's shape or labelling rule, a loss's error on `gather`, and the loss
on a confident misprediction (where an eps inside the log shows), each named only when the learner's own output or
failing line reproduces it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import Tensor

from solutions import part7_open_problems as ref
from tests.checking import fail
from tests.learner_errors import failing_line
from tests.part7_open_problems_confident import logit_clamp, loss_with, observed
from utils.part7_open_problems import NO_LABEL


def argmax_dropped_rows(got: object, expected: Tensor, what: str) -> None:
    """A 1-D result with as many entries as there are labelled examples: the unlabelled ones were left out."""
    if not isinstance(got, Tensor) or got.ndim != 1 or expected.ndim < 2:
        return
    labelled = expected != NO_LABEL
    n = int(labelled.sum())
    if got.numel() != n or n == expected.numel():
        return
    same = torch.equal(got.detach().cpu().long(), expected[labelled].cpu())
    fail(
        f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}: its {n} entries are as many as "
        f"the labelled examples" + (", and they are their labels in order" if same else ""),
        (
            "the unlabelled examples were dropped (boolean indexing such as labels[present] keeps only"
            if same
            else "were the unlabelled examples dropped (e.g. boolean indexing labels[present] keeps only"
        )
        + f" the True rows, flattened){'' if same else '?'}. Keep every example in its place, [... inst], and mark "
        f"those with no feature NO_LABEL = {NO_LABEL}: torch.where(present, argmax, {NO_LABEL})",
        code="argmax_dropped_rows",
    )


def argmax_labelling(got: Tensor, expected: Tensor, features: Tensor, what: str) -> None:
    """The labels right wherever there is one, but NO_LABEL on the wrong rows: only the empty rows' labels wrong, or
    rows labelled only from some number k > 1 of present features on (read back: the smallest k that reproduces)."""
    empty = expected == NO_LABEL
    if torch.equal(got[~empty], expected[~empty]) and not torch.equal(got[empty], expected[empty]):
        fail(
            f"{what}: examples with no feature present should get the label {NO_LABEL}",
            "your rows with no feature present got label 0: either no presence test (argmax of an all-zero row is "
            "0), or one that also holds on a row of zeros (such as (x >= 0).any(-1)); mark the rows where "
            "(x != 0).any(-1) is False with NO_LABEL = -1, e.g. torch.where"
            if bool((got[empty] == 0).all())
            else "argmax of an all-zero row is 0; mark such rows with NO_LABEL = -1 (e.g. torch.where)",
            code="argmax_empty",
        )
    count = (features != 0).sum(-1)
    for k in range(2, features.shape[-1]):  # k = every feature is .all(-1): the catalogue names it
        rule = torch.where(count >= k, expected, NO_LABEL)
        if torch.equal(got, rule) and not torch.equal(rule, expected):
            one = (count == 1) & (got == NO_LABEL)
            fail(
                f"{what}: {int(one.sum())} examples with exactly one feature present got {NO_LABEL}; your labels "
                f"are the right ones where at least {k} features are present, {NO_LABEL} elsewhere",
                f"an example has a label as soon as ONE feature is present: (features != 0).any(-1), or a count "
                f">= 1 / > 0 (yours needs {k}: a `> {k - 1}` or `>= {k}` where `> 0` was meant?)",
                code="argmax_min_count",
            )


def loss_call(impl: Callable, args: tuple[Tensor, ...]) -> object:
    """impl(*copies); a RuntimeError on a line with `.gather(` gets a hint naming the gathered tensor's shape."""
    try:
        return impl(*(t.clone() for t in args))
    except RuntimeError as err:
        frame, line, _ = failing_line(err)
        match = re.search(r"([A-Za-z_]\w*)\s*\.gather\(|torch\.gather\(\s*([A-Za-z_]\w*)", line)
        source = frame.f_locals.get(match[1] or match[2]) if frame is not None and match else None
        if not isinstance(source, Tensor):
            raise
        name, shape, importance = match[1] or match[2], list(source.shape), args[2]
        is_importance = source.shape == importance.shape and torch.equal(source.detach().cpu(), importance.cpu())
        fail(
            f"cross_entropy_loss raised {type(err).__name__}: {str(err).splitlines()[0]}; on that line `{name}` "
            f"{shape}" + (" (importance, [inst classes])" if is_importance else "") + " is gathered from",
            "gather(dim, index) needs an index with as many dims as the tensor it reads, no larger on the other "
            "dims"
            + (
                ": importance is [inst classes] and the labels [batch inst], so expand it to the logits' shape first, "
                "importance.expand_as(logits).gather(-1, labels.clamp(min=0)[..., None])[..., 0] (or index it as "
                "importance[torch.arange(n_inst), labels.clamp(min=0)])"
                if is_importance
                else f"; `{name}` is {shape}: give the index the same number of dims (e.g. labels[..., None])"
            ),
            code="gather_index",
        )


def _eps_loss(logits: Tensor, labels: Tensor, importance: Tensor, eps: float, clamp: bool) -> Tensor:
    p = logits.double().softmax(-1)
    logp = (p.clamp(min=eps) if clamp else p + eps).log()
    valid = labels != NO_LABEL
    index = labels.clamp(min=0)[..., None]
    nll = -logp.gather(-1, index)[..., 0]
    weight = importance.double().expand_as(p).gather(-1, index)[..., 0]
    return (torch.where(valid, weight * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()


def confident_misprediction(value: Callable, device: torch.device) -> None:
    """The loss on logits with confident wrong predictions (−log p ≈ 30 and 40), which the main inputs' mild logits
    never reach: an eps inside the log, log(softmax + eps) or log(softmax.clamp(min=eps)), caps −log p at −log(eps);
    the eps is read back (bisection: the loss falls as eps grows) and named only when it reproduces the output."""
    g = torch.Generator().manual_seed(11)
    batch, n_inst, n_classes = 5, 2, 4
    logits = torch.randn(batch, n_inst, n_classes, generator=g) * 0.5
    logits[0, 0] = torch.tensor([30.0, 0.0, 0.0, 0.0])
    logits[3, 1] = torch.tensor([0.0, -2.0, 40.0, 1.0])
    logits[4, 0] = torch.tensor([0.0, 0.0, 31.0, 30.0])
    labels = torch.tensor([[1, 2], [0, NO_LABEL], [NO_LABEL, 3], [2, 0], [3, 1]])
    importance = torch.tensor([[0.7, 1.3, 0.4, 2.1], [1.6, 0.9, 0.25, 1.1]])
    args = (logits.to(device), labels.to(device), importance.to(device))
    got = value(*args).detach().double().cpu()
    want = ref.cross_entropy_loss(logits.double(), labels, importance.double())
    if bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5)):
        return
    seen = (
        f"on logits with confident wrong predictions (instance 0, example 0: logits [30, 0, 0, 0], label 1) the loss "
        f"is {got.item():.6g}, expected {want.item():.6g}"
    )
    # One scalar fits any eps: eps is read back from instance 0 alone and must also give instance 1 alone (whose
    # only confident example has −log p = 40) and the total. Instance 0 also has logits [0, 0, 31, 30] with the
    # label 3 (right −log p ≈ 1.31), which a clamp of the logits changes and an eps does not.
    one = lambda k, t: t[:, k : k + 1] if t.ndim == 3 or t is labels else t[k : k + 1]
    parts = [(one(k, logits), one(k, labels), one(k, importance)) for k in range(n_inst)]
    seen_parts = [value(*(t.to(device) for t in part)).detach().double().cpu() for part in parts]
    found = []
    for clamp in (False, True):
        loss_at = lambda e, part, c=clamp: float(_eps_loss(*part, 10**e, c))
        lo, hi = -20.0, -1.0  # log10 eps; the loss falls as eps grows
        if not loss_at(hi, parts[0]) <= seen_parts[0].item() <= loss_at(lo, parts[0]):
            continue
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if loss_at(mid, parts[0]) > seen_parts[0].item() else (lo, mid)
        eps = 10**lo
        pairs = [*zip(seen_parts, parts, strict=True), (got, (logits, labels, importance))]
        if all(math.isclose(o.item(), loss_at(lo, part), rel_tol=1e-4, abs_tol=1e-5) for o, part in pairs):
            found.append((eps, f"log(softmax.clamp(min={eps:.2g}))" if clamp else f"log(softmax + {eps:.2g})"))
    if found:
        eps = found[0][0]
        fail(
            f"{seen}: it is the loss with {' or '.join(f for _, f in found)} in place of log_softmax (same result "
            f"here), whose −log p is capped near −log({eps:.2g}) = {-math.log(eps):.4g} (that example's right −log p "
            f"is 30; read back from instance 0 alone, and reproducing instance 1 alone and the total)",
            "an eps (or clamp) inside the log changes the loss exactly where the model is confidently wrong: use "
            "logits.log_softmax(-1) (or F.cross_entropy), which is exact and stable without one",
            code="log_eps",
        )
    whole = (logits, labels, importance)
    clamp_text = logit_clamp(parts, seen_parts, whole, got)
    if clamp_text:
        fail(
            f"{seen}: it is the loss with {clamp_text} before log_softmax (read back: it reproduces instance 0 "
            "alone, instance 1 alone and the total; your loss is right on the milder logits)",
            "a clamp of the logits changes the loss exactly where the model is confidently wrong: use "
            "logits.log_softmax(-1) (e.g. F.cross_entropy) on the logits as they are",
            code="confident_mistake",
        )
    fail(
        observed(seen, seen_parts, [loss_with(part, lambda z: z) for part in parts]),
        "the contract is the exact −log softmax at every logit size: logits.log_softmax(-1) (or F.cross_entropy) is "
        "exact and stable; compare your steps with it on these logits",
        code="confident_mistake",
    )
