# The same work as the pipeline, done with metafor: for every analysis and outcome
# in data/extracted, every method x test, MH/Peto where counts allow, Q-profile CIs,
# prediction intervals, a forest plot and a funnel plot with Egger's test (PNG, SVG, PDF);
# the robustness work (leave1out, influence, cumul, regtest rma + lm, ranktest, trimfill
# L0 + R0, meta-regression with permutest on each moderator, and PNG plots of leave1out +
# cumul, influence, Baujat, bubble) and the method forensics (every method x test x
# zero-cell convention re-fitted once per outcome, as metarepro does per target).
# Usage: Rscript benchmarks/pipeline_metafor.R data/extracted OUTDIR [noplots]
# ("noplots": the same statistics without drawing, as the pipeline with figures off).
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
indir <- args[1]; outdir <- args[2]
draw <- length(args) < 3 || args[3] != "noplots"
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
measure_of <- function(yaml_lines) {
  m <- grep("^measure:", yaml_lines, value = TRUE)[1]
  trimws(sub("^measure:\\s*", "", sub("#.*$", "", m)))
}
devices <- list(png = function(f, h) png(f, width = 1200, height = h * 150, res = 150),
                svg = function(f, h) svg(f, width = 8, height = h),
                pdf = function(f, h) pdf(f, width = 8, height = h))
for (csv in list.files(indir, pattern = "\\.csv$", full.names = TRUE)) {
  d <- read.csv(csv, stringsAsFactors = FALSE)
  meas <- measure_of(readLines(sub("\\.csv$", ".yaml", csv)))
  for (oc in unique(d$outcome)) {
    s <- d[d$outcome == oc, ]
    if (all(c("events_t", "total_t", "events_c", "total_c") %in% names(s)) && !anyNA(s$events_t)) {
      es <- escalc(meas, ai = events_t, n1i = total_t, ci = events_c, n2i = total_c, data = s)
      binary <- TRUE
    } else if (all(c("mean_t", "sd_t") %in% names(s)) && !anyNA(s$mean_t)) {
      es <- escalc(meas, m1i = mean_t, sd1i = sd_t, n1i = total_t, m2i = mean_c, sd2i = sd_c, n2i = total_c, data = s)
      binary <- FALSE
    } else if (all(c("estimate", "ci_lower", "ci_upper") %in% names(s))) {
      tr <- if (meas %in% c("RR", "OR", "ROM")) log else identity
      es <- data.frame(yi = tr(s$estimate), vi = ((tr(s$ci_upper) - tr(s$ci_lower)) / (2 * qnorm(.975)))^2)
      binary <- FALSE
    } else next
    if (nrow(es) < 1) next
    fits <- list()
    for (m in c("FE", "DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")) for (t in c("z", "knha")) {
      fit <- try(suppressWarnings(rma(yi, vi, data = es, method = m, test = t)), silent = TRUE)
      if (inherits(fit, "try-error")) next
      if (m != "FE" && fit$k > 1) try(confint(fit), silent = TRUE)
      predict(fit)
      fits[[paste(m, t)]] <- fit
    }
    if (binary) {
      try(suppressWarnings(rma.mh(ai = events_t, n1i = total_t, ci = events_c, n2i = total_c, data = s, measure = meas)), silent = TRUE)
      if (meas == "OR") try(suppressWarnings(rma.peto(ai = events_t, n1i = total_t, ci = events_c, n2i = total_c, data = s)), silent = TRUE)
    }
    main <- fits[["REML knha"]]
    if (is.null(main)) next
    png1 <- function(kind, h = 5) png(file.path(outdir, paste0(basename(csv), "_", oc, "_", kind, ".png")),
                                      width = 1200, height = h * 150, res = 150)
    # method forensics: every method x test x zero-cell convention
    convs <- if (binary) list(list(0.5, "only0", FALSE), list(0.5, "only0", TRUE), list(0.5, "all", FALSE),
                              list(0.5, "all", TRUE), list(0, "none", FALSE)) else list(NULL)
    for (cv in convs) {
      ef <- if (binary) escalc(meas, ai = events_t, n1i = total_t, ci = events_c, n2i = total_c, data = s,
                               add = cv[[1]], to = cv[[2]], drop00 = cv[[3]]) else es
      for (m in c("FE", "DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")) for (t in c("z", "knha"))
        try(suppressWarnings(rma(yi, vi, data = ef, method = m, test = t)), silent = TRUE)
    }
    if (main$k >= 2) {
      l1 <- leave1out(main)
      if (draw) { png1("sensitivity", 2 + 0.35 * main$k); forest(l1$estimate, ci.lb = l1$ci.lb, ci.ub = l1$ci.ub, slab = l1$slab); dev.off() }
      if ("year" %in% names(s)) cumul(main, order = s$year)
      if (draw) { png1("baujat"); baujat(main); dev.off() }
    }
    if (main$k >= 3) {
      inf <- influence(main)
      if (draw) { png1("influence", 6); plot(inf); dev.off() }
      try(regtest(main), silent = TRUE); try(regtest(main, model = "lm"), silent = TRUE)
      try(ranktest(main), silent = TRUE)
      try(trimfill(rma(yi, vi, data = es, method = "REML"), estimator = "L0"), silent = TRUE)
      try(trimfill(rma(yi, vi, data = es, method = "REML"), estimator = "R0"), silent = TRUE)
      for (mod in intersect(c("dose_iu_day"), names(s))) {
        x <- suppressWarnings(as.numeric(s[[mod]]))
        if (sum(!is.na(x)) >= 3 && length(unique(x)) >= 2) {
          mf <- rma(es$yi, es$vi, mods = ~ x, method = "REML", test = "knha")
          permutest(mf, iter = 1000)
          if (draw) { png1(paste0("bubble_", mod)); regplot(mf); dev.off() }
        }
      }
    }
    h <- max(4, 2 + 0.35 * nrow(es))
    if (!draw) { try(regtest(main), silent = TRUE); next }
    for (ext in names(devices)) {
      devices[[ext]](file.path(outdir, paste0(basename(csv), "_", oc, "_forest.", ext)), h)
      forest(main, slab = s$study, atransf = if (meas %in% c("RR", "OR", "ROM")) exp else NULL)
      dev.off()
      if (main$k >= 3) {  # as the pipeline: no funnel plot below three trials
        devices[[ext]](file.path(outdir, paste0(basename(csv), "_", oc, "_funnel.", ext)), 6)
        funnel(main)
        try(title(sub = sprintf("Egger p = %.3f", regtest(main)$pval)), silent = TRUE)
        dev.off()
      }
    }
  }
}
