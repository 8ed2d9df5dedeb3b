"""Slips in the SAE's own formulas, shared by part 6's checkers: the encoder's biases (b_dec subtracted twice or
added, b_enc left out) and the decoder's (b_dec added again), a reconstruction of one sequence used for all, a
decoder row rescaled to another norm, a steering vector added at hook_mlp_out with b_out; and what a constant
steering vector or an ablation that is wrong where the latent fires is, read from the learner's recorded hook."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_bias_terms import logit_bias_terms
from tests.part6_lm_saes_elementwise import steer_elementwise_row
from tests.part6_lm_saes_latent_factors import ablate_activations, logit_latent_factors
from tests.part6_lm_saes_layouts import ablate_coefficients, logit_layouts
from tests.part6_lm_saes_partial_axes import spliced_rows

ENCODE = "f = sae.encode(act) = relu((act − b_dec) @ W_enc + b_enc)"


def encode_variants(sae: Any) -> list[tuple[str, str, Any]]:
    """(code, what, encode) for the encoder written with a bias slip; `encode(x)` gives every latent."""
    relu = torch.relu
    return [
        (
            "b_dec_twice",
            f"b_dec subtracted twice (sae.encode(act − b_dec): sae.encode subtracts it already): {ENCODE}",
            lambda x: sae.encode(x - sae.b_dec),
        ),
        (
            "encode_sign",
            f"the input centred with + b_dec (relu((act + b_dec) @ W_enc + b_enc)): {ENCODE}",
            lambda x: relu((x + sae.b_dec) @ sae.W_enc + sae.b_enc),
        ),
        (
            "no_b_enc",
            f"the encoder's bias b_enc left out (relu((act − b_dec) @ W_enc)): {ENCODE}",
            lambda x: relu((x - sae.b_dec) @ sae.W_enc),
        ),
        (
            "no_b_dec",
            f"the input not centred: b_dec left out of the encoder (relu(act @ W_enc + b_enc)): {ENCODE}",
            lambda x: relu(x @ sae.W_enc + sae.b_enc),
        ),
    ]


def frequency_encodes(sae: Any, acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """`acts` [n_seq seq d_mlp]: the frequencies with each encoder slip."""
    return [
        (code, f"that counts latents encoded with {what}", (enc(acts)[:, 1:] > 0).float().mean((0, 1)))
        for code, what, enc in encode_variants(sae)
    ] + [
        (
            "reencoded",
            "that counts the latents of the reconstruction encoded again, sae.encode(sae.decode(sae.encode(act))): "
            "count where f = sae.encode(act) itself is > 0",
            (sae.encode(sae.decode(sae.encode(acts)))[:, 1:] > 0).float().mean((0, 1)),
        )
    ]


def ablate_encodes(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]
    out = []
    for code, what, enc in encode_variants(sae)[1:2]:  # b_dec twice and no b_enc are in the catalogue already
        hook = lambda a, hook, enc=enc: a - enc(a)[..., latent, None] * d
        out.append(
            (
                code,
                f"that removes f · W_dec[latent] with f encoded with {what}",
                model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]),
            )
        )

    def strongest(a: Tensor, hook: Any) -> Tensor:  # each position's largest latent removed instead of `latent`
        f = sae.encode(a)
        top = f.argmax(-1)
        return a - f.gather(-1, top[..., None]) * sae.W_dec[top]

    what = (
        "that removes each position's strongest latent (f.argmax(-1), its f · W_dec[top]) instead of the latent "
        "asked for: remove f[..., latent] · W_dec[latent], the same latent at every position"
    )
    out.append(("strongest_latent", what, model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, strongest)])))
    return out + ablate_activations(model, sae, tokens, latent) + ablate_coefficients(model, sae, tokens, latent)


def splice_variants(model: Any, sae: Any, tokens: Tensor) -> list[tuple[str, str, Tensor]]:
    """The spliced loss with a decoder or encoder bias slip, or one sequence's reconstruction for all."""
    loss = lambda fn: torch.tensor(
        float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, fn)])), dtype=torch.float64
    )
    out = [
        (
            "b_dec_twice",
            "that is the loss with b_dec added again after sae.decode (which adds it already): splice in "
            "sae.decode(sae.encode(act)) as it is",
            loss(lambda a, hook: sae.decode(sae.encode(a)) + sae.b_dec),
        ),
        (
            "one_sequence",
            "that is the loss with the reconstruction of the first sequence alone (act[0]) put in every sequence: "
            "reconstruct the whole batch, sae.decode(sae.encode(act)) on act itself",
            loss(lambda a, hook: sae.decode(sae.encode(a[0])).expand_as(a).clone()),
        ),
    ]
    b, t = tokens.shape  # flattened one way, put back the other: every token gets another token's reconstruction
    recon = lambda a: sae.decode(sae.encode(a))
    for code_flat, flat, unflat in (
        ("(s b)", lambda a: a.transpose(0, 1), lambda r: r.reshape(b, t, -1)),
        ("(b s)", lambda a: a, lambda r: r.reshape(t, b, -1).transpose(0, 1)),
    ):
        other = "(b s)" if code_flat == "(s b)" else "(s b)"
        out.append(
            (
                "tokens_scrambled",
                f"that is the loss with the activations flattened as {code_flat} and the reconstruction put back as "
                f"{other} (einops/reshape with the axes in another order): tokens land in other sequences and "
                "positions; flatten and unflatten with the same pattern, or call sae.decode(sae.encode(act)) on "
                "[batch, seq, d] directly",
                loss(lambda a, hook, f=flat, u=unflat: u(recon(f(a).reshape(-1, a.shape[-1]))).contiguous()),
            )
        )
    for code, what, enc in encode_variants(sae)[:3]:  # no_b_dec is in loss_mistakes (encode_no_bias)
        out.append(
            (
                code,
                f"that is the loss with the latents encoded with {what}",
                loss(lambda a, hook, enc=enc: sae.decode(enc(a))),
            )
        )
    return out + spliced_rows(model, sae, tokens)


