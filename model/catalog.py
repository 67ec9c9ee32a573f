"""The film catalog: loading, validation and the one schema every other module relies on.

A catalog is a DataFrame with one row per film and these columns:

| column      | dtype          | meaning                                                        |
| ----------- | -------------- | -------------------------------------------------------------- |
| `id`        | int64          | unique catalog id (also the FAISS vector id)                   |
| `title`     | str            | non-empty                                                      |
| `year`      | Int64 (nullable) | release year                                                 |
| `genres`, `directors`, `cast`, `writers` | list[str] | possibly empty lists                            |
| `imdb_id`   | str or None    | IMDb title id (`tt0133093`), None when unknown                 |
| `cover_url` | str or None    | poster image, None when the catalog has none                   |
| `reviews`   | float64        | number of critic reviews (0 when unknown): a popularity signal |
| `rating`    | float64 or NaN | average critic rating on a 0-10 scale                          |
| `metacritic`| float64 or NaN | Metacritic score 0-100                                          |
| `box_office`| float64 or NaN | box office takings                                              |
| `awards`    | float64        | award wins and nominations counted (0 when unknown)            |

The last five are optional notability signals (see model/prior.py); the default catalog has them all.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

LIST_COLUMNS = ("genres", "directors", "cast", "writers")
NUMERIC_COLUMNS = ("reviews", "rating", "metacritic", "box_office", "awards")
COLUMNS = ("id", "title", "year", *LIST_COLUMNS, "imdb_id", "cover_url", *NUMERIC_COLUMNS)
SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq", ".db", ".sqlite")

MISSING_FILE = "catalog file not found: {path}"
UNSUPPORTED_FORMAT = "catalog {path}: unsupported format {suffix!r}; use one of {supported}"
UNREADABLE = "catalog {path} could not be read: {error}"
EMPTY_CATALOG = "catalog {path} has no rows"
EMPTY_FILE = "catalog {path} is an empty file"
MISSING_TITLE = "catalog {path} has no 'title' column (columns found: {columns})"
NO_TITLED_ROWS = "catalog {path} has no row with a non-empty title"
DUPLICATE_IDS = "catalog {path} has {count} duplicate id(s), for example {examples}"
BAD_IDS = "catalog {path}: column 'id' must hold whole numbers; {count} value(s) do not, for example {examples}"
BAD_YEARS = "catalog {path}: column 'year' must hold whole numbers; {count} value(s) do not, for example {examples}"
BAD_IMDB_IDS = (
    "catalog {path}: column 'imdb_id' holds IMDb title ids like tt0133093; {count} value(s) are not, for example "
    "{examples}"
)
BAD_NUMBERS = "catalog {path}: column {column!r} must be numeric; {count} value(s) are not, for example {examples}"

_NUMBERS = re.compile(r"\d+")
_IMDB_ID = re.compile(r"tt\d{7,}")
_SQLITE_QUERY = """
SELECT o.ID AS id, o.Title AS title, o.Year AS year, o.Genre AS genres, o.Director AS directors,
       o."Cast" AS "cast", o.Writer AS writers, o.imdbID AS imdb_id, t.Image AS cover_url, t.Reviews AS reviews,
       t.Rating AS rating, o.Metacritic AS metacritic, t.BoxOffice AS box_office, o.Awards AS awards
