"""`dlkit ui` serves the real store through a real MLflow server, on 127.0.0.1 only."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import dlkit
from conftest import QUICK, REPO, free_port


def listening_addresses(port: int) -> set[str]:
    """Local addresses of sockets listening on `port`, read from the kernel's table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_ui_serves_the_store_on_localhost(tmp_path):
    outputs = tmp_path / "outputs"
    result = dlkit.run([*QUICK, f"paths.output_dir={outputs}", "tracking.experiment=ui-test"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLKIT_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "dlkit", "ui", "--port", str(port), f"paths.output_dir={outputs}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={result.run_id}"
        deadline, body = time.time() + 90, None
        while time.time() < deadline and server.poll() is None:
            try:
                body = json.load(urllib.request.urlopen(url, timeout=2))
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "the MLflow UI did not answer"
        assert body["run"]["info"]["status"] == "FINISHED"
        experiment_url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id={result.experiment_id}"
        experiment = json.load(urllib.request.urlopen(experiment_url, timeout=5))["experiment"]
        # MLflow 3 shows this experiment in its model-training view, not its GenAI one
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert (
        f"ui-test: http://127.0.0.1:{port}/#/experiments/{result.experiment_id}/runs?workflowType=machine_learning"
        in output
    )
