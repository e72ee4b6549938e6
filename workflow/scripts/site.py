"""Write results/index.html and results/<analysis>/index.html (metarepro.site)."""

from pathlib import Path

from metarepro.scripting import guarded
from metarepro.site import write_site

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    modern = (sm.params.modern["method"], sm.params.modern["test"])
    write_site(Path(sm.output.index).parent, sm.params.extracted, list(sm.params.analyses), modern)
