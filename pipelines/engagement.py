"""Learning co-engagement at build time: the events a build reads, and the item-item model it fits on them.

    mlflow run . -e build -P events=sqlite:///.run/events.db   # the store `make up` writes (the default)
    mlflow run . -e build -P events=/data/events.parquet       # an export (columns user, film_id, event, timestamp)
    mlflow run . -e build -P events=none                       # content only

Every positive or negative event counts once per user and film, as the strongest the user gave it (like 1.0 over
click 0.5 over dismiss -0.5; `shown` says nothing about taste and is not read): 1,000 likes from one user move the
model as much as one like. A user with more than `MAX_USER_FILMS` films weighs each of them `MAX_USER_FILMS / n`, so
no history, however long, counts for more than that many films. Events without a user are grouped by their answer
(`request_id`): what one anonymous client engaged with in one answer went together too.

The model is `implicit`'s item-item cosine (`CosineRecommender`), the one of its models that served the protocols
best (docs/quality.md); its similarity matrix, the co-like counts and the support per film become the model's
`engagement` part (model/engagement.py).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from model.engagement import EMPTY_SOURCE, Engagement

logger = logging.getLogger(__name__)

DEFAULT_EVENTS = "sqlite:///.run/events.db"  # the store `make up` writes, relative to the project
EVENT_VALUES = {"like": 1.0, "click": 0.5, "dismiss": -0.5}  # `shown` is not read
MAX_USER_FILMS = 200
NEIGHBOURS_K = 400  # co-engaged films kept per film (400 served P3 better than 100 on the validation half)
COLUMNS = ("user", "film_id", "event", "timestamp")  # an export's columns; timestamp: UTC datetime or Unix seconds


class EngagementError(ValueError):
    """The events cannot be read (an unknown source, a file without the columns); the message says which."""


@dataclass(frozen=True)
class Events:
    """The events a build learns from: one row per (user, film_id, event, timestamp), and where they came from."""

    frame: pd.DataFrame
    source: str

    def summary(self) -> dict[str, str | int]:
        """What a version saw: source, counts and time range (the build logs it on its run)."""
        stamps = self.frame["timestamp"]
        return {
            "events_source": self.source,
            "events_read": len(self.frame),
            "events_users": int(self.frame["user"].nunique()),
            "events_films": int(self.frame["film_id"].nunique()),
            "events_from": stamps.min().isoformat() if len(stamps) else "",
            "events_to": stamps.max().isoformat() if len(stamps) else "",
        }


def read_events(source: str, until: datetime | None = None) -> Events | None:
    """The positive and negative events of `source` (an event store URI, or a .parquet / .csv export), those
    before `until` only when given; None for `none`, and for the default store file when it does not exist yet."""
    if not source or source.strip().lower() == EMPTY_SOURCE:
        return None
    if "://" in source:
        frame = _from_store(source, until)
        if frame is None:
            return None
    else:
        frame = _from_file(Path(source))
        if until is not None:
            frame = frame[frame["timestamp"] < pd.Timestamp(until)]
    frame = frame[frame["event"].isin(list(EVENT_VALUES))].reset_index(drop=True)
    from events.store import display_url

    return Events(frame, display_url(source) if "://" in source else str(Path(source).resolve()))


def _from_store(uri: str, until: datetime | None) -> pd.DataFrame | None:
    from sqlalchemy import func, select

    from events.store import EventStore, engine_url
    from events.tables import feedback

    url = engine_url(uri)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        logger.info("no event store at %s yet: building from content only", uri)
        return None
    store = EventStore(uri)
    try:
        unit = func.coalesce(feedback.c.user, "request:" + feedback.c.request_id)
        query = select(unit.label("user"), feedback.c.film_id, feedback.c.event, feedback.c.at.label("timestamp"))
        query = query.where(feedback.c.event.in_(list(EVENT_VALUES)))
        if until is not None:
            query = query.where(feedback.c.at < until)
        with store.engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).all(), columns=list(COLUMNS))
    finally:
        store.dispose()
    return _typed(frame, uri)


def _from_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise EngagementError(f"no events file at {path}")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        raise EngagementError(f"events are read from an event store URI, a .parquet or a .csv file, not {path}")
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise EngagementError(f"{path} has no column {', '.join(missing)} (it needs {', '.join(COLUMNS)})")
    return _typed(frame[list(COLUMNS)], str(path))


def _typed(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    stamps = frame["timestamp"]
    if pd.api.types.is_numeric_dtype(stamps):
        stamps = pd.to_datetime(stamps, unit="s", utc=True)
    else:
        stamps = pd.to_datetime(stamps, utc=True, format="ISO8601")
    return pd.DataFrame(
        {
            "user": frame["user"].astype(str),
            "film_id": pd.to_numeric(frame["film_id"]).astype("int64"),
            "event": frame["event"].astype(str),
            "timestamp": stamps,
        }
    )


def user_film_values(events: pd.DataFrame, ids: np.ndarray) -> tuple[sparse.csr_matrix, int]:
    """(users x catalog rows) matrix of each user's one value per film (module docstring), float32, heavy users
    bounded; and how many events named a film the catalog lacks."""
    order = np.argsort(ids, kind="stable")
    slots = np.clip(np.searchsorted(ids[order], events["film_id"].to_numpy()), 0, max(len(ids) - 1, 0))
    rows = order[slots] if len(ids) else np.zeros(len(events), dtype=np.int64)
    known = (ids[rows] == events["film_id"].to_numpy()) if len(ids) else np.zeros(len(events), dtype=bool)
    values = events.loc[known, ["user", "event"]].assign(row=rows[known])
    values["value"] = values["event"].map(EVENT_VALUES).astype(np.float64)
    # The strongest event a user gave a film: a like over a click over a dismiss, each counted once.
    strongest = values.groupby(["user", "row"], sort=True)["value"].max().reset_index()
    users, user_index = np.unique(strongest["user"].to_numpy(), return_inverse=True)
    per_user = np.bincount(user_index, minlength=len(users))
    scale = np.minimum(1.0, MAX_USER_FILMS / np.maximum(per_user, 1))
    data = strongest["value"].to_numpy() * scale[user_index]
    matrix = sparse.csr_matrix(
        (data.astype(np.float32), (user_index, strongest["row"].to_numpy())), shape=(len(users), len(ids))
    )
    return matrix, int((~known).sum())


def learn(events: pd.DataFrame, ids: np.ndarray, k: int = NEIGHBOURS_K) -> Engagement:
    """The engagement part for a catalog whose rows hold `ids`: `implicit`'s item-item cosine over
    `user_film_values`, its `k` most similar films per film (the film itself left out), the co-like counts of those
    pairs and each film's support."""
    values, unknown = user_film_values(events, ids)
    if unknown:
        logger.info("%d events name films this catalog lacks: not learned from", unknown)
    n = len(ids)
    if values.nnz == 0:
        return Engagement.empty(n)
    similarity = cosine_neighbours(values, k)
    positive = (values > 0).astype(np.int32).tocsc()
    support = np.asarray(positive.sum(axis=0)).ravel().astype(np.int32)
    return Engagement(similarity, co_counts(positive, similarity), support)


