# Reference values from R's metafor for metarepro's diagnostics: funnel-asymmetry
# tests, trim-and-fill, leave-one-out, influence, cumulative meta-analysis,
# meta-regression, permutation test, subgroup analysis.
#
# Run from the repository root:
#     Rscript tests/reference/make_diagnostics.R
#
# Writes
#     tests/reference/data/<dataset>_mods.csv   data with moderator columns
#     tests/reference/metafor_diagnostics.json
#
# Conventions as in make_reference.R (see tests/reference/README.md): model scale,
# numbers with 17 significant digits, null for NA. Result fields keep metafor's
# own names (estimate, se, zval, pval, ci.lb, ci.ub, Q, Qp, tau2, I2, H2, ...).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, recursive = TRUE, showWarnings = FALSE)
source(file.path(out_dir, "json17.R"))

RMA_CONTROL <- "list(threshold=1e-12, tol=1e-12, maxiter=1000)"

# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

fmt17 <- function(x) {
  if (is.character(x) || is.factor(x)) return(as.character(x))
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- ""
  out
}

specs <- list(
  bcg_mods = list(
    frame = with(dat.bcg, data.frame(study = paste0(author, " ", year), events_t = tpos, total_t = tpos + tneg,
                                     events_c = cpos, total_c = cpos + cneg, year = year, ablat = ablat,
                                     alloc = as.character(alloc), stringsAsFactors = FALSE)),
    escalc = "escalc(measure=\"RR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
    measure = "RR", source = "metadat::dat.bcg with year, ablat, alloc",
    mods = c("~ ablat", "~ ablat + year"), group = "alloc"),
  hackshaw1998_mods = list(
    frame = with(dat.hackshaw1998, data.frame(study = paste0(study, " ", author, " ", year), yi = yi, vi = vi,
                                              year = year, design = as.character(design), stringsAsFactors = FALSE)),
    escalc = "d", measure = "GEN", source = "metadat::dat.hackshaw1998 with year, design",
    mods = c("~ year"), group = "design"),
  raudenbush1985_mods = list(
    frame = with(dat.raudenbush1985, data.frame(study = paste0(study, " ", author, " ", year), yi = yi, vi = vi,
                                                year = year, weeks = weeks, tester = as.character(tester),
                                                stringsAsFactors = FALSE)),
    escalc = "d", measure = "GEN", source = "metadat::dat.raudenbush1985 with year, weeks, tester",
    mods = c("~ weeks"), group = "tester"),
  molloy2014_mods = list(
    frame = with(dat.molloy2014, data.frame(study = paste0(authors, " ", year), r = ri, total = ni, year = year,
                                            meanage = meanage, design = as.character(design),
                                            stringsAsFactors = FALSE)),
    escalc = "escalc(measure=\"ZCOR\", ri=r, ni=total, data=d)",
    measure = "ZCOR", source = "metadat::dat.molloy2014 with year, meanage, design",
    mods = c("~ meanage"), group = "design"))

for (name in names(specs)) {
  f <- specs[[name]]$frame
  stopifnot(!anyDuplicated(f$study))
  f[] <- lapply(f, fmt17)
  write.csv(f, file.path(data_dir, paste0(name, ".csv")), row.names = FALSE, quote = TRUE)
  specs[[name]]$frame <- read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = FALSE)
}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}
arr <- function(x) I(num(x))

capture <- function(expr_text, env) {
  warns <- character(0)
  value <- tryCatch(
    withCallingHandlers(eval(parse(text = expr_text), envir = env),
                        warning = function(w) {
                          warns <<- c(warns, conditionMessage(w))
                          invokeRestart("muffleWarning")
                        },
                        message = function(m) invokeRestart("muffleMessage")),
    error = function(e) structure(conditionMessage(e), class = "captured_error"))
  list(value = value, warnings = warns)
}

entries <- list()
add_entry <- function(dataset, id, kind, model, call, env, extract) {
  r <- capture(call, env)
  e <- list(id = paste(dataset, id, sep = "/"), dataset = dataset, kind = kind, model = model,
            setup = env$setup, call = call)
  if (inherits(r$value, "captured_error")) {
    e$error <- as.character(r$value)
  } else {
    e$result <- extract(r$value)
  }
  if (length(r$warnings)) e$warning <- I(unique(r$warnings))
  entries[[length(entries) + 1]] <<- e
  invisible(r$value)
}

fit_summary <- function(x) {
  list(k = x$k, estimate = num(x$beta), se = num(x$se), zval = num(x$zval), pval = num(x$pval),
       ci.lb = num(x$ci.lb), ci.ub = num(x$ci.ub), tau2 = num(x$tau2), I2 = num(x$I2), H2 = num(x$H2),
       QE = num(x$QE), QEp = num(x$QEp))
}

