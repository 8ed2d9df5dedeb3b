"""Probes for part 5a added after the fresh8 held-out measurement: a step function's forward wrong on one side of
the threshold only, JumpReLU SAE bandwidths given to one of the two step functions, and the TopK SAE's choice of
latents and what it decodes (ingredients, as `tests.part5_toy_saes_diagnosis.ingredient_diagnosis` reads them)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a
from tests import part5_toy_saes_diagnosis as D
from tests import part5a_sae_architectures_k_readback as KR
from tests import part5a_sae_architectures_lowered_k as LK
from tests import part5a_sae_architectures_metric_readings as MR
from tests import part5a_sae_architectures_mistakes as M
from tests import part5a_sae_architectures_returned_quantity as RQ
from tests.checking import fail
from tests.part5_toy_saes import COEFFS, D_SAE, N_INST, random_hidden, reference_sae


# --------------------------------------------------------------------------------------------
# Heaviside / JumpReLU forward: one side of the threshold right, the other a constant
# --------------------------------------------------------------------------------------------
def step_side_hint(out: Tensor, want: Tensor, x: Tensor, th: Tensor, name: str) -> None:
    """Fail when the forward output is right on one side of θ and one wrong constant on the other (sign(x - θ) is
    -1 below θ). No test input sits on θ, so the sides are x < θ and x > θ."""
    g = out.detach().to(want.dtype)
    wrong = g != want
    for side, where, right in ((x < th, "x < θ", "0"), (x > th, "x > θ", "1" if name == "Heaviside" else "x")):
        values = g[side].unique()
        if not (wrong & side).any() or (wrong & ~side).any() or values.numel() != 1:
            continue
        value = float(values[0])
        sign = " (torch.sign(x - θ) is -1 there: the step is (x > θ).to(x.dtype))" if value == -1 else ""
        fail(
            f"{name} forward is {value:g} wherever {where}, expected {right} there (the other side is right)",
            f"the step's output is {right} where {where}{sign}",
            code="forward_below_threshold" if where == "x < θ" else "forward_above_threshold",
        )


def saved_order_hint(
    solution: Any, x: Tensor, th: Tensor, g: Tensor, bw: float, grad_x: Tensor, grad_th: Tensor, name: str
) -> None:
    """Fail when both gradients are the solution's backward run with the saved tensors in the other order
    (`threshold, x = ctx.saved_tensors` after save_for_backward(x, threshold)): x and θ trade places everywhere in
    backward, so one gradient alone can look like another comparison or another factor."""
    try:
        ctx = SimpleNamespace(saved_tensors=(th, x), bandwidth=bw)
        other = [t if t is not None else torch.zeros_like(x) for t in solution.backward(ctx, g)[:2]]
        right = [
            t if t is not None else torch.zeros_like(x)
            for t in solution.backward(SimpleNamespace(saved_tensors=(x, th), bandwidth=bw), g)[:2]
        ]
    except Exception:  # the solution's backward is known to run; anything else says nothing
        return
    same = lambda a, b: a.shape == b.shape and torch.allclose(a.detach().to(b.dtype), b, rtol=1e-4, atol=1e-6)
    if all(same(a, b) for a, b in zip((grad_x, grad_th), other, strict=True)) and not all(
        same(a, b) for a, b in zip((grad_x, grad_th), right, strict=True)
    ):
        fail(
            f"both gradients of {name} are the right formulas with x and threshold trading places: the saved tensors "
            "were unpacked in another order than they were saved",
            "ctx.saved_tensors comes back in the order given to ctx.save_for_backward: after "
            "save_for_backward(x, threshold), read `x, threshold = ctx.saved_tensors`",
            code="saved_order",
        )


# --------------------------------------------------------------------------------------------
# JumpReLU SAE: the bandwidth of one of the two step functions
# --------------------------------------------------------------------------------------------
def _bandwidth(cfg: Any, which: str | None) -> float:
    return {None: cfg.jumprelu_bandwidth, "init": cfg.jumprelu_init_threshold, "one": 1.0}[which]


def jumprelu_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """`M.jumprelu_forward`, plus the bugs `jump_bw` / `heavi_bw` ("init": cfg.jumprelu_init_threshold, "one": 1):
    another bandwidth given to JumpReLU.apply or to Heaviside.apply alone."""
    if bug.get("rec_target_centred"):
        d, _, acts, h_rec = M.jumprelu_forward(sae, h)
        d = d | {"L_reconstruction": (h_rec - (h - sae.b_dec)).pow(2).mean(-1)}
        return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec
    if "decode" in bug:  # acts_post right, but another tensor decoded: ReLU(pre) or pre itself
        d, _, acts, _ = M.jumprelu_forward(sae, h)
        pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
        src = pre.relu() if bug["decode"] == "relu" else pre
        h_rec = torch.einsum("bis,isd->bid", src, sae.W_dec_normalized) + sae.b_dec
        d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
        return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec
    if "jump_bw" not in bug and "heavi_bw" not in bug:
        return M.jumprelu_forward(sae, h, **bug)
    pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
    theta = sae.log_threshold.exp().expand_as(pre)
    acts = ref_a.JumpReLU.apply(pre, theta, _bandwidth(sae.cfg, bug.get("jump_bw")))
    h_rec = torch.einsum("bis,isd->bid", acts, sae.W_dec_normalized) + sae.b_dec
    d = {
        "L_reconstruction": (h_rec - h).pow(2).mean(-1),
        "L_sparsity": ref_a.Heaviside.apply(pre, theta, _bandwidth(sae.cfg, bug.get("heavi_bw"))).sum(-1),
    }
    return d, (d["L_reconstruction"] + sae.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec


_FIELD = {"init": "cfg.jumprelu_init_threshold", "one": "1 (a literal or a default)"}
JUMPRELU_BANDWIDTH_MISTAKES = [
    (
        f"{fn.lower()}_bandwidth_{which}",
        f"{fn}.apply got the bandwidth {_FIELD[which]}, not cfg.jumprelu_bandwidth ({other}.apply has the right "
        "one): pass cfg.jumprelu_bandwidth to both",
        "grad",
        {key: which},
    )
    for fn, other, key in (("JumpReLU", "Heaviside", "jump_bw"), ("Heaviside", "JumpReLU", "heavi_bw"))
    for which in ("init", "one")
]


NOT_TENSOR = (
    "return a torch tensor, computed with torch operations on the input (numpy's count_nonzero, .numpy() or "
    ".item()/.tolist() leave torch: no device, no gradient, and another dtype)"
)
JUMPRELU_DECODE_MISTAKES = [
    (
        "decoded_relu",
        "h_reconstructed decodes ReLU(pre), not the JumpReLU output: decode acts_post (the latents below θ are 0), "
        "h_reconstructed = acts_post @ W_dec_normalized + b_dec",
        "h_reconstructed",
        {"decode": "relu"},
    ),
    (
        "decoded_pre",
        "h_reconstructed decodes the pre-activations, not the JumpReLU output: decode acts_post",
        "h_reconstructed",
        {"decode": "pre"},
    ),
]


# --------------------------------------------------------------------------------------------
# Metrics: mistakes beyond the catalogue (which is at 800 lines)
# --------------------------------------------------------------------------------------------
def fve_extra(h: Tensor, h_rec: Tensor) -> list[tuple[str, str, Tensor]]:
    """FVE with another power of the deviations than 2: absolute values, or norms (square roots of the sums); the
    residual taken from the centred h."""
    num, den = (h - h_rec).abs(), (h - h.mean(0)).abs()
    sq_num, sq_den = (h - h_rec).pow(2).sum((0, 2)), (h - h.mean(0)).pow(2).sum((0, 2))
    return [
        (
            "abs_deviations",
            "square the deviations: 1 - Σ(h - h_rec)² / Σ(h - mean(h))²; you summed absolute values |h - h_rec| and "
            "|h - mean(h)| (a ratio of L1 norms, not of variances)",
            1 - num.sum((0, 2)) / den.sum((0, 2)),
        ),
        (
            "sqrt_ratio",
            "the ratio of the sums of squares itself, not its square root (norms ‖h - h_rec‖ / ‖h - mean(h)‖): "
            "1 - Σ(h - h_rec)² / Σ(h - mean(h))²",
            1 - (sq_num / sq_den).sqrt(),
        ),
        (
            "residual_centred",
            "centre h only in the denominator: the residual is h - h_rec with h as given. You centred h first and "
            "used that centred h in the residual too, (h - mean(h)) - h_rec, though h_rec reconstructs h itself",
            1 - ((h - h.mean(0)) - h_rec).pow(2).sum((0, 2)) / sq_den,
        ),
        *fve_other_totals(h, h_rec),
        *fve_sum_of_ratios(h, h_rec),
    ]


def fve_other_totals(h: Tensor, h_rec: Tensor) -> list[tuple[str, str, Tensor]]:
    """FVE as the squared correlation of h and h_rec, and with the total Σh² - (Σh)² (the 1/n left out)."""
    n, sq_num = h.shape[0], (h - h_rec).pow(2).sum((0, 2))

    def corr2(axes: tuple[int, ...]) -> Tensor:  # centred per d_in (axes (0,)) or over the whole instance
        dh, dr = h - h.mean(axes, keepdim=True), h_rec - h_rec.mean(axes, keepdim=True)
        return (dh * dr).sum((0, 2)).pow(2) / (dh.pow(2).sum((0, 2)) * dr.pow(2).sum((0, 2)))

    no_n = (h.pow(2).sum(0) - h.sum(0).pow(2)).sum(-1)
    return [
        (
            "fve_correlation",
            "FVE is 1 - Σ(h - h_rec)² / Σ(h - mean(h))², not the squared correlation of h and h_rec: r² ignores "
            "a scale or offset in h_rec that FVE counts as error",
            value,
        )
        for value in (corr2((0,)), corr2((0, 2)))
    ] + [
        (
            "fve_total_no_n",
            f"Σ(h - mean(h))² = Σh² - (Σh)²/n over the batch (n = {n}): your total left out the /n",
            1 - sq_num / no_n,
        ),
    ]


def recovery_diagonal(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """Feature f paired with latent f (the diagonal of the cosine matrix), no max over the latents."""
    n = min(W_dec.shape[1], W_feat.shape[2])
    if n != W_feat.shape[2]:
        return []
    f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + 1e-8)
    cos = torch.einsum("isd,idf->isf", W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8), f_hat)
    return [
        (
            "diagonal",
            "that pairs feature f with latent f (the diagonal of the cosine matrix): an SAE's latents come in no "
            "particular order, so take the max over all latents of each feature's cosine, cos.amax(dim=1)",
            cos.diagonal(dim1=1, dim2=2),
        )
    ]


def dead_count_sizes(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """A latent's zero count compared with another size than the batch (acts.shape[0]): the instances or the
    latents. The checker's acts have latents with exactly that many zeros, so each size shows."""
    zeros = (acts == 0).sum(0)
    out = []
    for axis, name in ((1, "n_inst"), (2, "d_sae")):
        size = acts.shape[axis]
        out.append(
            (
                "count_wrong_size",
                f"a latent is dead when its zero count equals the batch size, acts.shape[0] = {acts.shape[0]}: you "
                f"compared it with acts.shape[{axis}] = {size}, {name}. Or use (acts == 0).all(dim=0)",
                (zeros == size).to(acts.dtype).mean(-1),
            )
        )
    dead, d_sae = (acts == 0).all(0).to(acts.dtype).sum(-1), acts.shape[2]
    size = acts.shape[1]  # the right count over n_inst: d_sae / n_inst × the values (the batch: divided_by_batch)
    out.append(
        (
            "dead_divided_wrong_size",
            f"your values are {d_sae}/{size} × the expected ones: the dead count divided by {size} "
            f"(acts.shape[1], n_inst) where {d_sae} (acts.shape[2], d_sae) belongs",
            dead / size,
        )
    )
    reshaped = reshaped_inputs(ref_a.dead_latent_fraction, (acts,), "batch inst d_sae", "acts")  # reshape for permute
    reshaped = [e for e in reshaped if not torch.equal(e[2], e[2][:1].expand_as(e[2]))]  # one shared value: pooled
    return (
        out + MR.dead_readings(acts) + RQ.dead_over_other_counts(acts) + reshaped
    )  # counts off by one, slices dropped, instance 0's for all


