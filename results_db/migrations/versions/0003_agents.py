"""Agents: benchmark machines that take runs from the queue, and say when they were last seen.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(100), nullable=False, unique=True),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("machine_id", sa.Integer, sa.ForeignKey("machine.id")),
        sa.Column("pid", sa.Integer),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
