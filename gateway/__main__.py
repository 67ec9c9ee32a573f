"""Run the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT.

python -m gateway serve   the gateway plus its supervisor: starts `mlflow models serve` for the version that
                          GATEWAY_MODEL_NAME@GATEWAY_MODEL_ALIAS points at, and follows the alias (what
                          `make up` runs)
python -m gateway         the gateway alone, in front of the scoring server at GATEWAY_SCORING_URL
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", nargs="?", choices=["serve"], help="run the supervisor too")
    args = parser.parse_args(argv)
    settings = Settings(**({"supervise": True} if args.command == "serve" else {}))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
    )


if __name__ == "__main__":
    main()
