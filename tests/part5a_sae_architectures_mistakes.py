"""The catalogue of known mistakes for part 5a's checkers (`tests.part5a_sae_architectures`).

Each SAE forward below is the reference with one realistic mistake switched on (`bug`); the checkers evaluate
them on their own inputs and name the one the learner's output (or gradient) matches. Entries are
(code, hint, the first output the mistake shows in, bug).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5a_sae_architectures as ref_a

Mistake = tuple[str, str, str, dict]


def _decode(acts: Tensor, sae: Any, bug: dict) -> Tensor:
    W = sae.W_dec if bug.get("unnormalized_decoder") else sae.W_dec_normalized
    h_rec = torch.einsum("bis,isd->bid", acts, W)
    return h_rec if bug.get("no_b_dec_add") else h_rec + sae.b_dec


def _rec_loss(h_rec: Tensor, h: Tensor, bug: dict) -> Tensor:
    err = (h_rec - h).pow(2)
    return err.sum(-1) if bug.get("rec_sum") else err.mean(-1)


def _total(per: Tensor, bug: dict) -> Tensor:
    return {"mean_all": per.mean, "sum_all": per.sum, "swapped": lambda: per.sum(0).mean()}.get(
        bug.get("reduce", ""), lambda: per.mean(0).sum()
    )()


SHARED: list[Mistake] = [
    ("no_b_dec_subtraction", "subtract b_dec from h before the encoder", "acts", {"no_b_dec_subtraction": True}),
    (
        "unnormalized_decoder",
        "decode with self.W_dec_normalized, not self.W_dec",
        "h_reconstructed",
        {"unnormalized_decoder": True},
    ),
    ("no_b_dec_add", "add b_dec back after decoding", "h_reconstructed", {"no_b_dec_add": True}),
    ("rec_sum", "take the mean over d_in of the squared error, not the sum", "L_reconstruction", {"rec_sum": True}),
    (
        "loss_mean_inst",
        "sum over instances (each SAE gets its own gradient), don't average",
        "loss",
        {"reduce": "mean_all"},
    ),
    ("loss_sum_batch", "average over the batch, then sum over instances", "loss", {"reduce": "sum_all"}),
    (
        "loss_reductions_swapped",
        "average over the batch and sum over instances (you summed over the batch and averaged over instances)",
        "loss",
        {"reduce": "swapped"},
    ),
]


# --------------------------------------------------------------------------------------------
# Gated SAE
# --------------------------------------------------------------------------------------------
def gated_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    x = h if bug.get("no_b_dec_subtraction") else h - sae.b_dec
    proj = torch.einsum("bid,ids->bis", x, sae.W_enc)
    gate = proj + (0.0 if bug.get("no_b_gate") else sae.b_enc)
    scale = sae.r_mag if bug.get("r_mag_no_exp") else sae.r_mag.exp()
    scale = 1.0 if bug.get("no_r_mag") else scale
    mag_bias = 0.0 if bug.get("no_b_mag") else (sae.b_enc if bug.get("mag_bias_b_enc") else sae.b_mag)
    mag = (proj + mag_bias) * scale if bug.get("r_mag_after_bias") else proj * scale + mag_bias
    on = (gate > 0).to(h.dtype)
    acts = {
        "gate_as_acts": lambda: gate.relu(),
        "no_gate": lambda: mag.relu(),
        "mag_no_relu": lambda: on * mag,
        "swapped_paths": lambda: gate.relu() * (mag > 0).to(h.dtype),
    }.get(bug.get("acts", ""), lambda: on * mag.relu())()
    h_rec = _decode(acts, sae, bug)
    W_aux = sae.W_dec if bug.get("aux_unnormalized") else sae.W_dec_normalized
    b_aux = sae.b_dec
    if not bug.get("aux_not_detached"):
        W_aux = W_aux.detach()
        b_aux = b_aux if bug.get("aux_b_dec_not_detached") else b_aux.detach()
    gate_post = gate.relu()
    aux_in = {
        "acts": acts,
        "indicator": on,
        "pre": gate,
        "detached": gate_post.detach(),
    }.get(bug.get("aux_input", ""), gate_post)
    via_gate = torch.einsum("bis,isd->bid", aux_in, W_aux)
    if not bug.get("aux_no_b_dec"):
        via_gate = via_gate + b_aux
    aux_err = (via_gate - h).pow(2)
    sp_in = gate_post.detach() if bug.get("sparsity_detached") else gate_post
    L_sp = {
        "acts": lambda: acts.abs().sum(-1),
        "abs_gate": lambda: gate.abs().sum(-1),
        "mag": lambda: mag.relu().sum(-1),
        "mean": lambda: gate_post.mean(-1),
    }.get(bug.get("sparsity", ""), lambda: sp_in.sum(-1))()
    coeff = sae.sparsity_coeff
    if bug.get("coeff_in_L_sparsity"):
        L_sp, coeff = coeff * L_sp, 1.0
    d = {
        "L_reconstruction": _rec_loss(h_rec, h, bug),
        "L_sparsity": L_sp,
        "L_aux": aux_err.sum(-1) if bug.get("aux_sum") else aux_err.mean(-1),
    }
    if bug.get("aux_mean_inst"):
        return d, (d["L_reconstruction"] + coeff * d["L_sparsity"]).mean(0).sum() + d["L_aux"].mean(), acts, h_rec
    per = {
        "no_aux": lambda: d["L_reconstruction"] + coeff * d["L_sparsity"],
        "coeff_on_aux": lambda: d["L_reconstruction"] + coeff * (d["L_sparsity"] + d["L_aux"]),
        "no_coeff": lambda: d["L_reconstruction"] + d["L_sparsity"] + d["L_aux"],
    }.get(bug.get("terms", ""), lambda: d["L_reconstruction"] + coeff * d["L_sparsity"] + d["L_aux"])()
    return d, _total(per, bug), acts, h_rec


GATED_MISTAKES: list[Mistake] = [
    *SHARED,
    (
        "gate_as_acts",
        "acts_post is the *magnitude* path, switched on and off by the gate: 1[π_gate > 0] · ReLU(π_mag)",
        "acts",
        {"acts": "gate_as_acts"},
    ),
    ("no_gate", "multiply the magnitude by the gate indicator 1[π_gate > 0]", "acts", {"acts": "no_gate"}),
    ("mag_no_relu", "apply a ReLU to the magnitude path: 1[π_gate > 0] · ReLU(π_mag)", "acts", {"acts": "mag_no_relu"}),
    (
        "swapped_paths",
        "the gate decides *whether* (indicator of π_gate > 0), the magnitude path *how much* (ReLU(π_mag)): "
        "you swapped them",
        "acts",
        {"acts": "swapped_paths"},
    ),
    ("r_mag_no_exp", "scale W_enc by exp(r_mag), not r_mag", "acts", {"r_mag_no_exp": True}),
    (
        "no_r_mag",
        "the magnitude path scales each latent's projection by exp(r_mag): π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"no_r_mag": True},
    ),
    (
        "coeff_in_L_sparsity",
        "L_sparsity is the plain ‖ReLU(π_gate)‖₁; multiply by sparsity_coeff only in the loss",
        "L_sparsity",
        {"coeff_in_L_sparsity": True},
    ),
    (
        "aux_mean_inst",
        "L_aux is part of the per-example loss: average it over the batch and sum over instances like the rest",
        "loss",
        {"aux_mean_inst": True},
    ),
    (
        "r_mag_after_bias",
        "exp(r_mag) scales the projection only: π_mag = (x @ W_enc) · exp(r_mag) + b_mag",
        "acts",
        {"r_mag_after_bias": True},
    ),
    ("no_b_mag", "add b_mag to the magnitude pre-activation", "acts", {"no_b_mag": True}),
    (
        "mag_bias_b_enc",
        "the magnitude path has its own bias b_mag; b_enc is the gate's",
        "acts",
        {"mag_bias_b_enc": True},
    ),
    ("no_b_gate", "add b_enc (the gate bias) to the gate pre-activation", "acts", {"no_b_gate": True}),
    ("sparsity_on_acts", "penalise the gate path, ReLU(π_gate), not acts_post", "L_sparsity", {"sparsity": "acts"}),
    ("sparsity_abs_gate", "penalise ReLU(π_gate), not |π_gate|", "L_sparsity", {"sparsity": "abs_gate"}),
    (
        "sparsity_on_mag",
        "penalise the gate path ReLU(π_gate), not the magnitude path",
        "L_sparsity",
        {"sparsity": "mag"},
    ),
    ("sparsity_mean", "sum ReLU(π_gate) over the latents, don't average", "L_sparsity", {"sparsity": "mean"}),
    (
        "aux_is_rec",
        "L_aux decodes ReLU(π_gate), not acts_post (that is L_reconstruction again)",
        "L_aux",
        {"aux_input": "acts"},
    ),
    (
        "aux_indicator",
        "L_aux decodes ReLU(π_gate), not the indicator 1[π_gate > 0]",
        "L_aux",
        {"aux_input": "indicator"},
    ),
    ("aux_no_relu", "L_aux decodes ReLU(π_gate), not π_gate itself", "L_aux", {"aux_input": "pre"}),
    ("aux_no_b_dec", "add the (detached) b_dec to the auxiliary reconstruction", "L_aux", {"aux_no_b_dec": True}),
    (
        "aux_unnormalized",
        "decode the auxiliary reconstruction with the detached *normalised* decoder",
        "L_aux",
        {"aux_unnormalized": True},
    ),
    ("aux_sum", "L_aux is a mean over d_in, like L_reconstruction", "L_aux", {"aux_sum": True}),
    ("no_aux_in_loss", "add L_aux to the per-example loss before averaging", "loss", {"terms": "no_aux"}),
    (
        "coeff_on_aux",
        "only L_sparsity is weighted by sparsity_coeff: L_rec + coeff · L_sparsity + L_aux",
        "loss",
        {"terms": "coeff_on_aux"},
    ),
    ("no_coeff", "multiply L_sparsity by self.sparsity_coeff (one value per instance)", "loss", {"terms": "no_coeff"}),
    (
        "aux_not_detached",
        "the auxiliary reconstruction must use W_dec_normalized.detach() and b_dec.detach(): L_aux should train "
        "the gate, not the decoder",
        "grad",
        {"aux_not_detached": True},
    ),
    (
        "aux_b_dec_not_detached",
        "detach b_dec too in the auxiliary reconstruction (you detached only the decoder)",
        "grad",
        {"aux_b_dec_not_detached": True},
    ),
    (
        "aux_gate_detached",
        "don't detach ReLU(π_gate) in L_aux: the auxiliary loss exists to give the gate a gradient",
        "grad",
        {"aux_input": "detached"},
    ),
    (
        "sparsity_detached",
        "don't detach ReLU(π_gate) in L_sparsity: the penalty must reach the gate",
        "grad",
        {"sparsity_detached": True},
    ),
]


# --------------------------------------------------------------------------------------------
# Heaviside and JumpReLU: forward values and pseudo-derivatives, as functions of (x, θ, ε)
# --------------------------------------------------------------------------------------------
def rect(u: Tensor, width: float = 0.5) -> Tensor:
    return (u.abs() < width).to(u.dtype)


StepFn = Callable[[Tensor, Tensor, float], Tensor]

# (code, hint, value)
HEAVISIDE_FORWARD: list[tuple[str, str, StepFn]] = [
    (
        "forward_no_threshold",
        "compare x with the threshold, not with 0: 1[x > θ]",
        lambda x, th, bw: (x > 0).to(x.dtype),
    ),
    (
        "forward_inverted",
        "the step is on where x is *above* the threshold: 1[x > θ]",
        lambda x, th, bw: (x < th).to(x.dtype),
    ),
    (
        "forward_is_jumprelu",
        "Heaviside returns the step 1[x > θ] itself, not x · 1[x > θ]",
        lambda x, th, bw: x * (x > th),
    ),
    (
        "forward_rect",
        "the rectangle K is for the backward pass only; the forward pass is the exact step 1[x > θ]",
        lambda x, th, bw: rect((x - th) / bw),
    ),
]
JUMPRELU_FORWARD: list[tuple[str, str, StepFn]] = [
    ("forward_relu", "JumpReLU zeroes x below the threshold θ, not below 0: x · 1[x > θ]", lambda x, th, bw: x.relu()),
    ("forward_shifted", "return x itself above the threshold, not x - θ", lambda x, th, bw: (x - th) * (x > th)),
    (
        "forward_is_heaviside",
        "JumpReLU returns x · 1[x > θ], not the step alone",
        lambda x, th, bw: (x > th).to(x.dtype),
    ),
    ("forward_inverted", "keep x where it is *above* the threshold: x · 1[x > θ]", lambda x, th, bw: x * (x < th)),
]

HEAVISIDE_GRAD_X: list[tuple[str, str, StepFn]] = [
    (
        "grad_x_passthrough",
        "the step has no useful gradient in x: return zeros (or None) for x",
        lambda x, th, bw: torch.ones_like(x),
    ),
    (
        "grad_x_rect",
        "only the threshold gets a pseudo-derivative; x gets 0",
        lambda x, th, bw: rect((x - th) / bw) / bw,
    ),
    ("grads_swapped", "return the gradients in the order of forward's inputs: (grad_x, grad_threshold, None)", None),
]
JUMPRELU_GRAD_X: list[tuple[str, str, StepFn]] = [
    ("grad_x_ones", "∂/∂x is 1[x > θ]: zero where the output is zero", lambda x, th, bw: torch.ones_like(x)),
    ("grad_x_relu", "∂/∂x is 1[x > θ], not 1[x > 0]", lambda x, th, bw: (x > 0).to(x.dtype)),
    (
        "grad_x_includes_rect",
        "∂/∂x is just 1[x > θ] (see the table); the pseudo-derivative of the step goes to θ only",
        lambda x, th, bw: (x > th).to(x.dtype) + x * rect((x - th) / bw) / bw,
    ),
    (
        "grad_x_missing",
        "return 1[x > θ] · grad_output as the gradient for x, not None or zeros",
        lambda x, th, bw: torch.zeros_like(x),
    ),
    ("grads_swapped", "return the gradients in the order of forward's inputs: (grad_x, grad_threshold, None)", None),
    (
        "grad_x_includes_rect",
        "∂/∂x is just 1[x > θ] (see the table); the pseudo-derivative of the step goes to θ only",
        lambda x, th, bw: (x > th).to(x.dtype) + th * rect((x - th) / bw) / bw,
    ),
    (
        "grad_x_includes_rect",
        "∂/∂x is just 1[x > θ] (see the table); the pseudo-derivative of the step goes to θ only",
        lambda x, th, bw: (x > th).to(x.dtype) - th * rect((x - th) / bw) / bw,
    ),
]


def threshold_mistakes(factor: Callable[[Tensor, Tensor], Tensor | float]) -> list[tuple[str, str, StepFn]]:
    """Mutants of -(factor/ε) K((x - θ)/ε) for the gradient with respect to θ."""
    return [
        (
            "grad_sign",
            "the pseudo-derivative with respect to θ is negative: raising θ switches the output off",
            lambda x, th, bw: factor(x, th) * rect((x - th) / bw) / bw,
        ),
        ("no_bandwidth", "divide by the bandwidth ε", lambda x, th, bw: -factor(x, th) * rect((x - th) / bw)),
        (
            "bw_multiplied",
            "divide by the bandwidth ε, don't multiply",
            lambda x, th, bw: -factor(x, th) * rect((x - th) / bw) * bw,
        ),
        (
            "rect_width",
            "the rectangle K(u) is 1 for |u| < 1/2, not |u| < 1",
            lambda x, th, bw: -factor(x, th) * rect((x - th) / bw, 1.0) / bw,
        ),
        (
            "rect_unscaled",
            "K takes u = (x - θ)/ε: divide x - θ by the bandwidth inside K",
            lambda x, th, bw: -factor(x, th) * rect(x - th) / bw,
        ),
        (
            "rect_not_centered",
            "K takes u = (x - θ)/ε, centred on the threshold, not x/ε",
            lambda x, th, bw: -factor(x, th) * rect(x / bw) / bw,
        ),
        (
            "no_threshold_grad",
            "return the pseudo-derivative as the threshold's gradient (not None or zeros)",
            lambda x, th, bw: torch.zeros_like(x),
        ),
        (
            "rect_halved",
            "K(u) is 1 inside the window |u| < 1/2, not 1/2: the pseudo-derivative there is -(factor/ε)",
            lambda x, th, bw: -factor(x, th) * rect((x - th) / bw) / (2 * bw),
        ),
    ]


HEAVISIDE_GRAD_TH = threshold_mistakes(lambda x, th: 1.0)
JUMPRELU_GRAD_TH = [
    *threshold_mistakes(lambda x, th: th),
    (
        "no_theta_factor",
        "the JumpReLU pseudo-derivative has a factor θ: -(θ/ε) K((x - θ)/ε)",
        lambda x, th, bw: -rect((x - th) / bw) / bw,
    ),
    ("x_factor", "the factor is θ, not x: -(θ/ε) K((x - θ)/ε)", lambda x, th, bw: -x * rect((x - th) / bw) / bw),
    ("x_factor", "the factor is -θ, not +x: -(θ/ε) K((x - θ)/ε)", lambda x, th, bw: x * rect((x - th) / bw) / bw),
]
HEAVISIDE_GRAD_TH.append(
    (
        "theta_factor",
        "Heaviside's pseudo-derivative has no factor θ (JumpReLU's has): -(1/ε) K((x - θ)/ε)",
        lambda x, th, bw: -th * rect((x - th) / bw) / bw,
    )
)


# --------------------------------------------------------------------------------------------
# JumpReLU SAE
# --------------------------------------------------------------------------------------------
def jumprelu_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    x = h if bug.get("no_b_dec_subtraction") else h - sae.b_dec
    pre = torch.einsum("bid,ids->bis", x, sae.W_enc) + (0.0 if bug.get("no_b_enc") else sae.b_enc)
    theta = sae.log_threshold if bug.get("no_exp") else sae.log_threshold.exp()
    theta = theta.detach() if bug.get("threshold_detached") else theta
    theta = theta.expand_as(pre)
    bw = sae.cfg.jumprelu_init_threshold if bug.get("wrong_bandwidth") else sae.cfg.jumprelu_bandwidth
    acts = {
        "relu": lambda: pre.relu(),
        "indicator": lambda: ref_a.Heaviside.apply(pre, theta, bw),
        "via_heaviside": lambda: pre * ref_a.Heaviside.apply(pre, theta, bw),
    }.get(bug.get("acts", ""), lambda: ref_a.JumpReLU.apply(pre, theta, bw))()
    h_rec = _decode(acts, sae, bug)
    L_sp = {
        "l1": lambda: acts.abs().sum(-1),
        "mean": lambda: ref_a.Heaviside.apply(pre, theta, bw).mean(-1),
        "count": lambda: (acts > 0).to(h.dtype).sum(-1),
        "of_acts": lambda: ref_a.Heaviside.apply(acts, theta, bw).sum(-1),
        "log_threshold": lambda: ref_a.Heaviside.apply(pre, sae.log_threshold.expand_as(pre), bw).sum(-1),
    }.get(bug.get("sparsity", ""), lambda: ref_a.Heaviside.apply(pre, theta, bw).sum(-1))()
    coeff = sae.sparsity_coeff
    if bug.get("coeff_in_L_sparsity"):
        L_sp, coeff = coeff * L_sp, 1.0
    d = {"L_reconstruction": _rec_loss(h_rec, h, bug), "L_sparsity": L_sp}
    if bug.get("sparsity_batch_sum"):
        return d, d["L_reconstruction"].mean(0).sum() + (coeff * L_sp).sum(), acts, h_rec
    per = d["L_reconstruction"] + d["L_sparsity"] if bug.get("no_coeff") else d["L_reconstruction"] + coeff * L_sp
    return d, _total(per, bug), acts, h_rec


JUMPRELU_MISTAKES: list[Mistake] = [
    *SHARED,
    ("no_exp", "the threshold is exp(log_threshold), not log_threshold", "acts", {"no_exp": True}),
    ("plain_relu", "apply JumpReLU with the threshold, not a plain ReLU", "acts", {"acts": "relu"}),
    (
        "acts_are_indicator",
        "acts_post is JumpReLU(pre) = pre · 1[pre > θ], not the indicator",
        "acts",
        {"acts": "indicator"},
    ),
    ("no_b_enc", "add b_enc to the pre-activation", "acts", {"no_b_enc": True}),
    (
        "sparsity_l1",
        "the JumpReLU penalty counts active latents (L0), it doesn't sum their values",
        "L_sparsity",
        {"sparsity": "l1"},
    ),
    ("sparsity_mean", "count the active latents (sum over d_sae), don't average", "L_sparsity", {"sparsity": "mean"}),
    (
        "coeff_in_L_sparsity",
        "L_sparsity is the plain count of active latents; multiply by sparsity_coeff only in the loss",
        "L_sparsity",
        {"coeff_in_L_sparsity": True},
    ),
    (
        "sparsity_threshold_mismatch",
        "count with the same threshold as acts_post: Heaviside.apply(pre, exp(log_threshold), bandwidth), "
        "not log_threshold",
        "L_sparsity",
        {"sparsity": "log_threshold"},
    ),
    ("no_coeff", "multiply L_sparsity by self.sparsity_coeff (one value per instance)", "loss", {"no_coeff": True}),
    (
        "sparsity_batch_sum",
        "average the sparsity term over the batch too: (L_reconstruction + coeff · L_sparsity).mean(0).sum()",
        "loss",
        {"sparsity_batch_sum": True},
    ),
    (
        "acts_via_heaviside",
        "compute acts_post with JumpReLU.apply(pre, θ, bandwidth): pre · Heaviside(pre) has the right values but "
        "gives θ the pseudo-derivative with a factor x instead of θ",
        "grad",
        {"acts": "via_heaviside"},
    ),
    (
        "threshold_grad",
        "θ gets no gradient from L_sparsity: counted without Heaviside (acts_post > 0), θ detached in that call "
        "(θ.detach(), .data), or not passed as its threshold (pre - θ, 0): use Heaviside.apply(pre, θ, ε).sum(-1)",
        "grad",
        {"sparsity": "count"},
    ),
    (
        "l0_of_acts",
        "apply Heaviside to the pre-activations, not to acts_post (below θ acts_post is 0, so the "
        "pseudo-derivative sees the wrong values)",
        "grad",
        {"sparsity": "of_acts"},
    ),
    (
        "wrong_bandwidth",
        "the bandwidth is cfg.jumprelu_bandwidth (you used another config field)",
        "grad",
        {"wrong_bandwidth": True},
    ),
    (
        "threshold_detached",
        "don't detach the threshold: the straight-through gradient must reach log_threshold",
        "grad",
        {"threshold_detached": True},
    ),
]


# --------------------------------------------------------------------------------------------
# TopK SAE
# --------------------------------------------------------------------------------------------
def _keep_top(x: Tensor, k: int, dim: int = -1, largest: bool = True) -> Tensor:
    top = x.topk(k, dim=dim, largest=largest)
    return torch.zeros_like(x).scatter(dim, top.indices, top.values)


def topk_forward(sae: Any, h: Tensor, **bug: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    x = h if bug.get("no_b_dec_subtraction") else h - sae.b_dec
    pre = torch.einsum("bid,ids->bis", x, sae.W_enc) + sae.b_enc
    post = pre if bug.get("no_relu") else pre.relu()
    k = sae.cfg.k + bug.get("k_offset", 0)
    mode = bug.get("acts", "")
    if mode == "by_abs":
        idx = pre.abs().topk(k, dim=-1).indices
        acts = torch.zeros_like(pre).scatter(-1, idx, pre.gather(-1, idx))
    elif mode == "smallest":
        acts = _keep_top(post, k, largest=False)
    elif mode == "no_topk":
        acts = post
    elif mode == "batch_axis":
        acts = _keep_top(post, k, dim=0)
    elif mode == "across_instances":
        acts = _keep_top(post.flatten(1), k).view_as(post)
    elif mode == "kthvalue":
        acts = post * (pre >= pre.kthvalue(k, dim=-1, keepdim=True).values)
    elif mode == "mask":
        acts = torch.zeros_like(post).scatter(-1, post.topk(k, dim=-1).indices, 1.0)
    elif mode == "detached":
        acts = _keep_top(post, k).detach()
    else:
        acts = _keep_top(post, k)
    h_rec = _decode(acts, sae, bug)
    d = {"L_reconstruction": _rec_loss(h_rec, h, bug), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
    penalty = {"l1": acts.sum(-1), "l0": d["L_sparsity"]}.get(bug.get("sparsity_in_loss"))
    per = d["L_reconstruction"] + (0.0 if penalty is None else sae.sparsity_coeff * penalty)
    return d, _total(per, bug), acts, h_rec


TOPK_MISTAKES: list[Mistake] = [
    *SHARED,
    ("no_relu", "apply the ReLU: a negative value among the top k must become 0", "acts", {"no_relu": True}),
    ("too_many", "keep exactly the k largest: topk(k), not k + 1", "acts", {"k_offset": 1}),
    (
        "too_few",
        "keep the k largest: topk(k), not k - 1 (or a strict comparison with the k-th value)",
        "acts",
        {"k_offset": -1},
    ),
    ("by_abs", "rank by the (ReLU'd) values themselves, not by their absolute values", "acts", {"acts": "by_abs"}),
    ("smallest", "keep the k *largest* values (topk's default largest=True)", "acts", {"acts": "smallest"}),
    ("no_topk", "keep only each example's k largest activations and zero the rest", "acts", {"acts": "no_topk"}),
    (
        "topk_batch_axis",
        "take the top k over the latents (dim=-1) of each example, not over the batch",
        "acts",
        {"acts": "batch_axis"},
    ),
    (
        "topk_across_instances",
        "take the top k within each instance: topk over d_sae only, not over instances and latents together",
        "acts",
        {"acts": "across_instances"},
    ),
    ("mask_not_values", "keep the values themselves at the top-k positions, not ones", "acts", {"acts": "mask"}),
    (
        "kthvalue_smallest",
        "keeps d_sae-k+1 per example, as a cut at kthvalue(k) (k-th smallest) does; cut at topk(k).values[..., -1:]",
        "acts",
        {"acts": "kthvalue"},
    ),
    (
        "sparsity_in_loss",
        "the TopK loss is the reconstruction loss alone: sparsity is enforced by the top-k, not by a penalty",
        "loss",
        {"sparsity_in_loss": "l1"},
    ),
    (
        "sparsity_in_loss",
        "the TopK loss is the reconstruction loss alone: sparsity is enforced by the top-k, not by a penalty",
        "loss",
        {"sparsity_in_loss": "l0"},
    ),
    ("acts_detached", "don't detach the kept values: the encoder learns through them", "grad", {"acts": "detached"}),
]


# --------------------------------------------------------------------------------------------
# AuxK
# --------------------------------------------------------------------------------------------
def auxk_variant(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int, **bug: Any) -> Tensor:
    """The reference auxk_loss with one mistake."""
    x = pre.relu() if bug.get("relu") else pre
    mask = {"first": dead[:1].expand_as(dead), "inverted": ~dead}.get(bug.get("mask", ""), dead)
    fill = torch.zeros_like(x) if bug.get("mask_zero") else torch.full_like(x, -torch.inf)
    masked = x if bug.get("live") else torch.where(mask, x, fill)
    score = x.abs() if bug.get("by_abs") else x
    score = score if bug.get("live") else torch.where(mask, score, fill)
    if bug.get("all_dead"):
        acts = torch.where(dead, x, torch.zeros_like(x))
    elif bug.get("top_all"):  # top-k over every latent, then the dead ones among them kept
        top = x.topk(k_aux, dim=-1)
        acts = torch.zeros_like(x).scatter(-1, top.indices, top.values * mask.expand_as(x).gather(-1, top.indices))
    else:
        dim = 0 if bug.get("batch_axis") else -1
        k = k_aux + bug.get("k_offset", 0)
        top = score.topk(min(k, score.shape[dim]), dim=dim)
        values = masked.gather(dim, top.indices)
        values = torch.where(values.isfinite(), values, torch.zeros_like(values))
        base = pre if bug.get("into_pre") else torch.zeros_like(x)
        acts = base.scatter(dim, top.indices, values)
    rec = torch.einsum("bis,isd->bid", acts, W_dec)
    if bug.get("norm"):
        return (residual - rec).norm(dim=-1)
    err = (residual + rec if bug.get("sign") else residual - rec).pow(2)
    return err.sum(-1) if bug.get("sum") else err.mean(-1)


AUXK_MISTAKES: list[tuple[str, str, dict]] = [
    (
        "dropped_negatives",
        "the dead latents' negative pre-activations must take part: no ReLU or clamp(min=0) on pre or on the chosen "
        "values, and live latents masked with -inf, not 0 (a live latent at 0 beats every negative dead one)",
        {"relu": True},
    ),
    ("used_live_latents", "only dead latents take part: mask the live ones out before the top-k", {"live": True}),
    ("inverted_mask", "keep the *dead* latents (where dead is True) and mask out the live ones", {"mask": "inverted"}),
    (
        "first_instance_mask",
        "each instance has its own dead latents: use the whole [inst d_sae] mask, not instance 0's",
        {"mask": "first"},
    ),
    ("sum_over_d_in", "take the mean over d_in, not the sum", {"sum": True}),
    ("all_dead_latents", "keep only the k_aux largest dead pre-activations per example", {"all_dead": True}),
    (
        "topk_before_mask",
        "mask the live latents out *before* the top-k: taking the top k_aux over all latents and then keeping the "
        "dead ones among them leaves fewer than k_aux dead latents where live ones are larger",
        {"top_all": True},
    ),
    ("k_off_by_one", "keep exactly k_aux latents: topk(k_aux)", {"k_offset": 1}),
    ("by_abs", "rank the dead latents by their pre-activations, not by absolute values", {"by_abs": True}),
    (
        "wrong_axis",
        "take the top k_aux over the latents of each example (dim=-1), not over the batch",
        {"batch_axis": True},
    ),
    (
        "scattered_into_pre",
        "scatter the chosen values into zeros (torch.zeros_like(pre)), not into pre itself",
        {"into_pre": True},
    ),
    ("sign_flip", "the loss is (residual - decoded)², not (residual + decoded)²", {"sign": True}),
    (
        "norm_not_mse",
        "the loss is the mean over d_in of the squared error, not the Euclidean norm of the error",
        {"norm": True},
    ),
]


# --------------------------------------------------------------------------------------------
# Metrics: functions of the checker's inputs
# --------------------------------------------------------------------------------------------
def l0_mistakes(acts: Tensor) -> list[tuple[str, str, Tensor]]:
    nz = (acts != 0).to(acts.dtype)
    return (
        [
            (
                "fraction",
                "count latents (sum over d_sae), then average over the batch: not a fraction of latents",
                nz.mean((0, 2)),
            ),
            ("l1", "count non-zero latents, don't sum their values", acts.sum(-1).mean(0)),
            ("batch_sum", "average the count over the batch, don't sum it", nz.sum((0, 2))),
            (
                "counted_zeros",
                "count the *non-zero* latents (acts != 0), not the zeros",
                (acts == 0).to(acts.dtype).sum(-1).mean(0),
            ),
            (
                "axes_swapped",
                "sum over latents (d_sae), average over the batch, not the other way round",
                nz.sum(0).mean(-1),
            ),
            (
                "alive_count",
                "count active latents per example, then average: not the number of latents alive on the batch",
                (acts.abs().sum(0) != 0).to(acts.dtype).sum(-1),
            ),
            ("max_not_mean", "average the count over the batch, not its maximum", nz.sum(-1).amax(0)),
            (
                "any_active",
                "count *how many* latents are non-zero in each example (sum over d_sae), not whether any is",
                nz.amax(-1).mean(0),
            ),
        ]
        + [
            (
                "thresholded",
                "count every non-zero activation, however small (acts != 0), not only those above a threshold",
                (acts > t).to(acts.dtype).sum(-1).mean(0),
            )
            for t in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1)
        ]
        + [("median", "average the count over the batch (.mean(0)), not its median", nz.sum(-1).median(0).values)]
    )


def fve_mistakes(h: Tensor, h_rec: Tensor) -> list[tuple[str, str, Tensor]]:
    resid = (h - h_rec).pow(2)
    centred = (h - h.mean(0)).pow(2)
    return [
        (
            "not_centered",
            "measure the variance around the batch mean: (h - h.mean(0))²",
            1 - resid.sum((0, 2)) / h.pow(2).sum((0, 2)),
        ),
        ("fvu", "that is the fraction *unexplained*: return 1 minus it", resid.sum((0, 2)) / centred.sum((0, 2))),
        ("per_dim", "sum over d_in before dividing (a ratio of sums)", (1 - resid.sum(0) / centred.sum(0)).mean(-1)),
        (
            "ratio_of_means",
            "a ratio of sums over batch and d_in, not a mean of per-example ratios",
            1 - (resid.sum(-1) / centred.sum(-1)).mean(0),
        ),
        (
            "centred_wrong_axis",
            "centre h on the batch mean (mean over dim 0), not the mean over d_in",
            1 - resid.sum((0, 2)) / (h - h.mean(-1, keepdim=True)).pow(2).sum((0, 2)),
        ),
        (
            "centred_scalar_mean",
            "centre each input dimension on its own batch mean, h.mean(0), not on one mean over batch and d_in",
            1 - resid.sum((0, 2)) / (h - h.mean((0, 2), keepdim=True)).pow(2).sum((0, 2)),
        ),
        (
            "centred_scalar_mean",
            "centre each input dimension on its own batch mean, h.mean(0), not on one mean of the whole tensor",
            1 - resid.sum((0, 2)) / (h - h.mean()).pow(2).sum((0, 2)),
        ),
        (
            "unbiased_variance",
            "torch.var divides by n - 1 by default while your residual divides by n: use unbiased=False, or sums",
            1 - resid.mean((0, 2)) / h.var(0).mean(-1),
        ),
        (
            "centred_scalar_mean",
            "centre each input dimension on its own batch mean, h.mean(0): h.var(dim=(0, 2)) centres on one mean "
            "over batch and d_in",
            1 - resid.mean((0, 2)) / h.var(dim=(0, 2)),
        ),
        (
            "sum_over_variance",
            "divide sums by sums (or means by means): Σ over the batch of squared residuals divided by a variance "
            "(a mean over the batch) is off by about the batch size",
            1 - resid.sum((0, 2)) / h.var(0).sum(-1),
        ),
        (
            "sum_over_variance",
            "divide sums by sums (or means by means): Σ over the batch of squared residuals divided by a variance "
            "(a mean over the batch) is off by about the batch size",
            1 - resid.sum((0, 2)) / h.var(0, unbiased=False).sum(-1),
        ),
        (
            "variance_ratio",
            "FVE is 1 - Σ(h - h_rec)² / Σ(h - mean(h))², not var(h_rec) / var(h): that ignores whether h_rec matches h",
            (h_rec - h_rec.mean(0)).pow(2).sum((0, 2)) / centred.sum((0, 2)),
        ),
        (
            "abs_residual",
            "square the residual: Σ (h - h_rec)², not Σ |h - h_rec|",
            1 - (h - h_rec).abs().sum((0, 2)) / centred.sum((0, 2)),
        ),
        (
            "pooled_variance",
            "one denominator per instance: Σ over batch and d_in of that instance's (h - mean(h))², not summed over "
            "every instance too",
            1 - resid.sum((0, 2)) / centred.sum(),
        ),
        (
            "variance_of_reconstruction",
            "divide by the variance of h (the input), not of h_reconstructed",
            1 - resid.sum((0, 2)) / (h_rec - h_rec.mean(0)).pow(2).sum((0, 2)),
        ),
        (
            "variance_of_reconstruction",
            "the denominator is Σ(h - mean(h))², the input's own spread: h_rec - mean(h) puts the reconstruction in",
            1 - resid.sum((0, 2)) / (h_rec - h.mean(0)).pow(2).sum((0, 2)),
        ),
        (
            "wrong_axes",
            "sum over batch and d_in (dims 0 and 2), one value per instance: not over batch and instances (0, 1)",
            (1 - resid.sum((0, 1)) / centred.sum((0, 1))) if h.shape[1] == h.shape[2] else None,
        ),
    ]


def metric_extra(kind: str, x: Tensor) -> list[tuple[str, str, Tensor]]:
    """More dead-latent (x = acts) and recovery (x = cos [inst d_sae feats]) mistakes, from a fresh trial."""
    pooled = lambda: (x == 0).all(0).all(0).to(x.dtype).mean().expand(x.shape[1])
    dead = [("pooled_instances", "dead is per instance: (acts == 0).all(dim=0), not over instances too", pooled)]
    soft = (
        "softmax_weighted",
        "the max over latents (amax), not a softmax-weighted mean",
        lambda: (x.softmax(1) * x).sum(1),
    )
    angle = ("angle", "return the best match's cosine, not its angle (arccos)", lambda: x.amax(1).clamp(-1, 1).arccos())
    return [(c, h, f()) for c, h, f in (dead if kind == "dead" else [soft, angle])]
