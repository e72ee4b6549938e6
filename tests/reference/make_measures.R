# Reference values from R's metafor for the effect measures added in issue 14:
# one proportion (PR PLN PLO PAS PFT), incidence rates (IR IRLN IRS IRFT, IRR IRD),
# one mean (MN MNLN), change scores (MC SMCC SMCR ROMC) and correlations
# (COR UCOR PCOR ZPCOR SPCOR), each pooled with every method and test, with the
# back-transformed estimate and intervals (predict(fit, transf=...)).
#
# Run from the repository root:
#     Rscript tests/reference/make_measures.R
#
# Writes
#     tests/reference/data/<dataset>.csv        the inputs, in metarepro's column names
#     tests/reference/metafor_measures.json     one record per (dataset, measure, method, test, options)
#
# Needs R >= 4.2 with metafor (3.8-1), metadat, jsonlite and gsl (UCOR calls gsl::hyperg_2F1)
# (Debian: apt-get install r-base-core r-cran-metafor r-cran-jsonlite r-cran-gsl).
# See tests/reference/README.md.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
  library(gsl)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
source(file.path(out_dir, "json17.R"))  # write_json17(): JSON with 17 significant digits

RMA_CONTROL <- "list(threshold=1e-12, tol=1e-12, maxiter=1000)"
# raw rates (IR, IRD) per person-day have tau2 ~ 1e-7: an absolute threshold of 1e-12 leaves
# ~1e-5 relative error in tau2 (and I2), so these fits stop at 1e-16
RMA_CONTROL_RATES <- "list(threshold=1e-16, tol=1e-16, maxiter=10000)"
CI_CONTROL <- "list(tol=1e-12, maxiter=1000)"
RE_METHODS <- c("DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")
IV_METHODS <- c("FE", RE_METHODS)
TESTS <- c("z", "knha", "adhoc")

# ---------------------------------------------------------------------------
# datasets, in metarepro's columns
# ---------------------------------------------------------------------------

datasets <- list(); family <- list(); source_of <- list()
add_ds <- function(name, frame, fam, src) {
  frame$study <- make.unique(as.character(frame$study), sep = " #")
  datasets[[name]] <<- frame
  family[[name]] <<- fam
  source_of[[name]] <<- src
}

# one proportion: events, total
add_ds("pritz1997", with(dat.pritz1997, data.frame(study = authors, events = xi, total = ni)), "proportion",
       "metadat::dat.pritz1997 (xi, ni); 2 studies with events = total")
add_ds("debruin2009", with(dat.debruin2009, data.frame(study = paste(author, year), events = xi, total = ni)),
       "proportion", "metadat::dat.debruin2009 (xi, ni)")
pag <- dat.pagliaro1992[dat.pagliaro1992$trt == "control", ]
add_ds("pagliaro1992_control", with(pag, data.frame(study = paste0("study ", study), events = xi, total = ni)),
       "proportion", "metadat::dat.pagliaro1992, control arms (xi, ni); 1 arm with no events")

# one rate: events, person-time
add_ds("nielweise2008_t", with(dat.nielweise2008, data.frame(study = paste(authors, year), events = x1i, time = t1i)),
       "rate", "metadat::dat.nielweise2008, first group (x1i, t1i: infections, catheter-days)")
add_ds("hart1999_c", with(dat.hart1999, data.frame(study = paste(study, year), events = x2i, time = t2i)),
       "rate", "metadat::dat.hart1999, control group (x2i, t2i: strokes, patient-years)")
z1 <- datasets$nielweise2008_t
z1$events[c(5, 9)] <- 0
add_ds("nielweise2008_t_zero", z1, "rate",
       "dat.nielweise2008 first group with the events of studies 5 and 9 set to 0 (constructed, to exercise the zero-event rules)")

# two rates: events_t, time_t, events_c, time_c
add_ds("hart1999_rates", with(dat.hart1999, data.frame(study = paste(study, year), events_t = x1i, time_t = t1i,
                                                 events_c = x2i, time_c = t2i)),
       "rate2", "metadat::dat.hart1999 (x1i, t1i, x2i, t2i)")
add_ds("nielweise2008_rates", with(dat.nielweise2008, data.frame(study = paste(authors, year), events_t = x1i, time_t = t1i,
                                                           events_c = x2i, time_c = t2i)),
       "rate2", "metadat::dat.nielweise2008 (x1i, t1i, x2i, t2i)")
z2 <- datasets$nielweise2008_rates
z2$events_t[5] <- 0; z2$events_t[9] <- 0; z2$events_c[9] <- 0
add_ds("nielweise2008_rates_zero", z2, "rate2",
       "dat.nielweise2008 with events_t of studies 5 and 9 and events_c of study 9 set to 0 (constructed: one single-zero, one double-zero study)")

