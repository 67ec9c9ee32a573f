"""MLproject entry point `report`: what users did with each model version's answers, from the event store.

    mlflow run . -e report --env-manager local [-P events_uri=sqlite:///.run/events.db] [-P since=7d] [-P until=...]

Per (model version, alias) over a window of impressions: requests, users, impressions, CTR, like and dismiss rates,
MRR of clicks, and the shadow overlap@10 of a challenger, each rate with a 95% bootstrap interval over users
(pipelines/online.py). One run in experiment `movie-recommender-online` (or the run `mlflow run` gives) logs them as
metrics, the table as `online/table.csv` and `online/table.json`, and a chart `online/rates.png`; each version with
traffic gets `online.*` tags (what `promote -P online=true` reads) and a description written from them.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from events import queries
from events.store import EventStore, display_url, engine_url
from pipelines import online
from pipelines.charts import interval_bars
from pipelines.registry import MODEL_NAME, describe_version, replace_tags

logger = logging.getLogger(__name__)

EXPERIMENT = "movie-recommender-online"
DEFAULT_EVENTS_URI = "sqlite:///.run/events.db"
ALL_EVENTS = "all events"  # the window without bounds
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhdw])$")

BAD_TIME = "{name}={text!r} is neither an ISO 8601 time (2026-12-07T10:00:00Z) nor a duration back from now (24h, 7d)"
EMPTY_WINDOW = "since {since} is not before until {until}: the window holds nothing"
BAD_URI = "events_uri is not a database URI (sqlite:///PATH or postgresql://USER@HOST/DB): {error}"
NO_STORE = "no event store at {path} (events_uri {uri}): the gateway creates it when it writes its first event"
UNREADABLE = "cannot read the event store {uri}: {error}"
NO_EVENTS = "no events for {model} in {uri} ({window}): nothing to report, no version tagged"


class ReportError(RuntimeError):
    """The report cannot be made (a bad parameter, an unreadable store); the message says why in one line."""


@dataclass(frozen=True)
class Window:
    """Impressions at `since` (inclusive) up to `until` (exclusive), UTC; None: no bound on that side."""

    since: datetime | None
    until: datetime | None

    def describe(self) -> str:
        """An ISO 8601 interval, `..` for an open end (`2026-12-06T10:00:00Z/..`), or `all events`."""
        if self.since is None and self.until is None:
            return ALL_EVENTS
        return "/".join(_iso(moment) if moment else ".." for moment in (self.since, self.until))


@dataclass(frozen=True)
class Events:
    """What the report reads from the store: per-unit counts, shadow summaries, shadow overlap histograms."""

    units: list[queries.UnitCounts]
    shadows: list[queries.ShadowSummary]
    overlaps: list[queries.OverlapCount]


@dataclass(frozen=True)
class OnlineReport:
    run_id: str
    window: Window
    groups: list[online.GroupMetrics]  # per (version, alias)
    versions: list[online.GroupMetrics]  # per version, aliases pooled: what the tags say
    shadows: list[online.ShadowMetrics]
    tagged: list[str]  # versions whose tags this report set

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(online.table_rows(self.groups, self.shadows))


def parse_time(name: str, text: str, now: datetime) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone) or a duration back from `now`; None for empty text."""
    text = text.strip()
    if not text:
        return None
    if match := _DURATION.match(text):
        return now - timedelta(**{DURATION_UNITS[match["unit"]]: float(match["amount"])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(BAD_TIME.format(name=name, text=text)) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_window(since: str, until: str, now: datetime | None = None) -> Window:
    now = now or datetime.now(UTC)
    window = Window(parse_time("since", since, now), parse_time("until", until, now))
    if window.since and window.until and window.since >= window.until:
        raise ReportError(EMPTY_WINDOW.format(since=_iso(window.since), until=_iso(window.until)))
    return window


def open_store(events_uri: str) -> Engine:
    """An engine on the event store (the store's own: psycopg 3 for PostgreSQL, a connect timeout); a missing SQLite
    file is an error, never created here."""
    try:
        url = engine_url(events_uri)
    except ArgumentError as error:
        raise ReportError(BAD_URI.format(error=error)) from None
    on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if on_disk and not Path(str(url.database)).is_file():
        raise ReportError(NO_STORE.format(path=url.database, uri=display_url(events_uri)))
    try:
        return EventStore(events_uri).engine
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise ReportError(BAD_URI.format(error=error)) from None


def read_events(engine: Engine, window: Window, model_name: str, uri: str) -> Events:
    """The report's rows from the store; ReportError (one line) when it cannot be read."""
    bounds = (window.since, window.until, model_name)
    try:
        return Events(
            queries.unit_counts(engine, *bounds),
            queries.shadow_summaries(engine, *bounds),
            queries.shadow_overlaps(engine, *bounds),
        )
    except SQLAlchemyError as error:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise ReportError(UNREADABLE.format(uri=uri, error=detail)) from None
    finally:
        engine.dispose()


def report(
    events_uri: str = DEFAULT_EVENTS_URI,
    since: str = "",
    until: str = "",
    model_name: str = MODEL_NAME,
    client: MlflowClient | None = None,
) -> OnlineReport:
    """Read the window's events, log the report run, tag every version with traffic; ReportError when it cannot."""
    window = parse_window(since, until)
    shown_uri = display_url(events_uri)
    events = read_events(open_store(events_uri), window, model_name, shown_uri)
    client = client or MlflowClient()
    with _start_run(client) as run:
        run_id = run.info.run_id
        params = {"events_store": shown_uri, "window": window.describe(), "model_name": model_name}
        mlflow.log_params({key: value for key, value in params.items() if key not in run.data.params})
        if not events.units and not events.shadows:
            message = NO_EVENTS.format(model=model_name, uri=shown_uri, window=window.describe())
            mlflow.set_tag("mlflow.note.content", message)
            logger.warning(message)
            return OnlineReport(run_id, window, [], [], [], [])
        result = OnlineReport(
            run_id,
            window,
            online.group_metrics(events.units),
            online.group_metrics(events.units, by_alias=False),
            online.shadow_metrics(events.shadows, events.overlaps),
            [],
        )
        _log(result)
        return replace(result, tagged=_tag_versions(client, model_name, result))


def metric_values(result: OnlineReport) -> dict[str, float]:
    """`v{version}.{name}` for each version (all its traffic), `v{version}.{alias}.{name}` for each alias's share;
    rates with `_low` and `_high`; shadow figures as `v{version}.shadow_*`. Non-finite values are left out."""
    values: dict[str, float] = {}
    for group in (*result.versions, *result.groups):
        prefix = f"v{group.model_version}." + (f"{group.alias}." if group.alias else "")
        for name in online.COUNTS:
            values[prefix + name] = float(getattr(group, name))
        for name, e in group.rates.items():
            values.update({prefix + name: e.mean, f"{prefix}{name}_low": e.low, f"{prefix}{name}_high": e.high})
    for shadow in result.shadows:
        prefix = f"v{shadow.model_version}.shadow_"
        e = shadow.overlap10
        values.update({f"{prefix}rows": float(shadow.rows), f"{prefix}failed_share": shadow.failed_share})
        values.update(
            {f"{prefix}overlap10": e.mean, f"{prefix}overlap10_low": e.low, f"{prefix}overlap10_high": e.high}
        )
        if shadow.latency_ms is not None:
            values[f"{prefix}latency_ms"] = shadow.latency_ms
    return {key: value for key, value in values.items() if math.isfinite(value)}


def _start_run(client: MlflowClient) -> mlflow.ActiveRun:
    """The run `mlflow run` made (MLFLOW_RUN_ID), else a new one in EXPERIMENT, created when missing."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.start_run()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    return mlflow.start_run(experiment_id=experiment_id, run_name="report")


def _log(result: OnlineReport) -> None:
    mlflow.log_metrics(metric_values(result))
    table = result.table()
    mlflow.log_text(table.to_csv(index=False), "online/table.csv")
    mlflow.log_table(table, "online/table.json")
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "rates.png"
        _rates_chart(result.groups, chart)
        mlflow.log_artifact(str(chart), "online")


def _tag_versions(client: MlflowClient, model_name: str, result: OnlineReport) -> list[str]:
    """Replace the `online.*` tags of each version with traffic (or shadow rows) and rewrite its description."""
    versions = {g.model_version: g for g in result.versions if g.model_name == model_name}
    shadows = {s.model_version: s for s in result.shadows}
    tagged = []
    for version in sorted(versions.keys() | shadows.keys(), key=lambda v: (len(v), v)):
        tags = online.version_tags(versions.get(version), shadows.get(version), result.window.describe(), result.run_id)
        prefix = online.TAG_PREFIX
        try:
            replace_tags(client, model_name, version, prefix, {key[len(prefix) :]: v for key, v in tags.items()})
        except MlflowException as error:
            logger.warning("%s version %s has events but cannot be tagged: %s", model_name, version, error)
            continue
        describe_version(client, model_name, version)
        tagged.append(version)
    return tagged


def _rates_chart(groups: list[online.GroupMetrics], path: Path) -> None:
    names = ("ctr", "like_rate", "dismiss_rate")
    labels = [f"v{g.model_version} {g.alias or ''}".strip() for g in groups]
    series = {name: [g.rates[name] for g in groups] for name in names}
    interval_bars(
        path, labels, series, "per impression (95% bootstrap interval over users)", "online rates per model version"
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def printable(table: pd.DataFrame) -> str:
    """The table as text, each rate as `mean [low, high]`."""
    shown = table.copy()
    for name in (*online.RATES, "shadow_overlap10"):
        if name in shown:
            triples = zip(shown[name], shown[f"{name}_low"], shown[f"{name}_high"], strict=True)
            shown[name] = [online.format_estimate(*t) if t[0] == t[0] else "-" for t in triples]
            shown = shown.drop(columns=[f"{name}_low", f"{name}_high"])
    return shown.astype(object).where(shown.notna(), "-").to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__.split("\n")[0])
    parser.add_argument("--events-uri", default=DEFAULT_EVENTS_URI)
    parser.add_argument("--since", default="", help="ISO 8601 time or a duration back from now (24h, 7d); empty: all")
    parser.add_argument("--until", default="", help="ISO 8601 time or a duration back from now; empty: no bound")
    parser.add_argument("--model-name", default=MODEL_NAME)
    args = parser.parse_args(argv)
    try:
        result = report(args.events_uri, args.since, args.until, args.model_name)
    except ReportError as error:
        print(f"report failed: {error}", file=sys.stderr)
        return 2
    if not result.groups and not result.shadows:
        window = result.window.describe()
        print(NO_EVENTS.format(model=args.model_name, uri=display_url(args.events_uri), window=window))
        return 0
    print(printable(result.table()))
    print(f"report run {result.run_id}; versions tagged: {', '.join(result.tagged) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
