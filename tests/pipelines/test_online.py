"""Online metrics, their intervals, the tag format and the online gate, on hand-made per-unit rows."""

from __future__ import annotations

import math

import pytest

from events.queries import OverlapCount, ShadowSummary, UnitCounts
from pipelines import online
from pipelines.online import (
    CTR_WHOLLY_BELOW,
    MIN_IMPRESSIONS,
    NO_CHAMPION,
    Gate,
    check_online,
    format_estimate,
    group_metrics,
    parse_estimate,
    shadow_metrics,
    tag_estimate,
    version_tags,
)


def unit(
    name: str, clicks: int, impressions: int = 10, version: str = "1", alias: str = "champion", **counts
) -> UnitCounts:
    fields = {"requests": 1, "likes": 0, "dismisses": 0, "shown": 0, "reciprocal_ranks": 0.0, **counts}
    return UnitCounts("m", version, alias, f"u:{name}", True, impressions=impressions, clicks=clicks, **fields)


def units_with_ctr(n: int, clicked_every: int, version: str = "1", alias: str = "champion") -> list[UnitCounts]:
    """`n` users with 10 impressions each; every `clicked_every`-th clicked 1 of them (CTR 0.1 / clicked_every)."""
    return [unit(f"{version}-{i}", int(i % clicked_every == 0), version=version, alias=alias) for i in range(n)]


def tags(ctr: str, impressions: int, window: str = "2026-12-01T00:00:00Z/..") -> dict[str, str]:
    return {"online.ctr": ctr, "online.impressions": str(impressions), "online.window": window}


def test_known_ctr_and_an_interval_that_holds_it_and_narrows_with_more_units() -> None:
    small, large = (group_metrics(units_with_ctr(n, 4))[0] for n in (40, 4000))
    for group in (small, large):
        ctr = group.rates["ctr"]
        assert ctr.mean == pytest.approx(0.025)
        assert ctr.low < 0.025 < ctr.high
    assert large.rates["ctr"].high - large.rates["ctr"].low < (small.rates["ctr"].high - small.rates["ctr"].low) / 5
    assert (large.users, large.units, large.requests, large.impressions, large.clicks) == (
        4000,
        4000,
        4000,
        40000,
        1000,
    )


def test_ratio_metrics_resample_units_then_divide_their_sums() -> None:
    # one heavy user with 90 impressions and no click, nine light ones with 1 impression and 1 click each: the
    # pooled CTR is 9/99, not the mean of per-user CTRs (0.9)
    rows = [unit("heavy", 0, impressions=90)] + [unit(f"light{i}", 1, impressions=1) for i in range(9)]
    ctr = group_metrics(rows)[0].rates["ctr"]
    assert ctr.mean == pytest.approx(9 / 99)
    assert 0 <= ctr.low <= ctr.mean <= ctr.high <= 1


def test_same_rows_give_the_same_interval() -> None:
    rows = units_with_ctr(300, 3)
    assert group_metrics(rows)[0].rates["ctr"] == group_metrics(list(reversed(rows)))[0].rates["ctr"]


def test_like_dismiss_rates_and_mrr() -> None:
    rows = [
        unit("a", 1, impressions=10, likes=2, dismisses=1, reciprocal_ranks=1.0),  # first click at position 1
        unit("b", 1, impressions=10, requests=2, reciprocal_ranks=0.25),  # position 4 in one of two requests
        unit("c", 0, impressions=20, dismisses=3),
    ]
    rates = group_metrics(rows)[0].rates
    assert rates["like_rate"].mean == pytest.approx(2 / 40)
    assert rates["dismiss_rate"].mean == pytest.approx(4 / 40)
    assert rates["mrr"].mean == pytest.approx(1.25 / 4)  # per request, 0 without a click


def test_groups_by_alias_and_pools_a_version() -> None:
    rows = units_with_ctr(100, 2, version="2", alias="champion") + units_with_ctr(
        50, 5, version="3", alias="challenger"
    )
    rows += [unit("2-0", 1, version="2", alias="challenger")]  # a user seen under both aliases of version 2
    by_alias = {(g.model_version, g.alias): g for g in group_metrics(rows)}
    assert set(by_alias) == {("2", "champion"), ("2", "challenger"), ("3", "challenger")}
    pooled = {g.model_version: g for g in group_metrics(rows, by_alias=False)}
    assert pooled["2"].alias is None and pooled["2"].units == 100 and pooled["2"].impressions == 1010
    assert pooled["3"].rates["ctr"].mean == pytest.approx(0.02)


