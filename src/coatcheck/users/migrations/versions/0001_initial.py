"""The users and the audit log, as ``metadata.create_all`` made them before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:46:32
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create coatcheck_users and coatcheck_audit_events with their indexes."""
    op.create_table(
        "coatcheck_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("username_key", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_users")),
        sa.UniqueConstraint("username_key", name=op.f("uq_coatcheck_users_username_key")),
    )
    op.create_table(
        "coatcheck_audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("session_handle", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_audit_events")),
    )
    for column in ("at", "event", "user_id"):
        op.create_index(
            op.f(f"ix_coatcheck_audit_events_{column}"), "coatcheck_audit_events", [column]
        )


def downgrade() -> None:
    """Drop both tables (and with them every user and audit event)."""
    for column in ("at", "event", "user_id"):
        op.drop_index(op.f(f"ix_coatcheck_audit_events_{column}"), "coatcheck_audit_events")
    op.drop_table("coatcheck_audit_events")
    op.drop_table("coatcheck_users")
