"""The last champion served, remembered in `STATE_DIR/champion.json`: a supervisor started while the registry cannot
be asked serves it from its local copy until the registry answers again."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CHAMPION_FILE = "champion.json"


@dataclass(frozen=True)
class Champion:
    """A version served for the followed alias: registered model `name`, its `version`, the folder of its local copy
    (in STATE_DIR/models/) and the build run its model names."""

    name: str
    version: str
    folder: str
    build_run_id: str | None


def remember(state_dir: Path, champion: Champion) -> None:
    """Write `champion` to the state dir atomically: a reader, or the next start after a crash, finds the previous
    champion or this one, never part of a file."""
    handle, partial = tempfile.mkstemp(prefix=".champion-", suffix=".json", dir=state_dir)
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(asdict(champion), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, state_dir / CHAMPION_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def recall(state_dir: Path, name: str) -> Champion | None:
    """The champion remembered for registered model `name`; None when there is none, or the file cannot be read."""
    path = state_dir / CHAMPION_FILE
    try:
        champion = Champion(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as error:
        logger.warning("ignoring %s, which cannot be read: %s", path, error)
        return None
    return champion if champion.name == name else None
