"""The Ray executor when a node dies mid-sweep: the lost node's cells run again elsewhere, and
nothing is lost or stored twice. A module of its own, with a cluster of its own, so that a test
worker runs it beside test_ray's (each waits on Ray's worker processes, which import torch)."""

import threading
import time

import pytest

from bench_runner.cli import main
from tests.conftest import required_in_ci
from tests.bench_runner.test_ray import CELLS, SWEEP, local_cluster, stored

ray = required_in_ci("ray", "Ray is the optional `ray` extra (make test-all installs it)")


@pytest.mark.ray
def test_a_node_killed_mid_sweep_loses_and_doubles_nothing(tmp_path):
    # A cluster of its own: the node killed here must not be missed by test_ray's tests.
    c = local_cluster()
    survivor = c.add_node(num_cpus=1, resources={"bench": 1})
    doomed = c.add_node(num_cpus=1, resources={"bench": 1})
    c.wait_for_nodes()
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    codes = []
    sweep = threading.Thread(target=lambda: codes.append(main([*SWEEP, "--ray-address", c.address,
                                                                "--ray-resource", "bench=1", "--db", url])))
    try:
        sweep.start()
        deadline = time.monotonic() + 300
        landed = 0
        while time.monotonic() < deadline:  # kill it once cells have started landing
            try:
                landed = len(stored(url))
                if landed >= 1:
                    break
            except Exception:  # noqa: BLE001 -- the database is being created
                pass
            time.sleep(0.2)
        c.remove_node(doomed, allow_graceful=False)
        assert landed < CELLS  # killed mid-sweep, with cells still to run
        sweep.join(timeout=600)
        assert not sweep.is_alive() and codes == [0]
        rows = stored(url)
        assert len(rows) == CELLS and len({r[0] for r in rows}) == CELLS, rows
        assert {r[1] for r in rows} == {"ok"}, rows  # the lost node's cells ran again on the survivor
        assert survivor.node_id in {r[2] for r in rows}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
