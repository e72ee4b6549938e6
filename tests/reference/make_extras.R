# Reference values from R's metafor for the single-level extras of issue 14:
# profile-likelihood CI for tau^2 (confint(type="PL")), the Q-profile tau^2 CI of models with
# moderators, BLUPs and random effects (blup, ranef), the Henmi-Copas interval (hc), fail-safe N
# (fsn: Rosenthal, Orwin, Rosenberg) and Wald/F tests of subsets of coefficients (anova(btt=)).
#
# Run from the repository root (after make_reference.R, make_diagnostics.R and make_measures.R,
# whose CSVs it reads):
#     Rscript tests/reference/make_extras.R
#
# Writes tests/reference/metafor_extras.json: one entry per (dataset, extra, model), each with the
# exact R code evaluated ('setup' builds es, 'call' is the extra) and metafor's result.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
data_dir <- file.path(out_dir, "data")
source(file.path(out_dir, "json17.R"))

RMA_CONTROL <- "list(threshold=1e-12, tol=1e-12, maxiter=1000)"
CI_CONTROL <- "list(tol=1e-12, maxiter=1000)"

# dataset -> (measure, escalc call)
ES <- list(
  bcg = "escalc(measure=\"RR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
  hackshaw1998 = "d",
  raudenbush1985 = "d",
  molloy2014 = "escalc(measure=\"ZCOR\", ri=r, ni=total, data=d)",
  normand1999 = "escalc(measure=\"MD\", m1i=mean_t, sd1i=sd_t, n1i=total_t, m2i=mean_c, sd2i=sd_c, n2i=total_c, data=d)",
  pritz1997 = "escalc(measure=\"PLO\", xi=events, ni=total, data=d)",
  bcg_k2 = "escalc(measure=\"RR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
  bcg_mods = "escalc(measure=\"RR\", ai=events_t, n1i=total_t, ci=events_c, n2i=total_c, data=d)",
  raudenbush1985_mods = "d",
  hackshaw1998_mods = "d",
  molloy2014_mods = "escalc(measure=\"ZCOR\", ri=r, ni=total, data=d)")
MEASURE <- c(bcg = "RR", hackshaw1998 = "GEN", raudenbush1985 = "GEN", molloy2014 = "ZCOR", normand1999 = "MD",
             pritz1997 = "PLO", bcg_k2 = "RR", bcg_mods = "RR", raudenbush1985_mods = "GEN",
             hackshaw1998_mods = "GEN", molloy2014_mods = "ZCOR")
MODS <- list(bcg_mods = c("~ ablat", "~ ablat + year + alloc"), raudenbush1985_mods = c("~ weeks", "~ weeks + tester"),
             hackshaw1998_mods = c("~ year + design"), molloy2014_mods = c("~ meanage + design"))

num <- function(x) {
  if (is.null(x) || length(x) == 0) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}

entries <- list()
# params: the model and options in structured form (method, test, mods, and the extra's arguments)
add <- function(dataset, extra, params, setup, call, extract) {
  env <- new.env()
  env$d <- read.csv(file.path(data_dir, paste0(dataset, ".csv")), stringsAsFactors = FALSE)
  warns <- character(0)
  run <- function(txt) withCallingHandlers(eval(parse(text = txt), envir = env),
                                           warning = function(w) { warns <<- c(warns, conditionMessage(w))
                                                                   invokeRestart("muffleWarning") })
  run(setup)
  val <- tryCatch(run(call), error = function(e) structure(conditionMessage(e), class = "err"))
  tag <- paste(vapply(names(params), function(n) {
    v <- params[[n]]
    if (n %in% c("method", "test")) v else paste0(n, "=", paste(gsub(" ", "", v), collapse = ","))
  }, ""), collapse = "/")
  e <- list(id = paste(dataset, extra, tag, sep = "/"), dataset = dataset, measure = MEASURE[[dataset]],
            extra = extra, params = params, setup = setup, call = call)
  if (inherits(val, "err")) e$error <- as.character(val) else e$result <- extract(val, env)
  if (length(warns)) e$warning <- I(unique(warns))
  entries[[length(entries) + 1]] <<- e
}

fit_setup <- function(ds, p) {
  m <- if (is.null(p$mods)) "" else sprintf("mods=%s, ", p$mods)
  sprintf("es <- %s; fit <- rma(yi, vi, %sdata=es, method=\"%s\", test=\"%s\", control=%s)",
          ES[[ds]], m, p$method, p$test, RMA_CONTROL)
}
model <- function(method, test, mods = NULL) {
  p <- list(method = method, test = test)
  if (!is.null(mods)) p$mods <- mods
  p
}

