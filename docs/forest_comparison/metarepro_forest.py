"""metarepro's forest plot of the calcium + vitamin D total-fracture trials (REML,
Hartung-Knapp), to set beside metafor's forest() of the same fit (metafor_forest.R).
Run from the repository root: python docs/forest_comparison/metarepro_forest.py"""

from metarepro.analysis import figure_inputs
from metarepro.extracted import load_analysis
from metarepro.figures import forest_plot, save_figure

an = load_analysis("data/extracted/calcium_vitd_fractures.csv", "data/extracted/calcium_vitd_fractures.yaml")
fi = figure_inputs(an, "total_fracture")
fig = forest_plot(fi.result, fi.frame, common=fi.common, flagged=fi.flagged, title=fi.title)
save_figure(fig, "docs/forest_comparison/metarepro", formats=("png",))
