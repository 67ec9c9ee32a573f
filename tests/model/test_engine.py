"""The recommender's logic on a tiny catalog with a hashing stand-in encoder (no model weights needed)."""

from __future__ import annotations

import pytest

from model.engine import Ranking, Recommender
from model.index import build_index
from model.people import people_matrix
from model.schema import (
    DEFAULT_TOP_N,
    TITLE_REQUIRED,
    TITLE_TOO_LONG,
    TOP_N_OUT_OF_RANGE,
    YEAR_OUT_OF_RANGE,
    Query,
)
from model.text import movie_texts
from tests.conftest import hashing_vectors, tiny_catalog

ROWS = [
    {"id": 10 + i, "title": f"Space Saga {i}", "year": 1990 + i, "genres": "Sci-Fi", "directors": "Ann Lee"}
    for i in range(8)
] + [
    {"id": 500, "title": "Hamlet", "year": 1948, "genres": "Drama", "reviews": 40},
    {"id": 501, "title": "Hamlet", "year": 1996, "genres": "Drama", "reviews": 90},
    {"id": 502, "title": "Kitchen Comedy", "year": 2001, "genres": "Comedy", "cover_url": "https://img/k.jpg"},
]


@pytest.fixture(scope="module")
def recommender() -> Recommender:
    movies = tiny_catalog(ROWS)
    # Reverse the insertion order so that row positions and vector positions differ: ids must carry the mapping.
    vectors = hashing_vectors(movie_texts(movies))
    index = build_index(vectors[::-1].copy(), movies["id"].to_numpy()[::-1].copy())
    return Recommender(movies, index, people_matrix(movies), info={"model_name": "test"})


def one(recommender: Recommender, **query: object) -> dict:
    return recommender.recommend([Query(**query)])[0]


def test_known_title_returns_top_n_without_itself(recommender: Recommender) -> None:
    result = one(recommender, title="Space Saga 3", top_n=4)
    assert result["status"] == "ok"
    assert result["query"]["id"] == 13 and result["query"]["matched"] == "exact"
    ids = [film["id"] for film in result["recommendations"]]
    assert len(ids) == 4 and 13 not in ids
    scores = [film["score"] for film in result["recommendations"]]
    assert scores == sorted(scores, reverse=True)


def test_default_top_n(recommender: Recommender) -> None:
    assert len(one(recommender, title="Space Saga 1")["recommendations"]) == DEFAULT_TOP_N


def test_top_n_larger_than_the_catalog_returns_every_other_film(recommender: Recommender) -> None:
    result = one(recommender, title="Hamlet", top_n=100)
    assert len(result["recommendations"]) == len(ROWS) - 1


def test_recommendations_carry_the_contract_fields(recommender: Recommender) -> None:
    film = one(recommender, title="Kitchen Comedy", top_n=10)["recommendations"][0]
    assert set(film) == {"id", "title", "year", "genres", "directors", "cast", "cover_url", "score"}
    comedy = one(recommender, title="Hamlet", top_n=10)["recommendations"]
    assert next(f for f in comedy if f["id"] == 502)["cover_url"] == "https://img/k.jpg"


def test_year_picks_among_shared_titles(recommender: Recommender) -> None:
    assert one(recommender, title="Hamlet")["query"]["id"] == 501  # most reviewed
    assert one(recommender, title="Hamlet", year=1948)["query"]["id"] == 500


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({}, TITLE_REQUIRED),
        ({"title": "   "}, TITLE_REQUIRED),
        ({"title": "x" * 301}, TITLE_TOO_LONG),
        ({"title": "Hamlet", "top_n": 0}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "top_n": 101}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "top_n": -3}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "year": 3000}, YEAR_OUT_OF_RANGE),
    ],
)
def test_bad_values_come_back_invalid_with_a_reason(recommender: Recommender, query: dict, reason: str) -> None:
    result = one(recommender, **query)
    assert (result["status"], result["reason"], result["recommendations"]) == ("invalid", reason, [])


def test_unknown_title_suggests(recommender: Recommender) -> None:
    result = one(recommender, title="Space Sago 99 Returns")
    assert result["status"] in ("unknown_title", "ok")
    unknown = one(recommender, title="Hamster")
    assert unknown["status"] == "unknown_title"
    assert unknown["suggestions"][0] == {"id": 501, "title": "Hamlet", "year": 1996}


def test_a_batch_answers_every_row_in_order(recommender: Recommender) -> None:
    queries = [Query(title="Hamlet"), Query(title=""), Query(title="Space Saga 2", top_n=2), Query(title="zzqqxx")]
    statuses = [r["status"] for r in recommender.recommend(queries)]
    assert statuses == ["ok", "invalid", "ok", "unknown_title"]
    assert len(recommender.recommend(queries)[2]["recommendations"]) == 2


def test_dataframe_gaps_are_read_as_missing() -> None:
    assert Query.model_validate({"title": "Up", "top_n": float("nan"), "year": 1999.0}) == Query(title="Up", year=1999)


def ranked_ids(recommender: Recommender, liked: list[int], top_n: int = 5, **kwargs: object) -> list[int]:
    return recommender.rank(liked, top_n, **kwargs).ids


def test_rank_keeps_to_within_and_drops_exclude(recommender: Recommender) -> None:
    within = [11, 12, 500, 502]
    assert set(ranked_ids(recommender, [10], 10, within=within)) == set(within)
    assert 12 not in ranked_ids(recommender, [10], 10, exclude=[12])
    assert ranked_ids(recommender, [10], 10, within=[10]) == []  # only the query film: nothing to return


def test_ranking_is_stable_between_calls(recommender: Recommender) -> None:
    assert ranked_ids(recommender, [10], 10) == ranked_ids(recommender, [10], 10)


def with_ranking(recommender: Recommender, **weights: float) -> Recommender:
    ranking = Ranking(**{**recommender.ranking.as_dict(), **weights})
    return Recommender(recommender.movies, recommender.index, recommender._people, ranking)


def test_prior_weight_lifts_notable_films(recommender: Recommender) -> None:
    movies = recommender.movies.assign(prior=[0.0] * (len(ROWS) - 1) + [5.0])  # make Kitchen Comedy notable
    loud = Recommender(movies, recommender.index, recommender._people, Ranking(prior_weight=1.0))
    assert ranked_ids(loud, [10], 1) == [502]
    quiet = Recommender(movies, recommender.index, recommender._people, Ranking(prior_weight=0.0))
    assert ranked_ids(quiet, [10], 1) != [502]


def test_era_weight_prefers_the_same_decade(recommender: Recommender) -> None:
    near = with_ranking(recommender, era_weight=5.0)
    years = {f["id"]: f["year"] for f in (near.film(i) for i in ranked_ids(near, [17], 3))}
    assert all(abs(year - 1997) <= 3 for year in years.values())


def test_people_similarity_finds_shared_directors(recommender: Recommender) -> None:
    people_only = with_ranking(recommender, dense_weight=0.0, prior_weight=0.0, era_weight=0.0)
    top = ranked_ids(people_only, [10], 7)
    assert set(top) == set(range(11, 18))  # every other Ann Lee sci-fi film first


def test_later_liked_films_weigh_more(recommender: Recommender) -> None:
    steep = with_ranking(recommender, recency=0.01)
    assert ranked_ids(steep, [10, 500], 1) == [501]  # Hamlet, liked last, dominates
    assert ranked_ids(steep, [500, 10], 1)[0] in range(11, 18)
