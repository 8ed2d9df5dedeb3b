"""Hints of parts 1 to 3 that read a wrong output closely (no imports from the other check modules, so any of them can
use these): what a forward pass returned instead of a tensor of the right shape, a factor that an input scaling and an
output scaling share, a loss weight that is the importance summed, the direction of a dtype change, and the gaps in
the support of drawn values.

Each runs only on an output that is already wrong (or on a fact no correct answer shows), and when two mistakes give
the same output it lists both rather than pick one.
"""

from __future__ import annotations

from itertools import product

import torch
from torch import Tensor

from tests.checking import fail


def activation_diagnosis(out: Tensor, pre: Tensor) -> tuple[str, str] | None:
    """(code, hint) when `out` equals ReLU(pre) on one range of the right output pre-activation `pre` and differs
    everywhere beyond it: the output nonlinearity is wrong (the products and the bias are right, or the output
    could not be right on a whole range of pre-activations)."""
    if not isinstance(out, Tensor) or out.shape != pre.shape or not out.is_floating_point():
        return None
    a, p = out.detach().double(), pre.detach().double().to(out.device)
    right = torch.relu(p)
    agree = (a - right).abs() <= 1e-5 + 1e-4 * right.abs()
    pos, neg = p > 1e-3, p < -1e-3
    if not pos.any() or not neg.any() or agree.all():
        return None
    if torch.allclose(a, p.clamp(max=0), rtol=1e-4, atol=1e-5):
        return "output_negative_part", (
            "your output is min(pre, 0) = -ReLU(-pre), with pre the value before the output ReLU (the weights term "
            "plus b_final): the output nonlinearity keeps the negative part and zeroes the positive one (clamp(max=0) "
            "or clamp_max(0) where clamp(min=0) / clamp_min(0) was meant, or torch.minimum); the output is ReLU(pre)"
        )
    if bool((a <= 1e-6).all()) and bool((a < -1e-6).any()):
        return "output_nonpositive", (
            "every value of your output is at most 0 and some are negative, but a ReLU's output is never negative "
            "(and positive wherever the pre-activation is): possible causes: a clamp with max= where min= was meant, "
            "a minus sign on the output (-ReLU(...)) or on the pre-activation, or a nonlinearity other than ReLU"
        )
    if bool(agree[pos].all()) and not bool(agree[neg].all()):
        return "negative_not_zeroed", (
            "where the value before the output ReLU is positive your output is right, but negative values are not set "
            "to 0: the output nonlinearity is a ReLU (F.relu), not "
            + (
                "abs (your output is |pre|: .abs() or torch.abs)"
                if bool(torch.allclose(a, p.abs(), atol=1e-5))
                else "abs, leaky_relu, ELU or none"
            )
        )
    good, bad = p[agree & pos], p[~agree]
    if good.numel() < 3 or bad.numel() < 3:
        return None
    where = "the output pre-activation WᵀWx + b_final (before the ReLU)"
    if float(bad.min()) > float(good.max()):
        cap = a[~agree]
        c = float(cap.mean())
        if float(cap.max() - cap.min()) <= 1e-5 * max(1.0, abs(c)) and float(good.max()) - 1e-4 <= c < float(bad.min()):
            known = {6.0: " (F.relu6 / nn.ReLU6 caps at 6)", 1.0: " (F.hardtanh / clamp(0, 1) caps at 1)"}
            return "output_capped", (
                f"your output is ReLU(pre) clipped at {c:.4g}: it equals ReLU(pre) wherever {where} is at most "
                f"{float(good.max()):.3g}, and is exactly {c:.4g} at every position where pre is above "
                f"{float(bad.min()):.3g}, so large outputs are capped at {c:.4g}"
                f"{known.get(round(c, 4), ' (a clamp with max= or torch.minimum?)')}; the output nonlinearity is a "
                "plain ReLU, with no upper bound"
            )
        return "output_nonlinearity_large", (
            f"your output equals ReLU(pre) wherever {where} is at most {float(good.max()):.3g}, and differs at every "
            f"position where it is above {float(bad.min()):.3g} (there you return values in "
            f"[{float(a[~agree].min()):.3g}, {float(a[~agree].max()):.3g}]): the output nonlinearity caps or bends "
            "large values (a clamp, min, sigmoid or tanh?); it is a plain ReLU"
        )
    if float(bad.max()) < float(good.min()) and float(bad.max()) > 1e-3:
        return "output_nonlinearity_small", (
            f"your output equals ReLU(pre) wherever {where} is at least {float(good.min()):.3g}, and differs at every "
            f"position below {float(bad.max()):.3g}: the output nonlinearity is wrong for small values; it is a "
            "plain ReLU (0 below 0, the identity above)"
        )
    return None


