"""A model built from engagement is judged three ways, and never on targets its build saw."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from events.records import Feedback
from events.store import EventStore
from model.engine import Engine
from pipelines.engagement import learn, read_events
from pipelines.evaluate import CO_ENGAGEMENT, CONTENT, EvaluationRefused, check_unseen, run_evaluation
from pipelines.movielens import USER_KEY, Behaviour
from tests.model.test_neighbours import RANKING, catalog, films_of


def behaviour(ids: np.ndarray, users: int = 40, seed: int = 5) -> Behaviour:
    """Users who like films of one of four groups, five each, in time order."""
    rng = np.random.default_rng(seed)
    groups = np.array_split(ids[:80], 4)
    rows = [
        (user, int(film), 1_000_000 + 100 * user + position)
        for user in range(users)
        for position, film in enumerate(rng.choice(groups[user % 4], 5, replace=False))
    ]
    likes = pd.DataFrame(rows, columns=["user", "film", "timestamp"])
    return Behaviour(likes, sorted(ids[:80].tolist()), {"likes": float(len(likes))})


def store_of(tmp_path: Path, likes: pd.DataFrame, event: str = "like") -> str:
    uri = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(uri)
    store.migrate()
    records = []
    for user, film, stamp in likes.itertuples(index=False):
        key = USER_KEY.format(user=user)
        at = datetime.fromtimestamp(int(stamp), UTC)
        records.append(Feedback(Feedback.key_of(None, key, int(film), event), None, key, int(film), event, at))
    store.write(records)
    store.dispose()
    return uri


def hybrid_of(films, uri: str) -> Engine:  # type: ignore[no-untyped-def]
    events = read_events(uri)
    assert events is not None
    info = events.summary()
    return Engine(films, RANKING, info=info, engagement=learn(events.frame, films.ids, k=30))


@pytest.fixture(scope="module")
def films():  # type: ignore[no-untyped-def]
    return films_of(*catalog(200))


def held_out(likes: pd.DataFrame) -> pd.DataFrame:
    ordered = likes.sort_values(["user", "timestamp", "film"], kind="stable")
    return ordered.drop(ordered.groupby("user").tail(1).index)


def test_a_build_that_saw_the_held_out_targets_is_refused(films, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    judged = behaviour(films.ids)
    engine = hybrid_of(films, store_of(tmp_path, judged.likes))  # every like, the targets included
    with pytest.raises(EvaluationRefused, match="40 of the 40 held-out targets"):
        check_unseen(engine, judged)


def test_a_build_from_everything_but_the_targets_is_judged_three_ways(films, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    judged = behaviour(films.ids)
    engine = hybrid_of(films, store_of(tmp_path, held_out(judged.likes)))
    check_unseen(engine, judged)
    evaluation = run_evaluation(engine, judged)
    assert evaluation.learned and evaluation.headline == ("p1_hr10", "p3_hr10")
    assert {"model", CONTENT, CO_ENGAGEMENT, "popularity"} <= evaluation.results.keys()
    # Films liked in four groups, random vectors: co-engagement finds the held-out target far more often.
    hybrid, content = evaluation.model["p3_hr10"].mean, evaluation.results[CONTENT]["p3_hr10"].mean
    assert hybrid > content + 0.1
    assert set(evaluation.hybrid_targets()) >= {"p1_hr10 >= 0.11", "p3_hr10 >= content"}


def test_events_added_after_the_build_do_not_count_against_it(films, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    judged = behaviour(films.ids)
    uri = store_of(tmp_path, held_out(judged.likes))
    engine = hybrid_of(films, uri)
    targets = judged.likes.drop(held_out(judged.likes).index)
    later = targets.assign(timestamp=targets["timestamp"] + 10_000_000)  # the targets clicked after the build
    store_of(tmp_path, later, event="click")
    check_unseen(engine, judged)  # outside the build's logged range: not what it learned from


def test_a_version_whose_events_are_gone_cannot_be_judged(films, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    judged = behaviour(films.ids)
    uri = store_of(tmp_path, held_out(judged.likes))
    engine = hybrid_of(films, uri)
    (tmp_path / "events.db").unlink()
    with pytest.raises(EvaluationRefused, match="gone"):
        check_unseen(engine, judged)
