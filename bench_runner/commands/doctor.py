"""`doctor`: what on this machine would disturb a measurement, with advice. Exit 1 when
something would; 0 when the machine looks quiet."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hadamard_bench import proc
from hadamard_bench.errors import BadInput

from .. import machine_state
from . import checked_url, no_file_yet, sessions_on
from .flags import db_flag


@dataclass
class Finding:
    ok: bool
    what: str
    seen: str
    advice: str = ""


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes ({} where there is none)."""
    return {key: proc.kib_bytes(value) or 0 for key, value in proc.fields("/proc/meminfo").items()}


def add_parser(verbs) -> None:
    p = verbs.add_parser("doctor", help="what on this machine would disturb measurements, with advice",
                         description="Check this machine for what makes timings irreproducible: load, other busy "
                                     "processes, CPU steal, the frequency governor, memory and swap, thread settings, "
                                     "how steadily the cores work together, how far the machine moved under the runs "
                                     "the results database holds of it (their rounds' drift controls) and, with a "
                                     "CUDA GPU, its persistence mode, clocks and throttling. Exit status 1 when "
                                     "something would disturb a measurement.")
    db_flag(p)


def cpu_findings(window_s: float = 1.0) -> list[Finding]:
    cores = os.cpu_count() or 1
    before = machine_state.snapshot()
    heavy = machine_state.heavy_processes(window_s)
    state = machine_state.state_between(before, machine_state.snapshot())
    found = []
    load = state.get("load_1m_after")
    if load is not None:
        found.append(Finding(load <= machine_state.BUSY_LOAD_PER_CORE * cores, "load average (1 min)",
                             f"{load:.2f} on {cores} cores",
                             "wait for the load to settle, or stop what is running, before measuring"))
    if heavy:
        found.append(busy_finding(heavy, cores))
    else:
        found.append(Finding(True, "other busy processes", "none above 5% of a CPU"))
    if state.get("steal_share") is not None:
        found.append(Finding(state["steal_share"] <= machine_state.BUSY_STEAL_SHARE, "CPU steal (virtual machine)",
                             f"{state['steal_share']:.1%} of CPU time in the last {window_s:g} s",
                             "the hypervisor is giving these cores to other guests: prefer a dedicated host"))
    governor = machine_state.governor()
    found.append(Finding(governor in (None, "performance"), "CPU frequency governor",
                         governor or "not exposed (usual in a VM or container)",
                         "`cpupower frequency-set -g performance` keeps the clock from wandering between samples"))
    boost = Path("/sys/devices/system/cpu/cpufreq/boost")
    if boost.exists():
        on = boost.read_text().strip() == "1"
        found.append(Finding(not on, "CPU boost", "on" if on else "off",
                             "turbo clocks depend on temperature and load; `echo 0 > "
                             "/sys/devices/system/cpu/cpufreq/boost` for steadier figures"))
    mem = _meminfo()
    if mem:
        available, swap_used = mem.get("MemAvailable", 0), mem.get("SwapTotal", 0) - mem.get("SwapFree", 0)
        found.append(Finding(available > 2 * 2**30, "memory available", f"{available / 2**30:.1f} GiB",
                             "large cells need room: close memory-hungry programs"))
        found.append(Finding(swap_used < 256 * 2**20, "swap in use", f"{swap_used / 2**20:.0f} MiB",
                             "pages swapped in during a cell are timed with it"))
    omp = os.environ.get("OMP_NUM_THREADS")
    found.append(Finding(True, "threads", f"OMP_NUM_THREADS={omp}" if omp else
                         "PyTorch's default (all physical cores); --threads N fixes it per run"))
    from ..worker import allocator_setting  # imports torch: only when the check runs

    setting = allocator_setting()
    found.append(Finding(setting["allocator"] != "system default", "workers' allocator",
                         " ".join(f"{k}={v}" for k, v in setting.items() if k != "allocator") or setting["allocator"],
                         "HADAMARD_BENCH_ALLOCATOR=system lets glibc adapt to each process's history, which makes "
                         "a cell's time depend on the cells before it"))
    found.append(openmp_finding())
    found.append(cores_finding())
    return found