ex_regtest <- function(r) {
  cf <- if (inherits(r$fit, "lm")) coef(summary(r$fit)) else cbind(r$fit$beta, r$fit$se)
  list(model = r$model, predictor = r$predictor, zval = num(r$zval), pval = num(r$pval), dfs = num(r$dfs),
       est = num(r$est), ci.lb = num(r$ci.lb), ci.ub = num(r$ci.ub),
       fit_coef = arr(cf[, 1]), fit_se = arr(cf[, 2]), fit_coef_names = I(rownames(cf)),
       note = "est/ci = limit estimate (intercept of the regression on the predictor, i.e. as sei -> 0); zval/pval test the predictor (t with dfs for model='lm' and for test='knha')")
}
ex_ranktest <- function(r) list(tau = num(r$tau), pval = num(r$pval))
ex_trimfill <- function(x) {
  c(list(k0 = x$k0, se.k0 = num(x$se.k0), p.k0 = num(x$p.k0), side = x$side,
         yi = arr(x$yi), vi = arr(x$vi), fill = I(as.logical(x$fill)), slab = I(as.character(x$slab))),
    fit_summary(x))
}
ex_table <- function(cols) function(x) {
  n <- length(x$estimate)
  # columns metafor leaves out (tau2 of FE models) are written as null per row
  out <- lapply(cols, function(cn) if (is.null(x[[cn]])) I(rep(NA_real_, n)) else arr(x[[cn]]))
  names(out) <- cols
  out$slab <- I(as.character(x$slab))
  out
}
ex_influence <- function(x) {
  inf <- x$inf
  out <- lapply(c("rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight"),
                function(cn) arr(inf[[cn]]))
  names(out) <- c("rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight")
  out$inf <- I(as.logical(x$is.infl))
  out$dfbs <- arr(x$dfbs[[1]])
  out$slab <- I(as.character(inf$slab))
  out$note <- "hat and weight in percent as print(influence()); inf = is.infl (flagged by any of metafor's cut-offs)"
  out
}
ex_mods <- function(x) {
  list(k = x$k, coef_names = I(rownames(x$beta)), beta = arr(x$beta), se = arr(x$se), zval = arr(x$zval),
       pval = arr(x$pval), ci.lb = arr(x$ci.lb), ci.ub = arr(x$ci.ub), QM = num(x$QM), QMdf = arr(x$QMdf),
       QMp = num(x$QMp), tau2 = num(x$tau2), R2 = num(x$R2), I2 = num(x$I2), H2 = num(x$H2),
       QE = num(x$QE), QEp = num(x$QEp), test = x$test, ddf = num(x$ddf))
}
ex_permutest <- function(p) {
  list(pval = arr(p$pval), QMp = num(p$QMp), iter = 1000, seed = 1234,
       note = "approximate permutation test (exact=FALSE, iter=1000) after set.seed(1234) in R; R's RNG stream cannot be reproduced in Python, so compare with a Monte Carlo tolerance (sd of a p-value from 1000 permutations is about sqrt(p(1-p)/1000))")
}

# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

L1_COLS <- c("estimate", "se", "zval", "pval", "ci.lb", "ci.ub", "Q", "Qp", "tau2", "I2", "H2")
CU_COLS <- c("estimate", "se", "zval", "pvals", "ci.lb", "ci.ub", "Q", "Qp", "tau2", "I2", "H2")