FROM omdb AS o LEFT JOIN tomatoes AS t ON o.ID = t.ID
ORDER BY o.ID
"""


class CatalogError(ValueError):
    """The catalog cannot be used; the message names the problem and the file."""


@dataclass(frozen=True)
class LoadedCatalog:
    """A validated catalog plus what loading it skipped, so nothing is dropped silently."""

    movies: pd.DataFrame
    source: str
    rows_read: int
    skipped_empty_title: int
    stats: dict[str, float] = field(default_factory=dict)


def default_catalog_path() -> Path:
    """movies.db shipped by the `bokeh-sampledata` package (17,472 films 1940-2014, Wikidata, CC0)."""
    import importlib.util

    spec = importlib.util.find_spec("bokeh_sampledata")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError("the default catalog needs the 'bokeh-sampledata' package: pip install bokeh-sampledata")
    return Path(next(iter(spec.submodule_search_locations))) / "_data" / "movies.db"


def load_catalog(path: str | Path | None = None) -> LoadedCatalog:
    """Read and validate a catalog: the default movies.db when `path` is empty, else a CSV, Parquet or movies.db."""
    source = Path(path) if path else default_catalog_path()
    raw = read_raw(source)
    return validate_catalog(raw, str(source))


def read_raw(path: Path) -> pd.DataFrame:
    """The file's rows as they are, columns lower-cased; raises CatalogError for unreadable files."""
    if not path.is_file():
        raise CatalogError(MISSING_FILE.format(path=path))
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise CatalogError(UNSUPPORTED_FORMAT.format(path=path, suffix=suffix, supported=", ".join(SUPPORTED_SUFFIXES)))
    if path.stat().st_size == 0:
        raise CatalogError(EMPTY_FILE.format(path=path))
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""], encoding="utf-8")
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                frame = pd.read_sql_query(_SQLITE_QUERY, connection)
            frame["awards"] = frame["awards"].map(count_awards)
    except (UnicodeDecodeError, ValueError, OSError, sqlite3.Error, pd.errors.ParserError) as error:
        raise CatalogError(UNREADABLE.format(path=path, error=error)) from error
    except Exception as error:  # pyarrow raises its own hierarchy for corrupt Parquet
        raise CatalogError(UNREADABLE.format(path=path, error=error)) from error
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    return frame


def validate_catalog(raw: pd.DataFrame, source: str = "<memory>") -> LoadedCatalog:
    """Normalise a raw table into the catalog schema; every problem raises CatalogError naming it."""
    if "title" not in raw.columns:
        raise CatalogError(MISSING_TITLE.format(path=source, columns=", ".join(map(str, raw.columns)) or "none"))
    if raw.empty:
        raise CatalogError(EMPTY_CATALOG.format(path=source))
    titles = raw["title"].map(_clean_text)
    keep = titles.map(bool).to_numpy()
    skipped = int((~keep).sum())
    if skipped == len(raw):
        raise CatalogError(NO_TITLED_ROWS.format(path=source))
    if skipped:
        logger.warning("catalog %s: skipped %d row(s) with an empty title", source, skipped)
    rows = raw.loc[keep].reset_index(drop=True)
    movies = pd.DataFrame(
        {
            "id": _ids(rows, source),
            "title": titles[keep].tolist(),
            "year": _whole_numbers(rows, "year", source, BAD_YEARS),
            **{column: _lists(rows, column) for column in LIST_COLUMNS},
            "imdb_id": _imdb_ids(rows, source),
            "cover_url": [_clean_text(value) or None for value in _column(rows, "cover_url")],
            "reviews": _numbers(rows, "reviews", source).fillna(0.0),
            "rating": _numbers(rows, "rating", source),
            "metacritic": _numbers(rows, "metacritic", source),
            "box_office": _numbers(rows, "box_office", source),
            "awards": _numbers(rows, "awards", source).fillna(0.0),
        }
    )
    _check_unique_ids(movies["id"], source)
    return LoadedCatalog(movies, source, len(raw), skipped, catalog_stats(movies))


