"""Each cell's speed-up over its baseline within its run: what the CSV and JSON exports carry.

A Hadamard method is judged against the method the catalogue names first in its `against`
(else the first baseline of its benchmark), at the same backend, size, device, dtype and mode,
in the same run. Where the two took turns (bench_runner.timing.interleave) the speed-up and its
interval come from their paired cycles; otherwise from their rounds (stats.compare_entries).
"""

from __future__ import annotations

import pandas as pd

from hadamard_bench.vocabulary import CELL_KEY, METHOD_WORDS

from . import comparison

COLUMNS = ["baseline", "speedup", "speedup_ci_low", "speedup_ci_high", "speedup_verdict", "speedup_paired",
           "speedup_rounds_apart"]
SAME_PLACE = ["run_id", "benchmark", "backend", "size", "device", "dtype", "mode"]


def flipped(found: dict) -> tuple[float, float, float]:
    """A time ratio's comparison (method ÷ baseline, with its interval: stats.compare_entries)
    as a speed-up: its reciprocal, the interval flipped."""
    inverse = lambda v: 1 / v if v else float("nan")  # noqa: E731
    return inverse(found["ratio"]), inverse(found["ci_high"]), inverse(found["ci_low"])


def baselines(catalogue: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(benchmark, method) → the method it is judged against, for every method that is not a
    baseline itself (catalogue: results_db.queries.catalogue_frame)."""
    first_baseline = (catalogue[catalogue["role"] == "baseline"].sort_values("method")
                      .groupby("benchmark")["method"].first().to_dict())
    out = {}
    for row in catalogue.itertuples():
        if row.role == "baseline":
            continue
        named = list(row.against or []) if isinstance(row.against, (list, tuple)) else []
        base = named[0] if named else first_baseline.get(row.benchmark)
        if base:
            out[(row.benchmark, row.method)] = base
    return out


def baseline_results(frame: pd.DataFrame, catalogue: pd.DataFrame) -> dict:
    """Index of each `ok` row of `frame` whose baseline also ended `ok` at its place in its run →
    (the baseline's method id, the baseline's result id, the row's own result id)."""
    against = baselines(catalogue)
    ok = frame[frame["status"] == "ok"]
    base_id = {(*(r[c] for c in SAME_PLACE), r["method"]): r["result_id"] for _, r in ok.iterrows()}
    found = {}
    for index, r in ok.iterrows():
        base = against.get((r["benchmark"], r["method"]))
        result = base_id.get((*(r[c] for c in SAME_PLACE), base)) if base else None
        if result is not None:
            found[index] = (base, int(result), int(r["result_id"]))
    return found


def with_speedups(frame: pd.DataFrame, catalogue: pd.DataFrame, samples: dict,
                  in_spell: dict[int, bool] | None = None) -> pd.DataFrame:
    """`frame` (results with result_id, status and SAME_PLACE's columns) with COLUMNS added:
    method ÷ baseline's time ratio turned into a speed-up (above 1: faster than the baseline),
    its 95% interval and verdict (faster, slower, no change, inconclusive), whether it was
    paired and, if so, how far apart its rounds lie (stats.rounds_apart), held as the dashboard
    holds it (comparison.judge; `in_spell`: result id → whether the cell was measured in a slow
    spell, comparison.cells_in_spell). `samples`: result id →
    results_db.queries.samples_of's entry. Cells with no
    baseline, or whose baseline did not end `ok` in the same run, are left empty."""
    out = frame.copy()
    for column in COLUMNS:
        out[column] = pd.Series([None] * len(out), index=out.index, dtype=object)
    rows, pairs, slowed = [], [], []
    for index, (base, found, result) in baseline_results(frame, catalogue).items():
        rows.append((index, base))
        pairs.append((samples.get(found, ([], None)), samples.get(result, ([], None))))
        slowed.append(tuple(bool((in_spell or {}).get(i)) for i in (found, result)))
    for (index, base), f in zip(rows, comparison.judge(pairs, slowed if in_spell else None, words=METHOD_WORDS)):
        out.at[index, "baseline"] = base
        out.at[index, "speedup"], out.at[index, "speedup_ci_low"], out.at[index, "speedup_ci_high"] = flipped(f)
        out.at[index, "speedup_verdict"] = f["verdict"]
        out.at[index, "speedup_paired"] = f["paired"]
        out.at[index, "speedup_rounds_apart"] = f["rounds_apart"]
    return out


def judged(session, frame: pd.DataFrame, in_spell: dict[int, bool] | None = None) -> pd.DataFrame:
    """with_speedups of `frame` (results_db.queries' results, with their result_id), the `ok` rows'
    samples and the stored catalogue read through `session`."""
    from results_db import queries

    samples = queries.samples_of(session, frame.loc[frame["status"] == "ok", "result_id"])
    return with_speedups(frame, queries.catalogue_frame(session), samples, in_spell)


def undecided(frame: pd.DataFrame) -> set[tuple[str, ...]]:
    """The cells (CELL_KEY's values) of every speed-up in `frame` (with_speedups' or judged's) that
    is still inconclusive: the method's and its baseline's, those a run times for more rounds
    (bench_runner.sweep.execute)."""
    open_ = frame[frame["speedup_verdict"] == "inconclusive"]
    cells = set()
    for _, row in open_.iterrows():
        cells.add(tuple(row[k] for k in CELL_KEY))
        cells.add(tuple(row["baseline"] if k == "method" else row[k] for k in CELL_KEY))
    return cells
