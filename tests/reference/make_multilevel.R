# Reference values from R's metafor for metarepro.multilevel (rma.mv) and
# metarepro.multiarm (covariance of comparisons that share a control arm).
#
# Run from the repository root:
#     Rscript tests/reference/make_multilevel.R
#
# Writes
#     tests/reference/data/mv_<dataset>.csv   the inputs, in metarepro's column names
#     tests/reference/metafor_multilevel.json one record per case (see README.md)
#
# Needs R >= 4.2 with metafor (3.8-1 was used), metadat and jsonlite.
#
# Datasets (metadat):
#   konstantopoulos2011  56 estimates in 11 districts (yi, vi): ~ 1 | district, ~ 1 | district/school,
#                        ~ school | district (CS), moderator year (centred)
#   berkey1998           5 trials x 2 outcomes (PD, AL) with their 2x2 sampling covariance matrices
#                        (v1i, v2i): ~ outcome | trial (CS, HCS), ~ 1 | trial; mods ~ outcome - 1
#   dogliotti2014        stroke in atrial fibrillation, 20 trials (4 three-arm); every other arm vs the
#                        trial's last-listed arm (Placebo/Control where there is one): OR, RR, RD
#   senn2013             HbA1c, 26 trials (Willms 1999 three-arm); every arm vs placebo (else the
#                        last-listed arm): MD, SMD; ROM on the trials where every arm's HbA1c fell,
#                        with the fall as a positive mean (only an arithmetic check of the formulas)
#
# For the multi-arm datasets escalc() gives yi and vi of each comparison, and V is built by hand
# (metafor has no function for these exact covariances; its vcalc() uses the sample sizes as weights,
# an approximation): the covariance of two comparisons that share a control arm is the variance
# component of that arm (Gleser & Olkin 2009, Handbook of Research Synthesis, 2nd ed., ch. 19):
#   log RR: 1/c - 1/n_c        log OR: 1/c + 1/d          RD: p_c (1 - p_c) / n_c
#   MD: sd_c^2 / n_c           ROM: sd_c^2 / (n_c m_c^2)  SMD: 1/n_c + g_i g_j / (2 N)
# with the (continuity-corrected, as escalc) counts of the control arm and N the total of all arms of
# the trial. When escalc corrected one row of a pair and not the other, the two rows carry different
# control cells; the covariance is then sqrt(a_i a_j) with a_i the component from row i's cells
# (equal to the component itself when the rows agree).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, recursive = TRUE, showWarnings = FALSE)
source(file.path(out_dir, "json17.R"))

# nlminb (rma.mv's default optimiser) with a tighter relative tolerance than its default 1e-10;
# where nlminb then stops with "false convergence", the case is run again with the next, looser
# control (finally metafor's default) and records the one used in 'control' (and the exact call).
CTRLS <- c("list(rel.tol=1e-12, iter.max=1000, eval.max=1000)",
           "list(rel.tol=1e-11, iter.max=1000, eval.max=1000)", "default")

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}
arr <- function(x) I(num(x))

write17 <- function(frame, name) {
  path <- file.path(data_dir, paste0("mv_", name, ".csv"))
  out <- frame
  for (cn in names(out)) if (is.double(out[[cn]])) out[[cn]] <- ifelse(is.na(out[[cn]]), NA, sprintf("%.17g", out[[cn]]))
  write.csv(out, path, row.names = FALSE, quote = TRUE, na = "")
  path
}

# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------

k11 <- dat.konstantopoulos2011
k11 <- data.frame(study = paste0(k11$district, ".", k11$school), district = k11$district, school = k11$school,
                  year = k11$year, yi = k11$yi, vi = k11$vi, stringsAsFactors = FALSE)
write17(k11, "konstantopoulos2011")

b98 <- dat.berkey1998
b98 <- data.frame(study = paste0(b98$trial, "-", b98$outcome), trial = b98$trial, outcome = as.character(b98$outcome),
                  yi = b98$yi, vi = b98$vi, v1i = b98$v1i, v2i = b98$v2i, stringsAsFactors = FALSE)
write17(b98, "berkey1998")

