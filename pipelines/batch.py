"""MLproject entry point `batch`: recommendations for a file of queries, scored on Spark by the registered model.

    mlflow run . -e batch --env-manager local -P queries=queries.parquet -P output=answers.parquet \\
        [-P model_uri=models:/movie-recommender@champion] [-P master=local[*]]

Each row of the queries file (Parquet, or CSV with a header) is one query in the model's input columns (`title`,
`top_n`, `liked`, ...; pipelines/queries.py reads them); any other column is carried to the output untouched. The
model runs in `mlflow.pyfunc.spark_udf` (in this environment: env_manager "local") over the version the URI names
when the job starts, and answers each query as its JSON text, parsed here with an explicit schema.

The output is Parquet, one row per query, in the input's order: the input columns, `row_id` (the input's own column
of that name, else a unique id increasing with the input's order), `status` and `reason`, `recommendations` (an array
of flat structs: the film, `score`, `because_*`, `query_match_field`, `query_match_text`), `resolved` (the films the
query named, as matched), `unresolved` and `suggestions`. A row the model cannot answer (an unknown title, a value out
of range, a value of the wrong kind) comes back with its status and reason; it never stops the job.
The run logs the model URI, the version it resolved to, the master, and row counts and throughput.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from model.contract import EXPLAINED_FIELDS, FILM, FILM_FIELDS, QUERY_FIELDS, STATUS_INVALID, STATUS_OK
from model.engine import WARM_UP_ENV
from pipelines.queries import QUERY_DDL, read_queries
from pipelines.registry import CHAMPION, MODEL_NAME, registered_version
from pipelines.spark import LOCAL_MASTER, SparkUnavailable, spark_session

logger = logging.getLogger(__name__)

DEFAULT_MODEL_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
ROW_ID = "row_id"
OUTPUT_COLUMNS = ("status", "reason", "recommendations", "resolved", "unresolved", "suggestions")
PREDICT_PARAMS = {"mode": "recommend", "format": "json"}  # each answer as one JSON text: parsed by Spark, not Python

# A recommended film's fields as the model answers them (model.contract.FILM) and their Spark types.
SPARK_KINDS = {"int": "bigint", "number": "double", "text": "string", "names": "array<string>"}
FILM_TYPES = {name: SPARK_KINDS[spec.kind] for name, spec in FILM.items()}
_FILM_DDL = ", ".join(f"`{name}`: {kind}" for name, kind in FILM_TYPES.items())
_BECAUSE_DDL = ", ".join(f"`{name}`: array<string>" for name in EXPLAINED_FIELDS)
_MATCHED_DDL = "struct<id: bigint, title: string, year: bigint, matched: string, match_score: double>"
_BRIEF_DDL = "struct<id: bigint, title: string, year: bigint>"
# What the model answers for one recommendation query (model/engine.py), as far as the output carries it.
ANSWER_DDL = (
    f"status string, reason string, query {_MATCHED_DDL}, liked array<{_MATCHED_DDL}>, "
    f"disliked array<{_MATCHED_DDL}>, unresolved array<struct<field: string, input: {_BRIEF_DDL}>>, "
    f"suggestions array<{_BRIEF_DDL}>, recommendations array<struct<{_FILM_DDL}, score: double, "
    f"because: struct<{_BECAUSE_DDL}, query_match: struct<field: string, text: string>>>>"
)

NO_QUERY_COLUMNS = f"the queries file has none of the query columns ({', '.join(QUERY_FIELDS)}); it has: {{found}}"
COLUMN_CLASH = "the queries file has column(s) {names}, which the output uses: rename them"


class BatchError(ValueError):
    """The queries file cannot be scored as a whole (its rows are never the reason)."""


@dataclass(frozen=True)
class BatchConfig:
    queries: str
    output: str
    model_uri: str = DEFAULT_MODEL_URI
    master: str = LOCAL_MASTER  # empty: the one spark-submit chose


@dataclass(frozen=True)
class BatchResult:
    run_id: str
    model_uri: str  # the version scored, e.g. models:/movie-recommender/3
    rows: int
    statuses: dict[str, int]
    seconds: float


def run_batch(config: BatchConfig) -> BatchResult:
    """Score the queries file into the output folder; log the run. Raises BatchError for a file that cannot be read
    as queries, SparkUnavailable without Java."""
    started = time.perf_counter()
    with mlflow.start_run(run_name="batch") as run:
        scored_uri, version = _resolve(config.model_uri)
        with spark_session("movie-recommender batch", config.master) as spark:
            params = {
                "queries": config.queries,
                "output": config.output,
                "model_uri": config.model_uri,
                "master": config.master or spark.sparkContext.master,
            }
            mlflow.log_params({key: value for key, value in params.items() if key not in run.data.params})
            mlflow.log_params({"model_version": version or "none", "spark_master": spark.sparkContext.master})
            answers = score_queries(spark, read_input(spark, config.queries), scored_uri)
            answers.write.parquet(config.output)
            written = spark.read.parquet(config.output).groupBy("status").count().collect()
        statuses = {row["status"]: row["count"] for row in written}
        rows, ok, seconds = sum(statuses.values()), statuses.get(STATUS_OK, 0), time.perf_counter() - started
        mlflow.log_metrics(
            {
                "rows": rows,
                "rows_ok": ok,
                "rows_failed": rows - ok,
                **{f"rows_{status}": count for status, count in statuses.items() if status != STATUS_OK},
                "wall_seconds": round(seconds, 3),
                "rows_per_second": rows / seconds,
            }
        )
        logger.info("scored %d queries with %s in %.1f s: %s", rows, scored_uri, seconds, statuses)
        return BatchResult(run.info.run_id, scored_uri, rows, statuses, seconds)


def read_input(spark: SparkSession, path: str) -> DataFrame:
    """The queries file as a DataFrame: CSV (header, RFC 4180 quoting, every cell text) by its extension, else
    Parquet (a file or a folder of parts)."""
    if path.lower().endswith(".csv"):
        reader = spark.read.option("header", True).option("multiLine", True).option("escape", '"')
        frame = reader.csv(path)
    else:
        frame = spark.read.parquet(path)
    check_columns(frame.columns)
    return frame


def check_columns(columns: list[str]) -> None:
    """Raise BatchError unless a queries file with these columns can be scored: one query column at least, and
    none that the output names itself."""
    if not any(name in columns for name in QUERY_FIELDS):
        raise BatchError(NO_QUERY_COLUMNS.format(found=", ".join(columns) or "none"))
    clashes = [name for name in OUTPUT_COLUMNS if name in columns]
    if clashes:
        raise BatchError(COLUMN_CLASH.format(names=", ".join(clashes)))


def score_queries(spark: SparkSession, queries: DataFrame, model_uri: str) -> DataFrame:
    """One output row per query row (see the module's docstring), in the input's order."""
    if ROW_ID not in queries.columns:
        queries = queries.withColumn(ROW_ID, F.monotonically_increasing_id())
    parallelism = spark.sparkContext.defaultParallelism
    if queries.rdd.getNumPartitions() < parallelism:  # a small file is one partition: spread it over every core
        queries = queries.repartitionByRange(parallelism, ROW_ID).sortWithinPartitions(ROW_ID)
    present = [name for name in QUERY_FIELDS if name in queries.columns]
    read = F.pandas_udf(read_queries, "query string, problem string")(F.struct(*present))
    predict = mlflow.pyfunc.spark_udf(
        spark,
        model_uri,
        result_type="string",
        env_manager="local",
        params=PREDICT_PARAMS,
        extra_env={WARM_UP_ENV: "false"},  # the encoder loads only if a query has free text
    )
    carried = queries.columns
    # A row that cannot be read goes to the model as an empty query, answered `invalid` at once; its reason is the
    # reading problem. One pass over the rows, in their order, and no second plan to join back.
    read_frame = queries.withColumn("_read", read)
    answered = read_frame.withColumn("_answer", F.from_json(predict(F.from_json("_read.query", QUERY_DDL)), ANSWER_DDL))
    problem, answer = F.col("_read.problem"), F.col("_answer")
    return answered.select(
        *carried,
        F.when(problem.isNotNull(), F.lit(STATUS_INVALID)).otherwise(answer["status"]).alias("status"),
        F.coalesce(problem, answer["reason"]).alias("reason"),
        F.transform(answer["recommendations"], _recommendation).alias("recommendations"),
        _resolved(answer).alias("resolved"),
        F.transform(answer["unresolved"], _unresolved).alias("unresolved"),
        answer["suggestions"].alias("suggestions"),
    )


def _recommendation(film: Column) -> Column:
    """A recommendation as one flat struct: `because` spread into `because_<field>` and `query_match_*`."""
    because = film["because"]
    return F.struct(
        *(film[name].alias(name) for name in FILM_FIELDS),
        film["score"].alias("score"),
        *(because[name].alias(f"because_{name}") for name in EXPLAINED_FIELDS),
        because["query_match"]["field"].alias("query_match_field"),
        because["query_match"]["text"].alias("query_match_text"),
    )


def _resolved(answer: Column) -> Column:
    """The films the query named (`title`, then `liked`, then `disliked`), each with the field that named it."""

    def named(field: str) -> Callable[[Column], Column]:
        parts = ("id", "title", "year", "matched", "match_score")
        return lambda film: F.struct(F.lit(field).alias("field"), *(film[name].alias(name) for name in parts))

    title = F.filter(F.array(named("title")(answer["query"])), lambda film: film["id"].isNotNull())
    return F.concat(
        title, F.transform(answer["liked"], named("liked")), F.transform(answer["disliked"], named("disliked"))
    )


def _unresolved(entry: Column) -> Column:
    given = entry["input"]
    return F.struct(entry["field"].alias("field"), *(given[name].alias(name) for name in ("id", "title", "year")))


def _resolve(model_uri: str) -> tuple[str, str | None]:
    """(the URI to score with, the registered version): an alias is resolved once, so the whole job scores one
    version even if the alias moves meanwhile. Other URIs (runs:/, a path) are scored as given, with no version."""
    found = registered_version(model_uri)
    if found is None:
        return model_uri, None
    name, version = found
    return f"models:/{name}/{version}", version


def parse_args(argv: list[str] | None = None) -> BatchConfig:
    parser = argparse.ArgumentParser(prog="python -m pipelines.batch", description=__doc__.split("\n")[0])
    parser.add_argument("--queries", required=True, help="Parquet file or folder, or a .csv file, of queries")
    parser.add_argument("--output", required=True, help="Parquet folder to write (must not exist)")
    parser.add_argument("--model-uri", default=DEFAULT_MODEL_URI)
    parser.add_argument("--master", default="", help="Spark master; empty: spark-submit's, else local[*]")
    args = parser.parse_args(argv)
    return BatchConfig(args.queries, args.output, args.model_uri, args.master)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = run_batch(parse_args(argv))
    except (BatchError, SparkUnavailable, AnalysisException) as error:
        print(f"batch failed: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{count} {status}" for status, count in sorted(result.statuses.items()))
    print(f"{result.rows} queries scored by {result.model_uri} in {result.seconds:.1f} s ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
