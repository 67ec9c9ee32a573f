"""MLproject entry point `simulate`: MovieLens users of the validation half replayed through the running gateway.

    mlflow run . -e simulate --env-manager local -P gateway_url=http://127.0.0.1:8000 [-P max_sessions=500]
    python -m pipelines.simulate --gateway-url http://127.0.0.1:8000 [--catalog default]

Each session (pipelines/sessions.py) asks `POST /movies/recommendations/` with the user's earlier likes, then sends
one `POST /movies/feedback` batch: `shown` for every film returned, `click` (and `like`) for those the user went on
to like. Only `gateway_url` is contacted (proxy variables are ignored); `GATEWAY_API_KEY` (or `--api-key`) goes in
`X-API-Key`. The MovieLens films are matched to the catalog of `model_uri`, read from the model's `movies.parquet`
alone, or to `--catalog` when given. Under `mlflow run` the run gets the plan as params and the counts as metrics.

`--assign user` (the default) sends each session as its user (`ml-ID`): a canary splits the users, sticky. With
`--assign request` the sessions carry no user, so the gateway assigns every request on its own and each is its own
unit in the report: both versions then answer the same users, which a population of a few dozen users needs before
a difference between versions can show through the difference between users.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
from mlflow.exceptions import MlflowException

from model.contract import MAX_TOP_N
from pipelines.movielens import MovieLensError
from pipelines.registry import CHAMPION, MODEL_NAME
from pipelines.sessions import CLICK, LIKE, SHOWN, Plan, Session, batches, feedback_events, plan_sessions, read_replay

logger = logging.getLogger(__name__)

RECOMMEND_PATH = "/movies/recommendations/"
FEEDBACK_PATH = "/movies/feedback"
API_KEY_ENV = "GATEWAY_API_KEY"
NO_REQUEST_ID = "no_request_id"  # an answer without `request_id`: its feedback cannot be attributed, none is sent


@dataclass
class Outcome:
    """What one session got: `served` (`v{version} {alias}`; alias `unknown` when the answer names none) when
    answered, the event counts sent, the gateway's feedback answers summed, and its failures (`recommend 503`,
    `feedback timeout`, `event not_in_answer`, ...)."""

    served: str | None = None
    sent: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Tally:
    """The run's counts; `groups` per `v{version} {alias}` seen in answers: sessions, shown, clicks, likes."""

    sessions: int = 0
    answered: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    groups: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.sessions += 1
        self.sent.update(outcome.sent)
        self.accepted += outcome.accepted
        self.duplicates += outcome.duplicates
        self.errors.update(outcome.errors)
        if outcome.served is not None:
            self.answered += 1
            group = self.groups.setdefault(outcome.served, Counter())
            group.update(sessions=1, **{event: outcome.sent[event] for event in (SHOWN, CLICK, LIKE)})

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow: totals, `errors.{what}`, and `v{version}.{alias}.{sessions|ctr|...}` per group
        (named as the report names its own); a group's CTR is its clicks over its films shown."""
        values = {"sessions": self.sessions, "answered": self.answered, "accepted": self.accepted}
        values |= {"duplicates": self.duplicates, "shown": self.sent[SHOWN], "clicks": self.sent[CLICK]}
        values |= {"likes": self.sent[LIKE], **{f"errors.{key.replace(' ', '_')}": n for key, n in self.errors.items()}}
        for served, group in self.groups.items():
            prefix = served.replace(" ", ".")
            values |= {f"{prefix}.{name}": n for name, n in group.items()}
            if group[SHOWN]:
                values[f"{prefix}.ctr"] = group[CLICK] / group[SHOWN]
        return {key: float(value) for key, value in values.items()}

    def lines(self) -> list[str]:
        """What the CLI prints."""
        lines = [
            f"sessions {self.sessions}, answered {self.answered}; events sent: shown {self.sent[SHOWN]}, "
            f"click {self.sent[CLICK]}, like {self.sent[LIKE]}; accepted {self.accepted}, duplicates {self.duplicates}",
            "errors: " + (", ".join(f"{key} x{n}" for key, n in sorted(self.errors.items())) or "none"),
        ]
        for served, group in sorted(self.groups.items()):
            ctr = f"{group[CLICK] / group[SHOWN]:.4f}" if group[SHOWN] else "-"
            lines.append(f"model {served}: sessions {group['sessions']}, shown {group[SHOWN]}, CTR {ctr}")
        return lines


