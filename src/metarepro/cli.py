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
from .formatting import p_equals
from .metareg import REG_METHODS
from .names import METHODS, MV_METHODS, MV_TESTS, STRUCTS, T_TESTS, TESTS
from .pooling import PoolResult, _clean, pool


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
    lines.append(f"Q({d['q_df']}) = {_fmt(d['q'])}, {p_equals(d['q_pvalue'])}")
    stat = "t" if res.test in T_TESTS else "z"
    lines.append(f"estimate = {_fmt(d['estimate'])}  se = {_fmt(d['se'])}  {stat} = {_fmt(d['statistic'])}"
                 f"  {p_equals(d['pvalue'])}  {res.level:g}% CI [{_fmt(d['ci_lower'])}, {_fmt(d['ci_upper'])}]")
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


def mv_summary_text(res) -> str:
    """A readable summary of a multilevel fit, in the spirit of metafor's ``print.rma.mv``."""
    lines = [f"Multivariate/multilevel model (k = {res.k}; method: {res.method}; test: {res.test}"
             + (f"; measure: {res.measure}" if res.measure else "") + ")",
             f"random: {', '.join(res.random) or 'none'}" + (f" (struct {res.struct})" if res.struct else "")]
    if res.covariance:
        lines.append(f"sampling covariance: {res.covariance}")
    for g in res.shared_arms:
        lines.append(f"shared control arm: {' | '.join(g)}")
    lines.append(f"logLik = {_fmt(res.loglik)}  deviance = {_fmt(res.deviance)}  AIC = {_fmt(res.aic)}  "
                 f"BIC = {_fmt(res.bic)}  AICc = {_fmt(res.aicc)}")
    for n, s, lv in zip(res.sigma2_names, res.sigma2, res.sigma2_levels):
        lines.append(f"sigma^2 ({n}, {lv} levels) = {_fmt(s)}")
    for n, t in zip(res.tau2_names, res.tau2):
        lines.append(f"tau^2 ({n}) = {_fmt(t)}")
    for r in res.rho:
        lines.append(f"rho = {_fmt(r)}")
    lines.append(f"QE({res.qe_df}) = {_fmt(res.qe)}, {p_equals(res.qe_pvalue)}")
    if res.p > 1:
        df = f"{res.qm_df[0]}" + (f", {res.qm_df[1]:g}" if res.qm_df[1] is not None else "")
        lines.append(f"QM({df}) = {_fmt(res.qm)}, {p_equals(res.qm_pvalue)}")
    stat = "t" if res.test == "t" else "z"
    for _, c in res.coefficients.iterrows():
        lines.append(f"{c['term']}: estimate = {_fmt(c['estimate'])}  se = {_fmt(c['se'])}  {stat} = "
                     f"{_fmt(c['statistic'])}  {p_equals(c['pvalue'])}  {res.level:g}% CI "
                     f"[{_fmt(c['ci_lower'])}, {_fmt(c['ci_upper'])}]")
    if res.p == 1 and res.pi_lower == res.pi_lower:
        lines.append(f"prediction interval [{_fmt(res.pi_lower)}, {_fmt(res.pi_upper)}]")
    nat = res.natural()
    if nat:
        lines.append(f"natural scale: {_fmt(nat['estimate_natural'])} [{_fmt(nat['ci_lower_natural'])}, "
                     f"{_fmt(nat['ci_upper_natural'])}]")
    if not res.converged:
        lines.append("WARNING: the optimiser did not converge (see warnings)")
    for e in res.excluded:
        lines.append(f"excluded: {e['study']}: {e['reason']}")
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
    q.add_argument("--add", type=float, default=None,
                   help="continuity correction for zero cells (default: metafor's, 0.5, or 0 for PAS, PFT, IRS, IRFT)")
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
    q.add_argument("--extras", action="store_true",
                   help="add the single-level extras: profile-likelihood tau² CI (ML/REML), Henmi-Copas "
                        "interval, fail-safe N (Rosenthal, Orwin, Rosenberg), BLUPs and random effects")
    r = sub.add_parser("regress", help="meta-regression of the studies of a CSV file on moderator columns")
    r.add_argument("file", help="CSV: as for 'pool', plus the moderator columns")
    r.add_argument("--measure", required=True, choices=io.MEASURES)
    r.add_argument("--mods", required=True, help="moderator columns, comma-separated (text columns become dummies)")
    r.add_argument("--method", default="REML", choices=REG_METHODS)
    r.add_argument("--test", default="z", choices=TESTS)
    r.add_argument("--level", type=float, default=95.0, help="confidence level in percent")
    r.add_argument("--btt", action="append", default=[],
                   help="coefficients to test jointly (Wald chi², or F with knha/adhoc), comma-separated "
                        "term names as printed; repeat for several tests")
    r.add_argument("--add", type=float, default=None, help="continuity correction for zero cells")
    r.add_argument("--to", default="only0", choices=("only0", "all", "if0all", "none"))
    r.add_argument("--json", action="store_true", help="one JSON object")
    m = sub.add_parser("pool-mv", help="multilevel/multivariate model (metafor rma.mv): comparisons "
                       "sharing a control arm get their covariance")
    m.add_argument("file", help="CSV: one row per comparison; 'study' and 'arm_c' name the trial and its "
                   "control arm")
    m.add_argument("--measure", required=True, choices=io.MEASURES)
    m.add_argument("--random", action="append", default=None,
                   help="metafor formula, e.g. '~ 1 | study/comparison' (repeatable; default: one random "
                   "effect per comparison)")
    m.add_argument("--struct", default="CS", choices=STRUCTS, help="structure of an '~ inner | outer' term")
    m.add_argument("--mods", nargs="+", default=None, help="moderator columns (e.g. a dose)")
    m.add_argument("--no-intercept", action="store_true",
                   help="no intercept (e.g. a dose-response through zero at the control arm's dose)")
    m.add_argument("--method", default="REML", choices=MV_METHODS)
    m.add_argument("--test", default="z", choices=MV_TESTS)
    m.add_argument("--level", type=float, default=95.0, help="confidence level in percent")
    m.add_argument("--assumed-rho", type=float, default=None,
                   help="generic effects only: assumed correlation of comparisons sharing a control arm "
                   "(a sensitivity analysis, not evidence)")
    m.add_argument("--add", type=float, default=0.5, help="continuity correction for zero cells")
    m.add_argument("--to", default="only0", choices=("only0", "all", "if0all", "none"))
    m.add_argument("--ci-level", type=float, default=95.0,
                   help="level of intervals given in estimate,ci_lower,ci_upper columns")
    m.add_argument("--json", action="store_true", help="one JSON object")
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


