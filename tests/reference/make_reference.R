# Reference values from R's metafor for metarepro's pooling engine.
#
# Run from the repository root:
#     Rscript tests/reference/make_reference.R
#
# Writes
#     tests/reference/data/<dataset>.csv      the input data in metarepro's column names
#     tests/reference/metafor_reference.json  one record per (dataset, measure, method, test, options)
#
# Needs R >= 4.2 with metafor (3.8-1 was used), metadat and jsonlite
# (Debian: apt-get install r-base-core r-cran-metafor r-cran-jsonlite).
# See tests/reference/README.md for what the JSON holds and how it is compared.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, recursive = TRUE, showWarnings = FALSE)

# Tightened iteration controls (metafor 3.8-1 names, see rma.uni.r):
#   threshold - Fisher scoring convergence (REML, ML, EB; default 1e-5)
#   tol       - uniroot tolerance (PM; default .Machine$double.eps^0.25) and ll0 check
#   maxiter   - iteration limit for Fisher scoring and uniroot (default 100)
# HS, HE, DL and SJ are closed forms in metafor 3.8 (SJ is not iterated), FE has no tau2.
RMA_CONTROL <- "list(threshold=1e-12, tol=1e-12, maxiter=1000)"
# confint.rma.uni (Q-profile) accepts tol, maxiter, tau2.min, tau2.max (uniroot).
CI_CONTROL <- "list(tol=1e-12, maxiter=1000)"

RE_METHODS <- c("DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")
IV_METHODS <- c("FE", RE_METHODS)
TESTS <- c("z", "knha", "adhoc")

# ---------------------------------------------------------------------------
# datasets, in metarepro's columns
# ---------------------------------------------------------------------------

binary_frame <- function(study, ai, n1i, ci, n2i) {
  data.frame(study = as.character(study), events_t = ai, total_t = n1i,
             events_c = ci, total_c = n2i, stringsAsFactors = FALSE)
}
continuous_frame <- function(study, m1i, sd1i, n1i, m2i, sd2i, n2i) {
  data.frame(study = as.character(study), mean_t = m1i, sd_t = sd1i, total_t = n1i,
             mean_c = m2i, sd_c = sd2i, total_c = n2i, stringsAsFactors = FALSE)
}
cor_frame <- function(study, ri, ni) {
  data.frame(study = as.character(study), r = ri, total = ni, stringsAsFactors = FALSE)
}
gen_frame <- function(study, yi, vi) {
  data.frame(study = as.character(study), yi = as.numeric(yi), vi = as.numeric(vi),
             stringsAsFactors = FALSE)
}

datasets <- list()
family <- list()
source_of <- list()
add_ds <- function(name, frame, fam, src) {
  stopifnot(!anyDuplicated(frame$study))
  datasets[[name]] <<- frame
  family[[name]] <<- fam
  source_of[[name]] <<- src
}

bcg <- with(dat.bcg, binary_frame(paste0(author, " ", year), tpos, tpos + tneg, cpos, cpos + cneg))
add_ds("bcg", bcg, "binary", "metadat::dat.bcg (tpos, tpos+tneg, cpos, cpos+cneg)")
add_ds("bcg_k1", bcg[1, ], "binary", "first study of dat.bcg")
add_ds("bcg_k2", bcg[1:2, ], "binary", "first two studies of dat.bcg")

add_ds("hart1999", with(dat.hart1999, binary_frame(paste0(study, " ", year), x1i, n1i, x2i, n2i)),
       "binary", "metadat::dat.hart1999 (x1i, n1i, x2i, n2i)")

col <- dat.collins1985a[!is.na(dat.collins1985a$b.xti), ]
add_ds("collins1985a", with(col, binary_frame(paste0(id, " ", trial), b.xti, nti, b.xci, nci)),
       "binary", "metadat::dat.collins1985a, any bleeding (b.xti/nti vs b.xci/nci), 2 trials without counts removed; has a single-zero and a double-zero trial")

add_ds("egger2001", with(dat.egger2001, binary_frame(paste0(study, " ", year), ai, n1i, ci, n2i)),
       "binary", "metadat::dat.egger2001 (one single-zero trial)")

add_ds("nielweise2007", with(dat.nielweise2007, binary_frame(paste0(author, " ", year), ai, n1i, ci, n2i)),
       "binary", "metadat::dat.nielweise2007 (five single-zero trials, one double-zero trial)")

