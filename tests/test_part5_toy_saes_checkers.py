"""Proofs for part 5's deterministic checkers (`__init__`, `W_dec_normalized`, `generate_batch`, `forward`):
the reference and correct variants written differently pass, realistic mistakes fail with their own code.

Variants subclass the reference class and override only the method under test (the checkers graft exactly
that method onto the reference). The resampling checkers' proofs are in test_part5_toy_saes_resample_checkers.py.
"""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_not_done, assert_passes, stub


def _with(base: type, **methods) -> type:
    return type(f"Variant{base.__name__}", (base,), methods)


# --------------------------------------------------------------------------------------------
# __init__
# --------------------------------------------------------------------------------------------
def _init_variant(body, call_super=True):
    def __init__(self, cfg, model=None):
        if call_super:
            nn.Module.__init__(self)
        self.cfg = cfg
        device = model.W.device if model is not None else torch.device("cpu")  # the model is optional
        body(self, cfg, model, device)
        self.register_buffer("sparsity_coeff", torch.full((cfg.n_inst,), 0.1, device=device))

    return _with(P.ToySAE, __init__=__init__)


def _good_init(self, cfg, model, device):
    if model is not None:
        model.requires_grad_(False)
    self.model = model
    w = torch.empty(cfg.n_inst, cfg.d_sae, cfg.d_in, device=device)  # Kaiming on the transposed shape: same fan
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    self.W_enc = nn.Parameter(w.transpose(-1, -2).contiguous())
    self._W_dec = None if cfg.tied_weights else nn.Parameter(w.clone())
    self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
    self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))


def _good_init_loop(self, cfg, model, device):
    for p in model.parameters() if model is not None else []:
        p.requires_grad = False
    self.model = model
    # uniform on [-b, b] with Kaiming's bound (uniform_(-1, 1) is rejected since fresh7: init_scale)
    self.W_enc = nn.Parameter(
        torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device).uniform_(-1, 1)
        * (6 / (cfg.d_in * cfg.d_sae)) ** 0.5
    )
    self._W_dec = None
    if not cfg.tied_weights:
        self._W_dec = nn.Parameter(self.W_enc.data.permute(0, 2, 1).contiguous())
    self.b_enc = nn.Parameter(torch.zeros_like(self.W_enc[:, 0, :]).detach())
    self.b_dec = nn.Parameter(torch.zeros_like(self.W_enc[:, :, 0]).detach())


def _good_init_per_instance(self, cfg, model, device):
    """Correct: one Kaiming draw per instance, stacked; parameters registered with register_parameter."""
    self.model = model.requires_grad_(False) if model is not None else None
    blocks = [nn.init.kaiming_uniform_(torch.empty(cfg.d_sae, cfg.d_in, device=device)).T for _ in range(cfg.n_inst)]
    self.register_parameter("W_enc", nn.Parameter(torch.stack(blocks)))
    self.register_parameter("_W_dec", None if cfg.tied_weights else nn.Parameter(torch.stack(blocks).mT.clone()))
    self.register_parameter("b_enc", nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device)))
    self.register_parameter("b_dec", nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device)))


def _changed(**changes):
    def body(self, cfg, model, device):
        _good_init(self, cfg, model, device)
        for fn in changes.values():
            fn(self, cfg, model, device)

    return body


def _no_b_dec_parameter(self, cfg, model, device):
    _good_init(self, cfg, model, device)
    del self._parameters["b_dec"]
    self.b_dec = torch.zeros(cfg.n_inst, cfg.d_in, device=device)


def _sets_W_dec(self, cfg, model, device):
    _good_init(self, cfg, model, device)
    self.W_dec = nn.Parameter(self.W_enc.detach().mT.clone())


def _forgets_b_dec(self, cfg, model, device):
    _good_init(self, cfg, model, device)
    del self._parameters["b_dec"]


