"""Proofs for part 5's resampling checkers: correct resamplers written differently pass, realistic mistakes fail
with their own code (which latents were picked, what the directions were drawn from, which inputs the sampling
weights follow, what the encoder was scaled by)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_not_done, assert_passes, stub


# --------------------------------------------------------------------------------------------
# resample_simple
# --------------------------------------------------------------------------------------------
def _dead(frac, rule):
    return {
        "window": lambda: (frac <= 0).all(0),
        "last": lambda: frac[-1] <= 0,
        "first": lambda: frac[0] <= 0,
        "any": lambda: (frac <= 0).any(0),
        "mean": lambda: frac.mean(0) < 1e-3,
        "inverted": lambda: (frac > 0).any(0),
        "inst0": lambda: (frac[:, :1] <= 0).all(0).expand(frac.shape[1], -1),
        "all": lambda: torch.ones_like(frac[0], dtype=torch.bool),
        "first_of_each": lambda: (frac <= 0).all(0) & ((frac <= 0).all(0).cumsum(-1) == 1),
    }[rule]()


def _simple(rule="window", draw="randn", enc="scale", reset_bias=True, normalise="rows", share="none", dec="v"):
    def resample(sae, frac, resample_scale):
        dead = _dead(frac, rule)
        n = int(dead.sum())
        if n == 0:
            return
        d_in = sae.cfg.d_in
        shape = {"none": (n, d_in), "all": (1, d_in)}.get(share, (n, d_in))
        v = {"randn": torch.randn, "rand": torch.rand, "cube": lambda *s: torch.rand(*s) * 2 - 1}[draw](*shape)
        if share == "instance":
            per_inst = torch.randn(sae.cfg.n_inst, d_in)
            v = per_inst[dead.nonzero()[:, 0]]
        if share == "index":
            per_latent = torch.randn(sae.cfg.d_sae, d_in)
            v = per_latent[dead.nonzero()[:, 1]]
        if normalise == "rows":
            v = v / v.norm(dim=-1, keepdim=True)
        elif normalise == "cols":
            v = v / v.norm(dim=0, keepdim=True)
        v = v.expand(n, -1)
        sae.W_dec.data[dead] = v * resample_scale if dec == "scaled" else v
        new_enc = {
            "scale": v * resample_scale,
            "one": v,
            "divide": v / resample_scale,
            "zero": torch.zeros_like(v),
            "other": F.normalize(torch.randn(n, d_in), dim=-1) * resample_scale,
        }.get(enc)
        if new_enc is not None:
            sae.W_enc.data.transpose(-1, -2)[dead] = new_enc
        if reset_bias:
            sae.b_enc.data[dead] = 0.0

    return resample


def _simple_loop(sae, frac, resample_scale):
    """Correct: loops over instances and latents, draws with normal_ and F.normalize."""
    alive_any = frac.amax(dim=0) > 0
    for k in range(sae.cfg.n_inst):
        for j in range(sae.cfg.d_sae):
            if alive_any[k, j]:
                continue
            v = F.normalize(torch.empty(sae.cfg.d_in).normal_(), dim=0)
            sae.W_dec[k, j] = v
            sae.W_enc[k, :, j] = resample_scale * v
            sae.b_enc[k, j] = 0


def _simple_sum(sae, frac, resample_scale):
    """Correct: dead = summed activity is zero; directions from a fresh generator on the parameters' device. The
    decoder is written before the encoder: tied, W_dec is a view of W_enc and the last write stays (fresh46)."""
    dead = frac.sum(0) == 0
    idx = dead.nonzero(as_tuple=True)
    g = torch.Generator(device=sae.W_enc.device).manual_seed(int(torch.randint(2**62, ())))  # fresh per call
    v = torch.randn(len(idx[0]), sae.cfg.d_in, generator=g, device=sae.W_enc.device)
    v = v / v.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.b_enc[idx] = 0.0
        sae.W_dec[idx] = v
        sae.W_enc[idx[0], :, idx[1]] = v * resample_scale


def _simple_where(sae, frac, resample_scale):
    """Correct: a full random tensor, written everywhere with torch.where."""
    dead = ~(frac > 0).any(0)
    v = F.normalize(torch.randn(*dead.shape, sae.cfg.d_in), dim=-1)  # [inst d_sae d_in]
    sae.W_dec.data.copy_(torch.where(dead[..., None], v, sae.W_dec.data))
    sae.W_enc.data.copy_(torch.where(dead[:, None, :], resample_scale * v.transpose(-1, -2), sae.W_enc.data))
    sae.b_enc.data.masked_fill_(dead, 0.0)


def _wrong_window_axis(sae, frac, resample_scale):
    """dead over the latent axis instead of the window axis: an all-False [window inst] mask, nothing changes."""
    dead = (frac <= 0).all(dim=-1)
    if dead.any():
        sae.b_enc.data[dead] = 0.0


def _masks_W_enc_directly(sae, frac, resample_scale):
    dead = (frac <= 0).all(0)
    v = F.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in), dim=-1)
    sae.W_dec.data[dead] = v
    sae.W_enc.data[dead] = v * resample_scale  # W_enc is [inst d_in d_sae]: IndexError


def _abs_directions(sae, frac, resample_scale):
    dead = (frac <= 0).all(0)
    v = F.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in).abs(), dim=-1)
    sae.W_dec.data[dead] = v
    sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
    sae.b_enc.data[dead] = 0.0


def _replaces_parameter(sae, frac, resample_scale):
    dead = (frac <= 0).all(0)
    W_enc = sae.W_enc.detach().clone()
    v = F.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in), dim=-1)
    W_enc.transpose(-1, -2)[dead] = v * resample_scale
    sae.W_dec.data[dead] = v
    sae.b_enc.data[dead] = 0.0
    sae.W_enc = torch.nn.Parameter(W_enc)


def _writes_private_decoder(sae, frac, resample_scale):
    dead = (frac <= 0).all(0)
    v = F.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in), dim=-1)
    sae._W_dec.data[dead] = v
    sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
    sae.b_enc.data[dead] = 0.0


def _touches_alive(sae, frac, resample_scale):
    P.resample_simple(sae, frac, resample_scale)
    alive = (frac > 0).any(0)
    sae.b_enc.data[alive & (alive.cumsum(-1) <= 2)] *= 0.5  # two live latents per instance


def _resets_b_dec(sae, frac, resample_scale):
    P.resample_simple(sae, frac, resample_scale)
    sae.b_dec.data.zero_()


SIMPLE_BUGS = {
    "last_step_only": _simple(rule="last"),
    "first_step_only": _simple(rule="first"),
    "any_step": _simple(rule="any"),
    "rate_threshold": _simple(rule="mean"),
    "inverted": _simple(rule="inverted"),
    "first_instance_mask": _simple(rule="inst0"),
    "all_resampled": _simple(rule="all"),
    "dead_not_resampled": _simple(rule="first_of_each"),
    "not_isotropic": _simple(draw="rand"),
    "cube_not_sphere": _simple(draw="cube"),
    "scale_ignored": _simple(enc="one"),
    "scale_inverted": _simple(enc="divide"),
    "enc_zero": _simple(enc="zero"),
    "enc_untouched": _simple(enc="none"),
    "enc_mismatch": _simple(enc="other"),
    "b_enc_not_reset": _simple(reset_bias=False),
    "dec_not_unit": _simple(normalise="none"),
    "normalized_wrong_axis": _simple(normalise="cols"),
    "dec_scaled": _simple(dec="scaled"),
    "same_direction": _simple(share="all"),
    "shared_per_instance": _simple(share="instance"),
    "shared_across_instances": _simple(share="index"),
    "replaced_parameter": _replaces_parameter,
    "used_private_W_dec": _writes_private_decoder,
    "alive_touched": _touches_alive,
    "b_dec_touched": _resets_b_dec,
    "nothing_resampled": _wrong_window_axis,
    "mask_index": _masks_W_enc_directly,
}


def test_resample_simple_abs_directions():
    assert_fails(checks.test_resample_simple, _abs_directions, "not_isotropic")


@pytest.mark.parametrize("fn", [P.resample_simple, _simple(), _simple_loop, _simple_sum, _simple_where])
def test_resample_simple_variants(fn):
    assert_passes(checks.test_resample_simple, fn)


@pytest.mark.parametrize("code", list(SIMPLE_BUGS))
def test_resample_simple_bugs(code):
    assert_fails(checks.test_resample_simple, SIMPLE_BUGS[code], code)


def test_resample_simple_stub():
    assert_not_done(checks.test_resample_simple, stub)


# --------------------------------------------------------------------------------------------
# resample_advanced
# --------------------------------------------------------------------------------------------
def _weights(rule, loss, h, k):
    L = loss[:, k]
    if rule == "lin":
        return L
    if rule == "cube":
        return L**3
    if rule == "uniform":
        return torch.ones_like(L)
    if rule == "inverse":
        return 1 / L**2
    if rule == "input_norm":
        return h[:, k].norm(dim=-1) ** 2
    if rule == "inst0":
        return loss[:, 0] ** 2
    if rule == "pooled":
        return (loss**2).sum(-1)
    if rule == "softmax":
        return torch.softmax(L, 0)
    return L**2


def _mean_norm(rule, W_enc, norms_all, alive_all, k, W_dec_norms=None):
    norms, alive = norms_all[k], alive_all[k]
    if rule == "all":
        return norms.mean()
    if rule == "none":
        return 1.0
    if rule == "pooled":
        return norms_all[alive_all].mean()
    if rule == "axis":
        return W_enc[k].norm(dim=-1).mean()
    if rule == "max":
        return norms[alive].max()
    if rule == "decoder":
        return W_dec_norms[k][alive].mean()
    if rule == "squared":
        return norms[alive].pow(2).mean()
    return norms[alive].mean() if alive.any() else 1.0  # the docstring's fallback: 1.0 if no latent is alive


def _advanced(weights="sq", sub_bdec=True, scale_mode="alive", skip_zero=True, rule="window", one_draw=False, **kw):
    def resample(sae, frac, resample_scale, batch_size):
        dead = _dead(frac, rule)
        h = sae.generate_batch(batch_size)
        loss = sae.forward(h)[0]["L_reconstruction"]
        norms_all = sae.W_enc.norm(dim=1)  # before any change
        dec_norms = sae.W_dec.norm(dim=-1)
        alive_all = ~dead
        for k in range(sae.cfg.n_inst):
            idx = dead[k].nonzero().squeeze(-1)
            w = _weights(weights, loss, h, k)
            if skip_zero is False and w.sum() <= 0:
                w = w + 1e-6  # "avoid" the zero-weight error instead of skipping the instance
            if len(idx) == 0 or (skip_zero and loss[:, k].sum() <= 0):
                continue
            if weights == "argmax":
                pick = loss[:, k].argmax().repeat(len(idx))
            else:
                pick = torch.multinomial(w, 1 if one_draw else len(idx), replacement=kw.get("replacement", True))
                pick = pick.expand(len(idx)) if one_draw else pick
            v = h[pick, k] - (sae.b_dec[k] if sub_bdec else 0.0)
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            mean_norm = _mean_norm(scale_mode, sae.W_enc, norms_all, alive_all, k, dec_norms)
            factor = {"mul": resample_scale, "one": 1.0, "div": 1 / resample_scale}[kw.get("scale_op", "mul")]
            enc_v = v[torch.randperm(len(idx))] if kw.get("enc_other") else v
            sae.W_dec.data[k, idx] = v
            sae.W_enc.data[k][:, idx] = (enc_v * mean_norm * factor).T
            if kw.get("reset_bias", True):
                sae.b_enc.data[k, idx] = 0.0

    return resample


def _advanced_cumsum(sae, frac, resample_scale, batch_size):
    """Correct: inverse-CDF sampling written by hand, one draw at a time."""
    dead = ~(frac > 0).any(0)
    h = sae.generate_batch(batch_size)
    _, _, _, h_rec = sae(h)
    sq_err = (h - h_rec).pow(2).sum(-1)  # proportional to L_reconstruction
    for k in range(sae.cfg.n_inst):
        p = sq_err[:, k] ** 2
        if p.sum() == 0:
            continue
        cdf = torch.cumsum(p / p.sum(), 0)
        alive_norm = sae.W_enc[k][:, ~dead[k]].norm(dim=0).mean() if (~dead[k]).any() else 1.0
        for j in dead[k].nonzero().flatten().tolist():
            i = int(torch.searchsorted(cdf, torch.rand(1, device=cdf.device) * cdf[-1]).clamp(max=len(cdf) - 1))
            v = F.normalize(h[i, k] - sae.b_dec[k], dim=0)
            sae.W_dec[k, j] = v  # the property: a view of W_enc when tied (sae._W_dec is None then; fresh54)
            sae.W_enc[k, :, j] = v * resample_scale * alive_norm
            sae.b_enc[k, j] = 0.0


def _advanced_vectorised(sae, frac, resample_scale, batch_size):
    """Correct: a [inst batch] weight matrix, torch.distributions, the residual h - h_rec as the direction."""
    dead = frac.max(0).values == 0
    h = sae.generate_batch(batch_size)
    loss_dict, _, _, h_rec = sae.forward(h)
    L = loss_dict["L_reconstruction"].T  # [inst batch]
    enc_norms = sae.W_enc.norm(dim=1)  # [inst d_sae]
    alive_mean = ((enc_norms * ~dead).sum(-1) / (~dead).sum(-1)).nan_to_num(1.0)  # 1.0 if no latent is alive
    for k in range(sae.cfg.n_inst):
        n = int(dead[k].sum())
        if n == 0 or L[k].sum() == 0:
            continue
        pick = torch.distributions.Categorical(probs=L[k] ** 2 / (L[k] ** 2).sum()).sample((n,))
        v = F.normalize(h[pick, k] - h_rec[pick, k], dim=-1)
        rows = dead[k].nonzero()[:, 0]
        sae.W_dec.data[k, rows] = v
        sae.W_enc.data[k, :, rows] = v.T * resample_scale * alive_mean[k]
        sae.b_enc.data[k, rows] = 0


def _random_directions(sae, frac, resample_scale, batch_size):
    """Resamples like resample_simple (random directions) instead of towards inputs."""
    dead = (frac <= 0).all(0)
    alive_mean = (sae.W_enc.norm(dim=1) * ~dead).sum(-1) / (~dead).sum(-1)
    for k in range(sae.cfg.n_inst):
        idx = dead[k].nonzero().squeeze(-1)
        v = F.normalize(torch.randn(len(idx), sae.cfg.d_in), dim=-1)
        sae.W_dec.data[k, idx] = v
        sae.W_enc.data[k][:, idx] = (v * resample_scale * alive_mean[k]).T
        sae.b_enc.data[k, idx] = 0.0


ADVANCED_BUGS = [  # (expected code, buggy resampler)
    ("sampling_linear", _advanced(weights="lin")),
    ("sampling_uniform", _advanced(weights="uniform")),
    ("sampling_cubed", _advanced(weights="cube")),
    ("same_input", _advanced(weights="argmax")),
    ("sampling_inverse", _advanced(weights="inverse")),
    ("sampling_input_norm", _advanced(weights="input_norm")),
    ("sampling_first_instance", _advanced(weights="inst0")),
    ("sampling_pooled", _advanced(weights="pooled")),
    ("same_input", _advanced(one_draw=True)),
    ("b_dec_not_subtracted", _advanced(sub_bdec=False)),
    ("not_from_inputs", _random_directions),
    ("scale_ignored", _advanced(scale_op="one")),
    ("scale_inverted", _advanced(scale_op="div")),
    ("no_alive_norm", _advanced(scale_mode="none")),
    ("all_norm", _advanced(scale_mode="all")),
    ("pooled_norm", _advanced(scale_mode="pooled")),
    ("enc_norm_axis", _advanced(scale_mode="axis")),
    ("max_norm", _advanced(scale_mode="max")),
    ("decoder_norm", _advanced(scale_mode="decoder")),
    ("squared_norm", _advanced(scale_mode="squared")),
    ("sampling_softmax", _advanced(weights="softmax")),
    ("enc_mismatch", _advanced(enc_other=True)),
    ("zero_loss_instance", _advanced(skip_zero=False)),
    ("no_replacement", _advanced(replacement=False)),
    ("last_step_only", _advanced(rule="last")),
    ("any_step", _advanced(rule="any")),
    ("b_enc_not_reset", _advanced(reset_bias=False)),
]


@pytest.mark.parametrize("fn", [P.resample_advanced, _advanced(), _advanced_cumsum, _advanced_vectorised])
def test_resample_advanced_variants(fn):
    assert_passes(checks.test_resample_advanced, fn)


@pytest.mark.parametrize(("code", "fn"), ADVANCED_BUGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(ADVANCED_BUGS)])
def test_resample_advanced_bugs(code, fn):
    assert_fails(checks.test_resample_advanced, fn, code)


def test_resample_advanced_stub():
    assert_not_done(checks.test_resample_advanced, stub)