yus <- dat.yusuf1985[dat.yusuf1985$table == "9" & !is.na(dat.yusuf1985$ai), ]
add_ds("yusuf1985_t9", with(yus, binary_frame(paste0(id, " ", trial), ai, n1i, ci, n2i)),
       "binary", "metadat::dat.yusuf1985, table 9, rows with counts (6 double-zero, 5 single-zero trials)")

# Two trials from issue 11 (item 3): a single-zero table (1/38 vs 0/33) and 5/40 vs 9/41; metafor's
# rma.peto(add=0) keeps the first (Peto's (O - E)/V needs no correction).
add_ds("peto_zero", binary_frame(c("Trial A", "Trial B"), c(1, 5), c(38, 40), c(0, 9), c(33, 41)),
       "binary", "two hand-made tables (issue 11): 1/38 vs 0/33 and 5/40 vs 9/41")

add_ds("normand1999", with(dat.normand1999, continuous_frame(source, m1i, sd1i, n1i, m2i, sd2i, n2i)),
       "continuous", "metadat::dat.normand1999")
add_ds("normand1999_k2", datasets$normand1999[1:2, ], "continuous", "first two studies of dat.normand1999")
add_ds("curtis1998", with(dat.curtis1998, continuous_frame(paste0("id", id), m1i, sd1i, n1i, m2i, sd2i, n2i)),
       "continuous", "metadat::dat.curtis1998 (m1i/sd1i/n1i elevated CO2, m2i/sd2i/n2i ambient)")

add_ds("molloy2014", with(dat.molloy2014, cor_frame(paste0(authors, " ", year), ri, ni)),
       "correlation", "metadat::dat.molloy2014")
add_ds("mcdaniel1994", with(dat.mcdaniel1994, cor_frame(paste0("s", study), ri, ni)),
       "correlation", "metadat::dat.mcdaniel1994")

add_ds("hackshaw1998", with(dat.hackshaw1998, gen_frame(paste0(study, " ", author, " ", year), yi, vi)),
       "generic", "metadat::dat.hackshaw1998 (yi = log OR, vi)")
add_ds("raudenbush1985", with(dat.raudenbush1985, gen_frame(paste0(study, " ", author, " ", year), yi, vi)),
       "generic", "metadat::dat.raudenbush1985 (yi = SMD, vi)")
add_ds("raudenbush1985_k1", datasets$raudenbush1985[1, ], "generic", "first study of dat.raudenbush1985")
add_ds("raudenbush1985_k2", datasets$raudenbush1985[1:2, ], "generic", "first two studies of dat.raudenbush1985")
add_ds("bangertdrowns2004", with(dat.bangertdrowns2004, gen_frame(paste0(id, " ", author, " ", year), yi, vi)),
       "generic", "metadat::dat.bangertdrowns2004 (yi = SMD, vi)")

fmt17 <- function(x) {
  if (is.character(x)) return(x)
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- ""
  out
}
for (name in names(datasets)) {
  d <- datasets[[name]]
  d[] <- lapply(d, fmt17)
  write.csv(d, file.path(data_dir, paste0(name, ".csv")), row.names = FALSE, quote = TRUE)
}
# read the data back from the CSVs, so that R and Python see exactly the same numbers
for (name in names(datasets)) {
  datasets[[name]] <- read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = FALSE)
}

# ---------------------------------------------------------------------------
# running one case
# ---------------------------------------------------------------------------

MEASURES <- list(binary = c("RR", "OR", "RD"), continuous = c("MD", "SMD", "ROM"),
                 correlation = "ZCOR", generic = "GEN")

escalc_call <- function(fam, measure, opts) {
  extra <- ""
  if (fam == "binary")
    extra <- sprintf(", add=%s, to=\"%s\", drop00=%s", format(opts$add, digits = 17), opts$to,
                     if (opts$drop00) "TRUE" else "FALSE")
  switch(fam,
    binary = sprintf("escalc(measure=\"%s\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d%s)",
                     measure, extra),
    continuous = sprintf("escalc(measure=\"%s\", m1i=mean_t, sd1i=sd_t, n1i=total_t, m2i=mean_c, sd2i=sd_c, n2i=total_c, data=d)",
                         measure),
    correlation = "escalc(measure=\"ZCOR\", ri=r, ni=total, data=d)",
    generic = "d")
}

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}

