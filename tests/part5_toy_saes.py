"""Checkers for part 5 (sparse autoencoders in toy models).

Each checker calls the learner's code only for the part it tests: the rest of the SAE is the
reference (`solutions.part5_toy_saes`), so an unfinished earlier exercise never breaks a later check.
The learner's method is grafted onto a subclass of the reference class (`_graft`).

Deterministic parts are compared with the reference on the same inputs, with non-zero biases,
per-instance sparsity coefficients, decoder rows of different norms and several instances, so every
term matters. Random parts (resampling) are tested on the distribution of what they produce, with
tolerances from Bernstein's inequality (`tests.checking`), never against the reference's draws.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
from solutions.part1_superposition import ToyModel, ToyModelConfig
from tests.checking import (
    FAILURE_PROBABILITY,
    bernstein_tolerance,
    checker,
    expect_close,
    expect_frequency,
    expect_matches,
    expect_scalar,
    expect_tensor,
    fail,
    returned,
)

N_INST, D_IN, D_SAE, N_FEATS = 3, 3, 7, 5
COEFFS = [0.1, 0.3, 0.05]


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
def _graft(base: type, impl: Any, names: tuple[str, ...]) -> type:
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
    model = ToyModel(cfg, feature_probability=probability, device=device)
    with torch.no_grad():
        model.W.copy_(torch.randn(n_inst, d_in, N_FEATS, device=device))
    return model


def _sae(cls: type, device: torch.device, scale_biases: float = 0.5, **cfg_kwargs: Any) -> ref.ToySAE:
    """A reference-initialised SAE of class `cls` with random non-zero biases and uneven decoder norms."""
    kwargs = dict(n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, sparsity_coeff=COEFFS)
    kwargs.update(cfg_kwargs)
    cfg = ref.ToySAEConfig(**kwargs)
    model = _toy_model(device, cfg.n_inst, cfg.d_in)
    sae = ref.ToySAE.__new__(cls)
    base = next(c for c in cls.__mro__ if c.__module__ == ref.__name__)
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


def _hidden(batch: int, n_inst: int, d_in: int, device: torch.device) -> Tensor:
    return torch.randn(batch, n_inst, d_in, device=device) + torch.linspace(-0.5, 1.0, d_in, device=device)


def _call_forward(sae: ref.ToySAE, h: Tensor, what: str = "forward") -> tuple[dict, Tensor, Tensor, Tensor]:
    out = returned(sae(h), what)
    if not isinstance(out, tuple | list) or len(out) != 4:
        fail(
            f"{what} should return a tuple (loss_dict, loss, acts_post, h_reconstructed), got {type(out).__name__}",
            "return all four values, in that order",
            code="bad_return",
        )
    loss_dict, loss, acts, h_rec = out
    if not isinstance(loss_dict, dict):
        fail(
            f"the first value returned by {what} should be a dict, got {type(loss_dict).__name__}",
            "return the dict of per-example losses first",
            code="bad_return",
        )
    return loss_dict, loss, acts, h_rec


def _diagnose(actual: Tensor, expected: Tensor, what: str, dims: str, candidates: list, code: str, hint: str) -> None:
    """`expect_matches` with this module's candidate order: (value, hint, code) triples."""
    mistakes = [(cand_code, cand_hint, cand_value) for cand_value, cand_hint, cand_code in candidates]
    expect_matches(actual, expected, what, mistakes, dims=dims, hint=hint, code=code)


def _grads(sae: torch.nn.Module, loss: Tensor) -> dict[str, Tensor]:
    params = {n: p for n, p in sae.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params.items(), grads, strict=True)}