def busy_finding(heavy: list[tuple[int, str, float]], cores: int, threads: int | None = None) -> Finding:
    """Other processes busy on the machine (pid, name, share of a CPU), and what to do: stop them,
    or time on no more threads than the cores they leave free. A thread beyond those waits for a
    core in the middle of parallel calls: on the 2-vCPU VM, beside a process busy on one core,
    two-thread calls averaged 2.1-10× their time alone and one-thread calls 0.98-1.03×
    (docs/benchmarks.md, "Threads beside a busy core": benchmarks/busy_core_threads.py)."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    free = max(1, cores - math.floor(sum(share for _, _, share in heavy) + 0.5))  # the cores they hold, to the nearest
    advice = "stop them, or measure on a machine of its own: they take cores and cache from the cells"
    if threads > free:
        advice += (f"; or time with `run --threads {free}`, the cores they leave free: PyTorch's {threads} threads "
                   f"would wait for a core in their parallel calls, and small threaded cells then read several "
                   f"times slower in some of their blocks")
    return Finding(False, "other busy processes",
                   ", ".join(f"{name} (pid {pid}) {share:.0%} of a CPU" for pid, name, share in heavy), advice)


def openmp_finding(environ=os.environ, threads: int | None = None, cores: int | None = None) -> Finding:
    """Whether PyTorch's OpenMP threads spin while they wait, on every core the machine has."""
    import torch

    from .. import machine

    threads = threads or torch.get_num_threads()
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    policy = environ.get("OMP_WAIT_POLICY", "").strip().lower()
    spinning = policy == "active" or environ.get("GOMP_SPINCOUNT", "").strip().lower() == "infinite"
    return Finding(not (spinning and threads >= cores), "OpenMP threads while waiting",
                   f"{machine.openmp_setting(environ)}; {threads} threads on {cores} CPUs",
                   "unset OMP_WAIT_POLICY and GOMP_SPINCOUNT, or run with --threads below the CPU count: threads "
                   "that spin between parallel regions on every CPU leave none for anything else, which then "
                   "preempts them mid-region (on a 2-vCPU VM, large threaded cells ran up to 2× slower and "
                   "their medians moved 5–24% between runs)")


# The probe's two states measured 15% apart, and within one it wanders by about ±4% over a
# few seconds: a spread beyond 10% is a change of state, not noise.
CORES_SPREAD = 0.10


def cores_finding(probes: int = 8, gap_s: float = 0.25, probe=None, sleep=time.sleep) -> Finding:
    """Whether the cores work together at a steady speed: the settling probe (bench_runner.settle)
    timed `probes` times over about two seconds, and once on one thread for its speed-up. A spell
    that lasts longer than the check shows only as a lower speed-up than usual."""
    import torch

    from .. import settle

    probe = probe or settle.probe_s
    threads = torch.get_num_threads()
    what = "cores working together"
    if threads < 2:
        return Finding(True, what, "PyTorch runs one thread here: nothing to hand off")
    readings = []
    for i in range(probes):
        if i:
            sleep(gap_s)
        readings.append(probe())
    torch.set_num_threads(1)
    try:
        alone = probe()
    finally:
        torch.set_num_threads(threads)
    low, high = min(readings), max(readings)
    return Finding(high <= low * (1 + CORES_SPREAD), what,
                   f"a small product on {threads} threads took {low * 1e6:.1f}–{high * 1e6:.1f} µs over "
                   f"{(probes - 1) * gap_s:g} s ({alone / low:.2f}× faster than on one)",
                   "the hypervisor moves these vCPUs now and then, and cells of small threaded steps slow "
                   "down for a spell: runs wait for it to pass (`run --settle`), and comparisons hold what it "
                   "could have made; a host of your own has none")


# The newest runs of this hardware whose rounds `doctor` reads: a few sessions' worth.
RECENT_RUNS = 20


