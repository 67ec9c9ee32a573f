"""Shared-people similarity: TF-IDF over each film's directors, leading cast, writers and genres.

The sentence encoder blurs names into meaning; this matrix keeps them exact, so two films by the same director or
with the same stars meet even when their texts read differently. Tokens are prefixed by role ("d:Michael Mann",
"c:Al Pacino"), term frequency is sublinear and rows are L2-normalised: the inner product of two rows is their
cosine. Built with numpy and scipy only, so the served model needs no scikit-learn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

ROLES = (("directors", "d"), ("cast", "c"), ("writers", "w"), ("genres", "g"))


def film_tokens(movie: pd.Series | object, cast_per_film: int) -> list[str]:
    """Role-prefixed tokens of one film; `cast` must be ranked best-known first."""
    tokens: list[str] = []
    for column, prefix in ROLES:
        names = list(getattr(movie, column))
        if column == "cast":
            names = names[:cast_per_film]
        tokens += [f"{prefix}:{name}" for name in names]
    return tokens


def people_matrix(movies: pd.DataFrame, cast_per_film: int = 5) -> sparse.csr_matrix:
    """(n_films, n_tokens) CSR float32, rows L2-normalised (all-zero for a film with no people or genres)."""
    documents = [film_tokens(movie, cast_per_film) for movie in movies.itertuples(index=False)]
    return tfidf(documents)


def tfidf(documents: Sequence[Sequence[str]]) -> sparse.csr_matrix:
    """Smoothed-idf, sublinear-tf TF-IDF of token lists (the scikit-learn formula), rows L2-normalised."""
    vocabulary: dict[str, int] = {}
    rows, columns, counts = [], [], []
    for row, tokens in enumerate(documents):
        for token, count in Counter(tokens).items():
            rows.append(row)
            columns.append(vocabulary.setdefault(token, len(vocabulary)))
            counts.append(count)
    shape = (len(documents), max(len(vocabulary), 1))
    tf = sparse.csr_matrix((1.0 + np.log(np.asarray(counts, dtype=np.float64)), (rows, columns)), shape=shape)
    document_frequency = np.bincount(np.asarray(columns, dtype=np.int64), minlength=shape[1])
    idf = np.log((1 + shape[0]) / (1 + document_frequency)) + 1.0
    weighted = tf @ sparse.diags(idf)
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    normalised = sparse.diags(1.0 / np.where(norms == 0, 1.0, norms)) @ weighted
    return sparse.csr_matrix(normalised, dtype=np.float32)