for (name in names(specs)) {
  sp <- specs[[name]]
  env <- new.env()
  env$d <- sp$frame
  setup_es <- sprintf("es <- %s", sp$escalc)
  eval(parse(text = setup_es), envir = env)
  models <- list(
    RE = sprintf("rma(yi, vi, data=es, slab=study, method=\"REML\", control=%s)", RMA_CONTROL),
    FE = "rma(yi, vi, data=es, slab=study, method=\"FE\")")
  for (mname in names(models)) {
    env$fit <- eval(parse(text = models[[mname]]), envir = env)
    env$setup <- sprintf("%s; fit <- %s", setup_es, models[[mname]])
    add_entry(name, paste0("fit/", mname), "fit", mname, "fit", env, fit_summary)
    add_entry(name, paste0("regtest/", mname, "/rma"), "regtest", mname, "regtest(fit, model=\"rma\")", env, ex_regtest)
    add_entry(name, paste0("regtest/", mname, "/lm"), "regtest", mname, "regtest(fit, model=\"lm\")", env, ex_regtest)
    add_entry(name, paste0("ranktest/", mname), "ranktest", mname, "ranktest(fit)", env, ex_ranktest)
    for (est in c("L0", "R0"))
      add_entry(name, paste0("trimfill/", mname, "/", est), "trimfill", mname,
                sprintf("trimfill(fit, estimator=\"%s\"%s)", est,
                        # trimfill passes ... on to its rma.uni() refits; it does not reuse fit$control
                        if (mname == "RE") sprintf(", control=%s", RMA_CONTROL) else ""), env, ex_trimfill)
    add_entry(name, paste0("leave1out/", mname), "leave1out", mname, "leave1out(fit)", env, ex_table(L1_COLS))
    add_entry(name, paste0("influence/", mname), "influence", mname, "influence(fit)", env, ex_influence)
    add_entry(name, paste0("cumul/", mname, "/year"), "cumul", mname, "cumul(fit, order=es$year)", env,
              function(x) c(ex_table(CU_COLS)(x), list(note = "rows in cumulative order (studies sorted by year, ties in file order); slab gives the order")))
  }

  # meta-regression
  env$setup <- setup_es
  for (m in sp$mods) for (test in c("z", "knha")) {
    call <- sprintf("rma(yi, vi, mods=%s, data=es, slab=study, method=\"REML\", test=\"%s\", control=%s)",
                    m, test, RMA_CONTROL)
    fit <- add_entry(name, paste0("mods/", gsub(" ", "", m), "/REML/", test), "metaregression", "RE", call, env, ex_mods)
    if (m == sp$mods[1] && name == "bcg_mods") {
      env$mfit <- fit
      env$setup <- sprintf("%s; mfit <- %s", setup_es, call)
      add_entry(name, paste0("permutest/", gsub(" ", "", m), "/", test), "permutest", "RE",
                "{set.seed(1234); permutest(mfit, exact=FALSE, iter=1000)}", env, ex_permutest)
      env$setup <- setup_es
    }
  }

  # subgroups: one model with factor(group), and separate fits per subgroup + test of difference
  g <- sp$group
  for (method in c("REML", "FE")) {
    ctrl <- if (method == "FE") "" else sprintf(", control=%s", RMA_CONTROL)
    env$setup <- setup_es
    add_entry(name, paste0("subgroup/", g, "/", method, "/mods"), "subgroup_mods", method,
              sprintf("rma(yi, vi, mods=~ factor(%s), data=es, slab=study, method=\"%s\"%s)", g, method, ctrl), env, ex_mods)
    sep_call <- sprintf(paste0(
      "{lv <- unique(es$%s); ", # levels in order of first appearance
      "fits <- lapply(lv, function(l) rma(yi, vi, data=es[es$%s == l, ], slab=study, method=\"%s\"%s)); ",
      "est <- sapply(fits, function(f) c(f$beta)); se <- sapply(fits, function(f) f$se); ",
      "between <- rma(est, sei=se, mods=~ factor(lv), method=\"FE\"); ",
      "list(lv=lv, fits=fits, between=between)}"), g, g, method, ctrl)
    add_entry(name, paste0("subgroup/", g, "/", method, "/separate"), "subgroup_separate", method, sep_call, env,
              function(r) list(
                levels = I(as.character(r$lv)),
                fits = lapply(r$fits, fit_summary),
                Q_between = num(r$between$QM), Q_between_df = num(r$between$QMdf[1]), Q_between_p = num(r$between$QMp),
                note = "separate fits per level (levels in order of first appearance); Q_between = QM of an FE meta-regression of the subgroup estimates on level (Wald test of equal subgroup means, each subgroup with its own tau2)"))
  }
}

ids <- vapply(entries, `[[`, "", "id")
stopifnot(!anyDuplicated(ids))

out <- list(
  generated_by = "tests/reference/make_diagnostics.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  controls = list(rma = RMA_CONTROL, note = "REML fits with threshold/tol 1e-12, maxiter 1000; diagnostics with metafor defaults"),
  conventions = list(
    scale = "model scale: log RR for bcg_mods, Fisher z for molloy2014_mods, yi as given otherwise",
    setup = "entry$setup is the R code run before entry$call (d = the CSV read with read.csv)",
    arrays = "per-study arrays in file order unless the entry says otherwise (cumul: cumulative order; trimfill: observed studies then filled ones)",
    null = "null = NA in metafor"),
  datasets = lapply(names(specs), function(n) list(name = n, measure = specs[[n]]$measure, k = nrow(specs[[n]]$frame),
                                                   source = specs[[n]]$source, escalc = specs[[n]]$escalc)),
  diagnostics = entries)
write_json17(out, file.path(out_dir, "metafor_diagnostics.json"))

cat(sprintf("%d diagnostics entries written\n", length(entries)))
print(table(vapply(entries, `[[`, "", "kind")))
for (e in entries) {
  if (!is.null(e$error)) cat("ERROR ", e$id, ": ", e$error, "\n", sep = "")
  if (!is.null(e$warning)) cat("WARNING ", e$id, ": ", paste(e$warning, collapse = " | "), "\n", sep = "")
}
