"""The event store's tables (SQLAlchemy Core). Alembic creates and migrates them (events/migrations/); a change
here comes with a migration, and tests/events check that the migrated schema equals these tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

REQUEST_ID = 64
USER = 128
EVENT = 16
# Alembic's revision table, named apart from the default `alembic_version`: MLflow's own tracking store keeps its
# revision there, and a team may give both the same PostgreSQL database.
VERSION_TABLE = "events_alembic_version"

metadata = MetaData()

# One row per answered recommendation request: who asked (an opaque app user id, or none), which model version
# answered and which alias chose it.
impressions = Table(
    "impressions",
    metadata,
    Column("request_id", String(REQUEST_ID), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("user", String(USER), nullable=True, index=True),
    Column("model_name", String(256), nullable=True),
    Column("model_version", String(32), nullable=True),
    Column("alias", String(32), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("n_films", Integer, nullable=False),
)

# The films of each answer, in answer order (position 1 first), with the score the model gave them.
impression_films = Table(
    "impression_films",
    metadata,
    Column(
        "request_id",
        String(REQUEST_ID),
        ForeignKey("impressions.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("film_id", BigInteger, nullable=False),
    Column("score", Float, nullable=False),
    Index("ix_impression_films_film_id", "film_id"),
)

# What users did with what they were shown. `key` makes an event count once: per (request, film, event), or per
# (user, film, event) for an event attributed to no request.
feedback = Table(
    "feedback",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("request_id", String(REQUEST_ID), nullable=True, index=True),
    Column("user", String(USER), nullable=True),
    Column("film_id", BigInteger, nullable=False),
    Column("event", String(EVENT), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Index("ix_feedback_user_at", "user", "at"),  # a user's events newest first (history; forgetting a user)
)

# The challenger's list for a request already answered by the champion: how much the two agree, how fast it was.
shadow = Table(
    "shadow",
    metadata,
    Column("request_id", String(REQUEST_ID), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_name", String(256), nullable=True),
    Column("model_version", String(32), nullable=True),
    Column("k", Integer, nullable=False),
    Column("overlap", Float, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("status", String(16), nullable=False),
)
