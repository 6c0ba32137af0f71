"""What the dashboard judges, apart from how it loads and shows it: each Hadamard method's
speed-up over its baseline with an interval and a verdict, the headlines of the Overview, the
machine's conditions per run, the change points of a history. Plain pandas and the runner's
torch-free statistics, no Streamlit: the pages call these on what app.data loaded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench_runner import comparison, defaults, history, stats
from bench_runner.speedups import flipped
from hadamard_bench.vocabulary import METHOD_WORDS
from results_db.round_state import DRIFT_PREFIX, SETTLE_UNSETTLED, SETTLE_WAITED

from . import text
from .analysis import Crossover, find_crossover, judged_crossover, longest_sweep, parse_size
from .shaping import CONTEXT, latest_ok, speedups


def run_conditions(states: pd.DataFrame, busy: dict[int, list[str]]) -> pd.DataFrame:
    """Per run, what the machine did while it ran: the worst round's load, other processes'
    CPU share and steal, how long its workers waited for the cores to settle and how many cells
    they timed unsettled (bench_runner.settle), the drift controls' median, and whether it
    started busy."""
    columns = ["run_id", "rounds_measured", "load_1m_max", "other_cpu_share_max", "steal_share_max",
               SETTLE_WAITED, SETTLE_UNSETTLED,
               *(f"{DRIFT_PREFIX}cpu_{control}_s" for control in ("copy", "matmul", "probe")), "busy_at_start"]
    if states.empty:
        return pd.DataFrame(columns=columns)
    # An old run's retake pass (comparison.regular_rounds) is not a round: what it retook settled
    # leaves the count of cells timed unsettled (comparison.left_unsettled), and the drift
    # controls it took after waiting for calm stay out.
    every = states
    states = states[comparison.regular_rounds(states)]
    agg = {"round": "nunique"}
    for column, how in (("load_1m_after", "max"), ("other_cpu_share", "max"), ("steal_share", "max"),
                        (SETTLE_WAITED, "sum"), (SETTLE_UNSETTLED, "sum")):
        if column in states:
            agg[column] = how
    agg.update({c: "median" for c in states.columns if c.startswith(DRIFT_PREFIX)})
    out = states.groupby("run_id").agg(agg).reset_index().rename(columns={
        "round": "rounds_measured", "load_1m_after": "load_1m_max", "other_cpu_share": "other_cpu_share_max",
        "steal_share": "steal_share_max"})
    if SETTLE_UNSETTLED in out:
        out[SETTLE_UNSETTLED] = [comparison.left_unsettled(every, [r]) for r in out["run_id"]]
    out["busy_at_start"] = out["run_id"].map(lambda r: "; ".join(busy.get(int(r), [])))
    return out.sort_values("run_id", ascending=False)


def own_first(machines, reference: list[str]) -> list[str]:
    """Machine labels, the user's own before the shipped reference ones."""
    return sorted(machines, key=lambda m: (m in reference, m))


def other_machines(rows: pd.DataFrame, context: dict) -> dict[str, dict]:
    """`machine · device` → its context, for every machine and device other than `context`'s
    that has results in the same dtype and mode."""
    same = rows[(rows["dtype"] == context["dtype"]) & (rows["mode"] == context["mode"])]
    pairs = same[["machine", "device"]].drop_duplicates().sort_values(["machine", "device"])
    return {f"{m} · {d}": {**context, "machine": m, "device": d} for m, d in pairs.itertuples(index=False)
            if (m, d) != (context["machine"], context["device"])}


def rows_of(rows: pd.DataFrame, context: dict) -> pd.DataFrame:
    keep = pd.Series(True, index=rows.index)
    for key, value in context.items():
        keep &= rows[key] == value
    return rows[keep]


