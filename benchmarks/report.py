"""The figures in docs/, generated from one reference run's result files (benchmarks/results/reference/).

    python -m benchmarks.report            (make docs) rewrite the generated sections of docs/*.md
    python -m benchmarks.report --check    exit 1 when a generated section differs from what the results give

A generated section sits between `<!-- generated: NAME -->` and `<!-- end generated -->` in a docs page; nothing
between the two is typed by hand. A reference run: `make up`, `make bench`, then copy benchmarks/results/*.json to
benchmarks/results/reference/ and run `make docs`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).parent / "results" / "reference"
DOCS = Path(__file__).parent.parent / "docs"
NOT_MEASURED = "_Not measured in the reference run._"
METRIC_NAMES = {
    "p1_hr10": "P1 HR@10",
    "p1_ndcg10": "P1 nDCG@10",
    "p2_overlap10": "P2 overlap@10",
    "p3_hr10": "P3 HR@10",
    "p3_ndcg10": "P3 nDCG@10",
}
SCORERS = {"random": "random", "popularity": "popularity", "tfidf": "TF-IDF", "model": "**model**"}

KINDS = ("exact", "hnsw", "ivfpq")  # model/index.py's, in the order B7 reports them
Results = dict[str, dict[str, Any]]


def load_results(folder: Path = REFERENCE) -> Results:
    """Each result file's record, by benchmark name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine(results: Results) -> str:
    """The reference machine and day, from any result file."""
    if not results:
        return NOT_MEASURED
    record = next(iter(results.values()))
    days = sorted({r["measured_at"][:10] for r in results.values()})
    return (
        f"Reference run: {' to '.join(dict.fromkeys([days[0], days[-1]]))}, on {record['cpu_count']} × "
        f"{record.get('cpu_model') or 'unknown CPU'}, {record.get('memory_gib', '?')} GiB, "
        f"Python {record['python']}, {record['machine']}; every server on the same machine, CPU only."
    )


def quality(results: Results) -> str:
    record = results.get("quality")
    if record is None:
        return NOT_MEASURED
    figures = record["figures"]
    rows = []
    for scorer, label in SCORERS.items():
        estimates = figures["test_half"][scorer]
        cells = [f"{e['mean']:.3f} [{e['low']:.3f}, {e['high']:.3f}]" for e in (estimates[m] for m in METRIC_NAMES)]
        rows.append([label, *(f"**{c}**" if scorer == "model" else c for c in cells)])
    targets = ", ".join(f"{METRIC_NAMES[m]} ≥ {v}" for m, v in figures["targets"].items())
    return "\n".join(
        [
            table(["scorer", *METRIC_NAMES.values()], rows),
            "",
            f"The model beats popularity and TF-IDF on P1, P2 and P3: **{_yes(figures['beats_baselines'])}**. "
            f"Targets ({targets}): **{'met' if figures['meets_targets'] else 'not met'}**.",
        ]
    )


HYBRID_SCORERS = {
    "popularity": "popularity",
    "content": "content only",
    "co-engagement": "co-engagement only",
    "model": "**hybrid**",
}


def hybrid(results: Results) -> str:
    """The model built from engagement (make learn-demo) three ways, beside popularity, on the test half."""
    record = results.get("quality_hybrid")
    if record is None:
        return NOT_MEASURED
    figures = record["figures"]
    shown = ("p1_hr10", "p1_ndcg10", "p2_overlap10", "p3_hr10", "p3_ndcg10")
    rows = []
    for scorer, label in HYBRID_SCORERS.items():
        estimates = figures["test_half"][scorer]
        cells = [f"{estimates[m]['mean']:.3f} [{estimates[m]['low']:.3f}, {estimates[m]['high']:.3f}]" for m in shown]
        rows.append([label, *(f"**{c}**" if scorer == "model" else c for c in cells)])
    events = figures.get("events", {})
    targets = figures["hybrid_targets"]
    unmet = [name for name, met in targets.items() if not met]
    verdict = "all met" if not unmet else f"not met: {'; '.join(unmet)}"
    return "\n".join(
        [
            table(["scorer", *(METRIC_NAMES[m] for m in shown)], rows),
            "",
            f"Learned from {events.get('events_read', 0):,} events of {events.get('events_users', 0):,} users "
            f"({events.get('events_from', '?')[:10]} to {events.get('events_to', '?')[:10]}), each test user's "
            "last like left out; P2 is reported, not judged (its truth is made from the likes the hybrid learned "
            f"from). Targets ({len(targets)}): **{verdict}**.",
        ]
    )


