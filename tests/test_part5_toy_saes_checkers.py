"""Proofs for the part 5 checkers: the reference and correct variants pass, realistic mistakes fail right.

Variants subclass the reference classes and override only the method under test (the checkers graft
exactly that method onto the reference), or are plain functions for the function exercises.
"""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_not_done, assert_passes


def _stub(*args, **kwargs):
    raise NotImplementedError("not implemented yet")


def _with(base: type, **methods) -> type:
    return type(f"Variant{base.__name__}", (base,), methods)


# --------------------------------------------------------------------------------------------
# __init__
# --------------------------------------------------------------------------------------------
def _init_variant(body):
    def __init__(self, cfg, model=None):
        nn.Module.__init__(self)
        self.cfg = cfg
        device = model.W.device
        body(self, cfg, model, device)
        self.register_buffer("sparsity_coeff", torch.full((cfg.n_inst,), 0.1, device=device))

    return _with(P.ToySAE, __init__=__init__)


def _good_init(self, cfg, model, device):
    model.requires_grad_(False)
    self.model = model
    w = torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device)
    nn.init.xavier_normal_(w)
    self.W_enc = nn.Parameter(w)
    self._W_dec = (
        None if cfg.tied_weights else nn.Parameter(torch.randn(cfg.n_inst, cfg.d_sae, cfg.d_in, device=device))
    )
    self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
    self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))


def _good_init_loop(self, cfg, model, device):
    for p in model.parameters():
        p.requires_grad = False
    self.model = model
    self.W_enc = nn.Parameter(torch.rand(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device) * 2 - 1)
    self._W_dec = None
    if not cfg.tied_weights:
        self._W_dec = nn.Parameter(self.W_enc.data.permute(0, 2, 1).contiguous())
    self.b_enc = nn.Parameter(torch.zeros_like(self.W_enc[:, 0, :]).detach())
    self.b_dec = nn.Parameter(torch.zeros_like(self.W_enc[:, :, 0]).detach())


def _bug(base, **changes):
    def body(self, cfg, model, device):
        base(self, cfg, model, device)
        for fn in changes.values():
            fn(self, cfg, model, device)

    return body


INIT_BUGS = {
    "bias_not_zero": _bug(_good_init, b=lambda s, c, m, d: setattr(s, "b_enc", nn.Parameter(torch.ones_like(s.b_enc)))),
    "model_not_frozen": _bug(_good_init, m=lambda s, c, m, d: m.requires_grad_(True)),
    "zero_init": _bug(_good_init, w=lambda s, c, m, d: setattr(s, "W_enc", nn.Parameter(torch.zeros_like(s.W_enc)))),
    "untied_shares_storage": _bug(
        _good_init,
        w=lambda s, c, m, d: setattr(s, "_W_dec", None if c.tied_weights else nn.Parameter(s.W_enc.transpose(-1, -2))),
    ),
    "tied_not_shared": _bug(
        _good_init,
        w=lambda s, c, m, d: setattr(s, "_W_dec", nn.Parameter(s.W_enc.detach().transpose(-1, -2).clone())),
    ),
    "shape": _bug(
        _good_init,
        w=lambda s, c, m, d: setattr(s, "W_enc", nn.Parameter(torch.randn(c.n_inst, c.d_sae, c.d_in, device=d))),
    ),
    "not_parameter": _bug(_good_init, b=lambda s, c, m, d: setattr(s, "b_dec", torch.zeros(c.n_inst, c.d_in))),
}


def test_init_reference_and_variants():
    assert_passes(checks.test_init, P.ToySAE)
    assert_passes(checks.test_init, _init_variant(_good_init))
    assert_passes(checks.test_init, _init_variant(_good_init_loop))


@pytest.mark.parametrize("code", list(INIT_BUGS))
def test_init_bugs(code):
    body = INIT_BUGS[code]
    if code == "not_parameter":
        # b_dec as a plain tensor attribute: plain attributes can't be assigned over a registered parameter name
        def body(self, cfg, model, device):
            _good_init(self, cfg, model, device)
            del self._parameters["b_dec"]
            self.b_dec = torch.zeros(cfg.n_inst, cfg.d_in, device=device)

    assert_fails(checks.test_init, _init_variant(body), code)


def test_init_stub():
    assert_not_done(checks.test_init, _with(P.ToySAE, __init__=_stub))


