# Reference values for metarepro's method "MH-DL" (RevMan 5's "M-H, Random") under
# metafor's convention, computed with metafor's own pieces:
#   the Mantel-Haenszel estimate of rma.mh() (raw counts),
#   the study effects of escalc() (add = 1/2 to zero-cell studies, double zeros dropped,
#     as rma.mh computes its study-level effects),
#   Cochran's Q about the MH estimate with weights 1/vi, DerSimonian-Laird tau^2 from it,
#   then rma(yi, vi, tau2 = tau2, test = ...) for the pooled estimate, its CI and weights,
#   and predict() for the prediction interval.
#
# Run from the repository root (after make_reference.R, whose data/*.csv it reads):
#     Rscript tests/reference/make_mhdl.R
# Writes tests/reference/metafor_mhdl.json. Needs metafor and jsonlite.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
source(file.path("tests", "reference", "json17.R"))

data_dir <- file.path("tests", "reference", "data")
DATASETS <- c("bcg", "hart1999", "collins1985a", "egger2001", "nielweise2007", "yusuf1985_t9")
OPTS <- "add=1/2, to=\"only0\", drop00=TRUE"

cases <- list()
for (ds in DATASETS) {
  d <- read.csv(file.path(data_dir, paste0(ds, ".csv")), stringsAsFactors = FALSE)
  for (measure in c("RR", "OR", "RD")) {
    for (test in c("z", "knha", "adhoc")) {
      call <- sprintf(paste0(
        "es <- escalc(measure=\"%1$s\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d, %2$s); ",
        "mh <- rma.mh(measure=\"%1$s\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d, %2$s); ",
        "ok <- !is.na(es$yi) & !is.na(es$vi); w <- 1/es$vi[ok]; ",
        "Q <- sum(w * (es$yi[ok] - c(mh$beta))^2); k <- sum(ok); ",
        "tau2 <- if (k > 1) max(0, (Q - (k - 1)) / (sum(w) - sum(w^2)/sum(w))) else 0; ",
        "fit <- rma(es$yi[ok], es$vi[ok], tau2=tau2, test=\"%3$s\"); pr <- predict(fit)"),
        measure, OPTS, test)
      eval(parse(text = call))
      wts <- rep(NA_real_, nrow(d))
      wts[ok] <- weights(fit)
      cases[[length(cases) + 1]] <- list(
        id = paste(ds, measure, "MH-DL", test, sep = "/"), dataset = ds, measure = measure,
        method = "MH-DL", test = test, call = call,
        escalc = list(yi = I(as.numeric(es$yi)), vi = I(as.numeric(es$vi))),
        fit = list(k = k, mh_estimate = c(mh$beta), q = Q, q_df = k - 1, tau2 = tau2,
                   estimate = c(fit$beta), se = fit$se, ci_lower = fit$ci.lb, ci_upper = fit$ci.ub,
                   pvalue = fit$pval, pi_lower = pr$pi.lb, pi_upper = pr$pi.ub, weights = I(wts)))
    }
  }
}

write_json17(list(r_version = R.version.string,
                  metafor_version = as.character(packageVersion("metafor")),
                  note = paste("MH-DL under metafor's convention from metafor's pieces (see the header of",
                               "make_mhdl.R); RevMan 5's convention is checked against RevMan's stored numbers",
                               "and hand calculations in tests/test_revman_conventions.py"),
                  cases = cases),
             file.path("tests", "reference", "metafor_mhdl.json"))
cat(length(cases), "cases written\n")
