# Extra metafor reference values for metarepro.diagnostics / metarepro.metareg,
# beyond tests/reference/make_diagnostics.R: meta-regression with every tau2
# estimator (z and knha), exact permutation tests (deterministic, so they can be
# compared exactly), Egger/rank tests, trim-and-fill, influence, leave-one-out and
# cumulative analyses with other methods and with Knapp-Hartung, baujat() data,
# Mantel-Haenszel leave-one-out / cumulative, and a subgroup model with DL + knha.
#
# Run from the repository root (needs the CSVs written by make_reference.R and
# make_diagnostics.R):
#     Rscript tests/reference/make_diagnostics_extra.R
#
# Writes tests/reference/metafor_diagnostics_extra.json. Conventions as in
# make_diagnostics.R: model scale, 17 significant digits (json17.R), null for NA,
# metafor's own field names. Every entry records `setup` and `call`, the exact R
# code evaluated (d = the CSV read with read.csv).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
source(file.path(out_dir, "json17.R"))

CTRL <- "control=list(threshold=1e-12, tol=1e-12, maxiter=1000)"

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}
arr <- function(x) I(num(x))

entries <- list()
run <- function(id, kind, setup, call, extract) {
  env <- new.env()
  env$d <- NULL
  warns <- character(0)
  e <- list(id = id, kind = kind, setup = setup, call = call)
  value <- tryCatch(
    withCallingHandlers({
      eval(parse(text = setup), envir = env)
      eval(parse(text = call), envir = env)
    }, warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    }, message = function(m) invokeRestart("muffleMessage")),
    error = function(err) structure(conditionMessage(err), class = "captured_error"))
  if (inherits(value, "captured_error")) e$error <- as.character(value) else e$result <- extract(value)
  if (length(warns)) e$warning <- I(unique(warns))
  entries[[length(entries) + 1]] <<- e
  invisible(value)
}

read <- function(name) sprintf("d <- read.csv(\"tests/reference/data/%s.csv\", stringsAsFactors=FALSE)", name)
ES <- list(
  bcg = paste0(read("bcg_mods"), "; es <- escalc(measure=\"RR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)"),
  hackshaw = paste0(read("hackshaw1998_mods"), "; es <- d"),
  curtis = paste0(read("curtis1998"), "; es <- escalc(measure=\"MD\", m1i=mean_t, sd1i=sd_t, n1i=total_t, m2i=mean_c, sd2i=sd_c, n2i=total_c, data=d)"))

ex_mods <- function(x) {
  list(k = x$k, p = x$p, coef_names = I(rownames(x$beta)), beta = arr(x$beta), se = arr(x$se), zval = arr(x$zval),
       pval = arr(x$pval), ci.lb = arr(x$ci.lb), ci.ub = arr(x$ci.ub), QM = num(x$QM), QMdf = arr(x$QMdf),
       QMp = num(x$QMp), tau2 = num(x$tau2), R2 = num(x$R2), I2 = num(x$I2), H2 = num(x$H2),
       QE = num(x$QE), QEp = num(x$QEp), test = x$test, ddf = num(x$ddf), s2w = num(x$s2w), method = x$method)
}
ex_fit <- function(x) list(k = x$k, estimate = num(x$beta), se = num(x$se), zval = num(x$zval), pval = num(x$pval),
                           ci.lb = num(x$ci.lb), ci.ub = num(x$ci.ub), tau2 = num(x$tau2), I2 = num(x$I2),
                           H2 = num(x$H2), QE = num(x$QE), QEp = num(x$QEp))
ex_regtest <- function(r) list(model = r$model, zval = num(r$zval), pval = num(r$pval), dfs = num(r$dfs),
                               est = num(r$est), ci.lb = num(r$ci.lb), ci.ub = num(r$ci.ub))
ex_ranktest <- function(r) list(tau = num(r$tau), pval = num(r$pval))
ex_trimfill <- function(x) c(list(k0 = x$k0, se.k0 = num(x$se.k0), p.k0 = num(x$p.k0), side = x$side,
                                  yi = arr(x$yi), vi = arr(x$vi), fill = I(as.logical(x$fill))), ex_fit(x))
