"""The latent's vector taken from another known matrix: for latent_de_embedding (W_E @ v) and latent_logit_effect
(v @ W_U), the d_model vector v recovered by least squares and matched against the rows (or columns) of the model's
and the transcoder's other d_model-sized matrices (an MLP neuron's output row W_out[0][j] or input column
W_in[0][:, j], the other side's transcoder vector, a token's embedding or unembedding, a position's embedding).
Used where the generic 'direction' reading would only say that v changed."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _candidates(model: Any, tc: Any, side: str) -> list[tuple[str, str, Tensor]]:
    """(how to write row j, what it is, matrix whose rows are d_model vectors)."""
    out = []
    blocks = getattr(model, "blocks", [])
    mlp = blocks[0].mlp if len(blocks) and hasattr(blocks[0], "mlp") else None
    if mlp is not None and getattr(mlp, "W_out", None) is not None:
        out.append(("model.W_out[0][{j}]", "MLP neuron {j}'s output row", model.W_out[0]))
        out.append(("model.W_in[0][:, {j}]", "MLP neuron {j}'s input column", model.W_in[0].T))
    if side == "de":
        out.append(("tc.W_dec[{j}]", "latent {j}'s decoder row (the logit-effect side's vector)", tc.W_dec))
        out.append(("model.W_U[:, {j}]", "token {j}'s unembedding column", model.W_U.T))
    else:
        out.append(("tc.W_enc[:, {j}]", "latent {j}'s encoder column (the de-embedding side's vector)", tc.W_enc.T))
        out.append(("model.W_E[{j}]", "token {j}'s embedding row", model.W_E))
    out.append(("model.W_pos[{j}]", "position {j}'s embedding", model.W_pos))
    return out


def other_matrix_row(model: Any, tc: Any, i: int, actual: Tensor, side: str) -> list[tuple[str, str, Tensor]]:
    """A catalogue row (code, hint, value) naming the matrix whose row reproduces `actual`; [] when none does."""
    matrix = model.W_E if side == "de" else model.W_U.T  # [vocab d_model]
    if actual.dim() != 1 or actual.shape[0] != matrix.shape[0] or matrix.shape[0] <= matrix.shape[1]:
        return []
    with torch.no_grad():
        v = torch.linalg.lstsq(matrix.double(), actual.double()[:, None]).solution.flatten()
        own = "W_enc[:, latent]" if side == "de" else "W_dec[latent]"
        view = "W_E @ W_enc[:, latent]" if side == "de" else "W_dec[latent] @ W_U"
        for write, what, rows in _candidates(model, tc, side):
            if rows.dim() != 2 or rows.shape[1] != len(v):
                continue
            j = int((rows.double() - v).norm(dim=-1).argmin())
            value = (matrix @ rows[j].to(matrix.dtype)).to(actual.dtype)
            if not torch.allclose(actual, value, rtol=1e-3, atol=1e-4):
                continue
            index = f" (the latent's index {i} used as its index)" if j == i else ""
            hint = (
                f"your vector is {write.format(j=j)}, {what.format(j=j)}{index}, not the transcoder's {own}: the view "
                f"is {view}, with the latent's own vector"
            )
            return [("other_matrix", hint, value)]
    return []
