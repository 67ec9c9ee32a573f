"""The online report: the event store's queries on a real SQLite file (and PostgreSQL), and the `report` entry point
against a real tracking server: metrics, table, chart, version tags and descriptions, the window, the errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, insert

from events import tables
from events.queries import shadow_overlaps, shadow_summaries, unit_counts
from events.store import EventStore
from pipelines import report as report_module
from pipelines.online import parse_estimate
from pipelines.report import EXPERIMENT, NO_EVENTS, NO_STORE, main, report
from tests import postgres
from tests.conftest import mlflow_run

NAME = "report-scratch"
NOW = datetime.now(UTC)


def create_store(path: Path) -> tuple[str, Engine]:
    """An empty event store in a SQLite file, migrated as the gateway migrates it: its URI and an engine on it."""
    uri = f"sqlite:///{path}"
    store = EventStore(uri)
    store.migrate()
    return uri, store.engine


def answer(
    engine: Engine,
    request_id: str,
    version: str | None,
    alias: str | None = "champion",
    user: str | None = None,
    films: Sequence[int] = (1, 2, 3, 4, 5),
    events: Sequence[tuple[int, str]] = (),
    at: datetime = NOW,
    model_name: str = NAME,
) -> None:
    """One answered request with its films and the (film, event) feedback on it, as the gateway's writer stores it."""
    with engine.begin() as connection:
        connection.execute(
            insert(tables.impressions).values(
                request_id=request_id, at=at, user=user, model_name=model_name, model_version=version, alias=alias,
                kind="title", n_films=len(films),
            )
        )  # fmt: skip
        rows = [{"request_id": request_id, "position": i, "film_id": f, "score": 1 / i} for i, f in enumerate(films, 1)]
        connection.execute(insert(tables.impression_films), rows)
        for film, event in events:
            connection.execute(
                insert(tables.feedback).values(
                    key=f"r:{request_id}:{film}:{event}", request_id=request_id, user=user, film_id=film, event=event,
                    at=at + timedelta(seconds=5),
                )
            )  # fmt: skip


def shadow_row(engine: Engine, request_id: str, version: str, overlap: float | None, status: str = "ok") -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(tables.shadow).values(
                request_id=request_id, at=NOW, model_name=NAME, model_version=version, k=10, overlap=overlap,
                latency_ms=4.0 if status == "ok" else None, status=status,
            )
        )  # fmt: skip


def traffic(engine: Engine, version: str, alias: str, users: int, clicks_every: int, prefix: str, **kw) -> None:
    """`users` users, two requests of 10 films each; every `clicks_every`-th user clicks film 3 (position 3)."""
    for u in range(users):
        for r in range(2):
            clicked = u % clicks_every == 0 and r == 0
            events = [(3, "click"), (3, "like")] if clicked else [(1, "shown")]
            answer(engine, f"{prefix}{u}-{r}", version, alias, f"{prefix}user{u}", range(1, 11), events, **kw)


