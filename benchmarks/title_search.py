"""Title search (autocomplete) and fuzzy title matching in process, at 17,472, 100,000 and 1,000,000 films.

    python -m benchmarks.title_search [--sizes 17472,100000,1000000] [--queries 300]

17,472 is the default catalog; the larger sizes are B8's seeded synthetic catalogs (benchmarks/synthetic_catalog.py:
titles of 1-4 of the default catalog's title words, so most share their words and trigrams with thousands of
others). For each size: the title resolver's build (model/resolve.py with its trigram index, model/title_index.py,
as the model builds it when it loads): seconds and the memory it holds (tracemalloc); then one query at a time,
`search(text, 8)` as the page's autocomplete asks, for seeded random films: the title's first word, its first
letter, its first two letters, the title with two letters swapped ("Mtarix") and its first half; p50/p99 of each
kind, and how often the film typed comes first and within the 8 (typos, halves); `resolve` of the typos (a fuzzy
match of a typed title): p50/p99 and how often it names the film typed (same title). Target: search p99 <= 10 ms at
every size.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks.common import summary, write_result
from benchmarks.synthetic_catalog import synthetic_catalog
from model.catalog import load_catalog, validate_catalog
from model.prior import notability_prior
from model.resolve import TitleResolver, normalize_title

TARGET_P99_MS = 10.0
LIMIT = 8  # suggestions the page asks for


def swapped(rng: random.Random, title: str) -> str:
    """`title` with two neighbouring letters swapped, past its first letter ("Matrix": "Mtarix")."""
    if len(title) < 4:
        return title
    i = rng.randrange(1, len(title) - 2)
    return title[:i] + title[i + 1] + title[i] + title[i + 2 :]


QUERIES: dict[str, Callable[[random.Random, str], str]] = {
    "first word": lambda rng, title: title.split()[0],
    "one letter": lambda rng, title: title[0],
    "two letters": lambda rng, title: title[:2],
    "typo": swapped,
    "first half": lambda rng, title: title[: max(3, len(title) // 2)],
}
FOUND = ("typo", "first half")  # kinds whose film typed should be found


def measure(films: int, queries: int, seed: int = 0) -> dict[str, Any]:
    movies = load_catalog().movies if films == 17_472 else validate_catalog(synthetic_catalog(films)).movies
    titles, years = movies["title"].tolist(), movies["year"].tolist()
    notability = notability_prior(movies)
    tracemalloc.start()
    started = time.perf_counter()
    resolver = TitleResolver(titles, years, notability)
    seconds = time.perf_counter() - started
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rng = random.Random(seed)
    rows = rng.sample(range(len(titles)), queries)
    names = [normalize_title(title) for title in titles]
    figures: dict[str, Any] = {
        "films": len(titles),
        "index": {"seconds": round(seconds, 2), "mb": round(held / 2**20, 1)},
    }
    for kind, make in QUERIES.items():
        typed = [(row, make(rng, titles[row])) for row in rows]
        latencies, first, within = [], 0, 0
        for row, text in typed:
            started = time.perf_counter()
            found = resolver.search(text, LIMIT)
            latencies.append((time.perf_counter() - started) * 1000)
            listed = [names[position] for position, _ in found]
            first += bool(listed) and listed[0] == names[row]
            within += names[row] in listed
        figures[kind] = summary(latencies)
        if kind in FOUND:
            figures[kind].update(first=round(first / queries, 3), within=round(within / queries, 3))
        if kind == "typo":
            latencies, named = [], 0
            for row, text in typed:
                started = time.perf_counter()
                match = resolver.resolve(text)
                latencies.append((time.perf_counter() - started) * 1000)
                named += match.position is not None and names[match.position] == names[row]
            figures["resolve typo"] = {**summary(latencies), "named": round(named / queries, 3)}
    figures["meets_target"] = all(figures[kind]["p99_ms"] <= TARGET_P99_MS for kind in QUERIES)
    print(figures, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="17472,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    sizes = [measure(int(size), args.queries) for size in args.sizes.split(",")]
    write_result(
        "title_search", {"target_p99_ms": TARGET_P99_MS, "limit": LIMIT, "queries": args.queries, "sizes": sizes}
    )


if __name__ == "__main__":
    main()
