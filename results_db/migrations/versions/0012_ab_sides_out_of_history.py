"""An `ab` session's sides leave the machine's latest results and its history.

A side is timed in turns with another version, on huge pages, perhaps with another interpreter
or environment (bench_runner.ab): its times are its session's, not the machine's. On a 2-vCPU VM
plain runs of three of the eight elementwise cells at 4M elements read 1.10-1.38 times an `ab`
A/A's times of the same code, so `gate` failed a plain run judged against such sides. From
this schema on, LatestResult, history points and gate's baselines hold plain runs only
(`Run.plain`). Here the latest results that pointed at a side fall back to the newest plain
run's, and the history points of every cell a side measured are dropped: the points are a cache,
and the next read searches those cells again without the sides.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

KEY = ("benchmark", "method", "backend", "device", "dtype", "mode", "size")


def upgrade() -> None:
    conn = op.get_bind()
    run = sa.table("run", sa.column("id"), sa.column("paired_with"))
    result = sa.table("result", sa.column("id"), sa.column("run_id"), *(sa.column(c) for c in KEY))
    latest = sa.table("latest_result", sa.column("result_id"))
    point = sa.table("history_point", sa.column("result_id"))
    sides = sa.select(run.c.id).where(run.c.paired_with.is_not(None))
    cells = set(conn.execute(sa.select(*(result.c[c] for c in KEY)).where(result.c.run_id.in_(sides)).distinct()))
    # The result table has no index on the cell key, so its results are read once and picked here:
    # a join in SQL took 32 s over 300,000 results in SQLite.
    if cells:
        chosen = [{"id": row[0]} for row in conn.execute(sa.select(result.c.id, *(result.c[c] for c in KEY)))
                  if tuple(row[1:]) in cells]
        conn.execute(point.delete().where(point.c.result_id == sa.bindparam("id")), chosen)
    conn.execute(latest.delete().where(latest.c.result_id.in_(
        sa.select(result.c.id).where(result.c.run_id.in_(sides)))))
    # Refilled by the statement that keeps the table as results land (imported, as 0007 does, so
    # that the two cannot disagree).
    from results_db import store

    store.keep_latest(conn)
