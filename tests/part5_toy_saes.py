"""Checkers for part 5 (sparse autoencoders in toy models).

Each checker calls the learner's code only for the part it tests: the rest of the SAE is the
reference (`solutions.part5_toy_saes`), so an unfinished earlier exercise never breaks a later check.
The learner's method is grafted onto a subclass of the reference class (`graft`).

Deterministic parts are compared with the reference on the same inputs, with non-zero biases,
per-instance sparsity coefficients, decoder rows of different norms and several instances, so every
term matters; a wrong output is compared with the catalogue of known mistakes (`tests.part5_toy_saes_mistakes`),
values first, then gradients. Random parts (resampling) are tested on the distribution of what they
produce, with tolerances from Bernstein's inequality (`tests.checking`), never against the reference's draws,
and with statistics that name the cause: which latents were resampled, what the directions were drawn from,
which inputs the sampling weights follow, which norm the encoder was scaled by.
"""

from __future__ import annotations

import copy
import inspect
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
from solutions.part1_superposition import ToyModel, ToyModelConfig
from tests import part5_toy_saes_advanced_probes as AP
from tests import part5_toy_saes_batch_calls as BC
from tests import part5_toy_saes_diagnosis as D
from tests import part5_toy_saes_faint_latents as FL
from tests import part5_toy_saes_frozen as FZ
from tests import part5_toy_saes_gen_layout as GL
from tests import part5_toy_saes_instance_readings as IR
from tests import part5_toy_saes_live_norm as LN
from tests import part5_toy_saes_loss_readings as RL
from tests import part5_toy_saes_mistakes as M
from tests import part5_toy_saes_offset_readings as OR
from tests import part5_toy_saes_probes as P
from tests import part5_toy_saes_readoffs as R
from tests import part5_toy_saes_row_norms as RN
from tests import part5_toy_saes_small_scale as SC
from tests import part5_toy_saes_sources as S
from tests import part5_toy_saes_tied_lengths as TL
from tests.checking import (
    _is_learner_frame,
    checker,
    expect_close,
    expect_matches,
    expect_scalar,
    expect_tensor,
    fail,
    generic_diagnosis,
    inplace_failure,
    returned,
)
from tests.mutants import Reference, call
from tests.output_order import FORWARD_OUTPUTS, expect_output_order

N_INST, D_IN, D_SAE, N_FEATS = 3, 4, 7, 6  # every size distinct: a factor or axis is named by one size only
COEFFS = [0.1, 0.3, 0.05]


# --------------------------------------------------------------------------------------------
# Building blocks (part 5a's checkers use them too)
# --------------------------------------------------------------------------------------------
def graft(base: type, impl: Any, names: tuple[str, ...]) -> type:
    """A subclass of the reference class `base` whose `names` come from the learner's class `impl`."""
    attrs = {}
    for name in names:
        try:
            attrs[name] = inspect.getattr_static(impl, name)
        except AttributeError:
            fail(
                f"{getattr(impl, '__name__', impl)!r} has no `{name}`",
                f"pass the class that defines `{name}`",
                code="missing",
            )
    return type(f"Learner{base.__name__}", (base,), attrs)


def _toy_model(device: torch.device, n_inst: int = N_INST, d_in: int = D_IN) -> ToyModel:
    cfg = ToyModelConfig(n_inst=n_inst, n_features=N_FEATS, d_hidden=d_in)
    probability = torch.linspace(0.05, 0.4, n_inst * N_FEATS).reshape(n_inst, N_FEATS)
    # uneven importances: generate_batch must not weight the features by them (importance 1 would hide it)
    importance = torch.linspace(0.5, 1.5, n_inst * N_FEATS).reshape(n_inst, N_FEATS)
    model = ToyModel(cfg, feature_probability=probability, importance=importance, device=device)
    with torch.no_grad():
        model.W.copy_(torch.randn(n_inst, d_in, N_FEATS, device=device))
    return model


def reference_sae(cls: type, device: torch.device, scale_biases: float = 0.5, **cfg_kwargs: Any) -> ref.ToySAE:
    """A reference-initialised SAE of class `cls` with random non-zero biases and uneven decoder norms."""
    kwargs = dict(n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, sparsity_coeff=COEFFS)
    kwargs.update(cfg_kwargs)
    cfg = ref.ToySAEConfig(**kwargs)
    model = _toy_model(device, cfg.n_inst, cfg.d_in)
    sae = ref.ToySAE.__new__(cls)
    base = next(c for c in cls.__mro__ if c.__module__.startswith("solutions."))  # the reference class
    base.__init__(sae, cfg, model)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            if name.startswith("model."):
                continue
            if name in ("W_enc", "_W_dec"):
                p.copy_(torch.randn_like(p) * (0.5 + torch.rand_like(p)))
            elif name == "log_threshold":
                p.copy_(torch.log(0.2 + 0.3 * torch.rand_like(p)))
            else:
                p.copy_(torch.randn_like(p) * scale_biases)
    return sae


def random_hidden(batch: int, n_inst: int, d_in: int, device: torch.device) -> Tensor:
    return torch.randn(batch, n_inst, d_in, device=device) + torch.linspace(-0.5, 1.0, d_in, device=device)


