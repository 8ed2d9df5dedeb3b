"""Checkers for part 5 (sparse autoencoders in toy models).

Each checker calls the learner's code only for the part it tests: the rest of the SAE is the
reference (`solutions.part5_toy_saes`), so an unfinished earlier exercise never breaks a later check.
The learner's method is grafted onto a subclass of the reference class (`graft`).

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
    model = ToyModel(cfg, feature_probability=probability, device=device)
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


def diagnose(actual: Tensor, expected: Tensor, what: str, dims: str, candidates: list, code: str, hint: str) -> None:
    """`expect_matches` with this module's candidate order: (value, hint, code) triples."""
    mistakes = [(cand_code, cand_hint, cand_value) for cand_value, cand_hint, cand_code in candidates]
    expect_matches(actual, expected, what, mistakes, dims=dims, hint=hint, code=code)


def _grads(sae: torch.nn.Module, loss: Tensor) -> dict[str, Tensor]:
    params = {n: p for n, p in sae.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params.items(), grads, strict=True)}


def compare_grads(
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
    cls = graft(ref.ToySAE, impl, ("W_dec_normalized",))
    for tied in (False, True):
        sae = reference_sae(cls, device, tied_weights=tied)
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
    cls = graft(ref.ToySAE, impl, ("generate_batch",))
    sae = reference_sae(cls, device)
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
    diagnose(
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
    cls = graft(ref.ToySAE, impl, ("forward",))
    sae = reference_sae(cls, device)
    reference = twin(sae, ref.ToySAE)
    h = random_hidden(32, N_INST, D_IN, device)
    loss_dict, loss, acts, h_rec = call_forward(sae, h)
    ref_dict, ref_loss, ref_acts, ref_rec = reference(h)
    cand = _vanilla_candidates(reference, h)

    expect_tensor(acts, "acts_post", shape=ref_acts.shape, dims="batch inst d_sae", device=device)
    diagnose(
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
    diagnose(
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
    check_total_loss(loss, ref_loss, ref_dict, reference.sparsity_coeff)
    compare_grads(sae, loss, reference, ref_loss)
    return "activations, reconstruction, per-example losses, total loss and gradients"


def check_loss_keys(loss_dict: dict, ref_dict: dict, h: Tensor) -> None:
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


def expect_reconstruction_loss(loss_dict: dict, ref_dict: dict) -> None:
    expect_close(
        loss_dict["L_reconstruction"].detach(),
        ref_dict["L_reconstruction"].detach(),
        "L_reconstruction",
        "mean over d_in of the squared error",
        code="rec_loss",
        dims="batch inst",
    )


def _check_loss_dict(loss_dict: dict, ref_dict: dict, h: Tensor, acts: Tensor) -> None:
    check_loss_keys(loss_dict, ref_dict, h)
    err = (loss_dict["L_reconstruction"].detach(), ref_dict["L_reconstruction"].detach())
    d_in = h.shape[-1]
    diagnose(
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
        diagnose(
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


def check_total_loss(loss: Tensor, ref_loss: Tensor, ref_dict: dict, coeff: Tensor, aux: bool = False) -> None:
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
    cls = graft(ref.ToySAE, type("Impl", (), {"resample_simple": impl}), ("resample_simple",))
    n_inst, d_in, d_sae, n_dead, scale = 4, 3, 700, 600, 0.37
    sae = reference_sae(cls, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
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
    cls = graft(ref.ToySAE, type("Impl", (), {"resample_advanced": impl}), ("resample_advanced",))
    n_inst, d_in, d_sae, n_dead, scale, batch_size = 3, 4, 1000, 900, 0.37, 400
    sae = reference_sae(cls, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1)
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
