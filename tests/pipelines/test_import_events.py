"""Importing a team's past interactions: CSV and Parquet files matched to a small real catalog and written to a real
SQLite event store; malformed files refused whole, naming row and column; the entry point logging its run to a
real MLflow tracking store (SQLite), and `mlflow run . -e import_events` against the tracking server. Also the
MovieLens export that feeds it."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import func, select

from events.store import EventStore
from events.tables import feedback
from model.contract import BAD_USER
from pipelines import import_events as importer
from pipelines.import_events import (
    BAD_FILM_ID,
    BAD_RATING,
    BAD_TIMESTAMP,
    BAD_YEAR,
    EXPERIMENT,
    MAX_SHOWN,
    MISSING_COLUMN,
    NO_EVENT,
    NO_EVENT_COLUMN,
    NO_FILM,
    NO_FILM_COLUMN,
    NO_TIMESTAMP,
    NO_YEAR,
    PROBLEM,
    UNKNOWN_EVENT,
    UNSUPPORTED,
    ImportEventsError,
    import_events,
    main,
    open_store,
    prepare,
    read_file,
    write,
)
from pipelines.movielens import USER_KEY, MovieLensError, export_likes, load_behaviour
from tests.conftest import mlflow_run, tiny_catalog

FILMS = [
    {"id": 10, "title": "The Matrix", "year": 1999, "imdb_id": "tt0133093"},
    {"id": 20, "title": "Fargo", "year": 1996, "imdb_id": "tt0116282"},
    {"id": 30, "title": "Hamlet", "year": 1996, "imdb_id": None},
    {"id": 31, "title": "Hamlet", "year": 1996, "imdb_id": None},  # the same title and year: matches neither
    {"id": 40, "title": "Amélie", "year": 2001, "imdb_id": None},
]
T0 = 1_600_000_000  # 2020-09-13T12:26:40Z


@pytest.fixture
def movies() -> pd.DataFrame:
    return tiny_catalog(FILMS)


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.parquet"
    pd.DataFrame(FILMS).to_parquet(path, index=False)
    return path


@pytest.fixture
def store_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated, empty event store; MLflow points into tmp_path, so nothing a test runs logs elsewhere."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    uri = f"sqlite:///{tmp_path / 'events.db'}"
    open_store(uri).dispose()
    return uri


def csv_file(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def stored(uri: str) -> list[tuple[str | None, str, int, str, datetime]]:
    """The feedback rows: (request_id, user, film_id, event, at in UTC), in key order."""
    store = EventStore(uri)
    try:
        with store.engine.connect() as connection:
            query = select(feedback.c.request_id, feedback.c.user, feedback.c.film_id, feedback.c.event, feedback.c.at)
            rows = connection.execute(query.order_by(feedback.c.key)).all()
    finally:
        store.dispose()
    return [(r.request_id, r.user, r.film_id, r.event, r.at.replace(tzinfo=UTC)) for r in rows]


def count(uri: str) -> int:
    store = EventStore(uri)
    try:
        with store.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(feedback)).scalar_one()
    finally:
        store.dispose()


def run_import(path: Path, movies: pd.DataFrame, uri: str) -> tuple[importer.Prepared, tuple[int, int]]:
    prepared = prepare(read_file(path), movies, str(path))
    store = EventStore(uri)
    try:
        return prepared, write(store, prepared.records, group=2)  # several groups even for a few rows
    finally:
        store.dispose()


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_a_csv_names_films_by_id_imdb_id_or_title_and_year(
    tmp_path: Path, movies: pd.DataFrame, store_uri: str
) -> None:
    path = csv_file(
        tmp_path / "history.csv",
        [
            {"user": "ann", "film_id": 10, "imdb_id": "", "title": "", "year": "", "event": "click", "timestamp": T0},
            {"user": "ann", "film_id": "", "imdb_id": "tt0116282", "title": "", "year": "", "event": "like",
             "timestamp": "2020-09-13T14:26:40+02:00"},
            {"user": "bob", "film_id": "", "imdb_id": "", "title": "amelie", "year": "2001", "event": "dismiss",
             "timestamp": "2020-09-13T12:26:41"},
            {"user": "bob", "film_id": 10, "imdb_id": "tt0116282", "title": "", "year": "", "event": "shown",
             "timestamp": T0 + 2.5},  # film_id first: The Matrix
        ],
    )  # fmt: skip
    prepared, (written, duplicates) = run_import(path, movies, store_uri)
    assert (prepared.rows_read, prepared.rows_matched, prepared.rows_unmatched) == (4, 4, 0)
    assert (written, duplicates) == (4, 0)
    assert sorted(stored(store_uri), key=lambda row: row[4]) == [
        (None, "ann", 10, "click", at(T0)),
        (None, "ann", 20, "like", at(T0)),  # an offset is converted to UTC
        (None, "bob", 40, "dismiss", at(T0 + 1)),  # naive: UTC
        (None, "bob", 10, "shown", at(T0 + 2.5)),
    ]
    assert prepared.time_range() == ("2020-09-13T12:26:40Z", "2020-09-13T12:26:42Z")


def test_a_parquet_file_with_ratings_where_event_wins_when_set(
    tmp_path: Path, movies: pd.DataFrame, store_uri: str
) -> None:
    path = tmp_path / "ratings.parquet"
    pd.DataFrame(
        {
            "User": ["u1", "u1", "u1", "u2", "u2", "u2", "u3"],  # column names are read without case
            "film_id": [10, 20, 40, 10, 20, 40, 10],
            "rating": [5.0, 4.0, 3.0, 3.5, 2.0, 1.0, 1.0],
            "event": [None, None, None, None, None, None, "like"],
            "timestamp": [T0 + i for i in range(7)],
        }
    ).to_parquet(path, index=False)
    prepared, (written, _) = run_import(path, movies, store_uri)
    assert (prepared.rows_read, prepared.rows_matched, prepared.rows_skipped) == (7, 5, 2)  # 3 and 3.5: no event
    assert written == 5
    assert {(user, film, event) for _, user, film, event, _ in stored(store_uri)} == {
        ("u1", 10, "like"), ("u1", 20, "like"), ("u2", 20, "dismiss"), ("u2", 40, "dismiss"), ("u3", 10, "like"),
    }  # fmt: skip


def test_a_parquet_datetime_column_is_taken_as_utc(tmp_path: Path, movies: pd.DataFrame, store_uri: str) -> None:
    path = tmp_path / "times.parquet"
    stamps = pd.to_datetime(["2020-09-13 12:26:40", "2021-01-01 00:00:00"])  # naive: UTC
    frame = pd.DataFrame({"user": ["u", "u"], "film_id": [10, 20], "event": ["like", "like"], "timestamp": stamps})
    frame.to_parquet(path, index=False)
    run_import(path, movies, store_uri)
    assert sorted(row[4] for row in stored(store_uri)) == [at(T0), datetime(2021, 1, 1, tzinfo=UTC)]


def test_importing_again_adds_nothing_and_a_repeat_counts_once_at_its_earliest(
    tmp_path: Path, movies: pd.DataFrame, store_uri: str
) -> None:
    rows = [
        {"user": "ann", "film_id": 10, "event": "like", "timestamp": T0 + 9},
        {"user": "ann", "film_id": 20, "event": "like", "timestamp": T0},
        {"user": "ann", "film_id": 10, "event": "like", "timestamp": T0 + 1},  # the same event, earlier
    ]
    path = csv_file(tmp_path / "history.csv", rows)
    assert run_import(path, movies, store_uri)[1] == (2, 1)
    first = stored(store_uri)
    assert [(film, moment) for _, _, film, _, moment in first] == [(10, at(T0 + 1)), (20, at(T0))]
    assert run_import(path, movies, store_uri)[1] == (0, 3)
    assert stored(store_uri) == first


def test_unmatched_rows_are_counted_and_listed_as_given(tmp_path: Path, movies: pd.DataFrame, store_uri: str) -> None:
    path = csv_file(
        tmp_path / "history.csv",
        [
            {"user": "ann", "film_id": 10, "imdb_id": "", "title": "", "year": "", "event": "like", "timestamp": T0},
            {"user": "ann", "film_id": 99, "imdb_id": "", "title": "", "year": "", "event": "like", "timestamp": T0},
            {"user": "ann", "film_id": "", "imdb_id": "tt9999999", "title": "", "year": "", "event": "like",
             "timestamp": T0},
            {"user": "ann", "film_id": "", "imdb_id": "", "title": "Hamlet", "year": 1996, "event": "like",
             "timestamp": T0},  # two films
            {"user": "ann", "film_id": "", "imdb_id": "", "title": "Fargo", "year": 1997, "event": "like",
             "timestamp": T0},  # another year
        ],
    )  # fmt: skip
    prepared, (written, _) = run_import(path, movies, store_uri)
    assert (prepared.rows_matched, prepared.rows_unmatched, written) == (1, 4, 1)
    listed = prepared.unmatched
    assert listed["row"].tolist() == [2, 3, 4, 5]
    assert listed["film_id"].tolist()[0] == "99" and listed["imdb_id"].tolist()[1] == "tt9999999"
    assert listed["title"].tolist()[2:] == ["Hamlet", "Fargo"] and list(listed.columns[1:]) == list(read_file(path))


GOOD = {"user": "ann", "film_id": "10", "event": "like", "timestamp": str(T0)}


@pytest.mark.parametrize(
    ("bad", "column", "reason"),
    [
        ({"user": ""}, "user", BAD_USER),
        ({"user": "x" * 129}, "user", BAD_USER),
        ({"user": "tab\there"}, "user", BAD_USER),
        ({"event": "love"}, "event", UNKNOWN_EVENT.format(value="'love'")),
        ({"event": "", "rating": "five"}, "rating", BAD_RATING.format(value="'five'")),
        ({"event": ""}, "event", NO_EVENT),
        ({"timestamp": "yesterday"}, "timestamp", BAD_TIMESTAMP.format(value="'yesterday'")),
        ({"timestamp": str(T0 * 1000)}, "timestamp", BAD_TIMESTAMP.format(value=repr(str(T0 * 1000)))),  # ms
        ({"timestamp": ""}, "timestamp", NO_TIMESTAMP),
        ({"film_id": "12a"}, "film_id", BAD_FILM_ID.format(value="'12a'")),
        ({"film_id": "1.5"}, "film_id", BAD_FILM_ID.format(value="'1.5'")),
        ({"film_id": "-1"}, "film_id", BAD_FILM_ID.format(value="'-1'")),
        ({"film_id": ""}, "film_id/title", NO_FILM),
        ({"film_id": "", "title": "Fargo"}, "year", NO_YEAR),
        ({"film_id": "", "title": "Fargo", "year": "199x"}, "year", BAD_YEAR.format(value="'199x'")),
    ],
)
def test_a_malformed_row_fails_the_whole_file_naming_row_and_column(
    tmp_path: Path, catalog_file: Path, store_uri: str, bad: dict[str, str], column: str, reason: str
) -> None:
    rows = [{**GOOD, "rating": "", "title": "", "year": ""} for _ in range(4)]
    rows[2] |= bad  # data row 3: line 4 of the file
    path = csv_file(tmp_path / "history.csv", rows)
    with pytest.raises(ImportEventsError) as error:
        import_events(path, store_uri, str(catalog_file))
    assert PROBLEM.format(row=3, column=column, reason=reason) in str(error.value)
    assert "row 1," not in str(error.value) and "nothing written" in str(error.value)
    assert count(store_uri) == 0


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("user", MISSING_COLUMN.format(path="{path}", column="user", columns="film_id, event, timestamp")),
        ("timestamp", MISSING_COLUMN.format(path="{path}", column="timestamp", columns="user, film_id, event")),
        ("film_id", NO_FILM_COLUMN.format(path="{path}", columns="user, event, timestamp")),
        ("event", NO_EVENT_COLUMN.format(path="{path}", columns="user, film_id, timestamp")),
    ],
)
def test_a_missing_column_is_named(tmp_path: Path, catalog_file: Path, store_uri: str, drop: str, message: str) -> None:
    path = csv_file(tmp_path / "history.csv", [{k: v for k, v in GOOD.items() if k != drop}])
    with pytest.raises(ImportEventsError, match="^" + re.escape(message.format(path=path)) + "$"):
        import_events(path, store_uri, str(catalog_file))
    assert count(store_uri) == 0


def test_a_title_needs_a_year_column_and_the_format_is_known(tmp_path: Path, catalog_file: Path) -> None:
    path = csv_file(tmp_path / "history.csv", [{"user": "a", "title": "Fargo", "event": "like", "timestamp": T0}])
    with pytest.raises(ImportEventsError, match="no column 'year'"):
        import_events(path, "sqlite://", str(catalog_file))
    other = tmp_path / "history.json"
    other.write_text("[]")
    with pytest.raises(ImportEventsError) as error:
        import_events(other, "sqlite://", str(catalog_file))
    assert str(error.value) == UNSUPPORTED.format(path=other, suffix=".json")


def test_many_malformed_rows_are_counted_beyond_those_named(tmp_path: Path, catalog_file: Path) -> None:
    path = csv_file(tmp_path / "history.csv", [{**GOOD, "event": "love"}] * (MAX_SHOWN + 5))
    with pytest.raises(ImportEventsError) as error:
        import_events(path, "sqlite://", str(catalog_file))
    assert f"{MAX_SHOWN + 5} malformed row(s)" in str(error.value) and str(error.value).endswith("and 5 more")


def test_the_cli_imports_logs_its_run_and_imports_nothing_twice(
    tmp_path: Path, catalog_file: Path, store_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"user": "ann", "title": "Fargo", "year": 1996, "rating": 5, "timestamp": T0},
        {"user": "ann", "title": "The Matrix", "year": 1999, "rating": 3, "timestamp": T0 + 5},
        {"user": "bob", "title": "Hamlet", "year": 1996, "rating": 1, "timestamp": T0 + 10},
        {"user": "bob", "title": "Matrix, The", "year": 1999, "rating": 1, "timestamp": T0 + 60},
    ]
    path = csv_file(tmp_path / "history.csv", rows)
    args = [str(path), "--events", store_uri, "--catalog", str(catalog_file)]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"imported {path}: 4 rows, 2 matched, 1 unmatched (unmatched.csv), 1 skipped;")
    assert "events written 2, duplicates 0" in line
    assert main(args) == 0
    assert "events written 0, duplicates 2" in capsys.readouterr().out
    assert count(store_uri) == 2

    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    first, second = sorted(client.search_runs([experiment.experiment_id]), key=lambda run: run.info.start_time)
    assert first.data.metrics == {
        "rows_read": 4, "rows_matched": 2, "rows_unmatched": 1, "rows_skipped": 1, "events_written": 2,
        "events_duplicate": 0,
    }  # fmt: skip
    assert (second.data.metrics["events_written"], second.data.metrics["events_duplicate"]) == (0, 2)
    params = first.data.params
    assert params == {
        "path": str(path), "events": store_uri, "catalog": str(catalog_file),
        "events_from": "2020-09-13T12:26:40Z", "events_to": "2020-09-13T12:27:40Z",
    }  # fmt: skip
    listed = mlflow.artifacts.load_text(f"runs:/{first.info.run_id}/unmatched.csv")
    assert list(csv.DictReader(StringIO(listed))) == [
        {"row": "3", "user": "bob", "title": "Hamlet", "year": "1996", "rating": "1", "timestamp": str(T0 + 10)}
    ]


def test_the_cli_fails_with_one_line_and_writes_nothing(
    tmp_path: Path, catalog_file: Path, store_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = csv_file(tmp_path / "history.csv", [GOOD, {**GOOD, "user": ""}])
    assert main([str(path), "--events", store_uri, "--catalog", str(catalog_file)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("import_events failed:") and "\n" not in error
    assert PROBLEM.format(row=2, column="user", reason=BAD_USER) in error
    assert count(store_uri) == 0


@pytest.mark.integration
def test_the_mlflow_project_entry_point(tracking_uri: str, tmp_path: Path, catalog_file: Path) -> None:
    path = csv_file(tmp_path / "history.csv", [GOOD, {**GOOD, "film_id": "20", "event": "dismiss"}])
    uri = f"sqlite:///{tmp_path / 'events.db'}"
    result = mlflow_run(tracking_uri, "import_events", path=path, events=uri, catalog=catalog_file)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "events written 2, duplicates 0" in result.stdout
    assert count(uri) == 2


# --- the MovieLens export ----------------------------------------------------------------------------------------

MOVIELENS_FILMS = [("Toy Story", 1995), ("GoldenEye", 1995), ("Fargo", 1996), ("Star Wars", 1977), ("Contact", 1997)]


def test_export_likes_holds_out_each_users_last_like_and_imports_whole(tmp_path: Path, store_uri: str) -> None:
    films = tiny_catalog([{"id": i, "title": t, "year": y} for i, (t, y) in enumerate(MOVIELENS_FILMS, start=1)])
    likes = load_behaviour(films).likes
    last = likes.sort_values(["timestamp", "film"]).groupby("user").tail(1)
    everything, held = tmp_path / "all.parquet", tmp_path / "held.parquet"
    assert export_likes(everything, films, hold_out_last=False) == len(likes)
    assert export_likes(held, films) == len(likes) - likes["user"].nunique()

    exported = pd.read_parquet(held)
    assert list(exported.columns) == ["user", "film_id", "event", "timestamp"] and set(exported["event"]) == {"like"}
    keys = {USER_KEY.format(user=user) for user in likes["user"]}
    assert set(exported["user"]) < keys and set(pd.read_parquet(everything)["user"]) == keys
    pairs = set(zip(exported["user"], exported["film_id"], exported["timestamp"], strict=True))
    last = last.assign(user=[USER_KEY.format(user=user) for user in last["user"]])
    held_out = set(zip(last["user"], last["film"], last["timestamp"], strict=True))
    assert not pairs & held_out and len(pairs) == len(exported)

    prepared, (written, _) = run_import(held, films, store_uri)
    assert (prepared.rows_unmatched, written) == (0, len(exported))

    cutoff = float(exported["timestamp"].median())
    before = tmp_path / "before.parquet"
    assert export_likes(before, films, until=cutoff) == int((exported["timestamp"] < cutoff).sum())


def test_export_likes_never_writes_into_the_repository(tmp_path: Path) -> None:
    inside = Path(importer.__file__).parents[1] / "movielens-export.parquet"
    try:
        with pytest.raises(MovieLensError, match="inside the repository"):
            export_likes(inside, tiny_catalog([{"id": 1, "title": "Fargo", "year": 1996}]))
        assert not inside.exists()
    finally:
        inside.unlink(missing_ok=True)
