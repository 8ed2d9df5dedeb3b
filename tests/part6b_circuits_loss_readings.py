"""Part 6b readings of replacement_losses and latent_de_embedding slips: the spliced loss measured on a subset of
the sequences or with the MLP input rebuilt by hand from resid_mid, a ZeroDivisionError from a zero-ablation that
changed nothing the loss reads, and the de-embedding divided by a per-token total over the latents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from tests.checking import _describe_error as describe_error
from tests.checking import fail
from tests.learner_errors import failing_line


def zero_division(err: Exception, model: Any, tc: Any, tokens: Tensor, loss: Callable) -> None:
    """A ZeroDivisionError on a line that divides by a difference with the clean loss: the zero-ablated loss equalled
    the clean one. Observed first; a zero-ablation at the last position only (which the loss never reads) is checked
    to give exactly the clean loss before it is offered as an example."""
    if not isinstance(err, ZeroDivisionError):
        return
    _, line, names = failing_line(err)
    if not any("clean" in n.lower() for n in names):
        return

    def last_only(a: Tensor, hook: Any) -> Tensor:
        a = a.clone()
        a[:, -1] = 0
        return a

    clean = loss(model, tokens, [])
    example = (
        "zeroing only the last position (its prediction has no next token, so the loss never reads it: that run's "
        "loss equals the clean one exactly here), "
        if loss(model, tokens, [(tc.hook_name_out, last_only)]) == clean
        else ""
    )
    fail(
        f"{describe_error(err).message}\n(on `{line.strip()}`: a line that uses the clean loss divided by 0: if "
        "that divisor is zero - clean, your zero-ablated loss came out exactly equal to the clean loss, i.e. your "
        "zero-ablation changed nothing the loss reads)",
        f"zero-ablation replaces the MLP's output at every position by zeros: e.g. {example}a hook at another point "
        "or one whose new value is not returned leaves the loss as it was; return torch.zeros_like(act) at "
        "tc.hook_name_out",
        code="zero_equals_clean",
    )


def replaced_readings(model: Any, tc: Any, tokens: Tensor, got: float, want: float, close: Callable, loss: Callable):
    """The replaced loss measured on the first k sequences (or one sequence), or with the transcoder fed an MLP input
    rebuilt by hand from resid_mid: name a match."""
    seen: dict = {}
    spliced = [
        (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
        (tc.hook_name_out, lambda a, hook: tc(seen["x"])),
    ]
    n = tokens.shape[0]
    subsets = [(f"tokens[:{k}], the first {k} of the {n} sequences", tokens[:k]) for k in range(1, n)]
    subsets += [(f"tokens[{k}:{k + 1}], sequence {k} alone", tokens[k : k + 1]) for k in range(1, n)]
    for what, part in subsets:
        if close(got, loss(model, part, spliced)):
            fail(
                f"replaced loss {got:.5f}, expected {want:.5f}: that is the replaced loss on {what}",
                "measure every loss on all the tokens passed: the three runs must see the same sequences, or their "
                "differences (and `recovered`) mix the transcoder's effect with the sample's",
                code="replaced_subset",
            )
    mid = tc.hook_name.replace("ln2.hook_normalized", "hook_resid_mid")
    if mid == tc.hook_name:
        return
    eps = model.cfg.eps
    rebuilt = {
        "torch.std (unbiased, n - 1) and no eps": lambda c: c / c.std(-1, keepdim=True),
        "the biased std and no eps": lambda c: c / c.pow(2).mean(-1, keepdim=True).sqrt(),
        "torch.std (unbiased, n - 1) with eps": lambda c: c / (c.var(-1, keepdim=True) + eps).sqrt(),
    }
    for what, norm in rebuilt.items():

        def read(a: Tensor, hook: Any, norm: Callable = norm) -> None:
            seen["x"] = norm(a - a.mean(-1, keepdim=True))

        if close(got, loss(model, tokens, [(mid, read), spliced[1]])):
            fail(
                f"replaced loss {got:.5f}, expected {want:.5f}: that is the loss with the transcoder fed resid_mid "
                f"normalised by hand with {what}",
                f"read the MLP's input as the model computes it, at tc.hook_name ({tc.hook_name}): LayerNorm divides "
                f"by sqrt(biased var + eps), eps = {eps}; a hand-made normalisation differs slightly",
                code="mlp_input_rebuilt",
            )


def de_shares(model: Any, tc: Any, i: int) -> list[tuple[str, str, Tensor]]:
    """The de-embedding divided by a per-token total over the latents (a share of the token's drive)."""
    drive = model.W_E @ tc.W_enc
    v = drive[:, i]
    tail = ": the de-embedding is the raw drive W_E @ W_enc[:, latent], not a share of each token's total"
    total = "yours is divided by each token's total"
    return [
        ("de_share", total + " |drive| over the latents, Σ_j |W_E[t] @ W_enc[:, j]|" + tail,
         v / drive.abs().sum(-1)),
        ("de_share", total + " drive over the latents, Σ_j W_E[t] @ W_enc[:, j]" + tail,
         v / drive.sum(-1)),
        ("de_share", "yours is divided by the norm of each token's drive over the latents, ‖W_E[t] @ W_enc‖" + tail,
         v / drive.norm(dim=-1)),
    ]  # fmt: skip
