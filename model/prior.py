"""The notability prior: how well known a film is, from the catalog's own columns (never from viewing data).

Pure similarity recommends "technically similar, but obscure" films. The prior is the standardised mean of six
standardised signals, each of which a catalog may lack (a missing column contributes nothing):

| signal                          | column       | why                                            |
| ------------------------------- | ------------ | ---------------------------------------------- |
| log(1 + critic reviews)         | `reviews`    | how widely a film was reviewed                 |
| critic rating (median if none)  | `rating`     | how well it was received                       |
| log(1 + award mentions)         | `awards`     | wins and nominations                           |
| has a Metacritic score          | `metacritic` | major critics covered it                       |
| log(1 + box office)             | `box_office` | how many people paid to see it                 |
| log(1 + credited cast)          | `cast`       | how thoroughly the film is documented          |

The result has mean 0 and standard deviation 1 over the catalog; the ranking adds `prior_weight` times it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def notability_prior(movies: pd.DataFrame) -> np.ndarray:
    """One standardised notability score per catalog row, float32, shape (n,)."""
    signals = [
        np.log1p(_column(movies, "reviews").fillna(0.0)),
        _column(movies, "rating").fillna(_column(movies, "rating").median()),
        np.log1p(_column(movies, "awards").fillna(0.0)),
        _column(movies, "metacritic").notna().astype(np.float64),
        np.log1p(_column(movies, "box_office").fillna(0.0)),
        np.log1p(movies["cast"].map(len).astype(np.float64)) if "cast" in movies else None,
    ]
    total = sum(_standardise(np.asarray(s, dtype=np.float64)) for s in signals if s is not None)
    return _standardise(np.asarray(total, dtype=np.float64)).astype(np.float32)


def _column(movies: pd.DataFrame, name: str) -> pd.Series:
    if name in movies:
        return pd.to_numeric(movies[name], errors="coerce").astype(np.float64)
    return pd.Series(np.nan, index=movies.index, dtype=np.float64)


def _standardise(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values, nan=0.0)
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
