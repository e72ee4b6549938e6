"""Glue for command-line and workflow scripts: one-line errors, logs, deterministic files.

Nothing here computes statistics or knows about a workflow engine; a script
hands in the path of its log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

from .errors import InputError

#: Significant digits of every number written to results (JSON and CSV). The last
#: digits of a float vary with the BLAS build and the order of summation; 12 digits
#: are far beyond any printed precision and identical on every machine.
DIGITS = 12


def fixed(x):
    """A float rounded to :data:`DIGITS` significant digits (NaN and inf become None)."""
    import math

    x = float(x)
    if not math.isfinite(x):
        return None
    return float(format(x, f".{DIGITS}g"))


def dumps(obj) -> str:
    """Deterministic JSON: sorted keys, floats at :data:`DIGITS` significant digits,
    NaN and inf as null, numpy scalars as Python values."""
    import json

    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, bool) or o is None or isinstance(o, str):
            return o
        kind = type(o).__name__
        if kind.startswith("bool"):  # numpy.bool_
            return bool(o)
        if isinstance(o, int) or kind.startswith(("int", "uint")):
            return int(o)
        if isinstance(o, float) or kind.startswith("float"):
            return fixed(o)
        return o

    return json.dumps(clean(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@contextlib.contextmanager
def guarded(log_path: str | os.PathLike | None):
    """Run a script body: warnings go to the log; an :class:`InputError` ends the
    script with its one-line message on standard error and in the log (exit 1),
    never a traceback."""
    log_file = None
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
    logging.basicConfig(stream=log_file or sys.stderr, level=logging.INFO, format="%(message)s", force=True)
    logging.captureWarnings(True)
    warnings.simplefilter("always")
    try:
        yield logging.getLogger("metarepro")
    except InputError as err:
        line = f"metarepro: error: {err.one_line()}"
        if log_file:
            log_file.write(line + "\n")
            log_file.flush()
        sys.stderr.write(line + "\n")
        raise SystemExit(1) from None
    finally:
        if log_file:
            log_file.close()


def write_text(path, text: str) -> None:
    """Write UTF-8 text with Unix line endings."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_records(path, columns, rows) -> None:
    """Deterministic CSV from a list of dicts, with the standard library only: the
    same conventions as :func:`write_csv` (empty cell for None, floats to 12
    significant digits, Unix line endings, minimal quoting)."""
    import csv

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return format(v, f".{DIGITS}g")
        return v

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows([cell(r.get(c)) for c in columns] for r in rows)


def write_csv(frame, path) -> None:
    """Deterministic CSV: 12 significant digits (also for floats in columns of mixed
    type), Unix line endings."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    mixed = [c for c in frame.columns if frame[c].dtype == object]
    if mixed:
        frame = frame.copy()
        for c in mixed:
            frame[c] = frame[c].map(lambda v: fixed(v) if isinstance(v, float) else v)
    frame.to_csv(path, index=False, float_format=f"%.{DIGITS}g", lineterminator="\n")
