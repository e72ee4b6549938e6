"""Does a published pooled estimate reproduce? Verdicts with reasons.

A verdict compares our re-pooled estimate, computed with the method the paper
names, to the printed numbers:

``reproduced``
    every printed number (estimate and both CI bounds) equals ours rounded to
    the printed precision, and every trial the paper pooled was available;
``close``
    every printed number is within ``tolerance`` × (printed CI width) of ours,
    the width taken on the analysis scale (log scale for ratios);
``discrepant``
    all trials available but the numbers differ by more than that;
``partial``
    some trials the paper pooled could not be read (k of K);
``not_reproducible``
    no per-trial data could be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .names import MEASURES, METHODS, RATIO_MEASURES, REPRODUCTION_COLUMNS

#: Reason given for a target that pooled another set of trials (``trial_set: other``).
CONTRAST_REASON = ("this meta-analysis pooled a different set of trials whose per-trial numbers are not in "
                   "data/extracted; shown for contrast")

VERDICTS = ("reproduced", "close", "discrepant", "partial", "not_reproducible")
DEFAULT_TOLERANCE = 0.10


def published_method(target: dict) -> tuple[str, str]:
    """Our method code for a target, and how it was chosen.

    ``MH`` with a random-effects model is RevMan's "M-H, Random", our ``MH-DL``.
    """
    m = (target.get("method") or "").strip()
    code = m.upper()
    model = (target.get("model") or "").lower()
    if code == "MH" and "random" in model:
        return "MH-DL", (f"published '{m}' with model '{target.get('model')}' read as RevMan's M-H, Random "
                         "(MH-DL: DerSimonian-Laird tau² from Q about the MH estimate)")
    if code in METHODS:
        return code, f"as published ({m})"
    if "fixed" in model or "common" in model:
        return "FE", f"published model '{target.get('model')}' read as inverse-variance common effect"
    return "DL", (f"published model '{target.get('model') or 'not stated'}', method '{m or 'not stated'}': "
                  "assumed DerSimonian-Laird, the default of RevMan and most meta-analyses")


def target_convention(spec: dict, target: dict) -> str:
    """The computing convention of a target: its own ``convention`` where the YAML
    names one, else the analysis's, else metafor's (metarepro.conventions)."""
    return target.get("convention") or spec.get("convention") or "metafor"


def decimals_of(target: dict) -> int:
    """Printed precision: the target's ``decimals`` or the most decimals among its numbers."""
    if target.get("decimals") is not None:
        return int(target["decimals"])
    best = 0
    for key in ("estimate", "ci_lower", "ci_upper"):
        v = target.get(key)
        if v is None:
            continue
        text = repr(float(v))
        if "e" in text:
            continue
        frac = text.split(".")[1].rstrip("0") if "." in text else ""
        best = max(best, len(frac))
    return best


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def judge(target: dict, ours: dict, *, ratio: bool, k_used: int, k_published: int | None,
          missing: list[str], tolerance: float = DEFAULT_TOLERANCE) -> Verdict:
    """Compare published numbers with ours (both on the natural scale).

    Parameters
    ----------
    target : dict
        ``estimate, ci_lower, ci_upper`` as printed (and optional ``decimals``).
    ours : dict
        ``estimate, ci_lower, ci_upper`` re-pooled, natural scale.
    ratio : bool
        Ratio measure: distances are taken on the log scale.
    k_used, k_published : int
        Trials pooled by us and by the paper.
    missing : list of str
        "study (reason)" for trials we could not read.
    """
    if k_used == 0:
        why = "; ".join(missing) if missing else "no per-trial data in data/extracted"
        return Verdict("not_reproducible", f"no per-trial data readable: {why}")
    keys = [k for k in ("estimate", "ci_lower", "ci_upper") if target.get(k) is not None]
    d = decimals_of(target)
    half = 0.5 * 10.0 ** (-d) + 1e-9
    diffs = {k: ours[k] - target[k] for k in keys}
    exact = all(abs(diffs[k]) <= half for k in keys)
    g = math.log if ratio else (lambda x: x)
    width = None
    if target.get("ci_lower") is not None and target.get("ci_upper") is not None:
        try:
            width = g(target["ci_upper"]) - g(target["ci_lower"])
        except ValueError:
            width = None
    if width:
        dist = max(abs(g(ours[k]) - g(target[k])) for k in keys) / width
    else:
        dist = math.inf
    shown = ", ".join(f"{k} {ours[k]:.{d}f} vs {target[k]:.{d}f}" for k in keys)
    if k_published is not None and k_used < k_published:
        what = "matches at the printed precision" if exact else f"differs ({shown})"
        return Verdict("partial", f"{k_used} of {k_published} trials readable; re-pooled result {what}; "
                                  f"missing: {'; '.join(missing) or 'not listed'}")
    if exact:
        return Verdict("reproduced", f"all printed numbers match at {d} decimals ({shown})")
    if dist <= tolerance:
        return Verdict("close", f"within {tolerance:.0%} of the printed CI width but not at {d} decimals "
                                f"({shown}; largest difference {dist:.0%} of the CI width)")
    return Verdict("discrepant", f"{shown}; largest difference {dist:.0%} of the printed CI width")