# --------------------------------------------------------------------------------------------
# W_dec_normalized
# --------------------------------------------------------------------------------------------
NORM_GOOD = [
    lambda self: F.normalize(self.W_dec, dim=-1, eps=self.cfg.weight_normalize_eps),
    lambda self: self.W_dec / (self.W_dec.pow(2).sum(-1, keepdim=True).sqrt() + self.cfg.weight_normalize_eps),
    lambda self: einops.einsum(
        self.W_dec, 1 / (self.W_dec.norm(dim=2) + 1e-8), "inst d_sae d_in, inst d_sae -> inst d_sae d_in"
    ),
]
NORM_BUGS = [
    ("zero_row", lambda self: self.W_dec / self.W_dec.norm(dim=-1, keepdim=True)),
    ("not_unit", lambda self: self.W_dec / (self.W_dec.norm(dim=-2, keepdim=True) + 1e-8)),
    ("not_unit", lambda self: self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + 0.1)),
    ("not_unit", lambda self: self.W_dec / (self.W_dec.norm(dim=(-2, -1), keepdim=True) + 1e-8)),
    ("no_grad", lambda self: (self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + 1e-8)).detach()),
    ("in_place", lambda self: self.W_dec.data.div_(self.W_dec.data.norm(dim=-1, keepdim=True) + 1e-8) * 1.0),
]


@pytest.mark.parametrize("i", range(len(NORM_GOOD)))
def test_W_dec_normalized_variants(i):
    assert_passes(checks.test_W_dec_normalized, P.ToySAE)
    assert_passes(checks.test_W_dec_normalized, _with(P.ToySAE, W_dec_normalized=property(NORM_GOOD[i])))


@pytest.mark.parametrize(("code", "fn"), NORM_BUGS)
def test_W_dec_normalized_bugs(code, fn):
    assert_fails(checks.test_W_dec_normalized, _with(P.ToySAE, W_dec_normalized=property(fn)), code)


def test_W_dec_normalized_stub():
    assert_not_done(checks.test_W_dec_normalized, _with(P.ToySAE, W_dec_normalized=property(_stub)))


