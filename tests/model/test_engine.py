"""The engine's answers on a tiny catalog with a hashing stand-in encoder (no model weights needed)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from rapidfuzz import process

from model.contract import (
    DEFAULT_TOP_N,
    EMPTY_FILM_REF,
    MAX_EXCLUDE,
    MAX_FILMS,
    MAX_FUZZY_TITLES,
    MAX_TITLE_CHARS,
    NEEDS_A_QUERY,
    NO_VISIBLE_TEXT,
    TOP_N_OUT_OF_RANGE,
    YEARS_REVERSED,
)
from model.engine import WARM_UP_ENV, Engine
from model.films import Films
from model.index import HNSW, IVFPQ, build_index, stores_vectors
from model.schema import Query
from tests.conftest import hashing_vectors
from tests.model.conftest import FILM_FIELDS, ROWS, SAGA, hashing_encoder, vector_of


def one(engine: Engine, **query: object) -> dict:
    return engine.recommend([Query.model_validate(query)])[0]


def ids(result: dict) -> list[int]:
    return [film["id"] for film in result["recommendations"]]


def test_known_title_returns_top_n_without_itself(engine: Engine) -> None:
    result = one(engine, title="Space Saga 3", top_n=4)
    assert result["status"] == "ok"
    assert result["query"]["id"] == 13 and result["query"]["matched"] == "exact"
    assert len(ids(result)) == 4 and 13 not in ids(result)
    scores = [film["score"] for film in result["recommendations"]]
    assert scores == sorted(scores, reverse=True)


def test_default_top_n(engine: Engine) -> None:
    assert len(ids(one(engine, title="Space Saga 1"))) == DEFAULT_TOP_N


def test_top_n_larger_than_the_catalog_returns_every_other_film(engine: Engine) -> None:
    assert len(ids(one(engine, title="Hamlet", top_n=100))) == len(ROWS) - 1


def test_recommendations_carry_the_contract_fields(engine: Engine) -> None:
    film = one(engine, title="Kitchen Comedy", top_n=10)["recommendations"][0]
    assert set(film) == {*FILM_FIELDS, "score", "because"}
    assert film["imdb_id"] is None and film["imdb_url"] is None  # this one's catalog row has no IMDb id
    comedy = next(f for f in one(engine, title="Hamlet", top_n=20)["recommendations"] if f["id"] == 502)
    assert comedy["cover_url"] == "https://img/k.jpg"
    assert comedy["imdb_id"] == "tt0000502" and comedy["imdb_url"] == "https://www.imdb.com/title/tt0000502/"


def test_year_picks_among_shared_titles(engine: Engine) -> None:
    assert one(engine, title="Hamlet")["query"]["id"] == 501  # most reviewed
    assert one(engine, title="Hamlet", year=1948)["query"]["id"] == 500


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({}, NEEDS_A_QUERY),
        ({"title": "   "}, NO_VISIBLE_TEXT),
        ({"title": "Hamlet", "top_n": 101}, TOP_N_OUT_OF_RANGE),
        ({"title": "Hamlet", "year_min": 2000, "year_max": 1990}, YEARS_REVERSED),
        ({"liked": [{}]}, EMPTY_FILM_REF),
    ],
)
def test_bad_values_come_back_invalid_with_the_contracts_reason(engine: Engine, query: dict, reason: str) -> None:
    result = one(engine, **query)
    assert (result["status"], result["reason"], result["recommendations"]) == ("invalid", reason, [])


def test_unknown_title_suggests(engine: Engine) -> None:
    unknown = one(engine, title="Hamster")
    assert unknown["status"] == "unknown_title"
    assert unknown["suggestions"][0] == {"id": 501, "title": "Hamlet", "year": 1996, "genres": ["Drama"]}


def test_a_batch_answers_every_row_in_order(engine: Engine) -> None:
    queries = [Query(title="Hamlet"), Query(title=""), Query(title="Space Saga 2", top_n=2), Query(title="zzqqxx")]
    results = engine.recommend(queries)
    assert [r["status"] for r in results] == ["ok", "invalid", "ok", "unknown_title"]
    assert len(results[2]["recommendations"]) == 2


def test_dataframe_gaps_are_read_as_missing() -> None:
    assert Query.model_validate({"title": "Up", "top_n": float("nan"), "year": 1999.0}) == Query(title="Up", year=1999)


# --- liked, disliked, free text -------------------------------------------------------------------------------


def test_liked_by_title_year_and_id(engine: Engine) -> None:
    result = one(engine, liked=[{"title": "Space Saga 1"}, {"title": "Hamlet", "year": 1948}, {"id": 502}])
    assert [film["id"] for film in result["liked"]] == [11, 500, 502]
    assert [film["matched"] for film in result["liked"]] == ["exact", "exact", "id"]
    assert not {11, 500, 502} & set(ids(result))


def test_title_alone_and_as_the_only_liked_film_agree(engine: Engine) -> None:
    assert ids(one(engine, title="Space Saga 4", top_n=6)) == ids(one(engine, liked=[{"id": 14}], top_n=6))


def test_disliked_films_push_away_and_never_appear(engine: Engine) -> None:
    plain = ids(one(engine, liked=[{"id": 503}], top_n=12))
    pushed = ids(one(engine, liked=[{"id": 503}], disliked=[{"id": 12}, {"id": 13}], top_n=12))
    assert 12 not in pushed and 13 not in pushed
    assert pushed.index(502) < plain.index(502)  # the comedy side of Galaxy Cook-Off gains


def test_liked_and_disliked_the_same_film_is_invalid(engine: Engine) -> None:
    result = one(engine, liked=[{"id": 500}], disliked=[{"title": "Hamlet", "year": 1948}])
    assert result["status"] == "invalid" and "both liked and disliked: Hamlet" in result["reason"]


def test_unknown_liked_films_are_reported_not_ignored(engine: Engine) -> None:
    result = one(engine, liked=[{"title": "Hamster"}, {"id": 999}, {"id": 10}])
    assert result["status"] == "ok" and [f["id"] for f in result["liked"]] == [10]
    fields = [(u["field"], u["input"]) for u in result["unresolved"]]
    assert fields == [("liked", {"title": "Hamster"}), ("liked", {"id": 999})]
    assert result["unresolved"][0]["suggestions"][0]["title"] == "Hamlet"


def test_nothing_resolving_is_unknown_title(engine: Engine) -> None:
    result = one(engine, liked=[{"title": "Hamster"}])
    assert result["status"] == "unknown_title"
    assert result["suggestions"][0]["title"] == "Hamlet" and result["unresolved"]


def test_the_worst_valid_request_lists_every_film_it_cannot_resolve(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    comparisons: list[int] = []  # rapidfuzz's, title against title
    cdist = process.cdist

    def counted(queries: list[str], choices: list[str], **options: Any) -> np.ndarray:
        comparisons.append(len(queries) * len(choices))
        return cdist(queries, choices, **options)

    monkeypatch.setattr(process, "cdist", counted)
    # Every list at its limit, every entry a title no film has: close to one, or as long as a title may be.
    longest = ["x" * MAX_TITLE_CHARS, "…" * MAX_TITLE_CHARS]
    query = {
        "title": "Hamster",
        "liked": [{"title": "Hamster", "year": 1900 + i} for i in range(MAX_FILMS)],
        "disliked": [{"title": longest[i % 2]} for i in range(MAX_FILMS)],
        "exclude": [{"title": f"Hamster {i}"} for i in range(MAX_EXCLUDE)],
    }
    result = one(engine, **query)
    assert result["status"] == "unknown_title" and result["suggestions"][0]["title"] == "Hamlet"
    typed = [{"title": "Hamster"}, *query["liked"], *query["disliked"], *query["exclude"]]
    assert [u["input"] for u in result["unresolved"]] == typed  # every one, in order
    suggested = [bool(u["suggestions"]) for u in result["unresolved"]]
    assert suggested == [True] * MAX_FUZZY_TITLES + [False] * (len(typed) - MAX_FUZZY_TITLES)
    # The fuzzy work of MAX_FUZZY_TITLES titles at most: each compared with every title, with and without its
    # article, and with every title's opening of its length.
    assert 0 < sum(comparisons) <= 3 * MAX_FUZZY_TITLES * len(ROWS)


def test_titles_past_the_fuzzy_limit_are_matched_exactly_only(engine: Engine) -> None:
    assert one(engine, liked=[{"title": "Space Sgaa 2"}])["liked"][0]["matched"] == "fuzzy"
    typos = [{"title": "Hamster", "year": 1900 + i} for i in range(MAX_FUZZY_TITLES - 1)]
    liked = [{"title": "Hamlte"}, *typos, {"title": "Space Sgaa 2"}, {"title": "kitchen comedy"}, {"id": 503}]
    result = one(engine, liked=liked, top_n=3)
    assert [(film["id"], film["matched"]) for film in result["liked"]] == [(501, "fuzzy"), (502, "exact"), (503, "id")]
    assert [u["input"] for u in result["unresolved"]] == [*typos, {"title": "Space Sgaa 2"}]
    assert [bool(u["suggestions"]) for u in result["unresolved"]] == [True] * len(typos) + [False]


def test_free_text_alone_and_with_liked(engine: Engine) -> None:
    text = one(engine, query="a space saga by ann lee", top_n=3)
    assert text["status"] == "ok" and text["query"] is None
    assert set(ids(text)) <= set(SAGA) | {503}
    assert all(film["because"]["query_match"]["field"] for film in text["recommendations"])
    mixed = one(engine, query="kitchen comedy", liked=[{"id": 503}], top_n=3)
    assert 502 in ids(mixed)


# --- filters, diversity, paging, explanations -------------------------------------------------------------------


def test_genre_filters(engine: Engine) -> None:
    comedies = ids(one(engine, title="Space Saga 0", genres=["comedy"], top_n=10))
    assert set(comedies) == {502, 503}  # every match, even though most neighbours are sagas
    no_scifi = ids(one(engine, title="Space Saga 0", exclude_genres=["SCI-FI"], top_n=10))
    assert set(no_scifi) == {500, 501, 502, 504}


def test_unknown_genre_is_invalid_and_lists_the_known(engine: Engine) -> None:
    result = one(engine, title="Hamlet", genres=["Western"])
    assert result["status"] == "invalid" and "Western" in result["reason"] and "Sci-Fi" in result["reason"]


def test_year_range_within_and_exclude(engine: Engine) -> None:
    nineties = ids(one(engine, title="Hamlet", year_min=1993, year_max=1999, top_n=20))
    assert set(nineties) == {13, 14, 15, 16, 17, 504}
    assert set(ids(one(engine, title="Hamlet", within=[10, 11, 999], top_n=20))) == {10, 11}
    assert ids(one(engine, title="Hamlet", within=[501])) == []  # only the query film itself
    excluded = ids(one(engine, title="Hamlet", exclude=[{"id": 504}, {"title": "Kitchen Comedy"}], top_n=20))
    assert 504 not in excluded and 502 not in excluded and len(excluded) == len(ROWS) - 3


def test_a_filter_leaving_fewer_than_top_n_returns_what_matches(engine: Engine) -> None:
    assert ids(one(engine, title="Space Saga 0", genres=["Documentary"], top_n=10)) == [504]


def test_paging_is_stable(engine: Engine) -> None:
    whole = ids(one(engine, title="Space Saga 2", top_n=10))
    pages = ids(one(engine, title="Space Saga 2", top_n=5)) + ids(one(engine, title="Space Saga 2", top_n=5, offset=5))
    assert pages == whole
    result = one(engine, title="Space Saga 2", top_n=5, offset=5)
    assert (result["offset"], result["top_n"]) == (5, 5)


def mean_pairwise_similarity(films: Films, film_ids: list[int]) -> float:
    vectors = np.stack([vector_of(films, i) for i in film_ids])
    similarity = vectors @ vectors.T
    return float(similarity[np.triu_indices(len(film_ids), 1)].mean())


def test_diversity_lowers_pairwise_similarity(engine: Engine, films: Films) -> None:
    plain = ids(one(engine, title="Space Saga 0", top_n=5))
    diverse = ids(one(engine, title="Space Saga 0", top_n=5, diversity=0.8))
    assert mean_pairwise_similarity(films, diverse) < mean_pairwise_similarity(films, plain)
    assert ids(one(engine, title="Space Saga 0", top_n=5, diversity=0.0)) == plain


def test_because_lists_what_is_shared_with_the_query_films(engine: Engine) -> None:
    result = one(engine, liked=[{"id": 501}, {"id": 10}], top_n=20)
    because = {film["id"]: film["because"] for film in result["recommendations"]}
    assert because[504]["cast"] == ["Kate Winslet"] and because[504]["genres"] == ["Drama"]
    assert because[503]["directors"] == ["Ann Lee"] and because[503]["genres"] == ["Sci-Fi"]
    nothing = {"genres": [], "directors": [], "cast": [], "writers": [], "query_match": None, "also_liked": None}
    assert because[502] == nothing


# --- search and details ---------------------------------------------------------------------------------------


def test_search_lists_every_film_of_a_shared_title(engine: Engine) -> None:
    result = engine.search([Query(title="hamlet", top_n=3)])[0]
    assert [(r["id"], r["match_score"]) for r in result["results"][:2]] == [(501, 100.0), (500, 100.0)]
    typo = engine.search([Query(title="spase saga")])[0]["results"]
    assert typo and typo[0]["title"].startswith("Space Saga")
    assert engine.search([Query(title="")])[0]["status"] == "invalid"


# --- every kind of index ---------------------------------------------------------------------------------------

EVERY_KIND_OF_QUERY = [
    {"title": "Space Saga 3", "top_n": 10},
    {"liked": [{"id": 500}, {"id": 11}], "disliked": [{"id": 502}], "top_n": 10},
    {"query": "a space saga by ann lee", "liked": [{"id": 503}], "top_n": 5},
    {"title": "Space Saga 0", "genres": ["comedy"], "top_n": 10},
    {"title": "Hamlet", "year_min": 1993, "year_max": 1999, "within": [13, 14, 504, 999], "top_n": 20},
    {"title": "Space Saga 0", "top_n": 5, "diversity": 0.8},
    {"title": "Space Saga 2", "top_n": 5, "offset": 5},
]


@pytest.mark.parametrize("kind", [HNSW, IVFPQ])
def test_an_approximate_index_answers_as_the_exact_one_on_a_small_catalog(
    engine: Engine, films: Films, kind: str
) -> None:
    """Every kind of query; HNSW's vectors are read out of the index, IVF-PQ's (codes only there) passed beside it."""
    index = build_index(films.vectors, films.ids, kind)
    other = Films(films.movies, index, films.people, None if stores_vectors(index) else films.vectors)
    approximate = Engine(other, info={"model_name": "test"}, load_encoder=hashing_encoder)
    queries = [Query.model_validate(query) for query in EVERY_KIND_OF_QUERY]
    assert approximate.recommend(queries) == engine.recommend(queries)


def test_details(engine: Engine) -> None:
    film = engine.details([Query(id=501)])[0]["film"]
    assert film["title"] == "Hamlet" and film["year"] == 1996 and film["reviews"] == 90.0
    assert engine.details([Query(id=7)])[0]["status"] == "not_found"


@pytest.mark.parametrize(("setting", "loads"), [(None, True), ("false", False)])
def test_the_encoder_warms_up_in_the_background_unless_switched_off(
    films: Films, monkeypatch: pytest.MonkeyPatch, setting: str | None, loads: bool
) -> None:
    loaded = threading.Event()

    def load() -> Callable[[list[str]], np.ndarray]:
        loaded.set()
        return lambda texts: hashing_vectors(texts)

    if setting is None:
        monkeypatch.delenv(WARM_UP_ENV, raising=False)
    else:
        monkeypatch.setenv(WARM_UP_ENV, setting)
    fresh = Engine(films, load_encoder=load)
    thread = fresh.warm_up()
    assert (thread is not None) is loads
    if thread is not None:
        thread.join(10)
    assert loaded.is_set() is loads
    fresh.encode(["space adventure"])  # switched off or not, the first free text loads it
    assert loaded.is_set()


def test_a_dropped_engine_is_freed_without_the_garbage_collector(films: Films) -> None:
    """A loaded model freezes the collector (model/recommender.py), so a reference cycle would keep an engine that
    was dropped (a model loaded again in the same process, as log_model does) for the life of the process."""
    engine = Engine(films, load_encoder=hashing_encoder)
    assert one(engine, query="a space saga", top_n=2)["status"] == "ok"  # the encoder and the text matcher used
    dropped = weakref.ref(engine)
    gc.disable()
    try:
        del engine
        assert dropped() is None
    finally:
        gc.enable()