def target_measure(spec: dict, target: dict) -> str:
    """The measure a target is pooled with: its own ``measure`` where it names one of
    the engine's, else its outcome's, else the analysis's."""
    from .spec import outcome_measure

    default = outcome_measure(spec, target["outcome"])
    m = target.get("measure") or default
    return m if m in MEASURES else default


def target_record(name: str, spec: dict, target: dict) -> tuple[dict, list[str]]:
    """The published side of a target's row of ``reproduction.csv`` (the re-pooled
    side empty, ``k_used`` 0, no verdict yet), and the trials listed as missing
    for its outcome ("study (reason)").

    ``k_published`` is the paper's k where printed, else the number of trials the
    YAML lists for the outcome (not guessed for contrast targets).
    """
    outcome = target["outcome"]
    listed = [x for x in spec.get("trials") or [] if not x.get("outcomes") or outcome in x["outcomes"]]
    missing = [f"{x['study']} ({x.get('reason')})" for x in listed if x["status"] == "missing"]
    k_pub = target.get("k")
    if k_pub is None and target.get("trial_set") != "other":
        k_pub = len(listed) or None
    rec = dict.fromkeys(REPRODUCTION_COLUMNS)
    rec.update(analysis=name, claim=spec["claim"], outcome=outcome, target=target["label"],
               published_estimate=target.get("estimate"), published_ci_lower=target.get("ci_lower"),
               published_ci_upper=target.get("ci_upper"),
               published_method=" ".join(x for x in (target.get("model"), target.get("method")) if x) or None,
               k_used=0, k_published=k_pub, source=target["source"])
    return rec, missing


def unpooled_verdict(target: dict, rec: dict, missing: list[str], measure: str) -> dict:
    """Verdict of a target with no rows to pool: a contrast target, or one whose
    trials could not be read (``not_reproducible``, with the missing trials)."""
    if target.get("trial_set") == "other":
        return dict(rec, verdict="not_reproducible", reason=CONTRAST_REASON)
    j = judge(target, {}, ratio=measure in RATIO_MEASURES, k_used=0, k_published=rec["k_published"],
              missing=missing)
    return dict(rec, verdict=j.verdict, reason=j.reason)


def targets_only_rows(spec: dict) -> list[dict]:
    """``reproduction.csv`` rows of an analysis without per-trial data (no CSV):
    every target is judged from the YAML alone, without the statistics stack."""
    out = []
    for t in spec["targets"]:
        rec, missing = target_record(spec["analysis"], spec, t)
        out.append(unpooled_verdict(t, rec, missing, target_measure(spec, t)))
    return out


def _fmt(x, d=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{d}f}"


def _clauses(reason: str) -> list[str]:
    """A reason split at '; ' outside parentheses."""
    out, depth, cur = [], 0, ""
    i = 0
    while i < len(reason):
        c = reason[i]
        depth += (c == "(") - (c == ")")
        if depth == 0 and reason.startswith("; ", i):
            out.append(cur)
            cur, i = "", i + 2
            continue
        cur += c
        i += 1
    return [x for x in out + [cur] if x]