def factor_name(c: float, d_hidden: int) -> str:
    """' = 1/√d_hidden = 1/√4' when the factor c is a familiar function of d_hidden (or 2, 1/2); else ''."""
    names = {f"1/√d_hidden = 1/√{d_hidden}": d_hidden**-0.5, f"√d_hidden = √{d_hidden}": d_hidden**0.5}
    names |= {f"1/d_hidden = 1/{d_hidden}": 1 / d_hidden, f"d_hidden = {d_hidden}": d_hidden, "2": 2.0, "1/2": 0.5}
    found = [k for k, v in names.items() if d_hidden and abs(c - v) < 1e-3 * v] if d_hidden else []
    return f" = {found[0]}" if found else ""


def forward_output_failure(out: object, what: str, shape: tuple[int, ...], dims: str) -> None:
    """A forward pass returned a module (nn.ReLU(z) builds one), or its output lost exactly the axes of size 1."""
    if isinstance(out, torch.nn.Module):
        name = type(out).__name__
        fail(
            f"{what} is an nn.{name} module, not a tensor",
            f"nn.{name}(z) constructs a module (its argument is a setting such as `inplace`), it does not apply "
            f"anything: call the function, torch.relu(z) (or F.relu(z)), or apply a module: nn.{name}()(z)",
            code="module_returned",
        )
    if not isinstance(out, Tensor) or 1 not in shape or out.ndim >= len(shape):
        return
    if tuple(out.shape) == tuple(s for s in shape if s != 1):
        gone = ", ".join(f"{d}=1" for d, s in zip(dims.split(), shape, strict=True) if s == 1)
        fail(
            f"{what} has shape {tuple(out.shape)}, expected {shape} ({dims}): the axes of size 1 ({gone}) are gone",
            f"an axis of size 1 was removed: .squeeze() without a dim drops every axis of size 1 (here {gone}), "
            "and so does an index such as [..., 0]; keep the shape [batch, inst, feats] (drop the .squeeze())",
            code="squeezed",
        )


def input_transform_hint(label: str, d_hidden: int = 0) -> str:
    """The hint for an output that equals the right forward pass on a transformed input `label` (e.g. 'x / 2')."""
    hint = f"your output is exactly the right forward pass applied to {label} instead of x"
    scale = {"2x": 2.0, "x / 2": 0.5}.get(label)
    if scale is not None:
        return (
            f"{hint}, which is also the right forward pass with its output weights term (the product with the output "
            f"weights, before b_final is added) multiplied by {scale:g}{factor_name(scale, d_hidden)}: the ReLUs pass "
            "a positive factor through, so the two give the same output. Possible causes: the input scaled before "
            "the first product, or a factor on the output term (a scaling such as 1/√d_hidden); the forward pass has "
            "neither"
        )
    if label == "-x":
        hint += " (the same as a minus sign on the first product with the weights, -W x)"
    return (
        f"{hint}: the input is changed before the first product with the weights; the forward pass takes the "
        "features as they are"
    )


def importance_weights_hint(weights: Tensor, imp: Tensor) -> tuple[str, str]:
    """(code, hint) for a loss whose gradient shows per-(inst, feat) weights `weights` that are not `imp`."""
    i, j = divmod(int((weights - imp).abs().argmax()), imp.shape[1])
    got = f"inst {i}, feat {j}: {float(weights[i, j]):.3g} instead of {float(imp[i, j]):.3g}"
    for how, table in (("summed", imp.sum(-1, keepdim=True)), ("averaged", imp.mean(-1, keepdim=True))):
        if imp.shape[1] > 1 and torch.allclose(weights, table.expand_as(imp), rtol=1e-3, atol=1e-9):
            return f"importance_{how}", (
                f"the gradient with respect to `out` shows every squared error of an instance weighted by its "
                f"importances {how} over the features ({got}): the importance was taken out of the mean and "
                f"{how} (mean(err) · importance.{'sum' if how == 'summed' else 'mean'}(-1)); weight each element "
                "by its own importance, I[inst, feat] · (target - out)², then reduce"
            )
    return "importance_weights", (
        f"the gradient with respect to `out` shows each squared error weighted by a w[inst, feat] that is not "
        f"importance[inst, feat] ({got})"
    )


def dtype_failure(out: object, dtype: torch.dtype, what: str) -> None:
    """A float64 input gave a float32 output (or the other way): name the direction's usual cause."""
    if not isinstance(out, Tensor) or not out.is_floating_point() or out.dtype == dtype:
        return
    if out.dtype.itemsize < dtype.itemsize:
        hint = (
            f"the {dtype} input came out as {out.dtype}: a tensor created with the default dtype (torch.zeros, "
            "torch.ones or torch.empty without dtype=, torch.tensor of Python numbers) and filled with the results, "
            "or a .float(), lowers the precision; create buffers with the input's dtype (dtype=W.dtype, "
            "torch.zeros_like, W.new_zeros(...)) and don't cast"
        )
    else:
        hint = (
            f"the {dtype} input came out as {out.dtype}: a float64 tensor (torch.tensor of a NumPy value, "
            "a .double(), numpy arithmetic) mixed into the computation raises the precision; keep the input's dtype"
        )
    fail(f"{what} has dtype {out.dtype}, expected {dtype} (the input's)", hint, code="dtype")


