"""Shared-people similarity: TF-IDF over each film's directors, leading cast, writers and genres.

The sentence encoder blurs names into meaning; this matrix keeps them exact, so two films by the same director or
with the same stars meet even when their texts read differently. Tokens are prefixed by role ("d:Michael Mann",
"c:Al Pacino"), term frequency is sublinear and rows are L2-normalised: the inner product of two rows is their
cosine. Computed at build time with scikit-learn; the model stores the matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

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
    if not any(documents):
        return sparse.csr_matrix((len(documents), 1), dtype=np.float32)
    vectorizer = TfidfVectorizer(analyzer=lambda tokens: tokens, sublinear_tf=True, dtype=np.float32)
    return sparse.csr_matrix(vectorizer.fit_transform(documents), dtype=np.float32)
