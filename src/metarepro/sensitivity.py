"""Leave-one-out and cumulative meta-analysis, each as one vectorised pooling call.

Both build all the sub-analyses as one long table with a group column and pool
them in a single :func:`metarepro.pool` call (no Python loop per sub-analysis),
which is why they are written here rather than looped over a one-analysis fitter.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .errors import MetareproWarning
from .pooling import pool

COLUMNS = ("k", "estimate", "se", "statistic", "pvalue", "ci_lower", "ci_upper", "q", "q_pvalue", "tau2",
           "i2", "h2")


def _pool_groups(y, v, labels, groups, method, test, level):
    frame = pd.DataFrame({"group": groups, "study": labels, "yi": y, "vi": v})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)
        return pool(frame, measure="GEN", method=method, test=test, by="group", level=level).summary


def leave_one_out(yi, vi, labels, *, method: str = "REML", test: str = "z", level: float = 95) -> pd.DataFrame:
    """Pool the studies k times, each time without one (metafor's ``leave1out``).

    Parameters
    ----------
    yi, vi : array_like
        Study effects and sampling variances (analysis scale).
    labels : array_like of str
        Study labels, in the same order.
    method, test, level :
        As :func:`metarepro.pool`.

    Returns
    -------
    DataFrame
        One row per omitted study: ``omitted`` and the pooled fields without it.

    References
    ----------
    Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125.
    """
    y, v = np.asarray(yi, float), np.asarray(vi, float)
    labels = np.asarray(labels).astype(str)
    k = y.size
    keep = ~np.eye(k, dtype=bool)
    rows = np.nonzero(keep)  # (omitted index, kept index)
    summary = _pool_groups(y[rows[1]], v[rows[1]], labels[rows[1]], rows[0], method, test, level)
    out = summary[list(COLUMNS)].copy()
    out.insert(0, "omitted", labels[summary["group"].to_numpy()])
    return out.reset_index(drop=True)


def cumulative(yi, vi, labels, order, *, method: str = "REML", test: str = "z", level: float = 95) -> pd.DataFrame:
    """Cumulative meta-analysis: add studies one at a time in ``order`` (e.g. year),
    as metafor's ``cumul`` (ties keep their input order).

    Returns
    -------
    DataFrame
        One row per step: ``added`` (the study added at that step) and the
        pooled fields of the first j studies.

    References
    ----------
    Lau J et al. (1992). Cumulative meta-analysis of therapeutic trials for
    myocardial infarction. N Engl J Med 327:248-254.
    """
    y, v = np.asarray(yi, float), np.asarray(vi, float)
    labels = np.asarray(labels).astype(str)
    idx = np.argsort(np.asarray(order), kind="stable")
    k = y.size
    steps = np.repeat(np.arange(k), np.arange(1, k + 1))  # step j holds the first j+1 studies
    members = np.concatenate([idx[: j + 1] for j in range(k)])
    summary = _pool_groups(y[members], v[members], labels[members], steps, method, test, level)
    out = summary[list(COLUMNS)].copy()
    out.insert(0, "added", labels[idx])
    return out.reset_index(drop=True)
