"""The recorder process: it writes what the training process sends, reports what the store refused,
and ends the runs of a training process that died without closing them."""

from __future__ import annotations

import json
import time

import pytest

from conftest import all_runs, start_dlkit
from dlkit.errors import RecorderGone
from dlkit.tracking import recorder


@pytest.fixture
def settings(outputs):
    return {
        "uri": f"sqlite:///{outputs.resolve()}/mlflow.db",
        "experiment": "recorder",
        "artifact_root": str(outputs / "artifacts"),
    }


def _wait_for(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


def test_every_metric_arrives_in_order_and_a_pause_writes_them_before_the_run_ends(settings, store):
    run = recorder.RecordedRun(settings, "metrics", {})
    for step in range(300):
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 300}, step=step)
    # a pause in the stream: what was sent is written while the run is still RUNNING (waited for, not slept on)
    seen = _wait_for(lambda: len(store().get_metric_history(run.run_id, "loss")) == 300)
    assert seen and store().get_run(run.run_id).info.status == "RUNNING"
    run.log_metrics({"loss": 0.0}, step=300)
    run.finish("FINISHED")
    history = store().get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == list(range(301)) and history[0].value == 1.0 and history[-1].value == 0.0
    assert len(store().get_metric_history(run.run_id, "acc")) == 300


def test_a_write_the_store_refuses_is_raised_at_the_next_call_that_waits(settings, store):
    run = recorder.RecordedRun(settings, "refused", {})
    run.log_params({"lr": 1})
    run.log_params({"lr": 2})  # MLflow refuses to change a param; the call itself does not wait for the answer
    with pytest.raises(recorder.RecorderError, match="lr"):
        run.finish("FINISHED")
    ended = store().get_run(run.run_id)
    assert ended.info.status == "FAILED" and ended.data.tags["dlkit.failure"] == "recording"  # its record is incomplete
    later = recorder.RecordedRun(settings, "later", {})  # the error belongs to its run, not to the next
    later.finish("FINISHED")
    assert store().get_run(later.run_id).info.status == "FINISHED"


def test_a_run_ended_without_waiting_is_ended_once_written_and_failed_if_a_write_failed(settings, store):
    # Opened detached (a sweep's job in the sweep's own process): created and ended without waiting.
    good = recorder.RecordedRun(settings, "good", {}, detached=True)
    bad = recorder.RecordedRun(settings, "bad", {}, detached=True)
    good.log_metrics({"loss": 0.5}, step=0)
    bad.log_params({"lr": 1})
    bad.log_params({"lr": 2})
    good.finish("FINISHED")
    bad.finish("FINISHED")
    with pytest.raises(recorder.RecorderError, match="lr"):
        recorder.flush()  # what a sweep does before it counts its runs
    assert store().get_run(good.run_id).info.status == "FINISHED" and store().get_run(good.run_id).data.metrics == {
        "loss": 0.5
    }
    failed = store().get_run(bad.run_id)
    assert failed.info.status == "FAILED" and "lr" in failed.data.tags["dlkit.failure_reason"]
    recorder.flush()  # told once


def test_a_recorder_that_died_is_named_and_the_next_run_gets_a_new_one(settings, store):
    run = recorder.RecordedRun(settings, "orphan", {})
    run.recorder.process.kill()
    run.recorder.process.wait()
    with pytest.raises(RecorderGone, match="recorder process was killed by SIGKILL"):
        run.finish("FINISHED")
    direct = run.reopened()  # written from this process: not left RUNNING
    direct.finish("KILLED")
    assert direct.run_id == run.run_id and store().get_run(run.run_id).info.status == "KILLED"
    fresh = recorder.RecordedRun(settings, "fresh", {})
    assert fresh.recorder is not run.recorder
    fresh.finish("FINISHED")
    assert store().get_run(fresh.run_id).info.status == "FINISHED"


def test_a_run_the_recorder_died_before_creating_is_created_from_this_process_with_its_name_and_tags(settings, store):
    import os
    import signal

    stopped = recorder.start()
    os.kill(stopped.process.pid, signal.SIGSTOP)  # it reads nothing more: the run's "open" is never handled
    run = recorder.RecordedRun(settings, "seed=0", {"factor.seed": "0"}, detached=True)
    assert run.recorder is stopped
    stopped.process.kill()
    stopped.process.wait()
    with pytest.raises(RecorderGone):
        run.finish("FINISHED")
    direct = run.reopened()
    direct.finish("KILLED")
    made = store().get_run(direct.run_id)
    assert made.info.run_name == "seed=0" and made.data.tags["factor.seed"] == "0"
    assert made.info.status == "KILLED"