# one mean: mean, sd, total
add_ds("normand1999_t", with(dat.normand1999, data.frame(study = source, mean = m1i, sd = sd1i, total = n1i)),
       "mean", "metadat::dat.normand1999, first group (m1i, sd1i, n1i: length of stay, days)")
add_ds("curtis1998_t", with(dat.curtis1998, data.frame(study = paste0("id", id), mean = m1i, sd = sd1i, total = n1i)),
       "mean", "metadat::dat.curtis1998, elevated-CO2 group (m1i, sd1i, n1i)")

# change: mean_pre, mean_post, sd_pre, sd_post, r_prepost, total
w <- dat.lehmann2018[dat.lehmann2018$Design == "Within Subjects", ]
add_ds("lehmann2018_within", with(w, data.frame(study = Short_Title, mean_pre = Control_M, mean_post = Red_M,
                                                sd_pre = Control_SD, sd_post = Red_SD, r_prepost = RM_r, total = Red_N)),
       "change", paste("metadat::dat.lehmann2018, within-subject studies (matched design): 'post' = red condition",
                       "(Red_M, Red_SD, Red_N), 'pre' = control condition (Control_M, Control_SD), r_prepost = RM_r"))

# correlations: r, total (the CSVs written by make_reference.R), and partial correlations
for (nm in c("molloy2014", "mcdaniel1994")) {
  datasets[[nm]] <- read.csv(file.path(data_dir, paste0(nm, ".csv")), stringsAsFactors = FALSE)
  family[[nm]] <- "correlation"
  source_of[[nm]] <- paste0("metadat::dat.", nm, " (ri, ni); the CSV of make_reference.R")
}
al <- with(dat.aloe2013, data.frame(study = study, t = tval, total = n, predictors = preds, r2 = R2))
add_ds("aloe2013", al, "partial_t", "metadat::dat.aloe2013 (tval, n, preds, R2)")
df <- al$total - al$predictors - 1
add_ds("aloe2013_pr", data.frame(study = al$study, r = al$t / sqrt(al$t^2 + df), total = al$total,
                                 predictors = al$predictors),
       "partial_r", "dat.aloe2013 with the partial correlation r = t/sqrt(t^2 + n - m - 1) computed in R")
add_ds("aloe2013_sr", data.frame(study = al$study, r = al$t * sqrt(1 - al$r2) / sqrt(df), total = al$total,
                                 predictors = al$predictors, r2 = al$r2),
       "semipartial_r", "dat.aloe2013 with the semi-partial correlation r = t sqrt(1 - R2)/sqrt(n - m - 1) computed in R")

fmt17 <- function(x) {
  if (is.character(x)) return(x)
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- ""
  out
}
for (name in names(datasets)) {
  if (family[[name]] == "correlation") next  # written by make_reference.R
  d <- datasets[[name]]
  d[] <- lapply(d, fmt17)
  write.csv(d, file.path(data_dir, paste0(name, ".csv")), row.names = FALSE, quote = TRUE)
}
for (name in names(datasets)) {
  datasets[[name]] <- read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = FALSE)
}

# ---------------------------------------------------------------------------
# measures of each family, their escalc call and back-transformation
# ---------------------------------------------------------------------------

MEASURES <- list(proportion = c("PR", "PLN", "PLO", "PAS", "PFT"), rate = c("IR", "IRLN", "IRS", "IRFT"),
                 rate2 = c("IRR", "IRD"), mean = c("MN", "MNLN"), change = c("MC", "SMCC", "SMCR", "ROMC"),
                 correlation = c("COR", "UCOR"), partial_t = c("PCOR", "ZPCOR", "SPCOR"),
                 partial_r = c("PCOR", "ZPCOR"), semipartial_r = "SPCOR")

# the escalc arguments of a family; 'opts' (add/to/drop00) are written out only for count data
escalc_call <- function(fam, measure, opts) {
  cc <- function() {
    s <- if (is.null(opts$add)) "" else sprintf(", add=%s", format(opts$add, digits = 17))
    paste0(s, sprintf(", to=\"%s\"", opts$to), if (fam == "rate2") sprintf(", drop00=%s", if (opts$drop00) "TRUE" else "FALSE") else "")
  }
  args <- switch(fam,
    proportion = paste0("xi=events, ni=total", cc()),
    rate = paste0("xi=events, ti=time", cc()),
    rate2 = paste0("x1i=events_t, t1i=time_t, x2i=events_c, t2i=time_c", cc()),
    mean = "mi=mean, sdi=sd, ni=total",
    change = if (measure == "SMCR") "m1i=mean_post, m2i=mean_pre, sd1i=sd_pre, ri=r_prepost, ni=total"
             else "m1i=mean_post, m2i=mean_pre, sd1i=sd_post, sd2i=sd_pre, ri=r_prepost, ni=total",
    correlation = "ri=r, ni=total",
    partial_t = if (measure == "SPCOR") "ti=t, ni=total, mi=predictors, r2i=r2" else "ti=t, ni=total, mi=predictors",
    # metafor 3.8 takes t statistics only: a printed r is converted to the t it implies
    partial_r = "ti=r*sqrt(total-predictors-1)/sqrt(1-r^2), ni=total, mi=predictors",
    semipartial_r = "ti=r*sqrt(total-predictors-1)/sqrt(1-r2), ni=total, mi=predictors, r2i=r2")
  sprintf("escalc(measure=\"%s\", %s, data=d)", measure, args)
}