def call_forward(sae: ref.ToySAE, h: Tensor, what: str = "forward") -> tuple[dict, Tensor, Tensor, Tensor]:
    """Call the learner's forward on a copy of h; fail on a malformed return or on h changed in place."""
    h_in = h.clone()
    out = returned(P.reduced_local_on_error(lambda: sae(h_in), h, getattr(sae.cfg, "__dict__", {}), what), what)
    if not isinstance(out, tuple | list) or len(out) != 4:
        fail(
            f"{what} should return a tuple (loss_dict, loss, acts_post, h_reconstructed), got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, tuple | list) else ""),
            "return all four values, in that order",
            code="bad_return",
        )
    loss_dict, loss, acts, h_rec = out
    if not isinstance(loss_dict, dict):
        fail(
            f"the first value returned by {what} should be a dict, got {type(loss_dict).__name__}",
            "return the dict of per-example losses first: (loss_dict, loss, acts_post, h_reconstructed)",
            code="bad_return",
        )
    if not torch.equal(h_in, h):
        fail(
            f"{what} changed its input h in place",
            "`h -= self.b_dec` edits the caller's tensor: write `x = h - self.b_dec` instead",
            code="in_place_input",
        )
    return loss_dict, loss, acts, h_rec


def twin(sae: ref.ToySAE, cls: type) -> ref.ToySAE:
    """A copy of `sae` (same parameters, same frozen model) as an instance of `cls`."""
    twin = ref.ToySAE.__new__(cls)
    torch.nn.Module.__init__(twin)
    twin.cfg = sae.cfg
    twin.model = sae.model
    for name, p in sae.named_parameters(recurse=False):
        setattr(twin, name, torch.nn.Parameter(p.detach().clone()))
    twin._W_dec = None if sae._W_dec is None else twin._W_dec
    twin.register_buffer("sparsity_coeff", sae.sparsity_coeff.clone())
    return twin


def grads_of(sae: torch.nn.Module, loss: Tensor) -> dict[str, Tensor]:
    """d loss / d parameter for every trainable parameter (zeros where the loss doesn't reach it)."""
    params = {n: p for n, p in sae.named_parameters() if p.requires_grad}
    try:
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    except RuntimeError as err:
        inplace_failure(err, "your loss")
        if any(_is_learner_frame(f.filename) for f in traceback.extract_tb(err.__traceback__)):
            raise
        if "derivative for" in str(err) and "not implemented" in str(err):
            fail(
                f"backpropagating through your loss failed: {str(err).splitlines()[0]}",
                "an operation in your forward has no derivative, so training would stop here: make an indicator with "
                "a comparison, e.g. (x > 0).to(x.dtype), which autograd treats as a constant",
                code="no_derivative",
            )
        fail(
            f"backpropagating through your loss failed: {str(err).splitlines()[0]}",
            "a tensor passed to a custom autograd Function must match the gradient its backward returns: "
            "check the shapes of what you pass in",
            code="backward_failed",
        )
    return {n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params.items(), grads, strict=True)}