# evaluate an expression, collecting warnings instead of printing them
capture <- function(expr_text, env) {
  warns <- character(0)
  value <- tryCatch(
    withCallingHandlers(eval(parse(text = expr_text), envir = env),
                        warning = function(w) {
                          warns <<- c(warns, conditionMessage(w))
                          invokeRestart("muffleWarning")
                        }),
    error = function(e) structure(conditionMessage(e), class = "captured_error"))
  list(value = value, warnings = warns)
}

weights_full <- function(fit) {
  old <- options(na.action = "na.exclude")
  on.exit(options(old))
  num(weights(fit))
}

empty_fit <- function() {
  f <- c("k", "estimate", "se", "ci_lower", "ci_upper", "statistic", "pvalue", "df",
         "pi_lower", "pi_upper", "pi_hts_lower", "pi_hts_upper",
         "tau2", "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper",
         "h2", "h2_ci_lower", "h2_ci_upper", "q", "q_df", "q_pvalue")
  setNames(rep(list(NA_real_), length(f)), f)
}

source(file.path(out_dir, "json17.R"))  # write_json17(): JSON with 17 significant digits

cases <- list()

run_case <- function(dsname, measure, method, test, opts, tag = NULL, rma_control = RMA_CONTROL) {
  fam <- family[[dsname]]
  env <- new.env()
  env$d <- datasets[[dsname]]
  es_call <- escalc_call(fam, measure, opts)
  if (method %in% c("MH", "PETO")) {
    fn <- if (method == "MH") sprintf("rma.mh(measure=\"%s\", ", measure) else "rma.peto("
    fit_call <- sprintf("%sai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d, slab=study, add=%s, to=\"%s\", drop00=%s)",
                        fn, format(opts$add, digits = 17), opts$to, if (opts$drop00) "TRUE" else "FALSE")
    es_call <- sprintf("escalc(measure=\"%s\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d, add=%s, to=\"%s\", drop00=%s)",
                       if (method == "MH") measure else "PETO", format(opts$add, digits = 17), opts$to,
                       if (opts$drop00) "TRUE" else "FALSE")
    call <- sprintf("fit <- %s", fit_call)
    es_note <- "per-study yi/vi as rma.mh/rma.peto compute them (escalc with the same add/to/drop00; PETO = Peto log odds ratio)"
  } else {
    fit_call <- sprintf("rma(yi, vi, data=es, slab=study, method=\"%s\", test=\"%s\", control=%s)",
                        method, test, rma_control)
    call <- sprintf("es <- %s; fit <- %s", es_call, fit_call)
    es_note <- NULL
  }
  id <- paste(c(dsname, measure, method, test, tag), collapse = "/")
  case <- list(id = id, dataset = dsname, family = fam, measure = measure, method = method, test = test,
               call = call, options = opts)

  es <- capture(es_call, env)
  if (inherits(es$value, "captured_error")) {
    yi <- vi <- rep(NA_real_, nrow(env$d))
  } else {
    env$es <- es$value
    yi <- num(es$value$yi)
    vi <- num(es$value$vi)
  }
  case$escalc <- list(yi = I(yi), vi = I(vi))
  if (!is.null(es_note)) case$escalc$note <- es_note

  res <- capture(fit_call, env)
  warns <- res$warnings
  fit <- empty_fit()
  if (inherits(res$value, "captured_error")) {
    case$error <- as.character(res$value)
    fit$converged <- FALSE
    fit$weights <- I(rep(NA_real_, nrow(env$d)))
  } else {
    x <- res$value
    env$fit <- x
    fit$k <- x$k
    fit$estimate <- num(x$beta)
    fit$se <- num(x$se)
    fit$ci_lower <- num(x$ci.lb)
    fit$ci_upper <- num(x$ci.ub)
    fit$statistic <- num(x$zval)
    fit$pvalue <- num(x$pval)
    fit$df <- if (test %in% c("knha", "adhoc")) num(x$ddf) else NA_real_
    pr <- capture("predict(fit)", env)
    warns <- c(warns, pr$warnings)
    if (!inherits(pr$value, "captured_error")) {
      fit$pi_lower <- num(pr$value$pi.lb)
      fit$pi_upper <- num(pr$value$pi.ub)
    }
    if (x$k > 2 && method %in% RE_METHODS) {
      half <- qt(0.975, x$k - 2) * sqrt(x$tau2 + x$se^2)
      fit$pi_hts_lower <- num(x$beta) - half
      fit$pi_hts_upper <- num(x$beta) + half
    }
    fit$tau2 <- num(x$tau2)
    fit$i2 <- num(x$I2)
    fit$h2 <- num(x$H2)
    fit$q <- num(x$QE)
    fit$q_df <- if (method %in% c("MH", "PETO")) x$k.yi - 1 else x$k - x$p
    fit$q_pvalue <- num(x$QEp)
    if (method %in% c("MH", "PETO")) fit$k_yi <- x$k.yi
    if (method %in% RE_METHODS) {
      cc <- capture(sprintf("confint(fit, control=%s)", CI_CONTROL), env)
      if (inherits(cc$value, "captured_error")) {
        case$confint_error <- as.character(cc$value)
      } else {
        rr <- cc$value$random
        fit$tau2_ci_lower <- num(rr["tau^2", "ci.lb"])
        fit$tau2_ci_upper <- num(rr["tau^2", "ci.ub"])
        fit$i2_ci_lower <- num(rr["I^2(%)", "ci.lb"])
        fit$i2_ci_upper <- num(rr["I^2(%)", "ci.ub"])
        fit$h2_ci_lower <- num(rr["H^2", "ci.lb"])
        fit$h2_ci_upper <- num(rr["H^2", "ci.ub"])
        fit$tau2_ci_flags <- list(ci_null = isTRUE(cc$value$ci.null),
                                  lb_sign = if (is.null(cc$value$lb.sign)) "" else cc$value$lb.sign,
                                  ub_sign = if (is.null(cc$value$ub.sign)) "" else cc$value$ub.sign)
      }
      if (length(cc$warnings)) case$confint_warning <- I(unique(cc$warnings))
      # a bound at tau2.max (sign ">") is metafor's search limit max(100, 10*tau2), not a root;
      # record the root found with a much wider bracket too (information only)
      if (!inherits(cc$value, "captured_error") && (identical(cc$value$ub.sign, ">") || identical(cc$value$lb.sign, ">"))) {
        cw <- capture("confint(fit, control=list(tol=1e-12, maxiter=1000, tau2.max=1e8))", env)
        if (!inherits(cw$value, "captured_error")) {
          rw <- cw$value$random
          case$tau2_ci_uncapped <- list(
            call = "confint(fit, control=list(tol=1e-12, maxiter=1000, tau2.max=1e8))",
            tau2_ci_lower = num(rw["tau^2", "ci.lb"]), tau2_ci_upper = num(rw["tau^2", "ci.ub"]),
            i2_ci_lower = num(rw["I^2(%)", "ci.lb"]), i2_ci_upper = num(rw["I^2(%)", "ci.ub"]),
            h2_ci_lower = num(rw["H^2", "ci.lb"]), h2_ci_upper = num(rw["H^2", "ci.ub"]),
            lb_sign = if (is.null(cw$value$lb.sign)) "" else cw$value$lb.sign,
            ub_sign = if (is.null(cw$value$ub.sign)) "" else cw$value$ub.sign)
        }
      }
    }
    fit$weights <- I(weights_full(x))
    fit$converged <- TRUE
  }
  if (length(warns)) case$warning <- I(unique(warns))
  case$fit <- fit
  cases[[length(cases) + 1]] <<- case
}

