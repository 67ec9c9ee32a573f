"""The event store's read side for the online report: small grouped rows, aggregated in SQL.

Every query takes a window on the impressions' time (`since` inclusive, `until` exclusive, either None for no
bound); feedback counts towards the impression it answers, whenever it came. Only impressions of a known model
version are read: an answer whose version the gateway did not know belongs to no version's figures.
The SQL is plain Core (GROUP BY, CASE, COALESCE), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Float, String, and_, case, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from events.tables import feedback, impression_films, impressions, shadow

USER_UNIT = "u:"  # a unit key for a user: u:{user}
REQUEST_UNIT = "r:"  # a unit key for a request without user: r:{request_id}


@dataclass(frozen=True)
class UnitCounts:
    """One unit's traffic on one (model, version, alias): a user, or a request without user (its own unit)."""

    model_name: str | None
    model_version: str
    alias: str | None
    unit: str  # USER_UNIT + user, or REQUEST_UNIT + request_id
    is_user: bool
    requests: int  # answered recommendation requests
    impressions: int  # films returned in those answers
    clicks: int
    likes: int
    dismisses: int
    shown: int
    reciprocal_ranks: float  # sum over requests of 1/position of the first clicked film (0 without a click)


@dataclass(frozen=True)
class ShadowSummary:
    """One challenger version's shadow comparisons: how often, how alike, how fast, how often it failed."""

    model_name: str | None
    model_version: str
    rows: int  # shadow requests
    compared: int  # rows with an overlap (status ok)
    overlap_mean: float | None  # mean overlap@k over compared rows
    latency_ms_mean: float | None
    failed_share: float  # share of rows whose status is not `ok` (failed, timeout, unavailable)


@dataclass(frozen=True)
class OverlapCount:
    """How many shadow rows of a version had one overlap value (overlap@k takes few values: 0, 1/k, ..., 1)."""

    model_version: str
    overlap: float
    rows: int


def unit_counts(
    engine: Engine, since: datetime | None = None, until: datetime | None = None, model_name: str | None = None
) -> list[UnitCounts]:
    """Per (model_name, model_version, alias, unit): the counts the online metrics are ratios of."""
    per_request = _feedback_per_request(since)
    first_click = _first_click(since)
    unit = case(
        (impressions.c.user.is_not(None), literal_column(f"'{USER_UNIT}'", String) + impressions.c.user),
        else_=literal_column(f"'{REQUEST_UNIT}'", String) + impressions.c.request_id,
    )
    rows = (
        select(
            impressions.c.model_name,
            impressions.c.model_version,
            impressions.c.alias,
            unit.label("unit"),
            case((impressions.c.user.is_not(None), 1), else_=0).label("is_user"),
            impressions.c.n_films,
            *(func.coalesce(per_request.c[name], 0).label(name) for name in _EVENT_COLUMNS),
            func.coalesce(1.0 / cast(first_click.c.position, Float), 0.0).label("reciprocal_rank"),
        )
        .select_from(
            impressions.outerjoin(per_request, per_request.c.request_id == impressions.c.request_id).outerjoin(
                first_click, first_click.c.request_id == impressions.c.request_id
            )
        )
        .where(*_window(impressions.c.at, since, until), impressions.c.model_version.is_not(None))
    )
    if model_name is not None:
        rows = rows.where(impressions.c.model_name == model_name)
    inner = rows.subquery("rows")
    keys = (inner.c.model_name, inner.c.model_version, inner.c.alias, inner.c.unit)
    grouped = select(
        *keys,
        func.max(inner.c.is_user),
        func.count(),
        func.sum(inner.c.n_films),
        *(func.sum(inner.c[name]) for name in _EVENT_COLUMNS),
        func.sum(inner.c.reciprocal_rank),
    ).group_by(*keys)
    with engine.connect() as connection:
        result = connection.execute(grouped.order_by(*keys)).all()
    return [_unit_counts(row) for row in result]