ex_table <- function(cols) function(x) {
  out <- lapply(cols, function(cn) if (is.null(x[[cn]])) I(rep(NA_real_, length(x$estimate))) else arr(x[[cn]]))
  names(out) <- cols
  out$slab <- I(as.character(x$slab))
  out
}
ex_influence <- function(x) {
  cols <- c("rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight")
  out <- lapply(cols, function(cn) arr(x$inf[[cn]]))
  names(out) <- cols
  out$inf <- I(as.logical(x$is.infl))
  out$dfbs <- arr(x$dfbs[[1]])
  out$note <- "hat is a proportion (hatvalues), weight in percent (weights)"
  out
}
ex_perm <- function(p) list(pval = arr(p$pval), QMp = num(p$QMp), exact = isTRUE(p$exact), iter = num(p$iter),
                            zval.perm_n = nrow(as.matrix(p$zval.perm)))
ex_baujat <- function(b) list(x = arr(b$x), y = arr(b$y), slab = I(as.character(b$slab)))

L1 <- c("estimate", "se", "zval", "pval", "ci.lb", "ci.ub", "Q", "Qp", "tau2", "I2", "H2")
CU <- c("estimate", "se", "zval", "pvals", "ci.lb", "ci.ub", "Q", "Qp", "tau2", "I2", "H2")

# --- meta-regression with every tau2 estimator --------------------------------
for (m in c("FE", "DL", "HE", "HS", "SJ", "ML", "REML", "PM", "EB")) for (test in c("z", "knha")) {
  run(sprintf("bcg/mods/~ablat+year/%s/%s", m, test), "metaregression", ES$bcg,
      sprintf("rma(yi, vi, mods=~ ablat + year, data=es, method=\"%s\", test=\"%s\", %s)", m, test, CTRL), ex_mods)
}
for (m in c("DL", "ML", "PM")) {
  run(sprintf("hackshaw/mods/~year/%s/z", m), "metaregression", ES$hackshaw,
      sprintf("rma(yi, vi, mods=~ year, data=es, method=\"%s\", test=\"z\", %s)", m, CTRL), ex_mods)
}
run("bcg/mods/~factor(alloc)/DL/knha", "metaregression", ES$bcg,
    sprintf("rma(yi, vi, mods=~ factor(alloc), data=es, method=\"DL\", test=\"knha\", %s)", CTRL), ex_mods)
run("bcg/mods/~factor(alloc)/FE/z", "metaregression", ES$bcg,
    "rma(yi, vi, mods=~ factor(alloc), data=es, method=\"FE\")", ex_mods)

# --- exact permutation tests (number of permutations <= iter, so metafor enumerates them all) ----
SUB6 <- paste0(ES$bcg, "; es6 <- es[1:6, ]")
for (test in c("z", "knha")) {
  run(sprintf("bcg6/permutest/~ablat/REML/%s", test), "permutest", SUB6,
      sprintf("permutest(rma(yi, vi, mods=~ ablat, data=es6, method=\"REML\", test=\"%s\", %s), iter=1000)", test, CTRL),
      ex_perm)
}
SUB9 <- paste0(ES$bcg, "; es9 <- es[1:9, ]")
run("bcg9/permutest/int/DL/z", "permutest", SUB9,
    sprintf("permutest(rma(yi, vi, data=es9, method=\"DL\", %s), iter=1000)", CTRL), ex_perm)
run("bcg9/permutest/int/REML/knha", "permutest", SUB9,
    sprintf("permutest(rma(yi, vi, data=es9, method=\"REML\", test=\"knha\", %s), iter=1000)", CTRL), ex_perm)

# --- small-study tests --------------------------------------------------------
FITS <- list(
  "bcg/DL/knha" = list(es = ES$bcg, fit = sprintf("rma(yi, vi, data=es, slab=study, method=\"DL\", test=\"knha\", %s)", CTRL)),
  "bcg/DL/z" = list(es = ES$bcg, fit = sprintf("rma(yi, vi, data=es, slab=study, method=\"DL\", %s)", CTRL)),
  "hackshaw/ML/z" = list(es = ES$hackshaw, fit = sprintf("rma(yi, vi, data=es, slab=study, method=\"ML\", %s)", CTRL)),
  "hackshaw/PM/z" = list(es = ES$hackshaw, fit = sprintf("rma(yi, vi, data=es, slab=study, method=\"PM\", %s)", CTRL)),
  "curtis/REML/z" = list(es = ES$curtis, fit = sprintf("rma(yi, vi, data=es, slab=study, method=\"REML\", %s)", CTRL)))
