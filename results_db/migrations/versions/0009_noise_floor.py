"""Measured noise floors: per hardware fingerprint and cell, how far runs taken at different
times move apart (`hadamard-bench noise`), which comparisons across time take as their floor.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "noise_floor",
        sa.Column("fingerprint", sa.String(16), primary_key=True),
        sa.Column("benchmark", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(32), primary_key=True),
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("dtype", sa.String(16), primary_key=True),
        sa.Column("mode", sa.String(16), primary_key=True),
        sa.Column("size", sa.String(200), primary_key=True),
        sa.Column("drift", sa.Float, nullable=False),
        sa.Column("run_ids", sa.JSON, nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
    )

