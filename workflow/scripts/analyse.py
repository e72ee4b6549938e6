"""Everything of one analysis: pooled table, method forensics, verdicts, and per
outcome the heterogeneity and robustness reports (JSON + Markdown), forest and
funnel plots (PNG, SVG, PDF) and the diagnostic plots (PNG).

An analysis without per-trial data (no CSV) has only its published targets: its
YAML alone decides every verdict, and the job imports no statistics stack."""

from pathlib import Path

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
out = sm.output


def targets_only():
    from metarepro.names import FORENSICS_COLUMNS, POOLED_COLUMNS, REPRODUCTION_COLUMNS
    from metarepro.reproduce import targets_only_rows
    from metarepro.scripting import guarded, write_records
    from metarepro.spec import check_spec

    with guarded(sm.log[0]):
        spec = check_spec(sm.input.spec)
        write_records(out.pooled, POOLED_COLUMNS, [])
        write_records(out.forensics, FORENSICS_COLUMNS, [])
        write_records(out.reproduction, REPRODUCTION_COLUMNS, targets_only_rows(spec))


def with_data():
    import pandas as pd

    from metarepro.analysis import (
        REPRODUCTION_COLUMNS,
        figure_inputs,
        forensics_table,
        heterogeneity,
        pooled_table,
        reproduction_rows,
    )
    from metarepro.extracted import load_analysis
    from metarepro.robustness import robustness
    from metarepro.scripting import dumps, guarded, write_csv, write_text

    if p.outcomes:  # matplotlib is imported only by analyses that draw
        from metarepro import figures

    def stem(key):
        return Path(out[key]).with_suffix("")

    def png(fig, key):
        figures.save_figure(fig, stem(key), formats=("png",))

    with guarded(sm.log[0]) as log:
        an = load_analysis(sm.input.table, sm.input.spec)
        write_csv(pooled_table(an, tests=tuple(p.tests), level=p.level), out.pooled)
        forensics = forensics_table(an, level=p.level)
        write_csv(forensics, out.forensics)
        rows = reproduction_rows(an, tolerance=p.tolerance, level=p.level,
                                 modern=(p.modern["method"], p.modern["test"]), forensics=forensics)
        write_csv(pd.DataFrame(rows, columns=list(REPRODUCTION_COLUMNS)), out.reproduction)
        for o in p.outcomes:
            report, md = heterogeneity(an, o, method=p.modern["method"], test=p.modern["test"], level=p.level)
            write_text(out[f"{o}__heterogeneity_json"], dumps(report))
            write_text(out[f"{o}__heterogeneity_md"], md)
            fi = figure_inputs(an, o, modern=p.modern, level=p.level, common_method=p.common_method)
            figures.save_figure(figures.forest_plot(fi.result, fi.frame, common=fi.common, flagged=fi.flagged,
                                                    subgroups=fi.subgroups, title=fi.title, published=fi.published,
                                                    favours=fi.favours,
                                                    notes=[f"Not drawn: {why}" for why in fi.not_drawn]),
                                stem(f"{o}__forest_png"))
            k = fi.result.k
            figures.save_figure(figures.funnel_plot(fi.result, egger=fi.egger, title=fi.title)
                                if k >= figures.FUNNEL_MIN_K else
                                figures.not_applicable_figure(f"k = {k}; a funnel plot needs at least "
                                                              f"{figures.FUNNEL_MIN_K} trials", fi.title),
                                stem(f"{o}__funnel_png"))

            rb = robustness(an, o, method=p.modern["method"], test=p.modern["test"], level=p.level,
                            permutations=p.permutations, seed=p.seed)
            write_text(out[f"{o}__robustness_json"], dumps(rb.report))
            write_text(out[f"{o}__robustness_md"], rb.markdown)
            png(figures.leave_one_out_plot(rb.result, rb.leave_one_out, rb.cumulative, title=fi.title)
                if rb.leave_one_out is not None else
                figures.not_applicable_figure(f"k = {k}; leave-one-out needs at least 2 trials", fi.title),
                f"{o}__sensitivity_png")
            png(figures.influence_plot(rb.influence, title=fi.title) if rb.influence is not None else
                figures.not_applicable_figure(f"k = {k}; influence diagnostics need at least 3 trials", fi.title),
                f"{o}__influence_png")
            png(figures.baujat_plot(rb.baujat, title=fi.title) if rb.baujat is not None else
                figures.not_applicable_figure(f"k = {k}; a Baujat plot needs at least 2 trials", fi.title),
                f"{o}__baujat_png")
            sections = {s["moderator"]: s for s in rb.report["meta_regression"]}
            for m in p.moderators:
                fit = rb.regressions.get(m)
                if fit is None:
                    why = "; ".join(sections.get(m, {}).get("not_computed", ["no fit"]))
                    fig = figures.not_applicable_figure(why, fi.title)
                else:
                    fig = figures.bubble_plot(fit["yi"], fit["vi"], fit["x"], fit["fit"], moderator=m,
                                              measure=rb.result.measure, labels=fit["study"], title=fi.title)
                png(fig, f"{o}__bubble_{m}_png")
            log.info("%s / %s: k = %d", an.name, o, k)


if sm.input.get("table") is None:
    targets_only()
else:
    with_data()
