"""part5b read-backs: a cleared parent column, the ReLU's place in encode, inputs edited in place, childless parents.

Each one names a mistake only after re-computing the learner's output from the named cause (or reading it off the
observed output, true by construction)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import fail
from tests.part5b_absorption_diagnosis import check_layout, prefix_on_inst
from utils.part5b_absorption import HierarchyConfig

__all__ = ["childless_parent", "layout_or_cleared", "pre_entries", "unedited"]


def layout_or_cleared(x: Tensor, cfg: HierarchyConfig, what: str, orphans: int) -> None:
    """Children fire without their parent. When, in the documented layout, no parent column is ever on together
    with one of its own children while those children do fire, the parent was switched off where a child fires
    (read back: re-setting the parent wherever a child fires gives a hierarchy). Else check_layout."""
    on = x.bool()
    parents, children = on[..., : cfg.n_parents], on[..., cfg.n_parents :]
    grouped = children.unflatten(-1, (cfg.n_parents, cfg.n_children))  # [batch inst parent child]
    any_child = grouped.any(-1)
    fired = [p for p in range(cfg.n_parents) if any_child[..., p].any()]
    together = int((parents & any_child).sum())
    if fired and together == 0 and parents.any():
        n_child = int(any_child.sum())
        fail(
            f"{what}: a child fires without its parent {orphans} times, and no parent column is ever on in an "
            f"example where one of its own children fires ({n_child} such examples, parent column 0 in every one); "
            "the parents do fire elsewhere, so your parent column was switched off wherever one of its children "
            "fires (e.g. parents & ~children.any(-1), keeping only the most specific feature)",
            "a child implies its parent: the parent column stays 1 where a child fires (the children are ANDed with "
            "the parent, the parent is not cleared by the children): torch.cat([parents, children.flatten(-2)], -1)",
            code="parent_cleared",
        )
    check_layout(x, cfg, what, orphans)


def pre_entries(sae: ref.BatchTopKToySAE, h: Tensor, k: int) -> list[tuple[str, str, Tensor]]:
    """Catalogue entries for the pre-activation of encode: the ReLU before + b_enc, no ReLU, tied weights."""
    x = h - sae.b_dec.detach()
    lin = torch.einsum("bid,ids->bis", x, sae.W_enc.detach())
    b_enc = sae.b_enc.detach()
    tied = torch.einsum("bid,isd->bis", x, sae.W_dec_normalized.detach())
    before_bias, no_relu = ref.batch_topk(F.relu(lin) + b_enc, k), ref.batch_topk(lin + b_enc, k)
    either = (
        "no ReLU acts after + b_enc: your activations are batch_topk((h - b_dec) @ W_enc + b_enc) with negative values "
        "kept. On these inputs two slips give exactly that: the ReLU applied BEFORE adding b_enc (relu(x @ W_enc) + "
        "b_enc, a negative b_enc then leaves negatives) or no ReLU at all; apply it last, to the whole pre-activation: "
        "relu((h - b_dec) @ W_enc + b_enc), then batch_topk"
    )
    entries = [("no_relu", either, no_relu)]
    if not torch.equal(before_bias, no_relu):
        entries = [
            (
                "relu_before_bias",
                "your activations are batch_topk(relu((h - b_dec) @ W_enc) + b_enc, k): the ReLU was applied BEFORE "
                "adding b_enc, so a negative b_enc leaves negative activations; add the bias inside the ReLU: "
                "relu((h - b_dec) @ W_enc + b_enc)",
                before_bias,
            ),
            (
                "no_relu",
                "apply the ReLU to (h - b_dec) @ W_enc + b_enc before batch_topk (negative values kept)",
                no_relu,
            ),
        ]
    return [
        *entries,
        (
            "tied_encoder",
            "your activations are those of the encoder W_dec_normalized transposed (tied weights): encode with "
            "self.W_enc, relu((h - b_dec) @ W_enc + b_enc); the decoder is a separate parameter",
            ref.batch_topk(F.relu(tied + b_enc), k),
        ),
        (
            "bias_after_topk",
            "your activations are batch_topk(relu((h - b_dec) @ W_enc), k) + b_enc: b_enc was added AFTER the ReLU "
            "and the top-k (every latent then gets b_enc, kept or not); add it inside, before both: "
            "batch_topk(relu((h - b_dec) @ W_enc + b_enc), k)",
            ref.batch_topk(F.relu(lin), k) + b_enc,
        ),
    ]


def unedited(impl: Callable, leaves: list[Tensor], h: Tensor, sizes: tuple, saved: tuple, what: str, n_inst: int,
             others: tuple[int, ...]) -> object:  # fmt: skip
    """matryoshka_loss(*leaves, h copy, sizes); fail (code in_place) naming each input the call wrote into, before
    any values reading (the checker's expected values come from `saved`, private copies)."""
    h_arg = h.clone()
    out = prefix_on_inst(impl, (*leaves, h_arg, tuple(sizes)), sizes, n_inst, others)
    names = ("acts", "W_dec_normalized", "b_dec", "h")
    for name, got, before in zip(names, (*leaves, h_arg), (*saved, h), strict=True):
        changed = got.detach() != before
        if changed.any():
            zeroed = " (all set to 0)" if bool((got.detach()[changed] == 0).all()) else ""
            fail(
                f"{what} changed its input `{name}` in place: {int(changed.sum())} of {before.numel()} entries "
                f"differ after the call{zeroed}, so each later prefix saw the edited tensor",
                f"don't write into `{name}` (x[:, m:] = 0, x -= ..., x.mul_(mask)): slice it instead "
                "(acts[..., :m], W_dec_normalized[:, :m]) or clone it first (x = x.clone())",
                code="in_place",
            )
    return out


def childless_parent(impl: Callable, device: torch.device) -> None:
    """A generic parent_of in which the middle parent has no child (and the two others 2 and 3): every parent
    (parent_of == -1) gets a column. Run last, after every other check passed; only a missing column is named (a
    correct solution may raise on a parent without children, e.g. an amax over none: not a failure here)."""
    parent_of = [-1, -1, -1, 0, 0, 2, 2, 2]
    gen = torch.Generator().manual_seed(21)
    n_inst, batch, d_in, d_sae = 2, 90, 9, 7
    features = (torch.rand(batch, n_inst, len(parent_of), generator=gen) < 0.5).float()
    W_feat = torch.randn(n_inst, d_in, len(parent_of), generator=gen)
    W_dec = torch.randn(n_inst, d_sae, d_in, generator=gen) + 0.8 * W_feat[..., :d_sae].transpose(-1, -2)
    acts = F.relu(torch.randn(batch, n_inst, d_sae, generator=gen))
    inputs = [t.to(device) for t in (features, acts, W_dec, W_feat)]
    try:
        out = impl(*[t.clone() for t in inputs], list(parent_of), cos_threshold=0.3)
    except Exception:
        return
    what = f"absorption_fraction with parent_of = {parent_of} (parent 1 has no children)"
    if isinstance(out, Tensor) and out.ndim == 2 and out.shape == (n_inst, 2):
        fail(
            f"{what} has shape {tuple(out.shape)}, expected (inst={n_inst}, parents=3): the childless parent 1 got "
            "no column (parents read from the VALUES of parent_of, e.g. sorted(set(parent_of) - {-1}), skip it)",
            "the parents are the features with parent_of[f] == -1: [f for f, q in enumerate(parent_of) if q == -1], "
            "each with a column (0 for a parent without children: no example has it with a child)",
            code="childless_parent",
        )
