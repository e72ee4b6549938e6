"""Computing conventions: metafor's (the default) and RevMan 5's, as named bundles of options.

A convention fixes how study effects are computed from the data and how the
Mantel-Haenszel and Peto methods treat zero cells. Each piece is an option of
:func:`metarepro.pooling.pool` of its own; ``convention=`` sets all of them at
once, and a piece given explicitly overrides the bundle.

========================  =========================================  ==============================================
piece (``pool`` keyword)  ``"metafor"`` (metafor 3.8)                ``"revman5"`` (Review Manager 5)
========================  =========================================  ==============================================
``smd``                   ``"exact"``: Hedges' g with the exact      ``"revman5"``: J = 1 - 3/(4N - 9), variance
                          J and the large-sample variance            N/(n1 n2) + g²/(2(N - 3.94))
                          1/n1 + 1/n2 + g²/(2N) (``escalc("SMD")``)
``drop00``                keep double-zero and all-event studies     ``"revman5"``: no events in both arms: not
                          (``escalc``); MH/Peto study effects        estimable for RR and OR, kept for RD; every
                          drop them (``rma.mh``/``rma.peto``)        participant with the event in both arms: not
                                                                     estimable for OR, kept for RR (RR = 1 from
                                                                     the raw counts, variance from the corrected
                                                                     table) and RD
``rd``                    ``"metafor"``: RD and its variance from    ``"revman5"``: RD from the raw counts, its
                          the 0.5-corrected table                    variance from the corrected table
``mh``                    ``"metafor"``: ``rma.mh`` on the raw       ``"revman5"``: MH on the table with 0.5 added
                          counts; RD variance of Sato et al.         to every cell of a zero-cell study for RR and OR
                          (1989)                                     (studies not estimable left out; an all-event
                                                                     RR table enters with RR = 1, its weight
                                                                     c n1 / N of the corrected table); RD on the raw
                                                                     table (weights n1 n2 / N, as RevMan prints
                                                                     them; R meta's MH.exact = FALSE corrects
                                                                     them), variance of Greenland & Robins (1985)
``peto``                  ``"metafor"``: study effects from the      ``"revman5"``: study effects (O - E)/V from the
                          corrected table (``rma.peto``)             raw counts, no correction; V = 0: not estimable
``not_estimable``         ``"error"``: SD = 0, a total of 0, a       ``"exclude"``: such a study is listed as
                          zero SE stop with an error                 excluded, "not estimable" (RevMan's wording)
========================  =========================================  ==============================================

Impossible data (events > total, negative counts or SDs) is an error under
both conventions. The continuity correction itself (0.5 added to every cell
of a study with a zero cell) is the same in both, and so is RevMan 5's risk
ratio of a corrected table: R meta's ``RR.Cochrane = TRUE`` adds ``2 incr`` to
the group sizes, which is what adding 0.5 to each of the four cells does.

RevMan 5's "M-H, Random" is the method code ``"MH-DL"`` (Q about the MH
estimate, DerSimonian-Laird tau², weights ``1/(v + tau²)``); it is available
under both conventions (under ``"metafor"`` its MH estimate is ``rma.mh``'s).

RevMan Web's newer random-effects options map onto existing options: REML
tau² is ``method="REML"``, the Hartung-Knapp-Sidik-Jonkman interval is
``test="knha"``, the Q-profile interval for tau² is ``tau2_ci_lower/upper``,
I² computed from tau² is the engine's ``i2`` (for DL it equals RevMan 5's
``(Q - df)/Q``), and the prediction interval on the t distribution with k - 2
df (Higgins, Thompson & Spiegelhalter 2009) is ``pi_hts_lower/upper``, on the
normal distribution ``pi_lower/upper`` with ``test="z"`` (Cochrane Methods,
"Random-effects meta-analysis methods for Intervention Reviews", 2022-2025).

References
----------
Deeks JJ, Higgins JPT (2010). Statistical algorithms in Review Manager 5.
Cochrane Statistical Methods Group.
Schwarzer G (2007-2025). R package meta: ``settings.meta("RevMan5")``
(``exact.smd = FALSE``, ``MH.exact = FALSE``, ``RR.Cochrane = TRUE``,
``Q.Cochrane = TRUE``, ``method.tau = "DL"``, ``tau.common = FALSE``), and
``metabin``, ``metacont``, ``hetcalc`` (github.com/guido-s/meta).
Higgins JPT, Green S (eds) (2011). Cochrane Handbook for Systematic Reviews of
Interventions 5.1.0, sections 9.4.4 (RevMan adds 0.5 to each cell of a study
with a zero cell) and 16.9.3 (studies with no events).
Ades AE, Caldwell DM, Anwer S, Dias S (2025). Continuity corrections with
Mantel-Haenszel estimators in Cochrane reviews. Res Synth Methods (letter):
RevMan's MH adds 0.5 to every cell of a table with a zero cell by default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import InputError

#: Names of the convention bundles.
CONVENTIONS = ("metafor", "revman5")

#: Allowed values of each piece.
CHOICES = {
    "smd": ("exact", "revman5"),
    "rd": ("metafor", "revman5"),
    "mh": ("metafor", "revman5"),
    "peto": ("metafor", "revman5"),
    "not_estimable": ("error", "exclude"),
}


@dataclass(frozen=True)
class Convention:
    """The resolved pieces of a computing convention (see the module docstring).

    ``drop00`` is None for metafor's default by method (False for
    inverse-variance models, True for the study effects of MH and Peto),
    True/False, or ``"revman5"`` for RevMan's rule by measure.
    """

    name: str
    smd: str
    rd: str
    mh: str
    peto: str
    not_estimable: str
    drop00: bool | str | None

    @property
    def label(self) -> str:
        """The bundle's name, followed by the pieces that differ from it, e.g.
        ``"metafor (smd=revman5)"``."""
        base = BUNDLES[self.name]
        diff = [f"{f.name}={_text(getattr(self, f.name))}" for f in fields(self)
                if f.name != "name" and getattr(self, f.name) != getattr(base, f.name)]
        return self.name + (f" ({', '.join(diff)})" if diff else "")

    def drop00_for(self, method: str) -> bool | str:
        """``drop00`` as :func:`metarepro.effects.compute_effects` takes it for ``method``."""
        if self.drop00 is None:
            return method in ("MH", "PETO", "MH-DL")
        return self.drop00


def _text(v) -> str:
    return {True: "yes", False: "no", None: "default"}.get(v, str(v)) if not isinstance(v, str) else v


BUNDLES = {
    "metafor": Convention("metafor", smd="exact", rd="metafor", mh="metafor", peto="metafor",
                          not_estimable="error", drop00=None),
    "revman5": Convention("revman5", smd="revman5", rd="revman5", mh="revman5", peto="revman5",
                          not_estimable="exclude", drop00="revman5"),
}


def resolve(convention: str | Convention = "metafor", *, file: str = "<data>", **pieces) -> Convention:
    """The convention bundle ``convention`` with the pieces given (not None) put in.

    Raises
    ------
    InputError
        For an unknown bundle name or piece value.
    """
    if isinstance(convention, Convention):
        base = convention
    else:
        if convention not in BUNDLES:
            raise InputError(f"unknown convention '{convention}' (choose one of {', '.join(CONVENTIONS)})",
                             file=file)
        base = BUNDLES[convention]
    kw = {}
    for key, value in pieces.items():
        if value is None:
            continue
        if key == "drop00":
            if not (isinstance(value, bool) or value == "revman5"):
                raise InputError(f"drop00={value!r} must be True, False or 'revman5'", file=file)
        elif key not in CHOICES:
            raise InputError(f"unknown convention option '{key}'", file=file)
        elif value not in CHOICES[key]:
            raise InputError(f"unknown {key}='{value}' (choose one of {', '.join(CHOICES[key])})", file=file)
        kw[key] = value
    return Convention(**{f.name: kw.get(f.name, getattr(base, f.name)) for f in fields(Convention)})
