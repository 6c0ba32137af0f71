"""A round's state is one typed record: stored as JSON, read back as one row of
queries.round_states whose columns are the constants readers name."""

from sqlalchemy.orm import sessionmaker

import results_db
from results_db import queries, round_state, store
from results_db.round_state import RoundState


def test_a_round_state_round_trips_and_keeps_what_it_does_not_know():
    state = RoundState(wall_s=2.5, cores=2, other_cpu_share=0.1, drift={"cpu": {"copy_s": 1e-3}},
                       settle={"cells_unsettled": 3, "waited_s": 0.5}, retake=1, retake_cells=4, retaken=2)
    assert RoundState.from_json(state.to_json()) == state
    assert state.to_json()["settle_cells_unsettled"] == 3 and "settle" not in state.to_json()
    newer = {**state.to_json(), "gpu_fans_rpm": 900}  # a key a later runner stored
    assert RoundState.from_json(newer).to_json() == newer


def test_round_states_columns_are_the_names_readers_use(seeded_db):
    factory = sessionmaker(results_db.open_engine(seeded_db))
    with factory() as session, session.begin():
        record = store.start_round(session, 1, 0, 5, None)
        store.finish_round(session, record.id, 8, RoundState(
            load_1m_after=0.5, drift={"cpu": {"probe_s": 4e-5}}, settle={"cells_unsettled": 2, "waited_s": 1.0,
                                                                         "probe_median_s": 4e-5},
            retake=1, retake_cells=3, retaken=1, retake_calm_waited_s=2.0))
    with factory() as session:
        row = queries.round_states(session, [1]).iloc[0]
    assert row[round_state.SETTLE_UNSETTLED] == 2 and row[round_state.SETTLE_WAITED] == 1.0
    assert row[round_state.SETTLE_PROBE_MEDIAN] == 4e-5 and row[f"{round_state.DRIFT_PREFIX}cpu_probe_s"] == 4e-5
    assert (row[round_state.RETAKE], row[round_state.RETAKE_CELLS], row[round_state.RETAKEN],
            row[round_state.RETAKE_CALM_WAITED]) == (1, 3, 1, 2.0)
    assert (row["run_id"], row["round"], row["cells"], row["load_1m_after"]) == (1, 1, 8, 0.5)
