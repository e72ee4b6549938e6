"""Fitting the models of many analyses at once.

The steps that fit many small models (the pooled table, the heterogeneity report,
method forensics, the verdicts) are written once, as generators: a step yields a
list of :class:`Fit` requests, receives their results (a :class:`~metarepro.pooling.PoolResult`,
or the :class:`~metarepro.errors.InputError` the fit raised) and finally returns
what it computes. :func:`drive` runs one such conversation alone, one
:func:`~metarepro.pooling.pool` call per request: that is what the library's
functions (:func:`metarepro.analysis.pooled_table` and the others) do.
:func:`drive_many` runs the conversations of a whole batch of analyses in
lockstep and fits the requests of each round that share their options with one
vectorised ``pool(..., by=...)`` call (:func:`fit_many`), so that a batch of a
thousand analyses costs a few dozen engine calls instead of a few hundred
thousand.

The numbers are the same: ``pool(by=...)`` fits every group on its own (per-group
sums in input order, element-wise root searches), and each request's corrections,
exclusions and warnings are given back as its own call would give them
(``tests/test_batch.py`` compares both paths byte for byte). A group whose
vectorised call fails is fitted request by request, so that each request gets
its own error, naming its own file and row.

Nothing here knows about a workflow engine.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import io
from .errors import InputError, MetareproWarning
from .names import FIELDS
from .pooling import BOOL_FIELDS, PoolResult, pool

#: Column that numbers the requests of a stacked table.
_KEY = "_fit"
#: The columns ``pool`` reads: the study label and the columns of every input family.
_ENGINE_COLUMNS = tuple(dict.fromkeys(("study",) + io.BINARY + io.CONTINUOUS + io.CORRELATION
                                      + io.GENERIC_VI + io.GENERIC_SEI + io.GENERIC_CI))


@dataclass(frozen=True, eq=False)
class Fit:
    """One model to fit: a study table and the keyword arguments of
    :func:`~metarepro.pooling.pool` (made with :meth:`of`).

    ``studies=False`` asks only for the fields, corrections, exclusions and
    warnings of the result (its ``studies`` table is then None), which is all
    most steps read and saves building a table per fit in a batch.
    """

    frame: pd.DataFrame
    kw: tuple = ()
    studies: bool = field(default=True)

    @classmethod
    def of(cls, frame: pd.DataFrame, *, studies: bool = True, **pool_kw) -> Fit:
        """A request for ``pool(frame, **pool_kw)``."""
        return cls(frame, tuple(sorted(pool_kw.items())), studies)

    def options(self) -> dict:
        """Keyword arguments of :func:`~metarepro.pooling.pool`."""
        return dict(self.kw)


Conversation = Generator[list, list, object]


def value(result):
    """The result of a fit, or raise the :class:`InputError` it raised."""
    if isinstance(result, InputError):
        raise result
    return result


def fit_alone(request: Fit) -> PoolResult | InputError:
    """One :func:`~metarepro.pooling.pool` call, its warnings silenced (they are in
    ``result.warnings``); an :class:`InputError` is returned, not raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetareproWarning)
            return pool(request.frame, **request.options())
    except InputError as err:
        return err


def drive(conversation: Conversation):
    """Run one conversation alone (one ``pool`` call per request); return its result."""
    try:
        requests = next(conversation)
        while True:
            requests = conversation.send([fit_alone(r) for r in requests])
    except StopIteration as stop:
        return stop.value


def drive_many(conversations: Iterable[Conversation]) -> list:
    """Run many conversations in lockstep, fitting each round with :func:`fit_many`.

    Returns one result per conversation, in order; a conversation that raised an
    :class:`InputError` gives that error instead of a result (the others go on).
    """
    gens = list(conversations)
    results: list = [None] * len(gens)
    pending: dict[int, list] = {}

    def step(i, send):
        try:
            pending[i] = send()
        except StopIteration as stop:
            results[i] = stop.value
            pending.pop(i, None)
        except InputError as err:
            results[i] = err
            pending.pop(i, None)

    for i, g in enumerate(gens):
        step(i, g.__next__)
    while pending:
        order = list(pending)
        flat = [r for i in order for r in pending[i]]
        fitted = fit_many(flat)
        start = 0
        for i in order:
            n = len(pending[i])
            answer = fitted[start:start + n]
            start += n
            step(i, lambda g=gens[i], a=answer: g.send(a))
    return results


