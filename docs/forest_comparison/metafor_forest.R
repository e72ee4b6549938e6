# metafor's forest() for the same data as results/calcium_vitd_fractures/total_fracture/forest.png
# Run from the repository root: Rscript docs/forest_comparison/metafor_forest.R
suppressMessages(library(metafor))
d <- read.csv("data/extracted/calcium_vitd_fractures.csv")
d <- d[d$outcome == "total_fracture", ]
yi <- log(d$estimate)
vi <- ((log(d$ci_upper) - log(d$ci_lower)) / (2 * qnorm(0.975)))^2
fit <- rma(yi, vi, method = "REML", test = "knha", slab = d$study)
png("docs/forest_comparison/metafor.png", width = 1400, height = 700, res = 150)
forest(fit, atransf = exp, at = log(c(0.2, 0.5, 1, 2)), addpred = TRUE, header = c("Study", "RR [95% CI]"),
       showweights = TRUE, xlab = "Risk ratio")
text(-4.6, -1.6, pos = 4, cex = 0.75, bquote(paste("Q = ", .(formatC(fit$QE, digits = 2, format = "f")),
     ", p = ", .(formatC(fit$QEp, digits = 3, format = "f")), "; ", I^2, " = ", .(formatC(fit$I2, digits = 0, format = "f")), "%")))
invisible(dev.off())