for (nm in names(FITS)) {
  f <- FITS[[nm]]
  setup <- sprintf("%s; fit <- %s", f$es, f$fit)
  run(paste0(nm, "/fit"), "fit", setup, "fit", ex_fit)
  run(paste0(nm, "/regtest/rma"), "regtest", setup, "regtest(fit, model=\"rma\")", ex_regtest)
  run(paste0(nm, "/regtest/lm"), "regtest", setup, "regtest(fit, model=\"lm\")", ex_regtest)
  run(paste0(nm, "/ranktest"), "ranktest", setup, "ranktest(fit)", ex_ranktest)
  for (est in c("L0", "R0"))
    run(sprintf("%s/trimfill/%s", nm, est), "trimfill", setup,
        sprintf("trimfill(fit, estimator=\"%s\", %s)", est, CTRL), ex_trimfill)
  if (nm != "curtis/REML/z") {
    run(paste0(nm, "/influence"), "influence", setup, "influence(fit)", ex_influence)
    run(paste0(nm, "/leave1out"), "leave1out", setup, "leave1out(fit)", ex_table(L1))
    run(paste0(nm, "/baujat"), "baujat", setup, "{pdf(NULL); b <- baujat(fit); dev.off(); b}", ex_baujat)
  }
}
run("bcg/DL/z/trimfill/Q0", "trimfill", sprintf("%s; fit <- %s", ES$bcg, FITS[["bcg/DL/z"]]$fit),
    sprintf("trimfill(fit, estimator=\"Q0\", %s)", CTRL), ex_trimfill)
run("bcg/DL/z/trimfill/L0/left", "trimfill", sprintf("%s; fit <- %s", ES$bcg, FITS[["bcg/DL/z"]]$fit),
    sprintf("trimfill(fit, estimator=\"L0\", side=\"left\", %s)", CTRL), ex_trimfill)
for (mdl in c("rma", "lm"))
  run(sprintf("bcg/REML/z/regtest/%s/vi", mdl), "regtest",
      sprintf("%s; fit <- rma(yi, vi, data=es, slab=study, method=\"REML\", %s)", ES$bcg, CTRL),
      sprintf("regtest(fit, model=\"%s\", predictor=\"vi\")", mdl), ex_regtest)
run("bcg/DL/knha/cumul/year", "cumul", sprintf("%s; fit <- %s", ES$bcg, FITS[["bcg/DL/knha"]]$fit),
    "cumul(fit, order=es$year)", ex_table(CU))
for (m in c("REML", "FE")) {
  setup <- sprintf("%s; fit <- rma(yi, vi, data=es, slab=study, method=\"%s\", %s)", ES$bcg, m, CTRL)
  run(sprintf("bcg/%s/z/baujat", m), "baujat", setup, "{pdf(NULL); b <- baujat(fit); dev.off(); b}", ex_baujat)
}

# --- Mantel-Haenszel leave-one-out and cumulative (from the 2x2 tables) -------
MH <- paste0(read("bcg_mods"), "; fit <- rma.mh(measure=\"OR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d, slab=study)")
run("bcg/MH/OR/leave1out", "leave1out", MH, "leave1out(fit)", ex_table(c("estimate", "se", "zval", "pval", "ci.lb", "ci.ub", "Q", "Qp", "I2", "H2")))
run("bcg/MH/OR/cumul/year", "cumul", MH, "cumul(fit, order=d$year)", ex_table(c("estimate", "se", "zval", "pvals", "ci.lb", "ci.ub", "Q", "Qp", "I2", "H2")))

ids <- vapply(entries, `[[`, "", "id")
stopifnot(!anyDuplicated(ids))
out <- list(
  generated_by = "tests/reference/make_diagnostics_extra.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  controls = list(rma = CTRL),
  conventions = list(scale = "model scale (log RR for bcg, MD for curtis, yi as given for hackshaw)",
                     setup = "entry$setup is run before entry$call; d = the CSV in tests/reference/data",
                     null = "null = NA in metafor",
                     bcg6 = "es[1:6, ]: 6! = 720 <= iter permutations, so permutest() is exact (deterministic)",
                     bcg9 = "es[1:9, ]: 2^9 = 512 <= iter sign flips, so permutest() is exact (deterministic)"),
  diagnostics = entries)
write_json17(out, file.path(out_dir, "metafor_diagnostics_extra.json"))
cat(sprintf("%d entries written\n", length(entries)))
for (e in entries) {
  if (!is.null(e$error)) cat("ERROR ", e$id, ": ", e$error, "\n", sep = "")
  if (!is.null(e$warning)) cat("WARNING ", e$id, ": ", paste(e$warning, collapse = " | "), "\n", sep = "")
}
