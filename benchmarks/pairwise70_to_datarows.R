# Writes Cochrane "data rows" CSV files back from the Pairwise70 R package
# (github:mahmood789/Pairwise70, MIT licence), whose data/*.rda hold the
# Cochrane Library data-rows exports of 501 reviews as read by read.csv().
#
# read.csv() turned the header "O-E" into "O.E" and "(judgement)" into
# "..judgement."; this script restores Cochrane's names and writes every number
# as R prints a double (15 significant digits, so the 6-decimal values of the
# export come back as printed). Pairwise70 added two columns of its own
# (review_url, review_doi), kept at the end.
#
# Usage: Rscript benchmarks/pairwise70_to_datarows.R RDA_FOLDER OUT_FOLDER
#   RDA_FOLDER: the package's data/ folder (e.g. from a clone of the repository)
#   OUT_FOLDER: where to write <name>-data-rows.csv (benchmarks/data/ is git-ignored)
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 2)
dir.create(args[2], showWarnings = FALSE, recursive = TRUE)
restore <- function(n) {
  fixed <- c(Analysis.group = "Analysis group", Analysis.number = "Analysis number",
             Analysis.name = "Analysis name", Subgroup.number = "Subgroup number",
             Study.year = "Study year", GIV.Mean = "GIV Mean", GIV.SE = "GIV SE",
             Experimental.mean = "Experimental mean", Experimental.SD = "Experimental SD",
             Experimental.cases = "Experimental cases", Experimental.N = "Experimental N",
             Control.mean = "Control mean", Control.SD = "Control SD", Control.cases = "Control cases",
             Control.N = "Control N", O.E = "O-E", CI.start = "CI start", CI.end = "CI end")
  out <- ifelse(n %in% names(fixed), fixed[n], n)
  rob <- grepl("\\.\\.(judgement|support)\\.$", n)
  out[rob] <- sub("\\.\\.(judgement|support)\\.$", " (\\1)", n[rob])
  out[rob] <- gsub(".", " ", out[rob], fixed = TRUE)
  out
}
for (f in sort(list.files(args[1], pattern = "\\.rda$", full.names = TRUE))) {
  e <- new.env()
  load(f, envir = e)
  x <- get(ls(e)[1], envir = e)
  names(x) <- restore(names(x))
  for (j in seq_along(x)) if (is.double(x[[j]])) x[[j]] <- ifelse(is.na(x[[j]]), NA, as.character(x[[j]]))
  out <- file.path(args[2], sub("_data\\.rda$", "-data-rows.csv", basename(f)))
  write.csv(x, out, row.names = FALSE, na = "", fileEncoding = "UTF-8")
}
