"""Shared fixtures: a private outputs/ folder per test, quick overrides, and helpers to run the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Small and fast, but real: a slice of the digits, one or two epochs.
QUICK = ["trainer.max_epochs=2", "data.limit=120"]


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture
def store(outputs: Path):
    """A reader for the sqlite MLflow store under `outputs`."""
    from mlflow.tracking import MlflowClient

    return lambda: MlflowClient(tracking_uri=f"sqlite:///{outputs.resolve()}/mlflow.db")


def all_runs(client) -> list:
    experiments = client.search_experiments()
    if not experiments:
        return []
    return client.search_runs([e.experiment_id for e in experiments])


def dlkit_cli(
    *args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the installed `dlkit` command as a user would, in a fresh process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DLKIT_")}
    environment.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    command = [sys.executable, "-m", "dlkit", *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def start_dlkit(*args: str) -> subprocess.Popen:
    """Start `dlkit` to signal it later. SIGINT is reset to its default: a shell that runs the suite in the
    background starts it with SIGINT ignored, and Python would then never raise KeyboardInterrupt."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DLKIT_")}
    return subprocess.Popen(
        [sys.executable, "-m", "dlkit", *args],
        cwd=REPO,
        env={**environment, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