def limit_catalog(movies: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The `limit` most reviewed films (ties by id): a deterministic, recognisable slice for quick builds."""
    if not limit or limit >= len(movies):
        return movies
    order = movies.sort_values(["reviews", "id"], ascending=[False, True], kind="stable")
    return order.head(limit).sort_values("id", kind="stable").reset_index(drop=True)


def catalog_stats(movies: pd.DataFrame) -> dict[str, float]:
    """Counts a build run logs so a user can see what went into the index."""
    years = movies["year"].dropna()
    return {
        "n_films": float(len(movies)),
        "n_with_year": float(len(years)),
        "year_min": float(years.min()) if len(years) else math.nan,
        "year_max": float(years.max()) if len(years) else math.nan,
        "n_distinct_genres": float(len({g for genres in movies["genres"] for g in genres})),
        "n_without_genres": float(sum(1 for genres in movies["genres"] if not genres)),
        "n_without_cast": float(sum(1 for cast in movies["cast"] if not cast)),
        "n_without_directors": float(sum(1 for people in movies["directors"] if not people)),
        "n_without_writers": float(sum(1 for people in movies["writers"] if not people)),
        "n_with_imdb_id": float(movies["imdb_id"].notna().sum()),
        "n_with_cover": float(movies["cover_url"].notna().sum()),
        "n_repeated_titles": float(movies["title"].str.casefold().duplicated(keep=False).sum()),
    }


def count_awards(text: object) -> float:
    """Award wins plus nominations in movies.db's text ("Won 1 Oscar. Nominated for 3 Oscars." → 4)."""
    if not isinstance(text, str):
        return 0.0
    return float(sum(int(number) for number in _NUMBERS.findall(text)))


def split_names(value: object) -> list[str]:
    """A list field from a list/array or a comma-separated string; blanks and repeats removed, order kept."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        items: list[object] = value.split(",")
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    else:
        items = [value]
    names = (_clean_text(item) for item in items)
    return list(dict.fromkeys(name for name in names if name))


def _clean_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return " ".join(str(value).split())


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    if name in rows.columns:
        return rows[name]
    return pd.Series([None] * len(rows), dtype=object)


def _lists(rows: pd.DataFrame, name: str) -> list[list[str]]:
    return [split_names(value) for value in _column(rows, name)]


def _ids(rows: pd.DataFrame, source: str) -> np.ndarray:
    if "id" not in rows.columns:
        return np.arange(len(rows), dtype=np.int64)
    ids = _whole_numbers(rows, "id", source, BAD_IDS)
    missing = ids.isna()
    if missing.any():
        examples = rows.index[missing.to_numpy()][:5].tolist()
        raise CatalogError(
            BAD_IDS.format(path=source, count=int(missing.sum()), examples=f"empty id in rows {examples}")
        )
    return ids.to_numpy(dtype=np.int64)


def _imdb_ids(rows: pd.DataFrame, source: str) -> list[str | None]:
    ids = [_clean_text(value) or None for value in _column(rows, "imdb_id")]
    bad = [value for value in ids if value is not None and not _IMDB_ID.fullmatch(value)]
    if bad:
        raise CatalogError(BAD_IMDB_IDS.format(path=source, count=len(bad), examples=bad[:3]))
    return ids


def _numbers(rows: pd.DataFrame, name: str, source: str) -> pd.Series:
    raw = _column(rows, name).replace("", None)
    parsed = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = parsed.isna() & raw.notna()
    if bad.any():
        examples = raw[bad].head(3).tolist()
        raise CatalogError(BAD_NUMBERS.format(path=source, column=name, count=int(bad.sum()), examples=examples))
    return parsed.reset_index(drop=True)


def _whole_numbers(rows: pd.DataFrame, name: str, source: str, message: str) -> pd.Series:
    raw = _column(rows, name).replace("", None)
    parsed = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = (parsed.isna() & raw.notna()) | (parsed.notna() & (parsed % 1 != 0))
    if bad.any():
        examples = raw[bad].head(3).tolist()
        raise CatalogError(message.format(path=source, count=int(bad.sum()), examples=examples))
    return parsed.astype("Int64").reset_index(drop=True)


def _check_unique_ids(ids: pd.Series, source: str) -> None:
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        distinct = sorted(set(repeated.tolist()))
        raise CatalogError(DUPLICATE_IDS.format(path=source, count=len(distinct), examples=distinct[:5]))
