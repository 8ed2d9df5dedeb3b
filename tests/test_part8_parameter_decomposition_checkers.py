"""Proof that part 8's checkers accept correct variants and reject realistic mistakes with the right code:
the shared contract (stubs, wrong kinds of object) for every checker, and exercises 1-5 (SVD, ablation,
faithfulness, the leaky hard sigmoids, causal importance). Exercises 6-10 are in
`test_part8_parameter_decomposition_losses_checkers.py`."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_not_done, assert_passes, stub

CHECKS = {
    "svd_terms": ref.svd_terms,
    "ablation_losses": ref.ablation_losses,
    "faithfulness_loss": ref.faithfulness_loss,
    "lower_leaky_hard_sigmoid": ref.LowerLeakyHardSigmoid,
    "upper_leaky_hard_sigmoid": ref.UpperLeakyHardSigmoid,
    "causal_importance": ref.CausalImportance,
    "sample_masks": ref.sample_masks,
    "masked_product": ref.masked_product,
    "stochastic_reconstruction_losses": ref.stochastic_reconstruction_losses,
    "importance_minimality_loss": ref.importance_minimality_loss,
    "adversarial_sources": ref.adversarial_sources,
}


def check(name: str):
    return getattr(checks, f"test_{name}")


@pytest.mark.parametrize("name", CHECKS)
def test_reference_passes(name):
    assert_passes(check(name), CHECKS[name])


@pytest.mark.parametrize("name", CHECKS)
def test_stub_is_not_done(name):
    impl = CHECKS[name]
    if isinstance(impl, type) and issubclass(impl, torch.autograd.Function):
        impl = type("Stub", (torch.autograd.Function,), {"forward": staticmethod(stub), "backward": staticmethod(stub)})
    elif isinstance(impl, type):
        impl = type("Stub", (impl,), {"forward": stub})
    else:
        impl = stub
    assert_not_done(check(name), impl)


@pytest.mark.parametrize("name", CHECKS)
def test_wrong_kind_of_object(name):
    impl = CHECKS[name]
    if isinstance(impl, type):
        assert_fails(check(name), lambda *a: None, "not_a_class")
        instance = impl(1, 2, 3) if impl is ref.CausalImportance else object()
        assert_fails(check(name), instance, "not_a_class")
    else:
        assert_fails(check(name), type("NotAFunction", (), {}), "not_a_function")
    assert_fails(check(name), None, "passed_none")


def test_a_module_is_not_an_autograd_function():
    assert_fails(checks.test_lower_leaky_hard_sigmoid, ref.CausalImportance, "not_autograd_function")


# --------------------------------------------------------------------------------------------
# Exercise 1: svd_terms
# --------------------------------------------------------------------------------------------
def svd_variant(sigma=lambda S: S, u_rows=False, vh_cols=False, order=lambda t: t, full=False):
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=full)
        if full:  # terms from the square U and Vh, padded with zero terms to the longer side
            r = S.shape[-1]
            terms = torch.einsum("iak,ik,ikb->ikab", U[..., :r], S, Vh[:, :r])
            pad = torch.zeros_like(terms[:, :1]).expand(-1, max(W.shape[1:]) - r, -1, -1)
            return torch.cat([terms, pad], dim=1)
        U = U.mT if u_rows else U
        Vh = Vh.mT if vh_cols else Vh
        return order(torch.einsum("iak,ik,ikb->ikab", U, sigma(S), Vh))

    return impl


def svd_old_api(W):
    U, S, V = torch.svd(W)  # V's columns are the right singular vectors
    return torch.einsum("iak,ik,ibk->ikab", U, S, V)


def svd_loop(W):
    out = []
    for Wi in W:
        U, S, Vh = torch.linalg.svd(Wi, full_matrices=False)
        out.append(torch.stack([S[k] * torch.outer(U[:, k], Vh[k]) for k in range(len(S))]))
    return torch.stack(out)


def svd_eigh(W):
    """From the eigendecomposition of Wᵀ W (v = eigenvectors, largest eigenvalue first): σ u = W v, so each term is
    (W v) vᵀ, with no division by σ (which is exactly 0 for a rank-deficient W). Computed in float64, returned in W's
    dtype."""
    r = min(W.shape[1:])
    _, evecs = torch.linalg.eigh(W.double().mT @ W.double())
    evecs = evecs.flip(-1)[..., :r]
    return torch.einsum("iak,ibk->ikab", W.double() @ evecs, evecs).to(W.dtype)


@pytest.mark.parametrize("impl", [svd_old_api, svd_loop, svd_eigh, lambda W: ref.svd_terms(W.double()).to(W.dtype)])
def test_svd_terms_accepts(impl):
    assert_passes(checks.test_svd_terms, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (svd_variant(sigma=torch.ones_like), "no_sigma"),
        (svd_variant(sigma=lambda S: S**2), "sigma_squared"),
        (svd_variant(sigma=torch.sqrt), "sigma_sqrt"),
        (svd_variant(order=lambda t: t.flip(1)), "ascending"),
        (svd_variant(order=lambda t: t.cumsum(1)), "cumulative"),
        (svd_variant(u_rows=True), "u_rows"),
        (svd_variant(vh_cols=True), "vh_columns"),
        (svd_variant(full=True), "full_matrices"),
        (svd_variant(order=lambda t: t.mT.contiguous()), "axis_order"),
        (svd_variant(order=lambda t: -t), "sign"),
        (svd_variant(order=lambda t: t[:1].expand_as(t)), "first_slice_for_all"),
        (svd_variant(sigma=lambda S: S + 0.1), "not_sum"),
        (lambda W: ref.svd_terms(W).permute(0, 2, 3, 1), "axis_order"),
        (lambda W: ref.svd_terms(W)[:, :1], "one_term"),
        (lambda W: ref.svd_terms(W).double(), "dtype"),
        (lambda W: list(ref.svd_terms(W)), "not_tensor"),
        (lambda W: ref.svd_terms(W) * float("nan"), "not_finite"),
        (lambda W: None, "returned_none"),
    ],
)
def test_svd_terms_rejects(impl, code):
    assert_fails(checks.test_svd_terms, impl, code)


# --------------------------------------------------------------------------------------------
# Exercise 2: ablation_losses
# --------------------------------------------------------------------------------------------
def _mm(a, W):
    return einops.einsum(a, W, "b i d, i o d -> b i o")


def ablation_variant(new_first=lambda W, T: W - T, target=None, reduce=lambda d: d.pow(2).mean(-1), in_place=False,
                     cumulative=False, bias=False):  # fmt: skip
    def impl(chain, terms, x):
        original = chain(x) if target is None else target(x)
        out, W_run = [], chain.weights[0]
        for k in range(terms.shape[1]):
            if in_place:
                chain.weights[0] -= terms[:, k]
                W0 = chain.weights[0]
            elif cumulative:
                W_run = W_run - terms[:, k]
                W0 = W_run
            else:
                W0 = new_first(chain.weights[0], terms[:, k])

            def layer_fn(layer, a, W0=W0):
                out = _mm(a, W0 if layer == 0 else chain.weights[layer])
                return out + chain.biases[layer] if bias else out

            out.append(reduce(chain(x, layer_fn) - original))
        return torch.stack(out, dim=1).permute(2, 1, 0)  # [batch k inst] -> [inst k batch]

    return impl


def ablation_vectorised(chain, terms, x):
    k, b = terms.shape[1], x.shape[0]
    W0 = chain.weights[0][:, None] - terms  # [inst k out in]
    xs = x[None].expand(k, *x.shape).reshape(k * b, *x.shape[1:])

    def first(a):
        return einops.einsum(a.reshape(k, b, *a.shape[1:]), W0, "k b i d, i k o d -> k b i o").reshape(
            k * b, a.shape[1], -1
        )

    out = chain(xs, lambda layer, a: first(a) if layer == 0 else _mm(a, chain.weights[layer]))
    return (out.reshape(k, b, *out.shape[1:]) - chain(x)[None]).pow(2).mean(-1).permute(2, 0, 1)


def ablation_run_inputs(chain, terms, x):
    """Through chain.run: the second output is ignored."""
    original, _ = chain.run(x)
    rows = []
    for k in range(terms.shape[1]):
        W = [chain.weights[0] - terms[:, k], *chain.weights[1:]]
        rows.append(F.mse_loss(chain.run(x, lambda n, a, W=W: _mm(a, W[n]))[0], original, reduction="none").mean(-1))
    return einops.rearrange(torch.stack(rows), "k b i -> i k b")


def ablation_late_binding(chain, terms, x):
    """A closure made in a loop reads `W0` when it runs, after the loop: every k removes the last term."""
    fns = []
    for k in range(terms.shape[1]):
        W0 = chain.weights[0] - terms[:, k]
        fns.append(lambda layer, a: _mm(a, W0 if layer == 0 else chain.weights[layer]))  # noqa: B023
    return torch.stack([(chain(x, fn) - chain(x)).pow(2).mean(-1) for fn in fns]).permute(2, 0, 1)


@pytest.mark.parametrize("impl", [ablation_variant(), ablation_vectorised, ablation_run_inputs])
def test_ablation_losses_accepts(impl):
    assert_passes(checks.test_ablation_losses, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (ablation_variant(new_first=lambda W, T: T), "keep_only_term"),
        (ablation_variant(new_first=lambda W, T: W + T), "add_term"),
        (ablation_variant(cumulative=True), "cumulative"),
        (ablation_variant(target=lambda x: x), "vs_input"),
        (ablation_variant(reduce=lambda d: d.pow(2).sum(-1)), "sum_over_outputs"),
        (ablation_variant(reduce=lambda d: d.abs().mean(-1)), "not_squared"),
        (ablation_variant(reduce=lambda d: d.pow(2).mean(-1).sqrt()), "sqrt"),
        (ablation_variant(bias=True), "bias_twice"),
        (ablation_late_binding, "same_term"),
        (ablation_variant(in_place=True), "in_place"),
        (ablation_variant(reduce=lambda d: -d.pow(2).mean(-1)), "sign"),
        (lambda c, t, x: ablation_variant()(c, t, x).transpose(1, 2), "shape"),
        (lambda c, t, x: ablation_variant()(c, t, x).mean(-1), "shape"),
        (lambda c, t, x: None, "returned_none"),
    ],
)
def test_ablation_losses_rejects(impl, code):
    assert_fails(checks.test_ablation_losses, impl, code)


def test_ablation_losses_names_normalisation():
    chain, _terms, x = checks.ablation_inputs()
    scale = chain(x).pow(2).mean(-1).T[:, None, :]
    assert_fails(checks.test_ablation_losses, lambda c, t, xx: ablation_variant()(c, t, xx) / scale, "normalised")


# --------------------------------------------------------------------------------------------
# Exercise 3: faithfulness_loss
# --------------------------------------------------------------------------------------------
def faith_cat(weights, U, V):
    deltas = torch.cat([(W - torch.bmm(u, v)).flatten(1) for W, u, v in zip(weights, U, V, strict=False)], dim=1)
    return deltas.pow(2).mean(1).sum()


def faith_mse(weights, U, V):
    total = sum(
        F.mse_loss(einops.einsum(u, v, "i o c, i c d -> i o d"), W, reduction="none").flatten(1).sum(1)
        for W, u, v in zip(weights, U, V, strict=False)
    )
    return total.sum() / sum(W[0].numel() for W in weights)


def faith_loop(weights, U, V):
    total, count = 0.0, 0
    for W, u, v in zip(weights, U, V, strict=False):
        total = total + ((W - u @ v) ** 2).sum()  # summed over instances too
        count += W.shape[1] * W.shape[2]
    return total / count


def faith_variant(per_matrix, combine):
    def impl(weights, U, V):
        return combine([per_matrix(W - u @ v) for W, u, v in zip(weights, U, V, strict=False)], weights)

    return impl


N = lambda ws: sum(w[0].numel() for w in ws)
SQ = lambda d: d.pow(2).sum((-2, -1))


@pytest.mark.parametrize("impl", [ref.faithfulness_loss, faith_cat, faith_mse, faith_loop])
def test_faithfulness_loss_accepts(impl):
    assert_passes(checks.test_faithfulness_loss, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (faith_variant(lambda d: d.pow(2).mean((-2, -1)), lambda s, ws: (sum(s) / len(s)).sum()), "mean_of_means"),
        (faith_variant(lambda d: d.pow(2).mean((-2, -1)), lambda s, ws: sum(s).sum()), "sum_of_means"),
        (faith_variant(SQ, lambda s, ws: sum(s).sum()), "no_normalisation"),
        (faith_variant(SQ, lambda s, ws: (sum(s) / N(ws) / len(ws)).sum()), "per_matrix_count"),
        (faith_variant(SQ, lambda s, ws: (sum(s) / N(ws)).mean()), "mean_over_instances"),
        (faith_variant(SQ, lambda s, ws: sum(s).sum() / sum(w.numel() for w in ws)), "mean_over_instances"),
        (lambda ws, U, V: sum(F.mse_loss(u @ v, w) for w, u, v in zip(ws, U, V, strict=True)), "mse_loss_sum"),
        (
            lambda ws, U, V: sum(F.mse_loss(u @ v, w) for w, u, v in zip(ws, U, V, strict=True)) / len(ws),
            "mse_loss_mean",
        ),
        (faith_variant(SQ, lambda s, ws: (sum(s) / sum(SQ(w) for w in ws)).sum()), "weight_norm"),
        (faith_variant(lambda d: d.abs().sum((-2, -1)), lambda s, ws: (sum(s) / N(ws)).sum()), "not_squared"),
        (faith_variant(lambda d: d.norm(dim=(-2, -1)), lambda s, ws: (sum(s) / N(ws)).sum()), "frobenius_not_squared"),
        (faith_variant(SQ, lambda s, ws: (sum(s) / N(ws)).sqrt().sum()), "rms"),
        (faith_variant(SQ, lambda s, ws: (s[-1] / N(ws)).sum()), "last_matrix_only"),
        (faith_variant(SQ, lambda s, ws: (s[0] / N(ws)).sum()), "first_matrix_only"),
        (faith_variant(SQ, lambda s, ws: 2 * (sum(s) / N(ws)).sum()), "scale"),
        (faith_variant(SQ, lambda s, ws: (sum(s) / N(ws) + 0.01).sum()), "values"),
        (lambda ws, U, V: ref.faithfulness_loss(ws, [u.detach() for u in U], [v.detach() for v in V]), "no_grad"),
        (lambda ws, U, V: ref.faithfulness_loss(ws, U, [v.detach() for v in V]), "no_grad"),
        (lambda ws, U, V: ref.faithfulness_loss(ws, U, V)[None], "not_scalar"),
        (lambda ws, U, V: ref.faithfulness_loss(ws, U, V).item(), "not_tensor"),
    ],
)
def test_faithfulness_loss_rejects(impl, code):
    assert_fails(checks.test_faithfulness_loss, impl, code)


def test_faithfulness_loss_names_a_sum_over_the_parameters():
    impl = faith_variant(SQ, lambda s, ws: (sum(s) / N(ws)).sum() * N(ws))  # = no_normalisation, named by the catalogue
    error = assert_fails(checks.test_faithfulness_loss, impl, "no_normalisation")
    assert "divide by N" in error.hint


# --------------------------------------------------------------------------------------------
# Exercise 4: the leaky hard sigmoids
# --------------------------------------------------------------------------------------------
def sigmoid_class(forward_fn=lambda x, alpha: x.clamp(0, 1), slope_fn=None, n_grads=2, use_grad=True,
                  save_output=False, in_place=False, leak_unscaled=None):  # fmt: skip
    def forward(ctx, x, alpha=0.01):
        out = x.clamp_(0, 1) if in_place else forward_fn(x, alpha)
        ctx.save_for_backward(out if save_output else x)
        ctx.alpha = alpha
        return out

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g = (grad if use_grad else 1.0) * slope_fn(x, ctx.alpha)
        if leak_unscaled is not None:
            g = torch.where(leak_unscaled(x), ctx.alpha, g)
        return (g, None) if n_grads == 2 else g

    return type(
        "Variant", (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


def slopes(below, above):
    """A slope function: `below`/`above` are 'alpha', 0 or 1 (or a fixed number)."""
    pick = lambda v, a: a if v == "alpha" else v
    return lambda x, a: torch.where(x < 0, pick(below, a), torch.where(x > 1, pick(above, a), 1.0))


def lower_masks(x, a):
    return (x < 0).float() * a + ((x >= 0) & (x <= 1)).float()


def upper_masks(x, a):
    return (x > 1).float() * a + ((x >= 0) & (x <= 1)).float()


LOWER, UPPER = slopes("alpha", 0), slopes(0, "alpha")


def sigmoid_mistakes(right, wrong_side, leak_side):
    """The usual mistakes, for the lower (leak_side='below') or the upper sigmoid."""
    below = leak_side == "below"
    leak_fwd = (
        (lambda x, a: torch.where(x < 0, a * x, x.clamp(max=1)))
        if below
        else (lambda x, a: torch.where(x > 1, 1 + a * (x - 1), x.clamp(min=0)))
    )
    return [
        (sigmoid_class(slope_fn=wrong_side), "wrong_side"),
        (sigmoid_class(slope_fn=slopes("alpha", "alpha")), "both_sides"),
        (sigmoid_class(slope_fn=slopes("alpha", 1) if below else slopes(1, "alpha")), "other_side_open"),
        (sigmoid_class(slope_fn=slopes(0, 0)), "no_leak"),
        (sigmoid_class(slope_fn=lambda x, a: torch.ones_like(x)), "straight_through"),
        (sigmoid_class(slope_fn=right, save_output=True), "straight_through"),
        (sigmoid_class(slope_fn=right, use_grad=False), "no_grad_output"),
        (
            sigmoid_class(slope_fn=right, leak_unscaled=(lambda x: x < 0) if below else (lambda x: x > 1)),
            "leak_not_scaled",
        ),
        (sigmoid_class(slope_fn=slopes(0.01, 0) if below else slopes(0, 0.01)), "alpha_ignored"),
        (sigmoid_class(forward_fn=leak_fwd, slope_fn=right), "leaky_forward"),
        (sigmoid_class(forward_fn=lambda x, a: torch.sigmoid(x), slope_fn=right), "sigmoid"),
        (sigmoid_class(forward_fn=lambda x, a: F.hardsigmoid(x), slope_fn=right), "torch_hardsigmoid"),
        (sigmoid_class(forward_fn=lambda x, a: x.clone(), slope_fn=right), "no_clamp"),
        (sigmoid_class(forward_fn=lambda x, a: x.clamp(min=0), slope_fn=right), "relu"),
        (sigmoid_class(slope_fn=right, in_place=True), "in_place"),
        (sigmoid_class(slope_fn=right, n_grads=1), "n_grads"),
        (sigmoid_class(forward_fn=lambda x, a: x.clamp(0, 1).double(), slope_fn=right), "dtype"),
    ]


@pytest.mark.parametrize(
    "impl",
    [ref.LowerLeakyHardSigmoid, sigmoid_class(slope_fn=lower_masks),
     sigmoid_class(forward_fn=lambda x, a: torch.minimum(torch.relu(x), torch.ones_like(x)), slope_fn=LOWER),
     sigmoid_class(forward_fn=lambda x, a: torch.where(x < 0, 0.0, torch.where(x > 1, 1.0, x)), slope_fn=LOWER)],
)  # fmt: skip
def test_lower_sigmoid_accepts(impl):
    assert_passes(checks.test_lower_leaky_hard_sigmoid, impl)


@pytest.mark.parametrize(
    "impl",
    [ref.UpperLeakyHardSigmoid, sigmoid_class(slope_fn=upper_masks),
     sigmoid_class(forward_fn=lambda x, a: 1 - torch.relu(1 - torch.relu(x)), slope_fn=UPPER),
     sigmoid_class(forward_fn=lambda x, a: F.hardtanh(x, 0.0, 1.0), slope_fn=UPPER)],
)  # fmt: skip
def test_upper_sigmoid_accepts(impl):
    assert_passes(checks.test_upper_leaky_hard_sigmoid, impl)


@pytest.mark.parametrize(("impl", "code"), sigmoid_mistakes(LOWER, UPPER, "below"))
def test_lower_sigmoid_rejects(impl, code):
    assert_fails(checks.test_lower_leaky_hard_sigmoid, impl, code)


@pytest.mark.parametrize(("impl", "code"), sigmoid_mistakes(UPPER, LOWER, "above"))
def test_upper_sigmoid_rejects(impl, code):
    assert_fails(checks.test_upper_leaky_hard_sigmoid, impl, code)


# --------------------------------------------------------------------------------------------
# Exercise 5: CausalImportance.forward
# --------------------------------------------------------------------------------------------
def ci_variant(act=F.gelu, lower=ref.LowerLeakyHardSigmoid, upper=ref.UpperLeakyHardSigmoid, share=None,
               detach=False, b_in="inside", b_out=True, alpha=None, squash=None, swap=False, reduce="sum"):  # fmt: skip
    def forward(self, a, V):
        w_in, bi, w_out, bo = self.w_in, self.b_in, self.w_out, self.b_out
        if share == "component":
            w_in, bi, w_out, bo = w_in[:, :1], bi[:, :1], w_out[:, :1], bo[:, :1]
        if share == "instance":
            w_in, bi, w_out, bo = w_in[:1], bi[:1], w_out[:1], bo[:1]
        h = einops.einsum(a, V, "b i d, i c d -> b i c")
        h = h.detach() if detach else h
        hidden = act(h[..., None] * w_in + (bi if b_in == "inside" else 0)) + (bi if b_in == "outside" else 0)
        z = getattr(hidden * w_out, reduce)(-1) + (bo if b_out else 0)
        if squash is not None:
            return squash(z), squash(z)
        al = self.alpha if alpha is None else alpha
        out = (lower.apply(z, al), upper.apply(z, al))
        return out[::-1] if swap else out

    return type("Variant", (ref.CausalImportance,), {"forward": forward})


def ci_bmm(self, a, V):
    n_inst, C, H = self.w_in.shape
    h = torch.einsum("bid,icd->icb", a, V).reshape(n_inst * C, -1, 1)
    hidden = F.gelu(torch.baddbmm(self.b_in.reshape(-1, 1, H), h, self.w_in.reshape(-1, 1, H)))
    z = torch.bmm(hidden, self.w_out.reshape(-1, H, 1)).reshape(n_inst, C, -1).permute(2, 0, 1) + self.b_out
    return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)


def ci_loop(self, a, V):
    zs = []
    for c in range(V.shape[1]):
        h = (a * V[:, c]).sum(-1, keepdim=True)  # [batch inst 1]
        hidden = F.gelu(h * self.w_in[:, c] + self.b_in[:, c])  # [batch inst d_ci]
        zs.append((hidden * self.w_out[:, c]).sum(-1) + self.b_out[:, c])
    z = torch.stack(zs, dim=-1)
    return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)


@pytest.mark.parametrize(
    "impl",
    [ref.CausalImportance, type("Bmm", (ref.CausalImportance,), {"forward": ci_bmm}),
     type("Loop", (ref.CausalImportance,), {"forward": ci_loop}),
     ci_variant(lower=sigmoid_class(slope_fn=lower_masks), upper=sigmoid_class(slope_fn=upper_masks))],
)  # fmt: skip
def test_causal_importance_accepts(impl):
    assert_passes(checks.test_causal_importance, impl)


CLAMP = sigmoid_class(slope_fn=slopes(0, 0))


def ci_wrap(change):
    """The reference forward with its output changed."""
    return type(
        "Wrapped",
        (ref.CausalImportance,),
        {"forward": lambda self, a, V: change(ref.CausalImportance.forward(self, a, V))},
    )


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (ci_variant(act=F.relu), "relu"),
        (ci_variant(act=lambda t: t), "no_gelu"),
        (ci_variant(b_in="none"), "no_b_in"),
        (ci_variant(b_in="outside"), "b_in_outside"),
        (ci_variant(b_out=False), "no_b_out"),
        (ci_variant(reduce="mean"), "mean_over_hidden"),
        (ci_variant(share="component"), "shared_mlp"),
        (ci_variant(share="instance"), "instance_0"),
        (ci_variant(squash=torch.sigmoid), "smooth_sigmoid"),
        (ci_variant(squash=F.hardsigmoid), "torch_hardsigmoid"),
        (ci_variant(squash=lambda z: z), "no_sigmoid"),
        (ci_variant(squash=F.relu), "no_upper_clamp"),
        (ci_variant(swap=True), "swapped"),
        (ci_variant(upper=ref.LowerLeakyHardSigmoid), "both_lower"),
        (ci_variant(lower=ref.UpperLeakyHardSigmoid), "both_upper"),
        (ci_variant(lower=CLAMP, upper=CLAMP), "no_leak"),
        (ci_variant(alpha=0.01), "alpha_ignored"),
        (ci_variant(detach=True), "inner_detached"),
        (ci_variant(lower=CLAMP), "lower_no_leak"),
        (ci_variant(upper=CLAMP), "upper_no_leak"),
        (ci_wrap(lambda out: (out[0].detach(), out[1])), "lower_detached"),
        (ci_wrap(lambda out: (out[0], out[1].detach())), "upper_detached"),
        (ci_wrap(lambda out: out[0]), "not_pair"),
        (ci_wrap(lambda out: tuple(t * float("nan") for t in out)), "not_finite"),
        (ci_wrap(lambda out: torch.stack(out)), "not_pair"),
    ],
)  # fmt: skip
def test_causal_importance_rejects(impl, code):
    assert_fails(checks.test_causal_importance, impl, code)
