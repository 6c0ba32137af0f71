"""`plot`: the Compare chart written to a file, read back."""

import shutil
import struct
import xml.etree.ElementTree as ET

import pytest

from bench_runner.cli import main


def needs_chromium(test):
    """Images are drawn in the system's Chromium: make test-all, with the browser tests."""
    skip = pytest.mark.skipif(not shutil.which("chromium"), reason="images need Chromium (apt-get install chromium)")
    return pytest.mark.browser(skip(test))


@needs_chromium
def test_plot_writes_an_svg_naming_every_trace_and_a_png_of_the_size_asked(seeded_db, tmp_path, capsys):
    svg, png = tmp_path / "chart.svg", tmp_path / "deep" / "chart.png"
    assert main(["plot", "--benchmark", "token_mixing", "--out", str(svg), "--db", seeded_db]) == 0
    assert "2 methods" in capsys.readouterr().out
    text = svg.read_text()
    assert ET.fromstring(text).tag.endswith("svg")
    assert "poly_sa · eager" in text and "softmax_attention · eager" in text and "token_mixing: runtime" in text
    assert main(["plot", "--benchmark", "token_mixing", "--method", "poly_sa", "--metric", "peak_mem_bytes",
                 "--out", str(png), "--width", "640", "--height", "400", "--db", seeded_db]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1280, 800)


def test_plot_writes_an_interactive_page_without_a_browser(seeded_db, tmp_path):
    page = tmp_path / "chart.html"
    assert main(["plot", "--benchmark", "token_mixing", "--out", str(page), "--db", seeded_db]) == 0
    html = page.read_text()
    assert "plotly" in html.lower() and "poly_sa" in html and "softmax_attention" in html


@pytest.mark.parametrize("args, words", [
    (["--benchmark", "token_mixing", "--out", "chart.gif"], "must end in .svg, .png, .html"),
    (["--benchmark", "nope", "--out", "chart.svg"], "no successful results of 'nope'"),
    (["--benchmark", "token_mixing", "--out", "chart.svg", "--dtype", "float16"], "no results with dtype 'float16'"),
    (["--benchmark", "token_mixing", "--out", "chart.svg", "--method", "ghost"], "no results for method ghost"),
    (["--benchmark", "token_mixing", "--out", "chart.svg", "--x", "Q"], "--x 'Q' is not a size parameter"),
])
def test_plot_bad_input_is_one_line_and_exit_2_and_writes_nothing(seeded_db, tmp_path, capsys, monkeypatch, args,
                                                                   words):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["plot", *args, "--db", seeded_db]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("first, calls, drawn", [
    ("ReferenceError: kaleido_scopes is not defined", 2, True),  # its page not loaded yet: tried again
    ("BrowserFailedError: the browser did not start", 1, False),  # anything else: one line at once
])
def test_a_chart_image_is_tried_again_only_when_kaleidos_page_was_not_ready(monkeypatch, first, calls, drawn):
    from app import charts

    tried = []

    class Figure:
        def to_image(self, **kwargs):
            tried.append(kwargs)
            if len(tried) == 1:
                raise RuntimeError(first)
            return b"png"

    monkeypatch.setenv("BROWSER_PATH", "/usr/bin/true")
    monkeypatch.setattr(charts.time, "sleep", lambda s: None)
    if drawn:
        assert charts.image(Figure(), "png") == b"png"
    else:
        with pytest.raises(charts.ChartImageError, match="did not start"):
            charts.image(Figure(), "png")
    assert len(tried) == calls


def test_a_page_that_is_never_ready_ends_in_one_line_after_a_few_tries(monkeypatch):
    from app import charts

    tried, slept = [], []

    class Figure:
        def to_image(self, **kwargs):
            tried.append(kwargs)
            raise RuntimeError("ReferenceError: kaleido_scopes is not defined")

    monkeypatch.setenv("BROWSER_PATH", "/usr/bin/true")
    monkeypatch.setattr(charts.time, "sleep", slept.append)
    with pytest.raises(charts.ChartImageError, match="could not draw the chart as PNG: RuntimeError: ReferenceError"):
        charts.image(Figure(), "png")
    assert len(tried) == charts.IMAGE_ATTEMPTS == 4 and slept == [0.5, 1.0, 1.5]


def test_plot_draws_each_cells_latest_plain_run_not_a_newer_ab_side(db_url, tmp_path, monkeypatch):
    """As the Compare page does: an `ab` session stored after the plain runs (0.7 ms a call where
    they took 1 ms) is its own; `--run` draws a side when asked."""
    from app import charts
    from tests.bench_runner.test_compare import _history_db, plant_session

    _history_db(db_url, (1.0, 1.0))
    base, _ = plant_session(db_url, scale=0.7)
    drawn = []
    draw = charts.scaling_chart
    monkeypatch.setattr(charts, "scaling_chart", lambda rows, *a, **k: drawn.append(rows) or draw(rows, *a, **k))
    for run in ([], ["--run", str(base)]):
        assert main(["plot", "--benchmark", "token_mixing", "--out", str(tmp_path / "c.html"), *run,
                     "--db", db_url]) == 0
    assert set(drawn[0]["run_id"]) == {2} and set(drawn[1]["run_id"]) == {base}