ex_confint <- function(x, env) {
  r <- x$random
  list(tau2 = num(r["tau^2", "estimate"]), ci_lower = num(r["tau^2", "ci.lb"]), ci_upper = num(r["tau^2", "ci.ub"]),
       i2_ci_lower = num(r["I^2(%)", "ci.lb"]), i2_ci_upper = num(r["I^2(%)", "ci.ub"]),
       h2_ci_lower = num(r["H^2", "ci.lb"]), h2_ci_upper = num(r["H^2", "ci.ub"]),
       ci_null = isTRUE(x$ci.null), lb_sign = if (is.null(x$lb.sign)) "" else x$lb.sign,
       ub_sign = if (is.null(x$ub.sign)) "" else x$ub.sign)
}
ex_list <- function(x, env) list(pred = I(num(x$pred)), se = I(num(x$se)), pi_lower = I(num(x$pi.lb)),
                                 pi_upper = I(num(x$pi.ub)))
ex_hc <- function(x, env) list(estimate = num(x$beta), se = num(x$se), ci_lower = num(x$ci.lb), ci_upper = num(x$ci.ub),
                               tau2 = num(x$tau2), estimate_re = num(x$beta.rma), ci_lower_re = num(x$ci.lb.rma),
                               ci_upper_re = num(x$ci.ub.rma), tau2_re = num(x$tau2.rma))
ex_fsn <- function(x, env) list(fsn = num(x$fsnum), pvalue = num(x$pval), mean_effect = num(x$meanes),
                                target = num(x$target), alpha = num(x$alpha))
ex_anova <- function(x, env) list(statistic = num(x$QM), df = I(num(x$QMdf)), pvalue = num(x$QMp), btt = I(x$btt))

INTERCEPT_SETS <- c("bcg", "hackshaw1998", "raudenbush1985", "molloy2014", "normand1999", "pritz1997", "bcg_k2")
pl_call <- function(tmax = NULL) {
  ctl <- if (is.null(tmax)) CI_CONTROL else sprintf("list(tol=1e-12, maxiter=1000, tau2.max=%s)", tmax)
  sprintf("confint(fit, type=\"PL\", control=%s)", ctl)
}
qp_call <- function(tmax = NULL) {
  ctl <- if (is.null(tmax)) CI_CONTROL else sprintf("list(tol=1e-12, maxiter=1000, tau2.max=%s)", tmax)
  sprintf("confint(fit, control=%s)", ctl)
}

# profile-likelihood CI of tau^2: ML and REML, intercept-only and with moderators (confint's test does not matter)
for (ds in INTERCEPT_SETS) for (method in c("REML", "ML")) {
  p <- model(method, "z")
  add(ds, "tau2_pl", p, fit_setup(ds, p), pl_call(), ex_confint)
}
for (ds in names(MODS)) for (mods in MODS[[ds]]) {
  for (method in c("REML", "ML")) {
    p <- model(method, "z", mods)
    add(ds, "tau2_pl", p, fit_setup(ds, p), pl_call(), ex_confint)
  }
  # Q-profile CI of the residual tau^2 with moderators, every tau^2 estimator
  for (method in c("DL", "REML", "ML", "PM", "EB", "HS", "SJ", "HE")) {
    p <- model(method, "z", mods)
    add(ds, "tau2_qp", p, fit_setup(ds, p), qp_call(), ex_confint)
  }
}
# bounds beyond the search range (metafor's tau2.max): flagged '>' and reported at the limit
p <- model("REML", "z")
add("bcg", "tau2_pl", c(p, tau2_max = 0.5), fit_setup("bcg", p), pl_call("0.5"), ex_confint)
p <- model("REML", "z", "~ ablat")
add("bcg_mods", "tau2_pl", c(p, tau2_max = 0.2), fit_setup("bcg_mods", p), pl_call("0.2"), ex_confint)
for (tmax in c(0.1, 0.001))
  add("bcg_mods", "tau2_qp", c(p, tau2_max = tmax), fit_setup("bcg_mods", p), qp_call(format(tmax)), ex_confint)

