"""Online metrics from the event store's per-unit counts, their intervals, the tag format, and the online gate.

A unit is a user, or a request without user (its own unit). Per group of impressions (a model version, or one
alias's share of it): requests, users, impressions (films returned), CTR = clicks / impressions, like rate =
likes / impressions, dismiss rate = dismisses / impressions, MRR = mean over requests of 1/position of the first
clicked film (0 without a click). Each rate has a 95% percentile bootstrap interval over units: units are resampled
with replacement, then the resample's sums are divided. Shadow overlap@10 is the mean over a challenger's shadow
rows, its interval a bootstrap over those rows (the shadow table keeps no user). Pure functions: no I/O.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from events.queries import OverlapCount, ShadowSummary, UnitCounts
from pipelines.quality import Estimate

MIN_IMPRESSIONS = 1000  # the online gate judges a version only with at least this many impressions on each side
BOOTSTRAP_SAMPLES = 1000
SEED = 0
TAG_PREFIX = "online."
RATES = ("ctr", "like_rate", "dismiss_rate", "mrr")
COUNTS = ("requests", "users", "impressions", "clicks", "likes", "dismisses", "shown")

_FIELDS = ("requests", "impressions", "clicks", "likes", "dismisses", "shown", "reciprocal_ranks")
_RATIOS = {
    "ctr": ("clicks", "impressions"),
    "like_rate": ("likes", "impressions"),
    "dismiss_rate": ("dismisses", "impressions"),
    "mrr": ("reciprocal_ranks", "requests"),
}
_CHUNK_ELEMENTS = 2_000_000  # resampled unit indices held at once
_ESTIMATE = re.compile(r"^\s*(?P<mean>\S+)\s*\[\s*(?P<low>[^,\s]+)\s*,\s*(?P<high>[^\]\s]+)\s*\]\s*$")

BAD_ESTIMATE = "not an estimate 'mean [low, high]': {text!r}"
NO_CHAMPION = "no other champion to compare online against"
TOO_FEW_IMPRESSIONS = (
    "{role} version {version} has {impressions:,} online impressions ({window}), fewer than the "
    "{minimum:,} the online gate needs to judge: let it serve longer, then run `mlflow run . -e report`"
)
CTR_WHOLLY_BELOW = "version {version}'s online CTR {candidate} lies wholly below champion version {champion}'s {best}"
ONLINE_PASSED = "online CTR {candidate} is not wholly below champion version {champion}'s {best}"


@dataclass(frozen=True)
class Gate:
    """A promotion gate's verdict and the reason, as recorded on the version."""

    passed: bool
    reason: str


@dataclass(frozen=True)
class GroupMetrics:
    """The online figures of one group of impressions: a version (alias None: all its traffic) or an alias's share."""

    model_name: str | None
    model_version: str
    alias: str | None
    units: int
    users: int
    requests: int
    impressions: int
    clicks: int
    likes: int
    dismisses: int
    shown: int
    rates: dict[str, Estimate]  # by name in RATES


@dataclass(frozen=True)
class ShadowMetrics:
    """A challenger version's shadow figures: overlap@10 with the champion's lists, latency, failures."""

    model_version: str
    rows: int
    compared: int
    overlap10: Estimate
    latency_ms: float | None
    failed_share: float


def format_estimate(mean: float, low: float, high: float) -> str:
    """The one text form of a figure with its interval, as tags carry it: `0.0712 [0.0650, 0.0779]`."""
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def parse_estimate(text: str) -> Estimate:
    """The figure and interval of a `format_estimate` text; ValueError (BAD_ESTIMATE) for anything else."""
    match = _ESTIMATE.match(text)
    try:
        if match:
            return Estimate(float(match["mean"]), float(match["low"]), float(match["high"]))
    except ValueError:
        pass
    raise ValueError(BAD_ESTIMATE.format(text=text))


def tag_estimate(tags: Mapping[str, str], key: str) -> Estimate | None:
    """The estimate a version's tag `key` holds: `format_estimate` text, or the older form of three tags (`key`,
    `key_ci_low`, `key_ci_high`) that registries still hold; None when the tag is absent or unreadable."""
    if key not in tags:
        return None
    try:
        return parse_estimate(tags[key])
    except ValueError:
        pass
    try:
        low, high = (float(tags.get(f"{key}_ci_{end}", "nan")) for end in ("low", "high"))
        return Estimate(float(tags[key]), low, high)
    except ValueError:
        return None


