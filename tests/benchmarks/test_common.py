"""The benchmarks' reading of the machine's CPU time (/proc/stat), beside every latency figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.common import cpu_counters, cpu_shares


def test_shares_split_busy_idle_and_steal() -> None:
    # user nice system idle iowait irq softirq steal
    before = [100, 0, 50, 1000, 10, 0, 5, 20]
    after = [160, 0, 70, 1080, 30, 0, 10, 70]  # 85 busy, 80 idle + 20 iowait, 50 stolen: 235 in all
    assert cpu_shares(before, after) == {"busy_percent": 36.2, "idle_percent": 42.6, "steal_percent": 21.3}


def test_no_time_passed_gives_no_shares() -> None:
    assert cpu_shares([1] * 8, [1] * 8) == {}


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc/stat")
def test_counters_are_the_eight_fields_of_the_cpu_line_and_only_grow() -> None:
    first = cpu_counters()
    sum(range(2_000_000))  # spend a little CPU
    second = cpu_counters()
    assert len(first) == len(second) == 8
    assert all(b >= a for a, b in zip(first, second, strict=True))
    shares = cpu_shares(first, second)
    assert not shares or round(sum(shares.values())) == 100