def gateway_client(gateway_url: str, api_key: str | None, timeout_s: float, concurrency: int) -> httpx.Client:
    """One pooled client for `gateway_url` only: no proxies from the environment, no redirects followed."""
    headers = {"X-API-Key": api_key} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.Client(base_url=gateway_url, headers=headers, timeout=timeout_s, limits=limits, trust_env=False)


ASSIGNMENTS = ("user", "request")  # what a canary splits: the users (sticky), or every request on its own


def drive_session(client: httpx.Client, session: Session, top_n: int, assign: str = "user") -> Outcome:
    """Ask for recommendations as the session's user (or as nobody: `assign` request), then send the reward rule's
    feedback on the answer."""
    outcome = Outcome()
    body: dict[str, Any] = {"liked": list(session.liked), "top_n": top_n}
    if assign == "user":
        body["user"] = session.user
    answer = _post(client, RECOMMEND_PATH, body, "recommend", outcome)
    if answer is None:
        return outcome
    model = answer.get("model") or {}
    outcome.served = f"v{model.get('version') or '?'} {model.get('alias') or 'unknown'}"
    request_id = answer.get("request_id")
    if not request_id:
        outcome.errors[NO_REQUEST_ID] += 1
        return outcome
    films = [int(film["id"]) for film in answer.get("recommendations", [])]
    for events in batches(feedback_events(session, request_id, films)):
        outcome.sent.update(event["event"] for event in events)
        result = _post(client, FEEDBACK_PATH, {"events": events}, "feedback", outcome)
        if result is not None:
            outcome.accepted += int(result.get("accepted", 0))
            outcome.duplicates += int(result.get("duplicates", 0))
            outcome.errors.update(f"event {error.get('code')}" for error in result.get("errors", []))
    return outcome


def _post(client: httpx.Client, path: str, body: dict[str, Any], what: str, outcome: Outcome) -> dict[str, Any] | None:
    """The JSON object of a 2xx answer, else None with the failure counted as `{what} {status}` (or `timeout`,
    `unreachable`, `not_json`)."""
    try:
        response = client.post(path, json=body)
    except httpx.TimeoutException:
        outcome.errors[f"{what} timeout"] += 1
        return None
    except httpx.TransportError:
        outcome.errors[f"{what} unreachable"] += 1
        return None
    if not response.is_success:
        outcome.errors[f"{what} {response.status_code}"] += 1
        return None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        outcome.errors[f"{what} not_json"] += 1
        return None
    return answer


def drive(client: httpx.Client, plan: Plan, top_n: int = 10, concurrency: int = 4, assign: str = "user") -> Tally:
    """Every session of the plan, `concurrency` at a time; each session's request and feedback run in order."""
    tally = Tally()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="simulate") as pool:
        for outcome in pool.map(lambda session: drive_session(client, session, top_n, assign), plan.sessions):
            tally.add(outcome)
    return tally


def catalog_movies(model_uri: str, catalog: str = "") -> pd.DataFrame:
    """The films MovieLens is matched to: `catalog` (`default` or a file, as the build reads it) when given, else the
    catalog inside the model at `model_uri`: its `movies.parquet` alone is downloaded, never the encoder or index."""
    if catalog:
        from model.catalog import load_catalog

        return load_catalog(None if catalog == "default" else catalog).movies
    from mlflow.models import Model
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from model.artifacts import MOVIES, read_movies

    repository = get_artifact_repository(model_uri)
    with tempfile.TemporaryDirectory() as folder:
        flavor = Model.load(repository.download_artifacts("MLmodel", folder)).flavors["python_function"]
        return read_movies(repository.download_artifacts(flavor["artifacts"][MOVIES]["path"], folder))


