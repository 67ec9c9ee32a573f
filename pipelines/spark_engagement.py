"""Co-engagement learned on Spark (`mlflow run . -e build -P engine=spark`): the same engagement part as the local
engine's `pipelines.engagement.learn`, computed by Spark's executors from the Parquet export of the events.

The events go to a Parquet file in a temporary folder, which Spark reads; every step is a DataFrame operation:
- each user's one value per film (`EVENT_VALUES`, the strongest), films outside the catalog dropped, heavy users
  bounded to `MAX_USER_FILMS` (the rules of pipelines/engagement.py, imported from there);
- each film's norm over users, and per pair of films sharing a user (a self-join on the user, each pair once) the
  dot product of their columns and the people positive about both;
- cosine = dot / (norm x norm), and each film's `k` best other films by it (ties to the lower catalog row), pairs
  whose cosine is exactly 0 left out after the cut, as `learn` leaves them out.

The kept pairs are written to Parquet by Spark and read back here, so neither the driver's JVM nor this process
holds them twice. `learn` takes implicit's top K+1 (the film itself included), whose ties fall by the order it meets
the films; here the cut is exact, so the two differ only where equal similarities straddle a film's cut.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from scipy import sparse

from model.engagement import Engagement
from pipelines.engagement import EVENT_VALUES, MAX_USER_FILMS, NEIGHBOURS_K, Events
from pipelines.spark import spark_session

logger = logging.getLogger(__name__)

EVENTS_NAME = "events.parquet"
PAIRS_NAME = "pairs.parquet"
SUPPORT_NAME = "support.parquet"
EVENTS_PER_PARTITION = 250_000


def spark_learn(events: Events, ids: np.ndarray, k: int = NEIGHBOURS_K, master: str = "") -> Engagement:
    """The engagement part for a catalog whose rows hold `ids`, as `learn(events.frame, ids, k)` makes it, on
    Spark at `master` (empty: spark-submit's, else local[*])."""
    n = len(ids)
    with tempfile.TemporaryDirectory(prefix="movie-recommender-engagement-") as name:
        folder = Path(name)
        events.frame.to_parquet(folder / EVENTS_NAME, index=False)
        catalog = pd.DataFrame({"film_id": np.asarray(ids, dtype=np.int64), "row": np.arange(n, dtype=np.int32)})
        with spark_session("movie-recommender co-engagement", master) as spark:
            spark.conf.set("spark.sql.shuffle.partitions", str(_partitions(spark, len(events.frame))))
            values = user_film_values(spark, spark.read.parquet(str(folder / EVENTS_NAME)), catalog).cache()
            values.groupBy("row").agg(F.sum(F.col("positive").cast("int")).alias("support")).write.parquet(
                str(folder / SUPPORT_NAME)
            )
            neighbours(values, k).write.parquet(str(folder / PAIRS_NAME))
            values.unpersist()
        support = pq.read_table(folder / SUPPORT_NAME).to_pandas()
        pairs = pq.read_table(folder / PAIRS_NAME)
        return _engagement(pairs, support, n) if len(support) else Engagement.empty(n)


def user_film_values(spark: SparkSession, events: DataFrame, catalog: pd.DataFrame) -> DataFrame:
    """(user, row, value, positive): each user's one value per catalog row, heavy users bounded, float32 as
    `user_film_values` stores it."""
    rows = F.broadcast(spark.createDataFrame(catalog))
    known = events.join(rows, "film_id").where(F.col("event").isin(list(EVENT_VALUES)))
    strongest = known.groupBy("user", "row").agg(F.max(_event_value(F.col("event"))).alias("value"))
    per_user = strongest.groupBy("user").agg(F.count("*").alias("films"))
    scale = F.least(F.lit(1.0), F.lit(float(MAX_USER_FILMS)) / F.col("films"))
    scaled = (F.col("value") * scale).cast("float").cast("double")
    return (
        strongest.join(per_user, "user")
        .select("user", "row", scaled.alias("value"))
        .withColumn("positive", F.col("value") > 0)
    )


def neighbours(values: DataFrame, k: int) -> DataFrame:
    """(row, other, similarity float, together int): each film's `k` most similar other films by the cosine of
    their columns over users, ties to the lower row; pairs of cosine 0 dropped after the cut."""
    norms = values.groupBy("row").agg(F.sqrt(F.sum(F.col("value") * F.col("value"))).alias("norm"))
    a, b = values.alias("a"), values.alias("b")
    both = (F.col("a.positive") & F.col("b.positive")).cast("int")
    product = (F.col("a.value") * F.col("b.value")).alias("product")
    pairs = (
        a.join(b, (F.col("a.user") == F.col("b.user")) & (F.col("a.row") < F.col("b.row")))
        .select(F.col("a.row").alias("row"), F.col("b.row").alias("other"), product, both.alias("both"))
        .groupBy("row", "other")
        .agg(F.sum("product").alias("dot"), F.sum("both").cast("int").alias("together"))
    )
    na = norms.select(F.col("row"), F.col("norm").alias("norm_a"))
    nb = norms.select(F.col("row").alias("other"), F.col("norm").alias("norm_b"))
    cosine = (F.col("dot") / (F.col("norm_a") * F.col("norm_b"))).cast("float")
    upper = pairs.join(F.broadcast(na), "row").join(F.broadcast(nb), "other")
    upper = upper.select("row", "other", cosine.alias("similarity"), "together")
    lower = upper.select(F.col("other").alias("row"), F.col("row").alias("other"), "similarity", "together")
    ranked = Window.partitionBy("row").orderBy(F.col("similarity").desc(), F.col("other").asc())
    return (
        upper.unionByName(lower)
        .withColumn("rank", F.row_number().over(ranked))
        .where((F.col("rank") <= k) & (F.col("similarity") != 0))
        .drop("rank")
    )


def _partitions(spark: SparkSession, events: int) -> int:
    """Shuffle partitions: a few per core, more for many events (Spark's default of 200 is slow for a few
    thousand events and small for tens of millions of pairs)."""
    return max(2 * spark.sparkContext.defaultParallelism, events // EVENTS_PER_PARTITION)


def _event_value(event: Column) -> Column:
    """The value of an event's name (EVENT_VALUES), as a Spark expression."""
    value = None
    for name, number in EVENT_VALUES.items():
        value = F.when(event == name, number) if value is None else value.when(event == name, number)
    return value


def _engagement(pairs: pa.Table, support: pd.DataFrame, n: int) -> Engagement:
    """The kept pairs as CSR matrices in catalog row order, indices sorted; support per catalog row."""
    rows = pairs.column("row").to_numpy()
    others = pairs.column("other").to_numpy()
    order = np.lexsort((others, rows))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    indices = others[order].astype(np.int32)
    similarity = sparse.csr_matrix(
        (pairs.column("similarity").to_numpy()[order].astype(np.float32), indices, indptr), shape=(n, n)
    )
    together = sparse.csr_matrix(
        (pairs.column("together").to_numpy()[order].astype(np.int32), indices.copy(), indptr.copy()), shape=(n, n)
    )
    counts = np.zeros(n, dtype=np.int32)
    counts[support["row"].to_numpy()] = support["support"].to_numpy()
    return Engagement(similarity, together, counts)