def stored_rounds_finding(url_text: str | None, runs: int = RECENT_RUNS) -> Finding | None:
    """How still the machine held under the runs stored of it: the drift controls each round timed
    at its start (a 16 MiB copy, a matrix product, the settling probe), over the newest `runs`
    plain runs of this hardware fingerprint in the results database. None where there is no
    database yet (nothing is created). A state that lasts seconds to minutes (a cloud VM's vCPUs
    placed otherwise, a neighbour) shows here and not in the two seconds the other checks take:
    on the 2-vCPU VM of 2026-12-07 the copy control read 1.8 times as fast in a state that came in
    spells of 3 s to a minute, and cells moved a median 8.5% with it."""
    from sqlalchemy.exc import SQLAlchemyError

    from results_db import queries, store

    from .. import comparison, machine

    url = checked_url(url_text)  # a URL that cannot work is bad input, said in one line
    if no_file_yet(url):
        return None
    what = "the machine under its stored runs"
    try:
        with sessions_on(url, create=False, writes=False)() as session:
            run_ids = queries.recent_plain_runs(session, store.fingerprint_of(machine.facts()), runs)
            moved = comparison.rounds_moved(queries.round_states(session, run_ids))
    except (BadInput, SQLAlchemyError) as exc:  # a server down or a damaged file: the other checks still stand
        said = f"could not read the results database: {str(exc).splitlines()[0]}" if isinstance(
            exc, SQLAlchemyError) else str(exc)  # already one line that names the database
        return Finding(False, what, said,
                       "check --db or $HADAMARD_BENCH_DB; `hadamard-bench db check` says what is wrong with a file")
    if not moved:
        return Finding(True, what, "no rounds of this hardware stored yet" if not run_ids else
                       f"its {len(run_ids)} newest runs stored no drift controls")
    name, (count, total, median, moved_median) = max(moved.items(), key=lambda kv: kv[1][0] / kv[1][1])
    runs_said = f"its {len(run_ids)} newest run{'s' * (len(run_ids) != 1)}"
    bound = f"{comparison.CONTROLS_MOVED - 1:.0%}"
    if not count:
        return Finding(True, what, f"{total} rounds of {runs_said} read every drift control within {bound} "
                                   "of its median")
    seen = (f"{count} of {total} rounds of {runs_said} read the {name} control more than {bound} from its median "
            f"({moved_median * 1e3:.3g} ms against {median * 1e3:.3g})")
    if count < 2 or count < comparison.ROUNDS_MOVED_WARN * total:  # a run's first round, a moment's spell
        return Finding(True, what, seen + "; too few to say the machine moves")
    return Finding(False, what, seen,
                   "the machine itself moves between and within runs here, and two runs timed apart differ by "
                   "that as well as by their code: compare two versions with `ab`, which times them in turns, "
                   "and let `noise --suite quick` measure the floor that comparisons across time are judged at")


GPU_QUERY = "name,persistence_mode,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,clocks_throttle_reasons.active"


def gpu_findings() -> list[Finding]:
    """Through nvidia-smi, so this check needs neither CUDA in torch nor NVML bindings."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return [Finding(False, "GPU", "nvidia-smi did not answer", "check the driver")]
    found = []
    for i, line in enumerate(out.strip().splitlines()):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 8:
            continue
        name, persistence, sm, sm_max, mem, temp, power, throttle = fields[:8]
        found.append(Finding(persistence.lower() == "enabled", f"GPU {i} persistence mode", f"{name}: {persistence}",
                             "`nvidia-smi -pm 1` keeps the driver loaded: no re-initialisation between runs"))
        try:
            idle_low = float(sm) < 0.5 * float(sm_max)
        except ValueError:
            idle_low = False
        found.append(Finding(True, f"GPU {i} clocks", f"SM {sm} of {sm_max} MHz, memory {mem} MHz, {temp} °C, {power} W"
                             + (" (idle clocks: normal between runs)" if idle_low else "")))
        active = throttle not in ("0x0000000000000000", "0x0000000000000001", "[N/A]", "")
        found.append(Finding(not active, f"GPU {i} throttling", f"reasons {throttle}",
                             "power or thermal limits slow the clocks: `nvidia-smi -lgc BASE,BASE` locks them"))
    return found


def run(args) -> int:
    stored = stored_rounds_finding(args.db)
    findings = cpu_findings() + ([stored] if stored else []) + gpu_findings()
    width = max(len(f.what) for f in findings)
    for f in findings:
        print(f"{'ok  ' if f.ok else 'WARN'}  {f.what:<{width}}  {f.seen}")
        if not f.ok and f.advice:
            print(f"{'':6}{'':<{width}}  → {f.advice}")
    bad = [f for f in findings if not f.ok]
    print(f"\n{len(bad)} thing{'s' * (len(bad) != 1)} would disturb measurements here" if bad
          else "\nnothing here should disturb measurements")
    return 1 if bad else 0
