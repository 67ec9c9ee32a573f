"""The batch entry point: a file of good and bad queries scored on local Spark by the session's model, through
`mlflow run . -e batch` as a user runs it, once from Parquet and once from CSV."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from model.contract import EXPLAINED_FIELDS, STATUS_INVALID, STATUS_OK, STATUS_UNKNOWN_TITLE, TOP_N_OUT_OF_RANGE
from pipelines.batch import FILM_FIELDS
from pipelines.engines import no_encoder_warm_up
from pipelines.queries import NOT_A_LIST, NOT_AN_INTEGER
from tests.conftest import BuiltModel, mlflow_run

pytestmark = pytest.mark.integration

UNKNOWN_GENRE = "unknown genre(s) Westerns"  # model.contract.UNKNOWN_GENRES, the catalog's genres left out
# (query, expected status, expected reason); the output must keep this order
CASES: list[tuple[dict[str, Any], str, str | None]] = [
    ({"title": "The Matrix", "top_n": 5}, STATUS_OK, None),
    ({"title": "Heat", "top_n": 3, "genres": ["Crime"]}, STATUS_OK, None),
    ({"liked": [{"title": "Toy Story"}, {"title": "Jurassic Park", "year": 1993}], "top_n": 4}, STATUS_OK, None),
    ({"title": "Fargo", "year_min": 1995, "year_max": 2000, "diversity": 0.3, "top_n": 6}, STATUS_OK, None),
    ({"title": "Lock, Stock and Two Smoking Barrels", "exclude_genres": ["Comedy"]}, STATUS_OK, None),
    ({"title": "Qwxyzzy Blorfington", "top_n": 5}, STATUS_UNKNOWN_TITLE, None),
    ({"title": "Heat", "top_n": 500}, STATUS_INVALID, TOP_N_OUT_OF_RANGE),
    ({"title": "Heat", "genres": ["Westerns"]}, STATUS_INVALID, UNKNOWN_GENRE),
]
# Free text needs the encoder in the Spark workers: once, in the Parquet run, for the query_match fields.
FREE_TEXT = ({"query": "a heist that goes wrong", "top_n": 3}, STATUS_OK, None)
# CSV cells the reader cannot take: each row comes back invalid, saying why
UNREADABLE_CSV = [
    ({"title": "Heat", "top_n": "abc"}, STATUS_INVALID, NOT_AN_INTEGER.format(field="top_n")),
    ({"liked": "Heat"}, STATUS_INVALID, NOT_A_LIST.format(field="liked")),
]
LIST_FIELDS = ("liked", "genres", "exclude_genres")


@dataclass(frozen=True)
class Scored:
    kind: str
    cases: list[tuple[dict[str, Any], str, str | None]]
    rows: list[dict[str, Any]]  # the output, one dict per row, in file order
    schema: pa.Schema
    run: Run


@pytest.fixture(scope="module", params=["parquet", "csv"])
def scored(
    request: pytest.FixtureRequest, built_model: BuiltModel, java: None, tmp_path_factory: pytest.TempPathFactory
) -> Scored:
    kind = request.param
    tmp_path = tmp_path_factory.mktemp(f"batch-{kind}")
    cases = [*CASES, FREE_TEXT] if kind == "parquet" else [*CASES, *UNREADABLE_CSV]
    frame = pd.DataFrame([query for query, _, _ in cases]).assign(user=[f"user-{i}" for i in range(len(cases))])
    queries = tmp_path / f"queries.{kind}"
    if kind == "parquet":
        frame.to_parquet(queries, index=False)
        params: dict[str, Any] = {}  # the default: models:/movie-recommender@champion
    else:
        for name in LIST_FIELDS:  # a list in a CSV cell is its JSON text; a plain string stays as written
            frame[name] = frame[name].map(lambda value: json.dumps(value) if isinstance(value, list) else value)
        frame.to_csv(queries, index=False)
        params = {"model_uri": f"models:/{built_model.name}/{built_model.version}"}
    output = tmp_path / f"answers-{kind}"
    result = mlflow_run(built_model.tracking_uri, "batch", queries=queries, output=output, master="local[2]", **params)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run_id = re.search(r"Run \(ID '(\w+)'\) succeeded", result.stderr)
    assert run_id, result.stderr[-2000:]
    table = pq.read_table(output)
    run = MlflowClient(built_model.tracking_uri).get_run(run_id[1])
    return Scored(kind, cases, table.to_pylist(), table.schema, run)


def test_each_query_gets_one_row_in_order_with_its_status_and_reason(scored: Scored) -> None:
    assert [row["user"] for row in scored.rows] == [f"user-{i}" for i in range(len(scored.cases))]
    assert [row["row_id"] for row in scored.rows] == list(range(len(scored.cases)))
    for row, (query, status, reason) in zip(scored.rows, scored.cases, strict=True):
        assert row["status"] == status, (query, row["reason"])
        if reason == UNKNOWN_GENRE:
            assert row["reason"].startswith(f"{UNKNOWN_GENRE}; the catalog has: Action, Adventure")
        else:
            assert row["reason"] == reason, query
        assert bool(row["recommendations"]) == (status == STATUS_OK), query
    unknown = next(row for row in scored.rows if row["status"] == STATUS_UNKNOWN_TITLE)
    assert unknown["unresolved"] == [{"field": "title", "id": None, "title": "Qwxyzzy Blorfington", "year": None}]


def test_filters_and_liked_lists_are_applied(scored: Scored) -> None:
    heat, liked, fargo, lock = scored.rows[1:5]
    assert len(heat["recommendations"]) == 3
    assert all("Crime" in film["genres"] for film in heat["recommendations"])
    assert [(film["field"], film["title"]) for film in liked["resolved"]] == [
        ("liked", "Toy Story"),
        ("liked", "Jurassic Park"),
    ]
    assert len(fargo["recommendations"]) == 6
    assert all(1995 <= film["year"] <= 2000 for film in fargo["recommendations"])
    assert lock["resolved"][0]["title"] == "Lock, Stock and Two Smoking Barrels"  # a comma inside a CSV cell
    assert all("Comedy" not in film["genres"] for film in lock["recommendations"])


def test_output_is_flat_structs_in_arrays(scored: Scored) -> None:
    """Recommendations (and the resolved, unresolved and suggested films) are arrays of structs; no struct holds a
    struct, so that every engine that reads Parquet can read them."""
    for name in ("recommendations", "resolved", "unresolved", "suggestions"):
        element = scored.schema.field(name).type.value_type
        assert pa.types.is_struct(element), name
        for field in element:
            assert not pa.types.is_struct(field.type), (name, field.name)
            assert not pa.types.is_list(field.type) or pa.types.is_string(field.type.value_type), (name, field.name)
    because = [f"because_{name}" for name in EXPLAINED_FIELDS]
    names = scored.schema.field("recommendations").type.value_type.names
    assert names == [*FILM_FIELDS, "score", *because, "query_match_field", "query_match_text"]
    assert scored.schema.field("status").type == pa.string() and scored.schema.field("reason").type == pa.string()


def test_ok_rows_are_what_the_model_answers(scored: Scored, built_model: BuiltModel) -> None:
    import mlflow

    with no_encoder_warm_up():
        model = mlflow.pyfunc.load_model(f"models:/{built_model.name}/{scored.run.data.params['model_version']}")
    ok = [(query, row) for (query, status, _), row in zip(scored.cases, scored.rows, strict=True) if status == "ok"]
    answers = model.predict([query for query, _ in ok], params={"mode": "recommend"})
    for (query, row), answer in zip(ok, answers, strict=True):
        assert row["recommendations"] == [_flat(film) for film in answer["recommendations"]], query
        named = [("title", answer["query"])] if answer["query"] else []
        named += [(field, film) for field in ("liked", "disliked") for film in answer[field]]
        assert [(film["field"], film["id"], film["matched"]) for film in row["resolved"]] == [
            (field, film["id"], film["matched"]) for field, film in named
        ]
    if scored.kind == "parquet":  # free text: the field of each film closest to it
        assert all(film["query_match_field"] for film in scored.rows[-1]["recommendations"])


def test_the_run_logs_model_version_master_and_counts(scored: Scored, built_model: BuiltModel) -> None:
    params, metrics = scored.run.data.params, scored.run.data.metrics
    assert params["model_version"] == built_model.version
    by_version = f"models:/{built_model.name}/{built_model.version}"
    assert params["model_uri"] == (f"models:/{built_model.name}@champion" if scored.kind == "parquet" else by_version)
    assert params["spark_master"] == "local[2]"
    ok = sum(status == STATUS_OK for _, status, _ in scored.cases)
    assert metrics["rows"] == len(scored.cases) and metrics["rows_ok"] == ok
    assert metrics["rows_failed"] == len(scored.cases) - ok
    assert metrics["rows_invalid"] == sum(status == STATUS_INVALID for _, status, _ in scored.cases)
    assert metrics["wall_seconds"] > 0 and metrics["rows_per_second"] > 0


def _flat(film: dict[str, Any]) -> dict[str, Any]:
    because, match = film["because"], film["because"]["query_match"] or {}
    return {
        **{name: film[name] for name in FILM_FIELDS},
        "score": film["score"],
        **{f"because_{name}": because[name] for name in EXPLAINED_FIELDS},
        "query_match_field": match.get("field"),
        "query_match_text": match.get("text"),
    }
