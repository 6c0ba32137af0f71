"""What the machine was doing while a round ran: load, CPU steal, other processes' share of the
CPUs, the frequency governor. Read from /proc and /sys on Linux; absent elsewhere.

A timing is only as steady as the machine under it. These readings let the Runs page and
`compare` say when a difference between runs may be the machine's rather than the code's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# Beyond these, a round (or a machine about to run one) counts as busy.
BUSY_LOAD_PER_CORE = 0.5
BUSY_OTHER_SHARE = 0.15
BUSY_STEAL_SHARE = 0.05

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_times() -> dict[str, int] | None:
    """The first line of /proc/stat: jiffies per state, summed over all CPUs."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    return {n: int(v) for n, v in zip(names, parts[1:])}


def governor() -> str | None:
    """The CPU frequency governor (cpu0), where the kernel exposes it; None in most VMs."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14 and 15)


def snapshot() -> dict:
    """Readings at one moment, for `state_between`."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"wall": time.monotonic(), "load": load, "cpu": cpu_times(), "own_cpu_s": _own_cpu_seconds()}


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def state_between(before: dict, after: dict, worker_cpu_s: float = 0.0) -> dict:
    """What the machine did between two snapshots: the load average at both ends, the share of
    all CPUs' time stolen by the hypervisor, and the share taken by processes other than this
    one and its worker (`worker_cpu_s`: the worker's CPU seconds in between)."""
    cores = os.cpu_count() or 1
    out: dict = {"wall_s": round(after["wall"] - before["wall"], 3), "cores": cores, "governor": governor()}
    if before["load"] and after["load"]:
        out["load_1m_before"], out["load_1m_after"] = round(before["load"][0], 2), round(after["load"][0], 2)
    if before["cpu"] and after["cpu"]:
        delta = {k: after["cpu"][k] - before["cpu"][k] for k in before["cpu"]}
        total = sum(delta.values())
        if total > 0:
            busy = total - delta["idle"] - delta["iowait"] - delta["steal"]
            ours = (after["own_cpu_s"] - before["own_cpu_s"] + worker_cpu_s) * _CLK_TCK
            out["steal_share"] = round(delta["steal"] / total, 4)
            out["other_cpu_share"] = round(max(0.0, busy - ours) / total, 4)
    return out


def busy_reasons(state: dict) -> list[str]:
    """Why a state counts as busy, in words; empty when it does not. Judged on what other
    processes and the hypervisor took, not on the load average, which counts our own worker
    and lags a minute behind (right after a run it still shows that run)."""
    reasons = []
    if (state.get("other_cpu_share") or 0) > BUSY_OTHER_SHARE:
        reasons.append(f"other processes took {state['other_cpu_share']:.0%} of the CPUs")
    if (state.get("steal_share") or 0) > BUSY_STEAL_SHARE:
        reasons.append(f"the hypervisor stole {state['steal_share']:.0%} of the CPU time")
    return reasons


def busy_now(window_s: float = 1.0) -> list[str]:
    """Whether this machine is busy right now, judged over a short window of idling."""
    before = snapshot()
    time.sleep(window_s)
    return busy_reasons(state_between(before, snapshot()))


def wait_until_quiet(max_s: float, window_s: float = 0.5, clock=time.monotonic) -> tuple[list[str], float]:
    """Look (every `window_s`) until the machine is not busy or `max_s` has passed: (what still
    keeps it busy, empty when nothing does; the seconds spent waiting)."""
    started = clock()
    while True:
        busy = busy_now(window_s)
        if not busy or clock() - started >= max_s:
            return busy, clock() - started


def heavy_processes(window_s: float = 1.0, top: int = 5, min_share: float = 0.05) -> list[tuple[int, str, float]]:
    """Other processes using at least `min_share` of one CPU over the window: (pid, name, share)."""
    def sample() -> dict[int, tuple[str, float]]:
        out = {}
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
            if entry.name.isdigit():
                seconds = process_cpu_seconds(int(entry.name))
                if seconds is not None:
                    try:
                        name = (entry / "comm").read_text().strip()
                    except OSError:
                        continue
                    out[int(entry.name)] = (name, seconds)
        return out

    first = sample()
    time.sleep(window_s)
    second = sample()
    me = os.getpid()
    found = [(pid, name, (cpu - first[pid][1]) / window_s) for pid, (name, cpu) in second.items()
             if pid in first and pid != me]
    return sorted([f for f in found if f[2] >= min_share], key=lambda f: -f[2])[:top]