DEFAULT_OPTS <- list(add = 0.5, to = "only0", drop00 = FALSE)
MHPETO_OPTS <- list(add = 0.5, to = "only0", drop00 = TRUE)  # rma.mh / rma.peto defaults

for (dsname in names(datasets)) {
  fam <- family[[dsname]]
  for (measure in MEASURES[[fam]]) {
    for (method in IV_METHODS) for (test in TESTS)
      run_case(dsname, measure, method, test, DEFAULT_OPTS)
    if (fam == "binary")
      run_case(dsname, measure, "MH", "z", MHPETO_OPTS)
  }
  if (fam == "binary")
    run_case(dsname, "OR", "PETO", "z", MHPETO_OPTS)
}

# zero-cell conventions other than the defaults
ZERO_SETS <- c("collins1985a", "nielweise2007", "yusuf1985_t9")
OPTION_SETS <- list(
  add0.25 = list(add = 0.25, to = "only0", drop00 = FALSE),
  toall = list(add = 0.5, to = "all", drop00 = FALSE),
  drop00 = list(add = 0.5, to = "only0", drop00 = TRUE))
for (dsname in ZERO_SETS) for (tag in names(OPTION_SETS)) for (measure in MEASURES$binary) {
  opts <- OPTION_SETS[[tag]]
  for (method in c("FE", "DL", "REML", "PM")) for (test in TESTS)
    run_case(dsname, measure, method, test, opts, tag)
}
# MH and Peto with non-default escalc conventions (affect yi/vi, Q and I2 only)
MH_OPTION_SETS <- list(
  add0.25 = list(add = 0.25, to = "only0", drop00 = TRUE),
  toall = list(add = 0.5, to = "all", drop00 = TRUE),
  keep00 = list(add = 0.5, to = "only0", drop00 = FALSE))