def cosine_neighbours(values: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """(films x films) cosine similarity of the films' columns, each film's `k` best other films (float32)."""
    from implicit.nearest_neighbours import CosineRecommender
    from implicit.utils import ParameterWarning

    model = CosineRecommender(K=k + 1, num_threads=0)  # one more: each film is its own nearest, dropped below
    with warnings.catch_warnings():  # its own normalised copy is COO, which it converts back itself
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(values.tocsr(), show_progress=False)
    similarity = sparse.csr_matrix(model.similarity, dtype=np.float32)
    similarity.setdiag(0)
    similarity.eliminate_zeros()
    similarity = top_k_rows(similarity, k)
    return similarity


def co_counts(positive: sparse.csc_matrix, pattern: sparse.csr_matrix, chunk: int = 4096) -> sparse.csr_matrix:
    """People who engaged positively with both films, for each entry of `pattern` (same pattern, int32). The
    product is taken a chunk of films at a time and cut to the pattern at once, so memory follows the pattern."""
    n = pattern.shape[0]
    data = np.zeros(pattern.nnz, dtype=np.int32)
    by_film = positive.T.tocsr()  # (films, users)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        data[pattern.indptr[start] : pattern.indptr[stop]] = block_co_counts(
            by_film[start:stop], positive, pattern[start:stop]
        )
    return sparse.csr_matrix((data, pattern.indices.copy(), pattern.indptr.copy()), shape=pattern.shape)


def block_co_counts(by_film: sparse.csr_matrix, positive: sparse.spmatrix, pattern: sparse.csr_matrix) -> np.ndarray:
    """For a block of films (`by_film`: their rows of the positive (films x users) matrix), the people positive
    about both films of each entry of `pattern` (the block's rows, sorted indices), in the pattern's order."""
    block = (by_film @ positive).tocsr()  # (block, films) co-like counts
    mask = pattern.astype(np.int32)
    mask.data[:] = 1
    # mask + counts on the mask: exactly the pattern's entries, in its order, each one more than its count (an
    # element-wise product and a sum, where looking each pair up in `block` took five times as long).
    aligned = (mask + block.multiply(mask)).tocsr()
    aligned.sort_indices()
    return aligned.data - 1


def top_k_rows(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Each row's `k` largest entries, ties at the cut to the lower column, the rest dropped; indices sorted. A
    partition per row: a full sort of every row's candidates cost more than the products that made them."""
    lengths = np.diff(matrix.indptr)
    keep = np.ones(matrix.nnz, dtype=bool)
    for row in np.flatnonzero(lengths > k):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        values, columns = matrix.data[lo:hi], matrix.indices[lo:hi]
        kth = np.partition(values, hi - lo - k)[hi - lo - k]  # the k-th largest
        ties = np.flatnonzero(values == kth)
        ties = ties[np.argsort(columns[ties], kind="stable")[: k - int((values > kth).sum())]]
        kept = values > kth
        kept[ties] = True
        keep[lo:hi] = kept
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, k), out=indptr[1:])  # a cut row keeps exactly k
    kept = sparse.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)
    kept.sort_indices()
    return kept