def gap_shape(values: Tensor, low: float, high: float) -> str:
    """(Diagnosis only, after the law has failed) 'present values fill only [a, b) ∪ [c, d] ...; ' when whole
    twentieths of [low, high] are empty. With n >= 4000 values a twentieth expects >= 200 of U[low, high]: an empty
    one has probability e^-200 for a correct draw."""
    n, bins = values.numel(), 20
    if n < 4000:
        return ""
    width = (high - low) / bins
    counts = torch.histc(values.double(), bins, low, high)
    full = (counts > 0).tolist()
    if all(full) or not any(full):
        return ""
    runs, start = [], None
    for k, on in enumerate([*full, False]):
        if on and start is None:
            start = k
        elif not on and start is not None:
            runs.append((low + start * width, low + k * width))
            start = None
    support = " ∪ ".join(f"[{a:.3g}, {b:.3g}]" for a, b in runs)
    halves = [(-0.5, 0.0), (0.5, 1.0)]
    if len(runs) == 2 and all(
        abs(u - v) < 1e-9 for r, t in zip(runs, halves, strict=True) for u, v in zip(r, t, strict=True)
    ):
        return (
            f"the present values fill only {support}: the negative values are the small ones and the positive ones "
            "the large ones, as when one uniform v gives both the sign and the size (torch.where(v < 0.5, -v, v)); "
            "draw the value as one U[-1, 1] (2 * rand - 1), or the sign and the size from separate draws; "
        )
    scaled = ""
    if len(runs) == 1:  # one stretch: at the low end ([0, c]) or centred ([-c, c]) is the draw times c
        (a, b), mid = runs[0], (low + high) / 2
        if abs(a - low) < 1e-9 and low == 0:
            c = float(values.max()) / high
            scaled = f"the draw scaled by about {c:.2g} (c · rand, c < 1), or "
        elif abs((a + b) / 2 - mid) < 1e-9:
            c = float((values.double() - mid).abs().max()) / ((high - low) / 2)
            scaled = f"the draw scaled by about {c:.2g} (c · (2 * rand - 1), c < 1), or "
    return (
        f"the present values fill only {support} of [{low:g}, {high:g}]: {scaled}a rule that maps the draw into part "
        "of the range (one uniform giving both the sign and the size, a piecewise formula, a shift of some values)? "
    )


def pair_slice_candidates(block: str, count: int, nc: int, na: int) -> list[str]:
    """The slices of p, written with the usual slips in a pair block's start, stop or step, that give `count`
    probabilities with these counts (the right slice left out): each a possible cause of a block of the wrong length."""
    right_start = 0 if block == "correlated" else 2 * nc
    starts = {"0": 0} if block == "correlated" else {"2 * n_corr": 2 * nc, "n_corr": nc}
    stops = {
        "2 * n_corr": 2 * nc,
        "n_corr": nc,
        "2 * n_anti": 2 * na,
        "n_anti": na,
        "n_corr + n_anti": nc + na,
        "2 * (n_corr + n_anti)": 2 * (nc + na),
        "2 * n_corr + n_anti": 2 * nc + na,
    }
    right_stop = 2 * nc if block == "correlated" else 2 * (nc + na)
    found = []
    for (a_name, a), (b_name, b), step in product(starts.items(), stops.items(), (2, 1)):
        if (a, b, step) != (right_start, right_stop, 2) and len(range(a, b, step)) == count:
            found.append(f"p[:, {a_name} : {b_name}{' : 2' if step == 2 else ''}]")
    return found


def duplicated_block_failure(out: Tensor, message: str, got: dict, want: dict) -> None:
    """A combined batch whose feature columns repeat a run of earlier columns exactly (in every example, not all
    zero) holds one block's output twice: a copy-paste in the list given to torch.cat. Name the missing block."""
    x = out.detach().cpu()
    g = x.shape[-1]
    for width in range(g // 2, 0, -1):
        for start in range(0, g - 2 * width + 1):
            a, b = x[..., start : start + width], x[..., start + width : start + 2 * width]
            if bool(a.ne(0).any()) and torch.equal(a, b):
                missing = [name for name in want if got[name] == 0 and want[name] > 0]
                fail(
                    message,
                    f"features {start}-{start + width - 1} and {start + width}-{start + 2 * width - 1} are identical "
                    "in every example: the same block's output is concatenated twice (a copy-paste in the list "
                    "given to torch.cat?)"
                    + (
                        f", and the {' and '.join(missing)} block is missing: put its output in that place"
                        if missing
                        else ": each block appears once, [correlated | anticorrelated | uncorrelated]"
                    ),
                    code="duplicated_block",
                )
