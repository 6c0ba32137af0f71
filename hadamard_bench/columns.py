"""What each column of a results export means (`export --format csv|json`): one place, from which
docs/columns.md is generated (`python -m hadamard_bench.columns > docs/columns.md`), so that the
page and the exports cannot disagree; a test holds every column a run exports to having an entry.

Times are seconds per call of the cell's module, forward alone or forward and backward (`mode`),
over every round of the run pooled, unless an entry says otherwise."""

from __future__ import annotations

# column → what it holds, in the order an export writes them (the metrics after the fixed columns
# come in the order the database returns them; a method may add facts of its own).
COLUMNS = {
    # The cell.
    "benchmark": "the task: one input/output contract and one size sweep per suite (`hadamard-bench list`)",
    "method": "one formula for the task: a Hadamard method, a baseline or a reference yardstick",
    "backend": "how the method ran: `eager`, `compile` (torch.compile, Inductor), `library` or `triton`",
    "is_baseline": "true for a baseline or a reference (`role`), which speed-ups are measured against",
    "role": "`hadamard`, `baseline` or `reference`",
    "device": "`cpu` or `cuda`",
    "dtype": "`float32`, `bfloat16` or `float16`; `tf32` for a float32 GPU cell that ran TF32 arithmetic",
    "tf32": "whether TF32 ran in the cell: `off` (always, but for a float32 cell on CUDA), `cudnn`, `matmul` "
            "or `matmul+cudnn`",
    "mode": "`forward` (inference) or `train` (forward and backward)",
    "size": "the sizes of the cell, as `N=4096 C=512`",
    # What was measured.
    "time_median_s": "median seconds per call, every sample of every round pooled",
    "time_iqr_s": "the interquartile range of a round's samples, the median over the rounds: the spread "
                  "within one process",
    "time_min_s": "the fastest sample",
    "samples": "how many samples (timed blocks of calls) the rounds took in all",
    "peak_mem_bytes": "the most memory a call held above what was allocated before it (CUDA's allocator "
                      "on a GPU, the profiler's record on a CPU)",
    "flops": "the method's analytic FLOPs per call, element-wise work included, backward too in `train`",
    "flops_counted": "FLOPs counted while the eager module ran: matrix products, convolutions and attention "
                     "as torch.utils.flop_counter counts them, plus one per output element of every "
                     "element-wise op (`bench_runner/flops.py` states the convention)",
    "bytes": "the least bytes a forward call must move (its inputs, weights and output, each once), by the "
             "method's formula; the same figure in `train`",
    "status": "`ok`, `skipped` (it could not run here) or how it failed: `error`, `oom`, `mismatch` (its "
              "output differs from the float64 reference), `crashed`, `timeout`, `implausible` (timed "
              "faster than the device can go)",
    "message": "why a cell was skipped or failed, and which of its later rounds failed",
    # Where it ran.
    "run_id": "the run that measured the cell",
    "suite": "the run's suite: `smoke`, `quick`, `full` or `paper`",
    "machine": "the machine's label: its hostname and CPU or GPU model",
    "created_at": "when the cell's first round was stored (UTC)",
    "commit": "the project's commit the cell was measured from (the run's `git_commit` where the cell "
              "recorded none)",
    "kernels": "the kernels a dispatcher chose for the call (e.g. `sdpa: flash (CPU)`); empty where none chose",
    "git_commit": "the project's commit the run started from, with `-dirty` where the checkout had local changes",
    "torch": "the run's PyTorch version",
    "cuda": "the CUDA version PyTorch was built with; empty for a CPU build",
    "threads": "the CPU threads PyTorch ran on",
    # Further metrics: in the order the database returns them, where any cell has one.
    "avg_power_w": "the GPU's mean power while the call was repeated for the energy figure (`run --energy`)",
    "calls_per_sample": "how many calls one timed block made; a sample is the block's time divided by it",
    "density": "a pruned layer's share of kept weights (pruned_linear)",
    "energy_j_per_call": "joules per call from the GPU's energy counter (`run --energy`)",
    "failed_rounds": "how many of the cell's rounds failed after an `ok` one; `message` says how",
    "first_call_s": "seconds of the cell's first call, compiling included (torch.compile's one-time start in "
                    "the process not)",
    "gbps": "`bytes` over `time_median_s`, in GB/s",
    "gflops": "`flops` over `time_median_s`, in GFLOP/s",
    "intensity": "`flops` per byte of `bytes`",
    "interleaved": "how many members of the cell's comparison group took turns with it, block by block "
                   "(empty: timed alone)",
    "mask_density": "the share of the mask that is set (masked_conv)",
    "median_rel_ci": "the half-width of a round's 95% interval of its median, relative to that median, "
                     "the median over the rounds",
    "noisy": "true when `time_iqr_s` or `round_spread` exceeds 10% of the median",
    "rank": "the rank the low-rank update reaches (low_rank_update)",
    "roofline_fraction": "the time achieved over the least the device's measured ceilings allow: FLOP/s over "
                         "min(peak, intensity × bandwidth), or bandwidth over bandwidth for work without FLOPs",
    "round_spread": "the range of the rounds' medians over the median: the spread between processes",
    "rounds": "how many rounds the cell was timed in, each in a fresh process",
    "time_graph_median_s": "median seconds per call replayed from a CUDA graph: the time without launch "
                           "overhead (GPU, forward)",
    "time_mean_s": "mean seconds per call over every sample",
    "unsettled_rounds": "how many rounds were timed while the CPU cores were slow to work together "
                        "(a slow spell: docs/measurement.md)",
    # The speed-up against the baseline, in the same run (bench_runner/speedups.py).
    "baseline": "the method the cell's speed-up is measured against, at the same backend, size, device, "
                "dtype and mode in the same run; empty for a baseline or where the baseline did not end `ok`",
    "speedup": "the baseline's time over the method's: above 1, the method is faster",
    "speedup_ci_low": "the low end of the speed-up's 95% interval",
    "speedup_ci_high": "the high end of the speed-up's 95% interval",
    "speedup_verdict": "`faster` or `slower` (paired: the 95% interval excludes 1 and the speed-up lies "
                       "beyond ±5%; timed apart: the whole interval lies beyond ±5% and the rank test holds), "
                       "`no change` (the 90% interval within ±5%) or `inconclusive`",
    "speedup_paired": "true when the method and its baseline took turns, so the speed-up comes from their "
                      "per-cycle ratios; false when each was timed alone",
    "speedup_rounds_apart": "paired only: how many times further apart the rounds' speed-ups lie than their "
                            "cycles explain; 2 or more, something that held for a whole round (other work on the "
                            "cores) set the speed-up, and more rounds narrow its interval only as their square root",
}


def markdown() -> str:
    """docs/columns.md: every column with what it holds."""
    rows = "\n".join(f"| `{name}` | {meaning} |" for name, meaning in COLUMNS.items())
    return ("# The columns of a results export\n\n"
            "<!-- Generated by `python -m hadamard_bench.columns > docs/columns.md`, from\n"
            "     hadamard_bench/columns.py: edit that, then run this again. -->\n\n"
            "`hadamard-bench export --format csv` (or `json`) writes one row per cell with these columns. "
            "Times are seconds per call of the cell's module, forward alone or forward and backward "
            "(`mode`), every round of the run pooled. A metric that no exported cell has a value for "
            "is left out (the GPU's, on a CPU), and a plugin's method may add facts of its own. The "
            "speed-up columns are those of the Compare page ([measurement.md](measurement.md)).\n\n"
            "| column | what it holds |\n| --- | --- |\n" + rows + "\n")


if __name__ == "__main__":
    print(markdown(), end="")