def logit_rescaled(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The decoder row rescaled to unit L1 or max norm before the effect (its L2 norm is 1 already)."""
    d = sae.W_dec[latent]
    right = d @ model.W_out[0] @ model.W_U
    return (
        [
            (
                "row_normalised",
                f"that is the effect of W_dec[latent] / {name} = {float(n):.4g}: the decoder row rescaled to unit "
                f"{kind} norm; use the row as it is (W_dec[latent] @ W_out[0] @ W_U)",
                right / n,
            )
            for name, kind, n in (
                ("‖W_dec[latent]‖₁", "L1", d.abs().sum()),
                ("max |W_dec[latent]|", "max", d.abs().max()),
            )
        ]
        + logit_directions(model, sae, latent)
        + logit_latent_factors(sae, latent, right)
        + logit_whole_decoder(model, sae, latent)
    )


def logit_whole_decoder(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The whole decoder matrix where its row `latent` was meant: the row divided by the matrix's Frobenius norm
    (`.norm()` without `dim`; √d_sae when the rows are unit vectors), and every latent's effect summed or averaged."""
    W_dec, W_out, W_U = sae.W_dec, model.W_out[0], model.W_U
    n = W_dec.norm()
    unit = bool(torch.allclose(W_dec.norm(dim=-1), torch.ones_like(W_dec[:, 0]), atol=1e-3))
    every = W_dec @ W_out @ W_U  # [d_sae d_vocab]
    one = "the effect of one latent is its own row: W_dec[latent] @ W_out[0] @ W_U"
    return [
        (
            "whole_matrix_norm",
            f"that is the effect of W_dec[latent] / W_dec.norm(), divided by the norm of the WHOLE decoder matrix "
            f"(‖W_dec‖_F = {float(n):.4g}"
            + (f", = √d_sae = √{sae.W_dec.shape[0]} as its rows are unit vectors" if unit else "")
            + "): `.norm()` without `dim` takes every entry; use the row as it is (W_dec[latent] @ W_out[0] @ W_U)",
            sae.W_dec[latent] / n @ W_out @ W_U,
        ),
        (
            "all_latents",
            f"that is every latent's effect summed, (W_dec @ W_out[0] @ W_U).sum(0): {one}",
            every.sum(0),
        ),
        (
            "all_latents",
            f"that is every latent's effect averaged, (W_dec @ W_out[0] @ W_U).mean(0): {one}",
            every.mean(0),
        ),
    ]


def logit_directions(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The encoder column mixed into the direction (the average or the sum of W_enc[:, latent] and W_dec[latent]),
    and the effect divided by a spread of the decoder row or of the d_model vector W_dec[latent] @ W_out[0] (its
    std, its norm; the row's std or RMS): the factor is named with what it equals."""
    d, e_col, W_out, W_U = sae.W_dec[latent], sae.W_enc[:, latent], model.W_out[0], model.W_U
    use = "use the decoder row alone, W_dec[latent] @ W_out[0] @ W_U"
    out = [
        (
            "direction_mixed",
            f"that is the effect of (W_enc[:, latent] + W_dec[latent]) / 2, the encoder column averaged in: {use}",
            (e_col + d) / 2 @ W_out @ W_U,
        ),
        (
            "direction_mixed",
            f"that is the effect of W_enc[:, latent] + W_dec[latent], the encoder column added in: {use}",
            (e_col + d) @ W_out @ W_U,
        ),
        (
            "direction_gated",
            f"that is the effect of W_dec[latent] * W_enc[:, latent], the decoder row multiplied entry by entry by "
            f"the encoder column: the encoder only reads the latent, it does not weigh what it writes; {use}",
            (d * e_col) @ W_out @ W_U,
        ),
        (
            "direction_pinv_encoder",
            f"that is the effect of pinv(W_enc)[latent], the encoder's pseudo-inverse row taken as the direction: "
            f"the direction the latent writes is its decoder row; {use}",
            torch.linalg.pinv(sae.W_enc.double()).to(d.dtype)[latent] @ W_out @ W_U,
        ),
    ]
    v = d @ W_out
    # v divided by its biased std or RMS, or centred first, is model.ln_final(v) (named in the catalogue already)
    spreads = [
        (v.std(), "the d_model vector W_dec[latent] @ W_out[0]'s std (vector.std(), ln_final imitated)"),
        (v.norm(), "the d_model vector W_dec[latent] @ W_out[0]'s norm"),
        (d.std(), "the decoder row W_dec[latent]'s std"),
        (d.std(unbiased=False), "the decoder row W_dec[latent]'s std (unbiased=False)"),
        (d.pow(2).mean().sqrt(), "the decoder row W_dec[latent]'s RMS"),
    ]
    for n, name in spreads:
        if abs(float(n) - 1) > 1e-3:
            out.append(
                (
                    "spread_scaled",
                    f"that is the effect divided by {float(n):.4g} = {name}: the effect is of one unit of "
                    f"activation, with no rescaling (ln_final is not part of it); {use}",
                    v / n @ W_U,
                )
            )
    return out


def steer_mlp_out(model: Any, sae: Any, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    """coeff · W_dec[latent] carried through W_out to hook_mlp_out, with b_out added (or W_out left out)."""
    v = coeff * sae.W_dec[latent] @ model.W_out[0]
    name = sae.hook_name.replace("mlp.hook_post", "hook_mlp_out")
    if name == sae.hook_name or name not in model.hook_dict:
        return []
    return [
        (
            "b_out_added",
            f"that adds coeff · W_dec[latent] @ W_out + b_out at {name}: b_out is in the MLP's output already (added "
            "once per position whatever the steering); add coeff · W_dec[latent] at sae.hook_name (or only "
            f"coeff · W_dec[latent] @ W_out at {name})",
            model.run_with_hooks(tokens, fwd_hooks=[(name, lambda a, hook: a + v + model.b_out[0])]),
        )
    ]


def _offset(j: int, latent: int) -> str:
    return f"latent {'+' if j > latent else '−'} {abs(j - latent)}"


def shifted_by(extra: Tensor, value: Tensor, W: Tensor, through: Callable[[Tensor], Tensor] | None = None) -> str:
    """Which direction a decoder row was shifted along, when `extra` (the learner's `value` minus the right one) is
    a non-zero multiple of the mean decoder row W.mean(0) or of the all-ones vector over d_in (a row centred, or
    its mean taken away), each carried through the linear map `through` (the identity when None) first; '' when
    neither. The cosine bound 1 - 1e-6 is ~1e4 times the float32 noise of a difference 1e-4 · |value| or larger."""
    through = through or (lambda u: u)
    if extra.norm() <= 1e-4 * value.norm():
        return ""
    rows = W.double()
    for what, u in (
        ("the mean decoder row W_dec.mean(0)", rows.mean(0)),
        ("the all-ones vector (a mean over d_in)", torch.ones_like(rows[0])),
    ):
        u = through(u).double()
        if abs(float(F.cosine_similarity(extra.double(), u, dim=0))) > 1 - 1e-6:
            return what
    return ""


def steer_constant(delta: Tensor, sae: Any, latent: int, coeff: float) -> None:
    """`delta` [positions d_in] the change a steering hook made. When it is one vector v at every position (and
    not a multiple of W_dec[latent], named before), say what v is."""
    v = delta[0]
    close = lambda x, y: bool(torch.allclose(x, y, rtol=1e-4, atol=1e-4))
    if not close(delta, v.expand_as(delta)):
        return
    W, b = sae.W_dec.double(), sae.b_dec.double()
    d = W[latent]
    head = "your hook adds the same vector v at every position, and v = "
    fix = "steer with coeff · W_dec[latent], the decoder row of this call's latent, at every position"
    swap = torch.isclose(float(latent) * W, v[None], rtol=1e-4, atol=1e-4).all(-1).nonzero().flatten().tolist()
    if swap and float(latent) != coeff and swap[0] in (math.floor(coeff), math.ceil(coeff)):
        fail(
            f"{head}{latent} · W_dec[{swap[0]}]: latent ({latent}) used as the coefficient and coeff ({coeff}) as "
            "the row index",
            "latent and coeff are swapped: the signature is steer_with_latent(model, sae, tokens, latent, coeff); "
            "check the order of your parameters",
            code="steer_swapped",
        )
    rows = torch.isclose(coeff * W, v[None], rtol=1e-4, atol=1e-4).all(-1).nonzero().flatten().tolist()
    if rows:
        j = rows[0]
        fail(
            f"{head}coeff · W_dec[{j}], the decoder row of {_offset(j, latent)}, not of latent {latent}",
            fix,
            code="steer_row",
        )
    bias = ": no bias (b_dec is part of every reconstruction, not of the latent's direction)"
    named = [
        ("coeff · (W_dec[latent] − b_dec)", coeff * (d - b), bias),
        ("coeff · (W_dec[latent] + b_dec)", coeff * (d + b), bias),
        ("coeff · W_dec[latent] − b_dec", coeff * d - b, bias),
        (
            "coeff · W_enc[:, latent] (the encoder column)",
            coeff * sae.W_enc[:, latent].double(),
            ": a latent writes with its decoder row, the encoder column only reads",
        ),
    ]
    for what, value, why in named:
        if close(v, value):
            fail(f"{head}{what}, not coeff · W_dec[latent]", fix + why, code="steer_vector")
        if close(v, -value):  # subtracted: the sign slipped as well
            fail(f"{head}−({what}): subtracted, not coeff · W_dec[latent] added", fix + why, code="steer_vector")
    what = shifted_by(v - coeff * d, v, W)  # what was added to the right vector: a multiple of a direction?
    if what:
        fail(
            f"{head}coeff · W_dec[latent] plus a multiple of {what}, not coeff · W_dec[latent] alone",
            f"{fix}: the row as it is, nothing subtracted from it (no centring, no mean row taken away)",
            code="steer_shifted",
        )
    ones = torch.ones_like(v)
    if v.norm() > 0 and float(F.cosine_similarity(v.double(), ones.double(), dim=0)) > 1 - 1e-6:
        c = float(v.mean())
        fail(
            f"your hook adds the same number ({c:.4g}) to every entry of the activation at every position: "
            "a scalar, with no direction",
            f"{fix}: coeff scales that d_in-vector (the direction was left out); a number added to every entry "
            "moves the activation along the all-ones vector instead",
            code="steer_scalar",
        )
    steer_elementwise_row(v, d, coeff)
    cos = float(F.cosine_similarity(v, d, dim=0))
    ratio = float(v.norm() / (abs(coeff) * d.norm()))
    fail(
        f"your hook adds one constant vector at every position that is not coeff · W_dec[latent]: its cosine with "
        f"coeff · W_dec[latent] is {cos:.3f} and its norm is {ratio:.3g} × that one's",
        f"{fix}; possible causes, e.g. another row or matrix (W_enc, a transpose), a bias or another vector added "
        "to or subtracted from the row, a function applied to the row's entries, or a vector built from the model "
        "rather than the SAE",
        code="steer_vector",
    )


def ablate_where_fires(a: Tensor, b: Tensor, right: Tensor, f: Tensor, sae: Any, latent: int) -> None:
    """The hook's output `b` is wrong exactly where the latent fires: say whether it is `right` rescaled to the
    activation's norm, or another decoder row (one vector per unit of f) removed."""
    fires = f > 0
    close = lambda x, y: bool(torch.allclose(x.double(), y.double(), rtol=1e-4, atol=1e-4))
    norm = lambda x: x.norm(dim=-1, keepdim=True)
    if close(b, right * norm(a) / norm(right)):
        fail(
            f"your hook's output is act − f · W_dec[latent] rescaled to the activation's norm at each position "
            f"(wrong at the {int(fires.sum())} positions where the latent fires)",
            "return act − f · W_dec[latent] as it is: removing the latent's term changes the norm, and that change is "
            "part of the ablation",
            code="ablate_renormalised",
        )
    if close(norm(b), norm(a)) and not close(norm(right), norm(a)):
        fail(
            "your hook's output has the same norm as the activation at every position",
            "a rescaling to the activation's norm? return act − f · W_dec[latent] as it is",
            code="ablate_renormalised",
        )
    removed = ((a - b)[fires] / f[fires][:, None]).double()
    v = removed[0]
    if not close(removed, v.expand_as(removed)):
        return
    rows = torch.isclose(sae.W_dec.double(), v[None], rtol=1e-4, atol=1e-4).all(-1).nonzero().flatten().tolist()
    if rows and rows[0] != latent:
        j = rows[0]
        fail(
            f"your hook removes f · W_dec[{j}] (the decoder row of {_offset(j, latent)}) with f of latent {latent}",
            "remove the latent's own term: f · W_dec[latent], the same index for f and the row",
            code="ablate_row",
        )


def one_more_than_k(values: Any, k: int) -> None:
    """values with k + 1 entries: one more than k."""
    if not (isinstance(values, Tensor) and values.dim() == 1 and values.shape[0] == k + 1):
        return
    fail(
        f"values has {k + 1} entries, one more than k = {k}",
        "topk(k + 1) or a slice [: k + 1] (one extra for a BOS kept?): mask position 0 out before topk and take "
        "exactly k",
        code="shape",
    )


def logit_path_slips(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The latent's path to the logits with one factor changed generically: the decoder row through an elementwise
    function (ReLU, |.|), or W_dec / W_out[0] normalised along an axis (the wrong one, or at all),
    and the effect of the one MLP neuron the row weighs most (its entry kept or dropped)."""
    d, W_out, W_U = sae.W_dec[latent], model.W_out[0], model.W_U
    own = "the logit effect is W_dec[latent] @ W_out[0] @ W_U, each factor as it is"
    rows = [
        (
            "row_pointwise",
            f"that is the effect of {name}: the decoder row is a direction in the MLP's activation space, its "
            f"negative entries count as they are; {own}",
            g @ W_out @ W_U,
        )
        for name, g in (("relu(W_dec[latent])", F.relu(d)), ("|W_dec[latent]|", d.abs()))
    ]
    # W_dec's rows are unit norm already (dim 1 is the identity) and W_U normalised is `unembed_normalised`
    for name, M, dim, axis in (("W_dec", sae.W_dec, 0, "latents"), ("W_out[0]", W_out, 0, "d_mlp")):
        N = F.normalize(M, dim=dim)
        rows.append(
            (
                "matrix_normalised",
                f"that is the effect with {name} normalised along dim {dim} (over {axis}, F.normalize({name}, "
                f"dim={dim})): {own}, nothing normalised",
                N[latent] @ W_out @ W_U if name == "W_dec" else d @ N @ W_U,
            )
        )
    rows.append(
        (
            "matrix_normalised",
            f"that is the effect with W_out[0] normalised along dim 1 (over d_model, F.normalize(W_out[0], dim=1)): "
            f"{own}, nothing normalised",
            d @ F.normalize(W_out, dim=1) @ W_U,
        )
    )
    j = int(d.abs().argmax())
    one = W_out[j] @ W_U
    for v, form in ((one, f"(W_out[0] @ W_U)[{j}]"), (d[j] * one, f"W_dec[latent][{j}] · (W_out[0] @ W_U)[{j}]")):
        rows.append(
            (
                "one_neuron",
                f"that is {form}, the effect of MLP neuron {j} alone (the one W_dec[latent] weighs most): the latent "
                f"writes its whole decoder row, every neuron weighted by its entry; {own}",
                v,
            )
        )
    return rows + logit_layouts(model, sae, latent)


def logit_row_shifted(out: Tensor, expected: Tensor, model: Any, sae: Any, latent: int) -> None:
    """The logit effect of W_dec[latent] shifted along the mean decoder row or the all-ones vector (the row centred
    over d_mlp first, d − d.mean()): the same test as the steering vector's, carried through W_out[0] @ W_U."""
    logit_bias_terms(out, expected, model, sae, latent)
    what = shifted_by(
        out.double() - expected.double(),
        expected,
        sae.W_dec,
        lambda u: u.to(model.W_U.dtype) @ model.W_out[0] @ model.W_U,
    )
    if what:
        fail(
            f"the logit effect of latent {latent} is the effect of W_dec[latent] plus a multiple of {what}, not of "
            "W_dec[latent] alone",
            "use the decoder row as it is, nothing subtracted from it (no centring over d_mlp, no mean row taken "
            "away): W_dec[latent] @ W_out[0] @ W_U",
            code="row_shifted",
        )
