"""Rows of a queries file as the model's input: each row's values read into the JSON types of `model.schema.Query`.

A file's columns carry whatever its format allows: Parquet its own types (an int column with gaps read as floats,
arrays as numpy arrays), CSV only text. `read_query` takes one row's values of the query fields and answers the query
as the model takes it, or the reason the row cannot be read (a value of the wrong kind). Values of the right kind but
out of range are left to the model (`model.contract.invalid_reason`), which answers them with status `invalid`.

A list field (`liked`, `genres`, `within`, ...) given as text is read as JSON: a CSV cell holds the same array the
model's JSON input takes, e.g. `["Heat", {"title": "Alien", "year": 1979}, 83495]`. Pure Python, no Spark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, get_args

import pandas as pd

from model.contract import QUERY_FIELDS
from model.schema import FilmRef, Query

TEXT, INTEGER, NUMBER, NAMES, IDS, FILMS = "text", "integer", "number", "names", "ids", "films"
_KINDS: dict[Any, str] = {
    str: TEXT, int: INTEGER, float: NUMBER, list[str]: NAMES, list[int]: IDS, list[FilmRef]: FILMS
}  # fmt: skip


def _kind(annotation: Any) -> str:
    """The kind of a `Query` field typed `X | None`."""
    (inner,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    return _KINDS[inner]


# Each query field's kind, from the model's own input type: what `read_query` accepts and the model's input type.
FIELD_KINDS: dict[str, str] = {name: _kind(Query.model_fields[name].annotation) for name in QUERY_FIELDS}
_FILM_DDL = "struct<id: bigint, title: string, year: bigint>"
_KIND_DDL = {
    TEXT: "string",
    INTEGER: "bigint",
    NUMBER: "double",
    NAMES: "array<string>",
    IDS: "array<bigint>",
    FILMS: f"array<{_FILM_DDL}>",
}
# The query as a Spark struct (DDL): the model's input row, read from the JSON text `read_query` answers.
QUERY_DDL = "struct<" + ", ".join(f"{name}: {_KIND_DDL[kind]}" for name, kind in FIELD_KINDS.items()) + ">"

NOT_TEXT = "{field} must be text"
NOT_AN_INTEGER = "{field} must be a whole number"
TOO_LARGE = "{field} holds a number too large for a 64-bit integer"
NOT_A_NUMBER = "{field} must be a number"
NOT_A_LIST = '{field} must be a list (in a CSV cell: a JSON array, e.g. ["Heat", "Alien"])'
NOT_NAMES = "{field} must be a list of names"
NOT_IDS = "{field} must be a list of catalog ids"
NOT_FILMS = '{field} must be a list of films: catalog ids, titles, or {{"title", "year"}} objects'


def read_queries(rows: pd.DataFrame) -> pd.DataFrame:
    """`read_query` over a batch of rows (columns: query fields): columns `query` (the query's JSON text; `{}` for a
    row that cannot be read) and `problem` (why not, else None), one row per row."""
    read = [read_query(values) for values in rows.to_dict(orient="records")]
    return pd.DataFrame(
        {
            "query": [json.dumps(query if query is not None else {}) for query, _ in read],
            "problem": pd.Series([problem for _, problem in read], dtype=object),  # None, not NaN: null in Spark
        }
    )


class Unreadable(ValueError):
    """A value of the wrong kind; its message is the row's reason."""


def read_query(values: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the query as the model's JSON input, None), or (None, why the row cannot be read). `values`: the row's
    query fields by name; absent, None and NaN mean not given. The first field that cannot be read is named."""
    query: dict[str, Any] = {}
    for field, kind in FIELD_KINDS.items():
        value = _given(values.get(field))
        if value is None:
            continue
        try:
            query[field] = _READERS[kind](field, value)
        except Unreadable as error:
            return None, str(error)
    return query, None


def _given(value: Any) -> Any:
    """None for a missing value (None, NaN, pandas NA), else the value with numpy arrays and scalars as Python's."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _given(value.tolist())
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Unreadable(NOT_TEXT.format(field=field))
    return value


def _integer(field: str, value: Any) -> int:
    if isinstance(value, str):
        value = _parse_number(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unreadable(NOT_AN_INTEGER.format(field=field))
    if not -(2**63) <= value < 2**63:  # what Spark's bigint holds
        raise Unreadable(TOO_LARGE.format(field=field))
    return value


def _number(field: str, value: Any) -> float:
    if isinstance(value, str):
        value = _parse_number(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise Unreadable(NOT_A_NUMBER.format(field=field))


def _names(field: str, value: Any) -> list[str]:
    items = _items(field, value)
    if not all(isinstance(item, str) for item in items):
        raise Unreadable(NOT_NAMES.format(field=field))
    return items


def _ids(field: str, value: Any) -> list[int]:
    try:
        return [_integer(field, item) for item in _items(field, value)]
    except Unreadable:
        raise Unreadable(NOT_IDS.format(field=field)) from None


def _films(field: str, value: Any) -> list[dict[str, Any]]:
    """Each film as {id, title, year}: an id alone, a title alone, or an object with any of the three."""
    films = []
    for item in _items(field, value):
        item = _given(item)
        if isinstance(item, str):
            films.append({"title": item})
        elif isinstance(item, int | float) and not isinstance(item, bool):
            films.append({"id": _film_part(field, _integer, item)})
        elif isinstance(item, Mapping) and set(item) <= {"id", "title", "year"}:
            parts = {key: _given(part) for key, part in item.items()}
            film = {
                "id": _film_part(field, _integer, parts.get("id")),
                "title": _film_part(field, _text, parts.get("title")),
                "year": _film_part(field, _integer, parts.get("year")),
            }
            films.append({key: part for key, part in film.items() if part is not None})
        else:
            raise Unreadable(NOT_FILMS.format(field=field))
    return films


def _film_part(field: str, reader: Any, value: Any) -> Any:
    if value is None:
        return None
    try:
        return reader(field, value)
    except Unreadable:
        raise Unreadable(NOT_FILMS.format(field=field)) from None


def _items(field: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Unreadable(NOT_A_LIST.format(field=field)) from None
    if not isinstance(value, list | tuple):
        raise Unreadable(NOT_A_LIST.format(field=field))
    return [_given(item) for item in value]


def _parse_number(text: str) -> Any:
    """A number written as text (CSV), or the text itself when it is none."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        return float(text.strip())
    except ValueError:
        return text


_READERS = {TEXT: _text, INTEGER: _integer, NUMBER: _number, NAMES: _names, IDS: _ids, FILMS: _films}
