"""A seeded synthetic film catalog of any size, shaped like the default one, for benchmarks past its 17,472 films.

Titles are 1-4 words drawn from the default catalog's title words, weighted by how often they occur there (so titles
repeat and share openings as real ones do); genres are the catalog's, drawn by frequency; directors, cast and writers
come from name pools that grow with the catalog, drawn with Zipf-like popularity (a few names in many films, most in
one or two). Years spread over 1920-2024; reviews are log-normal; the other notability columns are left out.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from model.catalog import load_catalog

CAST_PER_FILM = (3, 9)  # drawn uniformly in [3, 9)
FILMS_PER_DIRECTOR, FILMS_PER_ACTOR, FILMS_PER_WRITER = 4, 2, 3  # name pools: one name per this many films
POPULARITY = 1.5  # name i of a pool is drawn with density ~ i^(1/1.5 - 1): the first 1% take 5% of the draws


def synthetic_catalog(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` films in the catalog schema (model/catalog.py), ids 1..n."""
    rng = np.random.default_rng(seed)
    real = load_catalog().movies
    words, word_weights = _frequencies(w for title in real["title"] for w in re.findall(r"[\w']+", title))
    genres, genre_weights = _frequencies(g for names in real["genres"] for g in names)
    people = [name for column in ("directors", "cast", "writers") for names in real[column] for name in names]
    first = sorted({name.split()[0] for name in people if " " in name})
    last = sorted({name.split()[-1] for name in people if " " in name})

    def names(pool: int) -> np.ndarray:
        return np.array([f"{first[i % len(first)]} {last[(i * 7919) % len(last)]} {i // len(last) or ''}".strip()
                         for i in range(pool)], dtype=object)  # fmt: skip

    def draw(pool: np.ndarray, counts: np.ndarray) -> list[list[str]]:
        picks = (len(pool) * rng.random(counts.sum()) ** POPULARITY).astype(np.int64)
        return [list(dict.fromkeys(part)) for part in np.split(pool[picks], np.cumsum(counts)[:-1])]

    title_lengths = rng.choice([1, 2, 3, 4], n, p=[0.15, 0.35, 0.3, 0.2])
    title_words = rng.choice(words, title_lengths.sum(), p=word_weights)
    titles = [" ".join(part) for part in np.split(title_words, np.cumsum(title_lengths)[:-1])]
    genre_counts = rng.choice([1, 2, 3], n, p=[0.3, 0.4, 0.3])
    film_genres = np.split(rng.choice(genres, genre_counts.sum(), p=genre_weights), np.cumsum(genre_counts)[:-1])
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "title": titles,
            "year": rng.integers(1920, 2025, n),
            "genres": [list(dict.fromkeys(g)) for g in film_genres],
            "directors": draw(names(max(1, n // FILMS_PER_DIRECTOR)), np.ones(n, dtype=int)),
            "cast": draw(names(max(1, n // FILMS_PER_ACTOR)), rng.integers(*CAST_PER_FILM, n)),
            "writers": draw(names(max(1, n // FILMS_PER_WRITER)), rng.integers(0, 3, n)),
            "imdb_id": [f"tt{9_000_000 + i:07d}" for i in range(n)],
            "reviews": np.round(rng.lognormal(3.0, 1.2, n)),
        }
    )


def _frequencies(items: object) -> tuple[np.ndarray, np.ndarray]:
    counts = Counter(items)
    values = np.array(sorted(counts), dtype=object)
    weights = np.array([counts[v] for v in values], dtype=np.float64)
    return values, weights / weights.sum()
