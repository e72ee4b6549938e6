"""Pieces shared by the effect-size modules: checking input columns and the
continuity-correction bookkeeping of count data.

Every check raises :class:`~metarepro.errors.InputError` with the file, the
row as the user sees it and the column, so a bad value is reported in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import io
from .errors import InputError

#: Continuity-correction conventions, as metafor's ``escalc(to=...)``.
TO_CHOICES = ("only0", "all", "if0all", "none")


@dataclass
class Computed:
    """Study-level effects of one input family, before they become an
    :class:`~metarepro.effects.EffectTable`.

    ``size`` is the per-study quantity a back-transformation needs (the
    sample size for PFT, the person-time for IRFT), None where none is needed.
    """

    yi: np.ndarray
    vi: np.ndarray
    corrections: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    size: np.ndarray | None = None


def fail(frame: pd.DataFrame, i, column: str, problem: str):
    """Raise the one-line error for row position ``i`` of ``frame``."""
    file = frame.attrs.get("source", "<data>")
    raise InputError(problem, file=file, row=io.row_label(frame, int(i)), column=column)


class Rows:
    """The rows of one input family: their positions in the table and their numbers.

    Checks report the row as the user sees it (file line), whatever the family.
    """

    def __init__(self, frame, family, positions):
        self.frame, self.family, self.pos = frame, family, np.asarray(positions, np.intp)
        mask = np.zeros(len(frame), bool)
        mask[self.pos] = True
        full = io.numeric_columns(frame, family, rows=mask)
        self.a = {c: full[c][self.pos] for c in family}
        self.keep = np.ones(len(self.pos), bool)

    def fail(self, i, column, problem):
        fail(self.frame, self.pos[i], column, problem)

    @staticmethod
    def first(mask):
        idx = np.flatnonzero(mask)
        return int(idx[0]) if idx.size else None

    def whole(self, cols, what="count"):
        for c in cols:
            i = self.first(self.a[c] != np.round(self.a[c]))
            if i is not None:
                self.fail(i, c, f"{what} {self.a[c][i]:g} is not a whole number")

    def positive(self, cols, what, zero_ok=False):
        """Fail on the first value <= 0 (< 0 with ``zero_ok``: a zero is then
        "not estimable", see :meth:`unusable`)."""
        for c in cols:
            i = self.first(self.a[c] < 0 if zero_ok else self.a[c] <= 0)
            if i is not None:
                self.fail(i, c, f"{what} must be > 0 (got {self.a[c][i]:g})")

    def unusable(self, mask, why, column, exclude, labels, excluded):
        """Rows of ``mask`` have no estimate: with ``exclude`` they are listed as
        "not estimable" (RevMan 5) and marked in ``self.keep``; else the first
        one stops with an error (metafor). Rows already marked are not listed twice."""
        new = np.flatnonzero(mask & self.keep)
        if new.size and not exclude:
            self.fail(new[0], column, f"not estimable: {why}")
        for i in new:
            excluded.append({"row": int(self.pos[i]), "study": labels[i], "reason": f"not estimable ({why})"})
        self.keep[new] = False

    def nonnegative(self, cols, what):
        for c in cols:
            i = self.first(self.a[c] < 0)
            if i is not None:
                self.fail(i, c, f"{what} must be >= 0 (got {self.a[c][i]:g})")

    def correlation(self, col, what="correlation", closed=False):
        """|r| <= 1 (``closed``) or |r| < 1; the message names the allowed range."""
        r = self.a[col]
        i = self.first(np.abs(r) > 1)
        if i is not None:
            self.fail(i, col, f"{what} {r[i]:g} is outside [-1, 1]")
        if not closed:
            i = self.first(np.abs(r) == 1)
            if i is not None:
                self.fail(i, col, f"{what} of exactly {r[i]:g} has no finite sampling variance "
                                  "(it must lie strictly between -1 and 1)")


def correction_mask(id0: np.ndarray, keep: np.ndarray, to: str, add: float,
                    group: np.ndarray | None) -> np.ndarray:
    """Studies that get the continuity correction ``add`` (metafor's ``to``).

    ``only0``: studies with a zero cell; ``all``: every study; ``if0all``: every
    study of an analysis in which any study has a zero cell (per ``group``);
    ``none`` (or ``add = 0``): no study.
    """
    if add == 0 or to == "none":
        return np.zeros_like(keep)
    if to == "all":
        return keep.copy()
    if to == "only0":
        return keep & id0
    grp = np.zeros(len(keep), np.intp) if group is None else pd.factorize(np.asarray(group))[0]
    any0 = np.bincount(grp, weights=(keep & id0).astype(float)) > 0
    return keep & any0[grp]


def record_corrections(rows: Rows, hit, id0, add, to, labels, cells: str) -> list:
    """One entry per corrected study (``row``: its position in the whole table),
    saying what was added to which cells and why."""
    out = []
    for i in np.flatnonzero(hit):
        reason = "zero cell" if id0[i] else f"to='{to}'"
        out.append({"row": int(rows.pos[i]), "study": labels[i], "action": f"added {add:g} to {cells} ({reason})"})
    return out


def exclude_not_estimable(rows: Rows, yi, vi, keep, labels, measure, why) -> tuple[np.ndarray, np.ndarray, list]:
    """NaN out studies whose ``yi``/``vi`` is not finite or whose ``vi`` is not positive,
    and say so (``why`` explains the usual cause for this family)."""
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    bad = keep & ~(np.isfinite(yi) & np.isfinite(vi) & (vi > 0))
    excluded = [{"row": int(rows.pos[i]), "study": labels[i], "reason": f"{measure} not estimable ({why})"}
                for i in np.flatnonzero(bad)]
    keep = keep & ~bad
    return np.where(keep, yi, np.nan), np.where(keep, vi, np.nan), excluded


def harmonic_mean(n, group=None, n_groups=1):
    """Harmonic mean of ``n`` (per ``group``), ignoring NaN."""
    n = np.asarray(n, float)
    ok = np.isfinite(n)
    g = np.zeros(n.size, np.intp) if group is None else np.asarray(group, np.intp)
    cnt = np.bincount(g[ok], minlength=n_groups)
    s = np.bincount(g[ok], weights=1 / n[ok], minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return cnt / s
