"""The served dashboard in a real browser: Playwright driving Debian's Chromium.

Outside CI the test skips when no Chromium is installed; under CI (CI=true)
.ci/run installs it, and a missing browser is a failure.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, SIZES, required_in_ci

pytestmark = pytest.mark.browser  # make test-all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but no Chromium: .ci/run should have installed Debian's chromium")
    pytest.skip("no Chromium installed (apt-get install chromium)", allow_module_level=True)
playwright = required_in_ci("playwright.sync_api", "Playwright is installed by make test-all")

SHOTS = Path(os.environ.get("HADAMARD_BENCH_SCREENSHOTS", "")) if os.environ.get("HADAMARD_BENCH_SCREENSHOTS") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(seeded_db, tmp_path):
    yield from _serve(seeded_db, tmp_path)


@pytest.fixture
def served_hostile(tmp_path):
    from tests.app.hostile import fill

    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    fill(url, f"sqlite:///{tmp_path / 'clean.db'}")
    yield from _serve(url, tmp_path)


def _serve(db_url, tmp_path):
    port = _free_port()
    env = {**os.environ, "HADAMARD_BENCH_DB": db_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", db_url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def page(tmp_path):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        yield context.new_page()
        browser.close()


# Streamlit marks its app element with the state of the page's script run ("initial" until the
# first run starts) and of its connection; a Plotly chart is drawn by the browser after the run
# that sent it, once its code has loaded (up to 2 s later on the first chart of a visit).
SETTLED = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    return app !== null && app.dataset.testScriptState === "notRunning"
        && app.dataset.testConnectionState === "CONNECTED"
        && [...document.querySelectorAll("[data-testid='stPlotlyChart']")].every(c => c.querySelector(".main-svg"));
}"""
# From now on, counts the runs of the page's script that start: a widget's change starts one a
# moment after the click, which waiting for SETTLED alone would find not yet begun. (Inside a
# form a choice starts none; a page's own timed fragments, as the Runs page's, start some too.)
# The observer is set once a page load; each choice only sets the count back to 0.
COUNT_RUNS = """() => {
    if (window.hbRuns === undefined) {
        const app = document.querySelector("[data-testid='stApp']");
        new MutationObserver(() => { if (app.dataset.testScriptState === "running") window.hbRuns += 1; })
            .observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
    }
    window.hbRuns = 0;
}"""


def _settled(page) -> None:
    """Until the page's script has run to its end, every chart it sent is drawn, and that still
    holds a moment later (a page may start another run of itself, as the Runs page does to poll).
    It replaced a fixed pause of 1.5 s after each step, which on a loaded machine could be too
    short and on a quiet one spent 40 s of this module's 100 waiting."""
    for _ in range(100):
        page.wait_for_function(SETTLED, timeout=60_000)
        page.wait_for_timeout(300)
        if page.evaluate(SETTLED):
            return
    raise AssertionError("the page never settled: " + page.inner_text("body")[:2000])


def _open(page, url: str):
    page.goto(url)
    _settled(page)
    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]


