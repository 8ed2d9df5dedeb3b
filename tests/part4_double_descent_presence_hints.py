"""generate_dataset readings that name what the observation shows: a presence rate of 1 - p (an inverted comparison,
or dropout's p read as the keep probability: the rate cannot tell the two apart, and dropout's 1 / (1 - p) scaling
cancels on normalising), and short examples among ones exactly unit (a floor on the norm divided by, not an eps
added to every norm)."""

from __future__ import annotations

from torch import Tensor

PRESENCE_INVERTED = (
    "features are present with probability 1 - p: the mask keeps what it should drop. Possible causes: an inverted "
    "comparison (`rand > p`), or F.dropout(x, p) / nn.Dropout(p), whose p is the probability of *dropping* an entry "
    "(its 1 / (1 - p) rescaling cancels on normalising, so the rate is all that shows); keep an entry when "
    "`torch.rand(...) < p`"
)


def unscaled_small_rows(rows: Tensor, unit: Tensor) -> tuple[str, str] | None:
    """(code, hint) when most non-empty examples' norms `rows` are 1 to float32 rounding (median |norm - 1| <= 3e-7
    over those above 0.5) and some are clearly shorter: those short examples were divided by more than their norm,
    as x / norm.clamp_min(c) does for norm < c. An eps added to the norm would shorten *every* example (by eps / ‖x‖,
    which is above 3e-7 for any eps large enough to shorten a row by 10%, on rows of norm below 1 / (9 · 3e-7))."""
    rows = rows.double()
    big, short = rows[rows >= 0.5], rows[~unit]
    if big.numel() < 100 or short.numel() == 0 or float((big - 1).abs().median()) > 3e-7:
        return None
    return "norm_floor", (
        f"{int(unit.sum())} examples have norm 1 to float32 rounding, but {short.numel()} are shorter (norms "
        f"{float(short.min()):.3g} to {float(short.max()):.3g}): those examples were divided by more than their own "
        "norm, as when the norm divided by has a floor (x / norm.clamp_min(c), max(norm, c)) above their norms; an eps "
        "added to the norm would shorten every example. Use a floor far below any real norm, norm.clamp_min(1e-12), "
        "or F.normalize"
    )
