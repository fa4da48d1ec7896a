"""The MLflow store: a client for its URI, the experiment (created once, with its artifacts under outputs/)."""
from __future__ import annotations

import functools
import logging
import re
from pathlib import Path


@functools.lru_cache(maxsize=8)  # one client (one connection pool) per store, however many runs
def client(uri: str):
    from mlflow.tracking import MlflowClient

    # After the import: mlflow sets its own loggers up when imported. Store migrations are not news.
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client, name: str, artifact_root: str | Path | None) -> str:
    """The experiment's id, creating it (artifacts under artifact_root/<name>) if it does not exist."""
    from mlflow.exceptions import MlflowException

    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if artifact_root is not None:
        location = (Path(artifact_root).resolve() / re.sub(r"[^\w.-]+", "_", name)).as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it between our look-up and our create
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
