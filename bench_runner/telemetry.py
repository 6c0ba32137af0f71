"""What the device was doing while it was measured, and the energy a call costs.

On an NVIDIA GPU through NVML (the `nvidia-ml-py` package): SM and memory clocks, power,
temperature, the reasons its clocks are held down, and the total-energy counter. On a CPU, the
package energy counter of RAPL through the kernel's powercap interface, where it is readable.
Elsewhere energy is absent, and the reason is stored instead. A source can be injected
(`use`), so tests run without a GPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol

ENERGY_WINDOW_S = 1.0  # energy counters tick every few milliseconds: a call is repeated for a second
RAPL = Path("/sys/class/powercap/intel-rapl:0")

# NVML's clock-event reasons that mean the clocks were held below what the work asked for
# (idle and the applications-clock setting are not slowdowns).
THROTTLES = {0x2: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
             0x80: "hw_power_brake"}


class Source(Protocol):
    why_not: str | None  # why there is no energy counter; None when there is one

    def sample(self) -> dict: ...  # clocks, power, temperature, throttle reasons; {} when unknown

    def energy_j(self) -> float | None: ...  # a counter in joules that only grows


class Absent:
    def __init__(self, why_not: str):
        self.why_not = why_not

    def sample(self) -> dict:
        return {}

    def energy_j(self) -> float | None:
        return None


class Nvml:
    """GPU `index` through NVML."""

    def __init__(self, index: int = 0):
        import pynvml

        pynvml.nvmlInit()
        self.nvml, self.handle, self.why_not = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index), None

    def sample(self) -> dict:
        n, h = self.nvml, self.handle
        reasons = n.nvmlDeviceGetCurrentClocksEventReasons(h)
        return {"sm_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
                "mem_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
                "power_w": n.nvmlDeviceGetPowerUsage(h) / 1000,
                "temperature_c": n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
                "throttled": [name for bit, name in THROTTLES.items() if reasons & bit]}

    def energy_j(self) -> float | None:
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000  # mJ


class Rapl:
    """The CPU package's energy counter (microjoules, wrapping at max_energy_range_uj)."""

    def __init__(self, root: Path = RAPL):
        self.root, self.why_not = root, None
        self.wrap = int((root / "max_energy_range_uj").read_text())
        self.last, self.turns = int((root / "energy_uj").read_text()), 0

    def sample(self) -> dict:
        return {}

    def energy_j(self) -> float | None:
        now = int((self.root / "energy_uj").read_text())
        if now < self.last:  # the counter wrapped
            self.turns += 1
        self.last = now
        return (now + self.turns * self.wrap) / 1e6


_injected: dict[str, Source] = {}


def use(device: str, source: Source | None) -> None:
    """Inject a source for `device` (None: back to the real one). For tests."""
    if source is None:
        _injected.pop(device, None)
    else:
        _injected[device] = source


def source_for(device: str) -> Source:
    if device in _injected:
        return _injected[device]
    if device == "cuda":
        try:
            return Nvml(0)
        except Exception as exc:  # noqa: BLE001 -- no package, no driver, no permission: say which
            return Absent(f"NVML is not usable here ({type(exc).__name__}: {exc})"[:200])
    try:
        return Rapl()
    except (OSError, ValueError) as exc:
        return Absent(f"RAPL energy is not readable here ({RAPL}: {getattr(exc, 'strerror', None) or exc})"[:200])


def energy_metrics(call: Callable[[], object], sync: Callable[[], None], source: Source,
                   window_s: float = ENERGY_WINDOW_S) -> dict[str, float]:
    """Energy per call and mean power: the call repeated for at least `window_s`, the energy
    counter read around the whole window. {} when the source has no counter."""
    if source.energy_j() is None:
        return {}
    before_state = source.sample()
    sync()
    e0, t0, calls = source.energy_j(), time.perf_counter(), 0
    while True:
        call()
        calls += 1
        if calls % 8 == 0 or calls < 8:
            sync()
            if time.perf_counter() - t0 >= window_s:
                break
    e1, t1 = source.energy_j(), time.perf_counter()
    after_state = source.sample()
    out = {"energy_j_per_call": (e1 - e0) / calls, "avg_power_w": (e1 - e0) / (t1 - t0)}
    if before_state.get("throttled") or after_state.get("throttled"):
        out["throttled"] = 1.0  # the clocks were held down around the window
    return out


def idle_power_w(source: Source, window_s: float = ENERGY_WINDOW_S) -> float | None:
    """The device's power doing nothing, over `window_s`: what a call's energy sits on."""
    e0 = source.energy_j()
    if e0 is None:
        return None
    t0 = time.perf_counter()
    time.sleep(window_s)
    return (source.energy_j() - e0) / (time.perf_counter() - t0)
