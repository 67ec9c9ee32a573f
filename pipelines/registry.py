"""Registry conventions: the model name, its aliases, small questions `make up` asks, and what a user reads in the
registry: the tags the pipelines keep per version and the descriptions written from them.

CLI: `python -m pipelines.registry champion [--model-name NAME]` prints the champion's version; exit 1 when there
is none, 3 when the registry cannot be asked.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Mapping

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.online import format_estimate, tag_estimate

logger = logging.getLogger(__name__)

MODEL_NAME = "movie-recommender"
CHAMPION = "champion"
CHALLENGER = "challenger"
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
MODEL_DESCRIPTION = """Films similar to the ones you like: each film's metadata embedded by a SentenceTransformer
(all-MiniLM-L6-v2) and searched in a FAISS index, with the catalog, shared people, precomputed neighbour lists and,
once there are events, which films the same people engage with, as one pyfunc model. The gateway serves `champion`;
`challenger` is the newest build, kept warm beside it.

Through the gateway:

```bash
curl -s -X POST localhost:8000/movies/recommendations/ -H 'content-type: application/json' \\
     -d '{"title": "The Matrix", "top_n": 5, "user": "app-user-42"}'
```

The scoring server (`mlflow models serve`) takes the model's own input, a list of queries:

```bash
curl -s localhost:5001/invocations -H 'content-type: application/json' \\
     -d '{"inputs": [{"title": "The Matrix", "top_n": 3}, {"liked": [{"title": "Heat"}], "top_n": 3}]}'
```

Each version's description says what it was built from, how it did offline (`quality.*` tags, from
`mlflow run . -e evaluate`) and online (`online.*` tags, from `mlflow run . -e report`).
"""
QUALITY_HEADLINE = {"p1_hr10": "P1 HR@10", "p3_hr10": "P3 HR@10", "p2_overlap10": "P2 overlap@10"}
ONLINE_HEADLINE = {
    "ctr": "CTR",
    "like_rate": "like rate",
    "dismiss_rate": "dismiss rate",
    "mrr": "MRR",
    "shadow_overlap10": "shadow overlap@10",
}


def alias_version(model_name: str, alias: str, client: MlflowClient | None = None) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist."""
    client = client or MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, alias).version
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def registered_version(model_uri: str, client: MlflowClient | None = None) -> tuple[str, str] | None:
    """(name, version) for `models:/NAME@ALIAS` or `models:/NAME/VERSION`; None for any other URI."""
    match = _REGISTRY_URI.match(model_uri)
    if not match:
        return None
    name, alias, version = match["name"], match["alias"], match["version"]
    if alias:
        client = client or MlflowClient()
        version = client.get_model_version_by_alias(name, alias).version
    return name, str(version)


def replace_tags(client: MlflowClient, name: str, version: str, prefix: str, tags: Mapping[str, str]) -> None:
    """Set `tags` (keys without `prefix`) on the version and delete its other `prefix*` tags: what one run of a
    pipeline says replaces what an earlier run said."""
    current = client.get_model_version(name, version).tags
    for key in current:
        if key.startswith(prefix) and key[len(prefix) :] not in tags:
            client.delete_model_version_tag(name, version, key)
    for key, value in tags.items():
        if current.get(prefix + key) != value:
            client.set_model_version_tag(name, version, prefix + key, value)


def describe_model(client: MlflowClient, name: str) -> None:
    """Write the registered model's description (what it is, how to call it) when it is empty or an earlier text of
    ours (same first line): a description someone wrote in the UI is kept."""
    current = client.get_registered_model(name).description or ""
    ours = not current.strip() or current.startswith(MODEL_DESCRIPTION.split("\n")[0])
    if ours and current != MODEL_DESCRIPTION:
        client.update_registered_model(name, description=MODEL_DESCRIPTION)


