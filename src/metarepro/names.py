"""Names shared across the package (no heavy imports, so light modules can use them)."""

#: tau² estimators of random-effects models.
TAU2_ESTIMATORS = ("DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")
#: Every pooling method: common effect (inverse variance, Mantel-Haenszel, Peto) then random effects.
METHODS = ("FE", "MH", "PETO") + TAU2_ESTIMATORS
#: Inference: Wald z or Hartung-Knapp(-Sidik-Jonkman) t.
TESTS = ("z", "knha")
