"""MLproject entry point `promote`: point alias `champion` at a model version.

    mlflow run . -e promote --env-manager local [-P version=2]

Without `version`, the current `challenger` is promoted. The previous champion is recorded on the new version
(tag `previous_champion`), so rolling back is promoting that version again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.registry import CHALLENGER, CHAMPION, MODEL_NAME, alias_version

logger = logging.getLogger(__name__)

NO_CHALLENGER = "{name} has no version given and no '{alias}' alias to promote"
NO_SUCH_VERSION = "{name} has no version {version}"


class PromotionError(RuntimeError):
    """The promotion cannot happen; the registry is unchanged."""


def promote(model_name: str = MODEL_NAME, version: str | None = None, client: MlflowClient | None = None) -> str:
    """Move `champion` to `version` (default: the challenger); returns the promoted version."""
    client = client or MlflowClient()
    version = version or alias_version(model_name, CHALLENGER, client)
    if not version:
        raise PromotionError(NO_CHALLENGER.format(name=model_name, alias=CHALLENGER))
    try:
        client.get_model_version(model_name, version)
    except MlflowException as error:
        raise PromotionError(NO_SUCH_VERSION.format(name=model_name, version=version)) from error
    previous = alias_version(model_name, CHAMPION, client)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promoted_at", datetime.now(UTC).isoformat())
    client.set_model_version_tag(model_name, version, "previous_champion", previous or "none")
    logger.info("%s: champion %s -> %s", model_name, previous, version)
    return version


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.promote", description=__doc__.split("\n")[0])
    parser.add_argument("--version", default="", help="version to promote; empty for the current challenger")
    parser.add_argument("--model-name", default=MODEL_NAME)
    args = parser.parse_args(argv)
    try:
        version = promote(args.model_name, args.version.strip() or None)
    except PromotionError as error:
        print(f"promotion refused: {error}", file=sys.stderr)
        return 2
    print(f"{args.model_name} version {version} is now {CHAMPION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