def describe_version(client: MlflowClient, name: str, version: str) -> str:
    """Rewrite the version's description from its build run and its tags; returns the text."""
    model_version = client.get_model_version(name, version)
    text = "\n\n".join(
        part
        for part in (
            _build_part(client, model_version),
            _quality_part(model_version.tags),
            _online_part(model_version.tags),
            _promotion_part(model_version.tags),
        )
        if part
    )
    if model_version.description != text:
        client.update_model_version(name, version, description=text)
    return text


def _build_part(client: MlflowClient, version: ModelVersion) -> str:
    tags = version.tags
    run_id = tags.get("build_run_id") or version.run_id
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if run_id:
        try:
            data = client.get_run(run_id).data
            params, metrics = data.params, data.metrics
        except MlflowException as error:
            logger.warning("%s version %s: build run %s unreadable: %s", version.name, version.version, run_id, error)
    catalog = params.get("catalog", "unknown")
    source = tags.get("catalog_source")
    films = metrics.get("n_films", tags.get("n_films"))
    films_text = f"{int(float(films)):,} films" if films is not None else "films unknown"
    index = params.get("index_type") or params.get("index", "unknown")
    source_text = f" ({source})" if source and source != catalog else ""
    run_text = f"build run `{run_id}`" if run_id else "no build run recorded"
    events = params.get("events_source")
    if events and "events_read" in metrics:
        period = f", {params.get('events_from', '?')[:10]} to {params.get('events_to', '?')[:10]}"
        events_text = f"; co-engagement from {int(metrics['events_read']):,} events of `{events}`{period}"
    else:
        events_text = "; content only (no events)"
    return f"**Built from** catalog `{catalog}`{source_text}: {films_text}, index `{index}`{events_text} ({run_text})."


def _quality_part(tags: Mapping[str, str]) -> str:
    figures = _figures(tags, "quality.", QUALITY_HEADLINE)
    if not figures:
        return "**Offline**: not evaluated yet (`mlflow run . -e evaluate`)."
    beats = tags.get("quality.beats_baselines", "unknown")
    run = tags.get("quality.run") or tags.get("quality.evaluation_run_id", "unknown")
    return f"**Offline** (MovieLens-100k, test users): {figures}; beats the baselines: {beats} (evaluate run `{run}`)."


def _online_part(tags: Mapping[str, str]) -> str:
    figures = _figures(tags, "online.", ONLINE_HEADLINE)
    if not figures:
        return ""
    counts = ", ".join(
        f"{int(tags[f'online.{key}']):,} {key}" for key in ("impressions", "users") if f"online.{key}" in tags
    )
    window = tags.get("online.window", "unknown")
    run = tags.get("online.report_run", "unknown")
    counts_text = f"{counts}; " if counts else ""
    return f"**Online** ({window}): {counts_text}{figures} (report run `{run}`)."


def _promotion_part(tags: Mapping[str, str]) -> str:
    if "promotion_gate" not in tags:
        return ""
    forced = " Forced." if "promotion_forced" in tags else ""
    return f"**Promoted** {tags.get('promoted_at', '')}: {tags['promotion_gate']}.{forced}"


def _figures(tags: Mapping[str, str], prefix: str, names: Mapping[str, str]) -> str:
    """`label mean [low, high]` for each named figure the tags hold, joined by semicolons."""
    parts = []
    for key, label in names.items():
        estimate = tag_estimate(tags, prefix + key)
        if estimate is not None:
            parts.append(f"{label} {format_estimate(estimate.mean, estimate.low, estimate.high)}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.registry", description=__doc__)
    parser.add_argument("question", choices=[CHAMPION, CHALLENGER], help="which alias to look up")
    parser.add_argument("--model-name", default=MODEL_NAME)
    args = parser.parse_args(argv)
    try:
        version = alias_version(args.model_name, args.question)
    except MlflowException as error:
        print(f"cannot reach the registry: {error}", file=sys.stderr)
        return 3
    if version is None:
        print(f"{args.model_name} has no {args.question}", file=sys.stderr)
        return 1
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
