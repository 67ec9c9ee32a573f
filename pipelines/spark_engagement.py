"""Co-engagement learned on Spark (`mlflow run . -e build -P engine=spark`): the same engagement part as the local
engine's `pipelines.engagement.learn`, computed by Spark's executors from the Parquet export of the events.

- Each user's one value per film (`EVENT_VALUES`, the strongest), films outside the catalog dropped and heavy users
  bounded to `MAX_USER_FILMS` (the rules of pipelines/engagement.py, imported from there), are DataFrame operations
  over the raw events.
- Those values, one entry per user and film, become a sparse (users x films) matrix that is broadcast to the
  executors, as the batch job ships its model. Each task takes blocks of `BLOCK_FILMS` films and multiplies their
  columns with the whole matrix (scipy's sparse product): the cosine of each film of the block with every film
  sharing a user, and each film's `k` best other films by it (ties to the lower catalog row); then, for those pairs
  only, the people positive about both. No pair list is ever shuffled: a task's memory follows its block, and more
  executors take more blocks at once.

The kept pairs are written to Parquet by Spark and read back here. `learn` takes implicit's top K+1 (the film itself
included), whose ties fall by the order it meets the films; here the cut is exact, so the two differ only where
equal similarities straddle a film's cut. The matrix must fit each executor (about 8 bytes per user and film:
10 million events, 80 MB); the pairs need not fit anywhere but the result.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import Broadcast
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse

from model.engagement import Engagement
from pipelines.engagement import EVENT_VALUES, MAX_USER_FILMS, NEIGHBOURS_K, Events, block_co_counts, top_k_rows
from pipelines.spark import spark_session

logger = logging.getLogger(__name__)

EVENTS_NAME = "events.parquet"
VALUES_NAME = "values.parquet"
PAIRS_NAME = "pairs.parquet"
BLOCK_FILMS = 2048  # films per product: a block's candidate pairs (a few thousand per film) stay in the tens of MB
PAIRS_SCHEMA = "row int, other int, similarity float, together int"


def spark_learn(events: Events, ids: np.ndarray, k: int = NEIGHBOURS_K, master: str = "") -> Engagement:
    """The engagement part for a catalog whose rows hold `ids`, as `learn(events.frame, ids, k)` makes it, on
    Spark at `master` (empty: spark-submit's, else local[*])."""
    n = len(ids)
    with tempfile.TemporaryDirectory(prefix="movie-recommender-engagement-") as name:
        folder = Path(name)
        events.frame.to_parquet(folder / EVENTS_NAME, index=False)
        catalog = pd.DataFrame({"film_id": np.asarray(ids, dtype=np.int64), "row": np.arange(n, dtype=np.int32)})
        with spark_session("movie-recommender co-engagement", master) as spark:
            values = user_film_values(spark, spark.read.parquet(str(folder / EVENTS_NAME)), catalog)
            values.write.parquet(str(folder / VALUES_NAME))
            matrix = values_matrix(pq.read_table(folder / VALUES_NAME), n)
            if matrix.nnz == 0:
                return Engagement.empty(n)
            neighbours(spark, matrix, k).write.parquet(str(folder / PAIRS_NAME))
        positive = (matrix > 0).astype(np.int32)
        support = np.asarray(positive.sum(axis=0)).ravel().astype(np.int32)
        return _engagement(folder / PAIRS_NAME, support, n)


def user_film_values(spark: SparkSession, events: DataFrame, catalog: pd.DataFrame) -> DataFrame:
    """(user, row, value): each user's one value per catalog row, heavy users bounded, float32 as
    `pipelines.engagement.user_film_values` stores it."""
    rows = F.broadcast(spark.createDataFrame(catalog))
    known = events.join(rows, "film_id").where(F.col("event").isin(list(EVENT_VALUES)))
    strongest = known.groupBy("user", "row").agg(F.max(_event_value(F.col("event"))).alias("value"))
    per_user = strongest.groupBy("user").agg(F.count("*").alias("films"))
    scale = F.least(F.lit(1.0), F.lit(float(MAX_USER_FILMS)) / F.col("films"))
    return strongest.join(per_user, "user").select("user", "row", (F.col("value") * scale).cast("float").alias("value"))


def values_matrix(values: pa.Table, n: int) -> sparse.csr_matrix:
    """The (users x n films) float32 matrix of `user_film_values`' rows, users in any order (a cosine between
    films does not depend on it)."""
    users = pc.dictionary_encode(values.column("user")).combine_chunks().indices.to_numpy()
    rows = values.column("row").to_numpy()
    data = values.column("value").to_numpy()
    return sparse.csr_matrix((data, (users, rows)), shape=(int(users.max(initial=-1)) + 1, n), dtype=np.float32)


def neighbours(spark: SparkSession, matrix: sparse.csr_matrix, k: int) -> DataFrame:
    """(row, other, similarity, together): each film's `k` most similar other films by the cosine of their columns
    over users, ties to the lower row, and the people positive about both; computed a block of films per task."""
    n = matrix.shape[1]
    by_film = matrix.T.tocsr()  # (films, users)
    norms = np.sqrt(np.asarray(by_film.multiply(by_film).sum(axis=1)).ravel())
    normalised = sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ by_film
    normalised = normalised.astype(np.float32).tocsr()
    positive = (matrix > 0).astype(np.int32).tocsr()
    shared = spark.sparkContext.broadcast((normalised, normalised.T.tocsr(), positive.T.tocsr(), positive))
    blocks = -(-n // BLOCK_FILMS)
    starts = spark.range(0, blocks * BLOCK_FILMS, BLOCK_FILMS, numPartitions=max(1, blocks)).withColumnRenamed(
        "id", "start"
    )
    return starts.mapInPandas(partial(_blocks, shared=shared, k=k), PAIRS_SCHEMA)


def _blocks(batches: Iterator[pd.DataFrame], shared: Broadcast, k: int) -> Iterator[pd.DataFrame]:
    normalised, by_user, positive_by_film, positive = shared.value
    n = normalised.shape[0]
    for batch in batches:
        for start in batch["start"].tolist():
            stop = min(start + BLOCK_FILMS, n)
            cosine = (normalised[start:stop] @ by_user).tocsr()  # (block, films)
            cosine.setdiag(0, k=start)  # each film is its own nearest: left out
            cosine.eliminate_zeros()
            kept = top_k_rows(cosine, k)
            together = block_co_counts(positive_by_film[start:stop], positive, kept)
            rows = np.repeat(np.arange(start, stop, dtype=np.int32), np.diff(kept.indptr))
            yield pd.DataFrame({"row": rows, "other": kept.indices.astype(np.int32),
                                "similarity": kept.data.astype(np.float32), "together": together})  # fmt: skip


def _event_value(event: Column) -> Column:
    """The value of an event's name (EVENT_VALUES), as a Spark expression."""
    value = None
    for name, number in EVENT_VALUES.items():
        value = F.when(event == name, number) if value is None else value.when(event == name, number)
    return value


def _engagement(folder: Path, support: np.ndarray, n: int) -> Engagement:
    """The kept pairs Spark wrote to `folder` as CSR matrices in catalog row order, indices sorted, sharing their
    indices; read a batch at a time into arrays of their final size, so the pairs are held once."""
    files = sorted(folder.glob("*.parquet"))  # part-00000, ...: the tasks' blocks, in catalog row order
    total = sum(pq.ParquetFile(file).metadata.num_rows for file in files)
    rows = np.empty(total, dtype=np.int32)
    indices = np.empty(total, dtype=np.int32)
    similarity = np.empty(total, dtype=np.float32)
    together = np.empty(total, dtype=np.int32)
    at = 0
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches():
            size = batch.num_rows
            for array, name in ((rows, "row"), (indices, "other"), (similarity, "similarity"), (together, "together")):
                array[at : at + size] = batch.column(name).to_numpy()
            at += size
    if total and (rows[1:] < rows[:-1]).any():  # not in row order after all: sort
        order = np.lexsort((indices, rows))
        rows, indices, similarity, together = rows[order], indices[order], similarity[order], together[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    del rows
    return Engagement(
        sparse.csr_matrix((similarity, indices, indptr), shape=(n, n)),
        sparse.csr_matrix((together, indices, indptr), shape=(n, n)),
        support,
    )
