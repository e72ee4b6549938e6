"""Reading study tables and checking them before any statistics are done.

Everything a user can get wrong in a CSV is caught here and reported as one
:class:`~metarepro.errors.InputError` line naming the file, row and column.
"""

from __future__ import annotations

import difflib
import io as _io
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .names import MEASURES, RATIO_MEASURES  # noqa: F401 - part of this module's vocabulary

#: Column families: which columns each kind of input needs.
BINARY = ("events_t", "total_t", "events_c", "total_c")
CONTINUOUS = ("mean_t", "sd_t", "total_t", "mean_c", "sd_c", "total_c")
CORRELATION = ("r", "total")
#: One group: events of ``total`` participants (proportions).
PROPORTION = ("events", "total")
#: One group: events in ``time`` person-time (incidence rates).
RATE = ("events", "time")
#: Two groups: events and person-time of each.
RATE2 = ("events_t", "time_t", "events_c", "time_c")
#: One group: mean, SD and number of participants.
MEAN = ("mean", "sd", "total")
#: One group measured twice (pre-post or matched pairs) and the correlation of the measurements.
CHANGE = ("mean_pre", "mean_post", "sd_pre", "sd_post", "r_prepost", "total")
#: SMCR standardises by the pre-test SD and needs no post-test SD.
CHANGE_SMCR = ("mean_pre", "mean_post", "sd_pre", "r_prepost", "total")
#: Partial correlation of a regression coefficient: its t statistic as printed, or the
#: partial correlation itself, with the sample size and the number of predictors.
PARTIAL_T = ("t", "total", "predictors")
PARTIAL_R = ("r", "total", "predictors")
#: Semi-partial correlation: as above plus the model's R².
SEMIPARTIAL_T = ("t", "total", "predictors", "r2")
SEMIPARTIAL_R = ("r", "total", "predictors", "r2")
GENERIC_VI = ("yi", "vi")
GENERIC_SEI = ("yi", "sei")
GENERIC_CI = ("estimate", "ci_lower", "ci_upper")

#: The native input family of each measure (None: generic input only).
FAMILY_OF_MEASURE = {
    "RR": BINARY, "OR": BINARY, "RD": BINARY,
    "MD": CONTINUOUS, "SMD": CONTINUOUS, "ROM": CONTINUOUS,
    "ZCOR": CORRELATION, "COR": CORRELATION, "UCOR": CORRELATION,
    **dict.fromkeys(("PR", "PLN", "PLO", "PAS", "PFT"), PROPORTION),
    **dict.fromkeys(("IR", "IRLN", "IRS", "IRFT"), RATE),
    "IRR": RATE2, "IRD": RATE2,
    "MN": MEAN, "MNLN": MEAN,
    "MC": CHANGE, "SMCC": CHANGE, "ROMC": CHANGE, "SMCR": CHANGE_SMCR,
    "PCOR": PARTIAL_T, "ZPCOR": PARTIAL_T, "SPCOR": SEMIPARTIAL_T,
    "GEN": None,
}
#: Further native families, tried after FAMILY_OF_MEASURE's.
OTHER_FAMILIES_OF_MEASURE = {"PCOR": (PARTIAL_R,), "ZPCOR": (PARTIAL_R,), "SPCOR": (SEMIPARTIAL_R,)}
_NATIVE = (BINARY, CONTINUOUS, CORRELATION, PROPORTION, RATE, RATE2, MEAN, CHANGE, CHANGE_SMCR,
           PARTIAL_T, PARTIAL_R, SEMIPARTIAL_T, SEMIPARTIAL_R)