def test_requests_without_user_are_their_own_units_and_not_users() -> None:
    rows = [UnitCounts("m", "1", "champion", f"r:{i}", False, 1, 10, 1, 0, 0, 0, 1.0) for i in range(5)]
    group = group_metrics([*rows, unit("a", 0)])[0]
    assert (group.units, group.users, group.requests) == (6, 1, 6)


def test_no_impressions_gives_nan_not_an_error() -> None:
    ctr = group_metrics([unit("a", 0, impressions=0)])[0].rates["ctr"]
    assert math.isnan(ctr.mean) and math.isnan(ctr.low)


def test_format_and_parse_are_one_format() -> None:
    text = format_estimate(0.07123, 0.065, 0.0779)
    assert text == "0.0712 [0.0650, 0.0779]"
    assert parse_estimate(text) == online.Estimate(0.0712, 0.065, 0.0779)
    for bad in ("0.07", "0.07 [0.06]", "[0.06, 0.08]", "x [0.06, 0.08]"):
        with pytest.raises(ValueError, match="not an estimate"):
            parse_estimate(bad)


def test_tag_estimate_reads_the_one_tag_and_the_three_older_tags() -> None:
    assert tag_estimate({"q": "0.0760 [0.0610, 0.0920]"}, "q") == online.Estimate(0.076, 0.061, 0.092)
    old = {"q": "0.076000", "q_ci_low": "0.061000", "q_ci_high": "0.092000"}
    assert tag_estimate(old, "q") == online.Estimate(0.076, 0.061, 0.092)
    assert tag_estimate({}, "q") is None and tag_estimate({"q": "soon"}, "q") is None


def test_shadow_overlap_is_a_mean_over_rows_with_a_bootstrap_interval() -> None:
    summary = ShadowSummary(
        "m", "4", rows=110, compared=100, overlap_mean=0.62, latency_ms_mean=3.5, failed_share=10 / 110
    )
    histogram = [OverlapCount("4", 0.5, 60), OverlapCount("4", 0.8, 40)]
    (shadow,) = shadow_metrics([summary], histogram)
    assert shadow.overlap10.mean == pytest.approx(0.62)
    assert 0.5 < shadow.overlap10.low < 0.62 < shadow.overlap10.high < 0.8
    assert version_tags(None, shadow, "w", "run")["online.shadow_overlap10"].startswith("0.6200 [")


def test_version_tags_hold_each_figure_with_its_interval() -> None:
    group = group_metrics(units_with_ctr(200, 4), by_alias=False)[0]
    values = version_tags(group, None, "2026-12-01T00:00:00Z/..", "abc")
    assert set(values) == {f"online.{k}" for k in (*online.RATES, "impressions", "users", "window", "report_run")}
    assert parse_estimate(values["online.ctr"]).mean == pytest.approx(0.025)
    assert values["online.impressions"] == "2000" and values["online.users"] == "200"


def test_gate_refuses_too_few_impressions_naming_the_version_and_count() -> None:
    gate = check_online(tags("0.0800 [0.0700, 0.0900]", 999), tags("0.0700 [0.0600, 0.0800]", 50_000), "5", "4")
    assert not gate.passed
    assert "candidate version 5 has 999 online impressions" in gate.reason and f"{MIN_IMPRESSIONS:,}" in gate.reason
    gate = check_online(tags("0.0800 [0.0700, 0.0900]", 5000), {}, "5", "4")
    assert not gate.passed and "champion version 4 has 0 online impressions (no online report)" in gate.reason


def test_gate_refuses_a_ctr_wholly_below_the_champions() -> None:
    candidate, champion = "0.0500 [0.0450, 0.0550]", "0.0700 [0.0600, 0.0800]"
    gate = check_online(tags(candidate, 5000), tags(champion, 50_000), "5", "4")
    expected = CTR_WHOLLY_BELOW.format(version="5", candidate=candidate, champion="4", best=champion)
    assert gate == Gate(False, expected)


def test_gate_passes_overlapping_intervals_and_without_a_champion() -> None:
    gate = check_online(tags("0.0650 [0.0580, 0.0610]", 5000), tags("0.0700 [0.0600, 0.0800]", 50_000), "5", "4")
    assert gate.passed and "not wholly below champion version 4" in gate.reason
    assert check_online(tags("0.0100 [0.0, 0.02]", 10), None, "1", "1") == Gate(True, NO_CHAMPION)
