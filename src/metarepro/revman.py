"""Reading RevMan 5 review files (``.rm5``): every analysis with its study data
and RevMan's stored results.

A RevMan 5 file is XML. Its ``ANALYSES_AND_DATA`` element holds comparisons;
each comparison holds outcomes of one data type (``DICH_OUTCOME``: 2x2 counts,
``CONT_OUTCOME``: means/SDs, ``IV_OUTCOME``: generic inverse variance,
``IPD_OUTCOME``: O - E and variance, ``OTHER_OUTCOME``: "other data", not
pooled); an outcome holds study rows (``*_DATA``) directly or inside subgroups
(``*_SUBGROUP``). RevMan stores what it computed as attributes: per outcome and
subgroup ``EFFECT_SIZE, CI_START, CI_END, TAU2, I2, CHI2, DF, Z, P_Z, ...``,
per study ``EFFECT_SIZE, CI_START, CI_END, WEIGHT, SE, VAR``. Cochrane's
"StatsDataOnly.rm5" downloads and files saved by RevMan 5 share this format.

The reader keeps every number as the string RevMan wrote (standard 2: numbers
as printed) and maps RevMan's effect measure and method onto the engine's codes
(:func:`engine_method`). Problems with one analysis (an unsupported data type,
impossible counts) are collected in :attr:`Review.problems`, one line each,
and never stop the other analyses from being read. No well-kept library reads
RevMan 5 files in Python, hence this module; the XML itself is parsed by
``defusedxml``, which refuses entity-expansion and external-entity attacks.

References
----------
Cochrane Collaboration. Review Manager (RevMan) 5.3 user guide, 2014 (file
format and statistical algorithms, "RevMan 5 statistical methods" by J. Deeks
and J. Higgins). The R package meta (``read.rm5``, ``metacr``; Schwarzer 2007,
R News 7(3):40-45) reads the same format.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

#: RevMan data types this package pools, by element prefix.
DATA_TYPES = {"DICH": "dichotomous", "CONT": "continuous", "IV": "generic inverse variance",
              "IPD": "O - E and variance"}
#: Data types RevMan files may hold that cannot be pooled from their study rows.
UNSUPPORTED_TYPES = {"OTHER": "'other data' (free text/tables, nothing to pool)"}

#: RevMan's names of effect measures (attribute codes and the words of IV/IPD outcomes).
MEASURE_WORDS = {
    "rr": "RR", "risk ratio": "RR", "relative risk": "RR",
    "or": "OR", "odds ratio": "OR", "odds ratio (non-event)": "OR",
    "peto_or": "PETO_OR", "peto odds ratio": "PETO_OR",
    "rd": "RD", "risk difference": "RD",
    "md": "MD", "mean difference": "MD",
    "smd": "SMD", "std. mean difference": "SMD", "standardized mean difference": "SMD",
    "standardised mean difference": "SMD",
    "hr": "HR", "hazard ratio": "HR",
}
#: RevMan measures reported on the ratio scale (pooled on the log scale).
RATIO = ("RR", "OR", "PETO_OR", "HR")


@dataclass
class StudyRow:
    """One study row of an analysis, numbers as RevMan wrote them.

    ``data`` holds the entered numbers under the engine's column names
    (``events_t, total_t, ...``; ``yi, sei``; ``o_e, var``); ``published``
    RevMan's stored per-study results (``estimate, ci_lower, ci_upper, weight``,
    natural scale); ``quote`` the attributes as they stand in the file.
    """

    study: str
    year: str
    subgroup: str
    subgroup_no: str
    data: dict
    published: dict
    estimable: bool | None
    quote: str
    order: int = 0
    risk_of_bias: dict = field(default_factory=dict)
    in_overall: bool = True


@dataclass
class Total:
    """RevMan's pooled result for an outcome (``subgroup`` empty) or one subgroup."""

    subgroup: str
    subgroup_no: str
    values: dict
    quote: str


