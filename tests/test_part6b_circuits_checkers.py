"""Proofs for the part 6b checkers: correct variants (written differently) pass, realistic bugs fail with their
code, stubs say "not implemented yet", malformed outputs get one line; and every checker's catalogue of
mistakes is distinguishable on the checker's own inputs."""

from __future__ import annotations

import functools
import itertools

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
import tests.part6b_circuits_mistakes as mistakes
from solutions import part6b_circuits as ref
from tests.proving import assert_fails, assert_not_done, assert_passes, stub
from utils import part6b_circuits as circuits


# --------------------------------------------------------------------------------------------
# Exercise 1: transcoder_forward
# --------------------------------------------------------------------------------------------
def fwd_einsum(tc, x):
    pre = einops.einsum(x, tc.W_enc, "... i, i s -> ... s") + tc.b_enc
    acts = (pre > tc.threshold).to(pre.dtype) * pre
    out = einops.einsum(acts, tc.W_dec, "... s, s o -> ... o") + tc.b_dec
    return acts, out if tc.W_skip is None else out + F.linear(x, tc.W_skip)


def fwd_relu_mask(tc, x):
    pre = torch.addmm(tc.b_enc, x.reshape(-1, tc.d_in), tc.W_enc).reshape(*x.shape[:-1], -1)
    acts = torch.relu(pre) * (pre > tc.threshold)  # the same for positive thresholds only: a slip (relu_gate)
    out = acts @ tc.W_dec + tc.b_dec
    skip = x @ tc.W_skip.T if tc.W_skip is not None else torch.zeros_like(out)
    return acts, out + skip


def fwd_methods(tc, x):
    return tc.encode(x), tc(x)