transf_call <- function(measure) {
  switch(measure,
    PLN = , IRLN = , IRR = , MNLN = , ROMC = "transf=exp",
    PLO = "transf=transf.ilogit", PAS = "transf=transf.iarcsin",
    PFT = "transf=transf.ipft.hm, targs=list(ni=d$total)",
    IRS = "transf=transf.isqrt",
    IRFT = "transf=transf.iirft, targs=1/mean(1/d$time)",
    ZPCOR = "transf=transf.ztor",
    NULL)
}

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}

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

cases <- list()

run_case <- function(dsname, measure, method, test, opts, tag = NULL, rma_control = NULL) {
  fam <- family[[dsname]]
  if (is.null(rma_control)) rma_control <- if (measure %in% c("IR", "IRD")) RMA_CONTROL_RATES else RMA_CONTROL
  env <- new.env()
  env$d <- datasets[[dsname]]
  es_call <- escalc_call(fam, measure, opts)
  fit_call <- sprintf("rma(yi, vi, data=es, slab=d$study, method=\"%s\", test=\"%s\", control=%s)",
                      method, test, rma_control)
  tr <- transf_call(measure)
  id <- paste(c(dsname, measure, method, test, tag), collapse = "/")
  case <- list(id = id, dataset = dsname, family = fam, measure = measure, method = method, test = test,
               options = opts, call = sprintf("es <- %s; fit <- %s", es_call, fit_call))
  es <- capture(es_call, env)
  if (inherits(es$value, "captured_error")) stop(paste(id, es$value))
  env$es <- es$value
  case$escalc <- list(yi = I(num(es$value$yi)), vi = I(num(es$value$vi)))
  zero_vi <- which(es$value$vi <= 0)
  if (length(zero_vi)) {
    # metafor keeps a study with sampling variance 0 in random-effects fits (and stops for FE);
    # metarepro excludes it with the reason, so the reference fits the other studies
    case$zero_variance_rows <- I(zero_vi)
    env$es$vi[zero_vi] <- NA
    case$call <- sprintf("es <- %s; es$vi[es$vi <= 0] <- NA; fit <- %s", es_call, fit_call)
  }
  res <- capture(fit_call, env)
  warns <- c(es$warnings, res$warnings)
  if (inherits(res$value, "captured_error")) {
    case$error <- as.character(res$value)
  } else {
    x <- res$value
    env$fit <- x
    fit <- list(k = x$k, estimate = num(x$beta), se = num(x$se), ci_lower = num(x$ci.lb), ci_upper = num(x$ci.ub),
                statistic = num(x$zval), pvalue = num(x$pval), df = if (test != "z") num(x$ddf) else NA_real_,
                tau2 = num(x$tau2), i2 = num(x$I2), h2 = num(x$H2), q = num(x$QE), q_df = x$k - x$p,
                q_pvalue = num(x$QEp))
    pr <- capture("predict(fit)", env)
    fit$pi_lower <- num(pr$value$pi.lb)
    fit$pi_upper <- num(pr$value$pi.ub)
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
        # a bound at metafor's search limit tau2.max (sign ">") is not a root: the same interval
        # with tau2.max = 1e8, as make_reference.R records it
        if (">" %in% c(fit$tau2_ci_flags$lb_sign, fit$tau2_ci_flags$ub_sign)) {
          wcall <- "confint(fit, control=list(tol=1e-12, maxiter=1000, tau2.max=1e8))"
          cw <- capture(wcall, env)
          rw <- cw$value$random
          case$tau2_ci_uncapped <- list(
            call = wcall, tau2_ci_lower = num(rw["tau^2", "ci.lb"]), tau2_ci_upper = num(rw["tau^2", "ci.ub"]),
            i2_ci_lower = num(rw["I^2(%)", "ci.lb"]), i2_ci_upper = num(rw["I^2(%)", "ci.ub"]),
            h2_ci_lower = num(rw["H^2", "ci.lb"]), h2_ci_upper = num(rw["H^2", "ci.ub"]),
            lb_sign = if (is.null(cw$value$lb.sign)) "" else cw$value$lb.sign,
            ub_sign = if (is.null(cw$value$ub.sign)) "" else cw$value$ub.sign)
        }
      }
    }
    fit$weights <- I(weights_full(x))
    case$fit <- fit
    if (!is.null(tr)) {
      call <- sprintf("predict(fit, %s)", tr)
      pn <- capture(call, env)
      case$natural <- list(call = call, estimate = num(pn$value$pred), ci_lower = num(pn$value$ci.lb),
                           ci_upper = num(pn$value$ci.ub), pi_lower = num(pn$value$pi.lb),
                           pi_upper = num(pn$value$pi.ub))
    }
  }
  if (length(warns)) case$warning <- I(unique(warns))
  cases[[length(cases) + 1]] <<- case
}

