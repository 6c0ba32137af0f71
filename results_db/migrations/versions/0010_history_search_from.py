"""History points say where a cell's change-point search resumes (`search_from`: the first run of
the search's last window), so a new run is searched with that window alone. The points cached
before were found by a search over each whole history; they are dropped, as derived data, and
recomputed by the windowed search the first time their cells are read or refreshed.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM history_point")
    with op.batch_alter_table("history_point") as batch:
        batch.add_column(sa.Column("search_from", sa.Boolean, nullable=False, server_default=sa.false()))
