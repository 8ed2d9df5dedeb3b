"""part5b boundary inputs the main checks leave out: two children on with their parent off (absorption_fraction),
an activation exactly equal to the eval threshold (BatchTopKToySAE.encode).

Both run after every other check of their exercise passed, and name a mistake only from what the learner's output
shows on these inputs (re-computed from the named rule)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import expect_matches, fail

__all__ = ["eval_tie", "orphan_siblings"]

N_ORPHAN_ROWS = 3  # examples per (instance, parent) with two children on and the parent off


def _cos(W_dec: Tensor, W_feat: Tensor) -> Tensor:
    d = W_dec / W_dec.norm(dim=-1, keepdim=True)
    f = W_feat / W_feat.norm(dim=1, keepdim=True)
    return torch.einsum("isd,idf->isf", d, f)


def orphan_siblings(impl: Callable, case: tuple[Tensor, ...], parent_of: list[int], device: torch.device) -> None:
    """The hand-built case (binary features) plus, per instance and parent, N_ORPHAN_ROWS examples in which two of
    the parent's children fire and the parent does not, with a carrier of the parent active and the parent's latent
    off. A child without its parent is an allowed input (the hand-built case has one); these examples are not cases,
    so the right fractions don't move. A count of the family's active features (parent + children > 1) counts them."""
    features, acts, W_dec, W_feat = (t.detach().cpu() for t in case)
    cos = _cos(W_dec, W_feat)
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    n_inst = features.shape[1]
    rows_f, rows_a = [], []
    for p in parents:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        if len(kids) < 2:
            continue
        f_rows = torch.zeros(N_ORPHAN_ROWS, n_inst, features.shape[-1])
        f_rows[:, :, kids[:2]] = 1.0
        a_rows = torch.zeros(N_ORPHAN_ROWS, n_inst, acts.shape[-1])
        for i in range(n_inst):
            own = int(cos[i, :, p].argmax())
            ranked = [int(s) for s in cos[i, :, kids[0]].argsort(descending=True)]
            carrier = next((s for s in ranked if s != own and cos[i, s, p] >= 0.35), None)
            if carrier is None:
                return
            a_rows[:, i, carrier] = 1.0
        rows_f.append(f_rows)
        rows_a.append(a_rows)
    if not rows_f:
        return
    features = torch.cat([features, *rows_f]).to(device)
    acts = torch.cat([acts, *rows_a]).to(device)
    W_dec, W_feat = W_dec.to(device), W_feat.to(device)
    out = impl(features.clone(), acts.clone(), W_dec.clone(), W_feat.clone(), list(parent_of), cos_threshold=0.3)
    expected = ref.absorption_fraction(features, acts, W_dec, W_feat, parent_of, 0.3)
    if not isinstance(out, Tensor) or out.shape != expected.shape:
        return
    got = out.detach().to(expected.dtype)
    if torch.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
        return
    fractions = []  # the fractions with a case = the family's values summing to more than 1
    for p in parents:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        family = features[..., p] + features[..., kids].sum(-1)
        cases = family > 1
        own = _cos(W_dec, W_feat)[:, :, p].argmax(-1)
        carriers = _cos(W_dec, W_feat)[:, :, p] >= 0.3
        carriers[torch.arange(n_inst), own] = False
        off = acts.gather(-1, own.expand(acts.shape[0], -1).unsqueeze(-1)).squeeze(-1) == 0
        carried = ((acts > 0) & carriers).any(-1)
        fractions.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    counted = torch.stack(fractions, -1).to(expected.dtype)
    what = (
        f"absorption_fraction on the hand-built case plus {N_ORPHAN_ROWS} examples per instance and parent in which "
        "two of the parent's children fire with the parent OFF (binary features; the parent's latent off, a carrier "
        "of the parent on)"
    )
    seen = (
        f"{what}: your fractions moved (inst 0: {[round(v, 4) for v in got[0].tolist()]}), the right ones don't "
        f"({[round(v, 4) for v in expected[0].tolist()]}): examples without the parent are not cases"
    )
    if torch.allclose(got, counted, rtol=1e-4, atol=1e-5):
        fail(
            seen + "; yours equal the fractions with a case = features[p] + the sum of its children's > 1 (a count "
            "of the family's active features, which is >= 2 with two children and no parent)",
            "a case has the parent itself on AND at least one child on: (features[..., p] > 0) & "
            "(features[..., children] > 0).any(-1); a sum of the family's values equals this only when a child never "
            "fires without its parent",
            code="cases_by_count",
        )
    fail(
        seen,
        "a case has the parent itself on AND at least one child on: (features[..., p] > 0) & "
        "(features[..., children] > 0).any(-1); children firing without the parent don't make a case",
        code="orphan_children",
    )


def eval_tie(make_sae: Callable[[], ref.BatchTopKToySAE], device: torch.device) -> None:
    """Eval mode with activations EXACTLY equal to the threshold: dyadic weights and inputs (multiples of 1/8, small),
    so every order of summation gives the same float32 value, and a tie in each instance. The contract keeps the
    activations ABOVE the threshold: an activation equal to it is dropped."""
    sae = make_sae()
    n_inst, d_in, d_sae = sae.W_enc.shape
    gen = torch.Generator().manual_seed(46)
    W_enc = torch.randint(-2, 3, (n_inst, d_in, d_sae), generator=gen).float() / 2
    b_dec = torch.randint(-2, 3, (n_inst, d_in), generator=gen).float() / 4
    h = torch.randint(-4, 5, (6, n_inst, d_in), generator=gen).float() / 4
    th = torch.tensor([0.5, 0.25, 0.75, 1.0, 0.125, 0.375])[:n_inst].repeat((n_inst + 5) // 6)[:n_inst]
    lin = torch.einsum("bid,ids->bis", h - b_dec, W_enc)
    b_enc = th[:, None] - lin[0]  # example 0: every latent exactly at its instance's threshold
    b_enc[:, ::2] += 0.5  # half of them above it instead
    with torch.no_grad():
        sae.W_enc.copy_(W_enc.to(sae.W_enc.device))
        sae.b_enc.copy_(b_enc.to(sae.b_enc.device))
        sae.b_dec.copy_(b_dec.to(sae.b_dec.device))
        sae.threshold.copy_(th.to(sae.threshold.device))
    sae.eval()
    pre = F.relu(lin + b_enc).to(device)
    th = th.to(device)
    out = sae.encode(h.to(device))
    if not isinstance(out, Tensor) or out.shape != pre.shape:
        return
    expected = pre * (pre > th[:, None])
    ties = int((pre == th[:, None]).sum())
    expect_matches(
        out.detach().to(pre.dtype),
        expected,
        f"encode(h) in eval mode with {ties} activations exactly equal to their instance's threshold (e.g. "
        f"{th[0].item():g} in instance 0; dyadic weights, so the value is exact)",
        [
            (
                "eval_tie_kept",
                "your output keeps the activations EQUAL to the threshold (pre >= threshold): eval mode keeps the "
                "activations strictly ABOVE it, relu(pre) where relu(pre) > threshold",
                pre * (pre >= th[:, None]),
            )
        ],
        dims="batch inst d_sae",
        hint="eval mode: relu(pre) where relu(pre) > threshold (strictly), 0 elsewhere",
        code="eval_tie",
    )
