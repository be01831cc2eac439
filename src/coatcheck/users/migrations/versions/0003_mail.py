"""E-mail (SPEC §9): the outbox, one-time mail tokens, known devices, address verification.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 12:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the outbox, mail tokens and known devices; two columns to the users."""
    with op.batch_alter_table("coatcheck_users") as batch:
        batch.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("notify_new_device", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "coatcheck_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("to_addr", sa.String(length=254), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_outbox")),
    )
    for column in ("user_id", "status", "next_attempt_at"):
        op.create_index(op.f(f"ix_coatcheck_outbox_{column}"), "coatcheck_outbox", [column])
    op.create_table(
        "coatcheck_email_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_email_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_coatcheck_email_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_coatcheck_email_tokens_user_id"), "coatcheck_email_tokens", ["user_id"]
    )
    op.create_table(
        "coatcheck_known_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_known_devices")),
        sa.UniqueConstraint("user_id", "device", name=op.f("uq_coatcheck_known_devices_user_id")),
    )


def downgrade() -> None:
    """Drop the mail tables and the two user columns."""
    op.drop_table("coatcheck_known_devices")
    op.drop_index(op.f("ix_coatcheck_email_tokens_user_id"), "coatcheck_email_tokens")
    op.drop_table("coatcheck_email_tokens")
    for column in ("user_id", "status", "next_attempt_at"):
        op.drop_index(op.f(f"ix_coatcheck_outbox_{column}"), "coatcheck_outbox")
    op.drop_table("coatcheck_outbox")
    with op.batch_alter_table("coatcheck_users") as batch:
        batch.drop_column("notify_new_device")
        batch.drop_column("email_verified")