for (dsname in ZERO_SETS) for (tag in names(MH_OPTION_SETS)) {
  opts <- MH_OPTION_SETS[[tag]]
  for (measure in MEASURES$binary) run_case(dsname, measure, "MH", "z", opts, tag)
  run_case(dsname, "OR", "PETO", "z", opts, tag)
}

# Peto and MH without continuity correction (add = 0): the study-level effects of a single-zero table
for (dsname in c("peto_zero", "nielweise2007")) {
  opts <- list(add = 0, to = "only0", drop00 = TRUE)
  run_case(dsname, "OR", "PETO", "z", opts, "add0")
  run_case(dsname, "OR", "MH", "z", opts, "add0")
}

# metafor's PM search stops at tau2.max = max(100, 10*mad(yi)^2); for MD on curtis1998 the root
# lies above it (error recorded above). The same fit with a larger bracket:
for (test in TESTS)
  run_case("curtis1998", "MD", "PM", test, DEFAULT_OPTS, "tau2max",
           rma_control = "list(threshold=1e-12, tol=1e-12, maxiter=1000, tau2.max=1e8)")

ids <- vapply(cases, `[[`, "", "id")
stopifnot(!anyDuplicated(ids))

out <- list(
  generated_by = "tests/reference/make_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  controls = list(
    rma = RMA_CONTROL,
    confint = CI_CONTROL,
    note = paste("rma(): threshold = Fisher-scoring convergence for REML/ML/EB; tol = uniroot tolerance for PM;",
                 "maxiter for both. DL/HS/HE/SJ are closed forms in metafor 3.8. confint(): Q-profile",
                 "(type='QP') with uniroot tol/maxiter, default tau2.min=min(0,tau2), tau2.max=max(100,10*tau2).")),
  conventions = list(
    scale = "model scale: log for RR/OR/ROM, Fisher z for ZCOR, as is for RD/MD/SMD/GEN",
    weights = "weights(fit) in percent, per study in file order; null for studies not in the model",
    escalc = "per-study yi/vi in file order; null where metafor gives NA (e.g. drop00=TRUE double-zero studies)",
    pi = "pi_lower/pi_upper from predict(fit) (z, or t(k-1) with knha/adhoc; equals the CI for FE/MH/PETO)",
    pi_hts = "pi_hts_lower/upper computed by hand in R (metafor has no such option): estimate -/+ qt(.975, k-2) * sqrt(tau2 + se^2), for random-effects methods with k > 2 only (null otherwise, like predict()'s PI for common-effect models); se is the model's se (knha-scaled under test='knha')",
    confint = "tau2/i2/h2 CI from confint(fit) Q-profile, random-effects methods only (null for FE/MH/PETO); where a bound carries the sign '>' (metafor's search limit tau2.max = max(100, 10*tau2), not a root), tau2_ci_uncapped holds confint(fit) with tau2.max = 1e8",
    q_df = "k - 1 for rma(); k.yi - 1 for rma.mh/rma.peto (k.yi = studies with non-missing yi)",
    null = "null = NA/NaN/Inf in metafor or not applicable",
    error = "case$error holds metafor's error message when the fit failed (fit fields then null, converged false); case$warning holds warnings"),
  datasets = lapply(names(datasets), function(n) list(name = n, family = family[[n]], k = nrow(datasets[[n]]),
                                                      source = source_of[[n]])),
  cases = cases)

write_json17(out, file.path(out_dir, "metafor_reference.json"))

# summary
tab <- table(vapply(cases, function(x) paste(x$measure, x$method, x$test, sep = "/"), ""))
cat(sprintf("%d cases written to %s\n", length(cases), file.path(out_dir, "metafor_reference.json")))
print(tab)
nerr <- sum(vapply(cases, function(x) !is.null(x$error), TRUE))
cat(sprintf("%d cases with a metafor error\n", nerr))