def reason_summary(verdict: str, reason: str) -> str:
    """The reason of a verdict in one sentence; the whole reason stays in the CSV and on the
    analysis's page.

    Keeps the comparison (the first clause; for ``partial`` and ``discrepant`` the second too,
    which says how far off the result is) and any 'circular' warning; drops the method's
    justification, the list of missing trials with their reasons and the excluded studies.
    A reason without data ('no per-trial data readable: <trials and why>') keeps its head.
    """
    if not isinstance(reason, str) or not reason.strip():
        return ""
    parts = _clauses(reason.strip())
    keep = parts[:2] if verdict in ("partial", "discrepant") else parts[:1]
    keep = [p for p in keep if not p.startswith(("missing:", "method:", "excluded:"))]
    keep += [p.split(" (")[0] for p in parts[len(keep):] if p.startswith(("circular", "shown for contrast"))]
    if keep and keep[0].startswith("no per-trial data readable"):
        keep[0] = "no per-trial data readable"
    text = "; ".join(keep) or parts[0]
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _interval(est, lo, hi, method=None) -> str:
    import pandas as pd

    if est is None or pd.isna(est):
        return "—"
    out = f"{_fmt(est, 2)} ({_fmt(lo, 2)}–{_fmt(hi, 2)})" if not (pd.isna(lo) and pd.isna(hi)) else _fmt(est, 2)
    return out + (f" {method}" if isinstance(method, str) and method else "")


def modern_label(modern=("REML", "adhoc")) -> str:
    """'REML + Hartung-Knapp, ad hoc correction': the modern re-analysis (config ``modern``: method
    and test) in words."""
    from .names import TEST_LABELS

    method, test = modern
    return f"{method} + {TEST_LABELS.get(test, test)}"


def reproduction_markdown(table, tolerance: float = DEFAULT_TOLERANCE,
                          modern: str = "REML + Hartung-Knapp, ad hoc correction") -> str:
    """The cross-analysis reproduction summary (``table``: a DataFrame of reproduction rows;
    ``modern``: the modern re-analysis in words, :func:`modern_label`): one line per published
    target with its verdict and a one-sentence reason (:func:`reason_summary`); the whole
    reasons, the method forensics and the provenance are on each analysis's page
    (``<analysis>/index.html``) and in ``reproduction.csv``."""
    import pandas as pd

    name = modern
    lines = ["# Reproduction of published claims", "",
             ("Each published pooled estimate is re-pooled from the per-trial numbers in `data/extracted/` "
              "with the method the paper names. Verdicts: **reproduced** (every printed number matches at the "
              f"printed precision), **close** (within {tolerance:.0%} of the printed CI width, on the log scale "
              "for ratios), **discrepant**, **partial** (trials missing: k of K), **not_reproducible** "
              f"(no per-trial data readable). The modern column re-pools the same trials with {name} "
              "and gives the 95% prediction interval [in brackets]."), "",
             ("Whole reasons, method forensics, missing trials, integrity flags and every number's source: "
              "`index.html` (open it from this folder) and one page per analysis, `<analysis>/index.html`."), ""]
    for analysis, sub in table.groupby("analysis", sort=False):
        lines += [f"## {analysis}", "", f"Claim: {sub['claim'].iloc[0]}", "",
                  f"Details: [{analysis}/index.html]({analysis}/index.html)", "",
                  (f"| outcome | target | published | re-pooled | k used / published | verdict | {name} "
                   "[prediction] | reason |"), "|---|---|---|---|---|---|---|---|"]
        for _, r in sub.iterrows():
            pm = "" if pd.isna(r.published_method) else r.published_method
            pub = _interval(r.published_estimate, r.published_ci_lower, r.published_ci_upper, pm)
            rep = _interval(r.reproduced_estimate, r.reproduced_ci_lower, r.reproduced_ci_upper, r.method)
            mod = _interval(r.modern_estimate, r.modern_ci_lower, r.modern_ci_upper)
            if mod != "—":
                mod += f" [{_fmt(r.modern_pi_lower, 2)}–{_fmt(r.modern_pi_upper, 2)}]"
            kp = "?" if r.k_published is None or pd.isna(r.k_published) else int(r.k_published)
            cells = [r.outcome, r.target, pub, rep, f"{int(r.k_used)} / {kp}", f"**{r.verdict}**", mod,
                     reason_summary(r.verdict, r.reason)]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
