"""Storing what a round measured of a cell: its first measurement with its statistics, rates
and plausibility, and a later round's samples pooled with the earlier ones."""

from __future__ import annotations

from sqlalchemy.orm import Session

from results_db import store

from . import calibration, plausibility, stats
from .cell import Cell, CellOutcome


def derived_metrics(m: dict, ceilings: dict | None, dtype: str) -> dict[str, float | None]:
    """Rates from a cell's counts and median: where it sits on its device's roofline."""
    seconds, flop_count, moved = m.get("time_median_s"), m.get("flops"), m.get("bytes")
    if not seconds:
        return {}
    return {
        "gflops": flop_count / seconds / 1e9 if flop_count is not None else None,
        "gbps": moved / seconds / 1e9 if moved else None,
        "intensity": flop_count / moved if moved and flop_count is not None else None,
        "roofline_fraction": (calibration.roofline_fraction(flop_count, moved, seconds, ceilings, dtype)
                              if ceilings else None),
    }


def rounds_settled(first: bool, status: str, round_index: int, rounds: int) -> int:
    """How many of a run's cell-rounds storing one round of a cell settles: one; for a first
    measurement not `ok` (skipped, failed, found implausible), this round and every later one,
    since such a cell is measured in none of them; none for a round more beyond the run's `rounds`
    (sweep.execute's), which its total does not hold."""
    if round_index >= rounds:
        return 0
    return rounds - round_index if first and status != "ok" else 1


def store_round(session: Session, run_id: int, cell: Cell, outcome: CellOutcome, round_index: int,
                 rounds: int, ceilings: dict | None) -> str:
    """Store one round of one cell; returns the cell's status after it."""
    result = store.find_result(session, run_id, cell.key())
    if result is None:  # the cell's first measurement
        samples = outcome.samples or []
        sample_rounds = [round_index] * len(samples) if samples else None
        metrics = dict(outcome.metrics)
        status, message = outcome.status, outcome.message
        if status == "ok":
            metrics.update(stats.summarize(samples, sample_rounds))
            metrics["unsettled_rounds"] = float(outcome.unsettled)
            metrics.update(derived_metrics(metrics, ceilings, cell.dtype))
            message = implausible(cell, metrics, ceilings)
            status = "implausible" if message else status
        store.record_result(session, run_id, cell.key(), status, message, outcome.samples,
                            metrics, sample_rounds=sample_rounds, sample_cycles=_cycles(outcome),
                            progress=rounds_settled(True, status, round_index, rounds), provenance=outcome.provenance)
        return status
    if rounds_settled(False, outcome.status, round_index, rounds):
        store.count_progress(session, run_id)
    if outcome.status != "ok":
        store.note_round_failure(session, result, round_index, outcome.status, outcome.message)
        return result.status
    store.add_round(session, result, list(outcome.samples or []), round_index, _cycles(outcome))
    return restate(session, cell, result, ceilings, unsettled=outcome.unsettled)


def _cycles(outcome: CellOutcome) -> list[int] | None:
    """The cycle of each of an outcome's samples: sample i of a member that took turns comes from
    cycle i (timing.take_turns); None for one timed alone."""
    return list(range(len(outcome.samples))) if outcome.interleaved and outcome.samples else None


def restate(session: Session, cell: Cell, result, ceilings: dict | None, unsettled: bool) -> str:
    """A stored cell's statistics again, from all the samples it now holds, with one more round
    counted unsettled if the round just added was; returns its status."""
    metrics = stats.summarize(result.samples, result.sample_rounds)
    kept = {m.name: m.value for m in result.metrics}
    metrics["unsettled_rounds"] = (kept.get("unsettled_rounds") or 0.0) + unsettled
    metrics.update(derived_metrics({**kept, **metrics}, ceilings, cell.dtype))
    store.set_metrics(session, result, metrics)
    message = implausible(cell, {**kept, **metrics}, ceilings)
    if message:  # the pooled median is what is judged: a later round can make it impossible too
        store.demote(session, result, "implausible", message)
    return result.status


def implausible(cell: Cell, metrics: dict, ceilings: dict | None) -> str | None:
    return plausibility.check(metrics, cell.device, cell.dtype, ceilings, plausibility.device_name(cell.device))