def weights(results: Results, name: str = "quality") -> str:
    record = results.get(name)
    if record is None:
        return NOT_MEASURED
    rows = record["figures"]["validation_half_weights"]
    swept = ["dense_weight", "prior_weight", "era_weight", "recency"]
    swept += [w for w in ("engagement_weight", "engagement_shrink") if name != "quality" and w in rows[0]]
    shown = ("p1_hr10", "p2_overlap10", "p3_hr10")
    header = ["variant", *swept, *(METRIC_NAMES[m] for m in shown)]
    return table(header, [[r["variant"], *(r[w] for w in swept), *(r[m] for m in shown)] for r in rows])


def performance(results: Results) -> str:
    rows: list[list[Any]] = []
    for section in (_b1, _serving, _ab, _build, _request_log, _ann, _upstream, _soak):
        rows += section(results)
    if not rows:
        return NOT_MEASURED
    return table(["benchmark", "figure", "measured", "target"], rows)


def _b1(results: Results) -> list[list[Any]]:
    figures = _figures(results, "b1_inprocess")
    if figures is None:
        return []
    title = figures["title_engine"]
    rows = [
        ["B1", "known title, `Engine.recommend`, p50 / p99", _ms(title), _target(title["p50_ms"], 0.1, "p50 ≤ 0.1 ms")],
        ["B1", "known title through `PyFuncModel.predict`", _ms(figures["title_pyfunc_predict"]), "–"],
        ["B1", "free text · five liked films, `PyFuncModel.predict`, p50",
         f"{figures['free_text_pyfunc_predict']['p50_ms']} ms · {figures['five_liked_pyfunc_predict']['p50_ms']} ms",
         "–"],
    ]  # fmt: skip
    worst = figures.get("worst_case")
    if worst is not None:
        limit = figures["target_worst_resolution_ms"]
        rows.append(["B1", "worst valid request (1,101 unknown titles): title resolution · `PyFuncModel.predict`, "
                     "p50 / p99", f"{_ms(worst['resolution'])} · {_ms(worst['pyfunc_predict'])}",
                     _target(worst["resolution"]["p99_ms"], limit, f"resolution p99 ≤ {limit} ms")])  # fmt: skip
    return rows


def _serving(results: Results) -> list[list[Any]]:
    figures = _figures(results, "b2_b3_b4_serving")
    if figures is None:
        return []
    b3, b4, ratios = figures["b3_gateway"], figures["b4_original_design"], figures["ratios_b3_over_b4"]
    memory = figures["memory_mb"]
    return [
        ["B2", "scoring server, sequential, p50 / p99", _ms(figures["b2_scoring_server"]), "–"],
        ["B3", "gateway, sequential, p50 / p99", _ms(b3["c1"]),
         _target(b3["c1"]["p50_ms"], 2.5, "p50 ≤ 2.5 ms") + ", " + _target(b3["c1"]["p99_ms"], 6.0, "p99 ≤ 6 ms")],
        ["B3", "gateway, concurrency 8 · 32", f"{_rps(b3['c8'])} · {_rps(b3['c32'])}", "–"],
        ["B4", "original design, sequential p50 / p99 · concurrency 32", f"{_ms(b4['c1'])} · {_rps(b4['c32'])}", "–"],
        ["B3/B4", "concurrency 32: throughput · p99", f"{ratios['c32_throughput']}× · {ratios['c32_p99']}×",
         _target(ratios["c32_throughput"], 5, "throughput ≥ 5×", above=True)
         + ", " + _target(ratios["c32_p99"], 0.5, "p99 ≤ 0.5×")],
        ["memory", "resident MiB after 1,000 → 10,000 requests: gateway · scoring server",
         f"{memory['after_1000']['gateway']} → {memory['after_10000']['gateway']} · "
         f"{memory['after_1000']['scoring_server']} → {memory['after_10000']['scoring_server']}",
         _target(max(memory["growth_percent"].values()), 10, "growth < 10%")],
    ]  # fmt: skip


