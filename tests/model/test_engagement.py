"""Co-engagement in the one blend: learned from events with `implicit`, and what it may and may not change."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.engagement import Engagement, load_engagement, save_engagement
from model.engine import Engine
from model.neighbours import precompute_neighbours
from model.schema import Query
from pipelines.engagement import MAX_USER_FILMS, learn, user_film_values
from tests.model.test_neighbours import RANKING, catalog, films_of

K = 12
WEIGHTED = replace(RANKING, engagement_weight=2.0, engagement_shrink=5.0)


def events(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    stamps = pd.date_range("2026-01-01", periods=len(rows), freq="min", tz="UTC")
    return pd.DataFrame(rows, columns=["user", "film_id", "event"]).assign(timestamp=stamps)


def crowd(ids: np.ndarray, users: int = 60, seed: int = 3) -> pd.DataFrame:
    """Users who like films of a few groups: films of one group are engaged with together."""
    rng = np.random.default_rng(seed)
    groups = np.array_split(ids[:120], 6)
    rows = []
    for user in range(users):
        group = groups[user % len(groups)]
        for film in rng.choice(group, 6, replace=False):
            rows.append((f"u{user}", int(film), str(rng.choice(["like", "like", "click", "dismiss"]))))
    return events(rows)


@pytest.fixture(scope="module")
def setting() -> tuple:
    movies, vectors = catalog(300)
    films = films_of(movies, vectors)
    return films, learn(crowd(films.ids), films.ids, k=30)


def test_a_user_counts_once_per_film_however_often_they_repeat_it(setting: tuple) -> None:
    films, _ = setting
    base = crowd(films.ids)
    film = int(base["film_id"].iloc[0])
    repeated = pd.concat([base, events([("u0", film, "like")] * 1000 + [("u0", film, "click")] * 50)])
    once = learn(pd.concat([base, events([("u0", film, "like")])]), films.ids, k=30)
    many = learn(repeated, films.ids, k=30)
    assert (once.similarity != many.similarity).nnz == 0
    assert (once.together != many.together).nnz == 0
    np.testing.assert_array_equal(once.support, many.support)


def test_a_huge_history_weighs_no_more_than_the_bound(setting: tuple) -> None:
    films, _ = setting
    heavy = events([("heavy", int(film), "like") for film in films.ids[: MAX_USER_FILMS + 100]])
    values, unknown = user_film_values(pd.concat([heavy, events([("light", int(films.ids[0]), "like")])]), films.ids)
    assert unknown == 0
    sums = np.asarray(values.sum(axis=1)).ravel()
    assert sums.max() == pytest.approx(MAX_USER_FILMS)  # the heavy user's 300 films weigh 200 in all
    assert sums.min() == pytest.approx(1.0)


def test_the_strongest_event_is_the_users_value_and_shown_is_not_read(setting: tuple) -> None:
    films, _ = setting
    a, b = (int(i) for i in films.ids[:2])
    values, _ = user_film_values(
        events([("u", a, "dismiss"), ("u", a, "like"), ("u", b, "dismiss"), ("u", b, "click")]), films.ids
    )
    rows = films.rows_of([a, b])
    assert values[0, rows[0]] == 1.0 and values[0, rows[1]] == 0.5


def test_a_query_film_nobody_engaged_with_ranks_exactly_as_the_content_model(setting: tuple) -> None:
    films, engagement = setting
    quiet = [row for row in range(len(films)) if engagement.support[row] == 0 and not engagement.similarity[row].nnz]
    assert len(quiet) > 100
    content = Engine(films, WEIGHTED)
    hybrid = Engine(films, WEIGHTED, engagement=engagement)
    for row in quiet[:20]:
        query = [Query(liked=[{"id": int(films.ids[row])}], top_n=K)]
        ours, theirs = hybrid.recommend(query)[0], content.recommend(query)[0]
        assert [f["id"] for f in ours["recommendations"]] == [f["id"] for f in theirs["recommendations"]]
        assert [f["score"] for f in ours["recommendations"]] == [f["score"] for f in theirs["recommendations"]]


def test_co_engaged_films_rise_and_say_how_many_people_liked_both(setting: tuple) -> None:
    films, engagement = setting
    busy = int(np.argmax(engagement.support))
    query = [Query(liked=[{"id": int(films.ids[busy])}], top_n=K)]
    content = Engine(films, WEIGHTED).recommend(query)[0]["recommendations"]
    hybrid = Engine(films, WEIGHTED, engagement=engagement).recommend(query)[0]["recommendations"]
    engaged = set(films.ids[engagement.similarity[busy].indices].tolist())
    assert len(engaged & {f["id"] for f in hybrid}) > len(engaged & {f["id"] for f in content})
    named = [f["because"]["also_liked"] for f in hybrid if f["because"]["also_liked"]]
    assert named and all(a["film"] == films.records[busy]["title"] and a["people"] >= 1 for a in named)
    rows = films.rows_of([f["id"] for f in hybrid])
    for film, row in zip(hybrid, rows, strict=True):
        people = int(engagement.together[busy, row])
        assert (film["because"]["also_liked"] or {}).get("people", 0) == people


def test_precomputed_lists_equal_live_ranking_with_engagement(setting: tuple) -> None:
    films, engagement = setting
    rows, scores, _ = precompute_neighbours(films, WEIGHTED, K, engagement=engagement)
    live = Engine(films, WEIGHTED, engagement=engagement)
    live.neighbours = None  # every query ranked live
    for row in [int(np.argmax(engagement.support)), 0, 150, 299]:
        answer = live.recommend([Query(liked=[{"id": int(films.ids[row])}], top_n=K)])[0]["recommendations"]
        assert [film["id"] for film in answer] == films.ids[rows[row]].tolist(), row
        np.testing.assert_allclose([film["score"] for film in answer], scores[row], atol=1e-4)


def test_saved_and_loaded_engagement_is_the_same(setting: tuple, tmp_path: Path) -> None:
    _, engagement = setting
    save_engagement(tmp_path / "engagement.npz", engagement)
    loaded = load_engagement(tmp_path / "engagement.npz")
    assert (loaded.similarity != engagement.similarity).nnz == 0
    assert (loaded.together != engagement.together).nnz == 0
    np.testing.assert_array_equal(loaded.support, engagement.support)


def test_no_events_learn_nothing(setting: tuple) -> None:
    films, _ = setting
    empty = learn(events([]), films.ids)
    assert isinstance(empty, Engagement) and empty.films_engaged == 0 and empty.support.sum() == 0


def test_together_counts_the_people_positive_on_both_films_of_each_pair(setting: tuple) -> None:
    films, engagement = setting
    values, _ = user_film_values(crowd(films.ids), films.ids)
    positive = (values > 0).toarray()
    similarity = engagement.similarity
    rows = np.repeat(np.arange(len(films)), np.diff(similarity.indptr))
    brute = (positive[:, rows] & positive[:, similarity.indices]).sum(axis=0)
    np.testing.assert_array_equal(np.asarray(engagement.together[rows, similarity.indices]).ravel(), brute)
    np.testing.assert_array_equal(engagement.support, positive.sum(axis=0))
