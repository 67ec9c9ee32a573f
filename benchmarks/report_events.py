"""The events-on-the-serving-path figures for docs/, from the reference run's `events_serving` result
(benchmarks/events_serving.py): impressions on against off, the canary at 10%, and feedback events/s.

`render(results)` is a generated section's text (a table and a line on how it was measured); `rows(results)` the
same figures as rows of benchmarks/report.py's performance table (benchmark, figure, measured, target).
"""

from __future__ import annotations

from typing import Any

from benchmarks.report import NOT_MEASURED, Results, _target, table

NAME = "events_serving"
HEADER = ["benchmark", "figure", "measured", "target"]
LABELS = {"on": "impressions on", "canary": "impressions on, canary 10%"}


def render(results: Results) -> str:
    record = results.get(NAME)
    if record is None:
        return NOT_MEASURED
    figures = record["figures"]
    serving = figures["serving"]
    return "\n".join(
        [
            table(HEADER, rows(results)),
            "",
            f"Three gateways in front of one scoring server, request log on, measured in turn in "
            f"{len(serving['rounds'])} rounds of {serving['requests']:,} known-title requests with a `user` "
            f"(medians; the range is the rounds' lowest and highest). The canary's challenger: "
            f"{figures['challenger']}; it answered {figures['canary_share']:.1%} of that gateway's requests. "
            f"Serving errors: {serving['errors']}, feedback errors: {figures['feedback']['errors']}.",
        ]
    )


def rows(results: Results) -> list[list[Any]]:
    record = results.get(NAME)
    if record is None:
        return []
    figures = record["figures"]
    serving, feedback = figures["serving"], figures["feedback"]
    off = serving["off"]
    found: list[list[Any]] = []
    for variant, label in LABELS.items():
        cost, mine = serving[f"{variant}_vs_off"], serving[variant]
        extra, ratio = cost["p50_extra_ms_by_round"], cost["c16_throughput_ratio_by_round"]
        found += [
            ["events", f"{label} vs off: sequential p50",
             f"{off['sequential_p50_ms']['median']} → {mine['sequential_p50_ms']['median']} ms "
             f"({cost['p50_extra_ms']:+.3f} ms; rounds {extra['min']:+.3f} to {extra['max']:+.3f})",
             _target(cost["p50_extra_ms"], 0.2, "≤ +0.2 ms")],
            ["events", f"{label} vs off: concurrency 16",
             f"{off['c16_rps']['median']:,.0f} → {mine['c16_rps']['median']:,.0f} rps "
             f"({cost['c16_throughput_ratio']}×; rounds {ratio['min']} to {ratio['max']})",
             _target(cost["c16_throughput_ratio"], 0.95, "≥ 0.95×", above=True)],
        ]  # fmt: skip
    for kind, label in (("single", "one event per POST"), ("batch", "10 events per POST")):
        rate = feedback[f"{kind}_events_per_s"]
        found.append(["events", f"`POST /movies/feedback`, {label}, concurrency 16",
                      f"{rate['median']:,.0f} events/s (rounds {rate['min']:,.0f} to {rate['max']:,.0f})",
                      _target(rate["median"], 2000, "≥ 2,000 events/s", above=True)])  # fmt: skip
    return found
