"""What the machine did during one round of a run (or an old run's retake pass), as one typed record:
the runner writes it (bench_runner.sweep), a round record stores it as JSON, and readers see it
as one row of queries.round_states, whose columns are named by the constants below. A rename
here changes every reader at once, instead of leaving one reading a column that is gone as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

# The flattened columns readers name (queries.round_states).
SETTLE_PREFIX = "settle_"  # the worker's waits for slow spells of its cores (bench_runner.settle)
SETTLE_UNSETTLED = "settle_cells_unsettled"  # cells the round timed while the cores were still slow
SETTLE_WAITED = "settle_waited_s"
SETTLE_PROBE_MEDIAN = "settle_probe_median_s"  # the round's median probe (older rounds: settle_probe_best_s)
DRIFT_PREFIX = "drift_"  # drift_<device>_<control>: the drift controls' seconds
# The settings of a run that every timing of it ran under, its cells' and its drift controls' (a
# copy and products of torch's, on the run's threads), as its provenance names them. Timings under
# other settings time those too, not the machine alone: queries.round_states reads them beside each
# round (`run_threads`, ...) for bench_runner.comparison.control_settings_differ, and `noise`
# refuses runs that differ in them.
TIMING_SETTINGS = ("threads", "torch", "openmp")
# Runs stored before December 2026 also timed again, in passes after their rounds, the cells a
# slow spell had left unsettled (comparison.regular_rounds); these name what such a pass stored.
RETAKE = "retake"  # the retake pass's number; empty for a regular round
RETAKE_CELLS = "retake_cells"  # cells a retake pass timed again
RETAKEN = "retaken"  # of those, the ones timed settled, which replaced an unsettled round
RETAKE_CALM_WAITED = "retake_calm_waited_s"


@dataclass(frozen=True)
class RoundState:
    # The machine between the round's start and end (bench_runner.machine_state.state_between).
    wall_s: float | None = None
    cores: int | None = None
    governor: str | None = None
    load_1m_before: float | None = None
    load_1m_after: float | None = None
    steal_share: float | None = None
    other_cpu_share: float | None = None
    # device → {control: seconds}, or {"error": why there is none} (bench_runner.calibration).
    drift: dict = field(default_factory=dict)
    # probe_median_s, waited_s, cells_waited, cells_unsettled (bench_runner.settle's summary).
    settle: dict = field(default_factory=dict)
    # device → {"before": reading, "after": reading} (bench_runner.telemetry), where there is a counter.
    telemetry: dict | None = None
    retake: int | None = None  # an old run's retake pass (RETAKE above); runs no longer write these
    retake_calm_waited_s: float | None = None
    retake_cells: int | None = None
    retaken: int | None = None
    # Keys another version of the runner stored that this one does not know: kept, not lost.
    other: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The stored form: the machine's readings and the retake's counts at the top level, the
        settle summary as settle_<key>, what is unknown left out."""
        nested = ("settle", "drift", "telemetry", "other")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in nested}
        out = {**self.other, **{k: v for k, v in out.items() if v is not None}}
        out["drift"] = dict(self.drift)
        out.update({f"{SETTLE_PREFIX}{k}": v for k, v in self.settle.items()})
        if self.telemetry:
            out["telemetry"] = self.telemetry
        return out

    @classmethod
    def from_json(cls, state: Mapping | None) -> "RoundState":
        """A stored state back as a record."""
        state = dict(state or {})
        known = {f.name for f in fields(cls)} - {"settle", "drift", "other"}
        settle = {k.removeprefix(SETTLE_PREFIX): v for k, v in state.items() if k.startswith(SETTLE_PREFIX)}
        other = {k: v for k, v in state.items() if k not in known and k != "drift" and not k.startswith(SETTLE_PREFIX)}
        return cls(**{k: v for k, v in state.items() if k in known}, drift=dict(state.get("drift") or {}),
                   settle=settle, other=other)

    def row(self) -> dict:
        """One row of queries.round_states: the stored form with the drift controls flattened into
        drift_<device>_<control> columns."""
        out = self.to_json()
        for device, values in out.pop("drift").items():
            for name, value in (values.items() if isinstance(values, dict) else ()):  # "error": why none
                out[f"{DRIFT_PREFIX}{device}_{name}"] = value
        return out
