"""B4: the design this project replaces, rebuilt for comparison: one FastAPI process, a FAISS IndexFlatL2 in memory,
the film's stored vector looked up and `top_n + 1` searched, and one synchronous `mlflow.start_run()` per request.

    python -m benchmarks.original_design --model-uri models:/movie-recommender@champion --port 8100

It loads the same catalog and vectors as the champion (its artifacts), so both designs answer from the same data.
"""

from __future__ import annotations

import argparse
import os

import faiss
import mlflow
import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class Request(BaseModel):
    title: str
    top_n: int = 5


def create_app(model_uri: str, request_tracking_uri: str | None = None) -> FastAPI:
    folder = mlflow.artifacts.download_artifacts(model_uri)
    if request_tracking_uri:  # request runs to another tracking server than the one holding the model
        mlflow.set_tracking_uri(request_tracking_uri)
    movies = pd.read_parquet(f"{folder}/artifacts/movies.parquet")
    stored = faiss.read_index(f"{folder}/artifacts/index.faiss")
    vectors = faiss.rev_swig_ptr(faiss.downcast_index(stored.index).get_xb(), stored.ntotal * stored.d)
    vectors = np.array(vectors).reshape(stored.ntotal, stored.d)
    index = faiss.IndexFlatL2(stored.d)
    index.add(vectors)
    row_of_title = {title.lower(): row for row, title in enumerate(movies["title"])}
    mlflow.set_experiment("original-design-requests")
    app = FastAPI()

    @app.post("/movies/recommendations/")
    def recommend(request: Request) -> dict:
        row = row_of_title.get(request.title.lower())
        if row is None:
            raise HTTPException(404, "unknown title")
        _, found = index.search(vectors[row : row + 1], request.top_n + 1)
        rows = [int(r) for r in found[0] if r != row][: request.top_n]
        films = movies.iloc[rows]
        results = [
            {"id": int(m.id), "title": m.title, "year": int(m.year) if pd.notna(m.year) else None}
            for m in films.itertuples()
        ]
        with mlflow.start_run():
            mlflow.log_param("title", request.title)
            mlflow.log_param("top_n", request.top_n)
            mlflow.log_metric("n_returned", len(results))
        return {"recommendations": results}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default="models:/movie-recommender@champion")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--request-tracking-uri", help="where the request runs go (default: MLFLOW_TRACKING_URI)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    app = create_app(args.model_uri, args.request_tracking_uri)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
