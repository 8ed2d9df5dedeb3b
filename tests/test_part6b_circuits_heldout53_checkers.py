"""Held-out round AZ (fresh53), part 6b: trials the checkers caught without naming the mistake, now named.
linearised_forward whose residual term or attention reads frozen.embeds instead of the `embeds` argument
(residual_frozen_embeds, attention_frozen_embeds), or whose skip reads LN2 without its centring (skip_uncentred);
linearised_forward with LN1 and LN2's frozen scales swapped (scales_ln2_ln1_final, one of part6b_circuits_scale_swaps);
node_influence with the logit weights softmaxed (weights_softmaxed) or `- 1` written for `- I` (identity_as_ones);
quantile_examples ranked by the distance to the band's median value (band_median) or by the relative distance
|a - middle| / a (relative_distance); replacement_losses with the clean loss a median of per-sequence losses
(loss_statistic) or the recovered fraction rounded (recovered_rounded) or exactly 1 (recovered_one, both causes
listed); transcoder_forward whose decoder reads
relu(acts) has that cause listed in relu_gate's hint; the round's correct variants pass."""

import einops
import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------- linearised_forward
def _lf(bug: str = ""):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(frozen.embeds if bug == "attention" else embeds, frozen.ln1_scale)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e")
        z = frozen.pattern @ v + model.b_V[0][:, None]  # pattern rows sum to 1: b_V after the mixing is the same
        mid = (frozen.embeds if bug == "residual" else embeds) + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d")
        mid = mid + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = torch.where(frozen.active, pre, 0.0) if latents is None else latents
        skip = tc.skip(mid / frozen.ln2_scale if bug == "skip" else x)
        out = f @ tc.W_dec + tc.b_dec + skip + (frozen.error if error is None else error)
        return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


@pytest.mark.parametrize(
    ("bug", "code"),
    [("residual", "residual_frozen_embeds"), ("attention", "attention_frozen_embeds"), ("skip", "skip_uncentred")],
)
def test_fresh53_linearised_stale_inputs_named(bug, code):
    err = assert_fails(checks.test_linearised_forward, _lf(bug), code)
    assert ("frozen.embeds" if bug != "skip" else "centring") in err.hint


def test_fresh53_linearised_correct_variant_passes():
    assert_passes(checks.test_linearised_forward, _lf())


# ------------------------------------------------------------------------------------------- node_influence
def _ni(bug: str = ""):
    def node_influence(adjacency, logit_weights):
        a = torch.nn.functional.normalize(adjacency.abs(), p=1, dim=-1)
        eye = torch.eye(len(a), dtype=a.dtype)
        w = logit_weights.softmax(-1) if bug == "softmax" else logit_weights
        return w @ (torch.linalg.inv(eye - a) - (1 if bug == "ones" else eye))

    return node_influence


@pytest.mark.parametrize(("bug", "code"), [("softmax", "weights_softmaxed"), ("ones", "identity_as_ones")])
def test_fresh53_influence_weights_and_identity_named(bug, code):
    err = assert_fails(checks.test_node_influence, _ni(bug), code)
    assert ("softmax" if bug == "softmax" else "plain 1") in err.hint


def test_fresh53_influence_correct_variant_passes():
    assert_passes(checks.test_node_influence, _ni())


def test_fresh53_influence_new_mutants_are_separated():
    A, w = checks._influence_inputs(torch.device("cpu"))
    right = checks.ref.node_influence(A, w)
    catalogue = checks.known.influence_mistakes(A, w) + checks.extra.influence_extra(A, w)
    catalogue += checks.probes.influence_probed(A, w) + checks.pruned_catalogue(A, w)
    catalogue += checks.reads.identity_terms(A, w)
    new = [(c, v) for c, _, v in catalogue if c in ("weights_softmaxed", "identity_as_ones")]
    assert len(new) == 2
    for code, v in new:
        assert not torch.allclose(v, right, rtol=1e-4, atol=1e-6), code
        for other, _, u in catalogue:
            assert other == code or not torch.allclose(v, u, rtol=1e-4, atol=1e-6), (code, other)