def _shot(page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    if SHOTS:
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`."""
    box = page.locator("[data-testid='stSelectbox']").filter(has_text=label).first
    box.click()
    page.evaluate(COUNT_RUNS)
    page.get_by_role("option", name=option, exact=True).first.click()
    try:  # the run the choice started, which the server begins within a fraction of a second
        page.wait_for_function("() => window.hbRuns > 0", timeout=3_000)
    except playwright.TimeoutError:
        pass  # a choice inside a form: it starts no run until the form is submitted
    _settled(page)


def _start_a_smoke_run(page, base: str, db_url: str, tmp_path) -> None:
    """Runs: start a smoke run of one method from the form and watch it finish."""
    _open(page, f"{base}/runs")
    _choose(page, "Suite", "smoke")
    for label, value in (("Benchmarks", "token_mixing"), ("Methods", "poly_sa"), ("Backends", "eager")):
        box = page.locator("[data-testid='stMultiSelect']").filter(has_text=label).first
        box.locator("input").fill(value)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=started the smoke suite", timeout=60_000)
    # The page polls the database every two seconds and says when the run has finished.
    page.wait_for_selector("text=Latest: run 2 finished, 1 ok and 0 failed of 1 cell", timeout=180_000)
    _shot(page, "runs-after", tmp_path)
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import queries

    with sessionmaker(results_db.open_engine(db_url))() as session:
        runs = queries.runs_frame(session)
    assert (runs.iloc[0]["status"], runs.iloc[0]["cells_ok"]) == ("finished", 1)


def test_every_page_compare_download_and_a_run_started_from_the_browser(served, page, tmp_path):
    base, db_url = served
    for path in ("", "compare", "scaling", "roofline", "runs", "diff", "history"):
        _open(page, f"{base}/{path}")
        _shot(page, path or "overview", tmp_path)

    # Compare: the whole chart above the fold on a 1400×900 screen.
    page.set_viewport_size({"width": 1400, "height": 900})
    _open(page, f"{base}/compare")
    chart = page.locator(".js-plotly-plot").first.bounding_box()
    assert chart["y"] + chart["height"] <= 900, chart
    page.set_viewport_size({"width": 1400, "height": 1000})

    # Compare: switching the metric redraws the chart with the new axis.
    _open(page, f"{base}/compare")
    assert page.locator(".plotly .ytitle").first.text_content().startswith("Runtime")
    _choose(page, "Metric", "Peak memory")
    playwright.expect(page.locator(".plotly .ytitle").first).to_have_text(re.compile("^Peak memory"))
    assert "metric=peak_mem_bytes" in page.url  # the selection is shareable as a link

    # The CSV download holds what the page shows.
    with page.expect_download() as download:
        page.locator("[data-testid='stDownloadButton'] button").filter(has_text="CSV").first.click()
    shown = pd.read_csv(download.value.path())
    assert len(shown) == 2 * len(SIZES)
    assert set(shown["method"]) == {"poly_sa", "softmax_attention"}

    # The chart as an SVG, drawn on the server when the button is clicked.
    try:
        with page.expect_download(timeout=60_000) as download:
            page.locator("[data-testid='stDownloadButton'] button").filter(has_text="Chart (SVG)").first.click()
    except playwright.TimeoutError:
        _shot(page, "svg-timeout", tmp_path)
        raise AssertionError("no SVG download; the server said: " + (tmp_path / "server.log").read_text()[-3000:])
    svg = Path(download.value.path()).read_text()
    assert svg.lstrip().startswith("<svg") and "poly_sa · eager" in svg

    _start_a_smoke_run(page, base, db_url, tmp_path)

    # History: the run just made, on this machine's fingerprint; its chart, and the choice kept in the link.
    _open(page, f"{base}/history")
    # The page first brings the new run's history up to date: on a busy machine that outlasts
    # _open's pause, and the chart comes after it.
    page.wait_for_selector(".plotly", timeout=60_000)
    assert page.get_by_text("One run so far").count() == 1
    assert "machine=" in page.url and "benchmark=token_mixing" in page.url
    _shot(page, "history", tmp_path)


def test_hostile_imported_text_makes_no_request_link_or_image(served_hostile, page, tmp_path):
    from tests.app.hostile import HOST

    base, _ = served_hostile
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    for path in ("", "compare", "scaling", "roofline", "runs", "diff", "history", "claims"):
        _open(page, f"{base}/{path}")
        page.wait_for_selector("h1", timeout=60_000)  # the page's own content, not only the frame
        page.wait_for_load_state("networkidle")  # any request the page's content made has been sent
        made = page.locator(f"img[src*='{HOST}'], a[href*='{HOST}'], image[href*='{HOST}']")
        assert made.count() == 0, (path, [made.nth(i).evaluate(
            "e => { let p = e; while (p && !(p.dataset && p.dataset.testid)) p = p.parentElement; "
            "return (p ? p.dataset.testid + ' ' + p.outerHTML.slice(0, 600) : '?'); }") for i in range(made.count())])
        assert page.locator("script:has-text('alert(1)')").count() == 0, path
        if path == "":  # the hostile strings are on the page, as text
            page.wait_for_selector("text=stored results", timeout=60_000)
            _shot(page, "hostile-overview", tmp_path)
            assert HOST in page.inner_text("body")
    leaving = [u for u in requested if not u.startswith(base) and not u.startswith(("data:", "blob:"))]
    assert leaving == [], leaving
