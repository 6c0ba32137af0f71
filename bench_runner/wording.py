"""The sentences that explain a comparison, for `compare`, `run` and the dashboard alike: the
numbers come from bench_runner.stats and bench_runner.comparison, the words from here."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from results_db.round_state import RETAKE, RETAKE_CALM_WAITED, RETAKE_CELLS, SETTLE_UNSETTLED

from .comparison import interval_half_width, outlasted, regular_rounds, retaken, unsettled_share
from .defaults import FLOOR
from .stats import INCONCLUSIVE


def inconclusive_note(table: pd.DataFrame, floor: float = FLOOR) -> str | None:
    """Why the `inconclusive` cells of a comparison are, in its own figures: a cell is `no change`
    only when its change and its interval's half-width fit inside the floor together, so the
    median half-width says how small a change must be to be told from none (None when no cell is
    inconclusive). The same sentence for `compare` and the Diff page."""
    count = int((table["verdict"] == INCONCLUSIVE).sum())
    if not count:
        return None
    width = float(interval_half_width(table).median())
    text = (f"{count} of {len(table)} cells are inconclusive: a cell is `no change` only when its whole 95% "
            f"interval lies within ±{floor:.0%}")
    if not np.isfinite(width):
        return text + "; these cells have no interval (too few samples)"
    room = floor - width
    text += (f", and the intervals here are a median ±{width:.1%} wide, so only a measured change under about "
             f"{room:.1%} can be told from none" if room > 0.001 else
             f", and the intervals here are a median ±{width:.1%} wide: as wide as the floor")
    return text + ". More rounds on both sides narrow the intervals; a wider floor (`--threshold`) asks less of them"


def retake_text(states: pd.DataFrame, run_id: int) -> str | None:
    """`12 of the 40 cell-rounds timed in a slow spell were retaken settled, in 2 passes`, for a
    run whose spells called for retakes; None otherwise."""
    mine = states[states["run_id"] == run_id] if not states.empty else states
    if mine.empty or RETAKE not in mine or not mine[RETAKE].notna().any():
        return None
    rounds = mine[regular_rounds(mine)]
    spelled = int(rounds[SETTLE_UNSETTLED].fillna(0).sum()) if SETTLE_UNSETTLED in rounds else 0
    passes = mine[mine[RETAKE].notna()]
    calm = "" if passes[RETAKE_CELLS].iloc[-1] else "; the last pass found the spell still on after " \
        f"{passes[RETAKE_CALM_WAITED].iloc[-1]:.0f} s and retook nothing"
    return (f"{retaken(mine, [run_id])} of the {spelled} cell-rounds timed in a slow spell were retaken settled, "
            f"in {len(passes)} pass{'es' * (len(passes) > 1)}{calm}")


def settling_caveat(states: pd.DataFrame, sides: dict[str, Sequence[int]]) -> str | None:
    """A sentence when a side timed more than UNSETTLED_WARN of its cell-rounds unsettled: its
    cells of small threaded steps may have run up to 1.7× slower for the machine's sake, over
    stretches longer than the rounds, which the intervals cannot see. None otherwise."""
    counts = {name: unsettled_share(states, runs) for name, runs in sides.items()}
    if not any(outlasted(share) for share in counts.values()):
        return None
    told = ", ".join(f"{name} {bad} of {total}" for name, (bad, total) in counts.items() if total)
    return (f"cell-rounds timed while the cores were slow to work together (unsettled): {told}; a change in a "
            f"threaded CPU cell may then be the machine's, not the code's: measure again before trusting it")


def drift_text(ratios: dict[str, float]) -> str:
    """`cpu copy 0.982×, cpu matmul 1.003×`."""
    return ", ".join(f"{name} {ratio:.3f}×" for name, ratio in sorted(ratios.items()))


def explain_verdicts(floor: float = FLOOR) -> str:
    """One paragraph for a page or a table footer: what each verdict means."""
    return (f"Ratio of medians with a 95% interval from a hierarchical bootstrap (rounds, then samples "
            f"within them). A change is called only when the whole interval lies beyond ±{floor:.0%} and a "
            f"Mann–Whitney U test stays significant after Benjamini–Hochberg across the cells compared; "
            f"`no change` when the whole interval lies within ±{floor:.0%}; `inconclusive` when it straddles "
            f"that floor: measure again with more rounds to decide. A regression (an improvement) is also held "
            f"`inconclusive` when the after (before) side still holds a round timed while the cores were slow "
            f"to work together, or ran on a CPU in a run such a spell outlasted, since a spell only adds time "
            f"(column `unsettled`).")
