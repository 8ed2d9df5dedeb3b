"""Held-out round AW (fresh48), part 6b: a float64 node_influence case (a float32 working copy returned float32 and
passed), the error added to the MLP's input in linearised_forward and LN1 divided by the last position's scale
(both said only "follow the equations"), now named by read-back; the round's correct variants still pass."""

import einops
import torch

import solutions.part6b_circuits as R
import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------- node_influence
def test_fresh48_float32_working_copy_caught_on_float64_inputs():
    def ni_f32(adjacency, w):
        a = adjacency.abs().float()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a))
        return w.float() @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, ni_f32, "float64_dtype")
    assert "float64" in str(err) and "dtype=a.dtype" in err.hint


def test_fresh48_ok_solve_transposed_minus_w_passes():
    def ni_ok(adjacency, w):
        a = adjacency.abs()
        s = a.sum(1, keepdim=True)
        a = torch.where(s > 0, a / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(a))
        eye = torch.eye(len(a), dtype=a.dtype)
        return torch.linalg.solve(eye - a.T, w) - w

    assert_passes(checks.test_node_influence, ni_ok)


def test_fresh48_default_float32_eye_with_float64_inputs_passes():
    def ni_eye_default(adjacency, w):  # torch.eye(n) is float32, but eye - a promotes to float64
        a = adjacency.abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    assert_passes(checks.test_node_influence, ni_eye_default)


# ------------------------------------------------------------------------------------------- linearised_forward
def _lf(bug):
    def f(model, tc, frozen, embeds, latents=None, error=None):
        def ln(v, s, centre=True):
            c = v - v.mean(-1, keepdim=True) if centre else v
            return c / s

        s1 = frozen.ln1_scale[-1] if bug == "s1_last" else frozen.ln1_scale
        x1 = ln(embeds, s1)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
        mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
        err = frozen.error if error is None else error
        x = ln(mid, frozen.ln2_scale)
        if bug == "err_in":
            x = x + err
        pre = x @ tc.W_enc + tc.b_enc
        fl = pre * frozen.active if latents is None else latents
        out = fl @ tc.W_dec + tc.b_dec + tc.skip(x) + (0 if bug == "err_in" else err)
        logits = ln(mid + out, frozen.final_scale, centre=(bug != "nocentre")) @ model.W_U + model.b_U
        return pre, logits

    return f


def test_fresh48_error_added_to_mlp_input_named():
    err = assert_fails(checks.test_linearised_forward, _lf("err_in"), "error_in_mlp_input")
    assert "MLP's input" in err.hint


def test_fresh48_ln1_last_position_scale_named():
    err = assert_fails(checks.test_linearised_forward, _lf("s1_last"), "ln1_scale_last")
    assert "frozen.ln1_scale[-1]" in err.hint


def test_fresh48_final_ln_not_centred_passes():  # W_U's columns sum to 0 over d_model: centring is a no-op
    assert_passes(checks.test_linearised_forward, _lf("nocentre"))


def test_fresh48_ok_projection_matrix_passes():
    def lf_ok(model, tc, frozen, embeds, latents=None, error=None):
        d = embeds.shape[-1]
        P = torch.eye(d, dtype=embeds.dtype, device=embeds.device) - 1.0 / d
        x1 = embeds @ P / frozen.ln1_scale
        out = torch.zeros_like(embeds) + model.b_O[0]
        for h in range(model.W_V[0].shape[0]):
            out = out + frozen.pattern[h] @ (x1 @ model.W_V[0][h] + model.b_V[0][h]) @ model.W_O[0][h]
        mid = embeds + out
        x = mid @ P / frozen.ln2_scale
        pre = torch.addmm(tc.b_enc, x, tc.W_enc)
        fl = latents if latents is not None else torch.where(frozen.active, pre, torch.zeros_like(pre))
        e = frozen.error if error is None else error
        resid = mid + tc.decode(fl) + tc.skip(x) + e
        return pre, (resid @ P / frozen.final_scale) @ model.W_U + model.b_U

    assert_passes(checks.test_linearised_forward, lf_ok)


def test_fresh48_reference_passes_linearised_forward():
    assert_passes(checks.test_linearised_forward, R.linearised_forward)


# ------------------------------------------------------------------------------------------- quantile_examples
def _qe(bug):
    def f(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, groups = flat.max(), []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            inb = (flat > lo) & (flat <= hi)
            n = min(k, int(inb.sum()))
            target = hi if bug == "tophi" else (lo + hi) / 2
            mask = 0.0 if bug == "mask0" else float("inf")
            d = torch.where(inb, (flat - target).abs(), torch.full_like(flat, mask))
            ch = d.topk(n).indices if bug == "largest" else d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // acts.shape[1], ch % acts.shape[1]))
        return groups

    return f


def test_fresh48_topk_default_largest_named_not_mask_zero():
    err = assert_fails(checks.test_quantile_examples, _qe("largest"), "topk_largest")
    assert "largest=False" in err.hint and "masked with 0" not in err.hint


def test_fresh48_mask_zero_still_named_by_the_probe():
    err = assert_fails(checks.test_quantile_examples, _qe("mask0"), "mask_zero")
    assert "float('inf')" in err.hint


def test_fresh48_closest_to_band_top_listed_among_the_causes():
    err = assert_fails(checks.test_quantile_examples, _qe("tophi"), "largest")
    assert "band's top edge" in err.hint


def test_fresh48_quantile_ok_passes():
    assert_passes(checks.test_quantile_examples, _qe("ok"))
