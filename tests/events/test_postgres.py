"""The event store on a real throwaway PostgreSQL (tests/postgres.py): the SQLite tests of test_store.py again, each
on a fresh database, and what only a shared server shows: two gateways migrating and writing the same facts at
once."""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from events.records import Feedback
from events.store import EventStore, WriteResult
from events.tables import feedback
from tests import postgres
from tests.events.test_history import (  # noqa: F401 - collected here again, on PostgreSQL
    test_the_most_recent_events_of_the_user_come_newest_first,
)
from tests.events.test_store import (  # noqa: F401 - collected here again, on PostgreSQL
    AT,
    open_store,
    store,
    test_a_forget_forgets_what_came_before_it_and_keeps_what_came_after,
    test_a_group_reads_back_as_written,
    test_a_refused_group_writes_nothing,
    test_an_unknown_request_has_no_answer,
    test_duplicates_are_skipped_and_counted_within_and_across_groups,
    test_forget_deletes_feedback_on_the_users_answers_even_without_their_name,
    test_migrating_again_changes_nothing,
    test_the_migrated_schema_is_the_tables_own,
    test_times_are_stored_as_the_same_instant_in_utc,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def uri(cluster: postgres.Cluster) -> str:
    """A fresh database of its own for each test, its password in the URI."""
    name = f"events_{secrets.token_hex(4)}"
    cluster.create_database(name)
    return f"postgresql://{postgres.SUPERUSER}:{cluster.password}@127.0.0.1:{cluster.port}/{name}"


def together(*tasks: Callable[[], object]) -> list[object]:
    """Run `tasks` in threads released at the same instant; their results, or the first error raised."""
    start, results, errors = threading.Barrier(len(tasks)), [None] * len(tasks), []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = tasks[i]()
        except Exception as error:  # noqa: BLE001 - handed to the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def test_two_gateways_migrating_at_once_both_succeed(uri: str) -> None:
    stores = [EventStore(uri), EventStore(uri)]
    together(stores[0].migrate, stores[1].migrate)
    assert stores[0].answer("none") is None and stores[1].answer("none") is None
    for one in stores:
        one.dispose()


def write_in_groups(gateway: EventStore, events: list[Feedback], size: int = 300) -> WriteResult:
    """`events` in groups of `size`, as a gateway's writer writes them; the sums of the groups' results."""
    written = duplicates = 0
    for start in range(0, len(events), size):
        result = gateway.write(events[start : start + size])
        written, duplicates = written + result.written, duplicates + result.duplicates
    return WriteResult(written, duplicates)


def test_two_gateways_writing_the_same_feedback_at_once_store_each_key_once(uri: str) -> None:
    first, second = next(open_store(uri)), EventStore(uri)
    shared = [Feedback(f"u:ann:{film}:click", None, "ann", film, "click", AT) for film in range(3000)]
    own = [Feedback(f"u:bob:{film}:like", None, "bob", film, "like", AT) for film in range(1000)]
    # the second writes the same keys in another order (each of its groups overlaps the first's), and 1,000 more
    shuffled = random.Random(7).sample(shared, len(shared))
    results = together(lambda: write_in_groups(first, shared), lambda: write_in_groups(second, [*shuffled, *own]))
    assert sum(result.written for result in results) == 4000
    assert [result.written + result.duplicates for result in results] == [3000, 4000]
    with first.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(feedback)).scalar_one() == 4000
        assert connection.execute(select(func.count(func.distinct(feedback.c.key)))).scalar_one() == 4000
    first.dispose()
    second.dispose()