def _engine_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of a table that ``pool`` reads, numbers as floats.

    Text cells are converted once here rather than once per fit; a column with a
    cell that is neither blank nor a number is left as text (its fit then fails,
    alone, with that cell's own error).
    """
    sub = frame[[c for c in _ENGINE_COLUMNS if c in frame.columns]].copy()
    for col in sub.columns:
        values = sub[col]
        if col == "study" or not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        text = values.astype(str).str.strip().str.replace(",", "", regex=False)
        num = pd.to_numeric(text, errors="coerce")
        blank = values.isna() | text.isin(("", "nan", "NaN", "None", "NA"))
        if (num.isna() & ~blank).any():
            continue
        sub[col] = num.to_numpy(dtype=float)
    return sub


def _signature(request: Fit, frame: pd.DataFrame) -> tuple:
    """Requests that may share one vectorised call: same options, same columns and types."""
    return (request.kw, tuple((c, str(t)) for c, t in frame.dtypes.items()))


def fit_many(requests: list[Fit]) -> list:
    """Fit many requests; results in order (a PoolResult or the InputError raised).

    Requests with the same options and the same columns are stacked into one
    table with a request number and fitted by one ``pool(..., by=...)`` call;
    each result is then cut out of the call's summary as the request's own call
    would have returned it. If the stacked call fails, that group is fitted
    request by request.
    """
    out: list = [None] * len(requests)
    groups: dict[tuple, list[int]] = {}
    frames: dict[int, pd.DataFrame] = {}
    converted: dict[int, pd.DataFrame] = {}  # by id of the request's table: many requests share one
    for i, r in enumerate(requests):
        if len(r.frame) == 0 or "study" not in r.frame.columns:
            out[i] = fit_alone(r)  # its own call gives its own error
            continue
        key = id(r.frame)
        if key not in converted:
            converted[key] = _engine_frame(r.frame)
        frames[i] = converted[key]
        groups.setdefault(_signature(r, frames[i]), []).append(i)
    for idx in groups.values():
        if len(idx) == 1:
            out[idx[0]] = fit_alone(requests[idx[0]])
            continue
        for i, res in zip(idx, _fit_stacked([requests[i] for i in idx], [frames[i] for i in idx])):
            out[i] = res
    return out


def _fit_stacked(reqs: list[Fit], frames: list[pd.DataFrame]) -> list:
    sizes = np.array([len(f) for f in frames])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    stacked = pd.concat(frames, ignore_index=True)
    stacked[_KEY] = np.repeat(np.arange(len(reqs)), sizes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetareproWarning)
            table = pool(stacked, by=_KEY, **reqs[0].options())
    except InputError:
        return [fit_alone(r) for r in reqs]
    summary = table.summary
    if len(summary) != len(reqs) or not np.array_equal(summary[_KEY].to_numpy(), np.arange(len(reqs))):
        return [fit_alone(r) for r in reqs]
    columns = {name: summary[name].to_numpy() for name in FIELDS}
    size = summary["natural_size"].to_numpy(float) if "natural_size" in summary.columns else None
    notes = {name: [[] for _ in reqs] for name in ("corrections", "excluded")}
    for name in notes:
        for item in getattr(table, name):
            j = int(item.pop(_KEY))
            item["row"] = int(item["row"] - offsets[j])
            notes[name][j].append(item)
    said = [[] for _ in reqs]
    for w in table.warnings:
        head, _, text = w.partition(": ")
        said[int(head.split("=", 1)[1])].append(text)
    st = table.studies
    study_cols = [c for c in st.columns if c != _KEY]
    ints = {"k", "q_df", "df", *BOOL_FIELDS}
    results = []
    for j, r in enumerate(reqs):
        df = float(columns["df"][j])
        kw = {n: float(columns[n][j]) for n in FIELDS if n not in ints}
        studies = None
        if r.studies:
            studies = st.iloc[offsets[j]:offsets[j] + sizes[j]][study_cols].reset_index(drop=True)
        results.append(PoolResult(
            measure=table.measure, method=table.method, test=table.test, level=table.level,
            convention=table.convention, study_level=table.study_level,
            k=int(columns["k"][j]), q_df=int(columns["q_df"][j]),
            **{f: bool(columns[f][j]) for f in BOOL_FIELDS},
            df=df if np.isfinite(df) else None, studies=studies,
            corrections=notes["corrections"][j], excluded=notes["excluded"][j], warnings=said[j],
            natural_size=None if size is None else float(size[j]), **kw))
    return results


__all__ = ["Fit", "drive", "drive_many", "fit_alone", "fit_many", "value"]
