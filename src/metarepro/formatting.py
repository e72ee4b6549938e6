"""How numbers are written for readers: one rule for p-values in every figure,
report and page (no heavy imports, so light modules can use it)."""

from __future__ import annotations

import math

__all__ = ["format_p", "p_equals"]

#: p-values below this are printed as "< 0.001" (three decimals otherwise), as the
#: BMJ, the Lancet and the APA manual ask; "p = 0.0000" is never written.
P_FLOOR = 0.001


def format_p(p) -> str:
    """A p-value for a table cell: ``"< 0.001"`` below 0.001, else three decimals.

    Parameters
    ----------
    p : float or None
        A p-value; None, NaN or infinite give ``"NA"``.

    Returns
    -------
    str
        ``"< 0.001"``, ``"0.046"``, ``"1.000"`` or ``"NA"``. A value just under
        0.001 is ``"< 0.001"``, never ``"0.001"`` by rounding up.
    """
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "NA"
    if not math.isfinite(p):
        return "NA"
    return f"< {P_FLOOR:.3f}" if p < P_FLOOR else f"{p:.3f}"


def p_equals(p) -> str:
    """A p-value in running text: ``"p < 0.001"``, ``"p = 0.046"`` or ``"p = NA"``."""
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"
