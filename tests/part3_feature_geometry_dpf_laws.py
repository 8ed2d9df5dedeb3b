"""dimensions_per_feature: read back the law a wrong D* follows from W and 0.05 · W together (12 values).

D* = d_hidden / ‖W‖²_F. A wrong answer that is still c / (‖W‖²_F)^e with e != 1 (the norm not squared or squared
twice, with or without another numerator: a numerator alone is named by the numerator readings) or
d_hidden / (‖W‖²_F + e0) (an eps added to the denominator) is fitted
exactly on both scales at once: on W alone most instances share ‖W‖²_F = 6.25, so a constant factor and an eps look
alike there; the small copy tells them apart. The message states the fitted law, a fact about the learner's function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail


def _names(W: Tensor) -> dict[float, str]:
    n_inst, d, f = W.shape
    return {
        float(d): f"d_hidden = {d}",
        float(f): f"n_features = {f} (W.shape[2])",
        float(n_inst): f"n_inst = {n_inst} (W.shape[0])",
        float(d * f): f"d_hidden · n_features = {d * f}",
        1.0: "1",
    }


def dpf_law_failure(fn: Callable, W: Tensor, out: Tensor, what: str) -> None:
    """Fail (code dpf_law) when out on W and fn(0.05 W) follow c / F^e or d / (F + e0) with F = ‖W‖²_F."""
    try:
        small = fn((0.05 * W).clone())
    except Exception:
        return
    if not isinstance(small, Tensor) or small.shape != out.shape or small.device.type == "meta":
        return
    o = torch.cat([out.detach().double().cpu().flatten(), small.detach().double().cpu().flatten()])
    Wd = W.detach().double().cpu()
    F = torch.cat([Wd.pow(2).sum((1, 2)), (0.05 * Wd).pow(2).sum((1, 2))])
    if not bool(torch.isfinite(o).all()) or bool((o <= 0).any()) or bool((F <= 0).any()):
        return
    d = W.shape[1]
    design = torch.stack([torch.ones_like(F), -F.log()], -1)
    _, e = torch.linalg.lstsq(design, o.log()[:, None]).solution.flatten().tolist()
    e = round(2 * e) / 2
    c = float((o * F**e).mean())
    exact = e > 0 and bool(torch.allclose(c / F**e, o, rtol=1e-5, atol=0))
    names = _names(W)
    named = next((n for v, n in names.items() if abs(c - v) <= 1e-4 * v), None)
    if exact and e != 1:  # a wrong numerator alone (e = 1) is constant_numerator_failure's to name
        power = {0.5: "‖W‖_F (the norm, not squared)", 1.0: "‖W‖²_F", 2.0: "‖W‖⁴_F (squared twice)"}.get(
            e, f"(‖W‖²_F)^{e:g}"
        )
        causes = []
        if abs(c - d) > 1e-4 * d:
            causes.append(f"the numerator is {named or f'{c:.4g}'}, where d_hidden = W.shape[1] = {d} belongs")
        if e != 1:
            causes.append(f"the denominator is {power}, where ‖W‖²_F = W.pow(2).sum((1, 2)) belongs")
        fail(
            f"{what} and on 0.05 · W: your values are {c:.4g} / {power} exactly, expected {d} / ‖W‖²_F",
            "; ".join(causes),
            code="dpf_law",
        )
    e0 = float((d / o - F)[len(F) // 2 :].mean())  # read on 0.05 · W, where float32 noise in d / o is smallest
    if abs(e0) > 1e-6 and bool(torch.allclose(d / (F + e0), o, rtol=1e-5, atol=0)):
        fail(
            f"{what} and on 0.05 · W: your values are {d} / (‖W‖²_F + {e0:.3g}) exactly",
            f"a constant {e0:.3g} is added to the denominator: it shifts every value, most for a small "
            "‖W‖²_F (the eps of a safe division?); divide by ‖W‖²_F itself, W.shape[1] / W.pow(2).sum((1, 2))",
            code="dpf_law",
        )
