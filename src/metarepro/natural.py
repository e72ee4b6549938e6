"""The natural scale of each effect measure: back-transformation of pooled
results for display, and the forward transformation of estimates printed on
the natural scale (``estimate,ci_lower,ci_upper`` input).

Which measures have which transformation is :data:`metarepro.names.TRANSFORM`;
the functions follow metafor 3.8's ``transf.*`` (``exp``, ``transf.ztor``,
``transf.ilogit``, ``transf.iarcsin``, ``transf.ipft.hm``, ``transf.isqrt``,
``transf.iirft``). Two need a sample size: the Freeman-Tukey proportion
(PFT) is back-transformed at the harmonic mean of the studies' totals, as
metafor's ``transf.ipft.hm`` (Miller 1978), and the Freeman-Tukey rate (IRFT)
at the harmonic mean of their person-times (metafor's ``transf.iirft`` given
that value; metafor 3.8 has no ``.hm`` variant for rates, so this is our choice,
by analogy). Measures without an entry (RD, MD, SMD, GEN, PR, IR, IRD, MN, MC,
SMCC, SMCR, COR, UCOR, PCOR, SPCOR) are reported on their own scale only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .effects_proportions import inverse_arcsine, inverse_freeman_tukey, inverse_logit
from .effects_rates import inverse_freeman_tukey_rate, inverse_sqrt
from .names import TRANSFORM

#: Back-transformations by name; each takes ``(x, size)`` (``size`` unused by most).
_BACK: dict[str, Callable] = {
    "log": lambda x, size=None: np.exp(x),
    "atanh": lambda x, size=None: np.tanh(x),
    "logit": lambda x, size=None: inverse_logit(x),
    "arcsine": lambda x, size=None: inverse_arcsine(x),
    "freeman_tukey": lambda x, size: inverse_freeman_tukey(x, size),
    "sqrt": lambda x, size=None: inverse_sqrt(x),
    "freeman_tukey_rate": lambda x, size: inverse_freeman_tukey_rate(x, size),
}

#: Forward transformations of a value printed on the natural scale.
_FORWARD: dict[str, Callable] = {
    "log": np.log,
    "atanh": np.arctanh,
    "logit": lambda p: np.log(p / (1 - p)),
    "arcsine": lambda p: np.arcsin(np.sqrt(p)),
    "sqrt": np.sqrt,
}

#: Transformations whose back-transformation needs the studies' sizes.
NEEDS_SIZE = ("freeman_tukey", "freeman_tukey_rate")


def back(measure: str) -> Callable | None:
    """Back-transformation ``f(x, size)`` of ``measure``, or None (no other scale)."""
    name = TRANSFORM.get(measure)
    return None if name is None else _BACK[name]


def needs_size(measure: str) -> bool:
    """True where the back-transformation needs the harmonic mean of the study sizes."""
    return TRANSFORM.get(measure) in NEEDS_SIZE


def forward(measure: str) -> Callable | None:
    """Transformation from the natural scale to the model scale (None: identity).

    Raises
    ------
    KeyError
        For PFT and IRFT, whose transformation depends on each study's size,
        so a printed interval cannot be carried to the model scale.
    """
    name = TRANSFORM.get(measure)
    if name is None:
        return None
    return _FORWARD[name]


def natural_values(measure: str, values: dict, size: float | np.ndarray | None = None) -> dict:
    """``{f"{name}_natural": back(value)}`` for every entry of ``values``; empty
    when the measure has no other scale."""
    fn = back(measure)
    if fn is None:
        return {}
    with np.errstate(over="ignore", invalid="ignore"):
        return {f"{k}_natural": fn(np.asarray(v, float), size) for k, v in values.items()}