def _extras(res) -> dict:
    """The single-level extras of a pooled result, per analysis (key None for a
    single one), JSON-ready; an extra that does not apply says why."""
    from .blup import blup, ranef
    from .publication_bias import fail_safe_n, henmi_copas
    from .tau2_ci import LIKELIHOOD_METHODS, profile_ci

    def attempt(fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except InputError as err:
            return {"not_computed": err.problem}

    out = {}
    if res.method in LIKELIHOOD_METHODS:
        out["tau2_pl"] = attempt(profile_ci, res)
    else:
        out["tau2_pl"] = {"not_computed": f"profile likelihood needs method ML or REML (not {res.method})"}
    out["henmi_copas"] = attempt(henmi_copas, res)
    out["fail_safe_n"] = {t.lower(): attempt(fail_safe_n, res, t) for t in ("Rosenthal", "Orwin", "Rosenberg")}
    out["blup"] = attempt(blup, res)
    out["ranef"] = attempt(ranef, res)
    by = getattr(res, "by", None)
    per = {}
    for g in (res.groups() if by else [None]):
        d = {}
        for key, val in out.items():
            if key == "fail_safe_n":
                d[key] = {t: (v if isinstance(v, dict) else _pick(v, by, g)) for t, v in val.items()}
            elif isinstance(val, dict):
                d[key] = val
            elif key in ("blup", "ranef"):
                rows = val if by is None else val[val[by] == g].drop(columns=[by])
                d[key] = [{k: _clean(v) for k, v in r.items()} for r in rows.to_dict(orient="records")]
            else:
                d[key] = _pick(val, by, g)
        per[g] = d
    return per


def _pick(val, by, g) -> dict:
    """One analysis's row of a per-analysis result (a dataclass for a single analysis)."""
    if by is None:
        return val.to_dict()
    row = val[val[by] == g].iloc[0].to_dict()
    row.pop(by)
    return {k: _clean(v) for k, v in row.items()}


def _extras_text(ex: dict) -> list[str]:
    lines = []
    pl = ex["tau2_pl"]
    if "not_computed" not in pl:
        hi = (">" if pl["tau2_ci_upper_censored"] else "") + _fmt(pl["tau2_ci_upper"])
        lines.append(f"tau^2 profile-likelihood CI [{_fmt(pl['tau2_ci_lower'])}, {hi}]")
    hc = ex["henmi_copas"]
    if "not_computed" not in hc:
        lines.append(f"Henmi-Copas: estimate = {_fmt(hc['estimate'])}  se = {_fmt(hc['se'])}  "
                     f"CI [{_fmt(hc['ci_lower'])}, {_fmt(hc['ci_upper'])}]")
    fsn = ex["fail_safe_n"]
    lines.append("fail-safe N: " + ", ".join(f"{t.capitalize()} {v['fsn']:g}" for t, v in fsn.items()
                                              if "not_computed" not in v))
    return lines


def _regress(args) -> int:
    from .blup import blup
    from .metareg import meta_regression, wald_test
    from .tau2_ci import LIKELIHOOD_METHODS, profile_ci, qprofile_ci

    frame = io.read_table(args.file)
    mods = [m.strip() for m in args.mods.split(",") if m.strip()]
    for m in mods:
        if m not in frame.columns:
            raise InputError(f"missing moderator column '{m}' named by --mods", file=frame.attrs.get("source"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)
        res = pool(frame, measure=args.measure, method="FE", add=args.add, to=args.to)
    st = res.studies
    ok = st["yi"].notna().to_numpy()
    X = frame[mods].reset_index(drop=True)[ok].reset_index(drop=True)
    fit = meta_regression(st["yi"].to_numpy(float)[ok], st["vi"].to_numpy(float)[ok], X,
                          method=args.method, test=args.test, level=args.level)
    out = {"measure": args.measure, **fit.to_dict()}
    if fit.method != "FE":
        out["tau2_qp"] = qprofile_ci(fit).to_dict()
    if fit.method in LIKELIHOOD_METHODS:
        out["tau2_pl"] = profile_ci(fit).to_dict()
    out["tests"] = [wald_test(fit, [t.strip() for t in spec.split(",")]).to_dict() for spec in args.btt]
    out["blup"] = [{k: _clean(v) for k, v in r.items()}
                   for r in blup(fit, st["study"].to_numpy()[ok]).to_dict(orient="records")]
    out["excluded"] = res.excluded
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"Meta-regression (k = {fit.k}; method: {fit.method}; test: {fit.test}; measure: {args.measure})")
    for c in out["coefficients"]:
        print(f"  {c['term']:<18} {_fmt(c['estimate'])}  se {_fmt(c['se'])}  p {_fmt(c['pvalue'])}  "
              f"CI [{_fmt(c['ci_lower'])}, {_fmt(c['ci_upper'])}]")
    for key, name in (("tau2_qp", "Q-profile"), ("tau2_pl", "profile-likelihood")):
        if key in out:
            q = out[key]
            print(f"residual tau^2 = {_fmt(fit.tau2)}, {name} CI [{_fmt(q['tau2_ci_lower'])}, "
                  f"{'>' if q['tau2_ci_upper_censored'] else ''}{_fmt(q['tau2_ci_upper'])}]")
    print(f"QM = {_fmt(fit.qm)} (df {', '.join(str(x) for x in fit.qm_df if x is not None)}), "
          f"{p_equals(fit.qm_pvalue)}; QE = {_fmt(fit.qe)} (df {fit.qe_df}), {p_equals(fit.qe_pvalue)}")
    for t in out["tests"]:
        kind = "F" if t["df"][1] is not None else "chi2"
        print(f"test of {', '.join(t['terms'])}: {kind} = {_fmt(t['statistic'])} "
              f"(df {', '.join(str(x) for x in t['df'] if x is not None)}), {p_equals(t['pvalue'])}")
    return 0


def _run(args) -> int:
    if args.command == "check":
        return _check(args.paths)
    if args.command in ("import", "reproduce"):
        from . import review_cli

        return review_cli.run(args)
    if args.command == "regress":
        return _regress(args)
    if args.command == "pool-mv":
        from .multilevel import pool_mv

        frame = io.read_table(args.file)
        res = pool_mv(frame, args.measure, random=args.random, mods=args.mods, intercept=not args.no_intercept,
                      struct=args.struct,
                      method=args.method, test=args.test, level=args.level, assumed_rho=args.assumed_rho,
                      add=args.add, to=args.to, ci_level=args.ci_level)
        print(json.dumps(res.to_dict()) if args.json else mv_summary_text(res))
        return 0
    frame = io.read_table(args.file)
    drop00 = {None: None, "yes": True, "no": False, "revman5": "revman5"}[args.drop00]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)  # they are printed with the result
        res = pool(frame, measure=args.measure, method=args.method, test=args.test, by=args.by,
                   level=args.level, add=args.add, to=args.to, drop00=drop00, ci_level=args.ci_level,
                   convention=args.convention, smd=args.smd, rd=args.rd, mh=args.mh, peto=args.peto,
                   not_estimable=args.not_estimable, study_level=args.study_level)
    extras = _extras(res) if args.extras else None
    if args.by is None:
        if args.json:
            d = res.to_dict()
            if extras:
                d["extras"] = extras[None]
            print(json.dumps(d, sort_keys=False))
        else:
            print(summary_text(res))
            if extras:
                print("\n".join(_extras_text(extras[None])))
        return 0
    for r in res.results():
        if args.json:
            d = r.to_dict()
            if extras:
                d["extras"] = extras[r.group]
            print(json.dumps(d))
        else:
            print(f"== {args.by} = {r.group}")
            print(summary_text(r))
            if extras:
                print("\n".join(_extras_text(extras[r.group])))
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