def test_a_training_process_killed_outright_leaves_its_run_killed_not_running(outputs, store):
    job = start_dlkit("data.limit=48", "trainer.max_epochs=5000", f"paths.output_dir={outputs}")
    try:
        for line in job.stdout:
            if "epoch 1/" in line:
                break
        time.sleep(1.5)  # more epochs, and their metrics sent
        job.kill()  # SIGKILL: no handler runs, no checkpoint is written
        job.wait(timeout=30)
    finally:
        job.kill()
    (run,) = _wait_for(lambda: [r for r in all_runs(store()) if r.info.status != "RUNNING"])
    assert run.info.status == "KILLED"
    assert "killed outright" in run.data.tags["dlkit.killed_reason"]
    assert len(store().get_metric_history(run.info.run_id, "train/loss")) >= 2  # the epochs it finished are kept


def test_the_confusion_matrix_labels_every_class_and_keeps_counts_readable():
    from dlkit.tracking.figures import confusion_figure

    matrix = [[50 if t == p else 1 for p in range(10)] for t in range(10)]
    ax = confusion_figure(matrix).axes[0]
    assert list(ax.get_xticks()) == list(range(10)) and list(ax.get_yticks()) == list(range(10))
    colors = {text.get_text(): text.get_color() for text in ax.texts}
    assert colors == {"50": "white", "1": "black"}  # light text on the dark diagonal, dark text elsewhere


@pytest.mark.parametrize("recorder", ["true", "false"])
def test_each_run_logs_its_splits_as_mlflow_datasets_with_their_digests(recorder, tmp_path):
    from mlflow.tracking import MlflowClient

    from conftest import all_runs, dlkit_cli

    done = dlkit_cli(
        "-m",
        "seed=0,1",
        "trainer.max_epochs=1",
        "data.limit=64",
        f"tracking.recorder={recorder}",
        f"paths.output_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    children = [
        r for r in all_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")) if "mlflow.parentRunId" in r.data.tags
    ]
    seen = []
    for run in children:
        inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["digits/test", "digits/train", "digits/val"]
        contexts = {name: [t.value for t in d.tags if t.key == "mlflow.data.context"] for name, d in inputs.items()}
        assert contexts == {"digits/train": ["training"], "digits/val": ["validation"], "digits/test": ["testing"]}
        assert all(json.loads(d.dataset.profile) == {"num_rows": 64} for d in inputs.values())  # data.limit=64
        seen.append({name: d.dataset.digest for name, d in inputs.items()})
        assert not any(k.startswith("system/") for k in run.data.metrics)  # system metrics are opt-in
    assert len(seen) == 2 and seen[0] == seen[1]  # two seeds, the same data: the same digests


