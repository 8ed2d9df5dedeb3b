"""Part 5 resample_advanced: every dead latent of an instance got the same input. Which readings fit is told by the
other instances: argmax (always the worst example) or one draw shared by all dead latents give one input in every
instance; one input in some instances and spread picks in others is a sampler that depends on the weights' scale
(an inverse-CDF search of u in [0, 1) in cumulative weights not divided by their total lands on the first example
wherever that example's weight is >= 1)."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


def same_input_failure(rows: Tensor, best: Tensor, inst_of: Tensor, insts: list[int], q: Tensor, alt: dict) -> None:
    """Fail (same_input) when some instance's dead latents (more than 10) all got one input. `best`: each row's input
    type; `alt`: other per-type losses [inst types] a wrong weight might follow."""
    constant, spread = [], []
    for k in insts:
        mine = rows[inst_of == k]
        if mine.shape[0] > 10:
            (constant if bool((mine == mine[0]).all()) else spread).append(k)
    if not constant:
        return
    k = constant[0]
    j = int(best[inst_of == k][0])
    share = q[k].double().pow(2) / q[k].double().pow(2).sum()
    only = [name for name, v in alt.items() if v[k, j] != 0 and (v[k] != 0).sum() == 1]
    if spread and not only:  # weights from another loss, non-zero on one input there, explain it otherwise
        causes = (
            f"the picks spread over several inputs in instance(s) {spread}, so it is neither an argmax nor one draw "
            "shared by all dead latents (both give one input everywhere): a sampler whose result depends on the "
            "weights' scale, e.g. an inverse-CDF search of u in [0, 1) in cumulative weights not divided by their "
            "total (wherever the first example's weight is >= 1, every u lands on it): use torch.multinomial, or "
            "scale u by the total weight"
        )
    else:
        causes = "always the worst example (argmax); one draw shared by all dead latents"
    fail(
        f"every dead latent of instance {k} got the same input (input type {j}, which has {share[j]:.0%} of "
        "the L_reconstruction² weight there)"
        + (f"; it is the only input of instance {k} with non-zero {only[0]}" if only else ""),
        "draw one example per dead latent, at random with probability ∝ L_reconstruction² "
        "(torch.multinomial(weights, n_dead, replacement=True)). Possible causes: "
        + (f"weights taken from {only[0]} instead of L_reconstruction; " if only else "")
        + causes,
        code="same_input",
    )