def _compare_grads(
    learner: torch.nn.Module,
    loss: Tensor,
    reference: torch.nn.Module,
    ref_loss: Tensor,
    hints: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Gradients of the learner's loss must match the reference's for every parameter."""
    if not loss.requires_grad:
        fail("the loss has no gradient", "don't detach the loss or compute it under torch.no_grad()", code="no_grad")
    got, want = _grads(learner, loss), _grads(reference, ref_loss)
    for name, g in want.items():
        hint, code = (hints or {}).get(name, ("a term of the loss is missing, extra, or detached", "gradient"))
        expect_close(
            got[name], g, f"the gradient of the loss with respect to `{name}`", hint, code=code, rtol=1e-3, atol=1e-5
        )


def _twin(sae: ref.ToySAE, cls: type) -> ref.ToySAE:
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


# --------------------------------------------------------------------------------------------
# Exercise 1: __init__
# --------------------------------------------------------------------------------------------
@checker("init")
def test_init(impl: type, device: torch.device) -> str:
    for tied in (False, True):
        model = _toy_model(device)
        cfg = ref.ToySAEConfig(n_inst=N_INST, d_in=D_IN, d_sae=D_SAE, tied_weights=tied)
        sae = impl(cfg, model)
        params = dict(sae.named_parameters())
        shapes = {"W_enc": (N_INST, D_IN, D_SAE), "b_enc": (N_INST, D_SAE), "b_dec": (N_INST, D_IN)}
        if not tied:
            shapes["_W_dec"] = (N_INST, D_SAE, D_IN)
        for name, shape in shapes.items():
            value = getattr(sae, name, None)
            expect_tensor(value, f"self.{name}", shape=shape, dims=None, device=device)
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
        if torch.isclose(W_enc[0], W_enc[1]).all():
            fail(
                "W_enc is the same for every instance",
                "initialise the whole [inst d_in d_sae] tensor at once",
                code="same_instances",
            )
        if tied:
            if getattr(sae, "_W_dec", "missing") is not None:
                fail(
                    "with tied weights, self._W_dec should be None",
                    "set `self._W_dec = None` when cfg.tied_weights",
                    code="tied_not_shared",
                )
        else:
            if sae._W_dec.untyped_storage().data_ptr() == sae.W_enc.untyped_storage().data_ptr():
                fail(
                    "the untied decoder shares memory with W_enc, so it is tied after all",
                    "clone the transposed encoder: `self.W_enc.detach().transpose(-1, -2).clone()`",
                    code="untied_shares_storage",
                )
        if any(p.requires_grad for p in model.parameters()):
            fail(
                "the toy model's parameters still require gradients",
                "freeze it with `model.requires_grad_(False)` so training the SAE can't change it",
                code="model_not_frozen",
            )
        if getattr(sae, "model", None) is not model:
            fail("self.model should be the toy model passed in", "store it as `self.model`", code="model_missing")
        for name in shapes:
            if not params[name].requires_grad:
                fail(
                    f"self.{name} doesn't require gradients", "don't freeze the SAE's own parameters", code="sae_frozen"
                )
    return "shapes, zero biases, tied and untied decoders, frozen model"


# --------------------------------------------------------------------------------------------
# Exercise 2: W_dec_normalized
# --------------------------------------------------------------------------------------------
@checker("W_dec_normalized")
def test_W_dec_normalized(impl: type, device: torch.device) -> str:
    cls = _graft(ref.ToySAE, impl, ("W_dec_normalized",))
    for tied in (False, True):
        sae = _sae(cls, device, tied_weights=tied)
        with torch.no_grad():
            sae.W_dec.data[1, 2] = 0.0  # a zero row must give zeros, not NaN
        expected = ref.ToySAE.W_dec_normalized.fget(sae)
        before = sae.W_dec.detach().clone()
        out = expect_tensor(
            sae.W_dec_normalized,
            "W_dec_normalized",
            shape=(N_INST, D_SAE, D_IN),
            dims="inst d_sae d_in",
            device=device,
            finite=False,
        )
        if not torch.isfinite(out).all():
            fail(
                "W_dec_normalized contains NaN or inf for an all-zero decoder row",
                "add cfg.weight_normalize_eps to the norm before dividing",
                code="zero_row",
            )
        if not torch.equal(sae.W_dec.detach(), before):
            fail(
                "computing W_dec_normalized changed the decoder parameter",
                "return a new tensor; don't divide in place",
                code="in_place",
            )
        norms = out.detach().norm(dim=-1)
        if not torch.isclose(norms[0], torch.ones_like(norms[0]), atol=1e-4).all():
            other = out.detach().norm(dim=-2)
            hint = (
                "each latent's *row* should be unit norm: normalise over d_in (dim=-1)"
                if torch.isclose(other, torch.ones_like(other), atol=1e-4).all()
                else "divide each row [inst, latent, :] by its own norm"
            )
            fail(f"decoder rows have norms {norms[0].tolist()}, expected 1", hint, code="not_unit")
        expect_close(out, expected, "W_dec_normalized", "divide each row by (its norm + eps)", dims="inst d_sae d_in")
        if not out.requires_grad:
            fail(
                "W_dec_normalized has no gradient, so the decoder would never train",
                "don't use .data, .detach() or torch.no_grad() here",
                code="no_grad",
            )
    return "unit rows, zero row safe, tied and untied"


# --------------------------------------------------------------------------------------------
# Exercise 3: generate_batch
# --------------------------------------------------------------------------------------------
@checker("generate_batch")
def test_generate_batch(impl: type, device: torch.device) -> str:
    cls = _graft(ref.ToySAE, impl, ("generate_batch",))
    sae = _sae(cls, device)
    drawn: list[Tensor] = []
    model_generate = sae.model.generate_batch

    def recording_generate(batch_size: int) -> Tensor:
        batch = model_generate(batch_size)
        drawn.append(batch)
        return batch

    sae.model.generate_batch = recording_generate
    batch_size = 64
    h = expect_tensor(
        sae.generate_batch(batch_size),
        "generate_batch(64)",
        shape=(batch_size, N_INST, D_IN),
        dims="batch inst d_in",
        device=device,
    )
    if len(drawn) != 1:
        fail(
            f"generate_batch called the toy model's generate_batch {len(drawn)} times, expected once",
            "draw features with `self.model.generate_batch(batch_size)` (once), then map them through W",
            code="not_model_batch",
        )
    features = drawn[0]
    expected = torch.einsum("bif,idf->bid", features, sae.model.W.detach())
    candidates = [
        (torch.relu(expected), "no ReLU here: the SAE reads h = W x itself", "relu"),
        (
            torch.einsum("bif,df->bid", features, sae.model.W.detach()[0]),
            "use each instance's own W (keep the inst axis in the einsum)",
            "instance_mixing",
        ),
    ]
    _diagnose(
        h,
        expected,
        "generate_batch",
        "batch inst d_in",
        candidates,
        "values",
        "h should be einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> batch inst d_in')",
    )
    h2 = sae.generate_batch(batch_size)
    if torch.equal(h, h2):
        fail("two calls returned the same batch", "draw a fresh feature batch on every call", code="not_fresh")
    return "h = W x of a fresh feature batch from the model"


# --------------------------------------------------------------------------------------------
# Exercise 4: forward
# --------------------------------------------------------------------------------------------
def _vanilla_candidates(sae: ref.ToySAE, h: Tensor) -> dict[str, Tensor]:
    """Outputs of common mistakes, for naming them."""
    W_hat = ref.ToySAE.W_dec_normalized.fget(sae).detach()
    W_enc, b_enc, b_dec = sae.W_enc.detach(), sae.b_enc.detach(), sae.b_dec.detach()

    def encode(x: Tensor, bias: Tensor | float) -> Tensor:
        return torch.relu(torch.einsum("bid,ids->bis", x, W_enc) + bias)

    acts = encode(h - b_dec, b_enc)
    return {
        "acts_no_bdec": encode(h, b_enc),
        "acts_no_benc": encode(h - b_dec, 0.0),
        "rec_unnormalized": torch.einsum("bis,isd->bid", acts, sae.W_dec.detach()) + b_dec,
        "rec_no_bdec": torch.einsum("bis,isd->bid", acts, W_hat),
    }


@checker("forward")
def test_forward(impl: type, device: torch.device) -> str:
    cls = _graft(ref.ToySAE, impl, ("forward",))
    sae = _sae(cls, device)
    reference = _twin(sae, ref.ToySAE)
    h = _hidden(32, N_INST, D_IN, device)
    loss_dict, loss, acts, h_rec = _call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = reference(h)
    cand = _vanilla_candidates(reference, h)

    expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
    _diagnose(
        acts,
        ref_acts.detach(),
        "acts_post",
        "batch inst d_sae",
        [
            (cand["acts_no_bdec"], "subtract b_dec from h before the encoder", "no_b_dec_subtraction"),
            (cand["acts_no_benc"], "add b_enc to the pre-activation before the ReLU", "no_b_enc"),
        ],
        "acts",
        "acts_post = ReLU((h - b_dec) @ W_enc + b_enc), per instance",
    )
    expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
    _diagnose(
        h_rec,
        ref_rec.detach(),
        "h_reconstructed",
        "batch inst d_in",
        [
            (cand["rec_unnormalized"], "decode with self.W_dec_normalized, not self.W_dec", "unnormalized_decoder"),
            (cand["rec_no_bdec"], "add b_dec back after decoding", "no_b_dec_add"),
        ],
        "reconstruction",
        "h_reconstructed = acts_post @ W_dec_normalized + b_dec",
    )
    _check_loss_dict(loss_dict, ref_dict, h, acts)
    loss = expect_scalar(loss, "loss")
    _check_total_loss(loss, ref_loss, ref_dict, reference.sparsity_coeff)
    _compare_grads(sae, loss, reference, ref_loss)
    return "activations, reconstruction, per-example losses, total loss and gradients"


def _check_loss_keys(loss_dict: dict, ref_dict: dict, h: Tensor) -> None:
    """loss_dict has every key the reference returns, each a per-example [batch inst] tensor."""
    batch, n_inst = h.shape[:2]
    for key in ref_dict:
        if key not in loss_dict:
            fail(
                f"loss_dict has no key {key!r} (keys: {list(loss_dict)})",
                f"add loss_dict[{key!r}] (shape [batch inst])",
                code="missing_key",
            )
        value = loss_dict[key]
        expect_tensor(value, f"loss_dict[{key!r}]", shape=(batch, n_inst), dims="batch inst", device=h.device)


def _expect_reconstruction_loss(loss_dict: dict, ref_dict: dict) -> None:
    expect_close(
        loss_dict["L_reconstruction"].detach(),
        ref_dict["L_reconstruction"].detach(),
        "L_reconstruction",
        "mean over d_in of the squared error",
        code="rec_loss",
        dims="batch inst",
    )


def _check_loss_dict(loss_dict: dict, ref_dict: dict, h: Tensor, acts: Tensor) -> None:
    _check_loss_keys(loss_dict, ref_dict, h)
    err = (loss_dict["L_reconstruction"].detach(), ref_dict["L_reconstruction"].detach())
    d_in = h.shape[-1]
    _diagnose(
        err[0],
        err[1],
        "L_reconstruction",
        "batch inst",
        [
            (err[1] * d_in, "take the mean over d_in, not the sum", "rec_sum"),
            (err[1].sqrt(), "use the squared error, not its square root", "rec_sqrt"),
        ],
        "rec_loss",
        "L_reconstruction = ((h_reconstructed - h) ** 2).mean(-1)",
    )
    if "L_sparsity" in ref_dict and "L_aux" not in ref_dict and ref_dict["L_sparsity"].requires_grad:
        sp = loss_dict["L_sparsity"].detach()
        a = acts.detach()
        _diagnose(
            sp,
            ref_dict["L_sparsity"].detach(),
            "L_sparsity",
            "batch inst",
            [
                (a.norm(dim=-1), "the sparsity loss is the L1 norm (sum of |acts|), not the L2 norm", "sparsity_l2"),
                (
                    a.pow(2).sum(-1),
                    "the sparsity loss is the L1 norm (sum of |acts|), not a sum of squares",
                    "sparsity_l2",
                ),
                (a.abs().mean(-1), "sum over latents, don't average", "sparsity_mean"),
            ],
            "sparsity_loss",
            "L_sparsity = acts_post.abs().sum(-1)",
        )


def _check_total_loss(loss: Tensor, ref_loss: Tensor, ref_dict: dict, coeff: Tensor, aux: bool = False) -> None:
    per = ref_dict["L_reconstruction"] + coeff * ref_dict["L_sparsity"] + (ref_dict["L_aux"] if aux else 0.0)
    per = per.detach()
    candidates = [
        (per.mean(), "sum over instances (each SAE gets its own gradient), don't average", "loss_mean_inst"),
        (per.sum(), "average over the batch, then sum over instances", "loss_sum_batch"),
        (
            (ref_dict["L_reconstruction"] + ref_dict["L_sparsity"]).detach().mean(0).sum(),
            "multiply L_sparsity by self.sparsity_coeff (one value per instance)",
            "no_coeff",
        ),
    ]
    for value, hint, code in candidates:
        if torch.isclose(loss.detach(), value, rtol=1e-4) and not torch.isclose(value, ref_loss.detach(), rtol=1e-4):
            fail(f"loss is {loss.item():.6g}, expected {ref_loss.item():.6g}", hint, code=code)
    expect_close(
        loss.detach(),
        ref_loss.detach(),
        "loss",
        "loss = (L_reconstruction + coeff · L_sparsity) averaged over the batch, summed over instances",
        code="loss",
    )


# --------------------------------------------------------------------------------------------
# Exercises 5 and 6: resampling
# --------------------------------------------------------------------------------------------
def _window(n_inst: int, d_sae: int, n_dead: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """frac_active_in_window [window inst d_sae] with, per instance: `n_dead` latents dead over the whole
    window, and among the live ones some that fired only early (dead at the last step) or only at the last step.
    Returns (window, dead mask, mask of latents dead at the last step but alive earlier)."""
    window = 6
    frac = torch.rand(window, n_inst, d_sae, device=device) * 0.2 + 0.01
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device)
    last_only_dead = torch.zeros_like(dead)
    for k in range(n_inst):
        perm = torch.randperm(d_sae, device=device)
        dead[k, perm[:n_dead]] = True
        last_only_dead[k, perm[n_dead : n_dead + 3]] = True
        frac[:, k, perm[:n_dead]] = 0.0
        frac[1:, k, perm[n_dead : n_dead + 3]] = 0.0  # fired at step 0 only: alive
        frac[:-1, k, perm[n_dead + 3 : n_dead + 6]] = 0.0  # fired at the last step only: alive
    return frac, dead, last_only_dead


def _params_before(sae: ref.ToySAE) -> dict[str, Tensor]:
    return {
        "W_enc": sae.W_enc.detach().clone(),
        "W_dec": sae.W_dec.detach().clone(),
        "b_enc": sae.b_enc.detach().clone(),
    }


def _check_untouched(sae: ref.ToySAE, before: dict[str, Tensor], dead: Tensor, last_only_dead: Tensor) -> None:
    """Live latents keep their parameters exactly; dead ones all change."""
    changed = (
        (sae.W_enc.detach() != before["W_enc"]).any(1)
        | (sae.W_dec.detach() != before["W_dec"]).any(-1)
        | (sae.b_enc.detach() != before["b_enc"])
    )
    wrongly = changed & ~dead
    if wrongly.any():
        if (wrongly == last_only_dead).all():
            fail(
                "latents that fired earlier in the window but not at its last step were resampled",
                "a latent is dead only if it fired at *no* step of the window: "
                "`(frac_active_in_window <= 0).all(dim=0)`, not just the last row",
                code="last_step_only",
            )
        fail(
            f"{int(wrongly.sum())} live latents were changed",
            "change only the dead latents' rows, columns and biases",
            code="alive_touched",
        )
    missed = dead & ~changed
    if missed.any():
        fail(
            f"{int(missed.sum())} of {int(dead.sum())} dead latents were not resampled",
            "resample every latent that is dead over the window, in every instance",
            code="dead_not_resampled",
        )
    if (sae.b_enc.detach()[dead] != 0).any():
        fail(
            "the encoder bias of resampled latents is not zero",
            "set b_enc to 0 for the resampled latents",
            code="b_enc_not_reset",
        )


def _unit_rows(W_dec: Tensor, dead: Tensor) -> Tensor:
    rows = W_dec.detach()[dead]
    norms = rows.norm(dim=-1)
    if not torch.isclose(norms, torch.ones_like(norms), atol=1e-4).all():
        fail(
            f"resampled decoder rows have norms between {norms.min():.3g} and {norms.max():.3g}, expected 1",
            "normalise each new direction to unit length before writing it into the decoder",
            code="dec_not_unit",
        )
    return rows


@checker("resample_simple")
def test_resample_simple(impl: Callable, device: torch.device) -> str:
    cls = _graft(ref.ToySAE, type("Impl", (), {"resample_simple": impl}), ("resample_simple",))
    n_inst, d_in, d_sae, n_dead, scale = 4, 3, 700, 600, 0.37
    sae = _sae(cls, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
    frac, dead, last_only_dead = _window(n_inst, d_sae, n_dead, device)
    before = _params_before(sae)
    with torch.no_grad():
        sae.resample_simple(frac, scale)
    _check_untouched(sae, before, dead, last_only_dead)
    rows = _unit_rows(sae.W_dec, dead)
    enc = sae.W_enc.detach().transpose(-1, -2)[dead]
    if not torch.isclose(enc, rows * scale, rtol=1e-4, atol=1e-6).all():
        if torch.isclose(enc, rows, rtol=1e-4, atol=1e-6).all():
            fail(
                "the new encoder columns equal the decoder directions: resample_scale was ignored",
                "set the encoder column to resample_scale · v",
                code="scale_ignored",
            )
        fail(
            "the new encoder columns are not resample_scale times the new decoder directions",
            "use the same direction v for both: decoder row v, encoder column resample_scale · v",
            code="enc_mismatch",
        )
    n = rows.shape[0]
    if torch.unique(rows.round(decimals=5), dim=0).shape[0] < n // 2:
        fail(
            "many resampled latents got the same direction",
            "draw a separate random direction for each dead latent",
            code="same_direction",
        )
    # Isotropy. Uniform on the sphere: every coordinate is positive with probability 1/2 and has mean 0
    # (variance 1/d_in, range 2). Each of the 2·d_in tests gets failure probability FAILURE_PROBABILITY/(2 d_in).
    expect_frequency(
        (rows > 0).double().mean(0),
        0.5,
        n,
        "the fraction of new directions with a positive coordinate",
        dims="d_in",
        n_tests=2 * d_in,
        code="not_isotropic",
        hint="draw directions with torch.randn (symmetric), not torch.rand (all coordinates positive)",
    )
    tol = bernstein_tolerance(n, 1 / d_in, 2.0, FAILURE_PROBABILITY / (2 * d_in))
    mean = rows.double().mean(0)
    if (mean.abs() > tol).any():
        fail(
            f"the mean of the new directions is {mean.tolist()}, expected 0 ± {tol:.3f} in every coordinate",
            "directions must be uniform on the sphere: normalise a torch.randn vector",
            code="not_isotropic",
        )
    return f"{n} resampled latents: unit, isotropic, scaled encoder, live latents untouched"


def _prototype_batch(n_inst: int, d_in: int, b_dec: Tensor, sq_norms: Tensor) -> Callable[[int], Tensor]:
    """generate_batch for the advanced-resampling check: example i is b_dec + sqrt(sq_norms[i % 4]) e_(i % 4)."""

    def generate(batch_size: int) -> Tensor:
        idx = torch.arange(batch_size, device=b_dec.device) % len(sq_norms)
        proto = torch.zeros(batch_size, n_inst, d_in, device=b_dec.device)
        proto[torch.arange(batch_size), :, idx] = sq_norms.sqrt()[idx][:, None]
        return proto + b_dec.detach()

    return generate


@checker("resample_advanced")
def test_resample_advanced(impl: Callable, device: torch.device) -> str:
    cls = _graft(ref.ToySAE, type("Impl", (), {"resample_advanced": impl}), ("resample_advanced",))
    n_inst, d_in, d_sae, n_dead, scale, batch_size = 3, 4, 1000, 900, 0.37, 400
    sae = _sae(cls, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)  # nothing fires, so h_rec = b_dec and L_rec = ‖h - b_dec‖² / d_in is known
        sae.b_enc[:, 0] = 0.5  # a live latent that fires...
        sae._W_dec[:, 0] = 0.0  # ...but writes nothing, so the losses stay known
    frac, dead, last_only_dead = _window(n_inst, d_sae, n_dead, device)
    dead[:, 0], frac[:, :, 0] = False, 0.3
    sq_norms = torch.tensor([1.0, 1.0, 2.0, 4.0], device=device)
    sae.generate_batch = _prototype_batch(n_inst, d_in, sae.b_dec, sq_norms)
    before = _params_before(sae)
    before_b_dec = sae.b_dec.detach().clone()
    alive_norm = before["W_enc"].norm(dim=1).masked_fill(dead, float("nan")).nanmean(-1)  # [inst]
    all_norm = before["W_enc"].norm(dim=1).mean(-1)
    with torch.no_grad():
        sae.resample_advanced(frac, scale, batch_size)
    _check_untouched(sae, before, dead, last_only_dead)
    rows = _unit_rows(sae.W_dec, dead)  # [n_total_dead d_in]
    # Which prototype (basis vector) did each resampled latent pick?
    best = rows.abs().max(-1)
    if (best.values < 1 - 1e-4).any() or (rows.gather(-1, best.indices[:, None]) < 0).any():
        protos = before_b_dec[:, None, :] + torch.diag(sq_norms.sqrt())[None]  # [inst 4 d_in], as generated
        shifted = torch.nn.functional.normalize(protos, dim=-1)
        inst_of = dead.nonzero()[:, 0]
        matches_raw = torch.stack([(shifted[int(k)] @ r).max() for k, r in zip(inst_of, rows, strict=True)])
        if (matches_raw > 1 - 1e-4).all():
            fail(
                "new decoder directions are the chosen inputs without b_dec subtracted",
                "use the input minus b_dec (what the encoder sees), normalised",
                code="b_dec_not_subtracted",
            )
        fail(
            "new decoder directions are not (input - b_dec) of examples from self.generate_batch",
            "pick examples of h = self.generate_batch(batch_size); the direction is (h[i] - b_dec) / ‖h[i] - b_dec‖",
            code="not_from_inputs",
        )
    # P(prototype j) ∝ L_rec², L_rec ∝ sq_norms: probabilities ∝ sq_norms². Sampling ∝ L_rec (not squared)
    # gives (1, 1, 2, 4)/8 instead of (1, 1, 4, 16)/22; uniform gives 1/4 each. Frequencies are pooled over
    # instances (n = 2700 draws) and tested per prototype with Bernstein bounds.
    expected = sq_norms.pow(2) / sq_norms.pow(2).sum()
    counts = torch.bincount(best.indices, minlength=d_in).double()
    n = rows.shape[0]

    def hint(obs: float, exp: float) -> str:
        lin = (sq_norms / sq_norms.sum()).tolist()
        if any(abs((counts / n)[j].item() - lin[j]) < 0.05 for j in (0, 3)) and abs(counts[3] / n - lin[3]) < 0.06:
            return "sample with probability proportional to the *square* of each example's reconstruction loss"
        return "use torch.multinomial(L_reconstruction[:, inst] ** 2, n_dead, replacement=True)"

    expect_frequency(
        counts / n,
        expected,
        n,
        "the fraction of resampled latents pointing at input type",
        dims="type",
        hint=hint,
        code="sampling",
    )
    enc = sae.W_enc.detach().transpose(-1, -2)[dead]
    inst_of = dead.nonzero()[:, 0]
    want = rows * scale * alive_norm[inst_of][:, None]
    if not torch.isclose(enc, want, rtol=1e-3, atol=1e-6).all():
        for value, hint_text, code in (
            (rows * alive_norm[inst_of][:, None], "multiply by resample_scale", "scale_ignored"),
            (rows * scale, "scale by the mean norm of the live latents' encoder columns too", "no_alive_norm"),
            (
                rows * scale * all_norm[inst_of][:, None],
                "average the encoder norms of live latents only, not all",
                "all_norm",
            ),
        ):
            if torch.isclose(enc, value, rtol=1e-3, atol=1e-6).all():
                fail("the new encoder columns have the wrong length", hint_text, code=code)
        fail(
            "the new encoder columns are not direction · resample_scale · (mean live encoder norm)",
            "encoder column = v · resample_scale · mean over live latents of ‖W_enc[inst, :, j]‖",
            code="enc_mismatch",
        )
    return f"{n} resampled latents: chosen ∝ loss², unit directions, scaled encoders, live latents untouched"


# --------------------------------------------------------------------------------------------
# Exercise 7: Gated SAE
# --------------------------------------------------------------------------------------------
@checker("gated_forward")
def test_gated_forward(impl: type, device: torch.device) -> str:
    cls = _graft(ref.GatedToySAE, impl, ("forward",))
    sae = _sae(cls, device)
    reference = _twin(sae, ref.GatedToySAE)
    h = _hidden(32, N_INST, D_IN, device)
    loss_dict, loss, acts, h_rec = _call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = reference(h)

    x = (h - reference.b_dec).detach()
    proj = torch.einsum("bid,ids->bis", x, reference.W_enc.detach())
    gate = proj + reference.b_enc.detach()
    mag_no_exp = proj * reference.r_mag.detach() + reference.b_mag.detach()
    expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
    _diagnose(
        acts,
        ref_acts.detach(),
        "acts_post",
        "batch inst d_sae",
        [
            (
                torch.relu(gate),
                "acts_post is the *magnitude* path, switched on and off by the gate: 1[π_gate > 0] · ReLU(π_mag)",
                "gate_as_acts",
            ),
            ((gate > 0).float() * torch.relu(mag_no_exp), "scale W_enc by exp(r_mag), not r_mag", "r_mag_no_exp"),
            (
                torch.relu(proj * reference.r_mag.detach().exp() + reference.b_mag.detach()),
                "multiply by the gate indicator (π_gate > 0)",
                "no_gate",
            ),
        ],
        "acts",
        "acts_post = 1[π_gate > 0] · ReLU(π_mag) with π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
    )
    expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
    expect_close(
        h_rec,
        ref_rec.detach(),
        "h_reconstructed",
        "decode acts_post with W_dec_normalized, add b_dec",
        code="reconstruction",
        dims="batch inst d_in",
    )
    _check_loss_keys(loss_dict, ref_dict, h)
    _expect_reconstruction_loss(loss_dict, ref_dict)
    sp = loss_dict["L_sparsity"].detach()
    _diagnose(
        sp,
        ref_dict["L_sparsity"].detach(),
        "L_sparsity",
        "batch inst",
        [
            (acts.detach().abs().sum(-1), "penalise the gate path, ReLU(π_gate), not acts_post", "sparsity_on_acts"),
        ],
        "sparsity_loss",
        "L_sparsity = ReLU(π_gate).sum(-1)",
    )
    via_gate_undetached_b = ref_dict["L_aux"].detach()
    expect_close(
        loss_dict["L_aux"].detach(),
        via_gate_undetached_b,
        "L_aux",
        "L_aux: decode ReLU(π_gate) with the detached normalised decoder, add detached b_dec, "
        "mean squared error over d_in",
        code="aux_loss",
        dims="batch inst",
    )
    loss = expect_scalar(loss, "loss")
    without_aux = (ref_dict["L_reconstruction"] + reference.sparsity_coeff * ref_dict["L_sparsity"]).mean(0).sum()
    if torch.isclose(loss.detach(), without_aux.detach(), rtol=1e-5) and not torch.isclose(without_aux, ref_loss):
        fail("loss leaves out L_aux", "add L_aux to the per-example loss before averaging", code="no_aux_in_loss")
    _check_total_loss(loss, ref_loss, ref_dict, reference.sparsity_coeff, aux=True)
    detach_hint = (
        "the auxiliary reconstruction must use W_dec_normalized.detach() and b_dec.detach(): "
        "L_aux should train the gate, not the decoder",
        "aux_not_detached",
    )
    _compare_grads(sae, loss, reference, ref_loss, hints={"_W_dec": detach_hint, "b_dec": detach_hint})
    return "gate and magnitude paths, three losses, gradients"


# --------------------------------------------------------------------------------------------
# Exercise 8: Heaviside and JumpReLU
# --------------------------------------------------------------------------------------------
BANDWIDTH = 0.1


def _step_inputs(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """x near and far from a positive threshold (both inside and outside the rectangle), and an upstream gradient."""
    threshold = 0.3 + torch.rand(4, 50, device=device)
    u = torch.linspace(-3, 3, 50, device=device)  # (x - threshold) / bandwidth
    x = threshold + BANDWIDTH * (u + 0.013)  # the offset avoids |u| = 1/2 exactly
    x[:, :5] = -0.5
    grad_out = torch.randn(4, 50, device=device) + 0.5
    return x, threshold, grad_out


def _check_step_function(
    impl: Any,
    name: str,
    fwd: Callable,
    dx: Callable,
    dth: Callable,
    device: torch.device,
    x_mistakes: list,
    th_mistakes: list,
) -> None:
    if not hasattr(impl, "apply"):
        fail(
            f"{name} should be a torch.autograd.Function subclass (with .apply)",
            "pass the class itself, e.g. tests...(Heaviside)",
            code="not_function",
        )
    x0, th0, g = _step_inputs(device)
    x, th = x0.clone().requires_grad_(True), th0.clone().requires_grad_(True)
    out = expect_tensor(
        impl.apply(x, th, BANDWIDTH), f"{name}.apply(x, threshold, bandwidth)", shape=x.shape, device=device
    )
    expect_close(
        out.detach(),
        fwd(x0, th0),
        f"{name} forward",
        f"the forward pass is exactly {name}: see the table",
        code="forward",
    )
    if not out.requires_grad:
        fail(f"the output of {name} has no gradient", "return a tensor computed from x in forward", code="no_grad")
    grad_x, grad_th = torch.autograd.grad((out * g).sum(), (x, th), allow_unused=True)  # scalar: no sympy import
    grad_x = torch.zeros_like(x0) if grad_x is None else grad_x
    grad_th = torch.zeros_like(th0) if grad_th is None else grad_th
    _diagnose(
        grad_x,
        dx(x0, th0) * g,
        f"the gradient of {name} with respect to x",
        None,
        [(c(x0, th0) * g, h, code) for c, h, code in x_mistakes],
        "grad_x",
        "see the ∂/∂x column of the table, times grad_output",
    )
    _diagnose(
        grad_th,
        dth(x0, th0) * g,
        f"the gradient of {name} with respect to threshold",
        None,
        [(c(x0, th0) * g, h, code) for c, h, code in th_mistakes]
        + [(dth(x0, th0), "multiply by grad_output (the chain rule)", "no_grad_output")],
        "grad_threshold",
        "see the ∂/∂θ column: -(factor/ε) · K((x - θ)/ε) · grad_output",
    )


def _rect(x: Tensor, th: Tensor, width: float = 0.5) -> Tensor:
    return (((x - th) / BANDWIDTH).abs() < width).to(x.dtype)


_TH_MISTAKES = [
    (
        lambda x, th: _rect(x, th) / BANDWIDTH,
        "the pseudo-derivative with respect to θ is negative: raising the threshold can only switch the output off",
        "grad_sign",
    ),
    (lambda x, th: -_rect(x, th), "divide by the bandwidth ε", "no_bandwidth"),
    (lambda x, th: -_rect(x, th, 1.0) / BANDWIDTH, "the rectangle K(u) is 1 for |u| < 1/2, not |u| < 1", "rect_width"),
]


@checker("heaviside")
def test_heaviside(impl: Any, device: torch.device) -> str:
    _check_step_function(
        impl,
        "Heaviside",
        fwd=lambda x, th: (x > th).to(x.dtype),
        dx=lambda x, th: torch.zeros_like(x),
        dth=lambda x, th: -_rect(x, th) / BANDWIDTH,
        device=device,
        x_mistakes=[
            (
                lambda x, th: torch.ones_like(x),
                "the step has no useful gradient in x: return zeros (or None)",
                "grad_x_passthrough",
            ),
            (
                lambda x, th: _rect(x, th) / BANDWIDTH,
                "only the threshold gets a pseudo-derivative; x gets 0",
                "grad_x_passthrough",
            ),
        ],
        th_mistakes=_TH_MISTAKES,
    )
    return "forward values and pseudo-derivatives"


@checker("jumprelu")
def test_jumprelu(impl: Any, device: torch.device) -> str:
    _check_step_function(
        impl,
        "JumpReLU",
        fwd=lambda x, th: x * (x > th).to(x.dtype),
        dx=lambda x, th: (x > th).to(x.dtype),
        dth=lambda x, th: -th * _rect(x, th) / BANDWIDTH,
        device=device,
        x_mistakes=[
            (lambda x, th: torch.ones_like(x), "∂/∂x is 1[x > θ]: zero where the output is zero", "grad_x_ones"),
            (lambda x, th: (x > 0).to(x.dtype), "∂/∂x is 1[x > θ], not 1[x > 0]", "grad_x_relu"),
        ],
        th_mistakes=[
            (
                lambda x, th: -_rect(x, th) / BANDWIDTH,
                "the JumpReLU pseudo-derivative has a factor θ: -(θ/ε) K(...)",
                "no_theta_factor",
            ),
            (
                lambda x, th: th * _rect(x, th) / BANDWIDTH,
                "the pseudo-derivative with respect to θ is negative",
                "grad_sign",
            ),
            (lambda x, th: -th * _rect(x, th), "divide by the bandwidth ε", "no_bandwidth"),
            (
                lambda x, th: -th * _rect(x, th, 1.0) / BANDWIDTH,
                "the rectangle K(u) is 1 for |u| < 1/2, not |u| < 1",
                "rect_width",
            ),
            (lambda x, th: -x * _rect(x, th) / BANDWIDTH, "the factor is θ, not x", "x_factor"),
        ],
    )
    return "forward values and pseudo-derivatives"


# --------------------------------------------------------------------------------------------
# Exercise 9: JumpReLU SAE
# --------------------------------------------------------------------------------------------
@checker("jumprelu_forward")
def test_jumprelu_forward(impl: type, device: torch.device) -> str:
    cls = _graft(ref.JumpReLUToySAE, impl, ("forward",))
    sae = _sae(cls, device, jumprelu_bandwidth=0.3, jumprelu_init_threshold=0.1)  # θ - ε/2 > 0
    reference = _twin(sae, ref.JumpReLUToySAE)
    h = _hidden(64, N_INST, D_IN, device)
    loss_dict, loss, acts, h_rec = _call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = reference(h)
    pre = torch.einsum("bid,ids->bis", (h - reference.b_dec).detach(), reference.W_enc.detach())
    pre = pre + reference.b_enc.detach()
    log_th = reference.log_threshold.detach()
    expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
    _diagnose(
        acts,
        ref_acts.detach(),
        "acts_post",
        "batch inst d_sae",
        [
            (pre * (pre > log_th), "the threshold is exp(log_threshold)", "no_exp"),
            (torch.relu(pre), "apply JumpReLU with the threshold, not a plain ReLU", "plain_relu"),
        ],
        "acts",
        "acts_post = JumpReLU.apply(pre, exp(log_threshold), bandwidth)",
    )
    expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
    expect_close(
        h_rec,
        ref_rec.detach(),
        "h_reconstructed",
        "decode with W_dec_normalized and add b_dec",
        code="reconstruction",
        dims="batch inst d_in",
    )
    _check_loss_keys(loss_dict, ref_dict, h)
    _expect_reconstruction_loss(loss_dict, ref_dict)
    _diagnose(
        loss_dict["L_sparsity"].detach(),
        ref_dict["L_sparsity"].detach(),
        "L_sparsity",
        "batch inst",
        [
            (
                acts.detach().abs().sum(-1),
                "the JumpReLU penalty counts active latents (L0), it doesn't sum their values",
                "sparsity_l1",
            ),
        ],
        "sparsity_loss",
        "L_sparsity = Heaviside.apply(pre, threshold, bandwidth).sum(-1)",
    )
    loss = expect_scalar(loss, "loss")
    _check_total_loss(loss, ref_loss, ref_dict, reference.sparsity_coeff)
    _compare_grads(
        sae,
        loss,
        reference,
        ref_loss,
        hints={
            "log_threshold": (
                "the threshold gets its gradient from JumpReLU and from Heaviside: compute L_sparsity with "
                "Heaviside.apply (counting acts_post > 0 has no gradient) and pass the threshold as a tensor "
                "that depends on log_threshold",
                "threshold_grad",
            )
        },
    )
    return "thresholded activations, L0 penalty, gradients reach the threshold"


# --------------------------------------------------------------------------------------------
# Exercise 10: TopK SAE
# --------------------------------------------------------------------------------------------
@checker("topk_forward")
def test_topk_forward(impl: type, device: torch.device) -> str:
    cls = _graft(ref.TopKToySAE, impl, ("forward",))
    checked = []
    for k in (2, 3):
        sae = _sae(cls, device, k=k, sparsity_coeff=0.0)
        with torch.no_grad():
            sae.b_enc[0] -= 1.5  # instance 0 often has fewer than k positive pre-activations
        reference = _twin(sae, ref.TopKToySAE)
        h = _hidden(64, N_INST, D_IN, device)
        loss_dict, loss, acts, h_rec = _call_forward(sae, h)
        ref_dict, ref_loss, ref_acts, ref_rec = reference(h)
        pre = torch.einsum("bid,ids->bis", (h - reference.b_dec).detach(), reference.W_enc.detach())
        pre = pre + reference.b_enc.detach()
        top = pre.topk(k, dim=-1)
        no_relu = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
        n_active = (acts.detach() != 0).sum(-1)
        if (n_active > k).any():
            fail(
                f"some examples have {int(n_active.max())} non-zero latents, expected at most k={k}",
                "keep only the k largest values per example and zero the rest (topk over the d_sae axis)",
                code="too_many",
            )
        _diagnose(
            acts,
            ref_acts.detach(),
            "acts_post",
            "batch inst d_sae",
            [
                (no_relu, "apply the ReLU: a negative value among the top k must become 0", "no_relu"),
            ],
            "acts",
            f"acts_post keeps the k={k} largest values of ReLU(pre) per example, in place, zeros elsewhere",
        )
        expect_tensor(h_rec, "h_reconstructed", shape=h.shape, dims="batch inst d_in", device=device)
        expect_close(
            h_rec,
            ref_rec.detach(),
            "h_reconstructed",
            "decode with W_dec_normalized and add b_dec",
            code="reconstruction",
            dims="batch inst d_in",
        )
        if "L_reconstruction" not in loss_dict:
            fail("loss_dict has no key 'L_reconstruction'", "add it (shape [batch inst])", code="missing_key")
        expect_close(
            loss_dict["L_reconstruction"].detach(),
            ref_dict["L_reconstruction"].detach(),
            "L_reconstruction",
            "mean over d_in of the squared error",
            code="rec_loss",
            dims="batch inst",
        )
        loss = expect_scalar(loss, "loss")
        expect_close(
            loss.detach(),
            ref_loss.detach(),
            "loss",
            "the TopK loss is the reconstruction loss alone, mean over batch, summed over instances",
            code="loss",
        )
        _compare_grads(sae, loss, reference, ref_loss)
        checked.append(k)
    return f"k = {checked}: at most k active, values in place, loss and gradients"


# --------------------------------------------------------------------------------------------
# Exercise 10b: AuxK
# --------------------------------------------------------------------------------------------
def _auxk_variants(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> dict[str, Tensor]:
    """The per-example loss of common mistakes, for naming them."""

    def loss_of(acts: Tensor, reduce: str = "mean") -> Tensor:
        rec = torch.einsum("bis,isd->bid", acts, W_dec)
        err = (residual - rec).pow(2)
        return err.mean(-1) if reduce == "mean" else err.sum(-1)

    def top(x: Tensor) -> Tensor:
        t = x.topk(k_aux, dim=-1)
        values = torch.where(t.values.isfinite(), t.values, torch.zeros_like(t.values))
        return torch.zeros_like(x).scatter(-1, t.indices, values)

    masked = torch.where(dead, pre, -torch.inf)
    right = top(masked)
    return {
        # A ReLU before the top-k, and masking live latents with 0 instead of -inf, give the same values:
        # both drop the dead latents' negative pre-activations.
        "dropped_negatives": loss_of(top(torch.where(dead, pre.relu(), -torch.inf))),
        "used_live_latents": loss_of(top(pre)),
        "sum_over_d_in": loss_of(right, reduce="sum"),
        "all_dead_latents": loss_of(torch.where(dead, pre, torch.zeros_like(pre))),
    }


@checker("auxk_loss")
def test_auxk_loss(impl: Callable, device: torch.device) -> str:
    n_inst, d_sae, d_in, k_aux = 3, 8, 4, 2
    pre = torch.randn(64, n_inst, d_sae, device=device) - 0.5  # mostly negative: dead latents rarely fire
    residual = 0.3 * torch.randn(64, n_inst, d_in, device=device)
    W_dec = torch.randn(n_inst, d_sae, d_in, device=device)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device)
    dead[0, [1, 4, 6]] = True  # more dead latents than k_aux
    dead[1, 2] = True  # fewer dead latents than k_aux
    # instance 2: no dead latent, so the auxiliary reconstruction is 0 and the loss is mean(residual²)
    pre_in = pre.clone().requires_grad_(True)
    out = returned(impl(pre_in, residual.clone(), dead.clone(), W_dec.clone(), k_aux), "auxk_loss")
    if isinstance(out, Tensor) and not torch.isfinite(out.detach()).all():
        fail(
            "auxk_loss returned inf or NaN",
            "where an instance has fewer dead latents than k_aux, the top-k picks some -inf values: replace them "
            "by 0 before decoding",
            code="inf",
        )
    out = expect_tensor(out, "auxk_loss(...)", shape=(64, n_inst), dims="batch inst", device=device)
    expected = ref.auxk_loss(pre, residual, dead, W_dec, k_aux)
    hints = {
        "dropped_negatives": "the dead latents' negative pre-activations must take part: use the pre-activations "
        "before any ReLU (after a ReLU a dead latent gets no gradient), and mask live latents with -inf, not 0 "
        "(a live latent masked to 0 beats every negative dead one)",
        "used_live_latents": "only dead latents take part: mask the live ones out before the top-k",
        "sum_over_d_in": "take the mean over d_in, not the sum",
        "all_dead_latents": "keep only the k_aux largest dead pre-activations per example",
    }
    variants = _auxk_variants(pre, residual, dead, W_dec, k_aux)
    expect_matches(
        out,
        expected,
        "auxk_loss",
        [(code, hints[code], value) for code, value in variants.items()],
        dims="batch inst",
        hint="mean over d_in of (residual - the dead latents' top-k_aux decoded)²",
    )
    if not out.requires_grad:
        fail("the loss has no gradient", "don't detach anything inside auxk_loss", code="no_grad")
    (grad,) = torch.autograd.grad(out.sum(), pre_in, allow_unused=True)
    pre_ref = pre.clone().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad(ref.auxk_loss(pre_ref, residual, dead, W_dec, k_aux).sum(), pre_ref)
    expect_close(
        grad if grad is not None else torch.zeros_like(pre),
        ref_grad,
        "the gradient with respect to pre",
        "the gradient should reach exactly the chosen dead latents' pre-activations",
        code="grad",
        dims="batch inst d_sae",
    )
    return "dead latents only, before the ReLU, fewer dead than k_aux, mean over d_in, gradients"


# --------------------------------------------------------------------------------------------
# Exercise 11: metrics
# --------------------------------------------------------------------------------------------
def _acts(device: torch.device) -> Tensor:
    acts = torch.relu(torch.randn(200, N_INST, D_SAE, device=device) - torch.linspace(-0.5, 1.5, D_SAE, device=device))
    acts[:, 0, 1] = 0.0  # a dead latent
    acts[:, 1, 4:6] = 0.0
    acts[3, 1, 5] = 0.7  # fires once: alive
    return acts


@checker("l0_norm")
def test_l0_norm(impl: Callable, device: torch.device) -> str:
    acts = _acts(device)
    out = expect_tensor(impl(acts.clone()), "l0_norm(acts)", shape=(N_INST,), dims="inst", device=device)
    expected = ref.l0_norm(acts)
    _diagnose(
        out,
        expected,
        "l0_norm",
        "inst",
        [
            (expected / D_SAE, "count latents (sum over d_sae), then average over the batch", "fraction"),
            (acts.sum(-1).mean(0), "count non-zero latents, don't sum their values", "l1"),
            (expected * acts.shape[0], "average over the batch, don't sum", "batch_sum"),
        ],
        "values",
        "mean over the batch of the number of non-zero latents",
    )
    return "per-instance mean count of active latents"


@checker("fraction_variance_explained")
def test_fraction_variance_explained(impl: Callable, device: torch.device) -> str:
    h = torch.randn(100, N_INST, D_IN, device=device) * torch.tensor([0.3, 1.0, 2.0], device=device) + 1.5
    h_rec = h + 0.4 * torch.randn_like(h) * torch.tensor([1.0, 0.2, 0.5], device=device)[:, None]
    out = expect_tensor(
        impl(h.clone(), h_rec.clone()),
        "fraction_variance_explained(h, h_rec)",
        shape=(N_INST,),
        dims="inst",
        device=device,
    )
    expected = ref.fraction_variance_explained(h, h_rec)
    resid = (h - h_rec).pow(2)
    centred = (h - h.mean(0)).pow(2)
    _diagnose(
        out,
        expected,
        "fraction_variance_explained",
        "inst",
        [
            (
                1 - resid.sum((0, 2)) / h.pow(2).sum((0, 2)),
                "measure the variance around the batch mean: (h - h.mean(0))²",
                "not_centered",
            ),
            (resid.sum((0, 2)) / centred.sum((0, 2)), "that is the fraction *unexplained*: return 1 minus it", "fvu"),
            (
                (1 - resid.sum(0) / centred.sum(0)).mean(-1),
                "sum over d_in before dividing (a ratio of sums)",
                "per_dim",
            ),
            (
                1 - (resid.sum(-1) / centred.sum(-1)).mean(0),
                "a ratio of sums over batch and d_in, not a mean of ratios",
                "ratio_of_means",
            ),
        ],
        "values",
        "1 - Σ(h - h_rec)² / Σ(h - mean(h))², sums over batch and d_in",
    )
    return "ratio of sums, centred variance, per instance"


@checker("dead_latent_fraction")
def test_dead_latent_fraction(impl: Callable, device: torch.device) -> str:
    acts = _acts(device)
    out = expect_tensor(impl(acts.clone()), "dead_latent_fraction(acts)", shape=(N_INST,), dims="inst", device=device)
    expected = ref.dead_latent_fraction(acts)
    _diagnose(
        out,
        expected,
        "dead_latent_fraction",
        "inst",
        [
            (expected * D_SAE, "return a fraction of latents (divide by d_sae)", "count"),
            (
                (acts == 0).any(0).float().mean(-1),
                "a latent is dead when it is zero on *every* example (all, not any)",
                "any",
            ),
            (
                (acts == 0).float().mean((0, 2)),
                "dead means zero on the whole batch, not a fraction of zero entries",
                "zero_entries",
            ),
        ],
        "values",
        "fraction of latents with acts == 0 on every example of the batch",
    )
    return "fraction of latents silent on the whole batch"


@checker("feature_recovery")
def test_feature_recovery(impl: Callable, device: torch.device) -> str:
    W_feat = torch.randn(N_INST, D_IN, N_FEATS, device=device) * torch.linspace(0.3, 2.0, N_FEATS, device=device)
    W_dec = torch.randn(N_INST, D_SAE, D_IN, device=device) * 3.0
    W_dec[:, 0] = -2.0 * W_feat[:, :, 0]  # an anti-aligned latent: cosine -1, not +1
    W_dec[:, 1] = 0.5 * W_feat[:, :, 2] + 0.1 * W_dec[:, 1]
    out = expect_tensor(
        impl(W_feat.clone(), W_dec.clone()),
        "feature_recovery(W_features, W_dec)",
        shape=(N_INST, N_FEATS),
        dims="inst feats",
        device=device,
    )
    expected = ref.feature_recovery(W_feat, W_dec)
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    d_hat = W_dec / W_dec.norm(dim=-1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", d_hat, f_hat)
    _diagnose(
        out,
        expected,
        "feature_recovery",
        "inst feats",
        [
            (
                cos.abs().max(1).values,
                "use the signed cosine: a latent pointing the opposite way has not found the feature",
                "abs",
            ),
            (cos.mean(1), "take the max over latents, not the mean", "mean"),
            (
                torch.einsum("isd,idf->isf", W_dec, f_hat).max(1).values,
                "normalise the decoder rows too",
                "unnormalized",
            ),
            (
                torch.einsum("isd,idf->isf", d_hat, W_feat).max(1).values,
                "normalise the feature directions too",
                "unnormalized",
            ),
        ],
        "values",
        "max over latents of cos(W_features[:, :, f], W_dec[:, j, :])",
    )
    return "best signed cosine per feature"
