"""`tracking=server`: a real `mlflow server` on 127.0.0.1 with a temporary sqlite store, a sweep logged through HTTP."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import all_runs, dlkit_cli
from test_ui import free_port


def test_a_sweep_logs_to_a_tracking_server_with_proxied_artifacts(tmp_path):
    port, artifacts = free_port(), tmp_path / "server-artifacts"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(artifacts),
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
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
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
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)