def speedup_intervals(frame: pd.DataFrame, baseline: str, samples: dict, spelled_runs=()) -> pd.DataFrame:
    """Each method's speed-up over `baseline` (same backend and size) with its 95% interval and a
    verdict (`faster`, `slower`, `no change`, `inconclusive`), from the cells' samples (result
    id → queries.samples_of's entry): paired per cycle where the two took turns in one run
    (stats.compare_entries), else from their rounds, p-values adjusted across the table. An
    unpaired verdict a slow spell of the cores could have made is held `inconclusive`
    (comparison.hold_spelled; spelled_runs: the runs a spell outlasted)."""
    pairs = speedups(frame, baseline)
    base_ids = frame[frame["method"] == baseline].set_index(CONTEXT + ["backend", "size"])["result_id"]
    pairs = pairs[pairs["method"] != baseline].reset_index(drop=True)
    pairs["baseline_result_id"] = [base_ids[tuple(r[k] for k in CONTEXT + ["backend", "size"])]
                                   for _, r in pairs.iterrows()]
    return with_speedup_intervals(pairs, samples, comparison.cells_in_spell(frame, spelled_runs))


def with_speedup_intervals(frame: pd.DataFrame, samples: dict, in_spell: dict[int, bool]) -> pd.DataFrame:
    """`frame` (with result_id and baseline_result_id) with each row's speed-up, its interval and
    verdict, whether it was paired, and a paired one's rounds (speedup_round_low, speedup_round_high,
    rounds_apart): method ÷ baseline is the time ratio (stats.compare_entries); its reciprocal is the
    speed-up, the interval flipped. A paired speed-up's
    two sides shared whatever spell the machine had, so only unpaired verdicts are held."""
    entry = lambda rid: samples.get(int(rid), ([], None))  # noqa: E731
    spell = lambda rid: in_spell.get(int(rid), False)  # noqa: E731
    found = comparison.judge([(entry(b), entry(m)) for b, m in zip(frame["baseline_result_id"], frame["result_id"])],
                             [(spell(b), spell(m)) for b, m in zip(frame["baseline_result_id"], frame["result_id"])],
                             words=METHOD_WORDS)
    out = frame.copy()
    speed = [flipped(f) for f in found]
    out["speedup"], out["speedup_low"], out["speedup_high"] = ([s[i] for s in speed] for i in range(3))
    out["paired"] = [f["paired"] for f in found]
    out["verdict"] = pd.Series([f["verdict"] for f in found], index=out.index, dtype=object)
    # A paired speed-up's rounds, as speed-ups (the reciprocals of their time ratios), and how far
    # apart they lie (stats.rounds_apart): NaN where unpaired.
    out["speedup_round_low"] = [1 / f["round_high"] for f in found]
    out["speedup_round_high"] = [1 / f["round_low"] for f in found]
    out["rounds_apart"] = [f["rounds_apart"] for f in found]
    return out


def speedup_label(row) -> str:
    """`2.31× [2.10, 2.52]`, with a question mark when the verdict is inconclusive."""
    mark = " ?" if row["verdict"] == stats.INCONCLUSIVE else ""
    return f"{row['speedup']:.2f}× [{row['speedup_low']:.2f}, {row['speedup_high']:.2f}]{mark}"


HEADLINE_COLUMNS = ["benchmark", "method", "baseline", "backend", *CONTEXT, "size", "speedup", "memory_ratio", "noisy",
                    "result_id", "baseline_result_id"]


def judged_pairs(catalogue: pd.DataFrame) -> pd.DataFrame:
    """(benchmark, method, baseline): each Hadamard method with the methods it is compared with
    (its `against`, else every baseline of its benchmark)."""
    roles = catalogue.set_index(["benchmark", "method"])["role"].to_dict()
    against = (catalogue.set_index(["benchmark", "method"])["against"].to_dict()
               if "against" in catalogue else {})
    pairs = [(bench, method, base) for (bench, method), role in roles.items() if role == "hadamard"
             for base in (against.get((bench, method)) or
                          [m for (b, m), r in roles.items() if b == bench and r == "baseline"])]
    return pd.DataFrame(pairs, columns=["benchmark", "method", "baseline"])