# ------------------------------------------------------------------------------------------- quantile_examples
def _qe(bug: str = ""):
    def quantile_examples(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, seq, out = flat.max(), acts.shape[1], []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            idx = ((flat > lo) & (flat <= hi)).nonzero().flatten()
            mid = flat[idx].median() if bug == "median" and len(idx) else (lo + hi) / 2
            dist = (flat[idx] - mid).abs() / (flat[idx] if bug == "relative" else 1)
            chosen = idx[dist.argsort()[:k]]
            chosen = chosen[flat[chosen].argsort(descending=True)]
            out.append((flat[chosen], chosen // seq, chosen % seq))
        return out

    return quantile_examples


@pytest.mark.parametrize(("bug", "code"), [("median", "band_median"), ("relative", "relative_distance")])
def test_fresh53_quantile_other_closeness_named(bug, code):
    err = assert_fails(checks.test_quantile_examples, _qe(bug), code)
    assert ("median of the band's own values" if bug == "median" else "|a - middle| / a") in err.message


def test_fresh53_quantile_correct_variant_passes():
    assert_passes(checks.test_quantile_examples, _qe())


# ------------------------------------------------------------------------------------------- replacement_losses
def _rl(bug: str = ""):
    def replacement_losses(model, tc, tokens):
        seen = {}

        def loss(hooks):
            per_token = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
            return (per_token.mean(-1).median() if bug == "median" else per_token.mean()).item()

        clean = loss([])
        read = (tc.hook_name, lambda a, hook: seen.update(x=a))
        replaced = loss([read, (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])
        zero = loss([(tc.hook_name_out, lambda a, hook: a * 0)])
        recovered = 1 - (replaced - clean) / (zero - clean)
        if bug == "rounded":
            recovered = round(recovered, 2)
        return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": recovered}

    return replacement_losses


@pytest.mark.parametrize(("bug", "code"), [("median", "loss_statistic"), ("rounded", "recovered_rounded")])
def test_fresh53_losses_statistic_and_rounding_named(bug, code):
    err = assert_fails(checks.test_replacement_losses, _rl(bug), code)
    assert ("median of the per-sequence" in err.message) if bug == "median" else ("round(recovered, 2)" in err.hint)


def test_fresh53_losses_correct_variant_passes():
    assert_passes(checks.test_replacement_losses, _rl())


# ------------------------------------------------------------------------------------------- transcoder_forward
def _tf_relu_decoded(tc, x):
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre > tc.threshold)
    out = acts.clamp_min(0) @ tc.W_dec + tc.b_dec
    return acts, out if tc.W_skip is None else out + x @ tc.W_skip.T


def test_fresh53_relu_between_gate_and_decoder_is_listed():
    err = assert_fails(checks.test_transcoder_forward, _tf_relu_decoded, "relu_gate")
    assert "the decoder reads relu(acts)" in err.hint and "no ReLU" in err.hint


# ------------------------------------------------------------------------------------------- frozen scales
def _lf_scales(ln1: str, ln2: str):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(embeds, getattr(frozen, f"{ln1}_scale"))
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
        mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
        x = ln(mid, getattr(frozen, f"{ln2}_scale"))
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
        return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


def test_fresh53_ln_scales_swapped_named():
    err = assert_fails(checks.test_linearised_forward, _lf_scales("ln2", "ln1"), "scales_ln2_ln1_final")
    assert "LN1 divides by frozen.ln2_scale and LN2 divides by frozen.ln1_scale" in err.hint


def _rl_one(model, tc, tokens):
    out = _rl()(model, tc, tokens)
    out["recovered"] = (out["zero_ablated"] - out["clean"]) / (out["zero_ablated"] - out["clean"])
    return out


def test_fresh53_recovered_exactly_one_names_both_causes():
    err = assert_fails(checks.test_replacement_losses, _rl_one, "recovered_one")
    assert "(zero - clean) / (zero - clean)" in err.hint and "rounded" in err.hint
