"""dimensions_per_feature read back (round BB): the output's dtype when it is raised above W's (compute_dimensionality
of parts 3 and 4 too) (the shared hint named
other sources than a .double()), and, for a wrong value, the numerator and the denominator read back from the
learner's D* one instance at a time: a whole-number numerator that varies by instance (a count of represented
features in place of d_hidden), a denominator that is another instance's ‖W‖²_F (a running max, a sort, a flip, a
roll over the inst axis), or ‖W‖²_F rounded to a low precision (float16, bfloat16)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail
from tests.part3_feature_geometry_rounded import rounded_output_failure


def upcast_failure(out: object, W: Tensor, what: str, name: str = "W") -> None:
    """Float output of a higher precision than the input's (float64 for a float32 W); part 4 uses it too."""
    if not isinstance(out, Tensor) or not out.is_floating_point() or not W.is_floating_point():
        return
    if torch.finfo(out.dtype).bits > torch.finfo(W.dtype).bits:
        fail(
            f"{what} has dtype {out.dtype}, expected {W.dtype} (the input's)",
            f"the result was raised to {out.dtype}: a {name}.double() or .to(torch.float64), a dtype=torch.float64 "
            f"in a reduction, or numpy (float64 by default) on the way; compute in {name}'s own dtype",
            code="upcast",
        )


def _counts(W: Tensor) -> list[tuple[str, Tensor]]:
    norms_sq = W.pow(2).sum(1)
    out = [
        (f"features with ‖W_i‖² > {t:g} (‖W_i‖ > {t**0.5:.3g}): represented features", (norms_sq > t).sum(-1))
        for t in (0.5, 0.25, 0.1, 0.01, 1e-3)
    ]
    out.append(("non-zero features (‖W_i‖ > 0)", (norms_sq > 0).sum(-1)))
    out.append(("non-zero rows of W (d_hidden dimensions in use)", (W.pow(2).sum(2) > 0).sum(-1)))
    return out


def dpf_readback_failure(out: Tensor, W: Tensor, what: str) -> None:
    """out [inst] is wrong: name the numerator or denominator it reads back as, or return."""
    got = out.detach().double().cpu()
    W = W.detach().double().cpu()
    if not torch.isfinite(got).all() or not (got > 0).all():
        return
    d = W.shape[1]
    frob = W.pow(2).sum((1, 2))
    rounded_output_failure(got, d / frob, what)
    numerator = got * frob
    if torch.allclose(numerator, numerator.round(), atol=1e-3) and len(set(numerator.round().tolist())) > 1:
        counts = numerator.round().long()
        named = [name for name, c in _counts(W) if torch.equal(c.long(), counts)]
        fail(
            f"{what} is {[round(v, 4) for v in got.tolist()]}: its numerator reads {counts.tolist()} (whole numbers "
            f"that vary by instance) over ‖W‖²_F, where d_hidden = {d} in every instance",
            "the numerator is a count"
            + (f", the number of {named[0]}" if named else " (of features, or of dimensions, that changes by instance)")
            + f": D* divides the number of hidden dimensions, d_hidden = W.shape[1] = {d}, by ‖W‖²_F (every feature "
            "counts for its ‖W_i‖² in the denominator; nothing is counted)",
            code="counted_numerator",
        )
    den = d / got
    match = (den[:, None] - frob[None, :]).abs() <= 1e-4 * frob[None, :]
    if bool(match.any(1).all()) and not bool(match.diagonal().all()):
        source = match.double().argmax(1)
        for name, value in (
            ("a running maximum over the instances (cummax(0))", frob.cummax(0).values),
            ("a running minimum over the instances (cummin(0))", frob.cummin(0).values),
            ("sorted over the instances", frob.sort().values),
            ("sorted over the instances, descending", frob.sort(descending=True).values),
            ("reversed over the instances (flip(0))", frob.flip(0)),
            ("rolled over the instances (roll)", frob.roll(1)),
            ("rolled over the instances (roll)", frob.roll(-1)),
        ):
            if torch.allclose(den, value, rtol=1e-4):
                how = name
                break
        else:
            how = "another instance's value"
        fail(
            f"{what}: instance k got d_hidden / ‖W[j]‖²_F of instance j = {source.tolist()} (k = 0, 1, ...), "
            "not its own",
            f"your denominators are the right ‖W‖²_F values but moved between instances: {how}. Each instance "
            "divides by its own ‖W[inst]‖²_F, W.pow(2).sum((1, 2)), with nothing done across the inst axis",
            code="instances_moved",
        )
    for dtype in (torch.float16, torch.bfloat16):
        low = frob.to(dtype).double()
        for value in (d / low, (d / frob).to(dtype).double(), (d / W.to(dtype).pow(2).sum((1, 2))).double()):
            if torch.allclose(got, value, rtol=1e-6, atol=0) and not torch.allclose(got, d / frob, rtol=1e-6):
                fail(
                    f"{what} is right to about {3 if dtype == torch.float16 else 2} digits only: it equals the "
                    f"computation rounded to {dtype}",
                    f"a step went through {dtype} (.half(), .bfloat16(), or autocast): compute in W's own dtype",
                    code="low_precision",
                )
