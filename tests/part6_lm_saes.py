"""Checkers for part 6 (SAEs in a language model).

Every exercise here is deterministic, so each checker runs the learner's function and the reference
(`solutions.part6_lm_saes`) on the same inputs and compares them with tolerances loose enough for any
equivalent order of operations. The inputs are the shipped model and SAE (both have non-zero biases
everywhere) on a few held-out sequences, so nothing is trained or downloaded.

When the output is wrong, the checker also computes the outputs of the common mistakes and names the
one that matches, so the hint says what went wrong rather than only that something did.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part6_lm_saes as ref
from tests.checking import checker, expect_close, expect_tensor, fail, returned
from utils import lm

RTOL, ATOL = 1e-4, 1e-5


# --------------------------------------------------------------------------------------------
# Shared inputs
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _setup(device_str: str) -> tuple[Any, lm.LMSAE, Tensor]:
    device = torch.device(device_str)
    model = lm.load_model(device=device)
    sae = lm.load_sae(device=device)
    tokens = lm.load_eval_tokens(device, n_seq=16)
    return model, sae, tokens


def _inputs(device: torch.device) -> tuple[Any, lm.LMSAE, Tensor]:
    """The shipped model, SAE and 16 held-out sequences on `device` (loaded once per device)."""
    return _setup(str(device))


def _no_grad(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def run(impl: Any, device: torch.device) -> Any:
        with torch.no_grad():
            return fn(impl, device)

    return run


def _close(a: Tensor, b: Tensor, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.float(), b.to(a.device).float(), rtol=rtol, atol=atol))


def _diagnose(actual: Tensor, mistakes: list[tuple[Tensor, str, str, str]], rtol: float = RTOL, atol: float = ATOL):
    """Fail with the first mistake whose output `actual` matches: (output, code, message, hint)."""
    for output, code, message, hint in mistakes:
        if _close(actual, output, rtol, atol):
            fail(message, hint, code=code)


def _mlp_acts(model, sae, tokens: Tensor, hook_name: str | None = None) -> Tensor:
    name = hook_name or sae.hook_name
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name]


def _float(value: Any, what: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            fail(
                f"{what} should be a single number, got a tensor of shape {tuple(value.shape)}",
                "reduce to one number (the loss is already a mean) and call .item()",
                code="not_scalar",
            )
        value = value.item()
    if not isinstance(value, int | float):
        fail(f"{what} should be a float, got {type(value).__name__}", "return Python floats", code="not_float")
    return float(value)


# --------------------------------------------------------------------------------------------
# Exercise 1
# --------------------------------------------------------------------------------------------
@checker("latent_frequencies")
@_no_grad
def test_latent_frequencies(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens = tokens[:10, :48]  # 10 sequences in batches of 4: the last batch is partial
    out = expect_tensor(
        impl(model, sae, tokens, batch_size=4),
        "latent_frequencies(...)",
        shape=(sae.d_sae,),
        dims="d_sae",
        device=device,
    )
    if not out.is_floating_point():
        fail(
            f"the frequencies have dtype {out.dtype}, expected a float tensor",
            "divide a float count (e.g. `(acts > 0).float().sum(...)`) by the number of tokens",
            code="dtype",
        )
    expected = ref.latent_frequencies(model, sae, tokens, batch_size=4)
    if _close(out, expected, atol=1e-6):
        return f"{int((expected == 0).sum())} of {sae.d_sae} latents silent on this small sample"
    acts = sae.encode(_mlp_acts(model, sae, tokens))
    n_tok = acts[:, 1:].shape[0] * acts[:, 1:].shape[1]
    pre = sae.encode(_mlp_acts(model, sae, tokens, "blocks.0.mlp.hook_pre"))[:, 1:]
    _diagnose(
        out,
        [
            (
                (acts > 0).float().mean((0, 1)),
                "bos",
                "the frequencies match counting position 0 (BOS) too",
                "leave out position 0 of every sequence: `acts[:, 1:]`",
            ),
            (
                (acts[:, 1:] >= 0).float().mean((0, 1)),
                "threshold",
                "every latent fires on every token in your count",
                "a latent fires when its activation is > 0; after a ReLU every activation is >= 0",
            ),
            (
                acts[:, 1:].mean((0, 1)),
                "mean_activation",
                "the output matches the mean activation, not a frequency",
                "count where the activation is > 0 (`(acts > 0).float()`), then average",
            ),
            (
                (acts[:4, 1:] > 0).float().mean((0, 1)),
                "batches",
                "the frequencies match the first batch only",
                "loop over all of `tokens` in steps of batch_size and accumulate before dividing",
            ),
            (
                (acts[:, 1:] > 0).float().sum((0, 1)),
                "count",
                "the output matches the number of firing tokens",
                f"divide by the number of tokens counted ({n_tok} here)",
            ),
            (
                (acts[:, 1:] > 0).float().sum((0, 1)) / tokens.shape[0],
                "normalisation",
                "the counts are divided by the number of sequences",
                "divide by sequences × positions, not sequences",
            ),
            (
                (pre > 0).float().mean((0, 1)),
                "hook",
                "the frequencies match the SAE applied to hook_pre",
                "read the activations at `sae.hook_name` (the post-GELU activations)",
            ),
        ],
        atol=1e-6,
    )
    expect_close(
        out,
        expected,
        "the frequencies",
        "compare your loop with the docstring: positions >= 1, all batches",
        code="values",
        atol=1e-6,
    )
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 2
# --------------------------------------------------------------------------------------------
KEYS = ("clean", "spliced", "zero_ablated", "recovered")


@checker("reconstruction_losses")
@_no_grad
def test_reconstruction_losses(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens = tokens[:6, :64]
    out = returned(impl(model, sae, tokens), "reconstruction_losses(...)")
    if not isinstance(out, dict):
        fail(
            f"reconstruction_losses should return a dict, got {type(out).__name__}",
            f"return {{{', '.join(repr(k) + ': ...' for k in KEYS)}}}",
            code="not_dict",
        )
    missing = [k for k in KEYS if k not in out]
    if missing:
        fail(f"the dict has no key(s) {missing}; it has {list(out)}", f"use exactly the keys {list(KEYS)}", code="keys")
    got = {k: _float(out[k], f"out[{k!r}]") for k in KEYS}
    exp = ref.reconstruction_losses(model, sae, tokens)
    ok = lambda k, v=None: abs((got[k] if v is None else v) - exp[k]) <= 1e-4 * abs(exp[k]) + 1e-5
    if not ok("clean"):
        fail(
            f"clean loss {got['clean']:.5f}, expected {exp['clean']:.5f}",
            "use the model's own mean loss: `model(tokens, return_type='loss')`",
            code="clean",
        )
    if abs(got["spliced"] - got["clean"]) < 1e-7:
        fail(
            "the spliced loss equals the clean loss: the SAE was not spliced in",
            "the hook function must *return* the reconstruction `sae.decode(sae.encode(act))`",
            code="no_splice",
        )
    if not ok("spliced"):
        fail(
            f"spliced loss {got['spliced']:.5f}, expected {exp['spliced']:.5f}",
            "replace the activations at `sae.hook_name` by the SAE's reconstruction, at every position",
            code="spliced",
        )
    if not ok("zero_ablated"):
        hint = "replace the activations by zeros (`torch.zeros_like(act)`)"
        mean_loss = model.run_with_hooks(
            tokens,
            return_type="loss",
            fwd_hooks=[(sae.hook_name, lambda act, hook: act.mean((0, 1), keepdim=True).expand_as(act))],
        ).item()
        if abs(got["zero_ablated"] - mean_loss) < 1e-4:
            hint = "that is mean-ablation; this exercise asks for zero-ablation: " + hint
        fail(f"zero-ablated loss {got['zero_ablated']:.5f}, expected {exp['zero_ablated']:.5f}", hint, code="ablation")
    r = exp["recovered"]
    if not ok("recovered"):
        inverted = (exp["spliced"] - exp["clean"]) / (exp["zero_ablated"] - exp["clean"])
        ratio = exp["clean"] / exp["spliced"]
        if abs(got["recovered"] - inverted) < 1e-4:
            fail(
                f"recovered is {got['recovered']:.4f}, expected {r:.4f}: you computed the fraction *lost*",
                "recovered = (zero - spliced) / (zero - clean)",
                code="recovered_formula",
            )
        hint = "recovered = (zero - spliced) / (zero - clean)"
        if abs(got["recovered"] - ratio) < 1e-4:
            hint = "clean / spliced is not on the zero-ablation scale: " + hint
        fail(f"recovered is {got['recovered']:.4f}, expected {r:.4f}", hint, code="recovered_formula")
    return f"loss recovered {r:.1%} on this sample"


# --------------------------------------------------------------------------------------------
# Exercise 3
# --------------------------------------------------------------------------------------------
@checker("top_activations")
def test_top_activations(impl: Callable, device: torch.device) -> str:
    n_seq, seq, k = 7, 13, 6
    gen = torch.Generator().manual_seed(0)
    acts = torch.rand(n_seq, seq, generator=gen) * (torch.rand(n_seq, seq, generator=gen) < 0.4)
    acts[:, 0] = 2.0 + torch.rand(n_seq, generator=gen)  # BOS: the largest values, to be ignored
    acts[1, 12], acts[6, 3], acts[0, 5] = 1.9, 1.8, 1.7  # corners that catch a wrong unravel
    acts = acts.to(device)
    before = acts.clone()
    result = returned(impl(acts, k), "top_activations(acts, k)")
    if acts.isinf().any() or not torch.equal(acts, before):
        fail(
            "top_activations changed its input `acts` in place",
            "work on a copy (`acts.clone()`) before masking position 0",
            code="inplace",
        )
    if not isinstance(result, tuple | list) or len(result) != 3:
        fail(
            "top_activations should return a tuple (values, seq_idx, pos_idx)", "return three tensors", code="not_tuple"
        )
    values, seq_idx, pos_idx = result
    values = expect_tensor(values, "values", shape=(k,), dims="k", device=device)
    for name, idx in (("seq_idx", seq_idx), ("pos_idx", pos_idx)):
        expect_tensor(idx, name, shape=(k,), dims="k", device=device)
        if idx.is_floating_point():
            fail(
                f"{name} has dtype {idx.dtype}, expected an integer tensor",
                "use integer division `//` and `%` on the indices returned by topk",
                code="dtype",
            )
    exp_values = ref.top_activations(before, k)[0]
    if bool(torch.isin(values, before[:, 0]).any()):
        fail("a value from position 0 (BOS) was returned", "mask position 0 out before taking the top k", code="bos")
    if _close(values, before[:, 1:].flatten().topk(k, largest=False).values) or _close(values, exp_values.flip(0)):
        fail(
            f"values {values.tolist()} are not the largest in decreasing order",
            "`topk` returns the largest first by default; don't sort ascending",
            code="order",
        )
    per_seq = before[:, 1:].max(1).values.topk(min(k, n_seq)).values
    if _close(values, per_seq) and not _close(values, exp_values):
        fail(
            "the values are one maximum per sequence",
            "take the top k over all (sequence, position) pairs together",
            code="per_sequence",
        )
    expect_close(
        values, exp_values, "values", "the k largest activations at positions >= 1, largest first", code="values"
    )
    if not torch.equal(before[seq_idx.long(), pos_idx.long()], values):
        fail(
            "acts[seq_idx, pos_idx] does not give back the values",
            f"turn a flat index i into (i // seq_len, i % seq_len); seq_len = acts.shape[1] = {seq}",
            code="unravel",
        )
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 4
# --------------------------------------------------------------------------------------------
@checker("latent_logit_effect")
@_no_grad
def test_latent_logit_effect(impl: Callable, device: torch.device) -> str:
    model, sae, _ = _inputs(device)
    for latent in (3, 100, sae.d_sae - 1):
        out = expect_tensor(
            impl(model, sae, latent),
            f"latent_logit_effect(model, sae, {latent})",
            shape=(model.cfg.d_vocab,),
            dims="d_vocab",
            device=device,
        )
        expected = ref.latent_logit_effect(model, sae, latent)
        if _close(out, expected, rtol=1e-3, atol=1e-4):
            continue
        W_U, W_out = model.W_U, model.W_out[0]
        _diagnose(
            out,
            [
                (
                    sae.W_enc[:, latent] @ W_out @ W_U,
                    "encoder",
                    "this is the encoder column's effect",
                    "a latent *writes* with its decoder row `sae.W_dec[latent]`; the encoder only reads",
                ),
                (
                    (sae.W_dec[latent] + sae.b_dec) @ W_out @ W_U,
                    "bias",
                    "the decoder bias b_dec is included",
                    "b_dec is added whether or not the latent fires: leave it out",
                ),
                (
                    sae.W_dec[latent] @ W_out @ W_U + model.b_out[0] @ W_U,
                    "bias",
                    "the MLP's output bias is included",
                    "b_out is added whether or not the latent fires: leave it out",
                ),
                (
                    sae.W_dec[latent] @ W_out @ model.W_E.T,
                    "embed",
                    "the embedding was used instead of the unembedding",
                    "the logits come from `model.W_U` [d_model d_vocab]; this model's W_E is a different matrix",
                ),
                (
                    sae.W_dec[latent] @ model.W_in[0].T @ W_U,
                    "w_in",
                    "W_in transposed was used instead of W_out",
                    "the MLP writes to the residual stream with `model.W_out[0]` [d_mlp d_model]",
                ),
                (
                    (sae.W_dec[latent] @ W_out @ W_U).softmax(-1),
                    "softmax",
                    "the output is a probability distribution",
                    "return the raw change in logits, no softmax",
                ),
            ],
            rtol=1e-3,
            atol=1e-4,
        )
        expect_close(
            out,
            expected,
            f"the logit effect of latent {latent}",
            "W_dec[latent] @ W_out[0] @ W_U",
            code="values",
            rtol=1e-3,
            atol=1e-4,
        )
    return ""


# --------------------------------------------------------------------------------------------
# Exercise 5
# --------------------------------------------------------------------------------------------
def _run(model, name: str, fn: Callable, tokens: Tensor) -> Tensor:
    return model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])


def _busy_latent(model, sae, tokens: Tensor) -> int:
    """A latent that fires on many (but not all) positions of `tokens`, so its ablation shows."""
    freq = (sae.encode(_mlp_acts(model, sae, tokens))[:, 1:] > 0).float().mean((0, 1))
    return int(torch.where(freq < 0.5, freq, torch.zeros_like(freq)).argmax())


@checker("steer_with_latent")
@_no_grad
def test_steer_with_latent(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens, latent, coeff = tokens[:3, :24], 7, 2.5
    out = expect_tensor(
        impl(model, sae, tokens, latent, coeff),
        "steer_with_latent(...)",
        shape=(*tokens.shape, model.cfg.d_vocab),
        dims="batch seq d_vocab",
        device=device,
    )
    expected = ref.steer_with_latent(model, sae, tokens, latent, coeff)
    if _close(out, expected, rtol=1e-4, atol=1e-4):
        return ""
    d, name = sae.W_dec[latent], sae.hook_name

    def last_only(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, -1] += coeff * d
        return act

    _diagnose(
        out,
        [
            (model(tokens), "noop", "the logits are unchanged", "the hook must *return* the modified activation"),
            (
                _run(model, name, lambda a, hook: a + coeff * sae.W_enc[:, latent], tokens),
                "encoder",
                "the encoder column was added",
                "steer along the decoder row `sae.W_dec[latent]`",
            ),
            (
                _run(model, name, lambda a, hook: a + d, tokens),
                "coeff",
                "the steering vector was not scaled",
                "add `coeff * sae.W_dec[latent]`",
            ),
            (
                _run(model, name, last_only, tokens),
                "positions",
                "only the last position was steered",
                "add the vector at every position: it broadcasts over [batch seq]",
            ),
            (
                _run(model, "blocks.0.mlp.hook_pre", lambda a, hook: a + coeff * d, tokens),
                "hook",
                "the vector was added before the GELU (hook_pre)",
                "hook `sae.hook_name`, where the SAE reads",
            ),
            (expected.log_softmax(-1), "logits", "these are log-probabilities", "return the logits themselves"),
        ],
        rtol=1e-4,
        atol=1e-4,
    )
    expect_close(
        out,
        expected,
        "the steered logits",
        "add coeff * W_dec[latent] at sae.hook_name, every position",
        code="values",
        rtol=1e-4,
        atol=1e-4,
    )
    return ""


@checker("ablate_latent")
@_no_grad
def test_ablate_latent(impl: Callable, device: torch.device) -> str:
    model, sae, tokens = _inputs(device)
    tokens = tokens[:3, :32]
    latent = _busy_latent(model, sae, tokens)
    out = expect_tensor(
        impl(model, sae, tokens, latent),
        "ablate_latent(...)",
        shape=(*tokens.shape, model.cfg.d_vocab),
        dims="batch seq d_vocab",
        device=device,
    )
    expected = ref.ablate_latent(model, sae, tokens, latent)
    if _close(out, expected, rtol=1e-4, atol=1e-4):
        return f"latent {latent} ablated"
    d, name = sae.W_dec[latent], sae.hook_name

    def recon_without(act: Tensor, hook: Any) -> Tensor:
        f = sae.encode(act)
        f[..., latent] = 0
        return sae.decode(f)

    def f_of(act: Tensor) -> Tensor:
        return sae.encode(act)[..., latent, None]

    _diagnose(
        out,
        [
            (model(tokens), "noop", "the logits are unchanged", "the hook must *return* the modified activation"),
            (
                _run(model, name, recon_without, tokens),
                "error_term",
                "the activations were replaced by the SAE reconstruction without the latent",
                "subtract only the latent's term from the real activation, so the SAE's error term is kept",
            ),
            (
                _run(model, name, lambda a, hook: a - d, tokens),
                "scale",
                "the decoder row was subtracted unscaled",
                "subtract `f[..., None] * W_dec[latent]`, where f is the latent's activation at each position",
            ),
            (
                _run(model, name, lambda a, hook: a - f_of(a) * sae.W_enc[:, latent], tokens),
                "encoder",
                "the encoder column was subtracted",
                "the latent's contribution is along its decoder row",
            ),
            (
                _run(model, name, lambda a, hook: a - f_of(a) * d - sae.b_dec, tokens),
                "bias",
                "b_dec was subtracted too",
                "only the latent's own term f · W_dec[latent] goes",
            ),
        ],
        rtol=1e-4,
        atol=1e-4,
    )
    expect_close(
        out,
        expected,
        "the ablated logits",
        "x ↦ x - f_latent(x) · W_dec[latent] at sae.hook_name",
        code="values",
        rtol=1e-4,
        atol=1e-4,
    )
    return f"latent {latent} ablated"
