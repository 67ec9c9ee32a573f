"""Feedback by user, newest first: the index on `user` becomes one on (`user`, `at`), which still serves every lookup
by user (forgetting one) and lets a user's history be read newest first without a sort, stopping at its limit.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_feedback_user_at", "feedback", ["user", "at"])
    op.drop_index("ix_feedback_user", table_name="feedback")


def downgrade() -> None:
    op.create_index("ix_feedback_user", "feedback", ["user"])
    op.drop_index("ix_feedback_user_at", table_name="feedback")
