"""Transcoder copies that part 6b's shipped transcoder and the small synthetic one never are, and what they expose.

- `with_negative_thresholds`: the contract's gate is `acts = pre · [pre > threshold]` for any threshold; every
  transcoder elsewhere in the tests has positive thresholds, where `relu(pre) · [pre > threshold]` is the same gate.
  With some thresholds below zero, pre in (threshold, 0) passes the gate with a NEGATIVE value: only the ReLU differs.
- `centred_input`: the input re-centred over d_in (an LN habit), fed to the encoder alone or also to the skip.
- `recovered_outside_unit`: replacement_losses on the transcoder with its output negated, a replacement far worse
  than zero-ablation, so `recovered` is below 0: a `recovered` clipped to [0, 1] shows there only.
- `skip_written`: the zero-ablated loss with the skip term `tc.skip(x)` written at the MLP's output.
The shared transcoder is never edited: every probe works on a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import expect_dict, fail, returned
from tests.part6b_circuits_sensitivity import KEYS, scaled_transcoder
from utils.transcoder import Transcoder


def with_negative_thresholds(tc: Transcoder) -> Transcoder:
    """A copy of tc with every third latent's threshold (from latent 1) moved below zero (to -0.3 - its old value):
    pre in (threshold, 0) then passes the gate with its negative value."""
    d = lambda t: None if t is None else t.detach().clone()
    threshold = d(tc.threshold)
    threshold[1::3] = -0.3 - threshold[1::3].abs()  # latent 0 keeps its own (a shared-threshold slip reads it)
    return Transcoder(
        d(tc.W_enc),
        d(tc.b_enc),
        d(tc.W_dec),
        d(tc.b_dec),
        threshold,
        d(tc.W_skip),
        hook_name=tc.hook_name,
        hook_name_out=tc.hook_name_out,
    ).to(tc.W_enc.device)


def _outs(tc: Transcoder, x: Tensor, acts: Tensor, x_skip: Tensor) -> Tensor:
    return acts @ tc.W_dec + tc.b_dec + (0 if tc.W_skip is None else x_skip @ tc.W_skip.T)


def gate_readings(tc: Transcoder, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out): a ReLU before the jump gate (a re-centred input is one of `forward_normalised`'s)."""
    pre = x @ tc.W_enc + tc.b_enc
    relu_gate = torch.relu(pre) * (pre > tc.threshold)
    n_neg = int((tc.threshold < 0).sum())
    return [
        (
            "relu_gate",
            f"your gate also applies a ReLU (relu(pre) · [pre > threshold]), or, when the acts you return are right, "
            f"the decoder reads relu(acts) (e.g. acts.clamp_min(0) @ W_dec): the same only when every threshold is "
            f"positive; this transcoder has {n_neg} negative thresholds, where a pre-activation between the threshold "
            "and 0 passes the gate with its negative value and reaches the decoder as it is: acts = pre · "
            "[pre > threshold], out = acts @ W_dec + …, no ReLU",
            relu_gate,
            _outs(tc, x, relu_gate, x),
        ),
        *[
            (
                "encoder_normalised",
                f"your pre-activations use W_enc with unit-norm {part} (W_enc / W_enc.norm(dim={dim})), an SAE habit: "
                "a transcoder's encoder is used as it is, pre = x @ W_enc + b_enc",
                acts,
                _outs(tc, x, acts, x),
            )
            for dim, part in ((0, "columns"), (1, "rows"))
            for pre_n in [x @ (tc.W_enc / tc.W_enc.norm(dim=dim, keepdim=True)) + tc.b_enc]
            for acts in [pre_n * (pre_n > tc.threshold)]
        ],
    ]


def recovered_outside_unit(impl: Callable, model: Any, tc: Transcoder, tokens: Tensor, reference: Callable) -> None:
    """replacement_losses with the transcoder's output negated: far worse than zero-ablation, so recovered < 0.
    The three losses are checked elsewhere; here a wrong `recovered` alone is named (clipped to [0, 1] or not)."""
    probe = scaled_transcoder(tc, -1.0)
    exp = reference(model, probe, tokens)
    if not exp["recovered"] < -0.05:  # the probe exists to put recovered outside [0, 1]
        return
    out = returned(impl(model, probe, tokens.clone()), "replacement_losses(...) with a negated transcoder")
    expect_dict(out, "replacement_losses", KEYS)
    close = lambda a, b: abs(a - b) <= 1e-4 * abs(b) + 1e-5
    got = {k: float(out[k]) for k in KEYS}
    if close(got["recovered"], exp["recovered"]) or not all(close(got[k], exp[k]) for k in KEYS[:3]):
        return  # right, or a loss is wrong: the losses are the probes' business elsewhere
    said = (
        f"with the transcoder's output negated (a replacement worse than zero-ablation: replaced "
        f"{exp['replaced']:.4f} > zero-ablated {exp['zero_ablated']:.4f}), recovered = {got['recovered']:.4f}, "
        f"expected {exp['recovered']:.4f}"
    )
    if got["recovered"] in (0.0, 1.0) or close(got["recovered"], 0.0):
        fail(
            said + ": your recovered was clipped to [0, 1]",
            "recovered = (zero - replaced) / (zero - clean) as it is, no clamp: it is below 0 when the replacement "
            "is worse than removing the MLP, and above 1 when it beats the real MLP; both are findings to report",
            code="recovered_clamped",
        )
    fail(said + "; your three losses are right", "recovered = (zero - replaced) / (zero - clean)", "recovered_formula")


def skip_written(model: Any, tc: Transcoder, tokens: Tensor, got: float, want: float, close: Callable, loss) -> None:
    """Fails when the zero-ablated loss is the loss with tc.skip(x) written at the MLP's output."""
    if tc.W_skip is None:
        return
    seen: dict = {}
    hooks = [
        (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
        (tc.hook_name_out, lambda a, hook: tc.skip(seen["x"]).to(a.dtype)),
    ]
    if close(got, loss(model, tokens, hooks)):
        fail(
            f"zero-ablated loss {got:.5f}, expected {want:.5f}: that is the loss with the transcoder's skip term "
            "tc.skip(x) = x @ W_skip.T written at the MLP's output",
            "zero-ablation removes the MLP's output entirely, its linear part too: write zeros "
            "(`torch.zeros_like(act)`) at tc.hook_name_out",
            code="ablation_skip",
        )
