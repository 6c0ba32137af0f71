"""The first schema, as the walking skeleton stored results (commit 3af7164).

Written out here, not derived from the models, so that it stays what it was.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "machine",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("cpu_model", sa.String(200), nullable=False),
        sa.Column("cpu_cores", sa.Integer, nullable=False),
        sa.Column("torch_version", sa.String(50), nullable=False),
        sa.Column("cuda_version", sa.String(50)),
        sa.Column("gpu_name", sa.String(200)),
        sa.Column("os", sa.String(200), nullable=False),
        sa.Column("python_version", sa.String(50), nullable=False),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("machine_id", sa.Integer, sa.ForeignKey("machine.id"), nullable=False),
        sa.Column("suite", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("cells_total", sa.Integer, nullable=False),
        sa.Column("cells_done", sa.Integer, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "benchmark",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("contract", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("x_param", sa.String(32), nullable=False),
    )
    op.create_table(
        "method",
        sa.Column("benchmark", sa.String(64), sa.ForeignKey("benchmark.id"), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("latex", sa.Text, nullable=False),
        sa.Column("exponents", sa.JSON, nullable=False),
        sa.Column("backends", sa.JSON, nullable=False),
    )
    op.create_table(
        "result",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("run.id"), nullable=False),
        sa.Column("benchmark", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("device", sa.String(16), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("size", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("samples", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "benchmark", "method", "backend", "device", "dtype", "mode", "size",
                            name="one_result_per_cell"),
    )
    op.create_index("ix_result_run_id", "result", ["run_id"])
    op.create_table(
        "metric",
        sa.Column("result_id", sa.Integer, sa.ForeignKey("result.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
