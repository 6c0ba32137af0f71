"""Histories: a hardware fingerprint on every machine, people's marks on a history, and a cache
of each result's median, interval and change-point flag.

Revision ID: 0005
Revises: 0004
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _fingerprint(cpu_model, cpu_cores, gpu_name) -> str:
    # results_db.store.fingerprint_of as it stood at this revision. Machines stored before it
    # have no memory size or driver on record: they get None for both, honestly, and so a
    # fingerprint of their own rather than a guess that would merge them with newer runs.
    values = {"cpu_model": cpu_model, "cpu_cores": cpu_cores, "memory_gib": None, "gpu_name": gpu_name,
              "driver_major": None}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def upgrade() -> None:
    with op.batch_alter_table("machine") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("memory_gib", sa.Integer))
        batch.add_column(sa.Column("driver_version", sa.String(50)))
    connection = op.get_bind()
    machine = sa.table("machine", sa.column("id"), sa.column("cpu_model"), sa.column("cpu_cores"),
                       sa.column("gpu_name"), sa.column("fingerprint"))
    for row in connection.execute(sa.select(machine.c.id, machine.c.cpu_model, machine.c.cpu_cores,
                                            machine.c.gpu_name)).all():
        connection.execute(machine.update().where(machine.c.id == row.id)
                           .values(fingerprint=_fingerprint(row.cpu_model, row.cpu_cores, row.gpu_name)))
    op.create_index("ix_machine_fingerprint", "machine", ["fingerprint"])
    op.create_table(
        "mark",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("run.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("cells", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mark_run_id", "mark", ["run_id"])
    op.create_table(
        "history_point",
        sa.Column("result_id", sa.Integer, sa.ForeignKey("result.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("time_median_s", sa.Float),
        sa.Column("ci_low", sa.Float),
        sa.Column("ci_high", sa.Float),
        sa.Column("change_point", sa.Boolean, nullable=False),
    )
