"""The event store's first schema: impressions and their films, feedback, shadow comparisons.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite numbers rows itself only for a column declared exactly INTEGER PRIMARY KEY.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "impressions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(128), nullable=True),
        sa.Column("model_name", sa.String(256), nullable=True),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("alias", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("n_films", sa.Integer(), nullable=False),
    )
    op.create_index("ix_impressions_at", "impressions", ["at"])
    op.create_index("ix_impressions_user", "impressions", ["user"])
    op.create_table(
        "impression_films",
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey("impressions.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("film_id", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
    )
    op.create_index("ix_impression_films_film_id", "impression_films", ["film_id"])
    op.create_table(
        "feedback",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("user", sa.String(128), nullable=True),
        sa.Column("film_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
    op.create_index("ix_feedback_user", "feedback", ["user"])
    op.create_index("ix_feedback_at", "feedback", ["at"])
    op.create_table(
        "shadow",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(256), nullable=True),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_index("ix_shadow_at", "shadow", ["at"])


def downgrade() -> None:
    op.drop_table("shadow")
    op.drop_table("feedback")
    op.drop_table("impression_films")
    op.drop_table("impressions")
