"""MLproject entry point `import_events`: a team's past interactions, from a CSV or Parquet file, into the event store.

    mlflow run . -e import_events --env-manager local -P path=/data/history.csv [-P events=sqlite:///.run/events.db]
        [-P catalog=default]
    python -m pipelines.import_events /data/history.parquet [--events URI] [--catalog default|FILE]

One row per interaction (column names are read without case or surrounding spaces):

- `user`: the app's opaque user id, 1-128 printable characters, as the gateway takes it.
- the film: `film_id` (a catalog id), `imdb_id` (`tt0133093`), or `title` and `year` (the normalised title of
  model/resolve.py and the same year; a title and year naming several catalog films, or none, match nothing). A row
  uses the first of the three it fills.
- `event` (shown, click, like, dismiss) or `rating`: `LIKED_RATING` (4) and above is a like, `DISMISSED_RATING` (2)
  and below a dismiss, anything between gives no event (the row is skipped). Where a row fills `event`, it wins.
- `timestamp`: Unix seconds, or an ISO 8601 time (UTC when it names no zone).

The whole file is checked before anything is written: malformed rows fail the import, each named by its row and
column. Rows are data rows counted from 1, the header not counted: row 1 is line 2 of a CSV. Each row of a sound
file is one of `rows_matched` (it becomes one feedback event of no request, keyed per user, film and event as the
gateway keys such events), `rows_unmatched` (its film is not in the catalog: listed in the run's `unmatched.csv`,
never written) or `rows_skipped` (a rating that gives no event). Importing a file again adds nothing
(`events_duplicate`); an event repeated in the file counts once, at its earliest time. The run (experiment
`movie-recommender-imports`, or the one `mlflow run` gives) logs the counts, the store, the catalog and the time
range of the events (`events_from`, `events_to`).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from events.records import EVENTS, Feedback
from events.store import EventStore, display_url
from model.catalog import CatalogError, load_catalog
from model.contract import BAD_USER, MAX_ID, user_reason
from model.resolve import normalize_title
from pipelines.engagement import DEFAULT_EVENTS
from pipelines.movielens import LIKED_RATING

logger = logging.getLogger(__name__)

EXPERIMENT = "movie-recommender-imports"
DEFAULT_CATALOG = "default"  # as the build names it: movies.db of bokeh-sampledata (model/catalog.py)
DISMISSED_RATING = 2  # a rating at or below it is a dismiss; LIKED_RATING and above a like; between: no event
GROUP = 5_000  # events per transaction
MAX_SHOWN = 10  # malformed rows named in the error; the rest are counted
UNMATCHED = "unmatched.csv"
ROW = "row"  # the row number's column in unmatched.csv
FILM_COLUMNS = ("film_id", "imdb_id", "title")
COLUMNS = ("user", *FILM_COLUMNS, "year", "event", "rating", "timestamp")

MISSING_FILE = "no file at {path}"
UNSUPPORTED = "{path}: an import is a .csv or a .parquet file, not {suffix!r}"
UNREADABLE = "{path} cannot be read: {error}"
MISSING_COLUMN = "{path} has no column {column!r} (columns: {columns})"
NO_FILM_COLUMN = "{path} names no film: it needs a column film_id, imdb_id, or title and year (columns: {columns})"
NO_EVENT_COLUMN = "{path} has neither an event nor a rating column (columns: {columns})"
MALFORMED = "{path}: {count} malformed row(s), nothing written (rows counted from 1, the header not counted): {rows}"
MORE = "and {count} more"
PROBLEM = "row {row}, column {column!r}: {reason}"
NO_FILM = "no film: fill film_id, imdb_id, or title and year"
BAD_FILM_ID = f"{{value}} is not a catalog id (a whole number 0 to {MAX_ID})"
NO_YEAR = "a title needs its year"
BAD_YEAR = "{value} is not a year"
NO_EVENT = "no event: fill event or rating"
UNKNOWN_EVENT = f"{{value}} is not an event ({', '.join(EVENTS)})"
BAD_RATING = "{value} is not a number"
NO_TIMESTAMP = "no timestamp"
BAD_TIMESTAMP = "{value} is neither Unix seconds nor an ISO 8601 time"
UNWRITABLE = "cannot write the event store {uri}: {error} ({written} events written; import again for the rest)"

_WHOLE = re.compile(r"[+-]?\d+(?:\.0*)?")

Report = Callable[[str, str], None]  # records a problem of the row being checked: (column, reason)


class ImportEventsError(ValueError):
    """The file cannot be imported (unreadable, malformed, an unusable catalog or store); the message says why."""


@dataclass(frozen=True)
class Problem:
    row: int  # data rows counted from 1
    column: str
    reason: str

    def __str__(self) -> str:
        return PROBLEM.format(row=self.row, column=self.column, reason=self.reason)


@dataclass(frozen=True)
class Row:
    """One checked row: the film as given (`film`: ("film_id", id), ("imdb_id", id) or ("title", (title, year)),
    the title normalised), its event (None: a rating that gives none) and its time (UTC)."""

    row: int
    user: str
    film: tuple[str, object]
    event: str | None
    at: datetime


@dataclass(frozen=True)
class Prepared:
    """What an import writes and counts: `records` in time order, the unmatched rows as given (their row number in
    column `row`), and rows read, matched, unmatched and skipped (read = matched + unmatched + skipped)."""

    records: list[Feedback]
    unmatched: pd.DataFrame
    rows_read: int
    rows_skipped: int

    @property
    def rows_unmatched(self) -> int:
        return len(self.unmatched)

    @property
    def rows_matched(self) -> int:
        return len(self.records)

    def time_range(self) -> tuple[str, str]:
        """The first and last event's time (ISO 8601, UTC), empty when there is none."""
        if not self.records:
            return "", ""
        return _iso(self.records[0].at), _iso(self.records[-1].at)