INIT_BUGS = {
    "bias_not_zero": _changed(b=lambda s, c, m, d: setattr(s, "b_enc", nn.Parameter(torch.ones_like(s.b_enc)))),
    "model_not_frozen": _changed(m=lambda s, c, m, d: m.requires_grad_(True)),
    "zero_init": _changed(w=lambda s, c, m, d: setattr(s, "W_enc", nn.Parameter(torch.zeros_like(s.W_enc)))),
    "untied_shares_storage": _changed(
        w=lambda s, c, m, d: setattr(s, "_W_dec", None if c.tied_weights else nn.Parameter(s.W_enc.transpose(-1, -2)))
    ),
    "tied_not_shared": _changed(
        w=lambda s, c, m, d: setattr(s, "_W_dec", nn.Parameter(s.W_enc.detach().transpose(-1, -2).clone()))
    ),
    "transposed_W_enc": _changed(
        w=lambda s, c, m, d: setattr(s, "W_enc", nn.Parameter(torch.randn(c.n_inst, c.d_sae, c.d_in, device=d)))
    ),
    "not_parameter": _no_b_dec_parameter,
    "same_instances": _changed(
        w=lambda s, c, m, d: setattr(
            s, "W_enc", nn.Parameter(nn.init.kaiming_uniform_(torch.empty(c.d_in, c.d_sae)).repeat(c.n_inst, 1, 1))
        )
    ),
    "init_one_sign": _changed(w=lambda s, c, m, d: setattr(s, "W_enc", nn.Parameter(torch.rand_like(s.W_enc)))),
    "model_missing": _changed(m=lambda s, c, m, d: setattr(s, "model", None)),
    "sae_frozen": _changed(w=lambda s, c, m, d: s.W_enc.requires_grad_(False)),
    "set_W_dec_property": _sets_W_dec,
    "bias_shapes": _changed(b=lambda s, c, m, d: setattr(s, "b_enc", nn.Parameter(torch.zeros(c.n_inst, c.d_in)))),
    "untransposed_W_dec": _changed(
        w=lambda s, c, m, d: setattr(s, "_W_dec", None if c.tied_weights else nn.Parameter(s.W_enc.detach().clone()))
    ),
    "missing_attribute": _forgets_b_dec,
    "no_inst_axis": _changed(b=lambda s, c, m, d: setattr(s, "b_enc", nn.Parameter(torch.zeros(c.d_sae)))),
}


@pytest.mark.parametrize("body", [_good_init, _good_init_loop, _good_init_per_instance])
def test_init_variants(body):
    assert_passes(checks.test_init, P.ToySAE)
    assert_passes(checks.test_init, _init_variant(body))


@pytest.mark.parametrize("code", list(INIT_BUGS))
def test_init_bugs(code):
    assert_fails(checks.test_init, _init_variant(INIT_BUGS[code]), code)


def test_init_without_super_and_stub():
    assert_fails(checks.test_init, _init_variant(_good_init, call_super=False), "no_module_init")
    assert_not_done(checks.test_init, _with(P.ToySAE, __init__=stub))


# --------------------------------------------------------------------------------------------
# W_dec_normalized
# --------------------------------------------------------------------------------------------
NORM_GOOD = [
    lambda self: F.normalize(self.W_dec, dim=-1, eps=self.cfg.weight_normalize_eps),
    lambda self: self.W_dec / (self.W_dec.pow(2).sum(-1, keepdim=True).sqrt() + self.cfg.weight_normalize_eps),
    lambda self: einops.einsum(
        self.W_dec,
        1 / (self.W_dec.norm(dim=2) + self.cfg.weight_normalize_eps),
        "inst d_sae d_in, inst d_sae -> inst d_sae d_in",
    ),
    lambda self: (
        self.W_dec / torch.linalg.vector_norm(self.W_dec, dim=-1, keepdim=True).clamp_min(self.cfg.weight_normalize_eps)
    ),
]
NORM_BUGS = {
    "zero_row": lambda self: self.W_dec / self.W_dec.norm(dim=-1, keepdim=True),
    "wrong_axis": lambda self: self.W_dec / (self.W_dec.norm(dim=-2, keepdim=True) + 1e-8),
    "whole_matrix_norm": lambda self: self.W_dec / (self.W_dec.norm(dim=(-2, -1), keepdim=True) + 1e-8),
    "global_norm": lambda self: self.W_dec / (torch.linalg.norm(self.W_dec) + 1e-8),
    "squared_norm": lambda self: self.W_dec / ((self.W_dec**2).sum(-1, keepdim=True) + 1e-8),
    "l1_norm": lambda self: self.W_dec / (self.W_dec.norm(p=1, dim=-1, keepdim=True) + 1e-8),
    "max_norm": lambda self: self.W_dec / (self.W_dec.abs().max(dim=-1, keepdim=True).values + 1e-8),
    "no_grad": lambda self: (self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + 1e-8)).detach(),
    "in_place": lambda self: self.W_dec.data.div_(self.W_dec.data.norm(dim=-1, keepdim=True) + 1e-8) * 1.0,
    "used_private_W_dec": lambda self: self._W_dec / (self._W_dec.norm(dim=-1, keepdim=True) + 1e-8),
    "no_keepdim": lambda self: self.W_dec / (self.W_dec.norm(dim=-1) + 1e-8),
    "norm_detached": lambda self: self.W_dec / (self.W_dec.data.norm(dim=-1, keepdim=True) + 1e-8),
    "used_W_enc": lambda self: (self.W_enc / (self.W_enc.norm(dim=1, keepdim=True) + 1e-8)).mT,
    "instance_axis": lambda self: F.normalize(self.W_dec, dim=0),
    "standardised": lambda self: (self.W_dec - self.W_dec.mean(-1, True)) / (self.W_dec.std(-1, keepdim=True) + 1e-8),
    # the rows point the right way but are not unit length: named by the fallback hint, code "values"
    "values": lambda self: self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp(min=1),
}


