"""Proofs for the diagnoses added after the fresh held-out measurement (`tests.part5_toy_saes_diagnosis`): the
init distribution and decoder copy, forward's ingredient and loss-part diagnoses, generate_batch's shared map,
and advanced resampling's deterministic choice and encoder-norm axis."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.checking import CheckFailed
from tests.proving import assert_fails, assert_passes


def _with(**methods) -> type:
    return type("HeldoutToySAE", (P.ToySAE,), methods)


def _init(w_enc, w_dec=None) -> type:
    def __init__(self, cfg, model=None):
        nn.Module.__init__(self)
        self.cfg, self.model = cfg, (model.requires_grad_(False) if model is not None else None)
        n, d, s = cfg.n_inst, cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(w_enc(n, d, s))
        dec = self.W_enc.detach().transpose(-1, -2).clone() if w_dec is None else w_dec(self.W_enc.detach())
        self._W_dec = None if cfg.tied_weights else nn.Parameter(dec)
        self.b_enc, self.b_dec = nn.Parameter(torch.zeros(n, s)), nn.Parameter(torch.zeros(n, d))
        self.register_buffer("sparsity_coeff", torch.full((n,), 0.1))

    return _with(__init__=__init__)


def _kaiming(n, d, s):
    return nn.init.kaiming_uniform_(torch.empty(n, d, s))


INIT_GOOD = [
    _init(lambda n, d, s: torch.stack([nn.init.kaiming_uniform_(torch.empty(s, d)).T for _ in range(n)])),
    _init(lambda n, d, s: nn.init.kaiming_uniform_(torch.empty(n, d, s), a=5**0.5)),
    # mode="fan_out" on the whole tensor (fan n_inst·d_sae, counting instances) is a named mistake since fresh21
    _init(lambda n, d, s: nn.init.kaiming_uniform_(torch.empty(n, d, s), nonlinearity="relu")),
    _init(lambda n, d, s: torch.stack([nn.init.kaiming_uniform_(torch.empty(d, s)) for _ in range(n)])),
    _init(lambda n, d, s: nn.init.kaiming_uniform_(torch.empty(n, s, d)).mT.contiguous()),
]
INIT_BUGS = {
    "init_scale": _init(lambda n, d, s: torch.rand(n, d, s) * 2 - 1),  # uniform_(-1, 1): no Kaiming bound
    "init_scale_linear": _init(lambda n, d, s: nn.init.kaiming_uniform_(torch.empty(n, d, s), nonlinearity="linear")),
    "init_not_uniform": _init(lambda n, d, s: torch.randn(n, d, s)),
    "decoder_not_W_enc_T": _init(_kaiming, lambda W: nn.init.kaiming_uniform_(torch.empty_like(W.mT))),
    "decoder_rescaled": _init(_kaiming, lambda W: F.normalize(W.mT.clone(), dim=-1)),
}


@pytest.mark.parametrize("i", range(len(INIT_GOOD)))
def test_init_good(i):
    assert_passes(checks.test_init, INIT_GOOD[i])


@pytest.mark.parametrize("code", list(INIT_BUGS))
def test_init_bugs(code):
    assert_fails(checks.test_init, INIT_BUGS[code], code.removesuffix("_linear"))


def test_generate_batch_shared_map():
    def gen(self, n):
        return einops.einsum(self.model.generate_batch(n), self.model.W.mean(0), "b i f, d f -> b i d")

    assert_fails(checks.test_generate_batch, _with(generate_batch=gen), "instance_mixing")


def _forward(bug=None):
    def forward(self, h):
        x = h - self.b_dec
        W_enc = self.W_dec.mT if bug == "encoder_from_W_dec" else self.W_enc
        pre = einops.einsum(x, W_enc, "b i d, i d s -> b i s") + self.b_enc
        acts = F.relu(pre)
        h_rec = einops.einsum(
            pre if bug == "decoded_pre_relu" else acts, self.W_dec_normalized, "b i s, i s d -> b i d"
        )
        h_rec = h_rec - self.b_dec if bug == "b_dec_subtracted" else h_rec + self.b_dec
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = acts.sum(-1).pow(2) if bug == "squared" else acts.abs().sum(-1)
        c = self.sparsity_coeff.mean() if bug == "coeff_mean" else self.sparsity_coeff
        loss = (L_rec + c * L_sp).mean(0).sum()
        if bug == "rec_mean_inst":
            loss = L_rec.mean() + (c * L_sp).mean(0).sum()
        if bug == "two":  # two ingredients wrong at once
            h_rec = einops.einsum(pre, self.W_dec, "b i s, i s d -> b i d") + self.b_dec
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return forward


FORWARD_BUGS = {
    "encoder_from_W_dec": "encoder_from_W_dec",
    "decoded_pre_relu": "decoded_pre_relu",
    "b_dec_subtracted": "b_dec_subtracted",
    "squared": "squared",
    "coeff_mean": "loss_parts",
    "rec_mean_inst": "loss_parts",
    "two": "decoded_pre_relu+unnormalized_decoder",
}


@pytest.mark.parametrize("bug", list(FORWARD_BUGS))
def test_forward_diagnoses(bug):
    assert_fails(checks.test_forward, _with(forward=_forward(bug)), FORWARD_BUGS[bug])


def _resample(bug):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(2)
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            if bug == "deterministic_choice":
                picked = w.topk(min(idx.numel(), batch_size)).indices.repeat(idx.numel())[: idx.numel()]
            else:
                picked = torch.multinomial(w, idx.numel(), replacement=True)
            v = F.normalize(h[picked, inst] - sae.b_dec[inst], dim=-1)
            live = sae.W_enc[inst, :, ~dead[inst]]
            norm = live.norm(dim=1).mean() if bug == "enc_norm_axis" else live.norm(dim=0).mean()
            norm = norm if live.shape[-1] else 1.0  # 1.0 if no latent is alive
            sae.W_dec.data[inst, idx] = v
            sae.W_enc.data[inst][:, idx] = v.T * resample_scale * norm
            sae.b_enc.data[inst, idx] = 0.0

    return resample


@pytest.mark.parametrize("code", ["deterministic_choice", "enc_norm_axis"])
def test_resample_advanced_diagnoses(code):
    assert_fails(checks.test_resample_advanced, _resample(code), code)
    assert_passes(checks.test_resample_advanced, _resample(None))


# Fresh2 measurement: a reshaped decoder, forward ingredients, generate_batch's contraction, reseeded or
# misdirected resampling.
def test_init_decoder_reshaped():
    bug = _init(_kaiming, lambda W: W.reshape(W.shape[0], W.shape[2], W.shape[1]).clone())
    assert_fails(checks.test_init, bug, "decoder_reshaped")


def test_generate_batch_contracted_d_in():
    def gen(self, n):
        x = einops.einsum(self.model.generate_batch(n), self.model.W, "b i f, i d f -> b i f")
        return x[..., : self.model.W.shape[1]]

    assert_fails(checks.test_generate_batch, _with(generate_batch=gen), "contracted_d_in")


def _forward2(bug):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        acts = pre.clamp(max=0) if bug == "relu_keeps_negative" else F.relu(pre)
        Wn = self.W_dec_normalized
        if bug == "decoder_normalised_over_d_sae":
            Wn = self.W_dec / (self.W_dec.norm(dim=-2, keepdim=True) + self.cfg.weight_normalize_eps)
        h_rec = einops.einsum(acts, Wn, "b i s, i s d -> b i d") + self.b_dec
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = (h_rec if bug == "sparsity_of_reconstruction" else acts).abs().sum(-1)
        loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return forward


@pytest.mark.parametrize("code", ["relu_keeps_negative", "decoder_normalised_over_d_sae", "sparsity_of_reconstruction"])
def test_forward_fresh2(code):
    assert_fails(checks.test_forward, _with(forward=_forward2(code)), code)


def _simple(bug):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        n = int(dead.sum())
        if n == 0:
            return
        if bug == "reseeded":
            torch.manual_seed(0)
        v = F.normalize(torch.randn(n, sae.cfg.d_in), dim=-1)
        sae.W_dec.data[dead] = v
        if bug == "enc_untouched":
            sae.W_enc.data.transpose(-1, -2)[dead].copy_(v * resample_scale)
        elif bug == "enc_added":
            sae.W_enc.data.transpose(-1, -2)[dead] += v * resample_scale
        elif bug == "enc_mismatch":
            sae.W_enc.data.transpose(-1, -2)[dead] = F.normalize(torch.randn(n, sae.cfg.d_in), dim=-1) * resample_scale
        elif bug == "enc_length":
            sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale * 2
        else:
            sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead.any(-1) if bug == "alive_touched" else dead] = 0.0

    return resample


@pytest.mark.parametrize(
    "code", ["reseeded", "enc_untouched", "alive_touched", "enc_added", "enc_mismatch", "enc_length"]
)
def test_resample_simple_fresh2(code):
    assert_fails(checks.test_resample_simple, _simple(code), code)


def _advanced(bug):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        ld, _, _, h_rec = sae.forward(sae.generate_batch(batch_size) if bug == "sampling_other_batch" else h)
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = ld["L_sparsity" if bug == "same_input" else "L_reconstruction"][:, inst].pow(2)
            w = ld["L_reconstruction"][inst] if bug == "sampling_other_axis" else w  # a batch row, not a column
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            picked = torch.multinomial(w, idx.numel(), replacement=True)
            src = h_rec if bug == "dec_zero" else h
            v = (src[picked, inst] - sae.b_dec[inst]).clone()
            v = v / v.norm(dim=0 if bug == "normalized_wrong_axis" else -1, keepdim=True).clamp_min(1e-12)
            norm = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0).pow(2 if bug == "rms_norm" else 1).mean()
            norm = norm.sqrt() if bug == "rms_norm" else norm
            sae.W_dec.data[inst, idx] = v
            sae.W_enc.data[inst][:, idx] = v.T * resample_scale * norm
            sae.b_enc.data[inst, idx] = 0.0

    return resample


@pytest.mark.parametrize(
    "code",
    ["same_input", "dec_zero", "normalized_wrong_axis", "sampling_other_batch", "rms_norm", "sampling_other_axis"],
)
def test_resample_advanced_fresh2(code):
    # "same_input" weights by L_sparsity²: which inputs fire the live latent depends on the fixture's draws, so
    # the picks may spread over several inputs, and then the weights are named (sampling_L_sparsity) instead
    want = ("same_input", "sampling_L_sparsity") if code == "same_input" else (code,)
    with pytest.raises(CheckFailed) as info:
        checks.test_resample_advanced(_advanced(code), device="cpu")
    assert info.value.code in want, info.value


# ---- fresh3: b_final added to h, decoding with the normalised encoder, a size ratio in L_reconstruction
def _gen_plus_b_final(self, n):
    x = self.model.generate_batch(n)
    return einops.einsum(x, self.model.W, "b i f, i d f -> b i d") + self.model.b_final[:, : self.cfg.d_in]


def _forward3(bug):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        acts = F.relu(pre)
        Wd = self.W_dec_normalized
        if bug == "decoder_is_normalised_encoder":
            Wd = (self.W_enc / self.W_enc.norm(dim=1, keepdim=True)).transpose(-1, -2)
        h_rec = einops.einsum(acts, Wd, "b i s, i s d -> b i d") + self.b_dec
        err2 = (h_rec - h).pow(2)
        L_rec = err2.sum(-1) / self.cfg.d_sae if bug == "size_factor" else err2.mean(-1)
        L_sp = acts.abs().sum(-1)
        if bug == "latent_weighted":  # fresh7: Anthropic-style, weighted by the unnormalised decoder norms
            L_sp = (acts * self.W_dec.norm(dim=-1)).sum(-1)
        if bug == "latent_weighted_enc":  # weighted by another per-latent norm: described, not named
            L_sp = einops.einsum(acts, self.W_enc.norm(dim=1), "b i s, i s -> b i")
        loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return forward


def test_generate_batch_b_final():
    assert_fails(checks.test_generate_batch, _with(generate_batch=_gen_plus_b_final), "bias_added")


@pytest.mark.parametrize(
    "code", ["decoder_is_normalised_encoder", "size_factor", "latent_weighted", "latent_weighted_enc"]
)
def test_forward_fresh3(code):
    assert_fails(checks.test_forward, _with(forward=_forward3(code)), code.removesuffix("_enc"))


# ---- fresh4: the encoder's columns normalised too (losses from a second batch: above, sampling_other_batch)
def _forward_enc_normalised(self, h):
    W_enc = self.W_enc / self.W_enc.norm(dim=1, keepdim=True)
    acts = F.relu(einops.einsum(h - self.b_dec, W_enc, "b i d, i d s -> b i s") + self.b_enc)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    L_rec, L_sp = (h_rec - h).pow(2).mean(-1), acts.abs().sum(-1)
    return (
        {"L_reconstruction": L_rec, "L_sparsity": L_sp},
        (L_rec + self.sparsity_coeff * L_sp).mean(0).sum(),
        acts,
        h_rec,
    )


def test_forward_encoder_normalised():
    assert_fails(checks.test_forward, _with(forward=_forward_enc_normalised), "encoder_normalized")
