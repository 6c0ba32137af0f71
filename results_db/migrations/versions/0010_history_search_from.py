"""History points say where a cell's change-point search resumes (`search_from`: the first run of
the search's last window), so a new run is searched with that window alone.

Points cached before keep their medians and intervals (a result's own, computed once at some cost
per result), and their change points, found by a search over each whole history: the same as the
windowed search finds on a history of up to 50 runs. Having no `search_from` point, a cell is
searched whole, window by window, the next time one of its results is new.

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
    with op.batch_alter_table("history_point") as batch:
        batch.add_column(sa.Column("search_from", sa.Boolean, nullable=False, server_default=sa.false()))
