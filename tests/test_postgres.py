"""The README's team set-up for real: a throwaway PostgreSQL cluster (Debian's postgresql package; skipped when it
is absent) behind `mlflow server` with proxied artifacts, a sweep whose two jobs write through it at once."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import all_runs, dlkit_cli, free_port
from test_search import race
from test_server import start_server, stop_server

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)), None)
pytestmark = pytest.mark.skipif(BIN is None, reason="needs PostgreSQL: apt-get install postgresql")


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1 only, whose superuser is `mlflow`; stopped and removed
    after the module's tests. PostgreSQL refuses to run as root: as root, its user runs it. Yields run(command)."""
    folder = Path(tempfile.mkdtemp(prefix="dlkit-pg-"))  # not under pytest's root-only temporary folder
    as_owner = []
    if os.getuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    bin_dir, port, data = BIN.parent, free_port(), folder / "data"

    def run(command: str, *args: str) -> None:
        done = subprocess.run([*as_owner, str(bin_dir / command), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    run("initdb", "-D", str(data), "-A", "trust", "-U", "mlflow")
    start = ["-D", str(data), "-l", str(folder / "log"), "-w"]
    run("pg_ctl", *start, "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start")
    try:
        yield lambda command, *args: run(command, *args, "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow"), port
    finally:
        run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres(cluster, request):
    """A database of its own for each test, in the module's cluster, owned by `mlflow`: its URI."""
    run, port = cluster
    name = "mlflow_" + request.node.name.removeprefix("test_")[:40]
    run("createdb", name)
    return f"postgresql://mlflow@127.0.0.1:{port}/{name}"


def test_a_sweep_through_a_server_on_postgresql_from_two_processes_at_once(postgres, tmp_path):
    from mlflow.tracking import MlflowClient

    port = free_port()
    server = start_server(tmp_path, port, store=postgres)  # artifacts proxied to tmp_path/server-artifacts
    uri = f"http://127.0.0.1:{port}"
    try:
        done = dlkit_cli(
            "-m",
            "hydra/launcher=parallel",  # two worker processes, each with its recorder, writing at once
            "seed=0,1",
            "tracking=server",
            f"tracking.uri={uri}",
            "trainer.max_epochs=2",
            "data.limit=48",
            f"paths.output_dir={tmp_path / 'outputs'}",
            model=True,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to a local store
        client = MlflowClient(uri)
        runs = all_runs(client)
        (parent,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
        children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)
        assert parent.info.status == "FINISHED" and [c.info.run_name for c in children] == ["seed=0", "seed=1"]
        for child in children:
            run_id = child.info.run_id
            assert child.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
            for key in ("train/loss", "val/loss", "val/acc"):
                assert sorted(m.step for m in client.get_metric_history(run_id, key)) == [0, 1], key
            assert {"config.yaml", "overrides.yaml", "best.pt", "learning_curves.png"} <= {
                a.path for a in client.list_artifacts(run_id)
            }
            assert client.get_logged_model(child.data.tags["dlkit.model_id"]).status == "READY"
            assert {d.dataset.name for d in child.inputs.dataset_inputs} == {
                "digits/train",
                "digits/val",
                "digits/test",
            }
        assert len(list((tmp_path / "server-artifacts").rglob("best.pt"))) == 2  # proxied to the server's store
        import psycopg

        with psycopg.connect(postgres) as database:  # the runs are rows in PostgreSQL
            (count,) = database.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'").fetchone()
        assert count == 3
    finally:
        stop_server(server)


def test_search_workers_on_postgresql_run_exactly_n_trials(postgres, tmp_path):
    """A study on a team's PostgreSQL server: four workers racing for the last trials take turns by an advisory
    lock, and the study ends at exactly n_trials."""
    url = postgres.replace("postgresql://", "postgresql+psycopg://")  # SQLAlchemy's name for the psycopg 3 driver
    trials = race(tmp_path, f"hydra.sweeper.storage={url}")
    assert len(trials) == 12 and {t.state.name for t in trials} == {"COMPLETE"}


def test_runs_logging_the_same_data_sets_at_once_all_record_them(postgres, tmp_path):
    """MLflow's SQL store looks a data set up, then inserts it: runs of a parallel sweep logging the same splits at
    once race for its unique key (a CI failure of the sweep above). Each run still records all three."""
    import threading

    from dlkit.tracking.store import StoreRun

    url = postgres.replace("postgresql://", "postgresql+psycopg://")
    splits = [
        {"name": f"digits/{s}", "digest": "d1", "source": "{}", "rows": "10", "context": s}
        for s in ("train", "val", "test")
    ]
    failures, runs = [], []
    for round_ in range(4):
        batch = [StoreRun(url, "race", str(tmp_path), f"r{round_}.{i}", {}) for i in range(4)]
        datasets = [{**splits[0], "digest": f"d{round_}"}, *splits[1:]]  # a new data set each round races again

        def log(run, datasets=datasets):
            try:
                run.log_inputs(datasets)
            except Exception as failure:  # noqa: BLE001 (the test reports what failed)
                failures.append(repr(failure)[-300:])

        threads = [threading.Thread(target=log, args=(run,)) for run in batch]
        [t.start() for t in threads]
        [t.join() for t in threads]
        runs += batch
    assert not failures, failures[0]
    for run in runs:
        logged = run.client.get_run(run.run_id).inputs.dataset_inputs
        assert sorted(d.dataset.name for d in logged) == ["digits/test", "digits/train", "digits/val"]
