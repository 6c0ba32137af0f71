"""Every page rendered headless with AppTest: with data, empty, and only failed cells."""

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import shaping
from hadamard_bench import columns
from tests.conftest import SIZES, seed, synthetic_time, unescaped

PAGES = ["app_pages/overview.py", "app_pages/compare.py", "app_pages/scaling.py", "app_pages/roofline.py",
         "app_pages/runs.py", "app_pages/diff.py", "app_pages/history.py"]


def render(url, monkeypatch, page=None) -> AppTest:
    """The dashboard on `url`, opened at `page` (by default the default page, Overview). Switched
    to before the first run, as a link to the page opens it: a run of Overview first made every
    render of another page take about twice as long."""
    monkeypatch.setenv("HADAMARD_BENCH_DB", url)
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60)
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_data(seeded_db, monkeypatch, page):
    render(seeded_db, monkeypatch, page)


EMPTY_STATES = {"app_pages/overview.py": "No results", "app_pages/compare.py": "No successful results",
                "app_pages/scaling.py": "No successful results", "app_pages/roofline.py": "No successful results",
                "app_pages/runs.py": "No runs yet", "app_pages/diff.py": "this database has 0",
                "app_pages/history.py": "No successful results"}


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_database_shows_an_empty_state(db_url, monkeypatch, page):
    at = render(db_url, monkeypatch, page)
    assert any(EMPTY_STATES[page] in i.value for i in at.info), [i.value for i in at.info]


@pytest.mark.parametrize("page", PAGES)
def test_a_database_of_failed_cells_renders_every_page(db_url, monkeypatch, page):
    seed(db_url, statuses="error")
    at = render(db_url, monkeypatch, page)
    if page in ("app_pages/compare.py", "app_pages/scaling.py", "app_pages/roofline.py", "app_pages/history.py"):
        assert any("No successful results" in i.value for i in at.info)


def test_overview_headline_reports_the_planted_speedup(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch)
    text = " ".join(m.value for m in at.markdown)
    largest = max(SIZES)
    expected = synthetic_time("softmax_attention", largest) / synthetic_time("poly_sa", largest)
    # The stored names are escaped for Markdown (app/text.py): poly\_sa.
    assert re.search(rf"\*\*poly\\_sa\*\* is {expected:.2f}× \[[0-9.]+, [0-9.]+\] faster than "
                     rf"\*\*softmax\\_attention\*\*",
                     text), text


def test_scaling_judges_the_planted_crossover_size_by_size(seeded_db, monkeypatch):
    # conftest plants poly_sa ∝ N against softmax_attention ∝ N²/128: equal at N=128 (no change
    # there), slower below, faster above; each cell has three rounds ±1% apart.
    at = render(seeded_db, monkeypatch, "app_pages/scaling.py")
    cross = at.dataframe[-1].value.iloc[0]
    largest = max(SIZES)
    expected = synthetic_time("softmax_attention", largest) / synthetic_time("poly_sa", largest)
    assert (cross["method"], cross["baseline"], cross["crossover"]) == ("poly_sa", "softmax_attention", "N ≈ 128")
    assert cross["verdict"] == "faster" and cross["speedup"] == pytest.approx(expected, rel=0.01)
    assert cross["speedup_low"] < expected < cross["speedup_high"]


def _figure(at, index=0):
    """The page's `index`-th chart as plain lists (Plotly serialises arrays as base64 typed arrays)."""
    import plotly.io

    fig = plotly.io.from_json(at.get("plotly_chart")[index].proto.spec)
    return {"data": [{"name": t.name, "mode": t.mode, "x": _list(t.x), "y": _list(t.y), "line": {"dash": t.line.dash}}
                     for t in fig.data],
            "layout": {"xaxis": {"type": fig.layout.xaxis.type},
                       "shapes": [{"line": {"dash": s.line.dash, "color": s.line.color}} for s in fig.layout.shapes]}}


def _list(values):
    if isinstance(values, dict) and "bdata" in values:  # {"dtype": "i2", "bdata": base64}
        import base64

        import numpy as np

        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return [v.item() if hasattr(v, "item") else v for v in values]


