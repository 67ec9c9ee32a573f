"""The REST gateway: a thin FastAPI app in front of `mlflow models serve`. Talks to the model over HTTP only."""
