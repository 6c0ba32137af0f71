"""The latest `ok` result of each cell on each machine, kept at write time, so the dashboard's
pages read one row per cell instead of every result ever stored; and an index that counts each
run's ok and failed cells without reading the results themselves.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "latest_result",
        sa.Column("machine_id", sa.Integer, sa.ForeignKey("machine.id"), primary_key=True),
        sa.Column("benchmark", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(32), primary_key=True),
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("dtype", sa.String(16), primary_key=True),
        sa.Column("mode", sa.String(16), primary_key=True),
        sa.Column("size", sa.String(200), primary_key=True),
        sa.Column("variant", sa.String(100), primary_key=True),
        sa.Column("result_id", sa.Integer, sa.ForeignKey("result.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_latest_result_result_id", "latest_result", ["result_id"])
    op.create_index("ix_result_run_id_status", "result", ["run_id", "status"])
    # Filled from the results already stored, by the same statement that keeps it up to date
    # as results land (imported here, not copied, so the two cannot disagree).
    from results_db import store

    store.keep_latest(op.get_bind(), plain_only=False)  # no run is an `ab` side before 0008; 0012 says why it matters
