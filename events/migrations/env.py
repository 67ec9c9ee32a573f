"""Alembic's environment for the event store. It runs on the connection `EventStore.migrate` passes in
`config.attributes["connection"]`, already inside the transaction that holds the migration lock; there is no
alembic.ini. A new revision: `alembic.command.revision(events.store.alembic_config(), "what changes")`, then write
its upgrade by hand (tests/events check the migrated schema against events/tables.py)."""

from __future__ import annotations

from alembic import context

from events.tables import VERSION_TABLE, metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None or context.is_offline_mode():
        raise SystemExit("the event store is migrated through events.store.EventStore.migrate(), on a connection")
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
