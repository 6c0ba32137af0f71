"""Runs record their provenance and calibrated ceilings; methods name what they are compared
with; results are indexed by benchmark (the dashboard's per-benchmark reads).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before have none of these: an empty object or list, not NULL, as the models write.
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("provenance", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("calibration", sa.JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("method") as batch:
        batch.add_column(sa.Column("against", sa.JSON, nullable=False, server_default="[]"))
    op.create_index("ix_result_benchmark", "result", ["benchmark"])