def _ab(results: Results) -> list[list[Any]]:
    """The last A/B of two stacks, as measured: the tool compares, it sets no budget (aiohttp's cost is accepted)."""
    figures = _figures(results, "ab_serving")
    if figures is None:
        return []
    rows = []
    for key, label in (
        ("sequential_p50_ms", "sequential p50 ms"),
        ("c16_rps", "concurrency 16, requests/s"),
        ("c16_p99_ms", "concurrency 16, p99 ms"),
    ):
        f = figures[key]
        rows.append(["A/B", f"previous (A) vs this (B) code, {label}, median of {len(figures['rounds'])} rounds",
                     f"{f['a_median']:.4g} · {f['b_median']:.4g} (B/A {f['b_over_a']})", "–"])  # fmt: skip
    return rows


def _build(results: Results) -> list[list[Any]]:
    figures = _figures(results, "b5_build")
    if figures is None:
        return []
    rows = []
    if "full" in figures:
        full = figures["full"]
        rows.append(["B5", "full build (default catalog), wall · encode", f"{full['wall_seconds']} s · "
                     f"{full.get('seconds_encode', '?')} s", "–"])  # fmt: skip
    unchanged, changed = figures["unchanged"], figures["one_percent_changed"]
    rows += [
        ["B5", "rebuild, catalog unchanged", f"{unchanged['wall_seconds']} s",
         _target(unchanged["wall_seconds"], 15, "≤ 15 s")],
        ["B5", f"rebuild, 1% changed or added ({figures['films_changed_or_added']} films)",
         f"{changed['wall_seconds']} s", _target(changed["wall_seconds"], 20, "≤ 20 s")],
    ]  # fmt: skip
    return rows


def _ann(results: Results) -> list[list[Any]]:
    figures = _figures(results, "b7_ann")
    if figures is None:
        return []
    synthetic, catalog, targets = figures["synthetic"], figures["catalog"], figures["targets"]
    hnsw, recall, p50 = synthetic["hnsw"], targets["synthetic_hnsw_recall_at_10"], targets["synthetic_hnsw_p50_ms"]
    met = hnsw["recall_at_10"] >= recall and hnsw["search"]["p50_ms"] <= p50
    forced, need = catalog["hnsw"], targets["catalog_recall_at_10"]
    return [
        ["B7", f"HNSW, {synthetic['films']:,} synthetic vectors: recall@10 · p50 / p99 per query",
         f"{hnsw['recall_at_10']} · {_ms(hnsw['search'])}",
         f"recall@10 ≥ {recall} with p50 ≤ {p50} ms: **{'met' if met else 'not met'}**"],
        ["B7", f"the catalog ({catalog['films']:,} films), HNSW forced: recall@10 · of the re-ranked pool",
         f"{forced['recall_at_10']} · {forced['pool_recall_at_10']}",
         _target(min(forced["recall_at_10"], forced["pool_recall_at_10"]), need, f"≥ {need}", above=True)],
    ]  # fmt: skip


