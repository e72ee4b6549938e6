"""``metarepro import`` and ``metarepro reproduce``: the reviewer's commands for
RevMan 5 files, Cochrane data-rows exports and folders of imported pairs.

Output of ``reproduce`` (text): one line per target (RevMan total or subgroup
subtotal) with RevMan's number, ours, k and the verdict, then its reason; per
analysis one line of per-study agreement (effects, CIs, weights reproduced at
RevMan's printed precision, of those checked, and at full precision for
``.rm5`` files); every problem (study or analysis not imported, study the
engine rejects, method the engine lacks) on its own line; a summary line last.
``--json`` prints JSON Lines instead, one object per target with the keys of
``results/reproduction.csv``; ``--studies FILE`` writes the per-study table.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from .errors import InputError
from .names import REPRODUCTION_COLUMNS


def read_review(path: str | Path):
    """A review from a ``.rm5`` file or a data-rows CSV (told apart by content)."""
    from .datarows import read_data_rows
    from .revman import read_rm5

    p = Path(path)
    if not p.exists():
        raise InputError("file does not exist", file=str(p))
    head = p.read_bytes()[:400].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<") or p.suffix.lower() == ".rm5":
        return read_rm5(p)
    return read_data_rows(p)


def _num(x, d=2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{d}f}"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def run(args) -> int:
    if args.command == "import":
        from .importing import write_pair

        review = read_review(args.file)
        csv_path, yaml_path = write_pair(review, args.out)
        n_t = sum(len(o.totals) for o in review.outcomes)
        print(f"{csv_path}, {yaml_path}: {len(review.outcomes)} analyses, "
              f"{sum(len(o.studies) for o in review.outcomes)} study rows, {n_t} RevMan totals")
        for p in review.problems:
            print(f"not imported: {p}")
        return 0
    path = Path(args.path)
    if path.is_dir():
        return _reproduce_folder(path, args)
    from .review import reproduce

    review = read_review(path)
    rep = reproduce(review, tolerance=args.tolerance)
    if args.studies:
        rep.studies.to_csv(args.studies, index=False)
    if args.json:
        for t in rep.targets:
            print(json.dumps({k: _clean(t.get(k)) for k in REPRODUCTION_COLUMNS}))
        for p in rep.problems + rep.engine_notes:
            sys.stderr.write(f"metarepro: {p}\n")
        return 0
    _print_text(rep)
    return 0


def _print_text(rep) -> None:
    r = rep.review
    what = "RevMan 5 file" if r.format == "revman5" else "Cochrane data-rows export"
    print(f"{r.title or r.cd or Path(r.file).name} ({r.doi or 'no DOI printed'}), {what} {Path(r.file).name}: "
          f"{len(r.outcomes)} analyses")
    st = rep.studies
    for out in r.outcomes:
        print(f"{out.label} {out.name}: {out.revman_measure}, {out.revman_method or '?'} "
              f"{'random' if out.random else 'fixed'} -> {out.method} ({out.data_type}, {len(out.studies)} studies)")
        for note in out.inferred:
            print(f"  inferred: {note}")
        for t in rep.targets:
            if not t["target"].startswith(out.label + " ") and not t["target"].startswith(out.label + ","):
                continue
            pub = f"{_num(t['published_estimate'])} [{_num(t['published_ci_lower'])}, {_num(t['published_ci_upper'])}]"
            ours = ("—" if t.get("reproduced_estimate") is None else
                    f"{_num(t['reproduced_estimate'])} [{_num(t['reproduced_ci_lower'])}, "
                    f"{_num(t['reproduced_ci_upper'])}]")
            print(f"  {t['target']}: RevMan {pub}, ours {ours}, k {t['k_used']}/{t['k_published'] or '?'}: "
                  f"{t['verdict']}")
            print(f"    {t['reason']}")
        if len(st):
            s = st[st["outcome"] == out.label]
            parts = []
            for col, name in (("effect_agrees", "effects"), ("ci_agrees", "CIs"), ("weight_agrees", "weights")):
                c = s[col].dropna()
                parts.append(f"{name} {int((c == True).sum())}/{len(c)}")
            fp = s["full_precision"].dropna()
            full = f"; full precision {int((fp == True).sum())}/{len(fp)}" if len(fp) else ""
            print(f"  studies at RevMan's printed precision: {', '.join(parts)}{full}")
            for _, x in s[(s["effect_agrees"] == False) | (s["ci_agrees"] == False)
                          | (s["weight_agrees"] == False)].iterrows():
                print(f"    differs: {x['study']}{' [' + x['subgroup'] + ']' if x['subgroup'] else ''}: "
                      f"effect {_num(x['ours_estimate'], 4)} vs {_num(x['published_estimate'], 4)}, CI "
                      f"{_num(x['ours_ci_lower'], 4)}-{_num(x['ours_ci_upper'], 4)} vs "
                      f"{_num(x['published_ci_lower'], 4)}-{_num(x['published_ci_upper'], 4)}, weight "
                      f"{_num(x['ours_weight'], 2)} vs {_num(x['published_weight'], 2)}"
                      + (f" ({x['note']})" if isinstance(x["note"], str) else ""))
    for p in rep.problems:
        print(f"problem: {p}")
    for p in rep.engine_notes:
        print(f"engine: {p}")
    s = rep.summary()
    line = f"Summary: totals {s['totals_reproduced']}/{s['totals']} reproduced"
    if s.get("study_effect_checked") is not None:
        line += (f"; study effects {s['study_effect_reproduced']}/{s['study_effect_checked']}, CIs "
                 f"{s['study_ci_reproduced']}/{s['study_ci_checked']}, weights "
                 f"{s['study_weight_reproduced']}/{s['study_weight_checked']} at RevMan's printed precision")
    print(line + f"; {len(rep.problems)} problem(s) listed")


def _reproduce_folder(folder: Path, args) -> int:
    """Every pair in a folder, judged as the pipeline judges it (no figures)."""
    from .analysis import forensics_table, reproduction_rows
    from .extracted import load_analysis

    specs = sorted(folder.glob("*.yaml"))
    if not specs:
        raise InputError("no analysis YAML found", file=str(folder))
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)
    counts = {}
    for y in specs:
        try:
            an = load_analysis(y.with_suffix(".csv"), y)
            rows = reproduction_rows(an, tolerance=args.tolerance, forensics=None if args.json else
                                     forensics_table(an))
        except InputError as err:
            sys.stderr.write(f"metarepro: error: {err.one_line()}\n")
            continue
        for t in rows:
            counts[t["verdict"]] = counts.get(t["verdict"], 0) + 1
            if args.json:
                print(json.dumps({k: _clean(t.get(k)) for k in REPRODUCTION_COLUMNS}))
            else:
                print(f"{t['analysis']}: {t['target']} ({t['outcome']}): published {_num(t['published_estimate'])} "
                      f"[{_num(t['published_ci_lower'])}, {_num(t['published_ci_upper'])}], ours "
                      f"{_num(t['reproduced_estimate'])} [{_num(t['reproduced_ci_lower'])}, "
                      f"{_num(t['reproduced_ci_upper'])}]: {t['verdict']}\n    {t['reason']}")
    if not args.json:
        print("Summary: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0
