"""Part 5 `__init__`: the bound of W_enc's uniform draw (Kaiming-uniform's, for the docstring's call), and the
other inits a wrong bound is read back as: gain 1, a fixed bound, mode='fan_out' (whose fan counts the instances),
an extra size factor, or Xavier/Glorot (`xavier_uniform_`, whose bound averages fan_in and fan_out)."""

from __future__ import annotations

import math

from torch import Tensor

from tests.checking import fail


def xavier_readings(b: float, shape: tuple[int, ...]) -> list[str]:
    """The Xavier/Glorot-uniform calls whose bound gain · √(6 / (fan_in + fan_out)) is b (within 1%): on the
    docstring's [inst d_in d_sae] tensor, a transposed [inst d_sae d_in] one, or one instance's 2D slice, with
    torch's fans (dim 1 × the trailing sizes in, dim 0 × them out), gain 1 (the default) or √2 (the ReLU's)."""
    n_inst, d_in, d_sae = shape
    fans = {
        "[inst d_in d_sae]": (d_in * d_sae, n_inst * d_sae, "d_in·d_sae + n_inst·d_sae"),
        "[inst d_sae d_in]": (d_sae * d_in, n_inst * d_in, "d_sae·d_in + n_inst·d_in"),
        "one instance's [d_in d_sae]": (d_sae, d_in, "d_sae + d_in"),
    }
    return [
        f"nn.init.xavier_uniform_ (Glorot: b = gain · √(6 / (fan_in + fan_out))) on {where} with gain {g} "
        f"(fan_in + fan_out = {label} = {fi + fo})"
        for where, (fi, fo, label) in fans.items()
        for g, gain in (("1", 1.0), ("√2", math.sqrt(2)))
        if abs(b / (gain * math.sqrt(6 / (fi + fo))) - 1) < 0.01
    ]