def test_compare_chart_has_one_line_per_method_with_the_baseline_dashed(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    traces = {t["name"]: t for t in _figure(at)["data"]}
    assert set(traces) == {"poly_sa · eager", "softmax_attention · eager"}
    assert traces["softmax_attention · eager"]["line"]["dash"] == "dash"
    assert traces["poly_sa · eager"]["line"]["dash"] == "solid"
    assert traces["poly_sa · eager"]["x"] == SIZES
    assert traces["poly_sa · eager"]["y"] == pytest.approx([synthetic_time("poly_sa", n) for n in SIZES])
    assert _figure(at)["layout"]["xaxis"]["type"] == "log"


def test_compare_follows_the_chosen_methods_and_metric(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    methods = next(m for m in at.multiselect if m.label == "Methods")
    methods.set_value(["poly_sa"]).run()
    assert [t["name"] for t in _figure(at)["data"]] == ["poly_sa · eager"]
    metric = next(s for s in at.selectbox if s.label == "Metric")
    metric.set_value("peak_mem_bytes").run()
    assert _figure(at)["data"][0]["y"] == pytest.approx([1000 * n for n in SIZES])


def test_compare_speedup_table_and_download(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    speedup_table = at.dataframe[0].value
    assert speedup_table.loc[512, ("poly_sa", "eager")].startswith("4.00× [")  # 512²/128 ÷ 512
    assert speedup_table.loc[64, ("poly_sa", "eager")].startswith("0.50× [")
    shown = at.dataframe[1].value
    assert len(shown) == 2 * len(SIZES)
    # Its headers say what each column holds, in docs/columns.md's words.
    import json

    helped = {c: config.get("help") for c, config in json.loads(at.dataframe[1].proto.columns).items()}
    assert helped["time_iqr_s"] == columns.COLUMNS["time_iqr_s"] and helped.keys() - {"_index"} == set(shown.columns)


def test_scaling_recovers_the_planted_exponents(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/scaling.py")
    runtime = at.dataframe[0].value.set_index("method")
    assert runtime.loc["poly_sa", "measured"] == pytest.approx(1.0, abs=0.01)
    assert runtime.loc["softmax_attention", "measured"] == pytest.approx(2.0, abs=0.01)
    assert not runtime["flag"].any()  # both match the catalogue's exponents
    crossing = at.dataframe[2].value.iloc[0]
    assert crossing["crossover"] == "N ≈ 128"


def test_roofline_places_every_cell_with_flops(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/roofline.py")
    import plotly.io

    fig = plotly.io.from_json(at.get("plotly_chart")[0].proto.spec)
    points = sum(len(_list(t.x)) for t in fig.data if t.mode == "markers")
    assert points == 2 * len(SIZES)
    assert all(x == pytest.approx(0.25) for t in fig.data if t.mode == "markers" for x in _list(t.x))


def test_diff_flags_a_planted_regression(seeded_db, monkeypatch):
    seed(seeded_db, slow_method="poly_sa", slow_size=512)  # a second run, one cell three times slower
    at = render(seeded_db, monkeypatch, "app_pages/diff.py")
    values = {m.label: m.value for m in at.metric}
    assert values == {"Regression": "1", "Improvement": "0", "No change": str(2 * len(SIZES) - 1),
                      "Inconclusive": "0"}
    top = at.dataframe[0].value.iloc[0]
    assert (top["method"], top["size"], top["verdict"]) == ("poly_sa", "B=1 N=512 C=64 H=4", "regression")
    assert top["ci_low"] > 2.5 and top["ci_high"] < 3.5


def test_the_compare_selection_is_read_from_and_written_to_the_url(seeded_db, monkeypatch):
    monkeypatch.setenv("HADAMARD_BENCH_DB", seeded_db)
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60)
    at.switch_page("app_pages/compare.py")
    at.query_params["metric"] = "peak_mem_bytes"
    at.run()
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Metric").value == "peak_mem_bytes"
    assert at.query_params["benchmark"] == ["token_mixing"] or at.query_params["benchmark"] == "token_mixing"


def test_compare_offers_every_table_format_and_the_chart(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["CSV", "Parquet", "JSON", "Markdown", "LaTeX", "Chart (HTML)", "Chart (PNG)", "Chart (SVG)"]


def test_compare_charts_speedups_and_reads_one_run(seeded_db, monkeypatch):
    seed(seeded_db, slow_method="poly_sa", slow_size=512)  # run 2: one cell three times slower
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    next(s for s in at.selectbox if s.label == "Metric").set_value("speedup").run()
    traces = {t["name"]: t for t in _figure(at)["data"]}
    assert traces["poly_sa · eager"]["y"] == pytest.approx([0.5, 1.0, 2.0, 4.0 / 3])  # latest: run 2, slowed at 512
    next(s for s in at.selectbox if s.label == "Results from").set_value(1).run()
    traces = {t["name"]: t for t in _figure(at)["data"]}
    assert traces["poly_sa · eager"]["y"] == pytest.approx([0.5, 1.0, 2.0, 4.0])
    assert at.query_params["run"] in ("1", ["1"])


@pytest.mark.parametrize("page", ["app_pages/scaling.py", "app_pages/roofline.py", "app_pages/runs.py",
                                  "app_pages/diff.py"])
def test_what_every_page_shows_can_be_downloaded(seeded_db, monkeypatch, page):
    seed(seeded_db)  # a second run, so Diff has two to compare
    at = render(seeded_db, monkeypatch, page)
    labels = [b.label for b in at.get("download_button")]
    assert {"CSV", "Parquet", "JSON", "Markdown", "LaTeX"} <= set(labels)


def _diff_of_planted_runs(db_url, monkeypatch, before: int, after: int) -> AppTest:
    """The Diff page on test_compare's planted runs, `before` against `after`."""
    from tests.bench_runner.test_compare import plant_runs

    plant_runs(db_url)
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(before).run()
    next(s for s in at.selectbox if s.label == "After").set_value(after).run()
    assert not at.exception
    return at


def test_diff_counts_each_verdict_and_explains_inconclusive(db_url, monkeypatch):
    from tests.bench_runner.test_compare import PLANTED

    at = _diff_of_planted_runs(db_url, monkeypatch, 1, 2)
    values = {m.label: m.value for m in at.metric}
    assert values == {"Regression": "1", "Improvement": "1", "No change": "1", "Inconclusive": "1"}
    why = next(c.value for c in at.caption if c.value.startswith("**Inconclusive**"))
    assert "1 of 4 cells are inconclusive" in why and "lies within ±5%" in why and "a median ±" in why
    shown = at.dataframe[0].value.set_index("size")["verdict"].to_dict()
    assert shown == {f"B=1 N={n} C=64 H=4": v for n, (*_, v) in PLANTED.items()}


def test_diff_names_the_cells_that_failed_after_being_ok_before(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_broken

    plant_broken(db_url)
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(4).run()
    assert not at.exception
    said = [e.value for e in at.error]
    assert len(said) == 1 and "1 cell \\`ok\\` in run 1 failed in run 4" in said[0] and "mismatch" in said[0]
    assert "N\\=64" in said[0] and "N\\=128" not in said[0]  # skipped there: nothing broke
    assert len(at.dataframe[0].value) == 2  # the cells `ok` on both sides
    # A run whose every cell crashed can be chosen, and says so.
    next(s for s in at.selectbox if s.label == "After").set_value(5).run()
    assert not at.exception and "4 cells" in at.error[0].value
    assert any(i.value.startswith("No cell has successful results on both sides") for i in at.info)
    # The other way round nothing broke: the cell was fixed.
    next(s for s in at.selectbox if s.label == "Before").set_value(4).run()
    next(s for s in at.selectbox if s.label == "After").set_value(1).run()
    assert not at.exception and not at.error
    assert any(i.value.startswith("1 cell that failed in run 4 is \\`ok\\` in run 1") for i in at.info)


def test_diff_names_a_cell_that_failed_in_one_round_and_still_compares_it(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_flaky

    clean, flaky = plant_flaky(db_url, (False, True))
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(clean).run()
    next(s for s in at.selectbox if s.label == "After").set_value(flaky).run()
    assert not at.exception and len(at.error) == 1
    assert f"failed in some rounds of run {flaky}" in at.error[0].value and "1 round failed" in at.error[0].value
    assert len(at.dataframe[0].value) == 4  # its other rounds still time it


def test_diff_names_a_cell_that_failed_after_with_nothing_before_it(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_new_failures

    plant_new_failures(db_url)
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(4).run()
    assert not at.exception and len(at.error) == 1
    said = at.error[0].value.replace("\\", "")
    assert said.startswith("1 cell with no `ok` or failed result in run 1 failed in run 4") and "sdpa" in said
    assert len(at.dataframe[0].value) == 4  # the cells both runs have are compared as ever


def test_diff_names_a_cell_ok_on_one_side_only(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_one_sided

    plant_one_sided(db_url)
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(4).run()
    assert not at.exception and not at.error
    said = [i.value.replace("\\", "") for i in at.info if "failed result" in i.value.replace("\\", "")]
    assert said == ["1 cell `ok` in run 4 has no `ok` or failed result in run 1, so no ratio: "
                    "token_mixing/sdpa/eager cpu float32 forward B=1 N=64 C=64 H=4."]
    assert len(at.dataframe[0].value) == 4  # the cells both runs have are compared as ever


def test_the_runs_page_says_how_many_of_the_latest_runs_ok_cells_failed_in_some_rounds(db_url, tmp_path, monkeypatch):
    from tests.bench_runner.test_compare import plant_flaky

    def caption(url):
        at = render(url, monkeypatch, "app_pages/runs.py")
        return next(c.value for c in at.caption if c.value.startswith("Latest: run"))

    # plant_flaky's runs hold 4 cells and say 4 measurements of 3 rounds, hence "of 1 cell".
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    plant_flaky(clean, (True, False))  # the run before the latest is the flaky one
    assert caption(clean) == "Latest: run 5 finished, 4 ok and 0 failed of 1 cell."
    plant_flaky(db_url, (False, True))
    assert caption(db_url) == "Latest: run 5 finished, 4 ok (1 of them failed in some rounds) and 0 failed of 1 cell."


def test_diff_of_a_run_with_itself_asks_for_two_different_runs(db_url, monkeypatch):
    at = _diff_of_planted_runs(db_url, monkeypatch, 2, 2)
    assert any("Before and After are the same run" in i.value for i in at.info)
    assert not at.metric and not at.dataframe


def test_diff_of_machines_says_when_a_label_is_worn_by_other_hardware(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_bigger_testhost, plant_runs

    plant_bigger_testhost(plant_runs(db_url))
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    at.radio[0].set_value("machines").run()
    next(s for s in at.selectbox if s.label == "Before").set_value("otherhost").run()
    next(s for s in at.selectbox if s.label == "After").set_value("testhost").run()
    assert not at.exception
    assert any("Machines of different hardware are labelled testhost" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == 2  # only the new testhost's two cells


def test_diff_of_machines_names_the_cells_whose_newest_measurement_failed(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_broken

    plant_broken(db_url)  # testhost's newest run crashed in every cell
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    at.radio[0].set_value("machines").run()
    next(s for s in at.selectbox if s.label == "Before").set_value("otherhost").run()
    next(s for s in at.selectbox if s.label == "After").set_value("testhost").run()
    assert not at.exception and len(at.error) == 1
    assert "4 cells \\`ok\\` in machine otherhost failed in machine testhost" in at.error[0].value
    assert any(i.value.startswith("No cell has successful results on both sides") for i in at.info)


def test_diff_holds_a_change_the_machine_itself_moved_as_far_as(db_url, monkeypatch):
    from tests.bench_runner.test_compare import _plant_rounds, plant_runs

    plant_runs(db_url)
    _plant_rounds(db_url, {1: [0, 0, 0], 2: [0, 0, 0]}, copy_s={1: 5e-4, 2: 7.5e-4})  # the copy 1.5× slower
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(2).run()
    assert not at.exception
    held = "1 cell's change held inconclusive: its interval does not clear the machine's own move"
    assert any("cpu copy 1.500×" in c.value and held in c.value for c in at.caption)
    shown = at.dataframe[0].value.set_index("size")
    assert shown.loc["B=1 N=64 C=64 H=4", "verdict"] == "inconclusive" and shown.loc["B=1 N=64 C=64 H=4", "machine_moved"]
    assert shown.loc["B=1 N=128 C=64 H=4", "verdict"] == "improvement"


def test_diff_holds_nothing_for_controls_timed_on_other_threads_and_says_so(db_url, monkeypatch):
    from tests.bench_runner.test_compare import _plant_rounds, _set_provenance, plant_runs

    plant_runs(db_url)
    _plant_rounds(db_url, {1: [0, 0, 0], 2: [0, 0, 0]}, copy_s={1: 5e-4, 2: 7.5e-4})
    _set_provenance(db_url, run1={"threads": 2}, run2={"threads": 1})  # run 2 timed its controls on one thread
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(2).run()
    assert not at.exception
    assert any(c.value.startswith("The drift controls ran under different settings on the two sides (threads 2 "
                                  "against 1)") for c in at.caption)
    assert not any("held inconclusive" in c.value for c in at.caption)
    assert at.dataframe[0].value.set_index("size").loc["B=1 N=64 C=64 H=4", "verdict"] == "regression"


def test_diff_warns_when_a_run_was_timed_in_a_spell_it_could_not_wait_out(db_url, monkeypatch):
    from tests.bench_runner.test_compare import _plant_rounds, plant_runs

    plant_runs(db_url)
    _plant_rounds(db_url, {1: [9, 8, 5], 2: [0, 0, 0]})
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(2).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Cell-rounds timed while the cores were slow to work together (unsettled): run 1 22 of "
                            "30, run 2 0 of 30") for w in warnings), warnings
    # A spell slows the before side: the improvement it could have faked is held, the regression stands.
    shown = at.dataframe[0].value.set_index("size")
    assert shown.loc["B=1 N=128 C=64 H=4", "verdict"] == "inconclusive"
    assert shown.loc["B=1 N=128 C=64 H=4", "unsettled"] == "before: run 1"
    assert shown.loc["B=1 N=64 C=64 H=4", "verdict"] == "regression"
    next(s for s in at.selectbox if s.label == "Before").set_value(3).run()  # run 3 has no rounds, run 2 settled
    assert not any("unsettled" in w.value for w in at.warning)


def test_diff_warns_when_a_run_was_timed_on_a_busy_machine(db_url, monkeypatch):
    from tests.bench_runner.test_compare import _plant_rounds, plant_runs

    plant_runs(db_url)
    _plant_rounds(db_url, {1: [0, 0, 0], 2: [0, 0, 0]}, other_share={1: 0.3, 2: 0.01})
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(2).run()
    assert not at.exception
    assert any(w.value.startswith("Rounds timed while other processes or the hypervisor took a large share of the "
                                  "CPUs: run 1 3 of 3, up to 30%;") for w in at.warning), [w.value for w in at.warning]
    next(s for s in at.selectbox if s.label == "Before").set_value(3).run()  # run 3 has no rounds, run 2 was quiet
    assert not any("hypervisor" in w.value for w in at.warning)


def test_compare_shows_each_speedup_with_its_interval(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    table = at.dataframe[0].value
    cells = [str(v) for v in table.to_numpy().ravel()]
    assert any(re.fullmatch(r"4\.00× \[3\.\d\d, 4\.\d\d\]", c) for c in cells), cells  # N=512: 4× faster
    assert not any(c.endswith("?") for c in cells)  # the planted rounds agree: nothing inconclusive


def test_compare_names_a_paired_speedup_whose_rounds_read_different_speedups(db_url, monkeypatch):
    """One run whose two methods took turns, cycle by cycle: at N=128, where the two cost the same,
    the Hadamard method ran 1.5x slower in its middle round alone, so its rounds read speed-ups of
    about 0.67 and 1.0, its speed-up is inconclusive, and the page names it below the table."""
    import numpy as np
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import store
    from tests.conftest import BENCHMARKS, FACTS, METHODS, planted_cell

    rng = np.random.default_rng(2)
    with sessionmaker(results_db.open_engine(db_url))() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        run = store.start_run(session, store.get_or_create_machine(session, FACTS, "testhost"), "quick",
                              {"suite": "quick"}, cells_total=2 * len(SIZES))
        rounds, cycles = [r for r in range(3) for _ in range(8)], [c for _ in range(3) for c in range(8)]
        for n in SIZES:
            speed = 1 + 0.2 * rng.uniform(-1, 1, size=24)  # the machine, shared by both in each cycle
            for method in ("poly_sa", "softmax_attention"):
                samples = synthetic_time(method, n) * speed * rng.normal(1, 0.005, size=24)
                if (method, n) == ("poly_sa", 128):
                    samples[8:16] *= 1.5
                store.record_result(session, run.id, planted_cell(n, method), "ok", samples=list(samples),
                                    sample_rounds=rounds, sample_cycles=cycles,
                                    metrics={"time_median_s": float(np.median(samples))})
        store.finish_run(session, run.id)
    at = render(db_url, monkeypatch, "app_pages/compare.py")
    cells = [str(v) for v in at.dataframe[0].value.to_numpy().ravel()]
    assert sum(c.endswith("?") for c in cells) == 1, cells
    said = next(c.value for c in at.caption if "took rounds that read different speed-ups" in c.value)
    assert said.startswith("1 of the inconclusive speed-ups took rounds")
    assert re.search(r"B=1 N=128 C=64 H=4: 0\.6[67] to 1\.0\d", said), said


def test_history_of_a_single_run_says_more_are_needed(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/history.py")
    assert any("One run so far" in c.value for c in at.caption)
    assert any("Two runs on this machine" in i.value for i in at.info)
    assert _figure(at)["layout"]["shapes"] == []  # no change point drawn


def _history_page(db_url, monkeypatch, **params):
    from tests.bench_runner.test_compare import _history_db

    _history_db(db_url, (1.0, 1.01, 0.99, 1.0, 1.6, 1.62))  # N=256 1.6× slower from run 5
    monkeypatch.setenv("HADAMARD_BENCH_DB", db_url)
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60)
    at.switch_page("app_pages/history.py")
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_history_draws_the_change_point_and_lists_what_it_is(db_url, monkeypatch):
    at = _history_page(db_url, monkeypatch, size="B=1 N=256 C=64 H=4")
    assert next(s for s in at.selectbox if s.label == "Size").value == "B=1 N=256 C=64 H=4"
    figure = _figure(at)
    medians = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert len(medians) == 1 and len(medians[0]["y"]) == 6
    assert figure["layout"]["shapes"] == [{"line": {"dash": "dash", "color": "#d62728"}}]  # one, unexplained
    changes = at.dataframe[0].value
    assert list(changes["run_id"]) == [5] and changes["step"].iloc[0] == pytest.approx(1.6 / 1.0, rel=0.02)
    assert at.query_params["size"] in ("B=1 N=256 C=64 H=4", ["B=1 N=256 C=64 H=4"])
    assert at.query_params["machine"]  # the fingerprint, so the link opens the same history
    geomean = _figure(at, 1)["data"]
    assert len(geomean) == 1 and geomean[0]["y"][-1] == pytest.approx(1.62 ** 0.25, rel=0.02)


def test_a_mark_added_on_the_history_page_is_stored_and_drawn(db_url, monkeypatch):
    at = _history_page(db_url, monkeypatch, size="B=1 N=256 C=64 H=4")
    next(s for s in at.selectbox if s.label == "Run").set_value(5)
    at.text_input[0].set_value("torch 2.14 upgrade")
    at.button[0].click().run()
    assert not at.exception, at.exception
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import history_queries

    with sessionmaker(results_db.open_engine(db_url))() as session:
        marks = history_queries.marks_frame(session)
    assert list(marks["run_id"]) == [5] and marks["kind"].iloc[0] == "expected"
    assert marks["cells"].iloc[0]["size"] == "B=1 N=256 C=64 H=4"
    # The change point is still drawn, now in the colour of an explained one.
    assert _figure(at)["layout"]["shapes"] == [{"line": {"dash": "dash", "color": "#2ca02c"}}]
    assert "marked expected: torch 2.14 upgrade" in " ".join(at.dataframe[0].value["annotation"])


def _png_size(png: bytes) -> tuple[int, int]:
    import struct

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])  # the IHDR chunk: width, height


@pytest.mark.browser
@pytest.mark.skipif(not __import__("shutil").which("chromium"), reason="chart images need Chromium (apt-get install chromium)")
def test_the_compare_chart_as_png_and_svg(seeded_db):
    import xml.etree.ElementTree as ET

    from sqlalchemy.orm import sessionmaker

    import results_db
    from app import charts
    from results_db import queries

    with sessionmaker(results_db.open_engine(seeded_db))() as session:
        rows = shaping.add_derived(shaping.latest_ok(queries.results_frame(session, benchmark="token_mixing")))
    figure = charts.scaling_chart(rows, "size_N", "time_median_s", x_title="N", y_title="Runtime (s)")
    assert _png_size(charts.image(figure, "png", width=800, height=500)) == (1600, 1000)  # twice the pixels
    svg = charts.image(figure, "svg", width=800, height=500).decode()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and root.get("width") == "800"
    assert "poly_sa · eager" in svg and "softmax_attention · eager" in svg  # the legend names the traces
    with pytest.raises(ValueError, match="png, svg"):
        charts.image(figure, "gif")


def test_roofline_with_every_backend_deselected_says_so(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/roofline.py")
    next(m for m in at.multiselect if m.label == "Backends").set_value([]).run()
    assert not at.exception, at.exception
    assert any("Choose at least one backend" in i.value for i in at.info)


def test_energy_is_offered_where_it_was_measured_with_its_efficiency(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/compare.py")
    offered = next(s for s in at.selectbox if s.label == "Metric").options
    assert "Runtime (median)" in offered and "Energy per call" not in offered  # none measured here
    frame = pd.DataFrame({"time_median_s": [1e-3], "flops": [2e9], "bytes": [1e6], "energy_j_per_call": [0.5],
                          "size": ["n=1"]})
    assert shaping.add_derived(frame)["gflops_per_j"].iloc[0] == pytest.approx(4.0)  # 2 GFLOP for half a joule


def test_a_read_only_dashboard_has_no_controls_that_write_and_writes_nothing(db_url, monkeypatch):
    from sqlalchemy import func, select
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import HistoryPoint, store
    from tests.bench_runner.test_compare import _history_db

    _history_db(db_url, (1.0, 1.0, 1.6, 1.6))  # points not computed yet: the page must not store them
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():  # an active run, which would offer Cancel
        store.set_status(session, 4, "running")
    monkeypatch.setenv("HADAMARD_BENCH_READONLY", "1")
    runs = render(db_url, monkeypatch, "app_pages/runs.py")
    labels = [b.label for b in runs.button] + [b.label for b in runs.get("form_submit_button")]
    assert "Cancel" not in labels and "Start" not in labels
    assert any("read-only" in i.value for i in runs.info)
    history = render(db_url, monkeypatch, "app_pages/history.py")
    assert "Add mark" not in [b.label for b in history.get("form_submit_button")]
    assert history.dataframe[0].value["run_id"].tolist() == [3]  # the change point, computed in memory
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(HistoryPoint)) == 0
    monkeypatch.delenv("HADAMARD_BENCH_READONLY")
    assert "Cancel" in [b.label for b in render(db_url, monkeypatch, "app_pages/runs.py").button]


def test_hostile_names_reach_the_charts_as_text_not_html():
    from app import charts

    hostile = "<a href='http://example.com/x'>poly_sa</a><img src=x>"
    frame = pd.DataFrame({"method": [hostile] * 2, "backend": ["eager"] * 2, "is_baseline": [False] * 2,
                          "size_N": [1, 2], "time_median_s": [1.0, 2.0], "size": ["N=1", "N=2"]})
    figure = charts.scaling_chart(frame, "size_N", "time_median_s", x_title="N", y_title="s")
    trace = figure.data[0]
    assert "<a " not in trace.name and "&lt;a href=" in trace.name and "&lt;img" in trace.name
    assert "<a " not in trace.hovertemplate
    rows = pd.DataFrame({"size": ["N=1"] * 2, "started_at": [1, 2], "commit_run": ["<b>x</b> · run 1", "c · run 2"],
                         "time_median_s": [1.0, 2.0], "ci_low": [0.9, 1.9], "ci_high": [1.1, 2.1], "run_id": [1, 2],
                         "machine": ["<script>m</script>"] * 2, "annotation": ["", "marked expected: <a href=x>y</a>"],
                         "change_point": [False, True]})
    history = charts.history_chart(rows, "commit_run", x_title="commit")
    line = [t for t in history.data if t.mode == "lines+markers"][0]
    assert list(line.x)[0] == "&lt;b&gt;x&lt;/b&gt; · run 1" and "<script>" not in str(line.customdata)
    assert history.layout.shapes[0].x0 == "c · run 2" and "<a " not in history.layout.annotations[0].hovertext


def test_the_history_charts_legend_lists_sizes_by_their_numbers():
    from app import charts

    sizes = ["N=512 C=64", "N=64 C=64", "N=128 C=64"]  # as a shuffled round stored them
    rows = pd.DataFrame({"size": sizes, "started_at": [1, 1, 1], "time_median_s": [4.0, 1.0, 2.0],
                         "ci_low": [3.9, 0.9, 1.9], "ci_high": [4.1, 1.1, 2.1], "run_id": [1] * 3,
                         "machine": ["m"] * 3, "annotation": [""] * 3, "change_point": [False] * 3})
    figure = charts.history_chart(rows, "started_at", x_title="run start")
    lines = [t for t in figure.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["N=64 C=64", "N=128 C=64", "N=512 C=64"]
    assert [list(t.y) for t in lines] == [[1.0], [2.0], [4.0]]


def test_diff_names_a_paired_cell_whose_rounds_read_different_ratios(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_session

    before, after = plant_session(db_url, apart=1.5)  # the inconclusive cell's after side 1.5x slower in round 2
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(before).run()
    next(s for s in at.selectbox if s.label == "After").set_value(after).run()
    assert not at.exception
    why = next(c.value for c in at.caption if c.value.startswith("**Inconclusive**"))
    assert "1 of the inconclusive cells took rounds that read different ratios" in why
    assert "B=1 N=512 C=64 H=4: 1.00 to 1.57" in why
    shown = at.dataframe[0].value.set_index("size")
    assert shown.loc["B=1 N=512 C=64 H=4", "rounds_apart"] > 2 > shown.loc["B=1 N=256 C=64 H=4", "rounds_apart"]


def test_diff_shows_an_ab_sessions_paired_verdicts(db_url, monkeypatch):
    from tests.bench_runner.test_compare import SESSION, _plant_rounds, plant_session

    before, after = plant_session(db_url)
    # Each side timed its own drift controls as a round began; they took turns, so the machine did
    # not move between them, however their copies read.
    _plant_rounds(db_url, {before: [0, 0, 0], after: [0, 0, 0]}, copy_s={before: 1e-3, after: 2e-3})
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    assert next(s for s in at.selectbox if s.label == "Before").options == [
        f"run {after}: quick · testhost · ab with run {before}", f"run {before}: quick · testhost · ab with run {after}"]
    next(s for s in at.selectbox if s.label == "Before").set_value(before).run()
    next(s for s in at.selectbox if s.label == "After").set_value(after).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric} == {"Regression": "1", "Improvement": "1", "No change": "1",
                                                    "Inconclusive": "1"}
    assert any(c.value.startswith("**Paired**: 4 of the 4 cells") for c in at.caption)
    why = next(c.value for c in at.caption if c.value.startswith("**Inconclusive**"))
    assert "took rounds that read different ratios" not in why  # its rounds agree as its cycles do
    shown = at.dataframe[0].value.set_index("size")
    assert shown["paired"].all()
    assert shown["verdict"].to_dict() == {f"B=1 N={n} C=64 H=4": v for n, (*_, v) in SESSION.items()}
    assert not any("is a side of" in w.value for w in at.warning)
    assert not any(c.value.startswith("**Rounds**") for c in at.caption)  # every cell took every round
    assert not any(c.value.startswith("The machine itself") for c in at.caption)
    runs = render(db_url, monkeypatch, "app_pages/runs.py").dataframe[0].value
    assert runs.set_index("run_id")["paired_with"].to_dict() == {after: before, before: after}


def test_diff_says_why_the_cells_a_session_decided_halfway_have_fewer_rounds(db_url, monkeypatch):
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import Run
    from tests.bench_runner.test_compare import plant_session

    before, after = plant_session(db_url)  # three rounds of every cell
    with sessionmaker(results_db.open_engine(db_url))() as session, session.begin():
        for run in session.query(Run):  # as if the session had six, and looked after the third
            run.rounds, run.provenance = 6, {**run.provenance, "ab": {"look": 3}}
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(before).run()
    next(s for s in at.selectbox if s.label == "After").set_value(after).run()
    assert not at.exception
    said = [c.value for c in at.caption if c.value.startswith("**Rounds**")]
    assert len(said) == 1 and "4 cells were timed for 3 of the session's 6 rounds" in unescaped(said[0]), said


def test_the_overview_of_ab_sessions_alone_says_where_they_are(db_url, monkeypatch):
    from tests.bench_runner.test_compare import plant_session

    plant_session(db_url)
    at = render(db_url, monkeypatch, "app_pages/overview.py")
    assert any(i.value.startswith("No plain run has results yet: the `ab` sessions here are compared on the Diff page") for i in at.info)


def test_diff_warns_that_an_ab_side_beside_a_plain_run_was_timed_otherwise(db_url, monkeypatch):
    from tests.bench_runner.test_compare import _history_db, plant_session

    _history_db(db_url, (1.0,))
    before, after = plant_session(db_url)
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    next(s for s in at.selectbox if s.label == "Before").set_value(1).run()
    next(s for s in at.selectbox if s.label == "After").set_value(after).run()
    assert not at.exception
    assert any(w.value.startswith(f"Run {after} is a side of an `ab` session, timed in turns with run {before}")
               for w in at.warning)


@pytest.mark.parametrize("page", ["app_pages/overview.py", "app_pages/compare.py", "app_pages/scaling.py",
                                  "app_pages/roofline.py", "app_pages/claims.py"])
def test_each_page_of_latest_results_says_which_cells_failed_since(db_url, tmp_path, monkeypatch, page):
    from tests.bench_runner.test_compare import plant_broken, plant_runs

    stale = "4 cells failed in their newest measurement on testhost: the figures shown for them are "
    at = render(plant_runs(f"sqlite:///{tmp_path / 'clean.db'}"), monkeypatch, page)
    assert not any(stale in w.value.replace("\\", "") for w in at.warning)  # every cell's newest is shown
    plant_broken(db_url)  # testhost's newest runs fail N=64, then crash every cell
    at = render(db_url, monkeypatch, page)
    said = [w.value.replace("\\", "") for w in at.warning]  # as shown, their punctuation unescaped
    found = [w for w in said if w.startswith(stale + "their last `ok` ones, older")]
    assert len(found) == 1 and found[0].count(": crashed") == 4, said
    if page == "app_pages/compare.py":  # one run's results are that run's, whatever came after
        next(s for s in at.selectbox if s.label == "Results from").set_value(1).run()
        assert not any(w.startswith(stale) for w in (w.value.replace("\\", "") for w in at.warning))

def test_a_running_ab_sessions_bar_says_a_cell_may_take_fewer_rounds(db_url, monkeypatch):
    """A run of an `ab` session in progress: a cell decided halfway takes no more rounds, so its
    bar says `up to` the session's rounds; a plain run's says every cell takes its rounds, and
    once they are all taken, that it takes rounds more where a speed-up is undecided."""
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import Run, store
    from tests.bench_runner.test_compare import _history_db

    _history_db(db_url, (1.0, 1.0, 1.6, 1.6))
    with sessionmaker(results_db.open_engine(db_url))() as session, session.begin():
        for run_id in (3, 4):
            store.set_status(session, run_id, "running")
        run = session.get(Run, 4)
        run.paired_with, run.rounds = 3, 16
    bars = {p.proto.text.split(" (")[0]: p.proto.text for p in render(db_url, monkeypatch, "app_pages/runs.py")
            .get("progress")}
    assert "(up to 16 rounds of every cell)" in bars["Run 4"]
    assert "up to" not in bars["Run 3"] and "rounds of every cell)" in bars["Run 3"]
    # Its rounds all taken and still running, a plain run takes rounds more for undecided speed-ups.
    assert bars["Run 3"].endswith("; every round taken, now any rounds more where a speed-up is undecided")
    assert "rounds more" not in bars["Run 4"]
