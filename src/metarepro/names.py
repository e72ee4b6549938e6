"""Names shared across the package (no heavy imports, so light modules can use them)."""

#: tau² estimators of random-effects models.
TAU2_ESTIMATORS = ("DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")
#: Every pooling method: common effect (inverse variance, Mantel-Haenszel, Peto), random effects,
#: and RevMan 5's "M-H, Random" (DerSimonian-Laird tau² from Q about the Mantel-Haenszel estimate).
METHODS = ("FE", "MH", "PETO") + TAU2_ESTIMATORS + ("MH-DL",)
#: Methods that pool 2x2 counts (not study effects) at some step.
COUNT_METHODS = ("MH", "PETO", "MH-DL")
#: Computing conventions (metarepro.conventions).
CONVENTIONS = ("metafor", "revman5")
#: Inference: Wald z, Hartung-Knapp(-Sidik-Jonkman) t, or Hartung-Knapp with the ad hoc
#: correction (scale factor never below 1; Knapp & Hartung 2003), as metafor's test="adhoc".
TESTS = ("z", "knha", "adhoc")
#: Tests with a scaled variance and t on k - 1 df.
T_TESTS = ("knha", "adhoc")
#: How each test is named in reports and figures.
TEST_LABELS = {"z": "Wald z", "knha": "Hartung-Knapp", "adhoc": "Hartung-Knapp, ad hoc correction"}

#: Effect measures of the engine (metafor ``escalc`` names).
MEASURES = ("RR", "OR", "RD", "MD", "SMD", "ROM", "ZCOR",
            "PR", "PLN", "PLO", "PAS", "PFT",          # one proportion
            "IR", "IRLN", "IRS", "IRFT", "IRR", "IRD",  # incidence rates (events / person-time)
            "MN", "MNLN",                              # one mean
            "MC", "SMCC", "SMCR", "ROMC",              # change (pre-post, matched pairs)
            "COR", "UCOR", "PCOR", "ZPCOR", "SPCOR",   # correlations
            "GEN")
#: Ratios of two groups: pooled on the log scale, reported back as ratios (null value 1).
RATIO_MEASURES = ("RR", "OR", "ROM", "IRR", "ROMC")
#: Transformation between the natural scale and the model scale, by measure
#: (:mod:`metarepro.natural` implements them); measures not listed have one scale.
TRANSFORM = {**dict.fromkeys(RATIO_MEASURES + ("PLN", "IRLN", "MNLN"), "log"),
             "ZCOR": "atanh", "ZPCOR": "atanh", "PLO": "logit", "PAS": "arcsine",
             "PFT": "freeman_tukey", "IRS": "sqrt", "IRFT": "freeman_tukey_rate"}
#: Multilevel/multivariate models (metafor rma.mv): estimation methods ("EE"/"FE": no random
#: effects), tests of the coefficients (z, or t on k - p df) and structures of '~ inner | outer'.
MV_METHODS = ("REML", "ML", "EE", "FE")
MV_TESTS = ("z", "t")
STRUCTS = ("CS", "HCS")

#: Fields of a pooled result, in the order of the JSON, the API and pooled.csv.
FIELDS = ("k", "estimate", "se", "ci_lower", "ci_upper", "statistic", "pvalue", "df",
          "pi_lower", "pi_upper", "pi_hts_lower", "pi_hts_upper",
          "tau2", "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper",
          "h2", "h2_ci_lower", "h2_ci_upper", "tau2_ci_lower_censored", "tau2_ci_upper_censored",
          "q", "q_df", "q_pvalue", "converged")
#: Fields also given back-transformed (``<field>_natural``) for the measures in TRANSFORM.
NATURAL = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")

#: Columns of results/<analysis>/pooled.csv.
POOLED_COLUMNS = ("analysis", "outcome", "measure", "method", "test", "convention", *FIELDS, *(f"{n}_natural" for n in NATURAL))
#: Columns of results/<analysis>/forensics.csv.
FORENSICS_COLUMNS = ("analysis", "target", "outcome", "method", "test", "convention", "zero_cells", "add", "to", "drop00", "k",
                     "estimate", "ci_lower", "ci_upper", "tau2", "i2", "matches_estimate", "matches_ci",
                     "max_abs_diff")
#: Columns of results/reproduction.csv (and of each analysis's reproduction.csv).
REPRODUCTION_COLUMNS = ("analysis", "claim", "outcome", "target", "published_estimate", "published_ci_lower",
                        "published_ci_upper", "published_method", "reproduced_estimate", "reproduced_ci_lower",
                        "reproduced_ci_upper", "method", "k_used", "k_published", "verdict", "reason",
                        "modern_estimate", "modern_ci_lower", "modern_ci_upper", "modern_pi_lower",
                        "modern_pi_upper", "likely_method", "source")