def check_init_bound(W: Tensor) -> None:
    """W_enc [inst d_in d_sae] is U[-b, b] (checked before): b must be Kaiming-uniform's, b = gain · √(3 / fan),
    with the default gain √2 (nonlinearity 'leaky_relu' with a=0, or 'relu': the ReLU that follows) or nn.Linear's
    own a=√5 (gain √(1/3)), for the default mode='fan_in' on the docstring's tensor (d_in·d_sae, also of a transposed
    [inst d_sae d_in] one) or per-instance slices [d_in d_sae] / [d_sae d_in] (d_sae, d_in, either mode). Rejected
    and named: mode='fan_out' on the whole tensor (n_inst·d_sae, or n_inst·d_in transposed), whose fan counts the
    instances, independent SAEs that no unit sums over. Window: each instance's largest |w|
    is b̂ <= b, and b̂ < b(1 - t) has probability (1 - t)^n (n = d_in·d_sae per instance; t = 0.004, n = 9000:
    < e^-36), so b̂ in [b(1 - t), b(1 + 1e-6)]. Rejected: gain 1 (nonlinearity='linear') and fixed bounds
    (uniform_(-1, 1)), which land outside every window when the sizes are generic (n_inst 4, d_in 5, d_sae 1800:
    no fan is 2, 3 or 6 times another, and no accepted b is within 5% of 1, 0.5, 0.1, 0.01, ...)."""
    n_inst, d_in, d_sae = W.shape
    fans = {"d_in·d_sae": d_in * d_sae, "d_sae": d_sae, "d_in": d_in}
    # fans that count the instances: mode='fan_out' on the docstring's (or a transposed) tensor, or the default
    # fan_in of a tensor drawn in another layout ([d_sae, inst, d_in], [d_in, inst, d_sae]) and permuted into place;
    # both give the same iid U[-b, b] draw, so the bound alone cannot tell them apart
    fan_out = {
        "n_inst·d_sae": (n_inst * d_sae, "[inst d_in d_sae]", "[d_in, inst, d_sae]"),
        "n_inst·d_in": (n_inst * d_in, "[inst d_sae d_in]", "[d_sae, inst, d_in]"),
    }
    gains = {"√2": math.sqrt(2), "√(1/3) (a=√5)": math.sqrt(1 / 3)}
    bounds = {(g, name): gain * math.sqrt(3 / fan) for g, gain in gains.items() for name, fan in fans.items()}
    b_hat = W.flatten(1).abs().amax(-1)
    t = 0.004
    if any(bool(((b_hat >= b * (1 - t)) & (b_hat <= b * (1 + 1e-6))).all()) for b in bounds.values()):
        return
    b = float(b_hat.max())
    seen = [
        f"gain 1 (nonlinearity='linear', or a=1: kaiming's gain is √(2 / (1 + a²)), 1 at a=1) with fan {n}"
        for n, f in fans.items()
        if abs(b / math.sqrt(3 / f) - 1) < 0.01
    ]
    seen += [f"a fixed bound {c} (uniform_(-{c}, {c}))" for c in (1, 0.5, 0.1, 0.01) if abs(b / c - 1) < 0.01]
    seen += [
        f"a fan of {n} = {f}, which counts the instances (independent SAEs, not inputs of one unit): "
        f"mode='fan_out' on a {out_shape} tensor, or the default fan_in of a tensor drawn in another layout, "
        f"e.g. torch.empty{drawn.replace('[', '(').replace(']', ')')} then permuted into place (torch reads "
        "fan_in from that tensor's own dim 1 × its trailing sizes)"
        for n, (f, out_shape, drawn) in fan_out.items()
        for gain in gains.values()
        if abs(b / (gain * math.sqrt(3 / f)) - 1) < 0.01
    ]
    xavier = xavier_readings(b, tuple(W.shape))
    seen += xavier
    sizes = {"n_inst": n_inst, "d_in": d_in, "d_sae": d_sae}
    factors = {f"{p}{n}": v**e for n, v in sizes.items() for p, e in (("", 1), ("√", 0.5)) if v > 1}
    extra = [  # the right bound times one extra factor (1/√d_in: a division added "to keep the activations small")
        f"the kaiming bound {v:.4g} (fan {k}) {op} {name} (= {f:.4g})"
        for (g, k), v in bounds.items()
        if g == "√2" and k == "d_in·d_sae"  # the docstring's call: other fans would give equal products
        for name, f in factors.items()
        for op, r in (("divided by", 1 / f), ("multiplied by", f))
        if abs(b / (v * r) - 1) < 0.01
    ]
    (g0, k0), v0 = min(bounds.items(), key=lambda kv: abs(math.log(b / kv[1])))
    fail(
        f"W_enc is uniform on [-b, b] with b ≈ {b:.4g} (largest |w| per instance "
        f"{[round(float(x), 4) for x in b_hat]}), but nn.init.kaiming_uniform_ (default gain √2, for the ReLU) gives "
        "b = √(6 / fan) = "
        + ", ".join(f"{v:.4g} (fan {k})" for (g, k), v in bounds.items() if g == "√2")
        + (f"; {b:.4g} is what " + " or ".join(seen) + " gives" if seen else "")
        + (f"; {b:.4g} is " + " or ".join(extra) + ": an extra factor on a correct kaiming init?" if extra else "")
        + (
            ""
            if seen or extra
            else f"; the nearest accepted bound is {v0:.4g} (gain {g0}, fan {k0}), {b / v0:.3g} × it"
        ),
        "initialise W_enc with nn.init.kaiming_uniform_(torch.empty(n_inst, d_in, d_sae)) and its default "
        "mode ('fan_in') and nonlinearity/gain, as the docstring asks; "
        + (
            "not xavier_uniform_: Xavier/Glorot averages fan_in with fan_out (which counts the instances here), "
            "Kaiming uses fan_in alone with the ReLU's gain √2"
            if xavier
            else "draw on that tensor itself, not on one in another layout permuted afterwards (kaiming reads "
            "the fan from the tensor it is given); not another init, mode, gain or bound"
        ),
        code="init_scale",
    )


def normalised_axes_failure(W: Tensor) -> None:
    """W_enc [inst d_in d_sae] whose vectors along one axis all have the same norm (a correct draw's norms vary: each
    sums a few independent uniform squares): the draw was normalised (or rescaled to one length) along that axis."""
    W = W.detach().double()
    for dim, what, fix in (
        (1, "encoder column (over d_in, one per latent)", "W_enc / W_enc.norm(dim=1, keepdim=True)"),
        (2, "row over d_sae (one per input dimension)", "W_enc / W_enc.norm(dim=-1, keepdim=True)"),
    ):
        norms = W.norm(dim=dim)
        if norms.numel() > 1 and float(norms.std() / norms.mean()) < 1e-4:
            fail(
                f"every {what} of W_enc has norm {float(norms.mean()):.4g} (read back): the kaiming draw was "
                "normalised along that axis afterwards",
                f"keep the kaiming_uniform_ draw as it is (no {fix}): W_enc starts uniform on [-b, b]; the decoder "
                "is normalised in W_dec_normalized, when it decodes",
                code="init_normalised",
            )
