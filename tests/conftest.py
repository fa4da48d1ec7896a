"""Shared fixtures: a private outputs/ folder per test, quick overrides, and helpers to run the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Small and fast, but real: a slice of the digits, one or two epochs.
QUICK = ["trainer.max_epochs=2", "data.limit=120"]
# Dropout and a step schedule make a resumed run's equality a real test: both must pick up where they were.
RESUMABLE = ["dropout=inverted", "scheduler=step", "scheduler.step_size=40", "data.limit=48", "trainer.max_epochs=200"]
VOLATILE = {"train/epoch_seconds"}


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture
def store(outputs: Path):
    """A reader for the sqlite MLflow store under `outputs`."""
    from mlflow.tracking import MlflowClient

    return lambda: MlflowClient(tracking_uri=f"sqlite:///{outputs.resolve()}/mlflow.db")


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on 127.0.0.1 now (held together while they are picked, so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def all_runs(client) -> list:
    experiments = client.search_experiments()
    if not experiments:
        return []
    return client.search_runs([e.experiment_id for e in experiments])


NO_MODEL = "++tracking.log_model=false"
NOT_TRAINING = ("report", "ui", "resume", "list", "check", "--help", "-h", "--cfg", "--version")


def without_model(args: tuple[str, ...]) -> tuple[str, ...]:
    """A training command (or `dlkit studies`) without the logged MLflow model: a model costs its recorder process
    about 3.5 s of CPU once (importing torch, mlflow.pytorch and torch.export), which a user's run hides on the
    other core but a suite of some 150 short dlkit processes on two busy cores pays in full. The tests of the
    model ask for it (model=True), and so do the browser, PostgreSQL and plugin tests; dlkit.run keeps it."""
    if args and args[0] in NOT_TRAINING:
        return args
    return (*args, NO_MODEL)


# Root, without the capabilities that let it write where a folder's mode says no: how a test run as root (as CI runs)
# sees a read-only folder as a user does. Empty where the suite is not root, or setpriv (util-linux) is missing.
AS_A_USER = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)
FOLDER_MODES_HOLD = os.geteuid() != 0 or bool(AS_A_USER)


def dlkit_cli(
    *args: str,
    cwd: Path = REPO,
    env: dict | None = None,
    timeout: float = 300,
    model: bool = False,
    as_a_user: bool = False,
) -> subprocess.CompletedProcess:
    """Run the installed `dlkit` command as a user would, in a fresh process (model: see without_model; as_a_user:
    folder modes apply, even to root)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DLKIT_")}
    environment.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    command = [sys.executable, "-m", "dlkit", *(args if model else without_model(args))]
    command = [*AS_A_USER, *command] if as_a_user else command
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def start_dlkit(*args: str, model: bool = False, env: dict | None = None, as_a_user: bool = False) -> subprocess.Popen:
    """Start `dlkit` to signal it later. SIGINT is reset to its default: a shell that runs the suite in the
    background starts it with SIGINT ignored, and Python would then never raise KeyboardInterrupt."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DLKIT_")}
    return subprocess.Popen(
        [*(AS_A_USER if as_a_user else []), sys.executable, "-m", "dlkit", *(args if model else without_model(args))],
        cwd=REPO,
        env={**environment, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def signal_after_first_epoch(job: subprocess.Popen, signum: int) -> str:
    """Send `signum` to a dlkit started by start_dlkit once it has printed its first epoch; its later output, once it
    has exited."""
    try:
        for line in job.stdout:
            if "epoch 1/" in line:
                break
        job.send_signal(signum)
        output, _ = job.communicate(timeout=60)
    finally:
        job.kill()
    return output


def final_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k not in VOLATILE}


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory) -> dict[str, float]:
    """The final metrics of the RESUMABLE run, run once without interruption: every resumed run (after SIGINT, SIGTERM,
    a SLURM pre-emption) must end with exactly these."""
    from mlflow.tracking import MlflowClient

    outputs = tmp_path_factory.mktemp("full") / "outputs"
    full = dlkit_cli(*RESUMABLE, "tracking.run_name=full", f"paths.output_dir={outputs}")
    assert full.returncode == 0, full.stderr[-2000:]
    (run,) = all_runs(MlflowClient(f"sqlite:///{outputs}/mlflow.db"))
    return final_metrics(run)


# The modules whose tests take the longest (real servers, clusters, browsers, killed processes) go first: pytest-xdist
# then spreads them over its workers early, instead of one worker finishing them alone while the other is idle.
SLOW_FIRST = ("test_postgres", "test_server", "test_browser", "test_slurm", "test_faults", "test_robustness")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.module.__name__ not in SLOW_FIRST)  # stable: the order within each part stays