def expect_grads(
    got: dict[str, Tensor],
    want: dict[str, Tensor],
    mistakes: list[tuple[str, str, dict[str, Tensor]]],
    hints: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Gradients for every parameter match the reference's; when not, name the mistake (a gradient mutant, the
    opposite sign or a constant factor, or the parameters whose gradient is wrong)."""
    names = list(want)
    rtol, atol = 1e-3, 1e-5
    wrong = [n for n in names if not torch.allclose(got[n], want[n], rtol=rtol, atol=atol)]

    def flat(d: dict[str, Tensor]) -> Tensor:
        return torch.cat([d[n].detach().flatten() for n in names])

    catalogue = [(code, hint, flat(g)) for code, hint, g in mistakes]
    got_flat, want_flat = flat(got), flat(want)
    listed = ", ".join(f"`{n}`" for n in wrong) or "every parameter"
    if not wrong or any(torch.allclose(got_flat, value, rtol=rtol, atol=atol) for _, _, value in catalogue):
        expect_matches(got_flat, want_flat, f"the gradients with respect to {listed}", catalogue, rtol, atol)
        return
    generic = generic_diagnosis(got_flat, want_flat, None, rtol, atol)
    first = wrong[0]
    if generic is not None and generic[0] in ("sign", "scale"):
        hint, code = generic[1].replace("your values", "your gradients"), generic[0]
    else:
        hint, code = (hints or {}).get(
            first,
            (
                f"only the gradients of {listed} are wrong: a term that reaches them is missing, extra, or cut off "
                "by .detach(), .data or torch.no_grad()",
                "gradient",
            ),
        )
    expect_close(got[first], want[first], f"the gradient with respect to `{first}`", hint, code, rtol, atol)


def check_sae_forward(
    sae: ref.ToySAE,
    reference: ref.ToySAE,
    h: Tensor,
    forward: Callable[..., tuple],
    mistakes: list[tuple[str, str, str, dict]],
    grad_hints: dict[str, tuple[str, str]] | None = None,
    keys: tuple[str, ...] | None = None,
    hints: dict[str, str] | None = None,
    ingredients: dict[str, Callable] | None = None,
    solution: Callable | None = None,
) -> None:
    """Compare the learner's forward with `forward(reference, h)` output by output, naming known mistakes.

    `forward(sae, h, **bug)` is the reference forward with one mistake; `mistakes` are (code, hint, stage, bug)
    with stage the first output the mistake shows in ("acts", "h_reconstructed", a loss_dict key, "loss" or
    "grad"). `keys`: the loss_dict keys checked (default: all the reference returns). `hints`: per output, the
    hint when no known mistake or generic relation explains a wrong value (the formula to recompute).
    `ingredients`: per output ("acts", "h_reconstructed"), fn(reference, h) -> (combine, options) for
    `D.ingredient_diagnosis`, tried when no catalogued mistake matches. `solution`: the exercise's solution
    forward (unbound), whose one-edit mutants name a slip nobody listed (`tests.mutants`)."""
    hints, ingredients = hints or {}, ingredients or {}

    accepted: list[tuple[Callable, Tensor]] = []  # outputs already right: a fitting edit must keep them

    def picker(stage: str) -> Callable:
        outputs = {"acts": 2, "h_reconstructed": 3, "loss": 1}
        return lambda out: (out[outputs[stage]] if stage in outputs else out[0][stage]).detach()

    def solution_call(stage: str) -> Reference | None:  # the solution's call that gives the reference's `stage` output
        return None if solution is None else call(solution, reference, h, pick=picker(stage), agree=tuple(accepted))

    loss_dict, loss, acts, h_rec = call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = forward(reference, h)
    expect_output_order((loss_dict, loss, acts, h_rec), (ref_dict, ref_loss, ref_acts, ref_rec), FORWARD_OUTPUTS)
    outs = []  # a list, not a dict by code: several mistakes may share a code (the Huber thresholds, the powers)
    for code, hint, stage, bug in mistakes:
        d, total, a, r = forward(reference, h, **bug)
        outs.append((code, (hint, stage, {"acts": a, "h_reconstructed": r, "loss": total, **d}, total)))

    def catalogue(stage: str) -> list[tuple[str, str, Tensor]]:
        return [(c, hint, o[stage].detach()) for c, (hint, st, o, _) in outs if st == stage]

    def unlisted(got: Any, stage: str) -> bool:
        return isinstance(got, Tensor) and not any(
            v.shape == got.shape and torch.allclose(got.detach(), v, rtol=1e-4, atol=1e-5)
            for _, _, v in catalogue(stage)
        )

    def diagnose(got: Tensor, want: Tensor, stage: str, what: str) -> None:
        if stage in ingredients and unlisted(got, stage):
            with torch.no_grad():
                D.ingredient_diagnosis(got.detach(), want.detach(), what, *ingredients[stage](reference, h))

    stages = [  # (output, reference, stage, name, axes, default hint, code)
        (acts, ref_acts, "acts", "acts_post", "batch inst d_sae", None, "acts"),
        (h_rec, ref_rec, "h_reconstructed", "h_reconstructed", "batch inst d_in",
         "h_reconstructed = acts_post @ W_dec_normalized + b_dec, per instance", "values"),
    ]  # fmt: skip
    for got, want, stage, name, dims, default_hint, code in stages:
        expect_tensor(got, name, shape=want.shape, dims=dims, dtype=h.dtype, device=h.device)
        diagnose(got, want, stage, name)
        expect_matches(
            got.detach(),
            want.detach(),
            name,
            catalogue(stage),
            dims=dims,
            hint=hints.get(stage, default_hint),
            code=code,
            reference=solution_call(stage),
        )
        accepted.append((picker(stage), got.detach()))
    for key in keys or tuple(ref_dict):
        if key not in loss_dict:
            fail(
                f"loss_dict has no key {key!r} (keys: {list(loss_dict)})",
                f"add loss_dict[{key!r}] (shape [batch inst])",
                code="missing_key",
            )
        value = loss_dict[key]
        if isinstance(value, Tensor) and value.shape != h.shape[:2] and value.device.type != "meta":
            if value.ndim < 2:
                hint = (
                    "keep one loss per example and instance ([batch inst]): reduce over the last axis only "
                    "(F.mse_loss averages everything unless reduction='none')"
                )
            else:
                hint = "reduce over the last axis only (d_in or d_sae), keeping [batch inst]"
            fail(
                f"loss_dict[{key!r}] has shape {tuple(value.shape)}, expected (batch, inst) = {tuple(h.shape[:2])}",
                hint,
                "loss_shape",
            )
        value = expect_tensor(value, f"loss_dict[{key!r}]", shape=h.shape[:2], dims="batch inst", device=h.device)
        if unlisted(value, key):
            RL.loss_readings(value.to(h.dtype), ref_dict[key], key, ref_rec, h, reference)
            D.relation_hint(value.to(h.dtype), ref_dict[key], f"loss_dict[{key!r}]", {"k": getattr(sae.cfg, "k", -1)})
            if key == "L_sparsity" and hasattr(reference, "W_enc"):
                norms = {"‖W_dec[inst, latent]‖ (the unnormalised decoder rows' norms)": reference.W_dec.norm(dim=-1)}
                D.latent_weight_hint(value, acts, ref_dict[key], f"loss_dict[{key!r}]", norms)
            sizes = {"d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "batch": h.shape[0], "n_inst": sae.cfg.n_inst}
            D.size_factor_hint(value.to(h.dtype), ref_dict[key], f"loss_dict[{key!r}]", sizes)
        expect_matches(
            value.detach().to(h.dtype),
            ref_dict[key].detach(),
            f"loss_dict[{key!r}]",
            catalogue(key),
            dims="batch inst",
            hint=RL.key_hint(hints, key),
            reference=solution_call(key),
        )
        accepted.append((picker(key), value.detach().to(h.dtype)))
    loss = expect_scalar(loss, "loss", ref_loss.dtype)
    if unlisted(loss, "loss") and not torch.allclose(loss.detach(), ref_loss.detach(), rtol=1e-4, atol=1e-5):
        D.loss_probe(sae, reference, h, forward, lambda model, x: returned(model(x.clone()), "forward"))
    expect_matches(
        loss.detach(),
        ref_loss.detach(),
        "loss",
        catalogue("loss"),
        hint=hints.get("loss"),
        code="loss",
        reference=solution_call("loss"),
    )
    if not loss.requires_grad:
        fail(
            "the loss has no gradient",
            "don't detach the loss or compute it under torch.no_grad() or from .data",
            code="no_grad",
        )
    got, want = grads_of(sae, loss), grads_of(reference, ref_loss)
    grad_mistakes = [(c, hint, grads_of(reference, tot)) for c, (hint, st, _, tot) in outs if st == "grad"]
    expect_grads(got, want, grad_mistakes, grad_hints)


# --------------------------------------------------------------------------------------------
# Exercise 1: __init__
# --------------------------------------------------------------------------------------------
_SHAPE_HINTS = {
    "W_enc": ("transposed_W_enc", "W_enc is [inst d_in d_sae]: one column per latent"),
    "_W_dec": (
        "untransposed_W_dec",
        "the decoder is [inst d_sae d_in]: transpose W_enc's last two axes before cloning",
    ),
    **dict.fromkeys(
        ("b_enc", "b_dec"),
        ("bias_shapes", "b_enc has one entry per latent ([inst d_sae]), b_dec one per input dimension ([inst d_in])"),
    ),
}


def _build(impl: type, cfg: ref.ToySAEConfig, model: ToyModel) -> ref.ToySAE:
    try:
        return impl(cfg, model)
    except KeyError as err:
        if "'W_dec' already exists" in str(err):
            fail(
                f"assigning self.W_dec failed (KeyError: {err})",
                "W_dec is a read-only property: store the decoder parameter as `self._W_dec`",
                code="set_W_dec_property",
            )
        raise
    except AttributeError as err:
        if "before Module.__init__() call" in str(err):
            fail(
                f"creating the SAE raised AttributeError: {err}",
                "call super().__init__() first in __init__, before assigning any parameter",
                code="no_module_init",
            )
        if "W_dec" in str(err) and ("setter" in str(err) or "can't set" in str(err)):
            fail(
                f"assigning self.W_dec failed ({err})",
                "W_dec is a read-only property: store the decoder parameter as `self._W_dec`",
                code="set_W_dec_property",
            )
        raise


@checker("init", kind="class")
def test_init(impl: type, device: torch.device) -> str:
    for tied in (False, True):
        model = _toy_model(device)
        cfg = ref.ToySAEConfig(n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, tied_weights=tied)
        sae = _build(impl, cfg, model)
        if not isinstance(sae, torch.nn.Module) or not hasattr(sae, "_parameters"):
            fail("the SAE is not an nn.Module", "call super().__init__() first in __init__", code="no_module_init")
        params = dict(sae.named_parameters())
        shapes = {"W_enc": (N_INST, D_IN, D_SAE), "b_enc": (N_INST, D_SAE), "b_dec": (N_INST, D_IN)}
        if not tied:
            shapes["_W_dec"] = (N_INST, D_SAE, D_IN)
        for name, shape in shapes.items():
            value = getattr(sae, name, None)
            if value is None:
                fail(f"self.{name} is not set", f"create self.{name} in __init__", code="missing_attribute")
            if isinstance(value, Tensor) and tuple(value.shape) != shape and value.ndim == len(shape):
                code, hint = _SHAPE_HINTS[name]
                fail(f"self.{name} has shape {tuple(value.shape)}, expected {shape}", hint, code=code)
            if isinstance(value, Tensor) and value.ndim == len(shape) - 1 and tuple(value.shape) == shape[1:]:
                fail(
                    f"self.{name} has shape {tuple(value.shape)}, expected {shape}",
                    "every parameter has a leading inst axis (one independent SAE per instance): "
                    f"shape [cfg.n_inst, ...] = {shape}",
                    code="no_inst_axis",
                )
            expect_tensor(value, f"self.{name}", shape=shape, dtype=torch.float32, device=device)
            if name not in params:
                fail(f"self.{name} is not a registered parameter", "wrap it in nn.Parameter(...)", code="not_parameter")
        for name in ("b_enc", "b_dec"):
            if (getattr(sae, name) != 0).any():
                fail(
                    f"self.{name} should start at zero", "initialise the biases with torch.zeros", code="bias_not_zero"
                )
        W_enc = sae.W_enc.detach()
        if W_enc.abs().max() == 0:
            fail(
                "W_enc is all zeros",
                "use nn.init.kaiming_uniform_ (zero weights give zero activations and no gradient)",
                code="zero_init",
            )
        if (W_enc >= 0).all() or (W_enc <= 0).all():
            fail(
                "every entry of W_enc has the same sign, so every latent starts in one quadrant",
                "torch.rand draws from U[0, 1]: use nn.init.kaiming_uniform_ (symmetric around 0)",
                code="init_one_sign",
            )
        if torch.isclose(W_enc[0], W_enc[1]).all():
            fail(
                "W_enc is the same for every instance",
                "initialise the whole [inst d_in d_sae] tensor at once, not one instance repeated",
                code="same_instances",
            )
        if tied:
            if getattr(sae, "_W_dec", "missing") is not None:
                fail(
                    "with tied weights, self._W_dec should be None",
                    "set `self._W_dec = None` when cfg.tied_weights: the W_dec property then returns W_enc transposed",
                    code="tied_not_shared",
                )
        elif sae._W_dec.untyped_storage().data_ptr() == sae.W_enc.untyped_storage().data_ptr():
            fail(
                "the untied decoder shares memory with W_enc, so it is tied after all",
                "clone the transposed encoder: `self.W_enc.detach().transpose(-1, -2).clone()`",
                code="untied_shares_storage",
            )
        kept = P.kept_model(sae, model)  # the model itself or a copy: the docstring says "keep a frozen copy"
        FZ.check_model_frozen(model if kept is None else kept)
        if kept is None:
            fail("self.model should be the toy model passed in", "store it as `self.model`", code="model_missing")
        for name in shapes:
            if not params[name].requires_grad:
                fail(
                    f"self.{name} doesn't require gradients", "don't freeze the SAE's own parameters", code="sae_frozen"
                )
    P.check_fresh_init(sae, _build(impl, cfg, model))
    # generic sizes (n_inst 4, d_in 5, d_sae 1800): no Kaiming fan is 2, 3 or 6 times another (D.check_init_bound)
    big = ref.ToySAEConfig(n_inst=4, d_in=5, d_sae=1800)
    D.check_init_values(_build(impl, big, _toy_model(device, n_inst=4, d_in=5)))
    P.check_model_optional(impl, big)
    return "shapes, zero biases, tied and untied decoders, frozen model"


# --------------------------------------------------------------------------------------------
# Exercise 2: W_dec_normalized
# --------------------------------------------------------------------------------------------
def _normalization_sae(cls: type, device: torch.device, tied: bool) -> ref.ToySAE:
    """An SAE whose decoder rows have norms on both sides of 1, one zero row and one short row; the config's float
    fields all distinct (jumprelu_init_threshold moved off jumprelu_bandwidth's 1e-3), so an eps read back names one."""
    sae = reference_sae(cls, device, tied_weights=tied, jumprelu_init_threshold=2.5e-3)
    with torch.no_grad():
        sae.W_dec.data.mul_(torch.linspace(0.15, 2.5, D_SAE, device=device)[:, None])  # norms on both sides of 1
        sae.W_dec.data[1, 2] = 0.0  # a zero row must give zeros, not NaN
        sae.W_dec.data[2, 5] *= P.SHORT_ROW / sae.W_dec.data[2, 5].norm()  # eps inside a sqrt shows (P.SHORT_ROW)
    return sae


@checker("W_dec_normalized", kind="class")
def test_W_dec_normalized(impl: type, device: torch.device) -> str:
    cls = graft(ref.ToySAE, impl, ("W_dec_normalized",))
    for tied in (False, True):
        sae = _normalization_sae(cls, device, tied)
        eps = sae.cfg.weight_normalize_eps
        W = sae.W_dec.detach().clone()
        expected = ref.ToySAE.W_dec_normalized.fget(sae).detach()
        out = expect_tensor(
            RN.norms_returned(P.read_normalized(sae), W, eps),
            "W_dec_normalized",
            shape=(N_INST, D_SAE, D_IN),
            dims="inst d_sae d_in",
            dtype=W.dtype,
            device=device,
            finite=False,
        )
        if not torch.equal(sae.W_dec.detach(), W):
            fail(
                "computing W_dec_normalized changed the decoder parameter",
                "return a new tensor; don't divide in place (/=, div_) or write into .data",
                code="in_place",
            )
        RN.nonfinite_rows_failure(out, W, eps, sae)
        mistakes = [(code, hint, fn(W, eps)) for code, hint, fn in M.NORM_MISTAKES + RN.NORM_STATISTICS]
        if not tied:
            W_enc = sae.W_enc.detach()
            from_enc = (W_enc / (W_enc.norm(dim=1, keepdim=True) + eps)).transpose(-1, -2)
            mistakes.append(("used_W_enc", "normalise the decoder (self.W_dec), not the encoder", from_enc))
        P.short_row_hint(out.detach(), expected, W, mistakes, eps)
        sources = {} if tied else {"W_enc transposed": sae.W_enc.mT}
        RN.row_failures(out.detach(), expected, W, mistakes, sources, sae.cfg)
        expect_matches(
            out.detach(),
            expected,
            "W_dec_normalized",
            mistakes,
            dims="inst d_sae d_in",
            hint=M.norm_hint(out, W),
            reference=call(ref.ToySAE.W_dec_normalized.fget, sae, pick=lambda out: out.detach()),
        )
        if not out.requires_grad:
            fail(
                "W_dec_normalized has no gradient, so the decoder would never train",
                "don't use .data, .detach() or torch.no_grad() here",
                code="no_grad",
            )
        param = sae._W_dec if sae._W_dec is not None else sae.W_enc
        weights = torch.linspace(0.5, 1.5, D_IN, device=device)
        (grad,) = torch.autograd.grad((out * weights).sum(), param, allow_unused=True)  # in-place edits: checking
        (ref_grad,) = torch.autograd.grad((ref.ToySAE.W_dec_normalized.fget(sae) * weights).sum(), param)
        grad = torch.zeros_like(ref_grad) if grad is None else grad
        if tied:
            grad, ref_grad = grad.transpose(-1, -2), ref_grad.transpose(-1, -2)
        rows = W.norm(dim=-1) > 1e-2  # at a zero or short row the gradient depends on where eps goes
        expect_close(
            grad[rows],
            ref_grad[rows],
            "the gradient through W_dec_normalized",
            "compute the norm from W_dec itself (not from .data or a detached copy), so the gradient sees it",
            code="norm_detached",
            rtol=1e-3,
        )
        P.check_recomputed(sae, param, P.read_normalized, out)
    # the config's eps, not a hard-coded one: read again with another eps (a fresh SAE, after every other check)
    P.config_eps_failure(_normalization_sae(cls, device, tied=False), P.read_normalized)
    return "unit rows, zero row safe, tied and untied, gradients"


# --------------------------------------------------------------------------------------------
# Exercise 3: generate_batch
# --------------------------------------------------------------------------------------------
@checker("generate_batch", kind="class")
def test_generate_batch(impl: type, device: torch.device) -> str:
    cls = graft(ref.ToySAE, impl, ("generate_batch",))
    sae = reference_sae(cls, device)
    with torch.no_grad():  # a non-zero output bias, so that adding it to h shows
        sae.model.b_final.copy_(torch.linspace(-1.0, 1.0, sae.model.b_final.numel()).reshape(sae.model.b_final.shape))
    drawn: list[Tensor] = []
    model_generate = sae.model.generate_batch

    def recording_generate(batch_size: int) -> Tensor:
        batch = model_generate(batch_size)
        drawn.append(batch)
        return batch

    sae.model.generate_batch = recording_generate
    batch_size = 64
    h = returned(sae.generate_batch(batch_size), "generate_batch(64)")
    if isinstance(h, Tensor) and h.ndim == 3 and h.shape[1] == N_INST and h.device.type != "meta":
        R.batch_count_failure(h, batch_size, drawn, sae.model.W.detach())  # n_inst rows: x[i] for x[:, i]?
        S.feature_space_output(h, drawn, sae.model)  # [batch inst feats], or one cut to d_in
    h = expect_tensor(
        h,
        "generate_batch(64)",
        shape=(batch_size, N_INST, D_IN),
        dims="batch inst d_in",
        dtype=torch.float32,
        device=device,
    )
    if not drawn:
        fail(
            "generate_batch never called the toy model's generate_batch",
            "draw features with `self.model.generate_batch(batch_size)`, then map them through self.model.W",
            code="not_model_batch",
        )
    R.repeated_examples_failure(h, drawn, sae.model.W.detach())  # before reading the draws: a draw tiled or topped up
    W = sae.model.W.detach()
    # the learner may draw more than once (e.g. once per instance): each cell from the draw closest to it there
    gen_mistakes = [*M.GEN_MISTAKES, R.PRESENCE_MISTAKE]  # 0/1 presence: values dropped
    features = D.closest_features(drawn, h, W, [fn for _, _, fn in gen_mistakes])
    mistakes = [(code, hint, fn(features, W)) for code, hint, fn in gen_mistakes]
    mistakes.append(
        (
            "importance_weighted",
            "h = W x with the features as drawn: the importances weight the toy model's loss, not its input",
            M.hidden(features * sae.model.importance, W),
        )
    )
    hint = (
        "h should be einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> batch inst d_in') "
        "for features = self.model.generate_batch(batch_size)"
    )
    code = "not_model_batch" if len(drawn) == 1 else "values"
    diff = h.detach() - M.hidden(features, W)
    if diff.abs().max() > 1e-4 and torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-5):
        hint = "your h is W x plus the same vector for every example; " + OR.added_vector_reading(diff[0], sae)
        code = "bias_added"
    if not any(torch.allclose(h.detach(), v, rtol=1e-4, atol=1e-5) for _, _, v in mistakes):
        IR.unfilled_instances_failure(h, M.hidden(features, W))
        GL.reshaped_layout_failure(h, drawn, W), GL.noise_added_failure(h, M.hidden(features, W))
        R.pooled_features_failure(h, features, W), R.combined_draws_failure(h, drawn, W)
        R.feature_scale_failure(h, features, W, sae.model)
        IR.transformed_inputs_failure(h, features, W)
        D.linear_map_hint(h, features, W)
    expect_matches(
        h.detach(),
        M.hidden(features, W),
        "generate_batch",
        mistakes,
        dims="batch inst d_in",
        hint=hint,
        code=code,
        # the solution's generate_batch on a stand-in SAE whose model draws exactly `features`
        reference=call(
            ref.ToySAE.generate_batch,
            SimpleNamespace(model=SimpleNamespace(generate_batch=lambda n: features, W=W)),
            batch_size,
        ),
    )
    h2 = sae.generate_batch(batch_size)
    if isinstance(h2, Tensor) and h2.shape == h.shape and torch.equal(h.detach(), h2.detach()):
        fail("two calls returned the same batch", "draw a fresh feature batch on every call", code="not_fresh")
    R.batch_of_one_failure(sae)
    return "h = W x of a fresh feature batch from the model"