def _fwd_bug(code):
    def impl(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        th = tc.threshold
        acts = pre * (pre > th)
        if code == "relu":
            acts = torch.relu(pre)
        elif code == "shifted":
            acts = torch.relu(pre - th)
        elif code == "binary":
            acts = (pre > th).float()
        elif code == "b_dec_input":
            p = (x - tc.b_dec) @ tc.W_enc + tc.b_enc
            acts = p * (p > th)
        elif code == "b_enc":
            p = x @ tc.W_enc
            acts = p * (p > th)
        elif code == "threshold_scalar":
            acts = pre * (pre > th[0])
        out = (pre if code == "no_nonlinearity" else acts) @ tc.W_dec + (0 if code == "b_dec" else tc.b_dec)
        if tc.W_skip is not None and code != "skip":
            out = out + (x @ tc.W_skip if code == "skip_transposed" else x @ tc.W_skip.T)
        return (out, acts) if code == "swapped" else (acts, out)

    return impl


FWD_BUGS = [
    "relu",
    "shifted",
    "binary",
    "b_dec_input",
    "b_enc",
    "threshold_scalar",
    "b_dec",
    "no_nonlinearity",
    "skip",
    "skip_transposed",
    "swapped",
]


def test_transcoder_forward_correct():
    for impl in (ref.transcoder_forward, fwd_einsum, fwd_methods):
        assert_passes(checks.test_transcoder_forward, impl)


def test_transcoder_forward_relu_mask_differs_below_zero_thresholds():
    assert_fails(checks.test_transcoder_forward, fwd_relu_mask, "relu_gate")


@pytest.mark.parametrize("code", FWD_BUGS)
def test_transcoder_forward_buggy(code):
    assert_fails(checks.test_transcoder_forward, _fwd_bug(code), code)


def test_transcoder_forward_malformed():
    assert_not_done(checks.test_transcoder_forward, stub)
    assert_fails(checks.test_transcoder_forward, lambda tc, x: None, "returned_none")
    assert_fails(checks.test_transcoder_forward, lambda tc, x: [tc.encode(x)], "not_tuple")
    assert_fails(checks.test_transcoder_forward, lambda tc, x: (tc.encode(x) * torch.nan, tc(x)), "not_finite")
    assert_fails(checks.test_transcoder_forward, lambda tc, x: (tc.encode(x).long(), tc(x)), "dtype")
    assert_fails(checks.test_transcoder_forward, lambda tc, x: (tc.encode(x)[..., :5], tc(x)), "shape")
    assert_fails(checks.test_transcoder_forward, "transcoder_forward", "not_a_function")
    assert_fails(checks.test_transcoder_forward, type("NotAFunction", (), {}), "not_a_function")


def test_transcoder_forward_mistakes_are_distinct():
    model, tc, tokens = checks._inputs(torch.device("cpu"))
    _, cache = model.run_with_cache(tokens[:2, :24], names_filter=tc.hook_name, stop_at_layer=1)
    small = mistakes.synthetic_transcoder(torch.device("cpu"))
    x_small = torch.randn(3, 5, small.d_in, generator=torch.Generator().manual_seed(3))
    for t, x in ((tc, cache[tc.hook_name]), (small, x_small)):
        rows = [(c, torch.cat([a.flatten(), o.flatten()])) for c, _, a, o in mistakes.forward_mistakes(t, x)]
        acts, out = ref.transcoder_forward(t, x)
        _distinct(rows, torch.cat([acts.flatten(), out.flatten()]))


def _distinct(rows, reference, rtol=1e-4, atol=1e-4):
    """Every mutant differs from the reference and from every other mutant."""
    for code, value in rows:
        assert not (value.shape == reference.shape and torch.allclose(value, reference, rtol=rtol, atol=atol)), code
    for (c1, v1), (c2, v2) in itertools.combinations(rows, 2):
        assert not (v1.shape == v2.shape and torch.allclose(v1, v2, rtol=rtol, atol=atol)), (c1, c2)


# --------------------------------------------------------------------------------------------
# Exercise 2: replacement_losses
# --------------------------------------------------------------------------------------------
def _losses(model, tc, tokens, read_at=None, write=None, ablate=None, clean=None, recovered=None):
    seen = {}
    read_at = read_at or tc.hook_name
    write = write or (lambda x, a: tc(x))
    hooks = [] if read_at == tc.hook_name_out else [(read_at, lambda a, hook: seen.__setitem__("x", a))]
    hooks.append((tc.hook_name_out, lambda a, hook: write(seen.get("x", a), a)))
    c = clean(model, tokens) if clean else model(tokens, return_type="loss").item()
    r = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
    z = model.run_with_hooks(
        tokens, return_type="loss", fwd_hooks=[(tc.hook_name_out, ablate or (lambda a, hook: a * 0))]
    ).item()
    rec = recovered(c, r, z) if recovered else (z - r) / (z - c)
    return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": rec}


def losses_per_token(model, tc, tokens):
    cache = {}

    def run(hooks):
        return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks).mean().item()

    store = lambda a, hook: cache.update(x=a.clone())
    clean, replaced = (
        run([]),
        run([(tc.hook_name, store), (tc.hook_name_out, lambda a, hook: ref.transcoder_forward(tc, cache["x"])[1])]),
    )
    zero = run([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
    return {
        "clean": clean,
        "replaced": replaced,
        "zero_ablated": zero,
        "recovered": 1 - (replaced - clean) / (zero - clean),
    }


def losses_inplace(model, tc, tokens):
    def write(x, a):
        a[:] = tc(x)
        return a

    return _losses(model, tc, tokens, write=write)


def losses_context(model, tc, tokens):
    box = []
    with model.hooks(
        fwd_hooks=[(tc.hook_name, lambda a, hook: box.append(a)), (tc.hook_name_out, lambda a, hook: tc(box[-1]))]
    ):
        replaced = model(tokens, return_type="loss")
    with model.hooks(fwd_hooks=[(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))]):
        zero = model(tokens, return_type="loss")
    clean, replaced, zero = (float(loss) for loss in (model(tokens, return_type="loss"), replaced, zero))
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_replacement_losses_correct():
    for impl in (ref.replacement_losses, losses_per_token, losses_inplace, losses_context):
        assert_passes(checks.test_replacement_losses, impl)


def test_replacement_losses_buggy():
    check = checks.test_replacement_losses
    assert_fails(check, lambda m, t, x: _losses(m, t, x, read_at=t.hook_name_out), "same_hook")
    assert_fails(check, lambda m, t, x: _losses(m, t, x, read_at="blocks.0.hook_resid_mid"), "input_hook")
    added = lambda tc: lambda x, a: a + tc(x)
    assert_fails(check, lambda m, t, x: _losses(m, t, x, write=added(t)), "added")
    relu = lambda tc: lambda x, a: torch.relu(x @ tc.W_enc + tc.b_enc) @ tc.W_dec + tc.b_dec + tc.skip(x)
    assert_fails(check, lambda m, t, x: _losses(m, t, x, write=relu(t)), "relu")
    assert_fails(check, lambda m, t, x: _losses(m, t, x, write=lambda x_, a: None), "no_splice")
    mean = lambda a, hook: a.mean((0, 1), keepdim=True).expand_as(a)
    assert_fails(check, lambda m, t, x: _losses(m, t, x, ablate=mean), "ablation")
    assert_fails(
        check, lambda m, t, x: _losses(m, t, x, recovered=lambda c, r, z: (r - c) / (z - c)), "recovered_formula"
    )
    skip_first = lambda m, x: m(x, return_type="loss", loss_per_token=True)[:, 1:].mean().item()
    assert_fails(check, lambda m, t, x: _losses(m, t, x, clean=skip_first), "loss_average")  # named since round BA
    half = lambda tc: lambda x, a: 0.5 * (tc(x) + a)
    assert_fails(check, lambda m, t, x: _losses(m, t, x, write=half(t)), "replaced")
    assert_fails(check, lambda m, t, x: {"clean": 1.0, "spliced": 1.0, "zero_ablated": 1.0, "recovered": 1.0}, "keys")


def test_replacement_losses_malformed():
    check = checks.test_replacement_losses
    assert_not_done(check, stub)
    assert_fails(check, lambda m, t, x: None, "returned_none")
    assert_fails(check, lambda m, t, x: (1.0, 2.0, 3.0, 0.5), "not_dict")
    nan = lambda m, t, x: {**ref.replacement_losses(m, t, x), "recovered": float("nan")}
    assert_fails(check, nan, "not_finite")
    assert_fails(check, lambda m, t, x: {k: torch.ones(2) for k in checks.KEYS}, "not_scalar")
    assert_fails(check, lambda m, t, x: {k: "1.0" for k in checks.KEYS}, "not_float")


# --------------------------------------------------------------------------------------------
# Exercise 3: latent_de_embedding and latent_logit_effect
# --------------------------------------------------------------------------------------------
def de_einsum(model, tc, latent):
    return einops.einsum(model.W_E, tc.W_enc[:, latent], "v d, d -> v")


def de_centred(model, tc, latent):
    return (model.W_E - model.W_E.mean(-1, keepdim=True)) @ tc.W_enc[:, latent]


def de_transposed(model, tc, latent):
    return tc.W_enc[:, latent] @ model.W_E.T


def logit_einsum(model, tc, latent):
    return einops.einsum(tc.W_dec[latent], model.W_U, "d, d v -> v")


def logit_centred(model, tc, latent):
    d = tc.W_dec[latent]
    return (d - d.mean()) @ model.W_U


def logit_matvec(model, tc, latent):
    return torch.mv(model.W_U.T, tc.W_dec[latent])


DE_BUGS = {
    "decoder": lambda m, t, i: m.W_E @ t.W_dec[i],
    "unembedding": lambda m, t, i: m.W_U.T @ t.W_enc[:, i],
    "bias": lambda m, t, i: m.W_E @ t.W_enc[:, i] + t.b_enc[i],
    "positional": lambda m, t, i: (m.W_E + m.W_pos[1]) @ t.W_enc[:, i],
    "threshold": lambda m, t, i: m.W_E @ t.W_enc[:, i] - t.threshold[i],
    "softmax": lambda m, t, i: (m.W_E @ t.W_enc[:, i]).softmax(0),
    "logit_effect": lambda m, t, i: t.W_dec[i] @ m.W_U,
    "attention": lambda m, t, i: m.W_E @ torch.einsum("hde,hef->df", m.W_V[0], m.W_O[0]) @ t.W_enc[:, i],
}
LOGIT_BUGS = {
    "encoder": lambda m, t, i: t.W_enc[:, i] @ m.W_U,
    "bias": lambda m, t, i: (t.W_dec[i] + t.b_dec) @ m.W_U,
    "b_U": lambda m, t, i: t.W_dec[i] @ m.W_U + m.b_U,
    "embed": lambda m, t, i: t.W_dec[i] @ m.W_E.T,
    "softmax": lambda m, t, i: (t.W_dec[i] @ m.W_U).softmax(-1),
    "log_softmax": lambda m, t, i: (t.W_dec[i] @ m.W_U).log_softmax(-1),
    "de_embedding": lambda m, t, i: m.W_E @ t.W_enc[:, i],
    "activation": lambda m, t, i: t.threshold[i] * (t.W_dec[i] @ m.W_U),
}


def test_token_views_correct():
    for impl in (ref.latent_de_embedding, de_einsum, de_centred, de_transposed):
        assert_passes(checks.test_latent_de_embedding, impl)
    for impl in (ref.latent_logit_effect, logit_einsum, logit_centred, logit_matvec):
        assert_passes(checks.test_latent_logit_effect, impl)


@pytest.mark.parametrize("code", DE_BUGS)
def test_de_embedding_buggy(code):
    assert_fails(checks.test_latent_de_embedding, DE_BUGS[code], code)


@pytest.mark.parametrize("code", LOGIT_BUGS)
def test_logit_effect_buggy(code):
    assert_fails(checks.test_latent_logit_effect, LOGIT_BUGS[code], code)


def test_token_views_malformed():
    for check, good in (
        (checks.test_latent_de_embedding, ref.latent_de_embedding),
        (checks.test_latent_logit_effect, ref.latent_logit_effect),
    ):
        assert_not_done(check, stub)
        assert_fails(check, lambda m, t, i: None, "returned_none")
        assert_fails(check, lambda m, t, i, g=good: g(m, t, i).numpy(), "not_tensor")
        assert_fails(check, lambda m, t, i, g=good: g(m, t, i)[:, None], "shape")
        assert_fails(check, lambda m, t, i, g=good: g(m, t, i).double(), "dtype")
        assert_fails(check, lambda m, t, i, g=good: g(m, t, i) * torch.nan, "not_finite")


def test_token_view_mistakes_are_distinct():
    model, tc, _ = checks._inputs(torch.device("cpu"))
    for latent in checks._live_latents(tc):
        for fn, expected in (
            (mistakes.de_embedding_mistakes, ref.latent_de_embedding),
            (mistakes.logit_effect_mistakes, ref.latent_logit_effect),
        ):
            rows = [(c, v) for c, _, v in fn(model, tc, latent)]
            _distinct(rows, expected(model, tc, latent), rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Exercise 4: linearised_forward
# --------------------------------------------------------------------------------------------
def lin_hooks(model, tc, frozen, embeds, latents=None, error=None):
    """The model itself, with hooks that freeze what the local replacement model freezes."""
    scales = {
        "blocks.0.ln1.hook_scale": frozen.ln1_scale,
        "blocks.0.ln2.hook_scale": frozen.ln2_scale,
        "ln_final.hook_scale": frozen.final_scale,
    }
    box = {}

    def mlp(act, hook):
        pre = tc.pre_acts(box["x"])
        box["pre"] = pre
        f = pre * frozen.active if latents is None else latents
        return tc.decode(f) + tc.skip(box["x"]) + (frozen.error if error is None else error)

    hooks = [(name, lambda a, hook, s=s: s[None].expand_as(a)) for name, s in scales.items()]
    hooks += [
        ("blocks.0.hook_resid_pre", lambda a, hook: embeds[None]),
        ("blocks.0.attn.hook_pattern", lambda a, hook: frozen.pattern[None]),
        (tc.hook_name, lambda a, hook: box.__setitem__("x", a[0])),
        (tc.hook_name_out, lambda a, hook: mlp(a, hook)[None]),
    ]
    logits = model.run_with_hooks(frozen.tokens[None], fwd_hooks=hooks)[0]
    return box["pre"], logits


def lin_per_head(model, tc, frozen, embeds, latents=None, error=None):
    centre = lambda v: v - v.mean(dim=-1, keepdim=True)
    x1 = centre(embeds) / frozen.ln1_scale
    attn = model.b_O[0].expand_as(embeds)
    for h in range(model.cfg.n_heads):
        v = x1 @ model.W_V[0, h] + model.b_V[0, h]
        attn = attn + frozen.pattern[h] @ v @ model.W_O[0, h]
    r1 = embeds + attn
    x = centre(r1) / frozen.ln2_scale
    pre = torch.addmm(tc.b_enc, x, tc.W_enc)
    f = torch.where(frozen.active, pre, torch.zeros_like(pre)) if latents is None else latents
    e = frozen.error if error is None else error
    r2 = r1 + tc(x) - tc.decode(tc.encode(x)) + tc.decode(f) + e  # tc(x) - decode(encode(x)) is the skip term
    return pre, F.linear(centre(r2) / frozen.final_scale, model.W_U.T, model.b_U)


def lin_projection_loop(model, tc, frozen, embeds, latents=None, error=None):
    """Centring as a projection matrix, attention one query position at a time."""
    d = embeds.shape[-1]
    centre = torch.eye(d) - torch.full((d, d), 1.0 / d)
    x1 = (embeds @ centre) / frozen.ln1_scale
    ov = torch.einsum("hde,hef->hdf", model.W_V[0], model.W_O[0])
    rows = []
    for q in range(len(embeds)):
        weights = frozen.pattern[:, q]  # [head key]
        value_bias = torch.einsum("h,he,hef->f", weights.sum(-1), model.b_V[0], model.W_O[0])
        rows.append(torch.einsum("hd,hdf->f", weights @ x1, ov) + value_bias + model.b_O[0])
    r1 = embeds + torch.stack(rows)
    x = (r1 @ centre) / frozen.ln2_scale
    pre = tc.pre_acts(x)
    f = pre * frozen.active.float() if latents is None else latents
    r2 = r1 + tc.decode(f) + tc.skip(x) + (frozen.error if error is None else error)
    return pre, (r2 @ centre) / frozen.final_scale @ model.W_U + model.b_U


def _lin_bug(code):
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        norm = lambda v, s: (
            (v - (0 if code == "no_centring" else v.mean(-1, keepdim=True)))
            / (
                (v - v.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()
                if code == "ln_recomputed"
                else s
            )
        )
        x1 = norm(embeds, frozen.ln1_scale)
        pattern = frozen.pattern.transpose(1, 2) if code == "pattern_transposed" else frozen.pattern
        if code == "pattern_recomputed":
            q = einops.einsum(x1, model.W_Q[0], "k d, h d e -> h k e") + model.b_Q[0][:, None]
            k = einops.einsum(x1, model.W_K[0], "k d, h d e -> h k e") + model.b_K[0][:, None]
            scores = einops.einsum(q, k, "h q e, h k e -> h q k") / model.cfg.d_head**0.5
            pattern = scores.masked_fill(torch.ones_like(scores[0], dtype=torch.bool).triu(1), -1e9).softmax(-1)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        attn = (
            einops.einsum(einops.einsum(pattern, v, "h q k, h k e -> h q e"), model.W_O[0], "h q e, h e d -> q d")
            + model.b_O[0]
        )
        r1 = attn if code == "no_residual" else embeds + attn
        x = (r1 - r1.mean(-1, keepdim=True)) if code == "mlp_in_unscaled" else norm(r1, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = {"acts_recomputed": tc.encode(x), "acts_constant": frozen.acts}.get(code, pre * frozen.active)
        if latents is not None and code != "latents_ignored":
            f = latents
        e = frozen.error if error is None or code == "error_ignored" else error
        r2 = r1 + f @ tc.W_dec + tc.b_dec + (0 if code == "no_skip" else tc.skip(x)) + (0 if code == "no_error" else e)
        return pre, norm(r2, frozen.final_scale) @ model.W_U + (0 if code == "no_b_U" else model.b_U)

    return impl


@pytest.mark.parametrize(
    "impl",
    [ref.linearised_forward, lin_hooks, lin_per_head, lin_projection_loop],
    ids=["ref", "hooks", "per_head", "projection_loop"],
)
def test_linearised_forward_correct(impl):
    assert_passes(checks.test_linearised_forward, impl)


@pytest.mark.parametrize("code", list(mistakes.LINEARISED_MISTAKES))
def test_linearised_forward_buggy(code):
    assert_fails(checks.test_linearised_forward, _lin_bug(code), code)


def test_linearised_forward_doubled_error_at_the_prompt():
    doubled_error = lambda m, t, fr, e, lat=None, err=None: ref.linearised_forward(
        m, t, fr, e, lat, 2 * fr.error if err is None else err
    )
    assert_fails(checks.test_linearised_forward, doubled_error, "error_twice")


def test_linearised_forward_malformed():
    check = checks.test_linearised_forward
    assert_not_done(check, stub)
    assert_fails(check, lambda *a, **k: None, "returned_none")
    assert_fails(check, lambda *a, **k: ref.linearised_forward(*a, **k)[1], "not_tuple")
    assert_fails(check, lambda *a, **k: tuple(t[None] for t in ref.linearised_forward(*a, **k)), "shape")
    assert_fails(
        check,
        lambda *a, **k: (ref.linearised_forward(*a, **k)[0], ref.linearised_forward(*a, **k)[1] * torch.nan),
        "not_finite",
    )
    detached = lambda m, t, fr, e, *rest: ref.linearised_forward(m, t, fr, e.detach(), *rest)
    assert_fails(check, detached, "not_differentiable")


def test_linearised_mistakes_are_distinct():
    model, tc, _ = checks._inputs(torch.device("cpu"))
    frozen, _ = checks._fresh(torch.device("cpu"))
    g = torch.Generator().manual_seed(11)
    shift = torch.randn(frozen.embeds.shape, generator=g) * 0.6 + 0.3
    latents = (torch.rand(frozen.acts.shape, generator=g) < 0.02).float() * 2.0
    error = torch.randn(frozen.error.shape, generator=g)
    calls = [(frozen.embeds + shift,), (frozen.embeds + shift, latents, error)]
    joined = lambda **bug: torch.cat(
        [t.flatten() for args in calls for t in checks.slips.variant_forward(model, tc, frozen, *args, **bug)]
    )
    # every code the checker knows (the catalogue's and the term mistakes found in held-out trials)
    _distinct([(c, joined(**{c: True})) for c in checks.LINEARISED_MISTAKES], joined(), rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Exercise 5: attribution_edges
# --------------------------------------------------------------------------------------------
def edges_batched(model, tc, frozen, graph):
    pos, idx = graph.latent_pos, graph.latent_idx
    A = torch.zeros(graph.n_nodes, graph.n_nodes)
    with torch.enable_grad():
        embeds, error = frozen.embeds.clone().requires_grad_(), frozen.error.clone().requires_grad_()
        vals = frozen.acts[pos, idx].clone().requires_grad_()
        pre, logits = ref.linearised_forward(
            model, tc, frozen, embeds, torch.zeros_like(frozen.acts).index_put((pos, idx), vals), error
        )
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        grads = torch.autograd.grad(targets, (vals, error, embeds), torch.eye(len(targets)), is_grads_batched=True)
    rows = mistakes.target_rows(graph)
    A[rows, graph.nodes("latent")] = grads[0] * vals.detach()
    A[rows, graph.nodes("error")] = einops.einsum(grads[1], error.detach(), "t s d, s d -> t s")
    A[rows, graph.nodes("token")] = einops.einsum(grads[2], embeds.detach(), "t s d, s d -> t s")
    return A


def edges_by_ablation(model, tc, frozen, graph):
    A = torch.zeros(graph.n_nodes, graph.n_nodes)
    for target in mistakes.target_rows(graph):
        for source in range(graph.nodes("logit").start):
            A[target, source] = circuits.edge_by_ablation(
                functools.partial(ref.linearised_forward, model, tc), frozen, graph, source, target
            )
    return A


def edges_jacobian(model, tc, frozen, graph):
    pos, idx = graph.latent_pos, graph.latent_idx
    vals = frozen.acts[pos, idx]

    def targets(embeds, error, values):
        latents = torch.zeros_like(frozen.acts).index_put((pos, idx), values)
        pre, logits = ref.linearised_forward(model, tc, frozen, embeds, latents, error)
        return torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])

    with torch.enable_grad():
        J = torch.autograd.functional.jacobian(targets, (frozen.embeds, frozen.error, vals))
    A = torch.zeros(graph.n_nodes, graph.n_nodes)
    rows = mistakes.target_rows(graph)
    A[rows, graph.nodes("token")] = (J[0] * frozen.embeds).sum(-1)
    A[rows, graph.nodes("error")] = (J[1] * frozen.error).sum(-1)
    A[rows, graph.nodes("latent")] = J[2] * vals
    return A


def _edges_bug(code):
    def impl(model, tc, frozen, graph):
        if code == "not_linearised":
            return mistakes.autograd_edges(model, tc, frozen, graph, ln_recomputed=True, pattern_recomputed=True)
        if code == "logprob":
            return mistakes.autograd_edges(model, tc, frozen, graph, logprob=True)
        A = ref.attribution_edges(model, tc, frozen, graph)
        rows = mistakes.target_rows(graph)
        if code == "total_effect":
            A[rows, graph.nodes("token")] = mistakes.autograd_edges(model, tc, frozen, graph, total=True)[rows][
                :, graph.nodes("token")
            ]
        elif code == "transposed":
            A = A.T.contiguous()
        elif code == "abs":
            A = A.abs()
        elif code == "gradient_only":
            A[:, graph.nodes("latent")] /= frozen.acts[graph.latent_pos, graph.latent_idx]
        elif code == "error_nodes":
            A[:, graph.nodes("error")] = 0
        elif code == "latent_targets":
            A[: graph.n_latents] = 0
        elif code == "position":
            for p in range(graph.n_pos):
                A[rows, graph.nodes("token").start + p] = mistakes.direct_edges_token_only(model, tc, frozen, graph, p)
        elif code == "completeness":
            A[rows[-1], graph.nodes("token").start + 2] += 0.5
        elif code == "values":  # weight moved between two sources of every logit: sums unchanged
            t1, t2 = graph.nodes("token").start + 1, graph.nodes("token").start + 2
            A[graph.nodes("logit"), t1] += 0.3
            A[graph.nodes("logit"), t2] -= 0.3
        return A

    return impl


EDGE_BUGS = [
    "not_linearised",
    "logprob",
    "total_effect",
    "transposed",
    "abs",
    "gradient_only",
    "error_nodes",
    "latent_targets",
    "position",
    "completeness",
    "values",
]


@pytest.mark.parametrize(
    "impl",
    [ref.attribution_edges, edges_batched, edges_by_ablation, edges_jacobian],
    ids=["ref", "batched", "ablation", "jacobian"],
)
def test_attribution_edges_correct(impl):
    assert_passes(checks.test_attribution_edges, impl)


@pytest.mark.parametrize("code", EDGE_BUGS)
def test_attribution_edges_buggy(code):
    assert_fails(checks.test_attribution_edges, _edges_bug(code), code)


def test_attribution_edges_malformed():
    check = checks.test_attribution_edges
    assert_not_done(check, stub)
    assert_fails(check, lambda *a: None, "returned_none")
    assert_fails(check, lambda m, t, fr, g: ref.attribution_edges(m, t, fr, g)[:-1], "shape")
    assert_fails(check, lambda m, t, fr, g: ref.attribution_edges(m, t, fr, g).tolist(), "not_tensor")
    assert_fails(check, lambda m, t, fr, g: ref.attribution_edges(m, t, fr, g) * torch.nan, "not_finite")
    into_tokens = lambda m, t, fr, g: ref.attribution_edges(m, t, fr, g).index_fill(
        0, torch.tensor([g.nodes("token").start]), 1.0
    )
    assert_fails(check, into_tokens, "structure")


def test_edge_mistakes_are_distinct():
    model, tc, _ = checks._inputs(torch.device("cpu"))
    frozen, graph = checks._fresh(torch.device("cpu"))
    with torch.no_grad():
        direct = mistakes.direct_edges(model, tc, frozen, graph)
        rows = [(c, v) for c, _, v in mistakes.edge_mistakes(model, tc, frozen, graph, direct)]
    _distinct(rows, direct, rtol=1e-3, atol=2e-4)
    torch.testing.assert_close(ref.attribution_edges(model, tc, frozen, graph), direct, rtol=1e-3, atol=2e-4)


# --------------------------------------------------------------------------------------------
# Exercise 6: node_influence
# --------------------------------------------------------------------------------------------
def influence_solve(adjacency, logit_weights):
    a = adjacency.abs()
    a = a / torch.where(a.sum(1, keepdim=True) > 0, a.sum(1, keepdim=True), torch.ones(1))
    eye = torch.eye(len(a))
    return torch.linalg.solve((eye - a).T, logit_weights) - logit_weights


def influence_series(adjacency, logit_weights):
    a = adjacency.abs()
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-30)
    total, term = torch.zeros_like(logit_weights), logit_weights
    for _ in range(len(a)):
        term = term @ a
        total = total + term
    return total


def influence_powers(adjacency, logit_weights):
    shares = torch.nn.functional.normalize(adjacency.abs(), p=1, dim=-1)  # rows sum to 1 (zero rows stay 0)
    paths = sum(torch.linalg.matrix_power(shares, k) for k in range(1, len(shares) + 1))
    return logit_weights @ paths


def _influence_bug(code):
    def impl(adjacency, logit_weights):
        if code == "zero_rows":
            a = adjacency.abs()
            a = a / a.sum(-1, keepdim=True)
            return logit_weights @ (torch.linalg.inv(torch.eye(len(a)) - a) - torch.eye(len(a)))
        if code == "inplace":
            adjacency.abs_()
            return ref.node_influence(adjacency, logit_weights)
        return dict((c, v) for c, _, v in mistakes.influence_mistakes(adjacency, logit_weights))[code]

    return impl


INFLUENCE_BUGS = [
    "signed",
    "unnormalised",
    "columns",
    "direct_only",
    "identity",
    "transposed",
    "unweighted",
    "global",
    "two_steps",
    "zero_rows",
    "inplace",
]


def test_node_influence_correct():
    for impl in (ref.node_influence, influence_solve, influence_series, influence_powers):
        assert_passes(checks.test_node_influence, impl)


@pytest.mark.parametrize("code", INFLUENCE_BUGS)
def test_node_influence_buggy(code):
    assert_fails(checks.test_node_influence, _influence_bug(code), code)


def test_node_influence_malformed():
    check = checks.test_node_influence
    assert_not_done(check, stub)
    assert_fails(check, lambda a, w: None, "returned_none")
    assert_fails(check, lambda a, w: ref.node_influence(a, w)[None], "shape")
    assert_fails(check, lambda a, w: ref.node_influence(a, w).double(), "dtype")
    assert_fails(check, lambda a, w: ref.node_influence(a, w).tolist(), "not_tensor")


def test_influence_mistakes_are_distinct():
    A, w = checks._influence_inputs(torch.device("cpu"))
    _distinct([(c, v) for c, _, v in mistakes.influence_mistakes(A, w)], ref.node_influence(A, w), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Exercise 7: quantile_examples
# --------------------------------------------------------------------------------------------
def quantile_loop(acts, k, n_bands=4):
    n_seq, seq = acts.shape
    items = [(float(acts[s, p]), s, p) for s in range(n_seq) for p in range(1, seq) if acts[s, p] > 0]
    top = max(v for v, _, _ in items)
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        band = sorted((abs(v - (lo + hi) / 2), v, s, p) for v, s, p in items if lo < v <= hi)[:k]
        band.sort(key=lambda t: -t[1])
        groups.append(
            (
                torch.tensor([b[1] for b in band], dtype=acts.dtype),
                torch.tensor([b[2] for b in band], dtype=torch.long),
                torch.tensor([b[3] for b in band], dtype=torch.long),
            )
        )
    return groups


def quantile_unravel(acts, k, n_bands=4):
    body = torch.cat([torch.zeros_like(acts[:, :1]), acts[:, 1:]], dim=1).reshape(-1)
    m = body.max()
    edges = torch.linspace(0, 1, n_bands + 1) * m
    out = []
    for j in reversed(range(n_bands)):
        lo, hi = edges[j], edges[j + 1]
        idx = ((body > lo) & (body <= hi)).nonzero().flatten()
        idx = idx[(body[idx] - (lo + hi) / 2).abs().argsort()[:k]]
        idx = idx[body[idx].sort(descending=True).indices]
        s, p = torch.unravel_index(idx, acts.shape)
        out.append((body[idx], s, p))
    return out


def quantile_bucketize(acts, k, n_bands=4):
    body = acts.clone()
    body[:, 0] = 0
    flat = body.flatten()
    top = float(flat.max())
    edges = torch.tensor([top * j / n_bands for j in range(1, n_bands)], dtype=flat.dtype)
    band = torch.bucketize(flat, edges, right=False)  # (edge_j, edge_j+1] -> j, values on an edge go below it
    groups = []
    for j in reversed(range(n_bands)):
        idx = ((band == j) & (flat > 0)).nonzero().flatten()
        middle = top * (j + 0.5) / n_bands
        idx = idx[(flat[idx] - middle).abs().argsort(stable=True)][:k]
        idx = idx[flat[idx].argsort(descending=True, stable=True)]
        groups.append((flat[idx], idx.div(acts.shape[1], rounding_mode="floor"), idx.remainder(acts.shape[1])))
    return groups


def _quantile_bug(code):
    def impl(acts, k, n_bands=4):
        if code == "inplace":
            acts[:, 0] = 0
            return ref.quantile_examples(acts, k, n_bands)
        if code == "dtype":
            return [(v, s.float(), p.float()) for v, s, p in ref.quantile_examples(acts, k, n_bands)]
        return mistakes.quantile_variant(acts, k, n_bands, **{code: True})

    return impl


QUANTILE_BUGS = [*mistakes.QUANTILE_MISTAKES, "inplace", "dtype"]


def test_quantile_examples_correct():
    for impl in (ref.quantile_examples, quantile_loop, quantile_unravel, quantile_bucketize):
        assert_passes(checks.test_quantile_examples, impl)


@pytest.mark.parametrize("code", QUANTILE_BUGS)
def test_quantile_examples_buggy(code):
    # middles counted from the bottom rank every band as m/2 does: named with both causes (whole_range_middle)
    assert_fails(
        checks.test_quantile_examples, _quantile_bug(code), {"middle_from_bottom": "whole_range_middle"}.get(code, code)
    )


def test_quantile_examples_malformed():
    check = checks.test_quantile_examples
    assert_not_done(check, stub)
    assert_fails(check, lambda a, k, n: None, "returned_none")
    assert_fails(check, lambda a, k, n: ref.quantile_examples(a, k, n)[:2], "not_list")
    assert_fails(check, lambda a, k, n: [g[:2] for g in ref.quantile_examples(a, k, n)], "not_tuple")
    assert_fails(check, lambda a, k, n: [(v[None], s, p) for v, s, p in ref.quantile_examples(a, k, n)], "shape")
    assert_fails(
        check, lambda a, k, n: [(v.tolist(), s, p) for v, s, p in ref.quantile_examples(a, k, n)], "not_tensor"
    )


def test_quantile_mistakes_are_distinct():
    acts = checks._quantile_inputs(torch.device("cpu"))
    expected = ref.quantile_examples(acts, 3, 4)
    variants = {c: mistakes.quantile_variant(acts, 3, 4, **{c: True}) for c in mistakes.QUANTILE_MISTAKES}
    for code, groups in variants.items():
        assert not mistakes.same_groups(groups, expected), code
    for (c1, g1), (c2, g2) in itertools.combinations(variants.items(), 2):
        assert not mistakes.same_groups(g1, g2), (c1, c2)