def test_a_splits_digest_changes_with_any_value():
    import torch

    from dlkit.data.tensors import Split

    x, y = torch.arange(12.0).view(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    same = Split(x.clone(), y.clone()).digest()
    assert Split(x, y).digest() == same and len(same) == 16
    changed = x.clone()
    changed[3, 1] += 1e-3
    assert Split(changed, y).digest() != same and Split(x, 1 - y).digest() != same


def test_system_metrics_are_sampled_into_the_run_when_asked(tmp_path):
    from mlflow.tracking import MlflowClient

    from conftest import all_runs, dlkit_cli

    # Sampled every 2 s (store.SYSTEM_EVERY_S) unless MLflow's own setting says otherwise: every 0.1 s, the run's
    # 40 epochs (about 1 s on a quiet machine) get several samples
    done = dlkit_cli(
        "tracking.system_metrics=true",
        "trainer.max_epochs=40",
        f"paths.output_dir={tmp_path}",
        env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = all_runs(client)
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert cpu and all(0 <= m.value <= 100 for m in cpu)
    assert run.data.metrics["system/system_memory_usage_megabytes"] > 0 and run.info.status == "FINISHED"


def test_messages_larger_than_the_pipe_are_taken_off_it_while_the_recorder_is_busy():
    """The training process never waits in send() for a recorder that is still writing the last job: a message
    (a model's weights) is read as soon as it arrives, and handled in order afterwards."""
    import queue
    import threading
    from multiprocessing import Pipe

    ours, theirs = Pipe()
    inbox = queue.SimpleQueue()
    threading.Thread(target=recorder._read, args=(theirs, inbox), daemon=True).start()
    weights = bytes(4 << 20)  # far more than a pipe holds: send() returns only once it is read
    sender = threading.Thread(target=lambda: [ours.send(("log_model", (n, weights), False)) for n in range(3)])
    sender.start()
    sender.join(timeout=60)  # nothing handles the messages meanwhile
    assert not sender.is_alive(), "send() waited for the recorder"
    ours.close()
    service = recorder.Service()
    received = list(iter(lambda: service.next_message(inbox), None))  # None: the training process closed its end
    assert [(op, args[0], len(args[1])) for op, args, _ in received] == [
        ("log_model", n, len(weights)) for n in range(3)
    ]


def test_a_new_sqlite_store_is_made_aside_and_put_in_place_only_when_first_used(tmp_path, monkeypatch):
    from dlkit.tracking import store as tracking_store

    monkeypatch.setattr(tracking_store.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    tracking_store.make_ready(uri)
    assert not (tmp_path / "outputs").exists()  # nothing where the store goes, until the command is checked
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    client = tracking_store.client(uri)  # first use: the store goes in place, migrated, and the aside copy is gone
    client.create_experiment("x")
    assert [e.name for e in client.search_experiments()] == ["x", "Default"]
    assert list((tmp_path / "tmp").iterdir()) == [] and sorted(p.name for p in (tmp_path / "outputs").iterdir()) == [
        "mlflow.db"
    ]
    # A store made by someone else meanwhile is kept; one never used is removed.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    tracking_store.make_ready(other)
    theirs = tracking_store._client(other)
    theirs.create_experiment("theirs")
    tracking_store.put_in_place(other)
    assert "theirs" in [e.name for e in theirs.search_experiments()]
    tracking_store.make_ready(f"sqlite:///{tmp_path / 'never.db'}")
    tracking_store.discard_made()
    assert list((tmp_path / "tmp").iterdir()) == [] and not (tmp_path / "never.db").exists()


def test_a_new_store_is_a_copy_of_the_migrated_template_with_this_folders_default_experiment(tmp_path, monkeypatch):
    """MLflow's migrations of a new sqlite store (1-1.4 s of CPU) run once per MLflow release: the store they made is
    kept in the user's cache and copied for the next new store, which is then the store MLflow would have made here
    (its Default experiment's artifacts under this process's ./mlruns, not the template maker's)."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    from dlkit.tracking import store as tracking_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for folder in ("first", "second", "mlflows"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "first")
    tracking_store.make_ready(f"sqlite:///{tmp_path / 'first' / 'mlflow.db'}")  # no template: migrated, then kept
    template = tracking_store._template()
    assert template.is_file() and template.parent == tmp_path / "cache" / "dlkit"
    with sqlite3.connect(template) as db:
        db.execute("CREATE TABLE copied_from_template (x)")  # a mark that the next store can only have by copying
    db.close()
    monkeypatch.chdir(tmp_path / "second")
    made = f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}"
    tracking_store.make_ready(made)
    tracking_store.put_in_place(made)
    MlflowClient(f"sqlite:///{tmp_path / 'mlflows' / 'mlflow.db'}").search_experiments()  # MLflow's own, here

    def contents(path):
        with sqlite3.connect(path) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            rows = {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in ("alembic_version", "experiments")}
        db.close()
        return tables, rows

    ours, theirs = contents(tmp_path / "second" / "mlflow.db"), contents(tmp_path / "mlflows" / "mlflow.db")
    assert ours[0] - theirs[0] == {"copied_from_template"} and theirs[0] <= ours[0]
    assert ours[1]["alembic_version"] == theirs[1]["alembic_version"]
    (default,) = ours[1]["experiments"]
    assert default[2] == str(tmp_path / "second" / "mlruns" / "0") == theirs[1]["experiments"][0][2]
    assert [e.name for e in tracking_store.client(made).search_experiments()] == ["Default"]


def test_a_command_that_fails_its_checks_leaves_no_store_anywhere(outputs, tmp_path):
    from conftest import dlkit_cli

    aside = tmp_path / "tmp"
    aside.mkdir()
    done = dlkit_cli("optimizer.lr=-1", f"paths.output_dir={outputs}", env={"TMPDIR": str(aside)})
    assert done.returncode == 2 and "optimizer.lr" in done.stderr
    assert not (outputs / "mlflow.db").exists()
    # The recorder had a store made aside for this command: it removes it once the command has ended.
    assert _wait_for(lambda: not list(aside.glob("dlkit-store-*"))), list(aside.iterdir())


def test_bytes_are_logged_as_artifacts_without_waiting(settings, store, tmp_path):
    run = recorder.RecordedRun(settings, "bytes", {})
    run.log_bytes(b"\x00weights", "best.pt")
    run.log_bytes(b"more", "folder/x.bin")
    run.finish("FINISHED")
    for artifact, content in [("best.pt", b"\x00weights"), ("folder/x.bin", b"more")]:
        path = store().download_artifacts(run.run_id, artifact, str(tmp_path))
        assert open(path, "rb").read() == content


def test_a_message_that_cannot_be_read_ends_the_recorder_as_a_closed_pipe_would(capfd):
    import queue
    import threading
    from multiprocessing import Pipe

    ours, theirs = Pipe()
    inbox = queue.SimpleQueue()
    reader = threading.Thread(target=recorder._read, args=(theirs, inbox), daemon=True)
    reader.start()
    ours.send(("set_tags", (0, {"a": "b"}), False))
    ours.send_bytes(b"not a pickle")
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert inbox.get(timeout=5)[0] == "set_tags" and inbox.get(timeout=5) is None
    assert "could not read a message" in capfd.readouterr().err
