"""Start-up of the served model: what a new scoring server costs before it answers (beside the one serving).

    python -m benchmarks.startup [--model-dir DIR] [--rounds 2]

1. The query encoder, each load in a fresh process: sentence-transformers (`model.encoder.load_encoder`) against the
   lean path the served model uses (`model.bert.BertEncoder`): wall and CPU seconds of imports + load, and one short
   text's encode time (p50 of 50).
2. A scoring server of the same model copy, started as `mlflow models serve` and as the supervisor starts it (the
   `mlflow models` group, `gateway.supervisor.MLFLOW_MODELS`), alternately: seconds to `/ping` and to a free-text
   answer, and CPU seconds of the leader process and of the uvicorn it starts.
3. The model's own load (`Recommender.from_artifacts` of the copy's artifacts, what `load_context` runs) in one
   process that has imported MLflow, as a scoring server has: with Python's garbage collector paused while the model
   builds its objects (`model.engine.collector_paused`, what the code does) and running, alternately; seconds of
   each load.
DIR: a model's local copy (default: the newest under `.run/models/`, which `make up` fills). Writes
benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import answers, cpu_s, descendants, detached, summary, wait_for, write_result
from gateway.supervisor import MLFLOW_MODELS, pick_port

TEXT = "space adventure with robots"
ENCODER_PROBE = """
import json, resource, sys, time
began = time.perf_counter()
folder, kind = sys.argv[1], sys.argv[2]
if kind == "sentence-transformers":
    from model.encoder import encode, load_encoder
    model = load_encoder(folder, device="cpu")
    run = lambda texts: encode(model, texts)
else:
    from model.bert import BertEncoder
    from model.encoder import MAX_TOKENS
    run = BertEncoder(folder, MAX_TOKENS)
loaded = time.perf_counter() - began
usage = resource.getrusage(resource.RUSAGE_SELF)
latencies = []
for _ in range(51):
    start = time.perf_counter()
    run([sys.argv[3]])
    latencies.append((time.perf_counter() - start) * 1000)
print(json.dumps({"load_s": loaded, "load_cpu_s": usage.ru_utime + usage.ru_stime, "latencies_ms": latencies[1:]}))
"""


LOAD_PROBE = """
import contextlib, gc, json, sys, time
import mlflow  # a scoring server's heap: MLflow and what it imports are there before the model loads
from mlflow.models import Model
import model.engine as engine
folder, rounds = sys.argv[1], int(sys.argv[2])
flavor = Model.load(folder).flavors["python_function"]
paths = {name: f"{folder}/{spec['path']}" for name, spec in flavor["artifacts"].items()}
arms = {"collector_paused": engine.collector_paused, "collector_running": contextlib.nullcontext}
engine.Recommender.from_artifacts(paths, flavor.get("config"))  # the files in the page cache for both arms
seconds = {arm: [] for arm in arms}
for _ in range(rounds):
    for arm, context in arms.items():
        engine.collector_paused = context
        began = time.perf_counter()
        engine.Recommender.from_artifacts(paths, flavor.get("config"))
        seconds[arm].append(round(time.perf_counter() - began, 3))
        gc.collect()
print(json.dumps(seconds))
"""


def model_load(model_dir: Path, rounds: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", LOAD_PROBE, str(model_dir), str(rounds)], check=True, capture_output=True, text=True
    ).stdout
    seconds = json.loads(out.strip().splitlines()[-1])
    medians = {arm: round(float(np.median(values)), 3) for arm, values in seconds.items()}
    return {
        "seconds": seconds,
        "median_s": medians,
        "paused_over_running": round(medians["collector_paused"] / medians["collector_running"], 2),
    }


def encoder_load(folder: Path, kind: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", ENCODER_PROBE, str(folder), kind, TEXT], check=True, capture_output=True, text=True
    ).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    return {
        "load_s": round(probe["load_s"], 2),
        "load_cpu_s": round(probe["load_cpu_s"], 2),
        "one_text": summary(probe["latencies_ms"]),
    }


def server_start(model_dir: Path, entry: tuple[str, ...]) -> dict[str, Any]:
    """Start a scoring server of `model_dir` with `entry` + `serve ...`; the seconds and CPU it took."""
    port = pick_port("127.0.0.1", 0)
    command = [*entry, "serve", "-m", str(model_dir), "--env-manager", "local", "--port", str(port)]
    began = time.monotonic()
    base = f"http://127.0.0.1:{port}"
    with detached(command) as popen:
        wait_for(lambda: answers(f"{base}/ping"), popen)
        ping_s = time.monotonic() - began
        body = json.dumps({"inputs": [{"query": TEXT, "top_n": 5}], "params": {"mode": "recommend"}}).encode()
        request = urllib.request.Request(f"{base}/invocations", body, {"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=120).read()
        answer_s = time.monotonic() - began
        children = descendants(popen.pid)
        return {
            "ping_s": round(ping_s, 2),
            "free_text_answer_s": round(answer_s, 2),
            "leader_cpu_s": round(cpu_s(popen.pid), 2),
            "uvicorn_cpu_s": round(cpu_s(*children), 2),
        }


def newest_copy() -> Path:
    copies = [p for p in Path(".run/models").glob("*") if (p / "MLmodel").is_file()]
    if not copies:
        raise SystemExit("no model copy under .run/models/: run `make up` first, or pass --model-dir")
    return max(copies, key=lambda p: p.stat().st_mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a model's local copy (default: newest in .run/models)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model_dir = (args.model_dir or newest_copy()).resolve()
    encoder = model_dir / "artifacts" / "encoder"
    entries = {"mlflow_cli": (sys.executable, "-m", "mlflow", "models"), "mlflow_models_group": MLFLOW_MODELS}
    figures: dict[str, Any] = {"model_dir": str(model_dir), "encoder": {}, "scoring_server": {}}
    for _ in range(args.rounds):  # alternately, so that a busier moment hits both
        for kind in ("sentence-transformers", "lean"):
            figures["encoder"].setdefault(kind, []).append(encoder_load(encoder, kind))
        for name, entry in entries.items():
            figures["scoring_server"].setdefault(name, []).append(server_start(model_dir, entry))
    figures["model_load"] = model_load(model_dir, rounds=5 * args.rounds)
    print(json.dumps(figures["model_load"]["median_s"]), "paused/running", figures["model_load"]["paused_over_running"])
    write_result("startup", figures)


if __name__ == "__main__":
    main()