def ann(results: Results) -> str:
    """B7 in full: every kind on the synthetic vectors and on the catalog, the sweeps and the crossover."""
    figures = _figures(results, "b7_ann")
    if figures is None:
        return NOT_MEASURED
    synthetic, catalog, crossing = figures["synthetic"], figures["catalog"], figures["crossover"]
    header = ["data", "index", "parameters", "build", "index.faiss", "recall@10", "p50 / p99, k = 10",
              "pool: recall@10 re-ranked", "pool: p50 / p99"]  # fmt: skip
    rows = [_kind_row(f"{synthetic['films']:,} synthetic", kind, synthetic[kind]) for kind in KINDS]
    rows += [_kind_row(f"catalog, {catalog['films']:,} films", kind, catalog[kind]) for kind in KINDS]
    sweep_header = ["parameter", "recall@10", "p50 / p99, k = 10", "pool: recall@10 re-ranked", "pool: p50 / p99"]
    sweeps = [[f"HNSW efSearch {r['ef_search']}", *_search_cells(r)] for r in synthetic["hnsw"]["ef_search_sweep"]]
    sweeps += [[f"IVF-PQ nprobe {r['nprobe']}", *_search_cells(r)] for r in synthetic["ivfpq"]["nprobe_sweep"]]
    cross_header = ["films", "exact p50, k = 10", "HNSW p50, k = 10 (efSearch: recall@10)", "exact p50, pool",
                    "HNSW p50, pool (recall@10 re-ranked)"]  # fmt: skip
    cross = [
        [f"{r['films']:,}", f"{r['exact_p50_ms']} ms", f"{r['hnsw_p50_ms']} ms ({r['hnsw_ef_search']}: "
         f"{r['hnsw_recall_at_10']})", f"{r['exact_pool_p50_ms']} ms",
         f"{r['hnsw_pool_p50_ms']} ms ({r['hnsw_pool_recall_at_10']})"]
        for r in crossing["rows"]
    ]  # fmt: skip
    fit = figures["calibration"]
    load = figures["load_average"]
    return "\n".join(
        [
            table(header, rows),
            "",
            f"Sweeps of the search-time parameters on the {synthetic['films']:,} synthetic vectors "
            "(HNSW's pool search keeps at least 1,000 candidates, whatever efSearch):",
            "",
            table(sweep_header, sweeps),
            "",
            f"Exact against HNSW as the catalog grows ({crossing['queries']} queries): exact search is the slower "
            f"{_from(crossing, 'k10_exact_slower_from')} at k = 10, and {_from(crossing, 'pool_exact_slower_from')} "
            f"for the pool a recommendation searches; `auto` searches exactly up to {crossing['exact_max']:,} films.",
            "",
            table(cross_header, cross),
            "",
            "The synthetic vectors (`benchmarks/ann.py`, `synthetic`) against the catalog's (mean cosine of the "
            f"nearest · 10th nearest · a random other vector): {_cosines(fit['synthetic_sample'])} on a sample of "
            f"the catalog's size; {_cosines(fit['catalog'])} in the catalog. Load average (1, 5, 15 min) at the "
            f"start {tuple(load['start'])}, at the end {tuple(load['end'])}.",
        ]
    )


SCALE_STEPS = ("index", "people", "films", "neighbours", "save", "log_model")  # the build steps B8's table shows


def scale(results: Results) -> str:
    """B8: build time, stored bytes, title index and serving of one model per catalog size."""
    figures = _figures(results, "b8_scale")
    if figures is None:
        return NOT_MEASURED
    sizes = figures["sizes"]
    build_header = ["films", "index", "build (peak RSS)", "index step", "people matrix", "films, titles",
                    "neighbour lists", "saving", "logging the model"]  # fmt: skip
    builds = [
        [f"{s['films']:,}", s["build"]["index"], f"{s['build']['wall_seconds']} s ({s['build']['peak_rss_mb']:,} MiB)",
         *(f"{s['build'][f'seconds_{step}']} s" for step in SCALE_STEPS)]
        for s in sizes
    ]  # fmt: skip
    stored_header = [
        "films",
        "index.faiss",
        "people.npz",
        "neighbours.npz",
        "movies.parquet",
        "title index (memory, build)",
    ]
    stored = [
        [f"{s['films']:,}", *(_mib(s["stored_bytes"][name]) for name in ("index", "people", "neighbours", "movies")),
         f"{s['title_index']['mb']} MiB, {s['title_index']['seconds']} s"]
        for s in sizes
    ]  # fmt: skip
    served_header = ["films", "load until /ping", "RSS", "recommend by title p50 / p99", "title search p50 / p99"]
    served = [
        [f"{s['films']:,}", f"{s['served']['load_seconds']} s", f"{s['served']['rss_mb']:,.0f} MiB",
         _ms(s["served"]["recommend_by_title"]), _ms(s["served"]["title_search"])]
        for s in sizes
    ]  # fmt: skip
    return "\n".join([table(build_header, builds), "", table(stored_header, stored), "", table(served_header, served)])


