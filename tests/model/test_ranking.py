"""The score and the live search: what each weight does, on the tiny catalog."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from model.films import Films
from model.index import IVFPQ, MISSING_ID, build_index, search
from model.ranking import Ranking, Search, blend, rank, retrieve
from tests.model.conftest import ROWS, SAGA


def ranked_ids(
    films: Films, liked: list[int], top_n: int = 5, ranking: Ranking | None = None, **search: object
) -> list[int]:
    rows = films.rows_of(liked).tolist()
    banned = set(rows) | set(films.rows_of(search.pop("exclude", [])).tolist())
    allowed = None
    if "within" in search:
        allowed = np.zeros(len(films), dtype=bool)
        allowed[films.rows_of(search.pop("within"))] = True
    ranked = rank(films, ranking or Ranking(), Search(rows, [], None, allowed, banned, top_n))
    return films.ids[ranked.rows].tolist()


def test_blend_is_the_documented_formula_for_one_query_and_for_many() -> None:
    ranking = Ranking(dense_weight=0.6, prior_weight=0.1, era_weight=0.2)
    similarity, people = np.array([0.9, 0.5]), np.array([0.2, 0.8])
    prior, years = np.array([1.0, -1.0]), np.array([1990.0, np.nan])
    one = blend(ranking, similarity, people, prior, years, 2010.0, True)
    want = 0.6 * similarity + 0.4 * people + 0.1 * prior - 0.2 * np.array([2.0, 0.0])  # unknown year: no penalty
    np.testing.assert_allclose(one, want)
    without_people = blend(ranking, similarity, people, prior, years, float("nan"), False)
    np.testing.assert_allclose(without_people, similarity + 0.1 * prior)  # the embedding takes the whole weight
    many = blend(
        ranking, np.stack([similarity] * 2), np.stack([people] * 2), np.stack([prior] * 2), np.stack([years] * 2),
        np.array([[2010.0], [np.nan]]), np.array([[True], [False]]),
    )  # fmt: skip
    np.testing.assert_allclose(many, np.stack([one, without_people]))


def test_rank_keeps_to_within_and_drops_exclude(films: Films) -> None:
    within = [11, 12, 500, 502]
    assert set(ranked_ids(films, [10], 10, within=within)) == set(within)
    assert 12 not in ranked_ids(films, [10], 10, exclude=[12])


def test_ranking_is_stable_between_calls(films: Films) -> None:
    assert ranked_ids(films, [10], 10) == ranked_ids(films, [10], 10)


def test_prior_weight_lifts_notable_films(films: Films) -> None:
    prior = np.zeros(len(ROWS), dtype=np.float32)
    prior[films.rows_of([502])] = 5.0  # Kitchen Comedy
    loud = Films(films.movies.assign(prior=prior), films.index, films.people)
    assert ranked_ids(loud, [10], 1, Ranking(prior_weight=1.0)) == [502]
    assert ranked_ids(loud, [10], 1, Ranking(prior_weight=0.0)) != [502]


def test_era_weight_prefers_the_same_decade(films: Films) -> None:
    near = ranked_ids(films, [17], 3, Ranking(era_weight=5.0))
    years = films.years[films.rows_of(near)]
    assert all(abs(year - 1997) <= 3 for year in years)


def test_people_similarity_finds_shared_directors(films: Films) -> None:
    people_only = Ranking(dense_weight=0.0, prior_weight=0.0, era_weight=0.0)
    assert set(ranked_ids(films, [10], 7, people_only)) == set(SAGA) - {10}


def test_later_liked_films_weigh_more(films: Films) -> None:
    steep = Ranking(recency=0.01)
    assert ranked_ids(films, [10, 500], 1, steep) == [501]  # Hamlet, liked last, dominates
    assert ranked_ids(films, [500, 10], 1, steep)[0] in SAGA


@pytest.mark.parametrize("pool", [3, 1000])
def test_a_pool_smaller_than_the_catalog_still_fills_top_n(films: Films, pool: int) -> None:
    assert len(ranked_ids(films, [10], 3, Ranking(pool=pool))) == 3


def test_a_filter_an_approximate_index_cannot_fill_is_searched_exactly(films: Films) -> None:
    """IVF-PQ searching one list of four meets only some of the films a filter allows: the rest are still found."""
    index = build_index(films.vectors, films.ids, IVFPQ)
    faiss.extract_index_ivf(index).nprobe = 1
    narrow = Films(films.movies, index, films.people, films.vectors)
    within = [11, 12, 500, 502, 503, 504]
    query = films.vectors[films.rows_of([10])[0]]
    _, found = search(index, query, len(within), allowed=np.asarray(within))
    assert (found == MISSING_ID).any()  # the index alone comes back short
    allowed = np.zeros(len(films), dtype=bool)
    allowed[films.rows_of(within)] = True
    pool = retrieve(narrow, query, Search([], [], None, allowed, set(), 10), pool=1000)
    rows = films.rows_of(within)
    assert pool.tolist() == rows[np.argsort(-(films.vectors[rows] @ query))].tolist()  # all, nearest first
    assert ranked_ids(narrow, [10], 10, within=within) == ranked_ids(films, [10], 10, within=within)