@dataclass(frozen=True)
class ImportResult:
    prepared: Prepared
    written: int
    duplicates: int
    run_id: str

    def metrics(self) -> dict[str, float]:
        p = self.prepared
        values = {"rows_read": p.rows_read, "rows_matched": p.rows_matched, "rows_unmatched": p.rows_unmatched}
        values |= {"rows_skipped": p.rows_skipped, "events_written": self.written, "events_duplicate": self.duplicates}
        return {key: float(value) for key, value in values.items()}

    def line(self, path: str) -> str:
        p, (first, last) = self.prepared, self.prepared.time_range()
        return (
            f"imported {path}: {p.rows_read} rows, {p.rows_matched} matched, {p.rows_unmatched} unmatched "
            f"({UNMATCHED}), {p.rows_skipped} skipped; events written {self.written}, duplicates {self.duplicates}; "
            f"{first or '-'} to {last or '-'}; run {self.run_id}"
        )


def read_file(path: Path) -> pd.DataFrame:
    """The file's rows as given (a CSV's cells as text, empty ones missing), column names stripped and lower-cased."""
    if not path.is_file():
        raise ImportEventsError(MISSING_FILE.format(path=path))
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ImportEventsError(UNSUPPORTED.format(path=path, suffix=path.suffix))
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""], encoding="utf-8")
        else:
            frame = pd.read_parquet(path)
    except Exception as error:  # pandas, the csv parser and pyarrow each raise their own
        raise ImportEventsError(UNREADABLE.format(path=path, error=error)) from error
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    return frame.reset_index(drop=True)