# --------------------------------------------------------------------------------------------
# TopK SAE: which latents are kept, and what is decoded
# --------------------------------------------------------------------------------------------
def topk_acts_options(sae: Any, h: Tensor) -> tuple[Any, list]:
    """acts_post = the k largest ReLU(pre) kept in place, with alternatives for what the top k are chosen on."""
    k = sae.cfg.k

    def combine(x_in: Tensor, chosen_on: str, kept: str) -> Tensor:
        proj = torch.einsum("bid,ids->bis", x_in, sae.W_enc)
        post = (proj + sae.b_enc).relu()
        score = {"post": post, "proj": proj, "dec_norm": post * sae.W_dec.norm(dim=-1)[None]}[chosen_on]
        idx = score.topk(k, dim=-1).indices
        values = {"post": post, "relu_proj": proj.relu(), "pre": proj + sae.b_enc}[kept]
        return torch.zeros_like(post).scatter(-1, idx, values.gather(-1, idx))

    return combine, [
        [("x", "", lambda: h - sae.b_dec), ("no_b_dec_subtraction", "the encoder reads h, not h - b_dec", lambda: h)],
        [
            ("post", "", lambda: "post"),
            (
                "topk_before_b_enc",
                "the top k latents are chosen on (h - b_dec) @ W_enc, before b_enc is added (the values kept, "
                "ReLU(pre), are right): choose them on ReLU(pre) with pre including b_enc",
                lambda: "proj",
            ),
            (
                "topk_by_decoder_norm",
                "the top k latents are chosen on ReLU(pre) times the decoder row norms ‖W_dec[j]‖ (the values kept "
                "are right): choose them on ReLU(pre) alone",
                lambda: "dec_norm",
            ),
        ],
        [
            ("post", "", lambda: "post"),
            (
                "kept_values_without_b_enc",
                "the values kept are ReLU((h - b_dec) @ W_enc), without b_enc (the latents chosen are right): keep "
                "ReLU(pre) with pre = (h - b_dec) @ W_enc + b_enc",
                lambda: "relu_proj",
            ),
        ],
    ]


