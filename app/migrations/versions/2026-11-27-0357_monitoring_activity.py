"""monitoring: collected PIM activity, audit records, standing assignments, cursors

Revision ID: 54f001c2e2ed
Revises: 7abde1c2a234
Create Date: 2026-11-27 03:57:22.201564
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "54f001c2e2ed"
down_revision: str | None = "7abde1c2a234"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitoring_cursor",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("position", sa.DateTime(timezone=True), nullable=True),
        sa.Column("covers_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_monitoring_cursor_tenant_id_tenant")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "source", name=op.f("pk_monitoring_cursor")),
    )
    op.create_table(
        "pim_audit_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("audit_id", sa.String(length=200), nullable=False),
        sa.Column("activity", sa.String(length=300), nullable=False),
        sa.Column("activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("principal_id", sa.String(length=36), nullable=True),
        sa.Column("role_definition_id", sa.String(length=36), nullable=True),
        sa.Column("initiated_by", sa.String(length=300), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_pim_audit_record_tenant_id_tenant")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pim_audit_record")),
        sa.UniqueConstraint(
            "tenant_id", "audit_id", name=op.f("uq_pim_audit_record_tenant_id_audit_id")
        ),
    )
    with op.batch_alter_table("pim_audit_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pim_audit_record_tenant_at", ["tenant_id", "activity_at"], unique=False
        )

    op.create_table(
        "pim_request_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("principal_name", sa.String(length=300), nullable=True),
        sa.Column("role_definition_id", sa.String(length=36), nullable=False),
        sa.Column("directory_scope_id", sa.String(length=400), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_duration_seconds", sa.Integer(), nullable=True),
        sa.Column("approval_required", sa.Boolean(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("ticket_number", sa.String(length=200), nullable=True),
        sa.Column("ticket_system", sa.String(length=200), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_pim_request_record_tenant_id_tenant")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pim_request_record")),
        sa.UniqueConstraint(
            "tenant_id", "request_id", name=op.f("uq_pim_request_record_tenant_id_request_id")
        ),
    )
    with op.batch_alter_table("pim_request_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pim_request_record_tenant_requested", ["tenant_id", "requested_at"], unique=False
        )

    op.create_table(
        "standing_assignment_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("assignment_id", sa.String(length=200), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("principal_type", sa.String(length=32), nullable=True),
        sa.Column("principal_name", sa.String(length=300), nullable=True),
        sa.Column("role_definition_id", sa.String(length=36), nullable=False),
        sa.Column("directory_scope_id", sa.String(length=400), nullable=False),
        sa.Column("created_outside_pim", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_standing_assignment_record_tenant_id_tenant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standing_assignment_record")),
        sa.UniqueConstraint(
            "tenant_id",
            "assignment_id",
            name=op.f("uq_standing_assignment_record_tenant_id_assignment_id"),
        ),
    )
    with op.batch_alter_table("standing_assignment_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_standing_assignment_record_tenant_gone", ["tenant_id", "gone_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("standing_assignment_record", schema=None) as batch_op:
        batch_op.drop_index("ix_standing_assignment_record_tenant_gone")

    op.drop_table("standing_assignment_record")
    with op.batch_alter_table("pim_request_record", schema=None) as batch_op:
        batch_op.drop_index("ix_pim_request_record_tenant_requested")

    op.drop_table("pim_request_record")
    with op.batch_alter_table("pim_audit_record", schema=None) as batch_op:
        batch_op.drop_index("ix_pim_audit_record_tenant_at")

    op.drop_table("pim_audit_record")
    op.drop_table("monitoring_cursor")
