"""The survey's claims judged on planted results, and the pages that show them and the
shipped reference machine."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from app import claims, data, widgets
from tests.app.test_pages import render
from tests.conftest import unescaped

CLAIM = {c.id: c for c in claims.CLAIMS}


def planted(benchmark: str, param: str, exponents: dict[str, float], held: str, sizes=(16, 32, 64, 128)):
    """Result rows whose runtime and peak memory grow as size^exponent, one per method and size."""
    rows = []
    for method, k in exponents.items():
        for s in sizes:
            rows.append(dict(benchmark=benchmark, method=method, backend="eager", status="ok",
                             size=f"{held} {param}={s}" if held else f"{param}={s}",
                             time_median_s=1e-6 * s ** k, peak_mem_bytes=1e3 * s ** k, flops_counted=1e3 * s ** k))
    return pd.DataFrame(rows)


def test_linear_against_quadratic_holds_with_the_exponents_in_tokens():
    rows = planted("token_mixing", "N", {"poly_sa": 1.0, "softmax_attention": 2.0, "linear": 1.0, "sdpa": 1.9},
                   "B=1 C=64 H=4")
    v = claims.judge(CLAIM["s4_runtime"], rows)
    assert v.verdict == "holds"
    assert v.hadamard_exponent == pytest.approx(1.0) and v.quadratic_exponent == pytest.approx(2.0)
    assert v.yardstick_ratio == pytest.approx(1.0) and v.largest_size == 128
    assert claims.held_text(v) == "B=1, C=64, H=4" and v.held_sizes == {"B": 1, "C": 64, "H": 4}


def test_spatial_exponents_are_per_position_not_per_side():
    # Runtime ∝ H² is linear in positions N = H²; ∝ H⁴ is quadratic.
    rows = planted("spatial_mixing", "H", {"poly_nl": 2.0, "non_local": 4.0, "conv1x1": 2.0}, "B=1 C=8")
    v = claims.judge(CLAIM["s3_runtime"], rows)
    assert (v.verdict, v.hadamard_exponent, v.quadratic_exponent) == ("holds", pytest.approx(1.0),
                                                                             pytest.approx(2.0))


@pytest.mark.parametrize("exponents, why", [
    ({"poly_sa": 1.6, "softmax_attention": 2.0}, "poly_sa grows with exponent 1.60 > 1.3"),
    ({"poly_sa": 1.0, "softmax_attention": 1.5}, "softmax_attention grows with exponent 1.50 ≤ 1.7"),
])
def test_a_claim_that_the_numbers_contradict_does_not_hold(exponents, why):
    v = claims.judge(CLAIM["s4_runtime"], planted("token_mixing", "N", exponents, "B=1"))
    assert v.verdict == "does not hold" and why in v.why


def _with_samples(rows, round_effect):
    """Rows with result ids, and samples in three rounds whose levels lie ±round_effect apart."""
    from tests.conftest import planted_samples

    rows = rows.assign(result_id=range(len(rows)))
    return rows, {rid: planted_samples(t, round_effect) for rid, t in zip(rows["result_id"], rows["time_median_s"])}


@pytest.mark.parametrize("round_effect, verdict", [(0.01, "holds"), (0.6, "inconclusive")])
def test_the_verdict_weighs_the_exponents_intervals(round_effect, verdict):
    # poly_sa grows as N^1.2: within 1.3 when the rounds agree, unsure when they are 60% apart.
    rows, samples = _with_samples(planted("token_mixing", "N", {"poly_sa": 1.2, "softmax_attention": 2.0},
                                          "B=1"), round_effect)
    v = claims.judge(CLAIM["s4_runtime"], rows, samples)
    assert v.verdict == verdict, v.why
    low, high = v.hadamard_ci
    assert low <= 1.2 <= high
    if verdict == "inconclusive":
        assert low < 1.3 < high and "straddles 1.3" in v.why
    # Without samples the point estimate judges alone.
    assert claims.judge(CLAIM["s4_runtime"], rows).verdict == "holds"


def test_a_claim_without_its_results_is_not_measured():
    v = claims.judge(CLAIM["s3_memory"], planted("token_mixing", "N", {"poly_sa": 1.0}, "B=1"))
    assert v.verdict == "not measured" and "spatial_mixing" in v.why
    v = claims.judge(CLAIM["s4_runtime"], planted("token_mixing", "N", {"poly_sa": 1.0}, "B=1"))
    assert v.verdict == "not measured"
    # Results without the claim's metric at all (imported, say, with times only): not measured, said.
    rows = planted("token_mixing", "N", {"poly_sa": 1.0, "softmax_attention": 2.0, "sdpa": 1.9}, "B=1")
    v = claims.judge(CLAIM["s4_flops"], rows.drop(columns="flops_counted"))
    assert v.verdict == "not measured" and v.why == "no `flops_counted` in the token_mixing results"
    assert claims.judge(CLAIM["s4_runtime"], rows.drop(columns="flops_counted")).verdict == "holds"


def test_the_crossover_against_the_strongest_baseline_is_reported():
    rows = planted("token_mixing", "N", {"poly_sa": 1.0, "softmax_attention": 2.0}, "B=1")
    sdpa = rows[rows["method"] == "softmax_attention"].assign(method="sdpa")
    sdpa["time_median_s"] = sdpa["time_median_s"] / 64  # planted: poly_sa overtakes sdpa at N = 64
    v = claims.judge(CLAIM["s4_runtime"], pd.concat([rows, sdpa]))
    assert v.crossover == "N ≈ 64"
    assert v.crossover_kind == "crossover" and round(v.crossover_at) == 64


def turns_of(time_ratios: dict, base_s: float, noise: dict, seed: int = 0) -> dict:
    """Samples of two methods taking turns in one run (three rounds of ten cycles) per size:
    size → (baseline's entry, method's entry), the method taking `time_ratios[size]` × the
    baseline's time in every cycle, ± `noise[size]` of its own, while the machine's speed
    moves both by ±30%."""
    rng = np.random.default_rng(seed)
    rounds, cycles = [k // 10 for k in range(30)], [k % 10 for k in range(30)]
    out = {}
    for size, ratio in time_ratios.items():
        drift = 1 + rng.uniform(-0.3, 0.3, 30)
        mine = ratio * base_s * drift * (1 + rng.uniform(-noise.get(size, 0.005), noise.get(size, 0.005), 30))
        out[size] = ((list(base_s * drift), rounds, cycles, 7), (list(mine), rounds, cycles, 7))
    return out


def test_the_crossover_comes_from_each_sizes_verdict_where_samples_are_given():
    # poly_sa's speed-up over sdpa: 0.5, 1.03, 1.5, 2 at N = 16…128. At N=32 its own noise (±15% a
    # cycle) leaves the speed-up inconclusive: the medians put the crossover below 32, the verdicts
    # between 32 and 64.
    rows = planted("token_mixing", "N", {"poly_sa": 1.0, "softmax_attention": 2.0, "linear": 1.0, "sdpa": 1.0}, "B=1")
    rows = rows.assign(result_id=range(len(rows)))
    ids = rows.set_index(["method", "size"])["result_id"]

    def judged(ratios: dict, noise: dict, with_samples: bool = True):
        planted_rows = rows.copy()
        planted_rows.loc[rows["method"] == "poly_sa", "time_median_s"] = [1e-3 * r for r in ratios.values()]
        planted_rows.loc[rows["method"] == "sdpa", "time_median_s"] = 1e-3
        samples = {}
        for size, (base, mine) in turns_of(ratios, 1e-3, noise).items():
            samples[int(ids["sdpa", f"B=1 N={size}"])], samples[int(ids["poly_sa", f"B=1 N={size}"])] = base, mine
        return claims.judge(CLAIM["s4_runtime"], planted_rows, samples if with_samples else None)

    ratios = {16: 2.0, 32: 1 / 1.03, 64: 1 / 1.5, 128: 0.5}
    plain = judged(ratios, {}, with_samples=False)
    assert plain.crossover_kind == "crossover" and plain.crossover_at < 32 and not plain.crossover_judged
    v = judged(ratios, {32: 0.15})
    assert v.crossover_judged and v.crossover_kind == "crossover" and 32 < v.crossover_at <= 64
    # Steady, 1.03x at N=32 is within the 5% floor (no change), so not yet faster there either.
    assert judged(ratios, {}).crossover_at == 64
    # Clearly faster from N=32 on: the verdicts and the medians agree.
    ratios[32] = 1 / 1.2
    v, plain = judged(ratios, {}), judged(ratios, {}, with_samples=False)
    assert v.crossover_judged and 16 < v.crossover_at < 32
    assert v.crossover_at == pytest.approx(plain.crossover_at, rel=0.05)
    # 1.1x at the largest size, but noisy there (±40% a cycle): the medians still give a size, the
    # verdicts say it was not shown there.
    ratios[128] = 1 / 1.1
    assert judged(ratios, {}, with_samples=False).crossover_kind == "crossover"
    v = judged(ratios, {128: 0.4})
    assert v.crossover_judged and v.crossover_kind == "unsure" and np.isnan(v.crossover_at)


def test_a_crossover_verdict_a_slow_spell_could_have_made_is_held():
    # poly_sa 1.5x faster than sdpa at every size, each timed apart (rounds, no shared cycles).
    # When sdpa's largest cell was timed in a slow spell of the cores, "faster" there could be the
    # spell's: held inconclusive, so the crossover is unsure, as Compare would hold it.
    rows = planted("token_mixing", "N", {"poly_sa": 1.0, "softmax_attention": 2.0, "linear": 1.0, "sdpa": 1.0}, "B=1")
    rows = rows.assign(result_id=range(len(rows)), device="cpu", unsettled_rounds=0.0)
    rows.loc[rows["method"] == "sdpa", "time_median_s"] *= 1.5
    rng = np.random.default_rng(1)
    samples = {int(r.result_id): (list(r.time_median_s * (1 + rng.uniform(-0.01, 0.01, 15))), [k // 5 for k in range(15)])
               for r in rows.itertuples()}
    assert claims.judge(CLAIM["s4_runtime"], rows, samples).crossover_kind == "always_faster"
    spelled = rows.copy()
    spelled.loc[(rows["method"] == "sdpa") & (rows["size"] == "B=1 N=128"), "unsettled_rounds"] = 1.0
    v = claims.judge(CLAIM["s4_runtime"], spelled, samples)
    assert v.crossover_judged and v.crossover_kind == "unsure"


def test_the_yardstick_ratio_comes_from_the_cycles_the_two_cells_shared():
    # At the largest N, poly_sa takes 1.5x linear's time in every cycle of three rounds, while the
    # machine's speed moves both by up to ±30% from cycle to cycle.
    rows = planted("token_mixing", "N", {"poly_sa": 1.0, "softmax_attention": 2.0, "linear": 1.0}, "B=1")
    rows = rows.assign(result_id=range(len(rows)))
    rng = np.random.default_rng(0)
    drift = 1 + rng.uniform(-0.3, 0.3, 30)
    rounds, cycles = [k // 10 for k in range(30)], [k % 10 for k in range(30)]
    top = rows[rows["size"] == "B=1 N=128"].set_index("method")["result_id"]
    times = {"linear": 1e-3 * drift, "poly_sa": 1.5e-3 * drift * (1 + rng.uniform(-0.005, 0.005, 30))}
    turns = {m: (list(times[m]), rounds, cycles, 7) for m in times}  # one run: the same turns
    apart = {m: (list(times[m]), rounds) for m in times}  # the same samples, their cycles unknown
    judged = {}
    for name, entries in (("turns", turns), ("apart", apart)):
        samples = {int(top[m]): entries[m] for m in entries}
        judged[name] = claims.judge(CLAIM["s4_runtime"], rows, samples)
    paired, unpaired = judged["turns"], judged["apart"]
    assert paired.yardstick_paired and not unpaired.yardstick_paired
    assert paired.yardstick_ratio == pytest.approx(1.5, rel=0.01) and paired.largest_size == 128
    low, high = paired.yardstick_ci
    assert 1.47 < low <= 1.5 <= high < 1.53  # the shared drift cancels cycle by cycle
    low_apart, high_apart = unpaired.yardstick_ci
    assert low_apart <= 1.5 <= high_apart and (high_apart - low_apart) > 5 * (high - low)
    # Without samples, the medians' ratio as before, and no interval.
    plain = claims.judge(CLAIM["s4_runtime"], rows)
    assert plain.yardstick_ratio == pytest.approx(1.0) and claims.interval_text(plain.yardstick_ci) is None




def test_the_claims_page_judges_the_stored_results(seeded_db, monkeypatch):
    # conftest plants poly_sa ∝ N and softmax_attention ∝ N² over N = 64…512.
    at = render(seeded_db, monkeypatch, "app_pages/claims.py")
    texts = [unescaped(s.value) for s in at.success]
    # The planted samples (three rounds, ±1% apart) give each exponent a narrow interval.
    assert any(re.search(r"Holds on testhost \(Test CPU\): poly_sa 1\.00 \[0\.9\d, 1\.0\d\] ≤ 1\.3, "
                         r"softmax_attention 2\.00 \[1\.9\d, 2\.0\d\] > 1\.7", t) for t in texts), texts
    assert any("spatial_mixing" in i.value for i in at.info)  # Figure S3 has no results here
    shown = [m for m in at.metric if m.label == "poly_sa exponent"]
    assert shown[0].value == "1.00" and re.fullmatch(r"\[0\.9\d, 1\.0\d\]", shown[0].delta)  # runtime: an interval
    assert shown[1].value == "1.00" and not shown[1].delta  # FLOPs are counted, not sampled: no interval


def test_the_claims_page_without_results_says_what_to_run(db_url, monkeypatch):
    at = render(db_url, monkeypatch, "app_pages/claims.py")
    assert any("--suite paper" in i.value for i in at.info)


@pytest.fixture
def with_reference(db_url, monkeypatch, tmp_path, seeded_db):
    """The seeded run shipped as a reference bundle from a GPU machine, and switched on."""
    from bench_runner.cli import main

    shipped = tmp_path / "reference"
    shipped.mkdir()
    main(["export", "--db", seeded_db, "--format", "bundle", "--out", str(shipped / "gpu.json")])
    bundle = json.loads((shipped / "gpu.json").read_text())
    for run in bundle["runs"]:
        run["machine"].update(key="gpu-box", label="Lab GPU (reference)", gpu_name="Lab GPU")
        for r in run["results"]:
            r["device"] = "cuda"
    (shipped / "gpu.json").write_text(json.dumps(bundle))
    monkeypatch.setattr(data, "REFERENCE_DIR", shipped)
    monkeypatch.setenv("HADAMARD_BENCH_REFERENCE", "on")
    return seeded_db


def test_the_dashboard_adds_the_shipped_reference_runs_once(with_reference, monkeypatch):
    for _ in range(2):
        data.import_reference.clear()
        at = render(with_reference, monkeypatch, "app_pages/overview.py")
    assert any("Lab GPU (reference)" in unescaped(c.value) for c in at.caption)
    runs = render(with_reference, monkeypatch, "app_pages/runs.py")
    assert not runs.exception
    with data.sessions(with_reference)() as session:
        from results_db import queries
        assert len(queries.runs_frame(session)) == 2  # the user's run and one reference run
        assert queries.reference_machines(session) == ["Lab GPU (reference)"]


def test_compare_draws_the_reference_beside_the_users_own(with_reference, monkeypatch):
    data.import_reference.clear()
    at = render(with_reference, monkeypatch, "app_pages/compare.py")
    machine = next(s for s in at.selectbox if s.label == "Machine")
    assert machine.value == "testhost (Test CPU)"  # the user's own machine first
    beside = next(s for s in at.selectbox if s.label == "Beside it")
    assert beside.options == ["nothing", "Lab GPU (reference) · cuda"]
    beside.set_value("Lab GPU (reference) · cuda").run()
    assert not at.exception, at.exception
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "poly_sa · eager · Lab GPU (reference) · cuda" in names and "poly_sa · eager" in names
    assert at.query_params["beside"] == "Lab GPU (reference) · cuda"


@pytest.mark.parametrize("page", ["app_pages/scaling.py", "app_pages/roofline.py"])
def test_pages_open_on_the_users_own_machine_before_the_shipped_reference(with_reference, monkeypatch, page):
    data.import_reference.clear()
    at = render(with_reference, monkeypatch, page)
    machine = next(s for s in at.selectbox if s.label == "Machine")
    assert machine.options == ["testhost (Test CPU)", "Lab GPU (reference)"] and machine.value == "testhost (Test CPU)"


def test_float32_and_forward_come_first_and_the_rest_sorted():
    assert widgets.context_options(["bfloat16", "float32", "float16"], "dtype", []) == ["float32", "bfloat16", "float16"]
    assert widgets.context_options(["train", "forward"], "mode", []) == ["forward", "train"]
    assert widgets.context_options(["cuda", "cpu"], "device", []) == ["cpu", "cuda"]
    assert widgets.context_options(["Z (reference)", "a", "b"], "machine", ["Z (reference)"]) == ["a", "b", "Z (reference)"]