def register_versions(tracking_uri: str, name: str, count: int) -> list[str]:
    """`count` versions of `name`, each from a run that logs what a build logs about its catalog and index."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("report-test-builds")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("report-test-builds")
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    versions = []
    for _ in range(count):
        run = client.create_run(experiment_id, run_name="build")
        client.log_param(run.info.run_id, "catalog", "slice.parquet")
        client.log_param(run.info.run_id, "index_type", "exact")
        client.log_metric(run.info.run_id, "n_films", 500)
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version
        client.set_model_version_tag(name, version, "build_run_id", run.info.run_id)
        versions.append(str(version))
    return versions


# --- the queries, on a SQLite file ---------------------------------------------------------------------------


def test_unit_counts_per_user_or_request(tmp_path: Path) -> None:
    _, engine = create_store(tmp_path / "events.db")
    answer(engine, "a1", "1", user="ann", events=[(4, "click"), (2, "click"), (2, "like")])  # first click at 2
    answer(engine, "a2", "1", user="ann", events=[(5, "dismiss"), (1, "shown")])
    answer(engine, "r1", "1", events=[(1, "click")])  # no user: its own unit
    answer(engine, "c1", "2", "challenger", user="ann", films=(7, 8))
    answer(engine, "x1", None, user="bob", events=[(1, "click")])  # no known version: left out
    answer(engine, "o1", "1", user="old", at=NOW - timedelta(days=3))
    rows = {(row.model_version, row.alias, row.unit): row for row in unit_counts(engine, model_name=NAME)}
    assert set(rows) == {("1", "champion", "u:ann"), ("1", "champion", "r:r1"), ("2", "challenger", "u:ann"),
                         ("1", "champion", "u:old")}  # fmt: skip
    ann = rows["1", "champion", "u:ann"]
    assert ann.is_user and (ann.requests, ann.impressions, ann.clicks, ann.likes, ann.dismisses, ann.shown) == (
        2, 10, 2, 1, 1, 1,
    )  # fmt: skip
    assert ann.reciprocal_ranks == pytest.approx(0.5)
    request = rows["1", "champion", "r:r1"]
    assert not request.is_user and request.reciprocal_ranks == pytest.approx(1.0)
    assert rows["2", "challenger", "u:ann"].impressions == 2
    recent = unit_counts(engine, since=NOW - timedelta(days=1), model_name=NAME)
    assert "u:old" not in {row.unit for row in recent}
    assert unit_counts(engine, until=NOW - timedelta(days=1), model_name=NAME)[0].unit == "u:old"
    assert unit_counts(engine, model_name="another-model") == []


def test_shadow_summaries_and_overlaps(tmp_path: Path) -> None:
    _, engine = create_store(tmp_path / "events.db")
    for i, overlap in enumerate((0.6, 0.6, 0.9)):
        shadow_row(engine, f"s{i}", "2", overlap)
    shadow_row(engine, "s9", "2", None, status="timeout")
    (summary,) = shadow_summaries(engine, model_name=NAME)
    assert (summary.model_version, summary.rows, summary.compared) == ("2", 4, 3)
    assert summary.overlap_mean == pytest.approx(0.7) and summary.latency_ms_mean == pytest.approx(4.0)
    assert summary.failed_share == pytest.approx(0.25)
    assert [(c.overlap, c.rows) for c in shadow_overlaps(engine, model_name=NAME)] == [(0.6, 2), (0.9, 1)]


@pytest.mark.integration
def test_the_same_queries_on_postgresql(cluster: postgres.Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", cluster.password)  # libpq's: the URI carries none
    store = EventStore(cluster.create_database("events_queries"))
    store.migrate()
    engine = report_module.open_store(cluster.uri("events_queries"))  # what the report reads through
    answer(engine, "a1", "1", user="ann", events=[(4, "click"), (2, "click")])
    answer(engine, "r1", "1", events=[(1, "click")])
    shadow_row(engine, "s1", "2", 0.5)
    rows = {row.unit: row for row in unit_counts(engine, since=NOW - timedelta(hours=1), model_name=NAME)}
    assert set(rows) == {"u:ann", "r:r1"} and rows["u:ann"].reciprocal_ranks == pytest.approx(0.5)
    assert shadow_summaries(engine)[0].overlap_mean == pytest.approx(0.5)


# --- the entry point -----------------------------------------------------------------------------------------


def test_unreadable_stores_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    cases = {
        "not a uri": "is not a database URI",
        f"sqlite:///{tmp_path}/missing.db": NO_STORE.split(" (")[0].format(path=f"{tmp_path}/missing.db"),
        f"sqlite:///{tmp_path}/empty.db": "cannot read the event store",  # a database without the tables
        "nosuchdb://host/db": "is not a database URI",
    }
    for uri, message in cases.items():
        assert main(["--events-uri", uri]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error, error
    assert not (tmp_path / "missing.db").exists()  # never created by reading
    assert main(["--events-uri", f"sqlite:///{tmp_path}/empty.db", "--since", "yesterday"]) == 2
    assert "neither an ISO 8601 time" in capsys.readouterr().err


@pytest.fixture(scope="module")
def versions(tracking_uri: str) -> list[str]:
    return register_versions(tracking_uri, NAME, 3)


@pytest.mark.integration
def test_report_logs_metrics_table_chart_and_tags(
    tracking_uri: str, versions: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion, challenger, old = versions
    uri, engine = create_store(tmp_path / "events.db")
    traffic(engine, champion, "champion", 60, 3, "c")
    traffic(engine, challenger, "challenger", 20, 2, "n")
    traffic(engine, old, "champion", 10, 1, "o", at=NOW - timedelta(days=10))  # outside the window
    for i in range(10):
        shadow_row(engine, f"s{i}", challenger, 0.7 if i % 2 else 0.5)
    assert main(["--events-uri", uri, "--since", "7d", "--model-name", NAME]) == 0
    printed = capsys.readouterr().out
    assert "model_version" in printed and "ctr" in printed and " [" in printed  # the table, rates with intervals
    client = MlflowClient(tracking_uri)
    tags = client.get_model_version(NAME, champion).tags
    run = client.get_run(tags["online.report_run"])
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    ctr = parse_estimate(tags["online.ctr"])
    assert ctr.mean == pytest.approx(20 / 1200, abs=5e-5) and ctr.low < ctr.mean < ctr.high  # 20 of 60 users click
    assert tags["online.impressions"] == "1200" and tags["online.users"] == "60"
    assert parse_estimate(tags["online.mrr"]).mean == pytest.approx(20 / 3 / 120, abs=5e-5)  # 1/3 per clicked request
    assert run.data.metrics[f"v{champion}.champion.ctr"] == pytest.approx(20 / 1200)
    assert run.data.metrics[f"v{champion}.ctr_low"] == pytest.approx(ctr.low, abs=5e-5)
    assert run.data.params["window"] == tags["online.window"] and tags["online.window"].endswith("Z/..")
    shadowed = client.get_model_version(NAME, challenger).tags
    assert parse_estimate(shadowed["online.shadow_overlap10"]).mean == pytest.approx(0.6)
    assert "online.ctr" not in client.get_model_version(NAME, old).tags  # its events are older than the window
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "online")}
    assert artifacts == {"online/table.csv", "online/table.json", "online/rates.png"}
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "online/table.json", str(tmp_path))).read_text())
    assert [row[table["columns"].index("model_version")] for row in table["data"]] == [champion, challenger]
    png = Path(client.download_artifacts(run.info.run_id, "online/rates.png", str(tmp_path))).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    description = client.get_model_version(NAME, champion).description
    assert "catalog `slice.parquet`" in description and "500 films" in description and "index `exact`" in description
    assert "**Online**" in description and tags["online.ctr"] in description


@pytest.mark.integration
def test_a_later_window_replaces_the_tags_and_an_empty_one_sets_none(
    tracking_uri: str, versions: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = versions[2]
    uri, engine = create_store(tmp_path / "events.db")
    traffic(engine, old, "champion", 10, 1, "o", at=NOW - timedelta(days=10))
    result = report(uri, since="30d", until="9d", model_name=NAME)
    assert result.tagged == [old]
    client = MlflowClient(tracking_uri)
    assert client.get_model_version(NAME, old).tags["online.report_run"] == result.run_id
    before = client.get_model_version(NAME, old).tags
    assert main(["--events-uri", uri, "--since", "1h", "--model-name", NAME]) == 0
    assert NO_EVENTS.split(" in ")[0].format(model=NAME) in capsys.readouterr().out
    assert client.get_model_version(NAME, old).tags == before  # nothing tagged


@pytest.mark.integration
def test_the_mlproject_entry_point(tracking_uri: str, versions: list[str], tmp_path: Path) -> None:
    uri, engine = create_store(tmp_path / "events.db")
    traffic(engine, versions[0], "champion", 5, 1, "m")
    result = mlflow_run(tracking_uri, "report", events_uri=uri, since="2h", model_name=NAME)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "versions tagged: " + versions[0] in result.stdout
    missing = mlflow_run(tracking_uri, "report", events_uri=f"sqlite:///{tmp_path}/missing.db", model_name=NAME)
    assert missing.returncode != 0 and "no event store at" in missing.stderr
