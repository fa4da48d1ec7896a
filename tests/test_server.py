"""`tracking=server`: a real `mlflow server` on 127.0.0.1 with a temporary sqlite store, a sweep logged through HTTP."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import all_runs, dlkit_cli, free_port


def start_server(folder, port: int, store: str | None = None) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:port, answering: its store `store` (default: a sqlite file in folder, made
    as dlkit makes a new store: a copy of the migrated template, not MLflow's migrations, 1-1.6 s each time), its
    proxied artifacts in folder."""
    if store is None:
        from dlkit.tracking import store as tracking_store

        tracking_store.make_ready(f"sqlite:///{folder}/server.db")
        tracking_store.put_in_place(f"sqlite:///{folder}/server.db")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            store or f"sqlite:///{folder}/server.db",
            "--artifacts-destination",
            str(folder / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return wait_until_healthy(server, f"http://127.0.0.1:{port}")


def wait_until_healthy(server: subprocess.Popen, base: str) -> subprocess.Popen:
    """The server process, once base/health answers (within 90 s)."""
    deadline = time.time() + 90
    while time.time() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the mlflow server did not start: {server.poll()=}")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.communicate(timeout=30)


@pytest.mark.skipif(
    bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))),
    reason="test_postgres.py runs a sweep through a server with proxied artifacts, on PostgreSQL",
)
def test_a_sweep_logs_to_a_tracking_server_with_proxied_artifacts(tmp_path):
    port, artifacts = free_port(), tmp_path / "server-artifacts"
    server = start_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        outputs = tmp_path / "outputs"
        done = dlkit_cli(
            "-m",
            "seed=0,1",
            "tracking=server",
            f"tracking.uri={uri}",
            "trainer.max_epochs=2",
            "data.limit=48",
            f"paths.output_dir={outputs}",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert not (outputs / "mlflow.db").exists()  # nothing went to a local store

        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        runs = all_runs(client)
        (parent,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
        children = [r for r in runs if r is not parent]
        assert parent.info.status == "FINISHED" and sorted(c.info.run_name for c in children) == ["seed=0", "seed=1"]
        for child in children:
            assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert [m.step for m in client.get_metric_history(child.info.run_id, "val/loss")] == [0, 1]
            assert {"config.yaml", "best.pt"} <= {f.path for f in client.list_artifacts(child.info.run_id)}
            assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
        assert len(list(artifacts.rglob("best.pt"))) == 2  # and stored where the server keeps them
    finally:
        stop_server(server)


def test_a_server_that_is_not_there_fails_in_seconds_before_any_run(tmp_path):
    import socket

    refused = dlkit_cli("tracking=server", f"tracking.uri=http://127.0.0.1:{free_port()}", timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "cannot be reached (" in refused.stderr and "point tracking.uri at a running one" in refused.stderr
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        hung = dlkit_cli(
            "-m", "seed=0,1", "tracking=server", f"tracking.uri=http://127.0.0.1:{silent.getsockname()[1]}"
        )
        assert hung.returncode == 2 and "cannot be reached (timed out)" in hung.stderr, hung.stderr[-2000:]
        assert time.monotonic() - started < 30  # the health check's 5 s, plus start-up


def test_a_server_that_stops_mid_run_ends_the_run_process_and_the_run_resumes_later(tmp_path):
    from mlflow.tracking import MlflowClient

    from conftest import start_dlkit

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    # 48 samples an epoch: the training process is paused at its first epoch (its recorder goes on writing) and the
    # server stopped meanwhile, so the run is cut mid-run however fast it trains, and its resume is short
    job = start_dlkit(
        "tracking=server",
        f"tracking.uri={uri}",
        "data.limit=48",
        "trainer.max_epochs=20",
        f"paths.output_dir={tmp_path}",
    )
    try:
        next(line for line in job.stdout if line.startswith("epoch "))
        job.send_signal(signal.SIGSTOP)
        client, deadline = MlflowClient(uri), time.time() + 60
        while time.time() < deadline:  # the run's config.yaml is on the server: what a resume needs
            runs = all_runs(client)
            if runs and "config.yaml" in {f.path for f in client.list_artifacts(runs[0].info.run_id)}:
                break
            time.sleep(0.2)
        stop_server(server)
        job.send_signal(signal.SIGCONT)
        stopped = time.monotonic()
        output, _ = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert time.monotonic() - stopped < 60  # seconds, not MLflow's minutes of retries
    assert "cannot be reached" in output and "stays RUNNING there; once the server is back" in output
    run_id = output.split("dlkit resume ")[1].split()[0]
    server = start_server(tmp_path, port)  # back, with the same store
    try:
        assert MlflowClient(uri).get_run(run_id).info.status == "RUNNING"  # never marked done: it can go on
        resumed = dlkit_cli("resume", run_id, "tracking=server", f"tracking.uri={uri}", timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    finally:
        stop_server(server)