@pytest.mark.parametrize("i", range(len(NORM_GOOD)))
def test_W_dec_normalized_variants(i):
    assert_passes(checks.test_W_dec_normalized, P.ToySAE)
    assert_passes(checks.test_W_dec_normalized, _with(P.ToySAE, W_dec_normalized=property(NORM_GOOD[i])))


@pytest.mark.parametrize("code", list(NORM_BUGS))
def test_W_dec_normalized_bugs(code):
    assert_fails(checks.test_W_dec_normalized, _with(P.ToySAE, W_dec_normalized=property(NORM_BUGS[code])), code)


def test_W_dec_normalized_stub():
    assert_not_done(checks.test_W_dec_normalized, _with(P.ToySAE, W_dec_normalized=property(stub)))


# --------------------------------------------------------------------------------------------
# generate_batch
# --------------------------------------------------------------------------------------------
def _twice(self, n):
    """Correct: draws a batch it throws away, then maps a second one."""
    self.model.generate_batch(n)
    return einops.einsum(self.model.generate_batch(n), self.model.W, "b i f, i d f -> b i d")


GEN_GOOD = [
    lambda self, n: torch.einsum("bif,idf->bid", self.model.generate_batch(n), self.model.W),
    lambda self, n: (self.model.W[None] @ self.model.generate_batch(n)[..., None]).squeeze(-1),
    lambda self, n: torch.stack(
        [x @ self.model.W[k].T for k, x in enumerate(self.model.generate_batch(n).unbind(1))], dim=1
    ).detach(),
    _twice,
]
_cache: dict = {}


def _hidden(self, x):
    return torch.einsum("bif,idf->bid", x, self.model.W)


GEN_BUGS = {
    "relu": lambda self, n: F.relu(_hidden(self, self.model.generate_batch(n))),
    "instance_mixing": lambda self, n: torch.einsum("bif,df->bid", self.model.generate_batch(n), self.model.W[0]),
    "not_model_batch": lambda self, n: _hidden(self, torch.rand(n, self.cfg.n_inst, self.model.cfg.n_features)),
    "not_fresh": lambda self, n: _cache.setdefault(n, _hidden(self, self.model.generate_batch(n))),
    "model_output": lambda self, n: self.model(self.model.generate_batch(n)),
    "features_returned": lambda self, n: self.model.generate_batch(n),
    "decoded": lambda self, n: torch.einsum("bid,idf->bif", _hidden(self, self.model.generate_batch(n)), self.model.W),
    "normalized_h": lambda self, n: F.normalize(_hidden(self, self.model.generate_batch(n)), dim=-1),
    "centred_h": lambda self, n: (lambda h: h - h.mean(0))(_hidden(self, self.model.generate_batch(n))),
    "batch_size": lambda self, n: _hidden(self, self.model.generate_batch(256)),
    "bias_added": lambda self, n: _hidden(self, self.model.generate_batch(n)) + self.b_dec.detach(),
    "importance_weighted": lambda self, n: _hidden(self, self.model.generate_batch(n) * self.model.importance),
    "W_reshaped": lambda self, n: torch.einsum(
        "bif,ifd->bid", self.model.generate_batch(n), self.model.W.reshape(self.cfg.n_inst, -1, self.cfg.d_in)
    ),
}