# multi-arm trials -> one row per comparison, in metarepro's wide layout with the control arm repeated
contrasts <- function(study, arm, cols, ref_of) {
  rows <- list()
  for (s in unique(study)) {
    idx <- which(study == s)
    r <- ref_of(idx)
    for (i in setdiff(idx, r)) {
      rows[[length(rows) + 1]] <- data.frame(study = s, arm_t = arm[i], arm_c = arm[r], i = i, r = r,
                                             stringsAsFactors = FALSE)
    }
  }
  do.call(rbind, rows)
}
dg <- dat.dogliotti2014
cb <- contrasts(dg$study, as.character(dg$treatment), NULL, function(idx) idx[length(idx)])
dog <- data.frame(study = cb$study, comparison = paste(cb$arm_t, "vs", cb$arm_c), arm_t = cb$arm_t,
                  arm_c = cb$arm_c, events_t = dg$stroke[cb$i], total_t = dg$total[cb$i],
                  events_c = dg$stroke[cb$r], total_c = dg$total[cb$r], stringsAsFactors = FALSE)
write17(dog, "dogliotti2014")

sn <- dat.senn2013
cs <- contrasts(sn$study, as.character(sn$treatment), NULL, function(idx) {
  p <- idx[sn$treatment[idx] == "placebo"]
  if (length(p)) p[1] else idx[length(idx)]
})
senn <- data.frame(study = cs$study, comparison = paste(cs$arm_t, "vs", cs$arm_c), arm_t = cs$arm_t,
                   arm_c = cs$arm_c, mean_t = sn$mi[cs$i], sd_t = sn$sdi[cs$i], total_t = sn$ni[cs$i],
                   mean_c = sn$mi[cs$r], sd_c = sn$sdi[cs$r], total_c = sn$ni[cs$r],
                   trial_total = ave(sn$ni, sn$study, FUN = sum)[cs$i], stringsAsFactors = FALSE)
write17(senn, "senn2013")
# ROM needs positive means: the trials whose arms all report a fall in HbA1c (change < 0), with the
# fall as a positive number (mean = -change); only an arithmetic check of the ROM formulas
fall <- ave(senn$mean_t < 0 & senn$mean_c < 0, senn$study, FUN = all) == 1
senn_rom <- senn[fall, ]
senn_rom$mean_t <- -senn_rom$mean_t
senn_rom$mean_c <- -senn_rom$mean_c
write17(senn_rom, "senn2013_rom")

# the hand-made three-comparison table of tests/test_robustness.py (ARMS): the pipeline's robustness
# report must give this model as its main analysis
arms_toy <- data.frame(study = c("T", "T", "U"), comparison = c("high vs low", "mid vs low", "a vs b"),
                       arm_t = c("high", "mid", "a"), arm_c = c("low", "low", "b"), events_t = c(10, 12, 5),
                       total_t = c(100, 101, 50), events_c = c(21, 21, 9), total_c = c(99, 99, 48),
                       stringsAsFactors = FALSE)
write17(arms_toy, "arms_toy")

# ---------------------------------------------------------------------------------------------
# covariance of comparisons sharing a control arm (hand-built, see the header)
# ---------------------------------------------------------------------------------------------

shared_V <- function(d, es, measure) {
  k <- nrow(d)
  if (measure %in% c("OR", "RR", "RD")) {
    # escalc(add=1/2, to="only0"): a row with a zero cell gets 1/2 in each of its four cells
    z <- d$events_t == 0 | d$events_c == 0 | d$events_t == d$total_t | d$events_c == d$total_c
    cc <- d$events_c + 0.5 * z
    dd <- d$total_c - d$events_c + 0.5 * z
    nc <- cc + dd
    a <- switch(measure, OR = 1 / cc + 1 / dd, RR = 1 / cc - 1 / nc, RD = (cc / nc) * (1 - cc / nc) / nc)
  } else if (measure == "MD") {
    a <- d$sd_c^2 / d$total_c
  } else if (measure == "ROM") {
    a <- d$sd_c^2 / (d$total_c * d$mean_c^2)
  } else if (measure == "SMD") {
    a <- 1 / d$total_c
  }
  V <- diag(es$vi, nrow = k)
  for (i in seq_len(k)) for (j in seq_len(k)) {
    if (i != j && d$study[i] == d$study[j] && d$arm_c[i] == d$arm_c[j]) {
      V[i, j] <- if (measure == "SMD") 1 / d$total_c[i] + es$yi[i] * es$yi[j] / (2 * d$trial_total[i])
                 else sqrt(a[i] * a[j])
    }
  }
  V
}

