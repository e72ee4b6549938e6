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
            return format(v, ".12g")
        return v

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows([cell(r.get(c)) for c in columns] for r in rows)


def write_csv(frame, path) -> None:
    """Deterministic CSV: 12 significant digits, Unix line endings."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.12g", lineterminator="\n")