@pytest.mark.parametrize("i", range(len(GEN_GOOD)))
def test_generate_batch_variants(i):
    assert_passes(checks.test_generate_batch, P.ToySAE)
    assert_passes(checks.test_generate_batch, _with(P.ToySAE, generate_batch=GEN_GOOD[i]))


@pytest.mark.parametrize("code", list(GEN_BUGS))
def test_generate_batch_bugs(code):
    _cache.clear()
    assert_fails(checks.test_generate_batch, _with(P.ToySAE, generate_batch=GEN_BUGS[code]), code)


def test_generate_batch_stub():
    assert_not_done(checks.test_generate_batch, _with(P.ToySAE, generate_batch=stub))


# --------------------------------------------------------------------------------------------
# forward (vanilla)
# --------------------------------------------------------------------------------------------
def _vanilla(**bug):
    """A learner's forward in einops style, with one mistake switched on."""

    def forward(self, h):
        b_dec = self.b_dec.detach() if bug.get("detach_b_dec") else self.b_dec
        x = h if bug.get("no_sub") else h - b_dec
        W_enc = self.W_dec_normalized.mT if bug.get("enc_from_dec") else self.W_enc
        pre = einops.einsum(x, W_enc, "b i d, i d s -> b i s")
        if bug.get("relu_first"):
            acts = F.relu(pre) + self.b_enc
        elif bug.get("no_relu"):
            acts = pre + self.b_enc
        else:
            acts = F.relu(pre + (0 if bug.get("no_benc") else self.b_enc * bug.get("benc_sign", 1)))
        W = self.W_dec if bug.get("raw_dec") else self.W_dec_normalized
        W = self.W_enc.mT if bug.get("enc_as_dec") else W
        W = W.detach() if bug.get("detach_dec") else W
        dec_in = acts.detach() if bug.get("detach_acts") else acts
        h_rec = einops.einsum(dec_in, W, "b i s, i s d -> b i d") + (0 if bug.get("no_add") else self.b_dec)
        h_rec = h_rec + self.b_dec if bug.get("twice") else h_rec
        diff = h_rec - (h - self.b_dec if bug.get("centred") else h)
        L_rec = {
            "mean": (diff**2).mean(-1),
            "sum": (diff**2).sum(-1),
            "norm": diff.norm(dim=-1),
            "abs": diff.abs().mean(-1),
        }[bug.get("rec", "mean")]
        a = acts.detach() if bug.get("detach_sp") else acts
        L_sp = {
            "l1": a.abs().sum(-1),
            "l2": a.norm(dim=-1),
            "sq": (a**2).sum(-1),
            "mean": a.abs().mean(-1),
            "pre": (pre + self.b_enc).abs().sum(-1),
        }[bug.get("sp", "l1")]
        coeff = self.sparsity_coeff[0] if bug.get("coeff0") else self.sparsity_coeff
        if bug.get("coeff_sp"):
            L_sp, coeff = coeff * L_sp, 1.0
        per = {
            "ok": L_rec + coeff * L_sp,
            "no_coeff": L_rec + L_sp,
            "coeff_rec": coeff * L_rec + L_sp,
            "rec_only": L_rec,
        }[bug.get("terms", "ok")]
        loss = {"ok": per.mean(0).sum(), "mean": per.mean(), "sum": per.sum(), "swapped": per.sum(0).mean()}[
            bug.get("reduce", "ok")
        ]
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return forward


def _forward_loop(self, h):
    """Correct: explicit loops over instances."""
    acts, recs = [], []
    W_hat = self.W_dec_normalized
    for k in range(h.shape[1]):
        a = F.relu((h[:, k] - self.b_dec[k]) @ self.W_enc[k] + self.b_enc[k])
        acts.append(a)
        recs.append(a @ W_hat[k] + self.b_dec[k])
    acts, h_rec = torch.stack(acts, 1), torch.stack(recs, 1)
    L_rec = F.mse_loss(h_rec, h, reduction="none").mean(-1)
    L_sp = acts.sum(-1)  # acts are non-negative
    loss = sum((L_rec[:, k] + self.sparsity_coeff[k] * L_sp[:, k]).mean() for k in range(h.shape[1]))
    return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec


def _forward_matmul(self, h):
    """Correct: batched matmuls with the instance axis moved first, torch.clamp for the ReLU."""
    x = (h - self.b_dec).transpose(0, 1)  # [inst batch d_in]
    acts = torch.clamp(torch.bmm(x, self.W_enc) + self.b_enc[:, None], min=0.0)
    h_rec = (torch.bmm(acts, self.W_dec_normalized) + self.b_dec[:, None]).transpose(0, 1)
    acts = acts.transpose(0, 1)
    d = {"L_reconstruction": ((h - h_rec) ** 2).sum(-1) / h.shape[-1], "L_sparsity": acts.norm(p=1, dim=-1)}
    loss = ((d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).sum(0) / h.shape[0]).sum()
    return d, loss, acts, h_rec


FWD_BUGS = {
    "no_b_dec_subtraction": _vanilla(no_sub=True),
    "no_b_enc": _vanilla(no_benc=True),
    "b_enc_subtracted": _vanilla(benc_sign=-1),
    "decoder_is_encoder": _vanilla(enc_as_dec=True),
    "relu_before_bias": _vanilla(relu_first=True),
    "no_relu": _vanilla(no_relu=True),
    "encoder_from_decoder": _vanilla(enc_from_dec=True),
    "unnormalized_decoder": _vanilla(raw_dec=True),
    "no_b_dec_add": _vanilla(no_add=True),
    "rec_sum": _vanilla(rec="sum"),
    "rec_norm": _vanilla(rec="norm"),
    "rec_abs": _vanilla(rec="abs"),
    "sparsity_l2": _vanilla(sp="l2"),
    "sparsity_sq": _vanilla(sp="sq"),
    "sparsity_mean": _vanilla(sp="mean"),
    "sparsity_pre_relu": _vanilla(sp="pre"),
    "loss_mean_inst": _vanilla(reduce="mean"),
    "loss_sum_batch": _vanilla(reduce="sum"),
    "loss_reductions_swapped": _vanilla(reduce="swapped"),
    "no_coeff": _vanilla(terms="no_coeff"),
    "coeff_on_rec": _vanilla(terms="coeff_rec"),
    "no_sparsity_in_loss": _vanilla(terms="rec_only"),
    "decoder_detached": _vanilla(detach_dec=True),
    "sparsity_detached": _vanilla(detach_sp=True),
    "b_dec_detached": _vanilla(detach_b_dec=True),
    "acts_detached": _vanilla(detach_acts=True),
    "b_dec_added_twice": _vanilla(twice=True),
    "rec_target_centred": _vanilla(centred=True),
    "coeff_in_L_sparsity": _vanilla(coeff_sp=True),
    "first_instance_coeff": _vanilla(coeff0=True),
}


def _in_place(self, h):
    h -= self.b_dec.detach()
    return _vanilla(no_sub=True)(self, h)


def _detached_loss(self, h):
    d, loss, acts, h_rec = _vanilla()(self, h)
    return d, loss.detach(), acts, h_rec


def _swapped_return(self, h):
    d, loss, acts, h_rec = _vanilla()(self, h)
    return loss, d, acts, h_rec


@pytest.mark.parametrize("fn", [_vanilla(), _forward_loop, _forward_matmul])
def test_forward_variants(fn):
    assert_passes(checks.test_forward, P.ToySAE)
    assert_passes(checks.test_forward, _with(P.ToySAE, forward=fn))


@pytest.mark.parametrize("code", list(FWD_BUGS))
def test_forward_bugs(code):
    assert_fails(checks.test_forward, _with(P.ToySAE, forward=FWD_BUGS[code]), code)


@pytest.mark.parametrize(
    ("fn", "code"), [(_in_place, "in_place_input"), (_detached_loss, "no_grad"), (_swapped_return, "bad_return")]
)
def test_forward_more_bugs(fn, code):
    assert_fails(checks.test_forward, _with(P.ToySAE, forward=fn), code)


def test_forward_stub():
    assert_not_done(checks.test_forward, _with(P.ToySAE, forward=stub))