def topk_decode_options(sae: Any, h: Tensor) -> tuple[Any, list]:
    """h_reconstructed's ingredients (`D.decode_options`), plus decoding every latent's ReLU(pre)."""
    pre = torch.einsum("bid,ids->bis", h - sae.b_dec, sae.W_enc) + sae.b_enc
    combine, options = D.decode_options(sae, pre, M.topk_forward(sae, h)[2])
    options[0].append(
        (
            "decoded_all_latents",
            "it decodes ReLU(pre) of every latent, not acts_post (only the top k): decode acts_post",
            lambda: pre.relu(),
        )
    )
    top = pre.topk(sae.cfg.k, dim=-1)  # the top k of pre itself: negative values where fewer than k are positive
    options[0].append(
        (
            "decoded_before_relu",
            "it decodes the top-k values of pre before the ReLU (negative ones included), and the ReLU comes only "
            "after decoding: decode acts_post, the top k of ReLU(pre)",
            lambda: torch.zeros_like(pre).scatter(-1, top.indices, top.values),
        )
    )
    return combine, options


# --------------------------------------------------------------------------------------------
# Metrics: the caller's tensors must come back unchanged
# --------------------------------------------------------------------------------------------
def unchanged_call(impl: Any, args: tuple, what: str) -> Any:
    """impl(*copies of args); fail naming the argument when the call wrote into it (the caller's acts, h or
    W_dec would be changed for every later use). `what`: "name(arg1, arg2)", for the argument names."""
    copies = [a.clone() for a in args]
    out = impl(*copies)
    names = what[what.index("(") + 1 : -1].split(", ")
    for name, a, c in zip(names, args, copies, strict=False):
        if c.shape != a.shape or not torch.equal(c, a):
            n = int((c != a).sum()) if c.shape == a.shape else a.numel()
            fail(
                f"{what} changed its input `{name}` in place ({n} of {a.numel()} entries changed)",
                f"don't write into `{name}` (x[mask] = ..., x /= ..., x -= ..., x.abs_()): the caller still needs it. "
                "Compute into a new tensor, e.g. (acts != 0).float(), x - y, x / n, or x = x.clone() first",
                code="input_modified",
            )
    return out


