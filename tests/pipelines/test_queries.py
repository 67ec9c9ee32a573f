"""Reading a queries file's rows (pipelines/queries.py): each value into the model's input type, or a reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from model.schema import Query
from pipelines.queries import (
    NOT_A_LIST,
    NOT_A_NUMBER,
    NOT_AN_INTEGER,
    NOT_FILMS,
    NOT_IDS,
    NOT_NAMES,
    NOT_TEXT,
    TOO_LARGE,
    read_queries,
    read_query,
)


def test_parquet_values_become_the_models_input() -> None:
    """What a Parquet row holds: numpy arrays, ints read as floats in a column with gaps, NaN for missing."""
    row = {
        "title": "Heat",
        "top_n": 5.0,
        "year": np.int64(1995),
        "liked": np.array([{"title": "Alien", "year": 1979.0, "id": None}, {"id": 42.0}], dtype=object),
        "genres": np.array(["Crime", "Thriller"], dtype=object),
        "within": np.array([1, 2, 3]),
        "diversity": np.float32(0.5),
        "offset": float("nan"),
        "query": None,
    }
    query, problem = read_query(row)
    assert problem is None
    assert query == {
        "title": "Heat",
        "year": 1995,
        "top_n": 5,
        "liked": [{"title": "Alien", "year": 1979}, {"id": 42}],
        "genres": ["Crime", "Thriller"],
        "within": [1, 2, 3],
        "diversity": 0.5,
    }
    Query(**query)  # the model's own input type takes it


def test_csv_text_becomes_the_models_input() -> None:
    """A CSV cell is text: numbers are parsed, lists are JSON arrays with films as ids, titles or objects."""
    row = {
        "title": "Alien",
        "top_n": "10",
        "year_min": "1970.0",
        "diversity": "0.25",
        "liked": '["Heat", {"title": "Alien", "year": 1979}, 83495]',
        "exclude_genres": '["Horror"]',
    }
    query, problem = read_query(row)
    assert problem is None
    assert query == {
        "title": "Alien",
        "top_n": 10,
        "year_min": 1970,
        "diversity": 0.25,
        "liked": [{"title": "Heat"}, {"title": "Alien", "year": 1979}, {"id": 83495}],
        "exclude_genres": ["Horror"],
    }


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"top_n": "abc"}, NOT_AN_INTEGER.format(field="top_n")),
        ({"year": 1999.5}, NOT_AN_INTEGER.format(field="year")),
        ({"offset": True}, NOT_AN_INTEGER.format(field="offset")),
        ({"year_max": 2**70}, TOO_LARGE.format(field="year_max")),
        ({"diversity": "lots"}, NOT_A_NUMBER.format(field="diversity")),
        ({"diversity": float("inf")}, NOT_A_NUMBER.format(field="diversity")),
        ({"title": 1917}, NOT_TEXT.format(field="title")),
        ({"liked": "Heat"}, NOT_A_LIST.format(field="liked")),
        ({"genres": '{"name": "Crime"}'}, NOT_A_LIST.format(field="genres")),
        ({"genres": "[1, 2]"}, NOT_NAMES.format(field="genres")),
        ({"within": '["a"]'}, NOT_IDS.format(field="within")),
        ({"disliked": '[{"name": "Heat"}]'}, NOT_FILMS.format(field="disliked")),
        ({"exclude": '[{"title": "Heat", "year": "soon"}]'}, NOT_FILMS.format(field="exclude")),
        ({"liked": "[[1]]"}, NOT_FILMS.format(field="liked")),
    ],
)
def test_a_value_of_the_wrong_kind_is_the_rows_reason(row: dict, reason: str) -> None:
    assert read_query({"title": "Heat", **row}) == (None, reason)


def test_values_in_range_are_left_to_the_model() -> None:
    """Out of range is the model's to say (model.contract), with the same words as the scoring server."""
    assert read_query({"title": "", "top_n": 0, "year": 3000}) == ({"title": "", "top_n": 0, "year": 3000}, None)


def test_a_batch_of_rows_answers_json_text_and_problems() -> None:
    rows = pd.DataFrame({"title": ["Heat", "Alien", None], "top_n": [5.0, np.nan, 3.0], "liked": [None, None, "x"]})
    read = read_queries(rows)
    assert [json.loads(text) for text in read["query"]] == [{"title": "Heat", "top_n": 5}, {"title": "Alien"}, {}]
    assert read["problem"].tolist() == [None, None, NOT_A_LIST.format(field="liked")]
