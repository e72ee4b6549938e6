"""The reviewer's pages without a browser (metarepro.site): escaping of every text from a data file,
links built from sources, and byte-identical output. The browser checks are in test_site_browser.py."""

import shutil
from pathlib import Path

import pytest
import yaml

from metarepro.site import analysis_page, index_page, safe_url, source_href, write_site

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>"


def row(**kw):
    base = {"analysis": "a", "claim": "c", "outcome": "hip", "target": "T", "published_estimate": "0.85",
            "published_ci_lower": "0.73", "published_ci_upper": "0.98", "published_method": "random effects",
            "reproduced_estimate": "", "reproduced_ci_lower": "", "reproduced_ci_upper": "", "method": "",
            "k_used": "0", "k_published": "8", "verdict": "not_reproducible", "reason": "no per-trial data readable",
            "modern_estimate": "", "modern_ci_lower": "", "modern_ci_upper": "", "modern_pi_lower": "",
            "modern_pi_upper": "", "likely_method": "", "source": "10.1000/x"}
    base.update(kw)
    return base


def test_index_escapes_every_text_from_the_data():
    html = index_page([row(target=EVIL, outcome=EVIL, reason=EVIL, published_method=EVIL, likely_method=EVIL)],
                      [{"name": "a", "title": EVIL, "claim": EVIL}])
    assert EVIL not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert html.count("<script>") == 1  # the page's own filter script


@pytest.mark.parametrize(("source", "href"), [
    ("10.1007/s00198-015-3386-5", "https://doi.org/10.1007/s00198-015-3386-5"),
    ("PMID:12110423", "https://pubmed.ncbi.nlm.nih.gov/12110423/"),
    ("PMID: 12110423", "https://pubmed.ncbi.nlm.nih.gov/12110423/"),
    ("PMC5820727", "https://pmc.ncbi.nlm.nih.gov/articles/PMC5820727/"),
    ("a book", None), ("PMID:12x", None), (None, None),
])
def test_source_links(source, href):
    assert source_href(source) == href


@pytest.mark.parametrize(("url", "ok"), [("https://example.org/a", True), ("http://x.org", True),
                                         ("javascript:alert(1)", False), (" JAVASCRIPT:x", False),
                                         ("data:text/html,<b>", False), ("", False), (None, False)])
def test_only_web_addresses_become_links(url, ok):
    assert (safe_url(url) is not None) is ok


def test_analysis_page_escapes_yaml_and_csv_text_and_markdown(tmp_path):
    """A copy of a real analysis retitled with HTML, a quote and a Markdown report carrying HTML."""
    ext, res = tmp_path / "extracted", tmp_path / "results"
    ext.mkdir()
    spec = yaml.safe_load((ROOT / "data/extracted/vitk2_fractures.yaml").read_text(encoding="utf-8"))
    spec.update(analysis="copy", title=EVIL, claim=EVIL)
    spec["targets"][0]["quote"] = EVIL
    spec["targets"][0]["source_url"] = "javascript:alert(2)"
    (ext / "copy.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    shutil.copy2(ROOT / "data/extracted/vitk2_fractures.csv", ext / "copy.csv")
    (res / "copy" / "hip_fracture").mkdir(parents=True)
    (res / "copy" / "hip_fracture" / "heterogeneity.md").write_text(f"# Report {EVIL}\n\n| a |\n|---|\n| {EVIL} |\n")
    html = analysis_page(res, ext, "copy", [row(analysis="copy", target=EVIL)])
    assert EVIL not in html
    assert "<script" not in html
    assert 'href="javascript:' not in html and "javascript:alert(2)" in html  # printed, not linked
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html  # the Markdown table cell


def test_pages_are_byte_identical_across_runs(tmp_path):
    ext = ROOT / "data" / "extracted"
    names = sorted(p.stem for p in ext.glob("*.yaml"))
    outs = []
    for run in ("a", "b"):
        res = shutil.copytree(ROOT / "results", tmp_path / run)
        outs.append([p.read_bytes() for p in write_site(res, ext, names)])
    assert outs[0] == outs[1]
    assert len(outs[0]) == 1 + len(names)
