"""`pipelines.exit_with`: the exit code and the atexit handlers survive the frozen heap."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import atexit, gc
from pipelines import exit_with
atexit.register(lambda: print("atexit ran, frozen:", gc.get_freeze_count() > 0, flush=True))
exit_with(3)
"""


def test_exit_with_keeps_the_code_and_runs_atexit_handlers_after_freezing() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "atexit ran, frozen: True"