@dataclass
class Outcome:
    """One RevMan analysis ("Analysis c.o"): settings, study rows and stored totals."""

    comparison_no: str
    comparison: str
    outcome_no: str
    name: str
    data_type: str
    revman_measure: str
    measure: str | None
    method: str | None
    revman_method: str
    random: bool
    ci_study: float
    ci_total: float
    log_data: bool
    totals_shown: bool
    subgroups: bool
    group_labels: tuple
    favours: tuple
    studies: list = field(default_factory=list)
    totals: list = field(default_factory=list)
    inferred: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"Analysis {self.comparison_no}.{self.outcome_no}"

    @property
    def key(self) -> str:
        return f"{self.comparison_no}.{self.outcome_no}"

    @property
    def ratio(self) -> bool:
        return self.revman_measure in RATIO


@dataclass
class Review:
    """Everything read from one review file."""

    file: str
    format: str
    title: str
    doi: str
    cd: str
    review_id: str
    sha256: str
    software: str
    outcomes: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    printed_decimals: int | None = None
    inferred_methods: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The DOI of the review where the file prints it, else ``file:<name>``."""
        return self.doi or f"file:{Path(self.file).name}"

    @property
    def source_url(self) -> str:
        return f"https://doi.org/{self.doi}" if self.doi else f"file:{Path(self.file).name}"


def problem_line(file: str, where: str, problem: str) -> str:
    """The one line that reports a problem with part of a review."""
    return f"{file}, {where}: {' '.join(problem.split())}"


def engine_method(revman_measure: str, revman_method: str, random: bool) -> str | None:
    """Engine method code for RevMan's statistical method and analysis model.

    RevMan's "M-H, Random" is ``MH-DL`` (DerSimonian-Laird tau² from Q about
    the Mantel-Haenszel estimate, then inverse-variance weights); "M-H, Fixed"
    ``MH``; "Peto, Fixed" ``PETO``; "IV, Fixed" ``FE``; "IV, Random" ``DL``.
    """
    m = (revman_method or "").upper()
    if revman_measure == "PETO_OR" or m == "PETO":
        return "DL" if random and m == "IV" else "PETO"
    if m == "MH":
        return "MH-DL" if random else "MH"
    return "DL" if random else "FE"


def engine_measure(revman_measure: str, data_type: str) -> str | None:
    """Engine measure for RevMan's effect measure; None where the engine has none
    (generic ratio measures such as HR are pooled as ``GEN`` on the log scale)."""
    if revman_measure in ("RR", "OR", "RD", "MD", "SMD"):
        return revman_measure
    if revman_measure == "PETO_OR":
        return "OR"
    return "GEN"


def _measure_code(text: str) -> str:
    t = (text or "").strip()
    return MEASURE_WORDS.get(t.lower(), t.upper() or "")


def _num(attrs: dict, key: str) -> float | None:
    v = attrs.get(key)
    if v is None or str(v).strip() == "":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def _quote(attrs: dict, keys) -> str:
    return " ".join(f'{k}="{attrs[k]}"' for k in keys if k in attrs)


DATA_KEYS = {
    "DICH": {"EVENTS_1": "events_t", "TOTAL_1": "total_t", "EVENTS_2": "events_c", "TOTAL_2": "total_c"},
    "CONT": {"MEAN_1": "mean_t", "SD_1": "sd_t", "TOTAL_1": "total_t", "MEAN_2": "mean_c", "SD_2": "sd_c",
             "TOTAL_2": "total_c"},
    "IV": {"EFFECT_SIZE": "yi", "SE": "sei", "TOTAL_1": "total_t", "TOTAL_2": "total_c"},
    "IPD": {"O_E": "o_e", "VAR": "var", "TOTAL_1": "total_t", "TOTAL_2": "total_c"},
}
RESULT_KEYS = ("EFFECT_SIZE", "CI_START", "CI_END", "WEIGHT", "SE", "VAR", "ESTIMABLE")
TOTAL_KEYS = ("EFFECT_SIZE", "CI_START", "CI_END", "TAU2", "I2", "CHI2", "DF", "P_CHI2", "Z", "P_Z",
              "Q", "P_Q", "I2_Q", "WEIGHT", "STUDIES", "ESTIMABLE")


def _text(el, tag) -> str:
    child = el.find(tag)
    return "".join(child.itertext()).strip() if child is not None else ""


def read_rm5(path: str | Path) -> Review:
    """Read a RevMan 5 file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Review
        Its ``outcomes`` (one per RevMan analysis with data) and ``problems``
        (one line per analysis or study that could not be read, with the reason).

    Raises
    ------
    InputError
        If the file is missing, is not well-formed XML (with the line), or is
        not a RevMan 5 review (no ``COCHRANE_REVIEW`` root).
    """
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    path = Path(path)
    name = str(path)
    if not path.exists():
        raise InputError("file does not exist", file=name)
    if path.is_dir():
        raise InputError("is a folder, not a RevMan file", file=name)
    raw = path.read_bytes()
    try:
        root = fromstring(raw)
    except ParseError as exc:
        line = getattr(exc, "position", (None,))[0]
        raise InputError(f"is not well-formed XML ({str(exc).split(':')[0]}); not a readable RevMan 5 file",
                         file=name, row=line) from None
    except DefusedXmlException as exc:
        raise InputError(f"refused: the XML uses a forbidden construct ({type(exc).__name__})",
                         file=name) from None
    if root.tag != "COCHRANE_REVIEW":
        raise InputError(f"is not a RevMan 5 review: the XML root is <{root.tag}>, not <COCHRANE_REVIEW>",
                         file=name)
    doi = (root.get("DOI") or "").strip()
    cd = re.search(r"CD\d{6}", doi or path.name)
    title = _text(root.find("COVER_SHEET"), "TITLE") if root.find("COVER_SHEET") is not None else ""
    software = f"RevMan {root.get('REVMAN_VERSION', '')} ({(root.get('REVMAN_SUB_VERSION') or '').strip()})"
    review = Review(file=name, format="revman5", title=title, doi=doi, cd=cd.group(0) if cd else "",
                    review_id=root.get("ID", ""), sha256=hashlib.sha256(raw).hexdigest(), software=software)
    studies = {}
    for st in root.iter("STUDY"):
        studies[st.get("ID")] = (st.get("NAME") or st.get("ID"), st.get("YEAR") or "")
    data = root.find("ANALYSES_AND_DATA")
    if data is None:
        review.problems.append(problem_line(path.name, "review", "has no ANALYSES_AND_DATA section: no "
                                            "analyses to read"))
        return review
    for comp in data.findall("COMPARISON"):
        cno = comp.get("NO", "?")
        cname = _text(comp, "NAME")
        for el in comp:
            m = re.fullmatch(r"([A-Z]+)_OUTCOME", el.tag)
            if not m:
                continue
            kind = m.group(1)
            where = f"Analysis {cno}.{el.get('NO', '?')} ({_text(el, 'NAME')!r})"
            if kind not in DATA_TYPES:
                why = UNSUPPORTED_TYPES.get(kind, f"unknown outcome type <{el.tag}>")
                review.problems.append(problem_line(path.name, where, f"not imported: data type {why}"))
                continue
            out = _outcome(el, kind, cno, cname, studies, review, path.name, where)
            if out is not None:
                review.outcomes.append(out)
    return review


def _outcome(el, kind, cno, cname, studies, review, fname, where) -> Outcome | None:
    a = el.attrib
    word = a.get("EFFECT_MEASURE") or _text(el, "EFFECT_MEASURE")
    rm = _measure_code(word)
    if kind == "IPD" and not rm:
        rm = "PETO_OR"
    method = a.get("METHOD") or ("PETO" if kind == "IPD" else "IV")
    random = (a.get("RANDOM") or "NO").upper() == "YES"
    out = Outcome(
        comparison_no=cno, comparison=cname, outcome_no=a.get("NO", "?"), name=_text(el, "NAME"),
        data_type=DATA_TYPES[kind], revman_measure=rm, measure=engine_measure(rm, kind),
        method=engine_method(rm, method, random), revman_method=method, random=random,
        ci_study=_num(a, "CI_STUDY") or 95.0, ci_total=_num(a, "CI_TOTAL") or 95.0,
        log_data=(a.get("LOG_DATA") or ("YES" if rm in RATIO else "NO")).upper() == "YES",
        totals_shown=(a.get("TOTALS") or "YES").upper() != "NO",
        subgroups=(a.get("SUBGROUPS") or "NO").upper() == "YES",
        group_labels=(_text(el, "GROUP_LABEL_1"), _text(el, "GROUP_LABEL_2")),
        favours=(_text(el, "GRAPH_LABEL_1"), _text(el, "GRAPH_LABEL_2")))
    if kind == "IV" and rm in RATIO and not out.log_data:
        out.notes.append("generic inverse-variance data entered on the natural scale")
    if rm not in ("RR", "OR", "PETO_OR", "RD", "MD", "SMD", "HR") and kind in ("DICH", "CONT"):
        review.problems.append(problem_line(fname, where, f"not imported: unknown effect measure {word!r}"))
        return None
    if (a.get("SWAP_EVENTS") or "NO").upper() == "YES":
        out.notes.append("RevMan swapped events and non-events (SWAP_EVENTS=YES); counts are the non-events")
    out.totals.append(Total("", "", {k: a[k] for k in TOTAL_KEYS if k in a}, _quote(a, TOTAL_KEYS)))
    subs = el.findall(f"{kind}_SUBGROUP")
    rows = [(d, "", "") for d in el.findall(f"{kind}_DATA")]
    for sg in subs:
        sa = sg.attrib
        sname, sno = _text(sg, "NAME"), sa.get("NO", "")
        out.totals.append(Total(sname or f"subgroup {sno}", sno, {k: sa[k] for k in TOTAL_KEYS if k in sa},
                                _quote(sa, TOTAL_KEYS)))
        rows += [(d, sname or f"subgroup {sno}", sno) for d in sg.findall(f"{kind}_DATA")]
    keys = DATA_KEYS[kind]
    for d, sname, sno in rows:
        da = d.attrib
        sid = da.get("STUDY_ID", "")
        study, year = studies.get(sid, (sid.removeprefix("STD-"), ""))
        vals = {}
        for src, dst in keys.items():
            if src in da and da[src].strip() != "":
                vals[dst] = da[src].strip()
        pub = {}
        for src, dst in (("EFFECT_SIZE", "estimate"), ("CI_START", "ci_lower"), ("CI_END", "ci_upper"),
                         ("WEIGHT", "weight"), ("SE", "se")):
            if src in da and da[src].strip() != "":
                pub[dst] = da[src].strip()
        est = da.get("ESTIMABLE")
        srow = StudyRow(study=study, year=year, subgroup=sname, subgroup_no=sno, data=vals, published=pub,
                        estimable=None if est is None else est.upper() == "YES",
                        quote=_quote(da, list(keys) + list(RESULT_KEYS)), order=int(_num(da, "ORDER") or 0))
        bad = impossible(srow.data, kind)
        if bad:
            review.problems.append(problem_line(fname, f"{where}, study {study!r}", f"{bad}; the study is "
                                                "not imported, the rest of the analysis is"))
            continue
        out.studies.append(srow)
    return out


def impossible(data: dict, kind: str) -> str | None:
    """Why a row's numbers cannot describe a study (negative or non-numeric
    counts, more events than participants, negative SD or SE), else None.
    Rows RevMan calls "not estimable" (zero SD, no participants) are possible
    and are left to the engine, which lists them."""
    nums = {}
    for k, v in data.items():
        try:
            nums[k] = float(v)
        except ValueError:
            return f"column {k}: {v!r} is not a number"
    for arm in ("t", "c"):
        e, n = nums.get(f"events_{arm}"), nums.get(f"total_{arm}")
        if n is not None and n < 0:
            return f"total_{arm} = {data[f'total_{arm}']} is negative"
        if e is not None and e < 0:
            return f"events_{arm} = {data[f'events_{arm}']} is negative"
        if e is not None and n is not None and e > n:
            return f"events_{arm} = {data[f'events_{arm}']} exceed total_{arm} = {data[f'total_{arm}']}"
        sd = nums.get(f"sd_{arm}")
        if sd is not None and sd < 0:
            return f"sd_{arm} = {data[f'sd_{arm}']} is negative"
    if nums.get("sei") is not None and nums["sei"] < 0:
        return f"sei = {data['sei']} is negative"
    if nums.get("var") is not None and nums["var"] < 0:
        return f"var = {data['var']} is negative"
    return None