def plan_from(args: argparse.Namespace) -> Plan:
    """The CLI's plan: MovieLens matched to the catalog the arguments name, planned with their limits; ValueError
    for a cutoff or limit out of range, CatalogError for a catalog that cannot be read."""
    replay = read_replay(catalog_movies(args.model_uri, args.catalog))
    limits = {name: int(getattr(args, name)) for name in ("sessions_per_user", "max_users", "max_sessions", "seed")}
    return plan_sessions(replay, args.cutoff, **limits)


def simulate(
    plan: Plan,
    gateway_url: str,
    *,
    top_n: int = 10,
    concurrency: int = 4,
    api_key: str | None = None,
    timeout_s: float = 10.0,
    source: str = "",
    assign: str = "user",
) -> Tally:
    """Drive the plan's sessions through the gateway; under `mlflow run` (MLFLOW_RUN_ID) log the plan as params
    (`source`: where the catalog came from) and the counts as metrics of its run."""
    with _run() as run, gateway_client(gateway_url, api_key, timeout_s, concurrency) as client:
        if run is not None:
            import mlflow

            cutoff_at = datetime.fromtimestamp(plan.cutoff, UTC).isoformat(timespec="seconds")
            params = {"gateway_url": gateway_url, "catalog_source": source, "cutoff_time": plan.cutoff}
            params |= {"cutoff_at": cutoff_at, "users": plan.users, "planned_sessions": len(plan.sessions)}
            params["assign"] = assign
            mlflow.log_params({key: value for key, value in params.items() if key not in run.data.params})
        tally = drive(client, plan, top_n, concurrency, assign)
        if run is not None:
            mlflow.log_metrics(tally.metrics())
    return tally


def _run() -> AbstractContextManager[Any]:
    """The run `mlflow run` made, or nothing: run by hand, the simulator logs nowhere."""
    if not os.environ.get("MLFLOW_RUN_ID"):
        return nullcontext()
    import mlflow

    return mlflow.start_run()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--gateway-url", default="http://127.0.0.1:8000")
    parser.add_argument("--model-uri", default=f"models:/{MODEL_NAME}@{CHAMPION}", help="whose catalog to match")
    parser.add_argument(
        "--catalog", default="", help="'default' or a catalog file instead of the model's; empty: the model's"
    )
    parser.add_argument(
        "--cutoff", type=float, default=0.5, help="quantile of the like times in (0, 1), or a Unix time"
    )
    parser.add_argument("--sessions-per-user", type=float, default=0, help="0: every like after the cutoff")
    parser.add_argument("--max-users", type=float, default=0, help="0: all")
    parser.add_argument("--max-sessions", type=float, default=0, help="0: all")
    parser.add_argument("--top-n", type=float, default=10)
    parser.add_argument("--assign", choices=ASSIGNMENTS, default="user", help="what a canary splits (see above)")
    parser.add_argument("--concurrency", type=float, default=4)
    parser.add_argument("--seed", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), help=f"default: ${API_KEY_ENV}")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one file downloaded, no bar needed
    cli = parser()
    args = cli.parse_args(argv)
    if not args.gateway_url.startswith(("http://", "https://")):
        cli.error(f"--gateway-url is an http(s) URL, not {args.gateway_url!r}")
    if not (1 <= args.top_n <= MAX_TOP_N and args.concurrency >= 1 and args.timeout > 0):
        cli.error(f"--top-n is 1 to {MAX_TOP_N}, --concurrency 1 or more, --timeout over 0")
    try:
        plan = plan_from(args)
    except (ValueError, MlflowException, MovieLensError) as error:  # a bad cutoff, catalog or model_uri
        print(f"simulate failed: {error}", file=sys.stderr)
        return 2
    tally = simulate(
        plan,
        args.gateway_url,
        top_n=int(args.top_n),
        concurrency=int(args.concurrency),
        api_key=args.api_key,
        timeout_s=args.timeout,
        source=args.catalog or args.model_uri,
        assign=args.assign,
    )
    cutoff_at = datetime.fromtimestamp(plan.cutoff, UTC).isoformat(timespec="seconds")
    print(f"cutoff {plan.cutoff} ({cutoff_at}); {plan.users} users, {len(plan.sessions)} sessions planned")
    print("\n".join(tally.lines()))
    return 0 if tally.answered else 1


if __name__ == "__main__":
    sys.exit(main())
