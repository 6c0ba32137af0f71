"""Interleaved timing: the members of a comparison group (one benchmark, size, device, dtype and
mode) take turns block by block within a round, and each sample remembers its cycle, so a ratio
between two members pairs the blocks they timed side by side (bench_runner.timing.interleave).
Two versions measured in one `ab` session are two runs whose cells took turns: each names the
other (`paired_with`), and their cycles pair across the two.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Results stored before were timed one cell at a time: no cycles, nothing to pair.
    with op.batch_alter_table("result") as batch:
        batch.add_column(sa.Column("sample_cycles", sa.JSON))
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("paired_with", sa.Integer))

