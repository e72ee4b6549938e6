"""The studies a diagnostic works on: inputs resolved to one form, and the fits it needs.

Shared by :mod:`metarepro.diagnostics`, :mod:`metarepro.small_study` and
:mod:`metarepro.forensics`; written here because the three input forms below
(and MH/Peto refits from the 2x2 table) are this package's own.

Inputs
------
Most functions accept the studies in one of three forms:

* a :class:`~metarepro.pooling.PoolResult` (its per-study ``yi``/``vi``; method,
  test and level default to the result's),
* a study table (DataFrame) with ``measure=`` (and any pool options), or
* arrays ``yi`` and ``vi`` (model scale: log ratios, Fisher z).

Mantel-Haenszel and Peto fits have no regression form: diagnostics that refit
a regression or a ``rma.uni`` model (Egger, trim-and-fill, influence) use the
common-effect inverse-variance model for them, while leave-one-out, cumulative
and Baujat data refit MH/Peto from the 2x2 table (pass the table).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import io
from .errors import InputError, MetareproWarning
from .pooling import PoolResult, pool

# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    yi: np.ndarray
    vi: np.ndarray
    labels: np.ndarray
    method: str
    test: str
    level: float
    measure: str
    frame: pd.DataFrame | None
    pool_kw: dict


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)
        return fn(*a, **kw)


def _resolve(
    data, vi=None, *, labels=None, method=None, test=None, level=None, measure=None, pool_kw=None
) -> _Data:
    pool_kw = dict(pool_kw or {})
    if isinstance(data, PoolResult):
        st = data.studies
        ok = np.isfinite(st["yi"].to_numpy(float)) & np.isfinite(st["vi"].to_numpy(float))
        st = st[ok]
        return _Data(
            st["yi"].to_numpy(float),
            st["vi"].to_numpy(float),
            st["study"].astype(str).to_numpy(),
            method or data.method,
            test or data.test,
            float(level or data.level),
            data.measure,
            None,
            pool_kw,
        )
    if isinstance(data, pd.DataFrame):
        if measure is None:
            raise InputError(
                "a study table needs measure= (RR, OR, RD, MD, SMD, ROM, ZCOR or GEN)",
                file=data.attrs.get("source", "<data>"),
            )
        res = _quiet(
            pool,
            data,
            measure=measure,
            method=method or "REML",
            test=test or "z",
            level=level or 95,
            **pool_kw,
        )
        d = _resolve(res)
        return replace(d, frame=data.reset_index(drop=True), pool_kw=pool_kw)
    y = np.asarray(data, float).ravel()
    if vi is None:
        raise InputError("vi is needed with yi given as numbers")
    v = np.asarray(vi, float).ravel()
    if y.shape != v.shape:
        raise InputError(f"yi has {y.size} values but vi has {v.size}")
    lab = np.arange(1, y.size + 1).astype(str) if labels is None else np.asarray(labels).astype(str)
    if lab.size != y.size:
        raise InputError(f"{lab.size} labels for {y.size} studies")
    ok = np.isfinite(y) & np.isfinite(v)
    if (v[ok] <= 0).any():
        raise InputError("sampling variances must be > 0")
    return _Data(
        y[ok],
        v[ok],
        lab[ok],
        method or "REML",
        test or "z",
        float(level or 95),
        measure or "GEN",
        None,
        pool_kw,
    )


def _iv(method: str) -> str:
    """The inverse-variance model for regression-type diagnostics (MH/Peto → FE, MH-DL → DL)."""
    return {"MH": "FE", "PETO": "FE", "MH-DL": "DL"}.get(method, method)


def _pool_gen(y, v, labels, method, test, level, measure="GEN", by=None):
    frame = pd.DataFrame({"study": labels, "yi": y, "vi": v})
    if by is not None:
        frame.insert(0, "_group", by)
    res = _quiet(
        pool, frame, measure="GEN", method=method, test=test, level=level, by=None if by is None else "_group"
    )
    if by is None and measure != "GEN":
        res = replace(res, measure=measure)
    return res


def _groups(d: _Data, members: np.ndarray, groups: np.ndarray):
    """Pool the analyses ``groups`` (rows ``members`` of the studies) in one call;
    returns the per-group summary in group order."""
    if d.frame is not None and d.method in ("MH", "PETO"):
        rows = d.frame.iloc[members].reset_index(drop=True)
        rows.insert(0, "_group", groups)
        tab = _quiet(
            pool,
            rows,
            measure=d.measure,
            method=d.method,
            test=d.test,
            level=d.level,
            by="_group",
            **d.pool_kw,
        )
    elif d.method in ("MH", "PETO"):
        raise InputError(f"refitting {d.method} needs the 2x2 table: pass the study table and measure=")
    else:
        tab = _pool_gen(d.yi[members], d.vi[members], d.labels[members], d.method, d.test, d.level, by=groups)
    return tab.summary.sort_values("_group", kind="stable").reset_index(drop=True)


def _labels_index(d: _Data):
    """Rows of the study table (MH/Peto refits) or of yi/vi, and their labels."""
    if d.frame is not None and d.method in ("MH", "PETO"):
        return np.arange(len(d.frame)), io.check_studies(d.frame).astype(str)
    return np.arange(d.yi.size), d.labels
