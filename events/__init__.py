"""The event store: impressions, feedback and shadow comparisons in a SQL database (SQLite file or PostgreSQL).

Imports SQLAlchemy, Alembic and the standard library only: the gateway writes here, the report reads here, and
neither the model nor the gateway's web framework is needed for either.
"""
