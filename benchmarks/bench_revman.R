# metafor loop for benchmarks/bench_revman.py: pools every analysis (and subgroup)
# of a review one at a time, with the method the review used, as a reviewer
# reproducing a Cochrane review in R would (metafor 3.8).
# Usage: Rscript benchmarks/bench_revman.R ROWS.csv OUT.csv
# ROWS.csv: one row per study and analysis (key, measure, method, level and the
# engine's columns), written by bench_revman.py from the same file.
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
t0 <- proc.time()[["elapsed"]]
keys <- unique(d$block_key)
out <- vector("list", length(keys))
for (j in seq_along(keys)) {
  s <- d[d$block_key == keys[j], ]
  m <- s$measure[1]; meth <- s$method[1]; lev <- s$level[1]
  fit <- tryCatch({
    if (meth == "MH") {
      rma.mh(ai = s$events_t, n1i = s$total_t, ci = s$events_c, n2i = s$total_c, measure = m, level = lev,
             drop00 = TRUE)
    } else if (meth == "PETO") {
      rma.peto(ai = s$events_t, n1i = s$total_t, ci = s$events_c, n2i = s$total_c, level = lev, drop00 = TRUE)
    } else if (m %in% c("RR", "OR", "RD")) {
      es <- escalc(m, ai = s$events_t, n1i = s$total_t, ci = s$events_c, n2i = s$total_c, drop00 = TRUE)
      rma(es$yi, es$vi, method = meth, level = lev)
    } else if (m %in% c("MD", "SMD")) {
      es <- escalc(m, m1i = s$mean_t, sd1i = s$sd_t, n1i = s$total_t, m2i = s$mean_c, sd2i = s$sd_c,
                   n2i = s$total_c)
      rma(es$yi, es$vi, method = meth, level = lev)
    } else if (!all(is.na(s$sei))) {
      rma(s$yi, sei = s$sei, method = meth, level = lev)
    } else {
      rma(s$yi, s$vi, method = meth, level = lev)
    }
  }, error = function(e) NULL)
  out[[j]] <- if (is.null(fit)) c(keys[j], NA, NA, NA) else c(keys[j], fit$b[1], fit$ci.lb, fit$ci.ub)
}
el <- proc.time()[["elapsed"]] - t0
r <- do.call(rbind, out)
colnames(r) <- c("block_key", "estimate", "ci_lower", "ci_upper")
write.csv(r, args[2], row.names = FALSE)
cat(el, "\n")
