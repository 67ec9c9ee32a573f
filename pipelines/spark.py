"""The Spark session of the pipelines that run on Spark (`batch`, `build -P engine=spark`): where it runs, and how the
project's code reaches its executors.

The master is, in order: the one given (`-P master=spark://host:7077`, `yarn`, `local[4]`), the one `spark-submit`
chose when it started this process, else `local[*]` (every core of this machine). A local master runs the Python
workers with this process's interpreter, so the project's environment needs no activation; on a cluster the
executors need the same environment (requirements.txt), and `model` and `pipelines` are shipped to them as a zip.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark import SparkConf
from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

LOCAL_MASTER = "local[*]"
IN_PROCESS = re.compile(r"local(\[[^\]]*\])?")  # local, local[4], local[*], local[4,2]: executors in the driver
JAVA_MISSING = "Spark needs Java 17 (apt-get install openjdk-17-jre-headless), and neither `java` nor JAVA_HOME is set"
REPO = Path(__file__).resolve().parents[1]
SHIPPED_PACKAGES = ("model", "pipelines")


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message says what to install."""


def java_available() -> bool:
    """Whether a Java runtime for Spark can be found: `java` on PATH, or JAVA_HOME set to a folder with one."""
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or bool(home and (Path(home) / "bin" / "java").is_file())


@contextmanager
def spark_session(app: str, master: str = "") -> Iterator[SparkSession]:
    """A Spark session for `app` on `master` (empty: spark-submit's, else local[*]), stopped when the block ends:
    a cluster's executors are released as soon as the pipeline's Spark work is done."""
    if not java_available():
        raise SparkUnavailable(JAVA_MISSING)
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started this process and chose the master
    builder = SparkSession.builder.appName(app)
    if master or not submitted:
        builder = builder.master(master or LOCAL_MASTER)
    chosen = master or (SparkConf().get("spark.master", "") if submitted else LOCAL_MASTER)
    if chosen.startswith("local"):  # this machine (in this process, or local-cluster's executor processes)
        # the workers run this interpreter (PySpark reads only the variable; its default is `python3` on PATH)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    # pandas 3 works for what the pipelines do (Arrow batches in and out); PySpark warns about it at every conversion
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logger.info("Spark %s on %s", spark.version, spark.sparkContext.master)
    with tempfile.TemporaryDirectory(prefix="movie-recommender-code-") as folder:
        try:
            if not IN_PROCESS.fullmatch(spark.sparkContext.master):  # executors in other processes or machines
                ship_code(spark, Path(folder))
            yield spark
        finally:
            spark.stop()


def ship_code(spark: SparkSession, folder: Path) -> None:
    """Put the project's packages on the executors' Python path: a zip of their .py files, written to `folder`,
    which must last as long as the session."""
    archive = folder / "movie_recommender_code.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for package in SHIPPED_PACKAGES:
            for path in sorted((REPO / package).rglob("*.py")):
                bundle.write(path, path.relative_to(REPO))
    spark.sparkContext.addPyFile(str(archive))
