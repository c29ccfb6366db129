"""posture_report: CISA MS.AAD.7 posture reports as taken (a plan"s before and after)

Revision ID: fd6fd71b4ef5
Revises: 8ef71cb75adf
Create Date: 2026-12-06 04:48:57.550452
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fd6fd71b4ef5"
down_revision: str | None = "8ef71cb75adf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "posture_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=36), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("phase_key", sa.String(length=63), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("roles_not_in_tenant", sa.JSON(), nullable=False),
        sa.Column("mailboxes", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plan.id"], name=op.f("fk_posture_report_plan_id_plan")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_posture_report_tenant_id_tenant")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posture_report")),
    )
    with op.batch_alter_table("posture_report", schema=None) as batch_op:
        batch_op.create_index("ix_posture_report_plan_scope", ["plan_id", "scope"], unique=False)
        batch_op.create_index(
            "ix_posture_report_tenant_scope", ["tenant_id", "scope"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("posture_report", schema=None) as batch_op:
        batch_op.drop_index("ix_posture_report_tenant_scope")
        batch_op.drop_index("ix_posture_report_plan_scope")

    op.drop_table("posture_report")
