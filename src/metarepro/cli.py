"""Command line: ``metarepro pool FILE.csv --measure RR --method REML [--json]``.

Every input problem ends the program with exit status 2 and one line on
standard error naming the file, row, column and problem; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import io
from .conventions import CHOICES, CONVENTIONS
from .errors import InputError, MetareproWarning
from .names import METHODS, T_TESTS, TESTS
from .pooling import PoolResult, pool


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        sys.stderr.write(f"metarepro: error: {message} (see 'metarepro --help')\n")
        raise SystemExit(2)


def _fmt(x, digits=4):
    if x is None:
        return "NA"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def summary_text(res: PoolResult) -> str:
    """A readable summary in the spirit of metafor's ``print.rma``."""
    d = res.to_dict()
    lines = []
    lines.append(f"{'Common' if res.method in ('FE', 'MH', 'PETO') else 'Random'}-effects model "
                 f"(k = {res.k}; method: {res.method}; test: {res.test}; measure: {res.measure}; "
                 f"convention: {res.convention})")
    if res.method not in ("FE", "MH", "PETO"):
        lo, hi = ">" if d["tau2_ci_lower_censored"] else "", ">" if d["tau2_ci_upper_censored"] else ""
        lines.append(f"tau^2 = {_fmt(d['tau2'])} [{lo}{_fmt(d['tau2_ci_lower'])}, {hi}{_fmt(d['tau2_ci_upper'])}]"
                     f"   I^2 = {_fmt(d['i2'], 2)}% [{lo}{_fmt(d['i2_ci_lower'], 2)}, {hi}{_fmt(d['i2_ci_upper'], 2)}]"
                     f"   H^2 = {_fmt(d['h2'])}")
    else:
        lines.append(f"I^2 = {_fmt(d['i2'], 2)}%   H^2 = {_fmt(d['h2'])}")
    lines.append(f"Q({d['q_df']}) = {_fmt(d['q'])}, p = {_fmt(d['q_pvalue'])}")
    stat = "t" if res.test in T_TESTS else "z"
    lines.append(f"estimate = {_fmt(d['estimate'])}  se = {_fmt(d['se'])}  {stat} = {_fmt(d['statistic'])}"
                 f"  p = {_fmt(d['pvalue'])}  {res.level:g}% CI [{_fmt(d['ci_lower'])}, {_fmt(d['ci_upper'])}]")
    lines.append(f"prediction interval [{_fmt(d['pi_lower'])}, {_fmt(d['pi_upper'])}]")
    nat = res.natural()
    if nat:
        lines.append(f"natural scale: {_fmt(nat['estimate_natural'])} [{_fmt(nat['ci_lower_natural'])}, "
                     f"{_fmt(nat['ci_upper_natural'])}], prediction [{_fmt(nat['pi_lower_natural'])}, "
                     f"{_fmt(nat['pi_upper_natural'])}]")
    if not res.converged:
        lines.append("WARNING: the tau^2 estimator did not converge (see warnings)")
    for c in res.corrections:
        lines.append(f"corrected: {c['study']}: {c['action']}")
    for c in res.excluded:
        lines.append(f"excluded: {c['study']}: {c['reason']}")
    for w in res.warnings:
        lines.append(f"note: {w}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="metarepro", description="Re-pool meta-analyses; metafor-compatible engine.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    q = sub.add_parser("pool", help="pool the studies of a CSV file")
    q.add_argument("file", help="CSV: one row per study, a 'study' column and one column family")
    q.add_argument("--measure", required=True, choices=io.MEASURES)
    q.add_argument("--method", default="REML", choices=METHODS)
    q.add_argument("--test", default="z", choices=TESTS)
    q.add_argument("--by", default=None, help="column naming separate analyses (pooled in one pass)")
    q.add_argument("--level", type=float, default=95.0, help="confidence level in percent")
    q.add_argument("--add", type=float, default=0.5, help="continuity correction for zero cells")
    q.add_argument("--to", default="only0", choices=("only0", "all", "if0all", "none"))
    q.add_argument("--drop00", default=None, choices=("yes", "no", "revman5"),
                   help="drop double-zero studies (default: the convention's; revman5: RevMan's rule by measure)")
    q.add_argument("--convention", default="metafor", choices=CONVENTIONS,
                   help="computing conventions: metafor's (default) or RevMan 5's (zero cells, MH, Peto, SMD, "
                        "not-estimable studies); the options below override single pieces")
    q.add_argument("--smd", default=None, choices=CHOICES["smd"], help="SMD formula (Hedges' g exact or RevMan 5's)")
    q.add_argument("--rd", default=None, choices=CHOICES["rd"], help="RD of a zero-cell study")
    q.add_argument("--mh", default=None, choices=CHOICES["mh"], help="Mantel-Haenszel cells and RD variance")
    q.add_argument("--peto", default=None, choices=CHOICES["peto"], help="Peto study effects")
    q.add_argument("--not-estimable", default=None, choices=CHOICES["not_estimable"],
                   help="a study without an estimate (SD = 0, no participants, SE = 0): error or excluded")
    q.add_argument("--study-level", type=float, default=None,
                   help="level in percent of per-study intervals (RevMan's CI_STUDY; default --level)")
    q.add_argument("--ci-level", type=float, default=95.0,
                   help="level of intervals given in estimate,ci_lower,ci_upper columns")
    q.add_argument("--json", action="store_true", help="one JSON object (JSON Lines with --by)")
    c = sub.add_parser("check", help="check evidence files (data/extracted) against the provenance rules")
    c.add_argument("paths", nargs="+", help="analysis YAML (or CSV) files, or folders holding them")
    i = sub.add_parser("import", help="write a RevMan 5 file or a Cochrane data-rows CSV as CSV + YAML pairs")
    i.add_argument("file", help="RevMan 5 file (.rm5) or Cochrane data-rows export (.csv)")
    i.add_argument("--out", required=True, help="folder for <analysis>.csv and <analysis>.yaml")
    r = sub.add_parser("reproduce", help="re-pool every RevMan total and study of a review; verdicts, no figures")
    r.add_argument("path", help="RevMan 5 file (.rm5), Cochrane data-rows export (.csv), or a folder of pairs")
    r.add_argument("--json", action="store_true", help="JSON Lines, one per target, keys of results/reproduction.csv")
    r.add_argument("--studies", metavar="CSV", help="also write the per-study agreement table to this file")
    r.add_argument("--tolerance", type=float, default=0.10, help="'close' threshold (fraction of the CI width)")
    return p


def _check(paths) -> int:
    from pathlib import Path

    from .extracted import load_analysis

    specs = []
    for p in map(Path, paths):
        # a CSV is checked together with the YAML beside it, which says what its rows must be
        specs += sorted(p.glob("*.yaml")) if p.is_dir() else [p.with_suffix(".yaml") if p.suffix == ".csv" else p]
    if not specs:
        raise InputError("no analysis YAML found", file=" ".join(paths))
    for y in specs:
        an = load_analysis(y.with_suffix(".csv"), y)
        k = {o: len(an.rows(o)) for o in an.outcomes()} if len(an.table) else {}
        missing = sum(t["status"] == "missing" for t in an.spec["trials"])
        print(f"{y}: ok ({len(an.table)} rows; per outcome {k}; {missing} trial entries missing with reasons; "
              f"{len(an.spec['targets'])} targets)")
    return 0


def _run(args) -> int:
    if args.command == "check":
        return _check(args.paths)
    if args.command in ("import", "reproduce"):
        from . import review_cli

        return review_cli.run(args)
    frame = io.read_table(args.file)
    drop00 = {None: None, "yes": True, "no": False, "revman5": "revman5"}[args.drop00]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)  # they are printed with the result
        res = pool(frame, measure=args.measure, method=args.method, test=args.test, by=args.by,
                   level=args.level, add=args.add, to=args.to, drop00=drop00, ci_level=args.ci_level,
                   convention=args.convention, smd=args.smd, rd=args.rd, mh=args.mh, peto=args.peto,
                   not_estimable=args.not_estimable, study_level=args.study_level)
    if args.by is None:
        if args.json:
            print(json.dumps(res.to_dict(), sort_keys=False))
        else:
            print(summary_text(res))
        return 0
    for r in res.results():
        if args.json:
            print(json.dumps(r.to_dict()))
        else:
            print(f"== {args.by} = {r.group}")
            print(summary_text(r))
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except InputError as err:
        sys.stderr.write(f"metarepro: error: {err.one_line()}\n")
        return 2
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - an engine bug: still one line, never a traceback
        sys.stderr.write(f"metarepro: internal error: {type(err).__name__}: {err}\n")
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