ALL_KNOWN = set(sum(_NATIVE, ()) + GENERIC_VI + GENERIC_SEI + GENERIC_CI)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a study table as a spreadsheet writes it.

    UTF-8 with or without a byte-order mark, Unix or Windows line endings.
    Cells are read as text and converted later, column by column, so that a
    non-numeric cell can be reported with its row and column.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    pandas.DataFrame
        With ``attrs["source"]`` set to the path, so later errors name the file.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise InputError("file does not exist", file=name)
    if path.is_dir():
        raise InputError("is a folder, not a CSV file", file=name)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text (byte {exc.start})", file=name) from None
    if not text.strip():
        raise InputError("is empty", file=name)
    try:
        frame = pd.read_csv(_io.StringIO(text), dtype=str, keep_default_na=False,
                            skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise InputError(f"is not a readable CSV table ({' '.join(str(exc).split())})",
                         file=name) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise InputError("has a header but no rows", file=name)
    frame.attrs["source"] = name
    frame.attrs["first_line"] = 2
    return frame


def _where(frame: pd.DataFrame) -> tuple[str, int | None]:
    return frame.attrs.get("source", "<data>"), frame.attrs.get("first_line")


def row_label(frame: pd.DataFrame, position: int) -> int | str:
    """The row as the user sees it: the file's line number, or the frame's index label."""
    lines = frame.attrs.get("lines")
    if lines is not None:
        return int(lines[position])
    _, first = _where(frame)
    if first is not None:
        return first + position
    return frame.index[position]


def native_families(measure: str) -> list[tuple[str, ...]]:
    """The families in which a measure's own numbers may be given, preferred first."""
    native = FAMILY_OF_MEASURE[measure]
    return ([native] if native else []) + list(OTHER_FAMILIES_OF_MEASURE.get(measure, ()))


def choose_family(frame: pd.DataFrame, measure: str) -> tuple[str, ...]:
    """Pick the column family that the measure and the table's columns imply.

    Raises
    ------
    InputError
        Unknown measure, or none of the families the measure accepts is present
        (the message names the missing columns and likely misspellings).
    """
    file, _ = _where(frame)
    if measure not in MEASURES:
        raise InputError(f"unknown measure '{measure}' (choose one of {', '.join(MEASURES)})",
                         file=file)
    cols = set(frame.columns)
    native = FAMILY_OF_MEASURE[measure]
    natives = native_families(measure)
    candidates = natives + [GENERIC_VI, GENERIC_SEI, GENERIC_CI]
    for fam in candidates:
        if set(fam) <= cols:
            return fam
    # Nothing fits: explain with the family closest to what is there.
    best = max(candidates, key=lambda fam: len(set(fam) & cols))
    missing = [c for c in best if c not in cols]
    hints = []
    for c in missing:
        close = difflib.get_close_matches(c, [x for x in frame.columns if x not in ALL_KNOWN],
                                          n=1, cutoff=0.6)
        hints.append(f"'{c}'" + (f" (is '{close[0]}' a misspelling?)" if close else ""))
    other = [fam for fam in _NATIVE if fam not in natives and set(fam) <= cols]
    if other:
        raise InputError(
            f"measure {measure} does not fit the columns {','.join(other[0])}; "
            f"it needs {','.join(native or GENERIC_VI)} or generic yi,vi / estimate,ci_lower,ci_upper",
            file=file)
    raise InputError(f"missing column {', '.join(hints)} for measure {measure}", file=file)


def _blank(values: pd.Series) -> np.ndarray:
    """Cells with nothing in them (empty text, NaN, 'NA')."""
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.astype(str).str.strip()
        return (values.isna() | text.isin(("", "nan", "NaN", "None", "NA"))).to_numpy()
    return values.isna().to_numpy()


def row_families(frame: pd.DataFrame, measure: str) -> list[tuple[str, ...]]:
    """The input family of every row: the columns in which that row's numbers were given.

    A table may mix families within one analysis: 2x2 counts (or means and SDs)
    where a source printed them, an estimate with its CI (or ``yi,vi`` /
    ``yi,sei``) where only that was printed. Each row takes the first family,
    in the order of :func:`choose_family` (the measure's own family first), whose
    cells it fills completely.

    Raises
    ------
    InputError
        Naming the row and column when a row fills no family completely, or
        fills the measure's own family only in part (numbers would be lost).
    """
    file, _ = _where(frame)
    choose_family(frame, measure)  # unknown measure, or no family's columns at all
    cols = set(frame.columns)
    native = FAMILY_OF_MEASURE[measure]
    natives = native_families(measure)
    candidates = [f for f in natives + [GENERIC_VI, GENERIC_SEI, GENERIC_CI] if set(f) <= cols]
    blank = {c: _blank(frame[c]) for f in candidates for c in f}
    n = len(frame)
    fams: list = [None] * n
    for fam in candidates:
        full = np.ones(n, bool)
        for c in fam:
            full &= ~blank[c]
        for i in np.flatnonzero(full):
            if fams[i] is None:
                fams[i] = fam
    for i in range(n):
        if native in candidates and fams[i] not in natives:
            given = [c for c in native if not blank[c][i]]
            if given and len(given) < len(native) and fams[i] is not None:
                gap = next(c for c in native if blank[c][i])
                raise InputError(f"fills only some of {','.join(native)} ({', '.join(given)}); give every "
                                 f"one of them or none, so that no printed number is lost", file=file,
                                 row=row_label(frame, i), column=gap)
        if fams[i] is None:
            # the first empty cell of the family this row comes closest to filling
            best = max(candidates, key=lambda f: sum(not blank[c][i] for c in f))
            gap = next(c for c in best if blank[c][i])
            raise InputError("empty cell", file=file, row=row_label(frame, i), column=gap)
    return fams


def counts_on_every_row(frame: pd.DataFrame, measure: str) -> bool:
    """Does every row give 2x2 counts (what Mantel-Haenszel and Peto need)?"""
    if FAMILY_OF_MEASURE.get(measure) != BINARY or not set(BINARY) <= set(frame.columns) or frame.empty:
        return False
    return all(~_blank(frame[c]).any() for c in BINARY)


def numeric_columns(frame: pd.DataFrame, columns: tuple[str, ...],
                    rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Convert the named columns to float arrays, failing on the first bad cell.

    With ``rows`` (a boolean mask) only those rows are converted and checked;
    the others are NaN.
    """
    file, _ = _where(frame)
    out = {}
    sel = None if rows is None else np.asarray(rows, bool)
    for col in columns:
        values = frame[col]
        if sel is not None:
            values = values.where(sel, "0") if (values.dtype == object
                                                or pd.api.types.is_string_dtype(values)) else values.where(sel, 0.0)
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            text = values.astype(str).str.strip().str.replace(",", "", regex=False)
            num = pd.to_numeric(text, errors="coerce")
            bad = num.isna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                cell = str(values.iloc[i]).strip()
                problem = "empty cell" if cell in ("", "nan", "NaN", "None", "NA") else f"'{cell}' is not a number"
                raise InputError(problem, file=file, row=row_label(frame, i), column=col)
            arr = num.to_numpy(dtype=float)
        else:
            arr = values.to_numpy(dtype=float)
            bad = np.isnan(arr)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError("empty cell", file=file, row=row_label(frame, i), column=col)
        inf = ~np.isfinite(arr)
        if inf.any():
            i = int(np.flatnonzero(inf)[0])
            raise InputError("value is not finite", file=file, row=row_label(frame, i), column=col)
        if sel is not None:
            arr = np.where(sel, arr, np.nan)
        out[col] = arr
    return out


def check_studies(frame: pd.DataFrame, by: str | None = None) -> np.ndarray:
    """Return the study labels, checking they exist and are unique (within ``by`` groups)."""
    file, _ = _where(frame)
    if "study" not in frame.columns:
        close = difflib.get_close_matches("study", list(frame.columns), n=1, cutoff=0.6)
        hint = f" (is '{close[0]}' a misspelling?)" if close else ""
        raise InputError(f"missing column 'study'{hint}", file=file)
    raw = frame["study"]
    if pd.api.types.is_numeric_dtype(raw):
        labels = raw.astype(str)
    else:
        labels = raw.astype(str).str.strip()
    empty = (labels == "") | (labels.str.lower() == "nan") | raw.isna()
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError("empty study label", file=file, row=row_label(frame, i), column="study")
    keys = [labels] if by is None else [frame[by], labels]
    dup = pd.DataFrame({f"k{j}": k.to_numpy() for j, k in enumerate(keys)}).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        scope = "" if by is None else f" within {by} '{frame[by].iloc[i]}'"
        raise InputError(f"duplicate study label '{labels.iloc[i]}'{scope}", file=file,
                         row=row_label(frame, i), column="study")
    return labels.to_numpy()