# --------------------------------------------------------------------------------------------
# Exercise 4: forward
# --------------------------------------------------------------------------------------------
@checker("forward", kind="class")
def test_forward(impl: type, device: torch.device) -> str:
    cls = graft(ref.ToySAE, impl, ("forward",))
    h = random_hidden(32, N_INST, D_IN, device)  # d_in = 4: no size equals another (n_inst 3, d_sae 7)
    hints = {
        "acts": "acts_post = ReLU((h - b_dec) @ W_enc + b_enc), per instance",
        "L_reconstruction": "L_reconstruction = ((h_reconstructed - h) ** 2).mean(-1)",
        "L_sparsity": "L_sparsity = acts_post.abs().sum(-1)",
        "loss": "loss = (L_reconstruction + sparsity_coeff · L_sparsity), mean over the batch, sum over instances; "
        "sparsity_coeff is [inst], used as it is",
    }
    ingredients = {"acts": IR.acts_options, "h_reconstructed": D.vanilla_decode_options}
    for tied in (False, True):  # tied: sae._W_dec is None, the decoder is W_enc transposed
        sae = reference_sae(cls, device, tied_weights=tied)
        listed = [m for m in M.FORWARD_MISTAKES + RL.FORWARD_EXTRA if not tied or m[0] != "decoder_is_encoder"]
        run = lambda s=sae, listed=listed: check_sae_forward(
            s, twin(s, ref.ToySAE), h, M.vanilla_forward, listed, hints=hints,
            ingredients=ingredients, solution=ref.ToySAE.forward,
        )  # fmt: skip
        P.check_tied_forward(run) if tied else run()
    small, h_small = reference_sae(cls, device, scale_biases=1e-4), h * 3e-4  # pre-activations ~1e-4
    SC.small_preactivations(small, twin(small, ref.ToySAE), h_small, call_forward)
    return "activations, reconstruction, per-example losses, total loss and gradients"


