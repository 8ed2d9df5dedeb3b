"""Held-out round AU (part 6b): a zero-ablation that spares BOS named as such, a latent's vector taken from another
known matrix (an MLP neuron's output row) named with that matrix, latents added to the gated pre-activations in
linearised_forward, token edges as a product of norms in attribution_edges, and rows of the path matrix normalised
after the inverse in node_influence; plus the round's correct variants."""

import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------------ replacement_losses
def _losses(model, tc, tokens, zero_hook):
    seen = {}
    loss = lambda h: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=h).item()
    clean = loss([])
    read = (tc.hook_name, lambda a, hook: seen.__setitem__("x", a))
    replaced = loss([read, (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])
    zero = loss([(tc.hook_name_out, zero_hook)])
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_zero_ablation_that_spares_bos_is_named():
    def zero(a, hook):
        out = torch.zeros_like(a)
        out[:, 0] = a[:, 0]
        return out

    err = assert_fails(checks.test_replacement_losses, lambda m, tc, t: _losses(m, tc, t, zero), "ablation_bos_kept")
    assert "BOS" in err.hint


def test_per_sequence_runs_averaged_pass():
    def replacement_losses(model, tc, tokens):
        res = {"clean": [], "replaced": [], "zero_ablated": []}
        for row in tokens:
            t, box = row[None], {}
            res["clean"].append(model(t, return_type="loss").item())
            hooks = [
                (tc.hook_name, lambda a, hook, box=box: box.__setitem__("x", a)),
                (tc.hook_name_out, lambda a, hook, box=box: tc.decode(tc.encode(box["x"])) + tc.skip(box["x"])),
            ]
            res["replaced"].append(model.run_with_hooks(t, return_type="loss", fwd_hooks=hooks).item())
            zero = [(tc.hook_name_out, lambda a, hook: a * 0)]
            res["zero_ablated"].append(model.run_with_hooks(t, return_type="loss", fwd_hooks=zero).item())
        c, r, z = (sum(v) / len(v) for v in res.values())
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": (z - r) / (z - c)}

    assert_passes(checks.test_replacement_losses, replacement_losses)