def shadow_summaries(
    engine: Engine, since: datetime | None = None, until: datetime | None = None, model_name: str | None = None
) -> list[ShadowSummary]:
    """Per challenger (model_name, model_version) in the shadow table: rows, mean overlap, mean latency, failures."""
    keys = (shadow.c.model_name, shadow.c.model_version)
    query = (
        select(
            *keys,
            func.count(),
            func.count(shadow.c.overlap),
            func.avg(shadow.c.overlap),
            func.avg(shadow.c.latency_ms),
            func.sum(case((shadow.c.status == "ok", 0), else_=1)),
        )
        .where(*_shadow_filter(since, until, model_name))
        .group_by(*keys)
        .order_by(*keys)
    )
    with engine.connect() as connection:
        result = connection.execute(query).all()
    return [
        ShadowSummary(
            name, str(version), int(rows), int(compared), _float(overlap), _float(latency), int(failed) / rows
        )
        for name, version, rows, compared, overlap, latency, failed in result
    ]


def shadow_overlaps(
    engine: Engine, since: datetime | None = None, until: datetime | None = None, model_name: str | None = None
) -> list[OverlapCount]:
    """Per challenger version and overlap value: how many shadow rows had it (what a bootstrap of the mean needs)."""
    keys = (shadow.c.model_version, shadow.c.overlap)
    query = (
        select(*keys, func.count())
        .where(*_shadow_filter(since, until, model_name), shadow.c.overlap.is_not(None))
        .group_by(*keys)
        .order_by(*keys)
    )
    with engine.connect() as connection:
        return [OverlapCount(str(v), float(o), int(n)) for v, o, n in connection.execute(query).all()]


_EVENTS = {"clicks": "click", "likes": "like", "dismisses": "dismiss", "shown": "shown"}
_EVENT_COLUMNS = tuple(_EVENTS)


def _feedback_per_request(since: datetime | None) -> Any:
    """Events per request id, one column per kind (feedback on a request never precedes it: `since` bounds it)."""
    counts = (func.sum(case((feedback.c.event == event, 1), else_=0)).label(name) for name, event in _EVENTS.items())
    query = select(feedback.c.request_id, *counts).where(feedback.c.request_id.is_not(None))
    query = query.where(*_window(feedback.c.at, since, None))
    return query.group_by(feedback.c.request_id).subquery("per_request")


def _first_click(since: datetime | None) -> Any:
    """Per request id, the best (smallest) position among its clicked films."""
    joined = impression_films.join(
        feedback,
        and_(feedback.c.request_id == impression_films.c.request_id, feedback.c.film_id == impression_films.c.film_id),
    )
    query = select(impression_films.c.request_id, func.min(impression_films.c.position).label("position"))
    query = query.select_from(joined).where(feedback.c.event == "click", *_window(feedback.c.at, since, None))
    return query.group_by(impression_films.c.request_id).subquery("first_click")


def _shadow_filter(since: datetime | None, until: datetime | None, model_name: str | None) -> list[ColumnElement]:
    conditions = [*_window(shadow.c.at, since, until), shadow.c.model_version.is_not(None)]
    return conditions + ([shadow.c.model_name == model_name] if model_name is not None else [])


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement]:
    """`since <= column < until`; bounds are compared in UTC, as the store keeps its times."""
    conditions = []
    if since is not None:
        conditions.append(column >= _utc(since))
    if until is not None:
        conditions.append(column < _utc(until))
    return conditions


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _unit_counts(row: Any) -> UnitCounts:
    name, version, alias, unit, is_user, requests, films, clicks, likes, dismisses, shown, ranks = row
    return UnitCounts(
        name, str(version), alias, unit, bool(is_user), int(requests), int(films or 0),
        int(clicks), int(likes), int(dismisses), int(shown), float(ranks or 0.0),
    )  # fmt: skip


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