ES_CALL <- list(
  OR = "escalc(measure=\"OR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
  RR = "escalc(measure=\"RR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
  RD = "escalc(measure=\"RD\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
  MD = "escalc(measure=\"MD\", m1i=mean_t, sd1i=sd_t, n1i=total_t, m2i=mean_c, sd2i=sd_c, n2i=total_c, data=d)",
  SMD = "escalc(measure=\"SMD\", m1i=mean_t, sd1i=sd_t, n1i=total_t, m2i=mean_c, sd2i=sd_c, n2i=total_c, data=d)",
  ROM = "escalc(measure=\"ROM\", m1i=mean_t, sd1i=sd_t, n1i=total_t, m2i=mean_c, sd2i=sd_c, n2i=total_c, data=d)")

# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------

read <- function(name) sprintf("d <- read.csv(\"tests/reference/data/mv_%s.csv\", stringsAsFactors=FALSE)", name)

ex_fit <- function(x) {
  fs <- fitstats(x, REML = FALSE)
  fr <- fitstats(x, REML = TRUE)
  out <- list(k = x$k, p = x$p, parms = x$parms, coef_names = I(rownames(x$beta)), beta = arr(x$beta),
              se = arr(x$se), zval = arr(x$zval), pval = arr(x$pval), ci.lb = arr(x$ci.lb), ci.ub = arr(x$ci.ub),
              ddf = arr(x$ddf), QM = num(x$QM), QMdf = arr(x$QMdf), QMp = num(x$QMp), QE = num(x$QE),
              QEp = num(x$QEp), sigma2 = arr(if (x$withS) x$sigma2 else NULL),
              s.names = I(if (x$withS) as.character(x$s.names) else character(0)),
              s.nlevels = arr(if (x$withS) x$s.nlevels else NULL),
              tau2 = arr(if (x$withG) x$tau2 else NULL), rho = arr(if (x$withG) x$rho else NULL),
              fit.stats.ML = arr(fs[, 1]), fit.stats.REML = arr(fr[, 1]),
              fit.stats.names = I(rownames(fs)), weights = arr(weights(x)))
  if (x$int.only) {
    pr <- predict(x)
    out$pred <- list(pred = num(pr$pred), se = num(pr$se), ci.lb = num(pr$ci.lb), ci.ub = num(pr$ci.ub),
                     pi.lb = num(pr$pi.lb), pi.ub = num(pr$pi.ub))
  }
  out
}

cases <- list()
run <- function(id, dataset, setup, call) {
  env <- new.env()
  warns <- character(0)
  e <- list(id = id, dataset = dataset, setup = setup)
  fitted <- NULL
  for (ctrl in if (grepl("CTRL", call, fixed = TRUE)) CTRLS else "none") {
    cl <- if (ctrl %in% c("default", "none")) sub(", control=CTRL", "", call, fixed = TRUE)
          else sub("CTRL", ctrl, call, fixed = TRUE)
    warns <- character(0)
    value <- tryCatch(
      withCallingHandlers({
        eval(parse(text = setup), envir = env)
        eval(parse(text = cl), envir = env)
      }, warning = function(w) {
        warns <<- c(warns, conditionMessage(w))
        invokeRestart("muffleWarning")
      }, message = function(m) invokeRestart("muffleMessage")),
      error = function(err) structure(conditionMessage(err), class = "captured_error"))
    if (!inherits(value, "captured_error")) {
      fitted <- value
      e$call <- cl
      e$control <- ctrl
      break
    }
    e$errors_tighter <- c(e$errors_tighter, sprintf("%s: %s", ctrl, as.character(value)))
  }
  if (is.null(fitted)) {
    e$call <- call
    e$error <- as.character(value)
  } else {
    e$result <- ex_fit(fitted)
    if (!is.null(env$V)) {
      e$escalc <- list(yi = arr(env$es$yi), vi = arr(env$es$vi), V = arr(t(env$V)))
    }
  }
  if (!is.null(e$errors_tighter)) e$errors_tighter <- I(e$errors_tighter)
  if (length(warns)) e$warning <- I(unique(warns))
  cases[[length(cases) + 1]] <<- e
  cat(sprintf("%-60s %s\n", id, if (is.null(fitted)) "ERROR" else e$control))
  invisible(fitted)
}

METHODS <- c("REML", "ML")
TESTS <- c("z", "t")

