"""The evidence base: loading and checking ``data/extracted/<analysis>.csv/.yaml``.

The rules (``data/extracted/README.md``): every row names its source, the stored
page, the location and the words that print its numbers; every number of a row
appears in its quote unless the row says how it was derived; every trial of a
published analysis is present or missing with a reason; every target has a
source. A breach is an :class:`~metarepro.errors.InputError` naming the file,
row (or YAML path) and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .errors import InputError
from .spec import check_spec, outcome_measure

PROVENANCE = ("source", "source_url", "source_location", "quote")
REQUIRED_CSV = ("study", "outcome") + PROVENANCE + ("derived",)
DATA_COLUMNS = tuple(dict.fromkeys(io.BINARY + io.CONTINUOUS + io.CORRELATION + io.GENERIC_VI
                                   + io.GENERIC_SEI + io.GENERIC_CI))
SOURCE_RE = re.compile(r"^(10\.\d{4,9}/\S+|PMID:\s?\d+|PMC\d+|file:\S.*)$")


@dataclass(frozen=True)
class Analysis:
    """One analysis of the evidence base: its YAML spec and its CSV rows."""

    name: str
    spec: dict
    table: pd.DataFrame
    csv_path: str
    yaml_path: str

    def outcomes(self) -> list[str]:
        return [o["name"] for o in self.spec["outcomes"]]

    def measure_of(self, outcome: str) -> str:
        return outcome_measure(self.spec, outcome)

    def rows(self, outcome: str) -> pd.DataFrame:
        """The rows of one outcome, keeping only the data columns its rows fill,
        with ``attrs`` pointing at the file lines for error messages."""
        t = self.table
        sel = (t["outcome"] == outcome).to_numpy()
        sub = t[sel].copy()
        filled = [c for c in DATA_COLUMNS if c in sub.columns and (sub[c].str.strip() != "").any()]
        empty = [c for c in DATA_COLUMNS if c in sub.columns and c not in filled]
        sub = sub.drop(columns=empty).reset_index(drop=True)
        sub.attrs["source"] = self.csv_path
        sub.attrs["lines"] = list(np.flatnonzero(sel) + 2)
        sub.attrs["first_line"] = None
        return sub

    def flagged(self) -> dict[str, str]:
        """Study label → integrity flag (retracted / questioned)."""
        return {f["study"]: f["flag"] for f in (self.spec.get("integrity_flags") or [])}

    def trials_missing(self, outcome: str) -> list[dict]:
        out = []
        for t in self.spec.get("trials") or []:
            outs = t.get("outcomes")
            if t["status"] == "missing" and (not outs or outcome in outs):
                out.append(t)
        return out


#: Counts a source prints in words ("eight at the hip", "one hip fracture").
NUMBER_WORDS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
     "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}
NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                     "ninety": 90, "hundred": 100})


def _number_strings(text: str) -> list[str]:
    return re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", text.replace("\u2212", "-"))


def _in_quote(cell: str, quote: str) -> bool:
    """Does the number ``cell`` (as written in the CSV) appear in ``quote``?

    Thousands separators are ignored ("1,176" matches 1176); a leading minus
    may be printed as a dash or not at all (a decrease written in words); a
    whole number up to twenty (and the tens to a hundred) may be printed as a
    word ("eight at the hip" matches 8).
    """
    q = re.sub(r"(?<=\d),(?=\d{3}\b)", "", quote)
    q = q.replace("\u2212", "-").replace("\u2013", "-")
    c = cell.strip().lstrip("+")
    for form in {c, c.lstrip("-")}:
        if re.search(r"(?<![\d.])" + re.escape(form) + r"(?![\d])", q):
            return True
        # trailing zeros dropped in the CSV: 0.70 printed, 0.7 written
        try:
            v = float(form)
        except ValueError:
            continue
        for tok in _number_strings(q):
            try:
                if float(tok) == v or float(tok) == abs(v):
                    return True
            except ValueError:
                pass
    try:
        v = float(c)
    except ValueError:
        return False
    words = [w for w, n in NUMBER_WORDS.items() if n == v]
    return any(re.search(rf"\b{w}\b", quote, flags=re.IGNORECASE) for w in words)


def check_csv(path: str | Path, outcomes: list[str] | None = None) -> pd.DataFrame:
    """Read and check an extracted CSV against the provenance rules."""
    frame = io.read_table(path)
    name = str(path)
    for col in REQUIRED_CSV:
        if col not in frame.columns:
            raise InputError(f"missing column '{col}' (every extracted row needs study, outcome, "
                             "source, source_url, source_location, quote, derived)", file=name)
    data_cols = [c for c in DATA_COLUMNS if c in frame.columns]
    if not data_cols:
        raise InputError("no data columns (events_t/…, mean_t/…, r/total, yi/vi or estimate/ci)", file=name)
    for i, row in frame.iterrows():
        line = int(i) + 2
        for col in PROVENANCE:
            if not row[col].strip():
                raise InputError(f"empty {col}: every number must say where it was read", file=name,
                                 row=line, column=col)
        if not SOURCE_RE.match(row["source"].strip()):
            raise InputError(f"source '{row['source']}' is not a DOI (10.xxxx/...), PMID:nnnn, PMCnnnn or "
                             "file:<name> (an imported review file)", file=name, row=line, column="source")
        if not row["source_url"].strip().startswith(("http://", "https://", "file:")):
            raise InputError("source_url is not a web address", file=name, row=line, column="source_url")
        if outcomes is not None and row["outcome"] not in outcomes:
            raise InputError(f"outcome '{row['outcome']}' is not one of the YAML's outcomes "
                             f"({', '.join(outcomes)})", file=name, row=line, column="outcome")
        derived = row["derived"].strip()
        for col in data_cols:
            cell = row[col].strip()
            if not cell:
                continue
            try:
                float(cell.replace(",", ""))
            except ValueError:
                raise InputError(f"'{cell}' is not a number", file=name, row=line, column=col) from None
            if not derived and not _in_quote(cell, row["quote"]):
                raise InputError(f"{cell} does not appear in the quote; quote the words that print it "
                                 "or explain the arithmetic in 'derived'", file=name, row=line, column=col)
    dup = frame.duplicated(subset=[c for c in ("outcome", "comparison", "subgroup", "study") if c in frame.columns])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"duplicate study '{frame['study'].iloc[i]}' within its outcome (and subgroup)", file=name,
                         row=i + 2, column="study")
    return frame


def load_analysis(csv_path: str | Path, yaml_path: str | Path) -> Analysis:
    """Load one analysis, checking both files."""
    spec = check_spec(yaml_path)
    csv_path = Path(csv_path)
    if csv_path.exists():
        table = check_csv(csv_path, [o["name"] for o in spec["outcomes"]])
    else:  # targets only: no per-trial data could be read
        table = pd.DataFrame(columns=list(REQUIRED_CSV))
    present = {t["study"] for t in spec["trials"] if t["status"] == "present"}
    for i, s in enumerate(table["study"]):
        if present and s not in present and not any(s.startswith(p) for p in present):
            raise InputError(f"study '{s}' has rows but is not listed as present in the YAML trials",
                             file=str(csv_path), row=i + 2, column="study")
    return Analysis(name=spec["analysis"], spec=spec, table=table, csv_path=str(csv_path),
                    yaml_path=str(yaml_path))


from .plan import discover, outcomes_with_data  # noqa: F401 - re-exported

