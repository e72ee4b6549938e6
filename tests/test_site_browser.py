"""The reviewer's pages in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver (both given by path, so Selenium Manager never downloads a browser).

The pages are opened from disk (file://) as the pipeline wrote them: the index's rows equal
results/reproduction.csv, every image loads, every link to a file or an anchor resolves, the
console stays free of errors, the filters work, and HTML in a data file (an analysis titled
``<script>alert(1)</script>``) is shown as text. Screenshots go to a temporary folder, or to
$METAREPRO_SCREENSHOTS (``docs/`` holds the committed ones).

Without a browser the tests are skipped with a message that says so; with
METAREPRO_REQUIRE_BROWSER=1 (as .ci/run sets) they fail instead.
"""

import csv
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import ESCAPED_COPY, EVIL

CHROMIUM = os.environ.get("METAREPRO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("METAREPRO_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--window-size=1400,1300")


def _no_browser(why: str):
    msg = f"browser test skipped: {why} (install Debian's chromium and chromium-driver)"
    if os.environ.get("METAREPRO_REQUIRE_BROWSER") == "1":
        pytest.fail(msg.replace("skipped", "required but unavailable"))
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        _no_browser(f"selenium is not installed ({err})")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            _no_browser(f"{path} not found")
    profile = tempfile.mkdtemp(prefix="metarepro-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    except Exception as err:  # noqa: BLE001 - any failure to start means: no browser here
        shutil.rmtree(profile, ignore_errors=True)
        _no_browser(f"chromium could not be started ({type(err).__name__}: {str(err).splitlines()[0]})")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    target = os.environ.get("METAREPRO_SCREENSHOTS")
    d = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def open_page(driver, path: Path):
    driver.get(path.resolve().as_uri())
    driver.get_log("browser")  # nothing from earlier pages
    return driver


def page_errors(driver):
    """Console messages at level SEVERE (script errors, resources that failed to load)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def pages(results: Path) -> list[Path]:
    return [results / "index.html"] + sorted(results.glob("*/index.html"))


# ----------------------------------------------------------------------------- the pipeline's pages


def test_index_rows_equal_reproduction_csv(browser, pipeline_run, shots):
    results = pipeline_run / "results"
    with open(results / "reproduction.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    d = open_page(browser, results / "index.html")
    rows = d.execute_script("""
        return Array.from(document.querySelectorAll('#targets tr.target')).map(tr => ({
            analysis: tr.dataset.analysis, outcome: tr.dataset.outcome, target: tr.dataset.target,
            verdict: tr.dataset.verdict, badge: tr.querySelector('.badge').textContent,
            cells: Array.from(tr.cells).map(td => td.innerText), shown: !tr.hidden}));""")
    assert len(rows) == len(table)
    for shown, want in zip(rows, table):
        assert (shown["analysis"], shown["outcome"], shown["target"], shown["verdict"]) == \
            (want["analysis"], want["outcome"], want["target"], want["verdict"])
        assert shown["badge"] == want["verdict"] and shown["shown"]
        kp = want["k_published"]
        assert shown["cells"][4] == f"{want['k_used']} / {int(float(kp)) if kp else '?'}"
        if want["published_estimate"]:  # as printed
            assert float(shown["cells"][1].split()[0]) == float(want["published_estimate"])
        if want["reproduced_estimate"]:  # two decimals
            assert abs(float(shown["cells"][2].split()[0]) - float(want["reproduced_estimate"])) <= 0.005
    assert page_errors(d) == []


def test_filters(browser, pipeline_run, shots):
    from selenium.webdriver.support.ui import Select

    results = pipeline_run / "results"
    with open(results / "reproduction.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    d = open_page(browser, results / "index.html")

    def visible():
        return d.execute_script("return Array.from(document.querySelectorAll('#targets tr.target'))"
                                ".filter(tr => !tr.hidden).map(tr => [tr.dataset.analysis, tr.dataset.verdict]);")

    Select(d.find_element("id", "verdict")).select_by_value("partial")
    assert visible() == [[r["analysis"], "partial"] for r in table if r["verdict"] == "partial"]
    assert d.find_element("id", "shown").text == str(sum(r["verdict"] == "partial" for r in table))
    Select(d.find_element("id", "verdict")).select_by_value("")
    Select(d.find_element("id", "analysis")).select_by_value("vitk2_fractures")
    assert visible() == [[r["analysis"], r["verdict"]] for r in table if r["analysis"] == "vitk2_fractures"]
    Select(d.find_element("id", "analysis")).select_by_value("calcium_vitd_fractures")
    d.save_screenshot(str(shots / "index.png"))  # the README's: one analysis, every kind of verdict
    assert page_errors(d) == []


def test_every_image_loads_and_every_link_resolves(browser, pipeline_run):
    results = pipeline_run / "results"
    checked = 0
    for page in pages(results):
        d = open_page(browser, page)
        images = d.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);")
        for alt, complete, width in images:
            assert complete and width > 0, (page, alt)
        links = d.execute_script("return Array.from(document.querySelectorAll('a[href]'))"
                                 ".map(a => a.getAttribute('href'));")
        for href in links:
            if re.match(r"^https?://", href):
                continue  # sources on the web: not fetched (no network in tests)
            url = urlparse(href)
            assert url.scheme == "", (page, href)  # no javascript:, data: or file: links
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            assert target.is_file(), (page, href)
            if url.fragment:
                text = target.read_text(encoding="utf-8")
                assert f'id="{url.fragment}"' in text, (page, href)
            checked += 1
        assert page_errors(d) == [], page
    assert checked > 50


def test_forest_plot_with_the_published_diamond(browser, pipeline_run, shots):
    page = pipeline_run / "results" / "calcium_vitd_fractures" / "index.html"
    d = open_page(browser, page)
    fig = d.find_element("id", "forest-total_fracture")
    img = fig.find_element("tag name", "img")
    assert d.execute_script("return arguments[0].naturalWidth;", img) > 1000
    fig.screenshot(str(shots / "forest_published_diamond.png"))
    assert page_errors(d) == []


# ----------------------------------------------------------------------------- escaping


def test_html_in_data_files_is_shown_as_text(browser, escaped_run, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    results = escaped_run / "results"
    for page, own_scripts in ((results / "index.html", 1), (results / ESCAPED_COPY / "index.html", 0),
                              (results / "mini" / "index.html", 0)):
        d = open_page(browser, page)
        with pytest.raises(NoAlertPresentException):
            d.switch_to.alert.text  # noqa: B018 - an alert would mean the title ran as a script
        assert d.execute_script("return document.scripts.length;") == own_scripts, page
        assert EVIL in d.find_element("tag name", "body").text, page
        assert page_errors(d) == [], page
    d = open_page(browser, results / ESCAPED_COPY / "index.html")
    assert d.find_element("tag name", "h1").text == EVIL
    assert d.title == EVIL
    # a stored URL that is not http(s) is printed, never linked
    hrefs = d.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);")
    assert not [h for h in hrefs if h.startswith("javascript:")]
    assert "javascript:alert(2)" in d.find_element("tag name", "body").text
    d.save_screenshot(str(tmp_path / "escaped.png"))
    d = open_page(browser, results / "mini" / "index.html")
    assert page_errors(d) == []