def _kind_row(data: str, kind: str, figures: dict[str, Any]) -> list[Any]:
    params = ", ".join(f"{key} {value}" for key, value in figures["params"].items() if key != "type")
    size = _mib(figures["index_bytes"])
    if figures["vectors_bytes"]:
        size += f" (+ {_mib(figures['vectors_bytes'])} vectors.npy)"
    return [data, kind, params or "–", f"{figures['build_seconds']} s", size, *_search_cells(figures)]


def _search_cells(figures: dict[str, Any]) -> list[Any]:
    return [figures["recall_at_10"], _ms(figures["search"]), figures["pool_recall_at_10"], _ms(figures["pool_search"])]


def _from(crossing: dict[str, Any], key: str) -> str:
    """From which catalog size on exact search is the slower, in words."""
    size, smallest = crossing[key], crossing["rows"][0]["films"]
    if size is None:
        return "at no size measured"
    return f"at every size measured ({smallest:,} films up)" if size == smallest else f"from {size:,} films"


def _cosines(values: dict[str, float]) -> str:
    return (
        f"{values['top1_cosine']} · {values['top10_cosine']} · {values['random_pair_cosine']}, "
        f"{values['dims_for_90_percent_variance']} axes for 90% of the variance"
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _request_log(results: Results) -> list[list[Any]]:
    figures = _figures(results, "b6_request_log")
    if figures is None:
        return []
    rows = []
    for name, label in (
        ("per_request_sqlite", "a run per request, sqlite"),
        ("per_request_http", "a run per request, tracking server"),
        ("grouped_http_backlog", "grouped, a backlog drained, tracking server"),
    ):
        f = figures[name]
        dropped = f["lost"] + f.get("rejected", 0)
        rows.append(["B6", f"{label}: records/s · writer CPU per run · lost + rejected",
                     f"{f['records_per_second']} · {f['writer_cpu_ms_per_run']} ms · {dropped}", "–"])  # fmt: skip
    keeps_up = f"per request: {_yes(figures['per_request_keeps_up'])}, grouped: {_yes(figures['grouped_keeps_up'])}"
    rows.append(["B6", f"keeps up with B3's {figures['b3_sustained_rps']} requests/s", keeps_up, "–"])
    return rows


def _upstream(results: Results) -> list[list[Any]]:
    figures = _figures(results, "upstream_clients")
    if figures is None:
        return []
    return [["hop", key.replace("_", " "), value, "–"] for key, value in _flat(figures) if key.endswith("p50_ms")]


def _soak(results: Results) -> list[list[Any]]:
    figures = _figures(results, "soak")
    if figures is None:
        return []
    shown = ("failed", "p99_ms", "throughput_rps", "logged", "memory_growth_percent")
    return [["soak", key.replace("_", " "), value, "–"] for key, value in _flat(figures) if key.endswith(shown)]


def _figures(results: Results, name: str) -> dict[str, Any] | None:
    record = results.get(name)
    return record["figures"] if record else None


def _flat(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar figures with their dotted keys, nested dicts walked."""
    items: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            items += _flat(value, f"{prefix}{key}.")
        elif isinstance(value, int | float | str | bool):
            items.append((f"{prefix}{key}", value))
    return items


def _ms(summary: dict[str, float]) -> str:
    return f"{summary['p50_ms']} / {summary['p99_ms']} ms"


def _rps(load: dict[str, Any]) -> str:
    return f"{load['throughput_rps']} rps (p99 {load['p99_ms']} ms, {load['errors']} errors)"


def _target(value: float, limit: float, text: str, above: bool = False) -> str:
    met = value >= limit if above else value <= limit
    return f"{text}: **{'met' if met else 'not met'}**"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def online_canary(results: Results, name: str = "online_canary") -> str:
    """One simulated canary: the report's table per version and alias, and the online gate's answer."""
    record = results.get(name)
    if record is None:
        return NOT_MEASURED
    figures = record["figures"]
    rows = [
        [f"{r['model_version']} ({r['alias']})", f"{r['requests']:,}", r["users"], f"{r['impressions']:,}",
         r["clicks"], _estimate(r, "ctr"), _estimate(r, "like_rate"), _estimate(r, "mrr"),
         _estimate(r, "shadow_overlap10") if r.get("shadow_overlap10") is not None else "–"]
        for r in figures["rows"]
    ]  # fmt: skip
    header = ["version (alias)", "requests", "users", "impressions", "clicks", "CTR", "like rate", "MRR",
              "shadow overlap@10"]  # fmt: skip
    steps = "\n".join(f"    {step}" for step in figures["setup"])
    return "\n".join(
        [f"Measured {record['measured_at']}:", "", steps, "", table(header, rows), "", "`make simulate` printed:", "",
         *(f"    {line}" for line in figures["simulate"]), "", f"`make promote ONLINE=true`: {figures['promotion']}"]
    )  # fmt: skip


def online_hybrid(results: Results) -> str:
    """The loop closed: a hybrid challenger against the content champion per request, then split by user."""
    shown = online_canary(results, "online_hybrid")
    record = results.get("online_hybrid")
    if record is None or "by_user" not in record["figures"]:
        return shown
    by_user = record["figures"]["by_user"]
    rows = [
        [f"{r['model_version']} ({r['alias']})", r["requests"], r["users"], _estimate(r, "ctr"), _estimate(r, "mrr")]
        for r in by_user["rows"]
    ]
    return "\n".join(
        [shown, "", f"Split by user instead ({by_user['setup']}):", "",
         table(["version (alias)", "requests", "users", "CTR", "MRR"], rows)]
    )  # fmt: skip


def _estimate(row: dict[str, Any], name: str) -> str:
    return f"{row[name]:.4f} [{row[f'{name}_low']:.4f}, {row[f'{name}_high']:.4f}]"


def events(results: Results) -> str:
    """The event store's figures: B9's drain rate and the serving-path cost of impressions, canary and feedback."""
    from benchmarks.report_events import render  # it reuses this module's helpers

    drain = results.get("b9_events")
    lines = [render(results)]
    if drain is not None:
        lines += ["", table(["store", "drain rate", "records", "lost / rejected"], _drain_rows(drain["figures"]))]
    return "\n".join(lines)


def _drain_rows(figures: dict[str, Any]) -> list[list[Any]]:
    target = figures["target_events_per_second"]
    return [
        [figures[name]["store"], f"{figures[name]['events_per_second']:,} events/s "
         f"({_target(figures[name]['events_per_second'], target, f'≥ {target:,}', above=True)})",
         f"{figures[name]['events']:,} in groups of {figures[name]['group_size']}",
         f"{figures[name]['lost']} / {figures[name]['rejected']}"]
        for name in ("sqlite", "postgresql") if name in figures
    ]  # fmt: skip


def history(results: Results) -> str:
    """For you: a user's history read from a SQLite store of a million feedback events (benchmarks/history.py)."""
    record = results.get("history")
    if record is None:
        return NOT_MEASURED
    f = record["figures"]
    spread = f["events_per_user"]
    rows = [
        [label, _ms(f[name]), _target(f[name]["p50_ms"], f["target_p50_ms"], f"p50 ≤ {f['target_p50_ms']} ms")]
        for name, label in (("query", "the query (newest events first)"), ("query_and_summary", "query and summary"))
    ]
    return "\n".join(
        [
            table(["lookup", "p50 / p99", "target"], rows),
            "",
            f"{f['store']}, {f['events']:,} feedback events of {f['users']:,} users on {f['films']:,} films (events "
            f"per user: median {spread['median']}, p99 {spread['p99']}, most {spread['max']:,}); "
            f"{f['query']['n']:,} random users looked up one at a time, at most {f['limit']} events each "
            f"(median {f['events_read']['median']} read).",
        ]
    )


def title_search(results: Results) -> str:
    """Title search and fuzzy matching in process at each catalog size (benchmarks/title_search.py)."""
    figures = _figures(results, "title_search")
    if figures is None:
        return NOT_MEASURED
    limit, target = figures["limit"], figures["target_p99_ms"]
    header = ["films", "resolver (memory, build)", "first word", "one letter", "two letters",
              f"typo (first, in {limit})", f"first half (first, in {limit})", "resolve typo (named)",
              "target"]  # fmt: skip
    rows = [
        [f"{s['films']:,}", f"{s['index']['mb']} MiB, {s['index']['seconds']} s", _ms(s["first word"]),
         _ms(s["one letter"]), _ms(s["two letters"]), f"{_ms(s['typo'])} ({s['typo']['first']}, {s['typo']['within']})",
         f"{_ms(s['first half'])} ({s['first half']['first']}, {s['first half']['within']})",
         f"{_ms(s['resolve typo'])} ({s['resolve typo']['named']})",
         _target(max(s[kind]["p99_ms"] for kind in ("first word", "one letter", "two letters", "typo", "first half")),
                 target, f"search p99 ≤ {target:g} ms")]
        for s in figures["sizes"]
    ]  # fmt: skip
    return "\n".join(
        [
            table(header, rows),
            "",
            f"{figures['queries']} seeded random films per size, one `search(text, {limit})` at a time; p50 / p99, "
            f"and the share of queries whose film comes first and within the {limit}.",
        ]
    )


ENGAGEMENT_PATHS = {"local": "local (`learn`, implicit)", "spark": "Spark local[*] (`spark_learn`)"}


def engagement(results: Results) -> str:
    """B10: co-engagement learned from the synthetic events, each path's time and peak memory against the targets."""
    figures = _figures(results, "engagement")
    if figures is None:
        return NOT_MEASURED
    seconds, mib = figures["target_seconds"], figures["target_mib"]
    rows = []
    for path, label in ENGAGEMENT_PATHS.items():
        if path not in figures:
            continue
        f = figures[path]
        took = f"{f['seconds']} s" if f["finished"] else f"stopped after {f['seconds']} s, unfinished"
        steps = ", ".join(f"{k.removeprefix('seconds_').replace('_', ' ')} {v} s" for k, v in f.items()
                          if k.startswith("seconds_"))  # fmt: skip
        rows.append([label, took + (f" ({steps})" if steps else ""), f"{f['peak_rss_mb']:,} MiB",
                     f"{f['pairs_kept']:,}" if f["finished"] else "–",
                     _target(f["seconds"] if f["finished"] else float("inf"), seconds, f"≤ {seconds // 60} min")
                     + ", " + _target(f["peak_rss_mb"], mib, f"≤ {mib // 1024} GiB")])  # fmt: skip
    median, busiest = figures["events_per_user_median_max"]
    return "\n".join(
        [
            table(["path", "co-engagement step", "peak RSS (process tree)", "pairs kept", "target"], rows),
            "",
            f"{figures['events']:,} synthetic events of {figures['users']:,} users (median {median}, busiest "
            f"{busiest:,} events) on {figures['films_with_events']:,} of {figures['films']:,} films; generated in "
            f"{figures['generate_seconds']} s, outside the measured step.",
        ]
    )


SECTIONS: dict[str, Callable[[Results], str]] = {
    "history": history,
    "online_canary": online_canary,
    "online_hybrid": online_hybrid,
    "events": events,
    "machine": machine,
    "quality": quality,
    "hybrid": hybrid,
    "hybrid_weights": lambda results: weights(results, "quality_hybrid"),
    "weights": weights,
    "performance": performance,
    "ann": ann,
    "scale": scale,
    "engagement": engagement,
    "title_search": title_search,
}
_SECTION = re.compile(
    r"(?P<start><!-- generated: (?P<name>[a-z_]+) -->\n).*?(?P<end><!-- end generated -->)", re.DOTALL
)


def render(text: str, results: Results) -> str:
    """`text` with every generated section rewritten from `results`."""
    return _SECTION.sub(lambda m: m["start"] + SECTIONS[m["name"]](results) + "\n" + m["end"], text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/ matches the reference results")
    args = parser.parse_args()
    results = load_results()
    stale = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        fresh = render(text, results)
        if fresh != text:
            stale.append(page)
            if not args.check:
                page.write_text(fresh)
    verb = "differ from" if args.check else "rewritten from"
    for page in stale:
        print(f"{page}: generated sections {verb} {REFERENCE}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
