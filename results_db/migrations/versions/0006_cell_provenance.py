"""Provenance per cell: what ran each result (checkout, versions, TF32 switches in force, the
kernels a dispatcher chose), and which backends of a method reach cuDNN on a GPU.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Results stored before have none: their TF32 is read from their run's record instead.
    with op.batch_alter_table("result") as batch:
        batch.add_column(sa.Column("provenance", sa.JSON))
    with op.batch_alter_table("method") as batch:
        batch.add_column(sa.Column("cudnn", sa.JSON))
