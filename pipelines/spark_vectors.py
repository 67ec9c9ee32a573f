"""Movie texts embedded on Spark (`mlflow run . -e build -P engine=spark`): the same vectors as the local engine, made
by the executors. Only how the vectors are computed differs; the build does everything after them in one way.

The texts are spread over the executors (their position kept), each Python worker loads the encoder once and keeps
it for every later task (`_encoder`), and encodes its Arrow batches (`mapInPandas`). The vectors and token counts come
back to the driver in the texts' order, and are kept as Parquet in the build's cache folder (`spark-vectors.parquet`,
replaced by each Spark build that encodes something).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark import TaskContext

from model.encoder import default_encoder_path, encode, load_encoder, pick_device, token_counts
from pipelines.spark import spark_session

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PARQUET_NAME = "spark-vectors.parquet"
OUTPUT_DDL = "position bigint, vector array<float>, tokens bigint"


def spark_vectors(
    texts: list[str], batch_size: int, device: str, folder: Path | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(vectors (len(texts), dim) float32 L2-normalised, token counts (len(texts),), where they were computed).
    `device`: the executors' torch device; empty: CUDA where an executor has it, else CPU."""
    texts_frame = pd.DataFrame({"position": np.arange(len(texts), dtype=np.int64), "text": texts})
    embed = functools.partial(embed_batches, batch_size=batch_size, device=device)
    with spark_session("movie-recommender build") as spark:
        where = f"spark {spark.sparkContext.master}"
        frame = spark.createDataFrame(texts_frame).repartition(spark.sparkContext.defaultParallelism)  # one per core
        # to the driver, which builds the index from every vector anyway: no file system shared with the executors
        table = frame.mapInPandas(embed, OUTPUT_DDL).toPandas().sort_values("position", ignore_index=True)
    if not np.array_equal(table["position"].to_numpy(), np.arange(len(texts))):
        raise RuntimeError(f"Spark returned {len(table)} vectors for {len(texts)} texts")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        table.to_parquet(folder / PARQUET_NAME, index=False)
    vectors = np.ascontiguousarray(np.stack(table["vector"].to_list()), dtype=np.float32)
    return vectors, table["tokens"].to_numpy(dtype=np.int64), where


def embed_batches(batches: Iterator[pd.DataFrame], batch_size: int, device: str) -> Iterator[pd.DataFrame]:
    """On an executor: (position, text) batches in, (position, vector, tokens) batches out."""
    encoder = _encoder(device)
    for batch in batches:
        texts = batch["text"].tolist()
        vectors, tokens = encode(encoder, texts, batch_size=batch_size), token_counts(encoder, texts)
        yield pd.DataFrame({"position": batch["position"], "vector": list(vectors), "tokens": tokens})


@functools.cache
def _encoder(device: str) -> SentenceTransformer:
    """The encoder of this Python worker, loaded by its first task; torch uses the cores Spark gives a task."""
    import torch

    context = TaskContext.get()
    torch.set_num_threads(context.cpus() if context is not None else 1)
    return load_encoder(default_encoder_path(), device or pick_device())
