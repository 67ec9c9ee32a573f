"""Bar charts of estimates with their 95% intervals, as PNG files for MLflow runs (evaluate, report)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipelines.quality import Estimate


def interval_bars(
    path: Path, groups: Sequence[str], series: Mapping[str, Sequence[Estimate]], ylabel: str, title: str
) -> None:
    """One cluster of bars per group, one bar per series (its estimate for each group, in order) with error bars
    from the interval; NaN estimates draw as empty bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(series)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.5))
    for i, (name, estimates) in enumerate(series.items()):
        means = np.nan_to_num([e.mean for e in estimates])
        spans = [[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]]
        errors = np.clip(np.nan_to_num(spans), 0, None)  # a percentile interval may miss the point estimate
        axis.bar(np.arange(len(groups)) + i * width, means, width, yerr=errors, capsize=3, label=name)
    axis.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, list(groups))
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