def check_rows(raw: pd.DataFrame, source: str) -> list[Row]:
    """Every row checked and typed; ImportEventsError naming the malformed rows (the first MAX_SHOWN) when any is."""
    _check_columns(raw, source)
    cells = raw.reindex(columns=list(COLUMNS)).astype(object)
    # where a row names no film or no event, the problem is told in the file's own columns
    missing = {"film": "/".join(name for name in FILM_COLUMNS if name in raw.columns)}
    missing["event"] = "event" if "event" in raw.columns else "rating"
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, values in enumerate(cells.itertuples(index=False, name=None), start=1):
        row, found = _check_row(number, dict(zip(COLUMNS, values, strict=True)), missing)
        problems += found
        if row is not None:
            rows.append(row)
    if problems:
        shown = [str(problem) for problem in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            shown.append(MORE.format(count=len(problems) - MAX_SHOWN))
        count = len({problem.row for problem in problems})
        raise ImportEventsError(MALFORMED.format(path=source, count=count, rows="; ".join(shown)))
    return rows


def _check_columns(raw: pd.DataFrame, source: str) -> None:
    columns = ", ".join(map(str, raw.columns)) or "none"
    for name in ("user", "timestamp"):
        if name not in raw.columns:
            raise ImportEventsError(MISSING_COLUMN.format(path=source, column=name, columns=columns))
    if not any(name in raw.columns for name in FILM_COLUMNS):
        raise ImportEventsError(NO_FILM_COLUMN.format(path=source, columns=columns))
    if "title" in raw.columns and "year" not in raw.columns:
        raise ImportEventsError(MISSING_COLUMN.format(path=source, column="year", columns=columns))
    if "event" not in raw.columns and "rating" not in raw.columns:
        raise ImportEventsError(NO_EVENT_COLUMN.format(path=source, columns=columns))


def _check_row(number: int, cells: dict[str, object], missing: dict[str, str]) -> tuple[Row | None, list[Problem]]:
    """One row's values, or None with what is wrong with it (every column's problem, not just the first)."""
    problems: list[Problem] = []

    def problem(column: str, reason: str) -> None:
        problems.append(Problem(number, column, reason))

    user = _user(cells["user"])
    if (reason := BAD_USER if user is None else user_reason(user)) is not None:
        problem("user", reason)
    film = _film(cells, problem, missing["film"])
    event = _event(cells, problem, missing["event"])
    at = _moment(cells["timestamp"], problem)
    if problems or user is None or film is None or at is None:
        return None, problems
    return Row(number, user, film, event, at), []


def _film(cells: dict[str, object], problem: Report, column: str) -> tuple[str, object] | None:
    """How the row names its film (see Row), or None (reported) when it names none or a malformed one."""
    if (text := _text(cells["film_id"])) is not None:
        film_id = _whole(cells["film_id"])
        if film_id is None or not 0 <= film_id <= MAX_ID:
            return problem("film_id", BAD_FILM_ID.format(value=_shown(text)))
        return "film_id", film_id
    if (text := _text(cells["imdb_id"])) is not None:
        return "imdb_id", text.lower()
    if (title := _text(cells["title"])) is not None:
        year = _whole(cells["year"])
        if year is None:
            year_text = _text(cells["year"])
            return problem("year", NO_YEAR if year_text is None else BAD_YEAR.format(value=_shown(year_text)))
        return "title", (normalize_title(title), year)
    return problem(column, NO_FILM)


def _event(cells: dict[str, object], problem: Report, column: str) -> str | None:
    """The row's event; None when its rating gives none (or the row is malformed, reported)."""
    rating_text = _text(cells["rating"])
    rating = _number(cells["rating"]) if rating_text is not None else None
    if rating_text is not None and rating is None:
        problem("rating", BAD_RATING.format(value=_shown(rating_text)))
    if (text := _text(cells["event"])) is not None:
        if text.lower() not in EVENTS:
            problem("event", UNKNOWN_EVENT.format(value=_shown(text)))
        return text.lower()
    if rating_text is None:
        problem(column, NO_EVENT)
    return None if rating is None else rating_event(rating)


def rating_event(rating: float) -> str | None:
    """The event a rating stands for: like from LIKED_RATING up, dismiss up to DISMISSED_RATING, else none."""
    if rating >= LIKED_RATING:
        return "like"
    if rating <= DISMISSED_RATING:
        return "dismiss"
    return None


def _moment(value: object, problem: Report) -> datetime | None:
    """A cell's time in UTC: Unix seconds (a number, or its text) or ISO 8601 (naive: UTC); a datetime as it is."""
    text = _text(value)
    if text is None:
        return problem("timestamp", NO_TIMESTAMP)
    if isinstance(value, datetime):  # a Parquet timestamp column (pd.Timestamp is a datetime)
        return _utc(pd.Timestamp(value).to_pydatetime())
    seconds = _number(value)
    try:
        return datetime.fromtimestamp(seconds, UTC) if seconds is not None else _utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError, OSError):
        return problem("timestamp", BAD_TIMESTAMP.format(value=_shown(text)))


