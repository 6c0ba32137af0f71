"""The Ray executor on a real local Ray cluster: a head that runs nothing and two worker nodes
with distinct custom resources. Every cell lands once, on the node its resources asked for
(a node killed mid-sweep: test_ray_node_loss)."""

import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from results_db import queries
from results_db.models import Result
from tests.conftest import required_in_ci

ray = required_in_ci("ray", "Ray is the optional `ray` extra (make test-all installs it)")
from ray.cluster_utils import Cluster  # noqa: E402

# Three element-wise methods at the smoke size: three cells, each in a fresh Ray worker (a second
# or two each to import torch when alone, ten and more beside the other tests on CI's two cores),
# enough to see each land once, on its node, and a node die between them.
METHODS = ["hadamard", "silu", "copy"]
SWEEP = ["run", "--suite", "smoke", "--benchmark", "elementwise", "--backend", "eager", "--executor", "ray",
         "--quiet", "--cell-timeout", "120", *[a for m in METHODS for a in ("--method", m)]]
CELLS = len(METHODS)


def local_cluster() -> Cluster:
    """A head that runs nothing, whose cluster runs its workers at normal priority. Ray starts them
    at nice 15, and beside the other tests on two cores such a worker waited its turn for minutes:
    importing torch took 95 s in one beside four busy loops, 4 s at nice 0, and this module was
    CI's longest (318 s, 19 s alone)."""
    return Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                         "_system_config": {"worker_niceness": 0}})


@pytest.fixture(scope="module")
def cluster():
    c = local_cluster()
    # Two CPUs a node, so a task gets two threads (Ray sets OMP_NUM_THREADS to its CPUs) and settles.
    nodes = {name: c.add_node(num_cpus=2, resources={"bench": 1, name: 1}) for name in ("node_a", "node_b")}
    c.wait_for_nodes()
    try:
        yield c, nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


def stored(url):
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        return [(r.method, r.status, (r.provenance or {}).get("node"), r.message)
                for r in session.query(Result).order_by(Result.id)]


@pytest.mark.ray
def test_every_cell_lands_once_on_the_node_its_resources_ask_for(cluster, tmp_path):
    # node_b, the second node: with node_a as free as it, only the resource can send every cell there.
    c, nodes = cluster
    name = "node_b"
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    assert main([*SWEEP, "--ray-address", c.address, "--ray-resource", f"{name}=1", "--settle", "0.5",
                 "--db", url]) == 0
    rows = stored(url)
    assert len(rows) == CELLS and len({r[0] for r in rows}) == CELLS, rows
    assert {r[1] for r in rows} == {"ok"}, rows
    assert {r[2] for r in rows} == {nodes[name].node_id}
    # Each round's state says how its tasks settled (bench_runner.settle; the smoke suite would
    # not, hence --settle): all ran on one node, so the round knows that node's median probe.
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        states = queries.round_states(session, [1])
    assert len(states) == 1 and states["settle_cells_waited"].iloc[0] >= 0
    assert 1e-6 < states["settle_probe_median_s"].iloc[0] < 0.1


@pytest.mark.ray
def test_an_agent_runs_a_submitted_run_over_its_ray_cluster(cluster, tmp_path):
    """`submit` from anywhere, an agent on the cluster's head fans the claimed run out over Ray."""
    c, nodes = cluster
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    # One cell: the test above shows every cell landing where its resources ask; this one, the hand-off.
    selection = ["--suite", "smoke", "--benchmark", "elementwise", "--backend", "eager", "--method", METHODS[0]]
    assert main(["submit", "--label", "cluster", *selection, "--device", "cpu", "--rounds", "1", "--db", url]) == 0
    assert main(["agent", "--label", "cluster", "--once", "--quiet", "--executor", "ray", "--ray-address", c.address,
                 "--ray-resource", "node_a=1", "--db", url]) == 0
    rows = stored(url)
    assert [(r[0], r[1]) for r in rows] == [(METHODS[0], "ok")], rows
    assert {r[2] for r in rows} == {nodes["node_a"].node_id}


@pytest.mark.ray
def test_a_resource_no_node_offers_fails_the_run_at_once(cluster, tmp_path, capsys):
    c, _ = cluster
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    assert main([*SWEEP, "--ray-address", c.address, "--ray-resource", "nowhere=1", "--db", url]) == 2
    assert "no node of the Ray cluster offers what each cell needs (CPU 1, nowhere 1)" in capsys.readouterr().err
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        run = session.get(results_db.Run, 1)
        assert run.status == "failed" and "nowhere" in run.message


@pytest.mark.ray
def test_a_bad_ray_resource_is_refused_before_anything_is_stored(tmp_path, capsys):
    """The Ray flags' refusals that need no Ray are in tests/test_bad_inputs.py."""
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    assert main([*SWEEP, "--ray-resource", "x=oops", "--db", url]) == 2
    assert "expected NAME=AMOUNT" in capsys.readouterr().err
    assert not (tmp_path / "refused.db").exists() or stored(url) == []