# --------------------------------------------------------------------------------------------
# Exercises 5 and 6: resampling
# --------------------------------------------------------------------------------------------
def _snapshot(sae: ref.ToySAE) -> dict[str, Any]:
    snap = {n: getattr(sae, n).detach().clone() for n in ("W_enc", "W_dec", "b_enc", "b_dec")}
    return {**snap, "params": dict(sae.named_parameters(recurse=False))}


@checker("resample_simple", kind="function")
def test_resample_simple(impl: Callable, device: torch.device) -> str:
    n_inst, d_in, d_sae, n_dead, scale = 4, 3, 6000, 5900, 0.37
    sae = reference_sae(ref.ToySAE, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
    frac, groups = M.window_groups(n_inst, d_sae, n_dead, device)
    P.spare_instance(frac, groups, 1)  # nothing dead in instance 1: a loop must go on to instances 2 and 3
    dead = groups["dead"]
    before = _snapshot(sae)
    D.call_resampler(lambda: impl(sae, frac.clone(), scale))
    P.check_loop_stopped(sae, before, dead)
    P.encoder_through_reshape(sae, before, dead, scale)
    P.pooled_dead_probe(impl, lambda **kw: reference_sae(ref.ToySAE, device, sparsity_coeff=0.1, **kw))
    M.check_which_latents(sae, before, dead, frac, groups, torch.ones(n_inst, dtype=torch.bool, device=device))
    FL.faint_latents_probe(impl, (scale,), device, reference_sae, D.call_resampler)  # a threshold rule
    M.check_encoder_bias(sae, dead, before)
    rows = M.unit_rows(sae, before, dead, scale, drawn=True)
    enc = sae.W_enc.detach().transpose(-1, -2)[dead]
    if not torch.allclose(enc, rows * scale, rtol=1e-4, atol=1e-6):
        LN.live_norm_factor(enc, rows, before["W_enc"], dead, scale)
        D.resample_enc_mismatch(enc, rows, before["W_enc"].transpose(-1, -2)[dead], scale)
    D.check_shared_draws(sae.W_dec, dead)
    M.check_isotropic(rows)
    IR.dead_count_probe(
        impl, lambda **kw: reference_sae(ref.ToySAE, device, sparsity_coeff=0.1, **kw), D.call_resampler
    )
    _check_tied(impl, device)
    return f"{rows.shape[0]} resampled latents: unit, isotropic, scaled encoder, live latents untouched"


def _check_tied(impl: Callable, device: torch.device) -> None:
    """With tied weights (no _W_dec), resampling must still work: the dead latents' columns change, the rest stay."""
    sae = reference_sae(ref.ToySAE, device, n_inst=2, d_in=3, d_sae=40, sparsity_coeff=0.1, tied_weights=True)
    frac, groups = M.window_groups(2, 40, 20, device)
    before, spare = _snapshot(sae), copy.deepcopy(sae)  # spare: a second call shows whether the draw is fresh
    D.call_resampler(lambda: impl(sae, frac.clone(), 0.37))
    changed = (sae.W_enc.detach() != before["W_enc"]).any(1)
    if not torch.equal(changed, groups["dead"]):
        fail(
            "with tied weights (cfg.tied_weights, so sae._W_dec is None) the wrong latents changed",
            "index through sae.W_dec and sae.W_enc, which share storage when tied; change only the dead latents",
            code="tied_weights",
        )
    TL.tied_lengths(sae, groups["dead"], 0.37)
    D.check_fresh_draws(lambda: D.call_resampler(lambda: impl(spare, frac.clone(), 0.37)), sae, spare, changed)


@checker("resample_advanced", kind="function")
def test_resample_advanced(impl: Callable, device: torch.device) -> str:
    n_inst, d_in, d_sae, n_dead, scale, batch_size = 4, 4, 1000, 900, 0.37, 400
    sae = reference_sae(ref.ToySAE, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)  # nothing fires, so h_rec = b_dec and L_rec = ‖h - b_dec‖² / d_in is known
        sae.b_enc[:, 0] = 0.5  # a live latent that fires...
        sae._W_dec[:, 0] = 0.0  # ...but writes nothing, so the losses stay known
    frac, groups = M.window_groups(n_inst, d_sae, n_dead, device)
    frac[:, :, 0] = 0.3
    for mask in groups.values():
        mask[:, 0] = False
    dead = groups["dead"]
    with torch.no_grad():  # each group's encoder columns scaled apart: which latents a mean norm is over shows
        sae.W_enc.mul_(P.group_scales(groups)[:, None, :])
    q = torch.tensor(M.Q, device=device)
    active = q.sum(-1) > 0
    sae.generate_batch = M.prototype_batch(sae.b_dec, q)
    before, spare = {**_snapshot(sae), "q": q}, copy.deepcopy(sae)  # spare: a 2nd run shows if the choice is random
    b_dec = sae.b_dec.detach().clone()
    BC.called_with_batch_size(sae, batch_size, lambda: impl(sae, frac.clone(), scale, batch_size), D.call_resampler)
    expected = dead & active[:, None]
    M.check_which_latents(sae, before, expected, frac, groups, active)
    M.check_encoder_bias(sae, expected, before)
    rows = M.unit_rows(sae, before, expected, scale)
    again = D.rerun(impl, spare, frac, scale, batch_size)
    alt = D.other_losses(spare)  # before the second run: the per-type losses a wrong weight might follow
    M.check_sampling(rows, expected, q, b_dec, active, lambda: D.check_random_choice(again, spare, rows, expected), alt)
    # encoder column = v · resample_scale · (mean norm of the live latents' encoder columns in that instance)
    enc = sae.W_enc.detach().transpose(-1, -2)[expected]
    inst_of = expected.nonzero()[:, 0]
    length = (enc * rows).sum(-1)
    candidates = M.scale_candidates(before["W_enc"], dead, scale, before["W_dec"])
    want = scale * candidates[0][2]  # scale_ignored's length is the mean live norm
    if not torch.allclose(enc, rows * (want[inst_of])[:, None], rtol=1e-3, atol=1e-6):
        if not torch.allclose(enc, rows * length[:, None], rtol=1e-3, atol=1e-6):
            fail(
                "the new encoder columns don't point along the new decoder directions",
                "use the same direction v for both: encoder column = v · resample_scale · mean live encoder norm",
                code="enc_mismatch",
            )
        P.enc_length_hint(enc, rows, want, inst_of, before["W_enc"], dead, scale, q, frac)
        R.pooled_live_set(length, inst_of, before["W_enc"], dead, scale)
        per_inst = torch.stack([length[inst_of == k].mean() for k in range(n_inst) if active[k]])
        for code, hint, value in candidates:
            if torch.allclose(per_inst, value[active], rtol=1e-3):
                fail("the new encoder columns have the wrong length", hint, code)
        if stat := R.live_norm_statistic(length, inst_of, before["W_enc"], dead, scale):
            fail(
                stat,
                "encoder column = v · resample_scale · mean over live latents j of ‖W_enc[inst, :, j]‖",
                "enc_stat",
            )
        IR.enc_length_failure(per_inst, want, active, before["W_enc"], dead, scale, frac)
    R.left_alone(sae, before, ~active)  # every parameter of an all-zero-loss instance unchanged
    FL.faint_latents_probe(impl, (scale, 64), device, reference_sae, D.call_resampler)  # a threshold rule
    AP.advanced_probes(impl, device, D.call_resampler, reference_sae)  # fallback, own inputs, replacement, tied, ...
    return f"{rows.shape[0]} resampled latents: chosen ∝ loss², unit directions, scaled encoders, others untouched"
