"""The constants a leaky hard sigmoid's slope (or value) is read back as, by name (round BA).

`diagnosis.regions_hint` reads each region's constant slope; besides 0, 1 and alpha it names the slips that write
the leak another way: 1 - alpha, -alpha, 1 / alpha (divided where it multiplies) and 1 + alpha (added to the
slope 1 instead of replacing it). A constant that is none of them is printed as a number.
"""

from __future__ import annotations


def slope_names(alpha: float) -> dict[float, str]:
    """Value -> name, for the constants regions_hint recognises (later entries win where two coincide)."""
    names = {1 / alpha: "1 / alpha (alpha divided by, not multiplied)"} if alpha else {}
    names |= {1 + alpha: "1 + alpha (the leak added to the slope 1 instead of replacing it)"}
    return names | {0.0: "0", 1.0: "1", alpha: f"alpha ({alpha:g})", 1 - alpha: "1 - alpha", -alpha: "-alpha"}
