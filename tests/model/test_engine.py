"""The recommender's logic on a tiny catalog with a hashing stand-in encoder (no model weights needed)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

import numpy as np
import pytest

from model import engine
from model.engine import WARM_UP_ENV, Ranking, Recommender
from model.index import build_index
from model.neighbours import Neighbours
from model.people import people_matrix
from model.schema import (
    DEFAULT_TOP_N,
    DIVERSITY_OUT_OF_RANGE,
    EMPTY_FILM_REF,
    OFFSET_OUT_OF_RANGE,
    TITLE_REQUIRED,
    TITLE_TOO_LONG,
    TOO_MANY_FILMS,
    TOP_N_OUT_OF_RANGE,
    YEAR_OUT_OF_RANGE,
    YEARS_REVERSED,
    Query,
)
from model.text import movie_texts
from tests.conftest import hashing_vectors, tiny_catalog

ROWS = [
    {"id": 10 + i, "title": f"Space Saga {i}", "year": 1990 + i, "genres": "Sci-Fi", "directors": "Ann Lee"}
    for i in range(8)
] + [
    {"id": 500, "title": "Hamlet", "year": 1948, "genres": "Drama", "reviews": 40, "cast": "Laurence Olivier"},
    {"id": 501, "title": "Hamlet", "year": 1996, "genres": "Drama", "reviews": 90, "cast": "Kate Winslet"},
    {"id": 502, "title": "Kitchen Comedy", "year": 2001, "genres": "Comedy", "cover_url": "https://img/k.jpg"},
    {"id": 503, "title": "Galaxy Cook-Off", "year": 2002, "genres": "Comedy, Sci-Fi", "directors": "Ann Lee"},
    {"id": 504, "title": "Denmark Docs", "year": 1999, "genres": "Documentary, Drama", "cast": "Kate Winslet"},
]
SAGA = list(range(10, 18))


def encoder() -> object:
    return lambda texts: hashing_vectors(texts)


@pytest.fixture(scope="module")
def recommender() -> Recommender:
    movies = tiny_catalog(ROWS)
    # Reverse the insertion order so that row positions and vector positions differ: ids must carry the mapping.
    vectors = hashing_vectors(movie_texts(movies))
    index = build_index(vectors[::-1].copy(), movies["id"].to_numpy()[::-1].copy())
    return Recommender(movies, index, people_matrix(movies), info={"model_name": "test"}, encoder=encoder)


def one(recommender: Recommender, **query: object) -> dict:
    return recommender.recommend([Query.model_validate(query)])[0]


def ids(result: dict) -> list[int]:
    return [film["id"] for film in result["recommendations"]]


def test_known_title_returns_top_n_without_itself(recommender: Recommender) -> None:
    result = one(recommender, title="Space Saga 3", top_n=4)
    assert result["status"] == "ok"
    assert result["query"]["id"] == 13 and result["query"]["matched"] == "exact"
    assert len(ids(result)) == 4 and 13 not in ids(result)
    scores = [film["score"] for film in result["recommendations"]]
    assert scores == sorted(scores, reverse=True)


def test_default_top_n(recommender: Recommender) -> None:
    assert len(ids(one(recommender, title="Space Saga 1"))) == DEFAULT_TOP_N


def test_top_n_larger_than_the_catalog_returns_every_other_film(recommender: Recommender) -> None:
    assert len(ids(one(recommender, title="Hamlet", top_n=100))) == len(ROWS) - 1


def test_recommendations_carry_the_contract_fields(recommender: Recommender) -> None:
    film = one(recommender, title="Kitchen Comedy", top_n=10)["recommendations"][0]
    assert set(film) == {"id", "title", "year", "genres", "directors", "cast", "cover_url", "score", "because"}
    comedy = one(recommender, title="Hamlet", top_n=20)["recommendations"]
    assert next(f for f in comedy if f["id"] == 502)["cover_url"] == "https://img/k.jpg"


def test_year_picks_among_shared_titles(recommender: Recommender) -> None:
    assert one(recommender, title="Hamlet")["query"]["id"] == 501  # most reviewed
    assert one(recommender, title="Hamlet", year=1948)["query"]["id"] == 500


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({}, TITLE_REQUIRED),
        ({"title": "   "}, TITLE_REQUIRED),
        ({"query": "  "}, TITLE_REQUIRED),
        ({"title": "x" * 301}, TITLE_TOO_LONG),
        ({"title": "Hamlet", "top_n": 0}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "top_n": 101}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "top_n": -3}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "year": 3000}, YEAR_OUT_OF_RANGE),
        ({"title": "Hamlet", "year_min": 2000, "year_max": 1990}, YEARS_REVERSED),
        ({"title": "Hamlet", "diversity": 1.5}, DIVERSITY_OUT_OF_RANGE),
        ({"title": "Hamlet", "offset": -1}, OFFSET_OUT_OF_RANGE),
        ({"liked": [{}]}, EMPTY_FILM_REF),
        ({"liked": [{"id": 10}] * 51}, TOO_MANY_FILMS),
    ],
)
def test_bad_values_come_back_invalid_with_a_reason(recommender: Recommender, query: dict, reason: str) -> None:
    result = one(recommender, **query)
    assert (result["status"], result["reason"], result["recommendations"]) == ("invalid", reason, [])


def test_unknown_title_suggests(recommender: Recommender) -> None:
    unknown = one(recommender, title="Hamster")
    assert unknown["status"] == "unknown_title"
    assert unknown["suggestions"][0] == {"id": 501, "title": "Hamlet", "year": 1996, "genres": ["Drama"]}


def test_a_batch_answers_every_row_in_order(recommender: Recommender) -> None:
    queries = [Query(title="Hamlet"), Query(title=""), Query(title="Space Saga 2", top_n=2), Query(title="zzqqxx")]
    results = recommender.recommend(queries)
    assert [r["status"] for r in results] == ["ok", "invalid", "ok", "unknown_title"]
    assert len(results[2]["recommendations"]) == 2


def test_dataframe_gaps_are_read_as_missing() -> None:
    assert Query.model_validate({"title": "Up", "top_n": float("nan"), "year": 1999.0}) == Query(title="Up", year=1999)


# --- liked, disliked, free text -------------------------------------------------------------------------------


def test_liked_by_title_year_and_id(recommender: Recommender) -> None:
    result = one(recommender, liked=[{"title": "Space Saga 1"}, {"title": "Hamlet", "year": 1948}, {"id": 502}])
    assert [film["id"] for film in result["liked"]] == [11, 500, 502]
    assert [film["matched"] for film in result["liked"]] == ["exact", "exact", "id"]
    assert not {11, 500, 502} & set(ids(result))


def test_title_alone_and_as_the_only_liked_film_agree(recommender: Recommender) -> None:
    assert ids(one(recommender, title="Space Saga 4", top_n=6)) == ids(one(recommender, liked=[{"id": 14}], top_n=6))


def test_disliked_films_push_away_and_never_appear(recommender: Recommender) -> None:
    plain = ids(one(recommender, liked=[{"id": 503}], top_n=12))
    pushed = ids(one(recommender, liked=[{"id": 503}], disliked=[{"id": 12}, {"id": 13}], top_n=12))
    assert 12 not in pushed and 13 not in pushed
    assert pushed.index(502) < plain.index(502)  # the comedy side of Galaxy Cook-Off gains


def test_liked_and_disliked_the_same_film_is_invalid(recommender: Recommender) -> None:
    result = one(recommender, liked=[{"id": 500}], disliked=[{"title": "Hamlet", "year": 1948}])
    assert result["status"] == "invalid" and "both liked and disliked: Hamlet" in result["reason"]


def test_unknown_liked_films_are_reported_not_ignored(recommender: Recommender) -> None:
    result = one(recommender, liked=[{"title": "Hamster"}, {"id": 999}, {"id": 10}])
    assert result["status"] == "ok" and [f["id"] for f in result["liked"]] == [10]
    fields = [(u["field"], u["input"]) for u in result["unresolved"]]
    assert fields == [("liked", {"title": "Hamster"}), ("liked", {"id": 999})]
    assert result["unresolved"][0]["suggestions"][0]["title"] == "Hamlet"


def test_nothing_resolving_is_unknown_title(recommender: Recommender) -> None:
    result = one(recommender, liked=[{"title": "Hamster"}])
    assert result["status"] == "unknown_title"
    assert result["suggestions"][0]["title"] == "Hamlet" and result["unresolved"]


def test_free_text_alone_and_with_liked(recommender: Recommender) -> None:
    text = one(recommender, query="a space saga by ann lee", top_n=3)
    assert text["status"] == "ok" and text["query"] is None
    assert set(ids(text)) <= set(SAGA) | {503}
    assert all(film["because"]["query_match"]["field"] for film in text["recommendations"])
    mixed = one(recommender, query="kitchen comedy", liked=[{"id": 503}], top_n=3)
    assert 502 in ids(mixed)


# --- filters, diversity, paging, explanations -------------------------------------------------------------------


def test_genre_filters(recommender: Recommender) -> None:
    comedies = ids(one(recommender, title="Space Saga 0", genres=["comedy"], top_n=10))
    assert set(comedies) == {502, 503}  # every match, even though most neighbours are sagas
    no_scifi = ids(one(recommender, title="Space Saga 0", exclude_genres=["SCI-FI"], top_n=10))
    assert set(no_scifi) == {500, 501, 502, 504}


def test_unknown_genre_is_invalid_and_lists_the_known(recommender: Recommender) -> None:
    result = one(recommender, title="Hamlet", genres=["Western"])
    assert result["status"] == "invalid" and "Western" in result["reason"] and "Sci-Fi" in result["reason"]


def test_year_range_within_and_exclude(recommender: Recommender) -> None:
    nineties = ids(one(recommender, title="Hamlet", year_min=1993, year_max=1999, top_n=20))
    assert set(nineties) == {13, 14, 15, 16, 17, 504}
    assert set(ids(one(recommender, title="Hamlet", within=[10, 11, 999], top_n=20))) == {10, 11}
    assert ids(one(recommender, title="Hamlet", within=[501])) == []  # only the query film itself
    excluded = ids(one(recommender, title="Hamlet", exclude=[{"id": 504}, {"title": "Kitchen Comedy"}], top_n=20))
    assert 504 not in excluded and 502 not in excluded and len(excluded) == len(ROWS) - 3


def test_a_filter_leaving_fewer_than_top_n_returns_what_matches(recommender: Recommender) -> None:
    assert ids(one(recommender, title="Space Saga 0", genres=["Documentary"], top_n=10)) == [504]


def test_paging_is_stable(recommender: Recommender) -> None:
    whole = ids(one(recommender, title="Space Saga 2", top_n=10))
    pages = ids(one(recommender, title="Space Saga 2", top_n=5)) + ids(
        one(recommender, title="Space Saga 2", top_n=5, offset=5)
    )
    assert pages == whole
    result = one(recommender, title="Space Saga 2", top_n=5, offset=5)
    assert (result["offset"], result["top_n"]) == (5, 5)


def mean_pairwise_similarity(recommender: Recommender, film_ids: list[int]) -> float:
    vectors = np.stack([recommender.vector(i) for i in film_ids])
    similarity = vectors @ vectors.T
    return float(similarity[np.triu_indices(len(film_ids), 1)].mean())


def test_diversity_lowers_pairwise_similarity(recommender: Recommender) -> None:
    plain = ids(one(recommender, title="Space Saga 0", top_n=5))
    diverse = ids(one(recommender, title="Space Saga 0", top_n=5, diversity=0.8))
    assert mean_pairwise_similarity(recommender, diverse) < mean_pairwise_similarity(recommender, plain)
    assert ids(one(recommender, title="Space Saga 0", top_n=5, diversity=0.0)) == plain


def test_because_lists_what_is_shared_with_the_query_films(recommender: Recommender) -> None:
    result = one(recommender, liked=[{"id": 501}, {"id": 10}], top_n=20)
    because = {film["id"]: film["because"] for film in result["recommendations"]}
    assert because[504]["cast"] == ["Kate Winslet"] and because[504]["genres"] == ["Drama"]
    assert because[503]["directors"] == ["Ann Lee"] and because[503]["genres"] == ["Sci-Fi"]
    assert because[502] == {"genres": [], "directors": [], "cast": [], "writers": [], "query_match": None}


# --- search and details ---------------------------------------------------------------------------------------


def test_search_lists_every_film_of_a_shared_title(recommender: Recommender) -> None:
    result = recommender.search([Query(title="hamlet", top_n=3)])[0]
    assert [(r["id"], r["match_score"]) for r in result["results"][:2]] == [(501, 100.0), (500, 100.0)]
    typo = recommender.search([Query(title="spase saga")])[0]["results"]
    assert typo and typo[0]["title"].startswith("Space Saga")
    assert recommender.search([Query(title="")])[0]["status"] == "invalid"


def test_details(recommender: Recommender) -> None:
    film = recommender.details([Query(id=501)])[0]["film"]
    assert film["title"] == "Hamlet" and film["year"] == 1996 and film["reviews"] == 90.0
    assert recommender.details([Query(id=7)])[0]["status"] == "not_found"


# --- ranking weights ------------------------------------------------------------------------------------------


def ranked_ids(recommender: Recommender, liked: list[int], top_n: int = 5, **kwargs: object) -> list[int]:
    return [int(recommender.movies.at[row, "id"]) for row in recommender.rank(liked, top_n, **kwargs).rows]


def test_rank_keeps_to_within_and_drops_exclude(recommender: Recommender) -> None:
    within = [11, 12, 500, 502]
    assert set(ranked_ids(recommender, [10], 10, within=within)) == set(within)
    assert 12 not in ranked_ids(recommender, [10], 10, exclude=[12])


def test_ranking_is_stable_between_calls(recommender: Recommender) -> None:
    assert ranked_ids(recommender, [10], 10) == ranked_ids(recommender, [10], 10)


def with_ranking(recommender: Recommender, **weights: float) -> Recommender:
    return recommender.with_ranking(Ranking(**{**recommender.ranking.as_dict(), **weights}))


def test_prior_weight_lifts_notable_films(recommender: Recommender) -> None:
    movies = recommender.movies.assign(prior=[0.0] * (len(ROWS) - 3) + [5.0, 0.0, 0.0])  # Kitchen Comedy
    loud = Recommender(movies, recommender.index, recommender._people, Ranking(prior_weight=1.0))
    assert ranked_ids(loud, [10], 1) == [502]
    quiet = Recommender(movies, recommender.index, recommender._people, Ranking(prior_weight=0.0))
    assert ranked_ids(quiet, [10], 1) != [502]


def test_era_weight_prefers_the_same_decade(recommender: Recommender) -> None:
    near = with_ranking(recommender, era_weight=5.0)
    years = [near.film(i)["year"] for i in ranked_ids(near, [17], 3)]
    assert all(abs(year - 1997) <= 3 for year in years)


def test_people_similarity_finds_shared_directors(recommender: Recommender) -> None:
    people_only = with_ranking(recommender, dense_weight=0.0, prior_weight=0.0, era_weight=0.0)
    assert set(ranked_ids(people_only, [10], 7)) == set(SAGA) - {10}


def test_later_liked_films_weigh_more(recommender: Recommender) -> None:
    steep = with_ranking(recommender, recency=0.01)
    assert ranked_ids(steep, [10, 500], 1) == [501]  # Hamlet, liked last, dominates
    assert ranked_ids(steep, [500, 10], 1)[0] in SAGA


# --- precomputed neighbours ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast(recommender: Recommender) -> Recommender:
    from model.neighbours import precompute_neighbours

    neighbours = precompute_neighbours(recommender, k=6, chunk=4)  # small chunks: several batches
    return Recommender(
        recommender.movies, recommender.index, recommender._people, recommender.ranking, neighbours=neighbours
    )


@pytest.fixture(scope="module")
def fast_shared(recommender: Recommender, fast: Recommender) -> Recommender:
    from model.neighbours import shared_fields

    rows, scores = fast._neighbours.rows, fast._neighbours.scores
    neighbours = Neighbours(rows, scores, shared_fields(recommender, rows, chunk=4))
    return Recommender(
        recommender.movies, recommender.index, recommender._people, recommender.ranking, neighbours=neighbours
    )


NEIGHBOUR_QUERIES = [
    {"title": "Space Saga 3", "top_n": 5},
    {"title": "Hamlet", "year": 1948, "top_n": 6},
    {"liked": [{"id": 503}], "top_n": 3},
    {"title": "Space Saga 0", "top_n": 2, "offset": 3},
    {"title": "Space Saga 0", "top_n": 5, "offset": 3},  # beyond the 6 stored: ranked live
    {"title": "Hamster"},
    {"title": "   "},
    {"title": "Hamlet", "top_n": 0},
    {"title": "Hamlet", "offset": -2},
    {"title": "Hamlet", "year": 3000},
    {"title": "x" * 301},
    {"liked": [{}]},
    {"liked": [{"id": 999}]},
    {"liked": [{"title": "Hamlet", "year": 1500}]},
]


@pytest.mark.parametrize("query", NEIGHBOUR_QUERIES)
@pytest.mark.parametrize("lists", ["fast", "fast_shared"])  # without and with the precomputed shared fields
def test_neighbour_lists_answer_exactly_as_live_ranking(
    recommender: Recommender, lists: str, query: dict, request: pytest.FixtureRequest
) -> None:
    fast = request.getfixturevalue(lists)
    assert fast._neighbours is not None and (fast._neighbours.shared is not None) == (lists == "fast_shared")
    assert one(fast, **query) == one(recommender, **query)


def test_every_film_explains_the_same_from_shared_fields(recommender: Recommender, fast_shared: Recommender) -> None:
    shared_anything = set()
    for title, year in zip(recommender.movies["title"], recommender.movies["year"], strict=True):
        answer = one(fast_shared, title=title, year=int(year), top_n=6)
        assert answer == one(recommender, title=title, year=int(year), top_n=6)
        shared_anything |= {name for film in answer["recommendations"] for name, v in film["because"].items() if v}
    assert {"genres", "directors"} <= shared_anything  # the comparison covers lists that are not empty


def test_shared_fields_that_do_not_fit_the_lists_are_not_used(recommender: Recommender, fast: Recommender) -> None:
    rows, scores = fast._neighbours.rows, fast._neighbours.scores
    wrong = Neighbours(rows, scores, np.full((len(rows), 2), 255, dtype=np.uint8))
    model = Recommender(
        recommender.movies, recommender.index, recommender._people, recommender.ranking, neighbours=wrong
    )
    assert model._neighbours is not None and model._neighbours.shared is None
    assert one(model, title="Hamlet", top_n=4) == one(recommender, title="Hamlet", top_n=4)


@pytest.mark.parametrize(("setting", "loads"), [(None, True), ("false", False)])
def test_the_encoder_warms_up_in_the_background_unless_switched_off(
    recommender: Recommender, monkeypatch: pytest.MonkeyPatch, setting: str | None, loads: bool
) -> None:
    loaded = threading.Event()

    def load() -> Callable[[list[str]], np.ndarray]:
        loaded.set()
        return lambda texts: hashing_vectors(texts)

    if setting is None:
        monkeypatch.delenv(WARM_UP_ENV, raising=False)
    else:
        monkeypatch.setenv(WARM_UP_ENV, setting)
    fresh = Recommender(recommender.movies, recommender.index, recommender._people, encoder=load)
    thread = fresh.warm_up()
    assert (thread is not None) is loads
    if thread is not None:
        thread.join(10)
    assert loaded.is_set() is loads
    fresh.encode(["space adventure"])  # switched off or not, the first free text loads it
    assert loaded.is_set()


@pytest.mark.parametrize("collector_on", [True, False])
def test_loading_a_recommender_pauses_the_garbage_collector_and_restores_it(
    collector_on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    movies = tiny_catalog(ROWS)
    vectors = hashing_vectors(movie_texts(movies))
    index = build_index(vectors, movies["id"].to_numpy())
    seen: dict[str, bool] = {}

    def read_artifacts(paths: object) -> tuple:
        seen["reading"] = gc.isenabled()
        return movies, index, people_matrix(movies), "encoder"

    def film_records(frame: object) -> list:
        seen["building"] = gc.isenabled()
        return records(frame)

    records = engine._film_records
    monkeypatch.setattr(engine, "read_artifacts", read_artifacts)
    monkeypatch.setattr(engine, "_film_records", film_records)
    was = gc.isenabled()
    try:
        gc.enable() if collector_on else gc.disable()
        Recommender.from_artifacts({})
        assert seen == {"reading": False, "building": False}  # paused while the objects are made
        assert gc.isenabled() is collector_on  # and as it was afterwards
        with pytest.raises(ValueError, match="one vector per catalog id"):  # also when building fails
            Recommender(movies.iloc[1:], index, people_matrix(movies.iloc[1:]))
        assert gc.isenabled() is collector_on
    finally:
        gc.enable() if was else gc.disable()