def group_metrics(units: Iterable[UnitCounts], by_alias: bool = True) -> list[GroupMetrics]:
    """Figures per (model, version, alias), or per (model, version) with every alias pooled (`by_alias=False`:
    a unit seen under two aliases of one version is one unit there)."""
    groups: dict[tuple[str | None, str, str | None], dict[str, list[float]]] = defaultdict(dict)
    users: dict[tuple[str | None, str, str | None], set[str]] = defaultdict(set)
    for row in units:
        key = (row.model_name, row.model_version, row.alias if by_alias else None)
        counts = [float(getattr(row, name)) for name in _FIELDS]
        previous = groups[key].get(row.unit)
        groups[key][row.unit] = counts if previous is None else [a + b for a, b in zip(previous, counts, strict=True)]
        if row.is_user:
            users[key].add(row.unit)
    # units in key order: the same rows give the same resamples, whatever order the store returned them in
    return [
        _metrics(key, np.array([per_unit[u] for u in sorted(per_unit)]), len(users[key]))
        for key, per_unit in groups.items()
    ]


def bootstrap_sums(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = SEED) -> np.ndarray:
    """Column sums of `samples` resamples of the rows (units) with replacement: shape (samples, columns)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    sums = np.empty((samples, values.shape[1]))
    chunk = max(1, min(samples, _CHUNK_ELEMENTS // max(n, 1)))
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        sums[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].sum(axis=1)
    return sums


def ratio_estimate(totals: np.ndarray, resampled: np.ndarray, numerator: int, denominator: int) -> Estimate:
    """sum(numerator) / sum(denominator) with the 2.5 and 97.5 percentiles of the resampled ratios (NaN for 0/0)."""
    if totals[denominator] == 0:
        return Estimate(math.nan, math.nan, math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = resampled[:, numerator] / resampled[:, denominator]
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return Estimate(float(totals[numerator] / totals[denominator]), float(low), float(high))


def shadow_metrics(
    summaries: Sequence[ShadowSummary], overlaps: Sequence[OverlapCount], samples: int = BOOTSTRAP_SAMPLES
) -> list[ShadowMetrics]:
    """Per challenger version: mean overlap@10 with a bootstrap interval over shadow rows, latency, failed share."""
    histograms: dict[str, list[OverlapCount]] = defaultdict(list)
    for count in overlaps:
        histograms[count.model_version].append(count)
    results = []
    for summary in summaries:
        bins = histograms.get(summary.model_version, [])
        results.append(
            ShadowMetrics(
                summary.model_version,
                summary.rows,
                summary.compared,
                _mean_estimate([b.overlap for b in bins], [b.rows for b in bins], samples),
                summary.latency_ms_mean,
                summary.failed_share,
            )
        )
    return results


def version_tags(
    metrics: GroupMetrics | None, shadow: ShadowMetrics | None, window: str, run_id: str
) -> dict[str, str]:
    """The `online.*` tags of one version: each rate with its interval in one tag, counts, the window, the run."""
    tags = {"window": window, "report_run": run_id}
    if metrics is not None:
        tags.update({name: format_estimate(*_triple(metrics.rates[name])) for name in RATES})
        tags.update(impressions=str(metrics.impressions), users=str(metrics.users))
    if shadow is not None and shadow.compared:
        tags["shadow_overlap10"] = format_estimate(*_triple(shadow.overlap10))
    return {TAG_PREFIX + key: value for key, value in tags.items()}


def table_rows(groups: Sequence[GroupMetrics], shadows: Sequence[ShadowMetrics]) -> list[dict[str, Any]]:
    """One row per (version, alias) with traffic, and one (alias `shadow`, no impressions) per version with shadow
    rows only; each version's shadow figures on its rows."""
    by_version = {s.model_version: s for s in shadows}
    rows = [{**_counts(g), **_shadow_columns(by_version.get(g.model_version))} for g in groups]
    served = {g.model_version for g in groups}
    for shadow in shadows:
        if shadow.model_version not in served:
            counts = dict.fromkeys(COUNTS, 0)
            rows.append({"model_version": shadow.model_version, "alias": "shadow", **counts, **_shadow_columns(shadow)})
    return sorted(rows, key=lambda row: (_version_order(row["model_version"]), str(row["alias"])))