def headlines(frame: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Each Hadamard method against each baseline of its benchmark, at the largest size both
    reached, same machine, device, dtype, mode and backend (eager preferred, else the backend
    the group's oldest latest result used). Joins, not a loop per group: the Overview computes
    it on every first render."""
    latest = latest_ok(frame)
    pairs = judged_pairs(catalogue)
    if latest.empty or pairs.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    group = ["benchmark", *CONTEXT]
    chosen = latest.groupby(group, sort=False)["backend"].agg(
        lambda b: "eager" if (b == "eager").any() else b.iloc[0]).rename("chosen").reset_index()
    rows = latest.merge(chosen, on=group)
    rows = rows[rows["backend"] == rows["chosen"]]
    if "noisy" not in rows:
        rows = rows.assign(noisy=False)
    keep = [*group, "backend", "size", "time_median_s", "peak_mem_bytes", "result_id", "noisy"]
    mine = rows[[*keep, "method"]].merge(pairs, on=["benchmark", "method"])
    theirs = rows[[*keep, "method"]].rename(columns={"method": "baseline"})
    both = mine.merge(theirs, on=[*group, "backend", "size", "baseline"], suffixes=("", "_base"))
    if both.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    both["weight"] = [sum(parse_size(s).values()) for s in both["size"]]
    top = both.loc[both.groupby([*group, "method", "baseline"], sort=False)["weight"].idxmax()]
    out = top.assign(
        speedup=top["time_median_s_base"] / top["time_median_s"],
        memory_ratio=[_ratio(b, m) for b, m in zip(top["peak_mem_bytes_base"], top["peak_mem_bytes"])],
        noisy=[_flag(a) or _flag(b) for a, b in zip(top["noisy"], top["noisy_base"])],
        baseline_result_id=top["result_id_base"])
    return out.sort_values([*group, "method", "baseline"])[HEADLINE_COLUMNS].reset_index(drop=True)


def headline_verdicts(headlines: pd.DataFrame, samples: dict, in_spell: dict[int, bool] | None = None) -> pd.DataFrame:
    """Headlines with each speed-up's 95% interval and verdict: a headline says "faster" only
    when the verdict does (and no slow spell could have made it: `in_spell`, from comparison.cells_in_spell)."""
    return with_speedup_intervals(headlines, samples, in_spell or {})


def headline_text(h) -> str:
    """One headline in Markdown, worded by its verdict; the stored names in it made inert."""
    method, baseline, machine = text.md(h.method), text.md(h.baseline), text.md(h.machine)
    interval = f"[{h.speedup_low:.2f}, {h.speedup_high:.2f}]"
    where = (f"at {text.md(h.size)} ({text.md(h.device)}, {text.md(h.dtype)}, {text.md(h.mode)}, "
             f"{text.md(h.backend)}; {machine})")
    if h.verdict == "faster":
        claim = f":green[**{method}** is {h.speedup:.2f}× {interval} faster than **{baseline}**]"
    elif h.verdict == "slower":
        claim = (f":red[**{method}** is {1 / h.speedup:.2f}× [{1 / h.speedup_high:.2f}, {1 / h.speedup_low:.2f}] "
                 f"slower than **{baseline}**]")
    elif h.verdict == "no change":
        # The equivalence test read the 90% interval; the one shown is the 95% one, as in every headline.
        claim = (f"**{method}** runs as fast as **{baseline}** (within ±{defaults.FLOOR:.0%} at 90% confidence; "
                 f"95% interval {interval})")
    elif pd.notna(getattr(h, "rounds_apart", None)) and h.rounds_apart >= stats.ROUNDS_APART:  # paired only
        # More rounds narrow such an interval only as their square root: advising them would mislead.
        claim = (f":orange[**{method}** against **{baseline}**: {h.speedup:.2f}× {interval}, inconclusive: its "
                 f"rounds read {h.speedup_round_low:.2f}× to {h.speedup_round_high:.2f}×, further apart than their "
                 f"cycles explain (something that held for a whole round, such as other work on the cores, set "
                 f"the speed-up; `doctor` names what else runs)]")
    else:
        claim = (f":orange[**{method}** against **{baseline}**: {h.speedup:.2f}× {interval}, inconclusive: "
                 f"measure again with more rounds]")
    return f"{claim} {where}; {baseline} takes {h.memory_ratio:.2f}× its peak memory"


def _flag(value) -> bool:
    return bool(value) if not pd.isna(value) else False


def _ratio(a, b) -> float:
    try:
        return float(a) / float(b) if float(b) > 0 else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def active_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].isin(["queued", "running", "cancelling"])]


def change_point_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Each change point and each marked run of the chosen rows: the run, the cell, the step
    (this run's median ÷ the previous run's), what differs across it, and the marks."""
    out = []
    for _, cell in rows.groupby(history.CELL, sort=False):
        previous = cell["time_median_s"].shift()
        for i in cell.index[cell["change_point"] | cell["annotation"].str.contains("marked", regex=False)]:
            r = cell.loc[i]
            out.append({"run_id": int(r["run_id"]), "started_at": r["started_at"], "size": r["size"],
                        "method": r["method"], "backend": r["backend"], "change_point": bool(r["change_point"]),
                        "step": r["time_median_s"] / previous[i] if pd.notna(previous[i]) else float("nan"),
                        "differs": r["differs"], "annotation": r["annotation"]})
    return pd.DataFrame(out, columns=["run_id", "started_at", "size", "method", "backend", "change_point", "step",
                                      "differs", "annotation"])


def crossover(pair: pd.DataFrame, size: str, samples: dict | None = None,
              cells: pd.DataFrame | None = None) -> tuple[Crossover, pd.DataFrame | None]:
    """Where a method overtakes a baseline along `size`, a column of `pair` (one row per size: the
    method's row merged with the baseline's, whose columns end in `_b`). Judged size by size
    (analysis.judged_crossover) where every size has samples, returned with the speed-ups and
    verdicts it was judged on (with_speedup_intervals, holding what a slow spell could have made
    where `cells`, the rows both came from, say which were measured in one); else from the
    medians (find_crossover) with None."""
    pair = pair.sort_values(size).reset_index(drop=True).rename(columns={"result_id_b": "baseline_result_id"})
    if samples and {"result_id", "baseline_result_id"} <= set(pair):
        in_spell = comparison.cells_in_spell(cells) if cells is not None and "device" in cells else {}
        found = with_speedup_intervals(pair, samples, in_spell)
        if found["speedup"].notna().all():
            return judged_crossover(found[size], found["speedup"], found["verdict"]), found
    return find_crossover(pair[size], pair["time_median_s"], pair["time_median_s_b"]), None


def crossovers(rows: pd.DataFrame, methods: pd.DataFrame, param: str, samples: dict | None = None) -> list[dict]:
    """Each Hadamard method against each method it is compared with, along `param` (rows of one
    benchmark, backend, device, dtype and mode): where it overtakes (crossover) and its speed-up
    at the largest size, with the interval and verdict where `samples` judge every size."""
    found = longest_sweep(rows.dropna(axis=1, how="all"), param) if f"size_{param}" in rows else None
    if not found:
        return []
    fixed, sweep = found
    held = ", ".join(f"{k}={int(v)}" for k, v in fixed.items())
    by_method = {m: g.sort_values(f"size_{param}") for m, g in sweep.groupby("method")}
    out = []
    for h in methods[methods["role"] == "hadamard"].itertuples():
        for b in methods[methods["method"].isin(list(h.against))].itertuples():
            if h.method not in by_method or b.method not in by_method:
                continue
            pair = by_method[h.method].merge(by_method[b.method], on=f"size_{param}", suffixes=("", "_b"))
            if len(pair) < 2:
                continue
            cross, judged = crossover(pair, f"size_{param}", samples, sweep)
            last = pair.iloc[-1]
            top = judged.iloc[-1] if judged is not None else None
            out.append(dict(method=h.method, baseline=b.method, held=held, crossover=cross.describe(param),
                            largest=f"{param}={int(last[f'size_{param}'])}",
                            speedup=last["time_median_s_b"] / last["time_median_s"] if top is None else top["speedup"],
                            speedup_low=np.nan if top is None else top["speedup_low"],
                            speedup_high=np.nan if top is None else top["speedup_high"],
                            verdict="" if top is None else top["verdict"]))
    return out
