"""The request contract: which queries are refused, and why, whatever form the query comes in."""

from __future__ import annotations

from typing import Any

import pytest

from model.contract import (
    BAD_GENRE,
    DIVERSITY_OUT_OF_RANGE,
    EMPTY_FILM_REF,
    ID_OUT_OF_RANGE,
    MAX_EXCLUDE,
    MAX_FILMS,
    MAX_GENRES,
    MAX_ID,
    MAX_OFFSET,
    MAX_QUERY_CHARS,
    MAX_SEARCH,
    MAX_TITLE_CHARS,
    MAX_TOP_N,
    MAX_WITHIN,
    NEEDS_A_QUERY,
    NO_VISIBLE_TEXT,
    OFFSET_OUT_OF_RANGE,
    QUERY_TOO_LONG,
    SEARCH_LIMIT_OUT_OF_RANGE,
    SEARCH_REQUIRED,
    TITLE_TOO_LONG,
    TOO_MANY_EXCLUDED,
    TOO_MANY_FILMS,
    TOO_MANY_GENRES,
    TOO_MANY_WITHIN,
    TOP_N_OUT_OF_RANGE,
    YEAR_MAX,
    YEAR_OUT_OF_RANGE,
    YEARS_REVERSED,
    film_parts,
    has_text,
    invalid_reason,
    search_reason,
)
from model.schema import Query

REFUSED = [
    ({}, NEEDS_A_QUERY),
    ({"liked": []}, NEEDS_A_QUERY),
    ({"title": "   "}, NO_VISIBLE_TEXT),
    ({"title": "\u200b\t"}, NO_VISIBLE_TEXT),
    ({"query": "\n"}, NO_VISIBLE_TEXT),
    ({"title": "Heat", "query": " "}, NO_VISIBLE_TEXT),
    ({"title": "x" * (MAX_TITLE_CHARS + 1)}, TITLE_TOO_LONG),
    ({"query": "x" * (MAX_QUERY_CHARS + 1)}, QUERY_TOO_LONG),
    ({"title": "Heat", "top_n": 0}, TOP_N_OUT_OF_RANGE),
    ({"title": "Heat", "top_n": MAX_TOP_N + 1}, TOP_N_OUT_OF_RANGE),
    ({"title": "Heat", "offset": -1}, OFFSET_OUT_OF_RANGE),
    ({"title": "Heat", "offset": MAX_OFFSET + 1}, OFFSET_OUT_OF_RANGE),
    ({"title": "Heat", "diversity": 1.5}, DIVERSITY_OUT_OF_RANGE),
    ({"title": "Heat", "year": YEAR_MAX + 1}, YEAR_OUT_OF_RANGE),
    ({"title": "Heat", "year_min": 2000, "year_max": 1990}, YEARS_REVERSED),
    ({"liked": [{"id": 1}] * (MAX_FILMS + 1)}, TOO_MANY_FILMS),
    ({"title": "Heat", "disliked": [{"id": 1}] * (MAX_FILMS + 1)}, TOO_MANY_FILMS),
    ({"title": "Heat", "exclude": [{"id": 1}] * (MAX_EXCLUDE + 1)}, TOO_MANY_EXCLUDED),
    ({"title": "Heat", "within": [1] * (MAX_WITHIN + 1)}, TOO_MANY_WITHIN),
    ({"title": "Heat", "within": [-1]}, ID_OUT_OF_RANGE),
    ({"liked": [{}]}, EMPTY_FILM_REF),
    ({"liked": [{"title": " "}]}, EMPTY_FILM_REF),
    ({"liked": [{"title": "x" * (MAX_TITLE_CHARS + 1)}]}, TITLE_TOO_LONG),
    ({"liked": [{"title": "Alien", "year": 1500}]}, YEAR_OUT_OF_RANGE),
    ({"title": "Heat", "genres": ["Drama"] * (MAX_GENRES + 1)}, TOO_MANY_GENRES),
    ({"title": "Heat", "exclude_genres": [" "]}, BAD_GENRE),
]


@pytest.mark.parametrize(("query", "reason"), REFUSED)
def test_refused_queries_name_their_reason_as_dicts_and_as_model_input(query: dict[str, Any], reason: str) -> None:
    assert invalid_reason(query) == reason
    assert invalid_reason(Query.model_validate(query)) == reason


@pytest.mark.parametrize(
    "query",
    [
        {"title": "Heat"},
        {"query": "a heist film"},
        {"liked": [{"id": 0}]},
        {"title": "Heat", "top_n": MAX_TOP_N, "offset": MAX_OFFSET, "diversity": 1.0, "year": 1995},
        {"title": "Heat", "liked": [{"title": "Alien", "year": 1979}], "disliked": [{"id": MAX_ID}], "genres": ["x"]},
        {"title": "Heat", "year_min": 1990, "year_max": 1990, "within": [], "exclude": []},
    ],
)
def test_usable_queries_pass(query: dict[str, Any]) -> None:
    assert invalid_reason(query) is None
    assert invalid_reason(Query.model_validate(query)) is None


def test_nan_is_out_of_every_range_but_a_dataframe_gap_in_model_input() -> None:
    assert invalid_reason({"title": "Heat", "diversity": float("nan")}) == DIVERSITY_OUT_OF_RANGE
    assert invalid_reason(Query.model_validate({"title": "Heat", "diversity": float("nan")})) is None


def test_films_may_be_ids_titles_or_objects() -> None:
    assert film_parts(83495) == (83495, None, None)
    assert film_parts("Heat") == (None, "Heat", None)
    assert film_parts(Query(title="Alien", year=1979)) == (None, "Alien", 1979)
    assert film_parts(True) == (None, None, None)  # a JSON true is not film 1
    assert invalid_reason({"liked": [83495, "Heat"]}) is None
    assert invalid_reason({"liked": [True]}) == EMPTY_FILM_REF
    assert invalid_reason({"title": "Heat", "exclude": [-5]}) == ID_OUT_OF_RANGE


def test_visible_text() -> None:
    assert has_text("Heat") and has_text(" é ") and not has_text("") and not has_text(None)
    assert not has_text(" \t\n\u200b\x00")


@pytest.mark.parametrize(
    ("text", "limit", "reason"),
    [
        ("heat", 10, None),
        ("heat", MAX_SEARCH, None),
        (" ", 10, SEARCH_REQUIRED),
        (None, 10, SEARCH_REQUIRED),
        ("x" * (MAX_TITLE_CHARS + 1), 10, SEARCH_REQUIRED),
        ("heat", 0, SEARCH_LIMIT_OUT_OF_RANGE),
        ("heat", MAX_SEARCH + 1, SEARCH_LIMIT_OUT_OF_RANGE),
    ],
)
def test_search_reason(text: str | None, limit: int, reason: str | None) -> None:
    assert search_reason(text, limit) == reason