def check_online(
    candidate_tags: Mapping[str, str],
    champion_tags: Mapping[str, str] | None,
    candidate_version: str = "?",
    champion_version: str = "?",
) -> Gate:
    """Whether the candidate may replace the champion on what users did: refused with fewer than MIN_IMPRESSIONS
    impressions on either side, or when the candidate's CTR interval lies wholly below the champion's."""
    if champion_tags is None or candidate_version == champion_version:
        return Gate(True, NO_CHAMPION)
    sides = (("candidate", candidate_version, candidate_tags), ("champion", champion_version, champion_tags))
    refusals = [
        TOO_FEW_IMPRESSIONS.format(
            role=role, version=version, impressions=count, minimum=MIN_IMPRESSIONS, window=_window_of(tags)
        )
        for role, version, tags in sides
        if (count := _impressions(tags)) < MIN_IMPRESSIONS
    ]
    if refusals:
        return Gate(False, "; ".join(refusals))
    candidate, best = (tags[TAG_PREFIX + "ctr"] for tags in (candidate_tags, champion_tags))
    names = {"version": candidate_version, "candidate": candidate, "champion": champion_version, "best": best}
    if parse_estimate(candidate).high < parse_estimate(best).low:
        return Gate(False, CTR_WHOLLY_BELOW.format(**names))
    return Gate(True, ONLINE_PASSED.format(**names))


def _metrics(key: tuple[str | None, str, str | None], values: np.ndarray, users: int) -> GroupMetrics:
    totals = values.sum(axis=0)
    resampled = bootstrap_sums(values)
    column = {name: i for i, name in enumerate(_FIELDS)}
    rates = {name: ratio_estimate(totals, resampled, column[a], column[b]) for name, (a, b) in _RATIOS.items()}
    count = {name: round(totals[column[name]]) for name in _FIELDS if name != "reciprocal_ranks"}
    return GroupMetrics(*key, units=len(values), users=users, **count, rates=rates)


def _mean_estimate(values: Sequence[float], counts: Sequence[int], samples: int) -> Estimate:
    """Mean of a histogram (`counts` rows had each value) with a bootstrap interval: rows resampled multinomially."""
    n = int(sum(counts))
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    points, weights = np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    resampled = np.random.default_rng(SEED).multinomial(n, weights / n, size=samples) @ points / n
    low, high = np.percentile(resampled, [2.5, 97.5])
    return Estimate(float(points @ weights / n), float(low), float(high))


def _counts(group: GroupMetrics) -> dict[str, Any]:
    row: dict[str, Any] = {"model_version": group.model_version, "alias": group.alias}
    for name in COUNTS:
        row[name] = getattr(group, name)
    for name, estimate in group.rates.items():
        row.update({name: estimate.mean, f"{name}_low": estimate.low, f"{name}_high": estimate.high})
    return row


def _shadow_columns(shadow: ShadowMetrics | None) -> dict[str, Any]:
    if shadow is None:
        return {}
    e = shadow.overlap10
    return {
        "shadow_rows": shadow.rows,
        "shadow_overlap10": e.mean,
        "shadow_overlap10_low": e.low,
        "shadow_overlap10_high": e.high,
        "shadow_latency_ms": shadow.latency_ms,
        "shadow_failed_share": shadow.failed_share,
    }


def _triple(estimate: Estimate) -> tuple[float, float, float]:
    return estimate.mean, estimate.low, estimate.high


def _impressions(tags: Mapping[str, str]) -> int:
    try:
        return int(tags.get(TAG_PREFIX + "impressions", "0"))
    except ValueError:
        return 0


def _window_of(tags: Mapping[str, str]) -> str:
    window = tags.get(TAG_PREFIX + "window")
    return f"window {window}" if window else "no online report"


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
