"""Registry conventions: the model name, its aliases, and small questions `make up` asks.

CLI: `python -m pipelines.registry champion [--model-name NAME]` prints the champion's version; exit 1 when there
is none, 3 when the registry cannot be asked.
"""

from __future__ import annotations

import argparse
import re
import sys

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MODEL_NAME = "movie-recommender"
CHAMPION = "champion"
CHALLENGER = "challenger"
BUILD_EXPERIMENT = "movie-recommender-builds"
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


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
