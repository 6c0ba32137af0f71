"""Rounds: a run measures every cell in several rounds, each in a fresh worker process; samples
remember their round, and each round records its seed and the machine's state.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs from before measured each cell once, in one process: one round, no seed.
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("rounds", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("seed", sa.Integer))
    with op.batch_alter_table("result") as batch:
        batch.add_column(sa.Column("sample_rounds", sa.JSON))
    op.create_table(
        "round",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("run.id"), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("cells", sa.Integer, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_round_run_id", "round", ["run_id"])
