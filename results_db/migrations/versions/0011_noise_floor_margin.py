"""Measured noise floors widened to the margin comparisons across time now take.

A floor was the change 99% of time-separated pairs of runs stay within: 2.576 standard errors of
two runs' log ratio. It is now an equivalence margin two identical runs' interval lies within 80%
of the time, 1.96 + 1.2816 standard errors (bench_runner.stats.DRIFT_Z; why:
docs/notes/2026-12-05-a-floor-an-identical-pair-can-meet.md). Both are the same spread of the
cell's run medians times a constant, log(1 + floor) = z·√2·s, so each stored floor is rescaled in
log space to what `noise` would store from the same runs now. The constants are written here, not
imported, so that this migration does what it did whatever the code later sets.

Revision ID: 0011
Revises: 0010
"""

import math

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BEFORE_Z = 2.576
AFTER_Z = 1.96 + 1.2816
KEY = ("fingerprint", "benchmark", "method", "backend", "device", "dtype", "mode", "size")


def upgrade() -> None:
    table = sa.table("noise_floor", *(sa.column(c) for c in KEY), sa.column("drift", sa.Float))
    conn = op.get_bind()
    for row in conn.execute(sa.select(table)).mappings().all():
        drift = row["drift"]
        if drift is None or not math.isfinite(drift) or drift <= -1:
            continue
        widened = math.expm1(math.log1p(drift) * AFTER_Z / BEFORE_Z)
        conn.execute(table.update().where(*(table.c[c] == row[c] for c in KEY)).values(drift=widened))
