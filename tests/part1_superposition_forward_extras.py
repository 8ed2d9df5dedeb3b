"""Forward-pass readings shared by parts 1 and 2.

* `instances_mixed` / `mixing_source`: a probe that changes instance 0's input (and/or parameters) and watches the
  other instances' outputs. Each instance is its own model, so any change there means the instances are mixed: by the
  input (an einsum or matmul that sums over `inst`, or the input's instances reordered), by another instance's weights
  or by another instance's b_final.
* `random_or_input_mixed`: part 1's first reading of a wrong forward pass: a random one, or one whose other instances
  follow instance 0's input (part 1's own readings name weights and biases moved along the instance axis).
* `config_mutants`: the forward pass with the model's importance or feature_probability multiplied into its input,
  its output or b_final: both belong to the loss and to generate_batch, never to the forward pass.
* `input_mask_mutants` / `zero_features_check` (parts 1 and 2): the output masked by the input, 0 wherever a
  feature is absent (x == 0) or not positive (`* (x > 0)`, `* (x != 0)`, `torch.where(x > 0, out, 0)`), or only its
  weights term masked (ReLU(WᵀWx · (x != 0) + b)): an absent feature's output is ReLU(b_final + interference), not 0
  or ReLU(b_final). Part 1's main input has no exact zeros, so a second call zeroes a third of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import expect_matches
from tests.part1_superposition_loss_relations import forward_tensor_mutants
from tests.part1_superposition_probes import random_forward


def instances_mixed(model: torch.nn.Module, params: list[str], x: Tensor, sources=("x", "params")) -> bool:
    """Changing instance 0's input (source "x") and/or the parameters in `sources` changes another instance's
    output."""
    try:
        with torch.no_grad():
            out1 = model(x)
            x2 = x.clone()
            if "x" in sources:
                x2[..., 0, :] = x2[..., 0, :].flip(0) * 0.5 + 0.25
            changed = [name for name in params if "params" in sources or name in sources]
            saved = {name: getattr(model, name).detach().clone() for name in changed}
            for name in changed:
                getattr(model, name)[0].mul_(-1.5).add_(0.3)
            out2 = model(x2)
            for name in changed:
                getattr(model, name).copy_(saved[name])
        return not torch.allclose(out1[..., 1:, :], out2[..., 1:, :], rtol=1e-5, atol=1e-6)
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return False


MIXED = (
    "instances_mixed",
    "changing the input and weights of instance 0 changes the output of other instances: keep the `inst` axis on "
    "both inputs of every einsum ('... inst feats, inst d feats -> ... inst d'), never sum over it",
)
INPUT_MIXED = (
    "instances_mixed",
    "changing the input of instance 0 changes the output of other instances: each instance reads only its own "
    "features x[..., inst, :] (no sum over `inst` in an einsum or matmul, no reordering of x's instance axis such as "
    "x.flip(-2) or a transpose): keep the `inst` axis on both inputs of every einsum "
    "('... inst feats, inst d feats -> ... inst d')",
)


def mixing_source(model: torch.nn.Module, params: list[str], x: Tensor) -> tuple[str, str] | None:
    """(code, hint) naming what carries instance 0 into other instances' outputs: its input (an einsum summing over
    `inst`), its b_final, or its weights (another instance's weights used)."""
    if not instances_mixed(model, params, x):
        return None
    if instances_mixed(model, params, x, sources=("x",)):
        return MIXED
    weights = [name for name in params if name != "b_final" and instances_mixed(model, params, x, sources=(name,))]
    if weights:
        names = " and ".join(weights)
        return "weights_other_instance", (
            f"changing instance 0's {names} changes the output of other instances, while changing its input does not: "
            f"other instances compute with instance 0's {names} (a mean, roll or flip of {names} along the instance "
            f"axis, or {weights[0]}[0] for all). Each instance uses its own {names}[inst]"
        )
    if "b_final" in params and instances_mixed(model, params, x, sources=("b_final",)):
        return "bias_other_instance", (
            "changing b_final of instance 0 changes the output of other instances, while its input and weights do "
            "not: each instance adds its own b_final[inst] (no roll, flip or mean of b_final along the instance axis)"
        )
    return MIXED


def random_or_input_mixed(model: torch.nn.Module, x: Tensor) -> tuple[str, str] | None:
    """Part 1: a random forward pass, or one where instance 0's input reaches the other instances' outputs."""
    found = random_forward(model, x)
    if found is None and x.shape[-2] > 1 and instances_mixed(model, ["W", "b_final"], x, sources=("x",)):
        return INPUT_MIXED
    return found


def config_mutants(
    x: Tensor, W: Tensor, b: Tensor, p: Tensor, imp: Tensor, two_layer: Callable[..., Tensor]
) -> list[tuple[str, str, Tensor]]:
    """Part 1's forward catalogue entries with importance or feature_probability in the forward pass, and the output
    masked by the input (`input_mask_mutants`)."""
    no_imp = "importance weights the loss only: the forward pass is ReLU(WᵀWx + b), with no importance in it"
    no_p = (
        "feature_probability sets how often generate_batch draws a feature: the forward pass is ReLU(WᵀWx + b), "
        "with no feature_probability in it"
    )
    return [
        *[("forward_importance", no_imp, t) for t in (two_layer(x * imp, W, W, b), two_layer(x, W, W, b) * imp)],
        ("forward_importance", "b_final is multiplied by self.importance: " + no_imp, two_layer(x, W, W, b * imp)),
        (
            "forward_feature_probability",
            "b_final is multiplied by self.feature_probability: " + no_p,
            two_layer(x, W, W, b * p),
        ),
        *forward_tensor_mutants(x, W, b, p, two_layer),
        *input_mask_mutants(x, two_layer(x, W, W, b), two_layer(x, W, W, 0 * b, out=lambda t: t), b),
    ]


_MASKS = (
    ("x != 0", "absent (x == 0)", lambda x: x != 0),
    ("x > 0", "absent or negative (x <= 0)", lambda x: x > 0),
    ("x >= 0", "negative (x < 0)", lambda x: x >= 0),
)


def input_mask_mutants(
    x: Tensor, right: Tensor, term: Tensor | None = None, b: Tensor | None = None
) -> list[tuple[str, str, Tensor]]:
    """The right output multiplied by a mask of the input, and (given the weights term and b) ReLU(term · mask + b),
    for each mask that changes the value on x (one hint per distinct value)."""
    found: list[tuple[str, list[str], str, Tensor]] = []
    for label, where, mask in _MASKS:
        values = [("output", right * mask(x))]
        if term is not None and b is not None:
            values.append(("term", torch.relu(term * mask(x) + b)))
        for kind, value in values:
            if torch.allclose(value, right):
                continue
            same = next((f for f in found if f[0] == kind and torch.equal(f[3], value)), None)
            if same:
                same[1].append(f"* ({label})")
            else:
                found.append((kind, [f"* ({label})"], where, value))
    out = []
    for kind, labels, where, value in found:
        masks = " or ".join(labels)
        if kind == "output":
            out.append(
                (
                    "output_masked",
                    f"your output is 0 wherever the input feature is {where}: it is masked by the input ({masks}, "
                    "or torch.where on x). Every feature gets an output, absent ones included: ReLU(b_final + the "
                    "interference from the present features)",
                    value,
                )
            )
        else:
            out.append(
                (
                    "interference_masked",
                    f"wherever the input feature is {where} your output is ReLU(b_final) alone: the weights term (what "
                    f"the other features write into that output, their interference) is masked by the input ({masks}) "
                    "before b_final is added. Every output gets the whole weights term: ReLU(weights term + b_final)",
                    value,
                )
            )
    return out


def zero_features_check(
    model: torch.nn.Module, x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, act: Callable = lambda t: t
) -> None:
    """The forward pass ReLU(W_outᵀ act(W_in x) + b) on x with a third of its entries exactly 0 (absent features, as
    generate_batch draws them)."""
    keep = (torch.arange(x.numel(), device=x.device) % 3 != 0).reshape(x.shape)
    x0 = x * keep
    with torch.no_grad():
        out = model(x0)
    term = torch.einsum("...id,idf->...if", act(torch.einsum("...if,idf->...id", x0, W_in)), W_out)
    right = torch.relu(term + b)
    expect_matches(
        out,
        right,
        "model(features) on features with some entries exactly 0 (absent)",
        input_mask_mutants(x0, right, term, b),
        hint="absent features (exactly 0) go through the same forward pass as any other value",
        code="zero_features",
    )
