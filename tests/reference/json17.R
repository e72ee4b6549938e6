suppressPackageStartupMessages(library(jsonlite))

# ---------------------------------------------------------------------------
# JSON at full double precision, shared by make_reference.R and make_diagnostics.R.
# jsonlite::toJSON(digits = NA) stops at 15 significant digits, which is not enough to pin a double, so numbers are
# written here with sprintf("%.17g") (round-trips exactly); strings are escaped
# by jsonlite. A length-1 vector is a scalar unless wrapped in I().
# NA/NaN/Inf and NULL are written as null. Each element of a top-level list
# called "cases", "datasets" or "diagnostics" goes on its own line.
# ---------------------------------------------------------------------------
json_value <- function(x) {
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (!is.null(names(x))) {
      keys <- vapply(names(x), function(n) as.character(toJSON(n, auto_unbox = TRUE)), "")
      vals <- vapply(x, json_value, "")
      return(paste0("{", paste0(keys, ":", vals, collapse = ","), "}"))
    }
    return(paste0("[", paste(vapply(x, json_value, ""), collapse = ","), "]"))
  }
  as_array <- length(x) != 1L || inherits(x, "AsIs")
  if (is.factor(x)) x <- as.character(x)
  if (is.character(x)) {
    parts <- vapply(x, function(s) if (is.na(s)) "null" else as.character(toJSON(s, auto_unbox = TRUE)), "")
  } else if (is.logical(x)) {
    parts <- ifelse(is.na(x), "null", ifelse(x, "true", "false"))
  } else {
    x <- as.numeric(x)
    parts <- ifelse(is.finite(x), sprintf("%.17g", x), "null")
    # integers stay integers; everything else must parse back to the same double
    whole <- is.finite(x) & x == round(x) & abs(x) < 2^53
    parts[whole] <- sprintf("%.0f", x[whole])
  }
  if (!as_array) return(unname(parts))
  paste0("[", paste(parts, collapse = ","), "]")
}
write_json17 <- function(obj, path) {
  top <- names(obj)
  lines <- character(0)
  for (i in seq_along(obj)) {
    key <- as.character(toJSON(top[i], auto_unbox = TRUE))
    sep <- if (i < length(obj)) "," else ""
    if (top[i] %in% c("cases", "datasets", "diagnostics")) {
      items <- vapply(obj[[i]], json_value, "")
      lines <- c(lines, paste0(key, ":["), paste0(items, c(rep(",", length(items) - 1), "")), paste0("]", sep))
    } else {
      lines <- c(lines, paste0(key, ":", json_value(obj[[i]]), sep))
    }
  }
  writeLines(c("{", lines, "}"), path)
}