# --------------------------------------------------------------------------------------------
# generate_batch
# --------------------------------------------------------------------------------------------
GEN_GOOD = [
    lambda self, n: torch.einsum("bif,idf->bid", self.model.generate_batch(n), self.model.W),
    lambda self, n: (self.model.W[None] @ self.model.generate_batch(n)[..., None]).squeeze(-1),
    lambda self, n: torch.stack(
        [x @ self.model.W[k].T for k, x in enumerate(self.model.generate_batch(n).unbind(1))], dim=1
    ).detach(),
]
_cache: dict = {}
GEN_BUGS = {
    "relu": lambda self, n: F.relu(torch.einsum("bif,idf->bid", self.model.generate_batch(n), self.model.W)),
    "instance_mixing": lambda self, n: torch.einsum("bif,df->bid", self.model.generate_batch(n), self.model.W[0]),
    "not_model_batch": lambda self, n: torch.einsum(
        "bif,idf->bid", torch.rand(n, self.cfg.n_inst, self.model.cfg.n_features), self.model.W
    ),
    "not_fresh": lambda self, n: _cache.setdefault(
        n, torch.einsum("bif,idf->bid", self.model.generate_batch(n), self.model.W)
    ),
    "shape": lambda self, n: self.model(self.model.generate_batch(n)),
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
    assert_not_done(checks.test_generate_batch, _with(P.ToySAE, generate_batch=_stub))


# --------------------------------------------------------------------------------------------
# forward (vanilla)
# --------------------------------------------------------------------------------------------
def _vanilla(
    sub_bdec=True, add_benc=True, normalized=True, add_bdec=True, rec="mean", sparsity="l1", reduce="standard"
):
    def forward(self, h):
        x = h - self.b_dec if sub_bdec else h
        pre = torch.einsum("bid,ids->bis", x, self.W_enc)
        acts = F.relu(pre + self.b_enc) if add_benc else F.relu(pre)
        W = self.W_dec_normalized if normalized else self.W_dec
        h_rec = torch.einsum("bis,isd->bid", acts, W)
        if add_bdec:
            h_rec = h_rec + self.b_dec
        err = (h_rec - h) ** 2
        L_rec = err.mean(-1) if rec == "mean" else err.sum(-1)
        L_sp = {"l1": acts.abs().sum(-1), "l2": acts.norm(dim=-1), "mean": acts.abs().mean(-1)}[sparsity]
        per = L_rec + self.sparsity_coeff * L_sp
        if reduce == "no_coeff":
            per = L_rec + L_sp
        loss = {"mean_inst": per.mean(), "sum_batch": per.sum()}.get(reduce, per.mean(0).sum())
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return forward


def _forward_loop(self, h):
    """A correct variant with explicit loops over instances."""
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


def _forward_einops(self, h):
    pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
    acts = pre.clamp(min=0)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    d = {"L_reconstruction": ((h - h_rec) ** 2).sum(-1) / h.shape[-1], "L_sparsity": acts.norm(p=1, dim=-1)}
    loss = einops.reduce(d["L_reconstruction"] + self.sparsity_coeff[None] * d["L_sparsity"], "b i -> i", "mean").sum()
    return d, loss, acts, h_rec


FWD_BUGS = {
    "no_b_dec_subtraction": _vanilla(sub_bdec=False),
    "no_b_enc": _vanilla(add_benc=False),
    "unnormalized_decoder": _vanilla(normalized=False),
    "no_b_dec_add": _vanilla(add_bdec=False),
    "rec_sum": _vanilla(rec="sum"),
    "sparsity_l2": _vanilla(sparsity="l2"),
    "sparsity_mean": _vanilla(sparsity="mean"),
    "loss_mean_inst": _vanilla(reduce="mean_inst"),
    "loss_sum_batch": _vanilla(reduce="sum_batch"),
    "no_coeff": _vanilla(reduce="no_coeff"),
}


@pytest.mark.parametrize("fn", [_vanilla(), _forward_loop, _forward_einops])
def test_forward_variants(fn):
    assert_passes(checks.test_forward, P.ToySAE)
    assert_passes(checks.test_forward, _with(P.ToySAE, forward=fn))


@pytest.mark.parametrize("code", list(FWD_BUGS))
def test_forward_bugs(code):
    assert_fails(checks.test_forward, _with(P.ToySAE, forward=FWD_BUGS[code]), code)


def test_forward_detached_and_stub():
    def detached(self, h):
        d, loss, acts, h_rec = _vanilla()(self, h)
        return d, loss.detach(), acts, h_rec

    assert_fails(checks.test_forward, _with(P.ToySAE, forward=detached), "no_grad")
    assert_not_done(checks.test_forward, _with(P.ToySAE, forward=_stub))


# --------------------------------------------------------------------------------------------
# resample_simple
# --------------------------------------------------------------------------------------------
def _simple(dead_rule="window", draw="randn", use_scale=True, reset_bias=True, normalise=True, shared=False):
    def resample(self, frac, resample_scale):
        dead = (frac <= 0).all(0) if dead_rule == "window" else frac[-1] <= 0
        n = int(dead.sum())
        if n == 0:
            return
        shape = (1 if shared else n, self.cfg.d_in)
        v = torch.randn(shape) if draw == "randn" else torch.rand(shape)
        if normalise:
            v = v / v.norm(dim=-1, keepdim=True)
        v = v.expand(n, -1)
        self.W_dec.data[dead] = v
        self.W_enc.data.transpose(-1, -2)[dead] = v * (resample_scale if use_scale else 1.0)
        if reset_bias:
            self.b_enc.data[dead] = 0.0

    return resample


def _simple_loop(self, frac, resample_scale):
    """Correct: loops over instances and latents, draws with normal_ and F.normalize."""
    alive_any = frac.amax(dim=0) > 0
    for k in range(self.cfg.n_inst):
        for j in range(self.cfg.d_sae):
            if alive_any[k, j]:
                continue
            v = F.normalize(torch.empty(self.cfg.d_in).normal_(), dim=0)
            self.W_dec[k, j] = v
            self.W_enc[k, :, j] = resample_scale * v
            self.b_enc[k, j] = 0


def _simple_sum(self, frac, resample_scale):
    """Correct: dead = summed activity is zero; directions from a fresh generator on the parameters' device."""
    dead = frac.sum(0) == 0
    idx = dead.nonzero(as_tuple=True)
    g = torch.Generator(device=self.W_enc.device).manual_seed(7)
    v = torch.randn(len(idx[0]), self.cfg.d_in, generator=g, device=self.W_enc.device)
    v = v / v.norm(dim=1, keepdim=True)
    with torch.no_grad():
        self.b_enc[idx] = 0.0
        self.W_enc[idx[0], :, idx[1]] = v * resample_scale
        self._W_dec[idx] = v


SIMPLE_BUGS = {
    "last_step_only": _simple(dead_rule="last"),
    "not_isotropic": _simple(draw="rand"),
    "scale_ignored": _simple(use_scale=False),
    "b_enc_not_reset": _simple(reset_bias=False),
    "dec_not_unit": _simple(normalise=False),
    "same_direction": _simple(shared=True),
}


@pytest.mark.parametrize("fn", [P.resample_simple, _simple(), _simple_loop, _simple_sum])
def test_resample_simple_variants(fn):
    assert_passes(checks.test_resample_simple, fn)


@pytest.mark.parametrize("code", list(SIMPLE_BUGS))
def test_resample_simple_bugs(code):
    assert_fails(checks.test_resample_simple, SIMPLE_BUGS[code], code)


def test_resample_simple_alive_touched_and_stub():
    def touches_alive(self, frac, resample_scale):
        P.resample_simple(self, frac, resample_scale)
        self.b_enc.data[~(frac <= 0).all(0)] *= 0.5

    assert_fails(checks.test_resample_simple, touches_alive, "alive_touched")
    assert_not_done(checks.test_resample_simple, _stub)


# --------------------------------------------------------------------------------------------
# resample_advanced
# --------------------------------------------------------------------------------------------
def _advanced(power=2, sub_bdec=True, scale_mode="alive", use_scale=True, uniform=False, dead_rule="window"):
    def resample(self, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(0) if dead_rule == "window" else frac[-1] <= 0
        h = self.generate_batch(batch_size)
        loss = self.forward(h)[0]["L_reconstruction"]
        for k in range(self.cfg.n_inst):
            idx = dead[k].nonzero().squeeze(-1)
            if len(idx) == 0:
                continue
            w = torch.ones_like(loss[:, k]) if uniform else loss[:, k] ** power
            pick = torch.multinomial(w, len(idx), replacement=True)
            v = h[pick, k] - (self.b_dec[k] if sub_bdec else 0.0)
            v = v / v.norm(dim=-1, keepdim=True)
            norms = self.W_enc[k].norm(dim=0)
            mean_norm = {"alive": norms[~dead[k]].mean(), "all": norms.mean(), "none": 1.0}[scale_mode]
            self.W_dec.data[k, idx] = v
            self.W_enc.data[k][:, idx] = (v * mean_norm * (resample_scale if use_scale else 1.0)).T
            self.b_enc.data[k, idx] = 0.0

    return resample


def _advanced_cumsum(self, frac, resample_scale, batch_size):
    """Correct: inverse-CDF sampling written by hand, one draw at a time."""
    dead = ~(frac > 0).any(0)
    h = self.generate_batch(batch_size)
    _, _, _, h_rec = self(h)
    sq_err = (h - h_rec).pow(2).sum(-1)  # proportional to L_reconstruction
    for k in range(self.cfg.n_inst):
        p = sq_err[:, k] ** 2
        if p.sum() == 0:
            continue
        cdf = torch.cumsum(p / p.sum(), 0)
        alive_norm = self.W_enc[k][:, ~dead[k]].norm(dim=0).mean()
        for j in dead[k].nonzero().flatten().tolist():
            i = int(torch.searchsorted(cdf, torch.rand(1, device=cdf.device) * cdf[-1]).clamp(max=len(cdf) - 1))
            v = F.normalize(h[i, k] - self.b_dec[k], dim=0)
            self._W_dec[k, j] = v
            self.W_enc[k, :, j] = v * resample_scale * alive_norm
            self.b_enc[k, j] = 0.0


def _advanced_vectorised(self, frac, resample_scale, batch_size):
    """Correct: one multinomial call per instance via a [inst batch] weight matrix, torch.distributions."""
    dead = frac.max(0).values == 0
    h = self.generate_batch(batch_size)
    L = self.forward(h)[0]["L_reconstruction"].T  # [inst batch]
    enc_norms = self.W_enc.norm(dim=1)  # [inst d_sae]
    alive_mean = (enc_norms * ~dead).sum(-1) / (~dead).sum(-1)
    for k in range(self.cfg.n_inst):
        n = int(dead[k].sum())
        if n == 0:
            continue
        pick = torch.distributions.Categorical(probs=L[k] ** 2 / (L[k] ** 2).sum()).sample((n,))
        v = F.normalize(h[pick, k] - self.b_dec[k], dim=-1)
        rows = dead[k].nonzero()[:, 0]
        self.W_dec.data[k, rows] = v
        self.W_enc.data[k, :, rows] = v.T * resample_scale * alive_mean[k]
        self.b_enc.data[k, rows] = 0


ADVANCED_BUGS = {
    "sampling": _advanced(power=1),
    "b_dec_not_subtracted": _advanced(sub_bdec=False),
    "all_norm": _advanced(scale_mode="all"),
    "scale_ignored": _advanced(use_scale=False),
    "no_alive_norm": _advanced(scale_mode="none"),
    "last_step_only": _advanced(dead_rule="last"),
}


@pytest.mark.parametrize("fn", [P.resample_advanced, _advanced(), _advanced_cumsum, _advanced_vectorised])
def test_resample_advanced_variants(fn):
    assert_passes(checks.test_resample_advanced, fn)


@pytest.mark.parametrize("code", list(ADVANCED_BUGS))
def test_resample_advanced_bugs(code):
    assert_fails(checks.test_resample_advanced, ADVANCED_BUGS[code], code)


def test_resample_advanced_uniform_and_stub():
    err = assert_fails(checks.test_resample_advanced, _advanced(uniform=True), "sampling")
    assert "square" in err.hint or "multinomial" in err.hint
    assert_not_done(checks.test_resample_advanced, _stub)