# konstantopoulos2011 -------------------------------------------------------------------------
set_k <- paste0(read("konstantopoulos2011"), "; d$year_c <- d$year - mean(d$year)")
models_k <- list(
  district = "random=~ 1 | district",
  district_school = "random=~ 1 | district/school",
  cs = "random=~ school | district, struct=\"CS\"",
  year = "random=~ 1 | district/school, mods=~ year_c")
for (nm in names(models_k)) for (m in METHODS) for (t in TESTS) {
  run(sprintf("konstantopoulos2011/%s/%s/%s", nm, m, t), "konstantopoulos2011", set_k,
      sprintf("rma.mv(yi, vi, %s, data=d, method=\"%s\", test=\"%s\", control=CTRL)", models_k[[nm]], m, t))
}
for (t in TESTS) {
  run(sprintf("konstantopoulos2011/none/EE/%s", t), "konstantopoulos2011", set_k,
      sprintf("rma.mv(yi, vi, data=d, method=\"EE\", test=\"%s\")", t))
}

# berkey1998 ----------------------------------------------------------------------------------
set_b <- paste0(read("berkey1998"), "; V <- bldiag(lapply(split(d[, c(\"v1i\", \"v2i\")], d$trial), as.matrix))")
models_b <- list(
  cs = "random=~ outcome | trial, struct=\"CS\"",
  hcs = "random=~ outcome | trial, struct=\"HCS\"",
  trial = "random=~ 1 | trial")
for (nm in names(models_b)) for (m in METHODS) for (t in TESTS) {
  run(sprintf("berkey1998/%s/%s/%s", nm, m, t), "berkey1998", set_b,
      sprintf("rma.mv(yi, V, mods=~ outcome - 1, %s, data=d, method=\"%s\", test=\"%s\", control=CTRL)",
              models_b[[nm]], m, t))
}
run("berkey1998/none/EE/z", "berkey1998", set_b, "rma.mv(yi, V, mods=~ outcome - 1, data=d, method=\"EE\")")

# multi-arm -----------------------------------------------------------------------------------
multi <- list(dogliotti2014 = c("OR", "RR", "RD"), senn2013 = c("MD", "SMD"), senn2013_rom = c("ROM"))
for (ds in names(multi)) for (ms in multi[[ds]]) {
  setup <- paste0(read(ds), "; es <- ", ES_CALL[[ms]], "; V <- shared_V(d, es, \"", ms, "\"); d$id <- seq_len(nrow(d))")
  for (m in METHODS) for (t in TESTS) {
    run(sprintf("%s/%s/id/%s/%s", ds, ms, m, t), ds, setup,
        sprintf("rma.mv(es$yi, V, random=~ 1 | id, data=d, method=\"%s\", test=\"%s\", control=CTRL)", m, t))
  }
  run(sprintf("%s/%s/study_id/REML/z", ds, ms), ds, setup,
      "rma.mv(es$yi, V, random=~ 1 | study/id, data=d, method=\"REML\", test=\"z\", control=CTRL)")
  run(sprintf("%s/%s/none/EE/z", ds, ms), ds, setup, "rma.mv(es$yi, V, data=d, method=\"EE\")")
}
setup <- paste0(read("arms_toy"), "; es <- ", ES_CALL[["RR"]], "; V <- shared_V(d, es, \"RR\"); d$id <- seq_len(nrow(d))")
for (t in TESTS) {
  run(sprintf("arms_toy/RR/id/REML/%s", t), "arms_toy", setup,
      sprintf("rma.mv(es$yi, V, random=~ 1 | id, data=d, method=\"REML\", test=\"%s\", control=CTRL)", t))
}
setup <- paste0(read("dogliotti2014"), "; es <- ", ES_CALL[["OR"]], "; V <- shared_V(d, es, \"OR\"); d$id <- seq_len(nrow(d))")
run("dogliotti2014/OR/id_mods/REML/t", "dogliotti2014", setup,
    "rma.mv(es$yi, V, mods=~ arm_t, random=~ 1 | id, data=d, method=\"REML\", test=\"t\", control=CTRL)")

write_json17(list(
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  controls = I(CTRLS),
  shared_V = paste(deparse(shared_V), collapse = "\n"),
  cases = cases), file.path(out_dir, "metafor_multilevel.json"))
cat(length(cases), "cases\n")
