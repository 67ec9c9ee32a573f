"""MLproject entry point `promote`: point alias `champion` at a model version, gated on its evaluation.

    mlflow run . -e promote --env-manager local [-P version=2] [-P force=true] [-P online=true]

Without `version`, the current `challenger` is promoted. The quality gate (see `check_gate`) refuses a version that
has not been evaluated (`mlflow run . -e evaluate`), or whose primary metric, P1 HR@10, is below the current
champion's 95% interval. With `online=true` the online gate (`pipelines.online.check_online`, on the `online.*` tags
of `mlflow run . -e report`) must pass too. Both gates' reasons are recorded on the version (tag `promotion_gate`).
`force=true` promotes anyway and records the overridden reason (tag `promotion_forced`). The previous champion is
recorded too (tag `previous_champion`): rolling back is promoting that version again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.online import Gate, check_online, tag_estimate
from pipelines.registry import CHALLENGER, CHAMPION, MODEL_NAME, alias_version, describe_model, describe_version

logger = logging.getLogger(__name__)

PRIMARY_TAG = "quality.p1_hr10"
NO_CHALLENGER = "{name} has no version given and no '{alias}' alias to promote"
NO_SUCH_VERSION = "{name} has no version {version}"
NOT_EVALUATED = (
    "version {version} has not been evaluated: run "
    "`mlflow run . -e evaluate --env-manager local -P model_uri=models:/{name}/{version}` first"
)
WORSE_THAN_CHAMPION = (
    "version {version} has P1 HR@10 {candidate:.4f}, below champion version {champion}'s {best:.4f} "
    "beyond its 95% interval [{low:.4f}, {high:.4f}]"
)


class PromotionError(RuntimeError):
    """The promotion cannot happen; the registry is unchanged."""


def check_gate(candidate: ModelVersion, champion: ModelVersion | None) -> Gate:
    """Whether `candidate` may replace `champion`, judged on the `quality.*` tags `evaluate` leaves (in the
    one-tag form `mean [low, high]`, or the three tags older versions carry)."""
    value = tag_estimate(candidate.tags, PRIMARY_TAG)
    if value is None:
        return Gate(False, NOT_EVALUATED.format(name=candidate.name, version=candidate.version))
    if champion is None or champion.version == candidate.version:
        return Gate(True, "no other champion to compare against")
    best = tag_estimate(champion.tags, PRIMARY_TAG)
    if best is None:
        return Gate(True, f"champion version {champion.version} has no evaluation to compare against")
    if value.mean < best.low:
        reason = WORSE_THAN_CHAMPION.format(
            version=candidate.version, candidate=value.mean, champion=champion.version, best=best.mean,
            low=best.low, high=best.high,
        )  # fmt: skip
        return Gate(False, reason)
    return Gate(True, f"P1 HR@10 {value.mean:.4f} is not below champion's interval (from {best.low:.4f})")


def check_gates(candidate: ModelVersion, champion: ModelVersion | None, online: bool = False) -> Gate:
    """The quality gate, and with `online` the online gate too: passed when every gate passes; the reason names
    each gate's reason (the quality gate's alone without `online`)."""
    quality = check_gate(candidate, champion)
    if not online:
        return quality
    online_gate = check_online(
        candidate.tags,
        champion.tags if champion is not None else None,
        candidate.version,
        champion.version if champion is not None else candidate.version,
    )
    reason = f"quality: {quality.reason}; online: {online_gate.reason}"
    return Gate(quality.passed and online_gate.passed, reason)


def promote(
    model_name: str = MODEL_NAME,
    version: str | None = None,
    force: bool = False,
    client: MlflowClient | None = None,
    online: bool = False,
) -> str:
    """Move `champion` to `version` (default: the challenger) if the gates pass (`online`: the online gate too) or
    `force`; returns the version."""
    client = client or MlflowClient()
    version = version or alias_version(model_name, CHALLENGER, client)
    if not version:
        raise PromotionError(NO_CHALLENGER.format(name=model_name, alias=CHALLENGER))
    candidate = _version(client, model_name, version)
    previous = alias_version(model_name, CHAMPION, client)
    champion = _version(client, model_name, previous) if previous else None
    gate = check_gates(candidate, champion, online)
    if not gate.passed and not force:
        raise PromotionError(gate.reason)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    tags = {"promoted_at": datetime.now(UTC).isoformat(), "previous_champion": previous or "none"}
    tags["promotion_gate"] = gate.reason
    if not gate.passed:
        tags["promotion_forced"] = gate.reason
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if gate.passed and "promotion_forced" in candidate.tags:  # an earlier forced promotion no longer applies
        client.delete_model_version_tag(model_name, version, "promotion_forced")
    describe_model(client, model_name)
    describe_version(client, model_name, version)
    logger.info(
        "%s: champion %s -> %s (%s%s)", model_name, previous, version, "forced: " * (not gate.passed), gate.reason
    )
    return version


def _version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as error:
        raise PromotionError(NO_SUCH_VERSION.format(name=name, version=version)) from error


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.promote", description=__doc__.split("\n")[0])
    parser.add_argument("--version", default="", help="version to promote; empty for the current challenger")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--force", default="false", help="true to promote even when the gate refuses")
    parser.add_argument(
        "--online", nargs="?", const="true", default="false", help="true (or the bare flag): the online gate too"
    )
    args = parser.parse_args(argv)
    force, online = (_true(value) for value in (args.force, args.online))
    try:
        version = promote(args.model_name, args.version.strip() or None, force, online=online)
    except PromotionError as error:
        print(f"promotion refused: {error}", file=sys.stderr)
        return 2
    print(f"{args.model_name} version {version} is now {CHAMPION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