def first_example(metric: str, acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """The l0 / dead-fraction metric computed on example 0 alone (acts[0]), as a catalogue entry."""
    one = acts[0]
    value = (one != 0).to(acts.dtype).sum(-1) if metric == "l0" else (one == 0).to(acts.dtype).mean(-1)
    what = "average the counts over every example" if metric == "l0" else "a latent is dead when zero on every example"
    single = ("single_example", f"your values are example 0's alone (acts[0]): {what} of the batch", value)
    return [single, *(example_as_instance(acts) + l0_example_dropped(acts) if metric == "l0" else [])]


# --------------------------------------------------------------------------------------------
# JumpReLU: the forward's value as the x-gradient; the reconstruction compared with h - b_dec
# --------------------------------------------------------------------------------------------
JUMPRELU_GRAD_X = [
    (
        "grad_x_is_forward",
        "∂JumpReLU/∂x is the step 1[x > θ], times grad_output: yours is x · 1[x > θ] · grad_output, the forward's "
        "value (x appears once too often)",
        lambda x, th, bw: x * (x > th).to(x.dtype),
    )
]
JUMPRELU_BANDWIDTH_MISTAKES.append(
    (
        "rec_target_centred",
        "compare h_reconstructed with h itself, not with h - b_dec (h_reconstructed already has b_dec added back)",
        "L_reconstruction",
        {"rec_target_centred": True},
    )
)


# --------------------------------------------------------------------------------------------
# TopK: a k that does not follow cfg.k; l0: a mean count rounded to a whole number
# --------------------------------------------------------------------------------------------
def topk_k_ignored(cls: type, device: torch.device) -> None:
    """Fail when forward keeps the same number of latents per example with cfg.k = 2 and cfg.k = 3 (instance 2
    has nearly every pre-activation positive, so the right answer keeps exactly k there). Silent on errors."""

    counts, runs = [], []
    try:
        for k in (2, 3):
            sae = reference_sae(cls, device, k=k, sparsity_coeff=COEFFS)
            with torch.no_grad():
                sae.b_enc[2] += 3.0
            h = random_hidden(64, N_INST, sae.cfg.d_in, device)
            acts = sae(h)[2]
            runs.append((sae, h, acts))
            counts.append((acts.detach() != 0).sum(-1)[:, 2].cpu())
    except Exception:  # the checker's own steps report a forward that fails
        return
    if counts[0].shape != counts[1].shape or not torch.equal(counts[0], counts[1]):
        return
    n = sorted(set(counts[0].tolist()))
    if not n or max(n) in (0, D_SAE):
        return
    LK.topk_k_from_data(cls, device, n)  # follows k where every example has ≥ 3 positive: k read from the batch
    fail(
        f"acts_post keeps the same number of non-zero latents per example ({', '.join(map(str, n[:4]))}) with "
        "cfg.k = 2 and with cfg.k = 3",
        KR.k_ignored_hint(runs),
        code="k_ignored",
    )


def dtype_followed(cls: type, device: torch.device, **cfg: Any) -> None:
    """Fail when forward, run on a float64 SAE and float64 inputs, returns acts_post in another dtype: a tensor
    built without dtype= (torch.zeros(shape), torch.tensor(...)) takes the default float32. Silent on errors."""

    try:
        sae = reference_sae(cls, device, sparsity_coeff=COEFFS, **cfg).double()
        acts = sae(random_hidden(16, N_INST, sae.cfg.d_in, device).double())[2]
    except Exception as err:  # the checker's own steps report a forward that fails, unless dtypes disagree
        if "dtype" not in str(err) and "Double" not in str(err):
            return
        seen, acts = f"forward raised {type(err).__name__}: {str(err).splitlines()[0][:200]}", None
    else:
        seen = f"acts_post is {getattr(acts, 'dtype', None)}"
    if acts is None or (isinstance(acts, Tensor) and acts.is_floating_point() and acts.dtype != torch.float64):
        fail(
            f"with a float64 SAE and float64 inputs, {seen}",
            "a tensor made without dtype= takes the default float32: build it from pre, e.g. torch.zeros_like(pre) "
            "instead of torch.zeros(pre.shape) (or pass dtype=pre.dtype, device=pre.device)",
            code="default_dtype",
        )


def dead_never_largest(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """Dead read as "never the largest latent of an example" (argmax), as a catalogue entry."""
    won = torch.nn.functional.one_hot(acts.argmax(-1), acts.shape[-1]).sum(0) > 0
    hint = (
        "your fraction counts as dead the latents that are never an example's largest (argmax): a latent that is "
        "non-zero on some example is alive even if another is larger there; dead means zero on every example"
    )
    return [("never_largest", hint, (~won).to(acts.dtype).mean(-1))]


def l0_rounded(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """The mean count rounded or truncated to a whole number, as catalogue entries."""
    mean = (acts != 0).to(acts.dtype).sum(-1).mean(0)
    hint = (
        "your values are whole numbers: the mean count is a fraction (e.g. 2.7 latents per example), don't round "
        "it or convert it to an integer (round, .long(), //)"
    )
    return [("rounded", hint, mean.round()), ("rounded", hint, mean.floor())]


# --------------------------------------------------------------------------------------------
# Step functions: the other function's backward copied whole (Heaviside's into JumpReLU, or back)
# --------------------------------------------------------------------------------------------
def copied_backward(name: str, grad_x: Tensor, grad_th: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float) -> None:
    """Fail when both gradients are the *other* step function's: each check alone would name only half."""
    window = ((x - th) / bw).abs().lt(0.5).to(x.dtype) / bw
    heavi = (torch.zeros_like(x), -window * g)
    jump = ((x > th).to(x.dtype) * g, -th * window * g)
    other, (gx, gth) = ("Heaviside", heavi) if name == "JumpReLU" else ("JumpReLU", jump)
    close = lambda a, b: a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5))
    if close(grad_x, gx) and close(grad_th, gth):
        want = (
            "1[x > θ] for x and -(θ/ε) K((x - θ)/ε) for θ (x passes straight through above θ, and the factor θ "
            "is the size of the jump)"
            if name == "JumpReLU"
            else "0 for x and -(1/ε) K((x - θ)/ε) for θ (no factor θ: the jump has height 1)"
        )
        fail(
            f"both gradients of {name} are {other}'s: the backward was copied from {other}",
            f"{name}'s pseudo-derivatives are {want}, each times grad_output",
            code="copied_backward",
        )


# --------------------------------------------------------------------------------------------
# Metrics (fresh13): an average over the active examples only, an example indexed as an instance, one instance's
# directions for every instance, norms clamped at 1
# --------------------------------------------------------------------------------------------
def l0_active_examples(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """The count averaged over the examples with at least one active latent only (the checker's acts have
    examples with none, in every instance)."""
    count = (acts != 0).to(acts.dtype).sum(-1)
    hint = (
        "your mean leaves out the examples with no active latent: average the count over every example of the "
        "batch (an example with nothing active counts 0), .mean(dim=0)"
    )
    return [("active_examples_only", hint, count.sum(0) / (count > 0).to(acts.dtype).sum(0).clamp(min=1))]


def fve_example_as_instance(h: Tensor, h_rec: Tensor) -> list[tuple[str, str, Tensor]]:
    """Instance i's FVE computed on example i (h[i], [inst d_in]) instead of h[:, i]."""
    n = h.shape[1]
    if h.shape[0] < n:
        return []
    x, r = h[:n], h_rec[:n]  # x[i] is example i: [inst d_in], read as a batch of n_inst rows
    value = 1 - (x - r).pow(2).sum((1, 2)) / (x - x.mean(1, keepdim=True)).pow(2).sum((1, 2))
    hint = (
        "your value for instance i is computed on example i: h[i] indexes the batch axis (dim 0), giving one "
        "example's [inst d_in] rows; instance i is h[:, i] ([batch d_in])"
    )
    return [("example_as_instance", hint, value)]


def recovery_first_instance(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """Every instance's cosines computed with instance 0's decoder rows, or with instance 0's features."""
    f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + 1e-8)
    d_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    out = []
    for name, d, f in (("W_dec", d_hat[:1].expand_as(d_hat), f_hat), ("W_features", d_hat, f_hat[:1].expand_as(f_hat))):
        hint = (
            f"every instance's values use instance 0's {name} ({name}[0], or a slice 0:1 broadcast): each instance "
            f"compares its own features with its own decoder, {name}[i] for instance i (keep the instance axis in "
            "the einsum / matmul)"
        )
        out.append(("first_instance_only", hint, torch.einsum("isd,idf->isf", d, f).amax(1)))
    return out


def recovery_norm_clamped(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """Norms clamped at 1 (clamp(min=1), max(norm, 1)): vectors shorter than 1 are not scaled up to unit length."""
    f_n, d_n = W_feat.norm(dim=1, keepdim=True), W_dec.norm(dim=-1, keepdim=True)
    hint = (
        "a norm clamped at 1 ({}): a direction shorter than 1 is then divided by 1, not by its norm, so its "
        "'cosine' is too small; divide by the norm itself (clamp it only at a tiny value such as 1e-8 against 0)"
    )
    options = (
        ("both norms", d_n.clamp(min=1), f_n.clamp(min=1)),
        ("the decoder rows' norms", d_n.clamp(min=1), f_n),
        ("the features' norms", d_n, f_n.clamp(min=1)),
    )
    return [
        ("norm_clamped_at_one", hint.format(what), torch.einsum("isd,idf->isf", W_dec / d, W_feat / f).amax(1))
        for what, d, f in options
    ]


def recovery_more(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """The recovery entries of this module: the diagonal, instance 0's directions, norms clamped at 1."""
    return [
        *recovery_diagonal(W_feat, W_dec),
        *recovery_first_instance(W_feat, W_dec),
        *recovery_norm_clamped(W_feat, W_dec),
        *recovery_norm_axes(W_feat, W_dec),
        *recovery_distance(W_feat, W_dec),
        *recovery_other_norms(W_feat, W_dec),
        *recovery_axes(W_feat, W_dec),
    ]


def recovery_other_norms(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """Cosines whose vectors were divided by something other than their L2 norm (+ 1e-8): the largest |entry|
    (the inf-norm) for the decoder rows, or a + 1 in both denominators."""
    f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + 1e-8)
    d_inf = W_dec / (W_dec.abs().amax(-1, keepdim=True) + 1e-8)
    plus_one = torch.einsum(
        "isd,idf->isf", W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1), W_feat / (W_feat.norm(dim=1, keepdim=True) + 1)
    )
    return [
        (
            "dec_inf_norm",
            "divide each decoder row by its Euclidean norm ‖W_dec[j]‖ = sqrt(Σ_d W_dec[j, d]²); yours divided by its "
            "largest |entry| (the inf-norm), so the rows are not unit vectors and the cosines are off",
            torch.einsum("isd,idf->isf", d_inf, f_hat).amax(1),
        ),
        (
            "norm_plus_one",
            "the epsilon keeps the division finite and must be tiny next to the norms (1e-8): yours added 1 to the "
            "denominators (‖v‖ + 1), which shrinks every cosine",
            plus_one.amax(1),
        ),
    ]


# --------------------------------------------------------------------------------------------
# Fresh14: an example indexed as an instance (l0, dead), a std where a variance belongs (FVE), a norm over the
# wrong set of axes or a distance as the similarity (recovery), one index tensor written into every example (TopK)
# --------------------------------------------------------------------------------------------
def example_as_instance(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """Instance i's l0 computed on example i (acts[i], [inst d_sae]) instead of acts[:, i]. (The dead fraction's
    version equals a count compared with d_sae on the checker's inputs: not listed.)"""
    n = acts.shape[1]
    if acts.shape[0] < n:
        return []
    x = acts[:n]  # x[i] is example i: [inst d_sae]
    value = (x != 0).to(acts.dtype).sum(-1).mean(-1)
    hint = (
        "your value for instance i is computed on example i: acts[i] indexes the batch axis (dim 0), giving one "
        "example's [inst d_sae] activations; instance i is acts[:, i] ([batch d_sae])"
    )
    return [("example_as_instance", hint, value)]


def fve_std_denominator(h: Tensor, h_rec: Tensor) -> list[tuple[str, str, Tensor]]:
    """The denominator built from standard deviations (times the batch size, or batch · d_in) instead of variances."""
    resid, n, d = (h - h_rec).pow(2).sum((0, 2)), h.shape[0], h.shape[-1]
    hint = (
        "your denominator uses the standard deviation where the variance (its square) belongs: "
        "Σ(h - mean(h))² over batch and d_in is batch × Σ_d var_d, not batch × Σ_d std_d; compute the centred "
        "sum of squares directly, (h - h.mean(0)).pow(2).sum((0, 2))"
    )
    out = []
    for unbiased in (False, True):
        out.append(("std_not_variance", hint, 1 - resid / (h.std(0, unbiased=unbiased).sum(-1) * n)))
        out.append(("std_not_variance", hint, 1 - resid / (h.std((0, 2), unbiased=unbiased) * n * d)))
    return out


def recovery_norm_axes(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """Each set of directions divided by a norm over a set of axes that the other entries don't cover (a single
    wrong axis or the whole tensor is listed elsewhere): two axes, e.g. each instance's Frobenius norm."""
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    d_hat = W_dec / W_dec.norm(dim=-1, keepdim=True)
    out = []
    for name, names, right in (("W_dec", ("inst", "d_sae", "d_in"), 2), ("W_features", ("inst", "d_in", "feats"), 1)):
        x = W_dec if name == "W_dec" else W_feat
        for dims in ((0, 1), (0, 2), (1, 2)):
            wrong = x / x.norm(dim=dims, keepdim=True)
            d, f = (wrong, f_hat) if name == "W_dec" else (d_hat, wrong)
            over = ", ".join(names[i] for i in dims)
            extra = " (each instance's Frobenius norm)" if dims == (1, 2) else ""
            hint = (
                f"you divide {name} by one norm over ({over}){extra}: normalise each direction by its own norm, "
                f"over {names[right]} only ({name}.norm(dim={right}, keepdim=True))"
            )
            out.append(("norm_wrong_axes", hint, torch.einsum("isd,idf->isf", d, f).amax(1)))
    return out


def recovery_distance(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    """A similarity made from the distance of the unit vectors (1 - ‖f̂ - d̂‖, 1 - ‖f̂ - d̂‖², -‖f̂ - d̂‖)."""
    f_hat = W_feat / W_feat.norm(dim=1, keepdim=True)
    d_hat = W_dec / W_dec.norm(dim=-1, keepdim=True)
    sq = (2 - 2 * torch.einsum("isd,idf->isf", d_hat, f_hat)).clamp(min=0)  # ‖f̂ - d̂‖² of unit vectors
    hint = (
        "your similarity is built from the distance ‖f̂ - d̂‖ of the unit vectors ({}): the cosine is their dot "
        "product, which for unit vectors is 1 - ‖f̂ - d̂‖²/2"
    )
    forms = (("1 - ‖f̂ - d̂‖", 1 - sq.sqrt()), ("1 - ‖f̂ - d̂‖²", 1 - sq), ("-‖f̂ - d̂‖", -sq.sqrt()))
    return [("distance_not_cosine", hint.format(what), value.amax(1)) for what, value in forms]


def topk_shared_indices(acts: Tensor, k: int) -> None:
    """Fail naming it when every example has the same set of more than k active latents (per instance): the top-k
    indices of all examples written into each one, as `acts[..., top.indices] = top.values` does."""
    active = acts.detach() != 0
    if not (active.sum(-1) > k).any() or not (active == active[:1]).all():
        return
    counts = active[0].sum(-1).tolist()
    where = "every instance" if (active == active[:1, :1]).all() else "each instance"
    fail(
        f"every example has the same active latents ({where} the same set; counts per instance {counts}), more "
        f"than k={k}: the indices picked for all examples were written into each example",
        "`acts[..., top.indices] = top.values` does that: an index tensor in one axis selects those d_sae positions "
        "for every example (and instance). Put each example's values at its own indices: "
        "torch.zeros_like(pre).scatter(-1, top.indices, top.values)",
        code="indices_shared",
    )


# --------------------------------------------------------------------------------------------
# Metrics: the inputs reshaped (not permuted) into another axis order, then the right formula on that layout
# --------------------------------------------------------------------------------------------
def _same(a: Tensor, b: Tensor) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-6, atol=1e-9, equal_nan=True))


def reshaped_inputs(fn: Callable, inputs: tuple, names: str, what: str) -> list[tuple[str, str, Tensor]]:
    """What `fn` gives when every input [names] is first reshaped to its shape in another axis order and read as
    laid out in that order (acts.reshape(n_inst, batch, d_sae) for a permute). Orders that give the same values
    (both reduced axes swapped, say) make one candidate whose hint names each of them; an order whose shape is the
    input's own (two equal sizes swapped) reshapes nothing and is left to the wrong-axes entries."""
    axes = names.split()
    first = inputs[0]
    found: list[tuple[Tensor, list[tuple[int, ...]]]] = []
    for order in itertools.permutations(range(first.ndim)):
        if [first.shape[k] for k in order] == list(first.shape):  # no reshape at all: axes read wrongly, elsewhere
            continue
        back = [order.index(j) for j in range(first.ndim)]
        try:
            value = fn(*(t.reshape([t.shape[k] for k in order]).permute(back) for t in inputs))
        except RuntimeError:
            continue
        same = next((orders for v, orders in found if v.shape == value.shape and _same(v, value)), None)
        if same is None:
            found.append((value, [order]))
        else:
            same.append(order)
    out = []
    for value, orders in found:
        laid = " or ".join(
            f"[{' '.join(axes[k] for k in o)}] (.reshape({', '.join(str(first.shape[k]) for k in o)}))" for o in orders
        )
        also = " (each gives these values)" if len(orders) > 1 else ""
        hint = (
            f"your value is the right one computed on {what} reshaped to {laid}{also}: reshape and view only "
            f"regroup the numbers in memory, they don't move axes. Move axes with .permute("
            f"{', '.join(map(str, orders[0]))}) or einops.rearrange, or reduce over the right dims of [{names}] "
            "without moving anything"
        )
        out.append(("reshaped_not_permuted", hint, value))
    return out


# --------------------------------------------------------------------------------------------
# Metrics: one example too few, a sum of per-coordinate ratios, cosines over the wrong axis
# --------------------------------------------------------------------------------------------
def l0_example_dropped(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    count = (acts != 0).to(acts.dtype).sum(-1)
    return [
        (
            f"example_dropped_{end}",
            f"average over every example of the batch: yours left out the {end} one ({sl}), an off-by-one slice",
            part.mean(0),
        )
        for end, sl, part in (("first", "acts[1:]", count[1:]), ("last", "acts[:-1]", count[:-1]))
    ]


def fve_sum_of_ratios(h: Tensor, h_rec: Tensor) -> list[tuple[str, str, Tensor]]:
    r, t = (h - h_rec).pow(2).sum(0), (h - h.mean(0)).pow(2).sum(0)  # [inst d_in]
    return [
        (
            "sum_of_ratios",
            "sum over d_in before dividing (a ratio of sums): yours is 1 - Σ_d (residual_d / total_d), one ratio "
            "per d_in coordinate, summed",
            1 - (r / t).sum(-1),
        )
    ]


def recovery_axes(W_feat: Tensor, W_dec: Tensor) -> list[tuple[str, str, Tensor]]:
    f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + 1e-8)
    d_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    i, s, d = d_hat.shape
    return [
        (
            "decoder_reshaped",
            "transpose the normalised decoder ([inst d_sae d_in] -> [inst d_in d_sae] with .transpose(-1, -2)): yours "
            "was reshaped, which regroups its entries instead of swapping the axes",
            torch.einsum("ids,idf->isf", d_hat.reshape(i, d, s), f_hat).amax(1),
        ),
        (
            "cosine_over_d_sae",
            "take the cosine over d_in (the axis both vectors live in): yours was over the d_sae axis "
            "(F.cosine_similarity's dim picked the latents of the broadcast [inst d_sae d_in feats])",
            torch.nn.functional.cosine_similarity(W_dec[..., None], W_feat[:, None], dim=1).amax(1),
        ),
        (
            "mean_feature_norm",
            "divide each feature column by its own norm: yours divided by the instance's mean feature norm",
            torch.einsum("isd,idf->isf", d_hat, W_feat / W_feat.norm(dim=1, keepdim=True).mean(-1, keepdim=True)).amax(
                1
            ),
        ),
    ]