COUNT_FAMILIES <- c("proportion", "rate", "rate2")
default_opts <- function(fam) if (fam %in% COUNT_FAMILIES) list(to = "only0", drop00 = FALSE) else list()

for (dsname in names(datasets)) {
  fam <- family[[dsname]]
  for (measure in MEASURES[[fam]]) for (method in IV_METHODS) for (test in TESTS)
    run_case(dsname, measure, method, test, default_opts(fam))
}

# metafor's PM search stops at tau2.max = max(100, 10*mad(yi)^2) and ML's Fisher scoring does not
# converge to 1e-12 for MN on curtis1998_t (means from 0.09 to 1439, tau2 ~ 2e4); the same fits with
# a wider bracket, and with the absolute threshold 1e-8 (1e-12 relative to tau2):
for (test in TESTS) {
  run_case("curtis1998_t", "MN", "PM", test, list(), "tau2max",
           rma_control = "list(threshold=1e-12, tol=1e-12, maxiter=1000, tau2.max=1e8)")
  run_case("curtis1998_t", "MN", "ML", test, list(), "threshold1e-8",
           rma_control = "list(threshold=1e-8, tol=1e-12, maxiter=10000)")
}

# zero-event conventions other than the defaults (add given explicitly, to = all / if0all / none, drop00)
ZERO_SETS <- c("pritz1997", "pagliaro1992_control", "nielweise2008_t_zero", "nielweise2008_rates_zero")
OPTION_SETS <- list(add0.25 = list(add = 0.25, to = "only0", drop00 = FALSE),
                    toall = list(add = 0.5, to = "all", drop00 = FALSE),
                    if0all = list(add = 0.5, to = "if0all", drop00 = FALSE),
                    none = list(add = 0, to = "none", drop00 = FALSE),
                    drop00 = list(to = "only0", drop00 = TRUE))
for (dsname in ZERO_SETS) for (tag in names(OPTION_SETS)) {
  fam <- family[[dsname]]
  if (tag == "drop00" && fam != "rate2") next
  for (measure in MEASURES[[fam]]) for (method in c("FE", "REML")) for (test in TESTS)
    run_case(dsname, measure, method, test, OPTION_SETS[[tag]], tag)
}

ids <- vapply(cases, `[[`, "", "id")
stopifnot(!anyDuplicated(ids))

out <- list(
  generated_by = "tests/reference/make_measures.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  gsl_version = as.character(packageVersion("gsl")),
  controls = list(rma = RMA_CONTROL, rma_ir_ird = RMA_CONTROL_RATES, confint = CI_CONTROL),
  conventions = list(
    scale = "model scale as escalc returns it; 'natural' holds predict(fit, transf=...) where the measure has a back-transformation",
    options = "count data: 'add' is written in the escalc call only when given (metafor's default otherwise: 1/2, or 0 for PAS, PFT, IRS, IRFT)",
    change = "m1i = mean_post, m2i = mean_pre (yi = post - pre); SMCR standardises by sd1i = sd_pre; MC/SMCC/ROMC pair sd1i = sd_post with m1i",
    weights = "weights(fit) in percent, file order, null for studies not in the model",
    pi = "pi_lower/pi_upper from predict(fit); null for FE",
    confint = "Q-profile bounds from confint(fit); where a bound carries '>' (metafor's search limit), tau2_ci_uncapped holds confint(fit) with tau2.max = 1e8"),
  datasets = lapply(names(datasets), function(n) list(name = n, family = family[[n]], k = nrow(datasets[[n]]),
                                                      source = source_of[[n]])),
  cases = cases)
write_json17(out, file.path(out_dir, "metafor_measures.json"))
cat(sprintf("%d cases written; %d with a metafor error\n", length(cases),
            sum(vapply(cases, function(x) !is.null(x$error), TRUE))))
