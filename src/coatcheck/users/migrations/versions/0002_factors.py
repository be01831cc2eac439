"""Second factors (TOTP secrets, WebAuthn credentials) and recovery codes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 11:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create coatcheck_factors and coatcheck_recovery_codes."""
    op.create_table(
        "coatcheck_factors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("passkey", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("credential_id", sa.String(length=1400), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=True),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backup_state", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_factors")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_coatcheck_factors_credential_id")),
    )
    op.create_index(op.f("ix_coatcheck_factors_user_id"), "coatcheck_factors", ["user_id"])
    op.create_table(
        "coatcheck_recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coatcheck_recovery_codes")),
    )
    op.create_index(
        op.f("ix_coatcheck_recovery_codes_user_id"), "coatcheck_recovery_codes", ["user_id"]
    )


def downgrade() -> None:
    """Drop both tables (every user's second factors and recovery codes)."""
    op.drop_index(op.f("ix_coatcheck_recovery_codes_user_id"), "coatcheck_recovery_codes")
    op.drop_table("coatcheck_recovery_codes")
    op.drop_index(op.f("ix_coatcheck_factors_user_id"), "coatcheck_factors")
    op.drop_table("coatcheck_factors")
