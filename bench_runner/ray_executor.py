"""A run's cells as Ray tasks: one sweep over many machines, on a cluster a team already runs.

`run --executor ray [--ray-address ADDRESS]` hands each round's cells to Ray, each a task
with exclusive use of what it measures: one GPU for a CUDA cell, for a CPU cell as many
CPUs as the run's threads (all of a node's cores by default), so no two cells on one node
time each other. `--ray-resource NAME=AMOUNT` and `--accelerator-type` place the cells on
the nodes that offer them. Without an address a local Ray instance is started for the run.

The driver (the `run` process) stores every outcome as it arrives, in the run's database,
exactly as a local run does: the progress bar and the Runs page follow it the same way.
Each task runs in a fresh Ray worker process (max_calls=1) with the local workers'
allocator settings, so a cell's time does not depend on what ran before it. A task whose
worker or node dies is submitted once more, wherever Ray places it; a second loss stores
the cell as `crashed` with Ray's reason. A task on several CPU threads settles before
timing (bench_runner.settle) against the median probe its node showed the run's tasks that
had finished when it was submitted (a round's tasks are submitted together, so in practice
from the second round on), and the round's state adds up what its tasks waited. A cell
past its timeout ends its worker (a watchdog inside the task) and is treated as lost. The
driver stores an outcome only when it receives one, so no cell is stored twice.

The ceilings the cells are judged against are measured by a task placed like the cells,
and the run's machine is that node's: a run describes one kind of machine, so a fleet of
different GPUs is one run per accelerator type. Each cell records the node that ran it.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Iterable, Iterator

from . import machine, settle
from .cell import Cell, CellOutcome, _one_line
from .defaults import TimingPolicy
from .executor import Executor
from .worker import allocator_env, load_catalogue, measure_cell

INSTALL = "Ray is not installed: pip install 'hadamard-bench[ray]' (or pip install ray)"
POLL_S = 1.0


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError(INSTALL) from None
    return ray


def _watchdog(timeout_s: float) -> threading.Timer:
    """Ends this worker process if the cell outlives its timeout: a hung kernel cannot be
    interrupted from Python, and a dead worker is what Ray reports and the driver handles."""
    timer = threading.Timer(timeout_s, lambda: os._exit(124))
    timer.daemon = True
    timer.start()
    return timer


def _node() -> dict:
    ray = _ray()
    return {"executor": "ray", "node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}


def _measure(catalogue_ref: str, cell: Cell, policy: TimingPolicy, check: bool, threads: int | None,
             timeout_s: float, probe_references: dict[str, list[float]]) -> tuple[CellOutcome, str, dict]:
    """One cell, inside a Ray worker: (its outcome, the node, how its settling went). The worker
    settles against the probes its node has shown earlier tasks of the run (settle.Ledger)."""
    timer = _watchdog(timeout_s)
    node = _node()
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        settle.settler().offer(probe_references.get(node["node"], []))
        outcome = measure_cell(load_catalogue(catalogue_ref), cell, policy, check)
    finally:
        timer.cancel()
    outcome.provenance = {**(outcome.provenance or {}), **node} if check else outcome.provenance
    return outcome, node["node"], settle.settler().summary()


def _calibrate(cells: list[Cell], window_s: float) -> tuple[dict, dict, str]:
    """The node's facts, its devices' ceilings and its Ray node id, inside a Ray worker."""
    from .calibration import ceilings_here

    return machine.facts(), ceilings_here(cells, window_s), _node()["node"]


class RayExecutor(Executor):
    """Runs a round's cells as Ray tasks and yields their outcomes as they finish (executor.Executor).
    Each task settles on its own node (settle_summary sums them)."""

    def __init__(self, catalogue_ref: str, policy: TimingPolicy, timeout_s: float, threads: int | None = None,
                 address: str | None = None, resources: dict[str, float] | None = None,
                 accelerator_type: str | None = None, plugins_env: dict[str, str] | None = None):
        ray = _ray()
        self.catalogue_ref, self.policy, self.timeout_s, self.threads = catalogue_ref, policy, timeout_s, threads
        self.resources, self.accelerator_type = dict(resources or {}), accelerator_type
        env = {**allocator_env(), **(plugins_env or {})}
        if ray.is_initialized():  # connected elsewhere (an earlier run in this process): this run's cluster only
            ray.shutdown()
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env}, configure_logging=False)
        self._node_cpus = 1  # until calibrate() has seen a node
        self._settling = settle.Ledger()
        self._measure = ray.remote(max_calls=1, max_retries=0)(_measure)
        self._calibrate = ray.remote(max_calls=1, max_retries=1)(_calibrate)

    def _options(self, devices: Iterable[str]) -> dict:
        """What a task needs to itself: a GPU for CUDA; otherwise the run's threads in CPUs, or
        without --threads every CPU of a node like the one calibrated (PyTorch then takes all its
        cores, as a local run does, and no other cell shares the node)."""
        cuda = "cuda" in set(devices)
        options = {"num_gpus": 1 if cuda else 0, "num_cpus": 0 if cuda else (self.threads or self._node_cpus)}
        if self.resources:
            options["resources"] = self.resources
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        return options

    def ceilings(self, cells: list[Cell]) -> tuple[dict, dict]:
        """(facts, ceilings) of a node the cells would run on; the node's CPUs are what a CPU cell
        then asks for."""
        ray = _ray()
        options = self._options(c.device for c in cells)
        self._check_feasible(options)
        facts, ceilings, node = ray.get(self._calibrate.options(**options).remote(cells, self.policy.ceiling_window_s))
        # The cells then ask for this node's CPUs (or --threads, checked above): feasible by construction.
        self._node_cpus = next((n["Resources"].get("CPU", 1) for n in ray.nodes() if n["NodeID"] == node), 1)
        return facts, ceilings

    @staticmethod
    def _check_feasible(options: dict) -> None:
        """Ray keeps a task no node can take pending for ever; a run says so at once instead."""
        need = {"CPU": options.get("num_cpus", 0), "GPU": options.get("num_gpus", 0), **options.get("resources", {})}
        if options.get("accelerator_type"):
            need[f"accelerator_type:{options['accelerator_type']}"] = 0.001
        nodes = [n["Resources"] for n in _ray().nodes() if n.get("Alive")]
        if not any(all(r.get(k, 0) >= v for k, v in need.items() if v) for r in nodes):
            wanted = ", ".join(f"{k} {v:g}" for k, v in need.items() if v)
            raise RuntimeError(f"no node of the Ray cluster offers what each cell needs ({wanted}); its nodes offer "
                               + "; ".join(", ".join(f"{k} {v:g}" for k, v in sorted(r.items())
                                                     if not k.startswith("node:") and "memory" not in k)
                                           for r in nodes))

    def _submit(self, cell: Cell, check: bool):
        return self._measure.options(**self._options([cell.device])).remote(
            self.catalogue_ref, cell, self.policy, check, self.threads, self.timeout_s, self._settling.probes)

    def settle_summary(self) -> dict:
        """How this round's tasks waited out slow spells (bench_runner.settle), for its state."""
        return self._settling.round_summary()

    def measure(self, cell: Cell, check: bool = True) -> CellOutcome:
        return next(self.run_round([(cell, check)]))[1]

    def run_round(self, work: list[tuple[Cell, bool]], order_seed: str | None = None
                  ) -> Iterator[tuple[Cell, CellOutcome]]:
        """(cell, check) pairs in; (cell, outcome) out as each finishes, all at once (a task runs
        one cell, so `order_seed` asks for no turns here). A task lost with its worker or node is
        submitted once more; lost twice, the cell is `crashed`."""
        ray = _ray()
        pending = {self._submit(cell, check): (cell, check, 1) for cell, check in work}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in done:
                    cell, check, attempt = pending.pop(ref)
                    try:
                        outcome, node, settling = ray.get(ref)
                        self._settling.record(node, settling)
                    except ray.exceptions.RayTaskError as exc:  # the task's own code raised
                        outcome = CellOutcome("error", _one_line(exc.cause if exc.cause else exc))
                    except ray.exceptions.RayError as exc:  # the worker or its node is gone
                        if attempt == 1:
                            pending[self._submit(cell, check)] = (cell, check, 2)
                            continue
                        outcome = CellOutcome("crashed", "its Ray worker was lost twice (a node lost, the "
                                              f"worker killed, or the cell past its {self.timeout_s:g} s "
                                              f"timeout): {_one_line(exc)}")
                    yield cell, outcome
        finally:  # stopped early (a cancelled run): nothing keeps measuring behind the driver's back
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Disconnect; a Ray instance started for the run stops with it."""
        ray = _ray()
        if ray.is_initialized():
            ray.shutdown()