# BLUPs and random effects: FE and random effects, z and knha, with and without moderators
for (ds in INTERCEPT_SETS) for (method in c("FE", "DL", "REML")) for (test in c("z", "knha", "adhoc")) {
  p <- model(method, test)
  add(ds, "blup", p, fit_setup(ds, p), "blup(fit)", ex_list)
  add(ds, "ranef", p, fit_setup(ds, p), "ranef(fit)", ex_list)
}
for (ds in names(MODS)) for (mods in MODS[[ds]]) for (method in c("FE", "REML")) for (test in c("z", "knha", "adhoc")) {
  p <- model(method, test, mods)
  add(ds, "blup", p, fit_setup(ds, p), "blup(fit)", ex_list)
  add(ds, "ranef", p, fit_setup(ds, p), "ranef(fit)", ex_list)
}

# Henmi-Copas (uses DL internally; the fit's method only enters the *_re fields)
for (ds in INTERCEPT_SETS) for (method in c("REML", "DL")) {
  p <- model(method, "z")
  add(ds, "hc", p, fit_setup(ds, p), "hc(fit, control=list(tol=1e-12))", ex_hc)
}

# fail-safe N
FSN <- list(list(type = "Rosenthal"), list(type = "Rosenthal", alpha = 0.01), list(type = "Orwin"),
            list(type = "Orwin", weighted = TRUE, target = 0.1), list(type = "Rosenberg"),
            list(type = "Rosenberg", alpha = 0.1))
for (ds in INTERCEPT_SETS) for (p in FSN) {
  args <- paste(vapply(names(p), function(n) {
    v <- p[[n]]
    if (is.character(v)) sprintf("%s=\"%s\"", n, v) else if (is.logical(v)) sprintf("%s=%s", n, v) else sprintf("%s=%s", n, format(v))
  }, ""), collapse = ", ")
  add(ds, "fsn", p, sprintf("es <- %s", ES[[ds]]), sprintf("fsn(yi, vi, data=es, %s)", args), ex_fsn)
}

# Wald (z) and F (knha) tests of subsets of coefficients (btt in R's 1-based positions)
BTT <- list(bcg_mods = list("~ ablat + year + alloc" = list(2:3, 4:5, 3, 2:5)),
            raudenbush1985_mods = list("~ weeks + tester" = list(2, 3, 2:3)),
            hackshaw1998_mods = list("~ year + design" = list(3, 2:3)),
            molloy2014_mods = list("~ meanage + design" = list(3, 2:3)))
for (ds in names(BTT)) for (mods in names(BTT[[ds]])) for (btt in BTT[[ds]][[mods]])
  for (method in c("FE", "REML")) for (test in c("z", "knha", "adhoc")) {
    p <- model(method, test, mods)
    add(ds, "anova_btt", c(p, list(btt = I(btt))), fit_setup(ds, p),
        sprintf("anova(fit, btt=c(%s))", paste(btt, collapse = ", ")), ex_anova)
    last <- entries[[length(entries)]]
    stopifnot(is.null(last$error), identical(as.numeric(last$result$btt), as.numeric(btt)))
  }
for (test in c("z", "knha", "adhoc")) {
  p <- model("REML", test, "~ ablat + year + alloc")
  add("bcg_mods", "anova_btt", c(p, list(btt = I(2:3), rhs = I(c(-0.02, 0.01)))), fit_setup("bcg_mods", p),
      "anova(fit, btt=c(2, 3), rhs=c(-0.02, 0.01))", ex_anova)
}

ids <- vapply(entries, `[[`, "", "id")
stopifnot(!anyDuplicated(ids))
out <- list(
  generated_by = "tests/reference/make_extras.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  controls = list(rma = RMA_CONTROL, confint = CI_CONTROL, hc = "hc(fit, control=list(tol=1e-12)) (uniroot tol; R's integrate() keeps its default rel.tol)"),
  conventions = list(
    index = "btt in R's 1-based positions (1 = intercept); the test subtracts 1",
    params = "params: method, test, mods (R formula) of the fit and the extra's arguments (tau2_max, type, alpha, weighted, target, btt, rhs)",
    lists = "blup/ranef: per study in file order (pred, se, pi_lower, pi_upper)",
    confint = "tau2 CI with metafor's lb_sign/ub_sign ('>' = search stopped at tau2.max) and ci_null"),
  diagnostics = entries)
write_json17(out, file.path(out_dir, "metafor_extras.json"))
cat(sprintf("%d entries written; %d with a metafor error\n", length(entries),
            sum(vapply(entries, function(x) !is.null(x$error), TRUE))))