def _text(value: object) -> str | None:
    """A cell's text, stripped; None for an empty cell."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def _user(value: object) -> str | None:
    """The user id as given (not stripped: it is the app's own); an integer id as its digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(value)
    return None


def _whole(value: object) -> int | None:
    """A whole number (7, 7.0, "7"), or None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip().split(".")[0])
    return None


def _number(value: object) -> float | None:
    """A finite number (a number, or its text), or None."""
    if isinstance(value, bool | np.bool_):
        return None
    try:
        number = float(value) if isinstance(value, str | int | float | np.integer | np.floating) else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def film_index(movies: pd.DataFrame) -> dict[tuple[str, object], int]:
    """Each way a row may name a catalog film → its id: ("film_id", id), ("imdb_id", id), ("title", (normalised
    title, year)); an imdb id or a title and year that several films share is left out (it matches nothing)."""
    named: dict[tuple[str, object], list[int]] = {}
    columns = (movies[name] for name in ("id", "title", "year", "imdb_id"))
    for film_id, title, year, imdb_id in zip(*columns, strict=True):
        named[("film_id", int(film_id))] = [int(film_id)]
        if imdb_id:
            named.setdefault(("imdb_id", imdb_id), []).append(int(film_id))
        if pd.notna(year):
            named.setdefault(("title", (normalize_title(title), int(year))), []).append(int(film_id))
    return {key: ids[0] for key, ids in named.items() if len(ids) == 1}


def prepare(raw: pd.DataFrame, movies: pd.DataFrame, source: str) -> Prepared:
    """The file's rows checked (ImportEventsError when any is malformed) and matched to the catalog `movies`."""
    return match_rows(check_rows(raw, source), raw, movies)


def match_rows(rows: list[Row], raw: pd.DataFrame, movies: pd.DataFrame) -> Prepared:
    """The checked `rows` of the file `raw` matched to the catalog `movies`: feedback records of no request, in time
    order (ties in file order), and the rows whose film the catalog lacks."""
    index = film_index(movies)
    records: list[Feedback] = []
    unmatched: list[int] = []
    for row in rows:
        if row.event is None:
            continue
        film_id = index.get(row.film)
        if film_id is None:
            unmatched.append(row.row)
            continue
        key = Feedback.key_of(None, row.user, film_id, row.event)
        records.append(Feedback(key, None, row.user, film_id, row.event, row.at))
    records.sort(key=lambda record: record.at)
    listed = raw.iloc[[number - 1 for number in unmatched]].copy()
    listed.insert(0, ROW, unmatched, allow_duplicates=True)
    skipped = sum(row.event is None for row in rows)
    return Prepared(records, listed.reset_index(drop=True), len(raw), skipped)


def write(store: EventStore, records: list[Feedback], group: int = GROUP) -> tuple[int, int]:
    """Write `records` a group per transaction; (written, duplicates). ImportEventsError when the store fails."""
    written = duplicates = 0
    for start in range(0, len(records), group):
        try:
            result = store.write(records[start : start + group])
        except SQLAlchemyError as error:
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise ImportEventsError(UNWRITABLE.format(uri=store.url, error=detail, written=written)) from None
        written, duplicates = written + result.written, duplicates + result.duplicates
    return written, duplicates


def open_store(events_uri: str) -> EventStore:
    """The event store at `events_uri`, its schema migrated (a new SQLite file is created)."""
    try:
        store = EventStore(events_uri)
        store.migrate()
    except (ArgumentError, NoSuchModuleError, ImportError, SQLAlchemyError) as error:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise ImportEventsError(UNWRITABLE.format(uri=display_url(events_uri), error=detail, written=0)) from None
    return store


def import_events(
    path: str | Path,
    events_uri: str = DEFAULT_EVENTS,
    catalog: str = DEFAULT_CATALOG,
    group: int = GROUP,
    client: MlflowClient | None = None,
) -> ImportResult:
    """Check the whole file, match it to `catalog` (`default` or a catalog file), then write its events and log the
    run; ImportEventsError, before anything is written, when the file, the catalog or the store cannot be used."""
    path = Path(path).resolve()
    raw = read_file(path)
    rows = check_rows(raw, str(path))  # a malformed file fails before the catalog is even read
    try:
        loaded = load_catalog(None if catalog.strip() in ("", DEFAULT_CATALOG) else catalog)
    except CatalogError as error:
        raise ImportEventsError(str(error)) from None
    prepared = match_rows(rows, raw, loaded.movies)
    store = open_store(events_uri)
    try:
        with _start_run(client or MlflowClient()) as run:
            first, last = prepared.time_range()
            params = {"path": str(path), "events": store.url, "catalog": catalog}
            params |= {"events_from": first, "events_to": last}
            mlflow.log_params({key: value for key, value in params.items() if key not in run.data.params})
            mlflow.set_tags({"catalog_source": loaded.source})
            written, duplicates = write(store, prepared.records, group)
            result = ImportResult(prepared, written, duplicates, run.info.run_id)
            mlflow.log_metrics(result.metrics())
            mlflow.log_text(prepared.unmatched.to_csv(index=False), UNMATCHED)
    finally:
        store.dispose()
    return result


def _start_run(client: MlflowClient) -> mlflow.ActiveRun:
    """The run `mlflow run` made (MLFLOW_RUN_ID), else a new one in EXPERIMENT, created when missing."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.start_run()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    return mlflow.start_run(experiment_id=experiment_id, run_name="import_events")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.import_events", description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a .csv or .parquet file of past interactions")
    parser.add_argument("--events", default=DEFAULT_EVENTS, help="event store URI (default: the one `make up` uses)")
    parser.add_argument("--catalog", default=DEFAULT_CATALOG, help="'default' or a catalog file to match films to")
    args = parser.parse_args(argv)
    try:
        result = import_events(args.path, args.events, args.catalog)
    except ImportEventsError as error:
        print(f"import_events failed: {error}", file=sys.stderr)
        return 2
    print(result.line(args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
