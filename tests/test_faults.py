"""Bad input and faults from a user's own folder, machine and servers: each is one line that names the culprit and
the fix, exit 2 for what the user typed, no traceback, nothing written or overwritten."""

from __future__ import annotations

import contextlib
import os
import re
import time

import pytest

from conftest import FOLDER_MODES_HOLD, dlkit_cli, free_port
from dlkit import config
from dlkit.errors import ConfigError
from dlkit.plan import Plan


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["threads=0"], "threads must be a whole number ≥ 1, got 0."),
        (["model.hidden=[64,0]"], "model.hidden[1] must be a whole number ≥ 1, got 0."),
        (["model.hidden=64"], "model.hidden must be a list, e.g. [64], got 64."),
        (["model=cnn", "model.fc=[0]"], "model.fc[0] must be a whole number ≥ 1, got 0."),
        (
            ["model=cnn", "model.blocks=[{channels: 0, kernel: 3}]"],
            "model.blocks[0].channels must be a whole number ≥ 1",
        ),
        (["model=cnn", "model.blocks=[{channels: 4, kernel: 0}]"], "model.blocks[0].kernel must be a whole number ≥ 1"),
        (["model=lenet5", "model.channels=[6,0]"], "model.channels[1] must be a whole number ≥ 1, got 0."),
        (["model=resnet", "model.channels=[0]"], "model.channels[0] must be a whole number ≥ 1, got 0."),
        (["data=imbalanced", "data.weights=[0.9,x]"], "data.weights[1] must be a number, got 'x'."),
    ],
)
def test_values_that_pass_a_type_but_cannot_work_are_refused_when_planned(overrides, message):
    with pytest.raises(ConfigError) as err:
        Plan.from_config(config.compose(overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_layer_of_width_zero_is_refused_before_anything_runs(tmp_path):
    done = dlkit_cli("model.hidden=[0]", f"paths.output_dir={tmp_path / 'outputs'}", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "dlkit: error: model.hidden[0] must be a whole number ≥ 1, got 0."
    assert not (tmp_path / "outputs").exists()


def test_a_model_too_large_for_memory_is_refused_with_its_size_before_any_is_allocated(tmp_path):
    (tmp_path / "kept").mkdir()  # an output folder that was there: it stays; what the command made below it goes
    for outputs in (tmp_path / "new" / "outputs", tmp_path / "kept"):
        done = dlkit_cli("model.hidden=[1000000000,100]", f"paths.output_dir={outputs}", timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.rglob("*")] == ["kept"]  # no run folder, no store: nothing ran
    assert re.fullmatch(
        r"dlkit: error: model 'mlp' has 165,000,001,110 parameters: its weights and their gradients alone need"
        r" 1229\.3 GiB, and this machine has \d+\.\d GiB free; choose a smaller model"
        r" \(e\.g\. fewer model\.hidden units\)\.",
        done.stderr.strip(),
    )


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "optimizer.lr=${oops}",
            "optimizer.lr: Interpolation key 'oops' not found; an interpolation ${...} names a key of the config",
        ),
        ("tracking.experiment=${nope:x}", "tracking.experiment: Unsupported interpolation type nope; an interpolation"),
        ("tracking.experiment=''", "tracking.experiment must be a non-empty string, got ''."),
    ],
)
def test_config_text_that_cannot_be_used_is_one_line_before_anything_runs(override, message, tmp_path):
    done = dlkit_cli(override, f"paths.output_dir={tmp_path / 'outputs'}", timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"dlkit: error: {message}") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "folder,message",
    [
        (
            "/proc/dlkit/outputs",
            "paths.output_dir=/proc/dlkit/outputs cannot be written: /proc: it takes no new folders",
        ),
        ("a_file/outputs", "paths.output_dir=a_file/outputs cannot be made: {tmp}/a_file is a file, not a folder"),
        pytest.param(
            "read_only/outputs",
            "paths.output_dir=read_only/outputs cannot be written: {tmp}/read_only: Permission denied",
            marks=pytest.mark.skipif(not FOLDER_MODES_HOLD, reason="root writes to a read-only folder (no setpriv)"),
        ),
    ],
)
def test_an_output_folder_that_cannot_be_written_is_named_before_training(folder, message, tmp_path):
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "read_only").mkdir(mode=0o555)
    before = sorted(tmp_path.rglob("*"))
    for multirun in ((), ("-m", "seed=0,1"))[: 2 if folder.startswith("a_file") else 1]:  # a sweep: the same check
        done = dlkit_cli(
            *multirun, f"paths.output_dir={folder}", "data.limit=8", cwd=tmp_path, timeout=120, as_a_user=True
        )
        assert done.returncode == 2, done.stderr[-2000:]
        expected = message.format(tmp=tmp_path) + "; choose one you can write: paths.output_dir=<folder>."
        assert done.stderr.strip() == f"dlkit: error: {expected}"
    assert sorted(tmp_path.rglob("*")) == before and (tmp_path / "a_file").read_text() == "mine"


def test_a_store_file_that_is_not_sqlite_is_named_and_left_as_it_was(tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    junk = bytes(range(256)) * 12  # a foreign file where the store belongs
    (outputs / "mlflow.db").write_bytes(junk)
    expected = (
        f"dlkit: error: the tracking store {outputs}/mlflow.db is not an SQLite database (it is left as it is): move it"
        " aside to start a new store there, or point paths.output_dir (or tracking.uri) at another folder."
    )
    for command in (("data.limit=8",), ("-m", "seed=0,1", "data.limit=8"), ("report",), ("resume", "0123abcd")):
        done = dlkit_cli(*command, cwd=tmp_path, timeout=120)
        assert done.returncode == 2 and done.stderr.strip() == expected, (command, done.stderr[-2000:])
    assert (outputs / "mlflow.db").read_bytes() == junk and [p.name for p in outputs.iterdir()] == ["mlflow.db"]


def test_a_database_store_that_cannot_be_reached_is_named_within_seconds(tmp_path):
    port = free_port()
    started = time.monotonic()
    done = dlkit_cli(f"tracking.uri=postgresql://dlkit:secret@127.0.0.1:{port}/mlflow", "data.limit=8", cwd=tmp_path)
    assert time.monotonic() - started < 30  # SQLAlchemy's own retries took about two minutes
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"dlkit: error: the postgresql tracking database at 127.0.0.1:{port} cannot be")
    assert len(done.stderr.strip().splitlines()) == 1 and "secret" not in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_recorder_killed_mid_run_leaves_its_run_killed_and_resumable_and_says_so_in_one_line(outputs, store):
    """SIGKILL to the MLflow recorder process while the run trains (the kernel's OOM killer, an admin's kill -9):
    the training process ends the run KILLED itself, with its last snapshot, and stops with one line; the run
    is resumed to the end."""
    import signal
    import subprocess

    from conftest import all_runs, start_dlkit

    job = start_dlkit("trainer.max_epochs=400", "data.limit=96", f"paths.output_dir={outputs}")
    try:
        next(line for line in job.stdout if "epoch 1/" in line)
        recorder = subprocess.run(["pgrep", "-P", str(job.pid), "-f", "dlkit.tracking.recorder"], capture_output=True)
        os.kill(int(recorder.stdout.split()[0]), signal.SIGKILL)
        output, _ = job.communicate(timeout=120)  # stdout and stderr
    finally:
        job.kill()
    (run,) = all_runs(store())
    assert job.returncode == 1 and "Traceback" not in output
    assert output.strip().splitlines()[-1] == (
        f"dlkit: run {run.info.run_id} is KILLED: the MLflow recorder process was killed by SIGKILL; continue it"
        f" with: dlkit resume {run.info.run_id}"
    )
    assert run.info.status == "KILLED"
    assert run.data.tags["dlkit.killed_reason"] == "the MLflow recorder process was killed by SIGKILL"
    resumed = dlkit_cli("resume", run.info.run_id, f"paths.output_dir={outputs}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "from its checkpoint" in resumed.stdout
    (run,) = all_runs(store())
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics


def test_a_recorder_killed_mid_sweep_costs_one_job_that_a_relaunch_resumes(outputs, store):
    """The recorder killed while a sweep's first job trains: that job ends KILLED, the second runs with a new
    recorder, the parent ends FAILED naming the first; the same command again resumes it and skips the second."""
    import signal
    import subprocess

    from conftest import all_runs, start_dlkit

    command = ["-m", "seed=0,1", "trainer.max_epochs=300", "data.limit=96", f"paths.output_dir={outputs}"]
    sweep = start_dlkit(*command)
    try:
        next(line for line in sweep.stdout if "epoch 1/" in line)
        recorder = subprocess.run(["pgrep", "-P", str(sweep.pid), "-f", "dlkit.tracking.recorder"], capture_output=True)
        os.kill(int(recorder.stdout.split()[0]), signal.SIGKILL)
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    assert sweep.returncode == 1 and "Traceback" not in output
    assert (
        "[job 1/2] dlkit: run " in output and "is KILLED: the MLflow recorder process was killed by SIGKILL" in output
    )
    assert "not finished: seed=0: " in output
    statuses = {r.info.run_name: r.info.status for r in all_runs(store())}
    assert statuses == {"seed=0": "KILLED", "seed=1": "FINISHED", "sweep seed=0,1": "FAILED"}
    again = dlkit_cli(*command)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished" in again.stdout and "from its checkpoint" in again.stdout
    statuses = {r.info.run_name: r.info.status for r in all_runs(store())}
    assert statuses == {"seed=0": "FINISHED", "seed=1": "FINISHED", "sweep seed=0,1": "FINISHED"}


def test_the_python_api_checks_the_folder_and_the_store_as_the_command_does(tmp_path):
    import dlkit

    with pytest.raises(ConfigError, match=r"^paths.output_dir=/proc/dlkit/outputs cannot be written: /proc"):
        dlkit.run(["paths.output_dir=/proc/dlkit/outputs", "data.limit=8"])
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "mlflow.db").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="is not an SQLite database"):
        dlkit.run([f"paths.output_dir={outputs}", "data.limit=8"])
    assert (outputs / "mlflow.db").read_bytes() == b"not a database" * 100


def read_only(folder) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def writable(folder) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


@pytest.mark.skipif(not FOLDER_MODES_HOLD, reason="root writes to a read-only folder (no setpriv)")
def test_an_output_folder_made_read_only_mid_sweep_stops_it_in_one_line_and_a_relaunch_runs_the_rest(outputs, store):
    """The folder that holds the store and the jobs' folders made read-only after a sweep's first job: the sweep
    stops with a line that names the folder and the reason (the job's folder, or the store's, whichever is written
    first), no traceback; made writable again, the same command finishes the sweep, each job one run."""
    from conftest import all_runs, start_dlkit

    command = ["-m", "seed=0,1", "trainer.max_epochs=60", "data.limit=96", f"paths.output_dir={outputs}"]
    sweep = start_dlkit(*command, as_a_user=True)
    try:
        next(line for line in sweep.stdout if "1 of 2 jobs done" in line)
        read_only(outputs)
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
        writable(outputs)
    assert sweep.returncode == 1 and "Traceback" not in output and "HYDRA_FULL_ERROR" not in output, output[-3000:]
    said = [line for line in output.splitlines() if "dlkit: " in line]
    assert said and all(f"{outputs}" in line and "(Permission denied)" in line for line in said), said
    assert "launch the same command again" in said[0]
    again = dlkit_cli(*command, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    statuses = sorted((r.info.run_name, r.info.status) for r in all_runs(store()))
    assert statuses == [(n, "FINISHED") for n in ("seed=0", "seed=1", "sweep seed=0,1")]


def stop_mid_run(outputs, fault) -> tuple[int, str]:
    """A run started, `fault()` done once its first epoch is printed; its exit code and what it printed."""
    from conftest import start_dlkit

    job = start_dlkit("trainer.max_epochs=200", "data.limit=96", f"paths.output_dir={outputs}")
    try:
        next(line for line in job.stdout if "epoch 1/" in line)
        fault()
        output, _ = job.communicate(timeout=120)
    finally:
        job.kill()
    return job.returncode, output


def test_a_store_file_overwritten_mid_run_is_named_in_one_line_and_left_as_it_is(outputs):
    """Something overwrites the sqlite store while a run trains. SQLite may still write a page of it after that (its
    commit rewrites the header), so the store reads as not SQLite, or as damaged: either way one line that names it;
    dlkit neither deletes nor replaces the file."""
    database = outputs / "mlflow.db"
    junk = bytes(range(256)) * 4096

    def overwrite():
        database.write_bytes(junk)

    code, output = stop_mid_run(outputs, overwrite)
    assert code == 1 and "Traceback" not in output, output[-3000:]
    line = output.strip().splitlines()[-1]
    named = rf"dlkit: the tracking store {re.escape(str(database))} (is no longer an SQLite database|is damaged)"
    assert re.match(named, line)
    assert "something overwrote it while run " in line and "restore it from a copy" in line
    assert database.is_file() and database.stat().st_size >= len(junk)


def test_a_store_sqlite_calls_damaged_is_named_so_even_with_its_header_intact(tmp_path):
    from dlkit.tracking import store

    database = tmp_path / "mlflow.db"
    database.write_bytes(store.SQLITE_HEADER + bytes(4096))  # SQLite rewrote its header after the damage
    failure = RuntimeError("(sqlite3.DatabaseError) database disk image is malformed\n[SQL: SELECT ...]")
    assert store.lost(f"sqlite:///{database}", failure, ["0123abcd"]) == (
        f"the tracking store {database} is damaged (database disk image is malformed): something overwrote it while"
        " run 0123abcd trained (dlkit leaves it as it is); restore it from a copy, or move it aside and start again"
    )
    assert store.lost(f"sqlite:///{database}", RuntimeError("UNIQUE constraint failed"), ["0123abcd"]) is None


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MB tmpfs: a disk this test can fill (mounting one needs root; skipped where it cannot)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_disk_that_fills_mid_run_stops_it_in_one_line_and_the_run_resumes_once_there_is_space(small_disk):
    from mlflow.tracking import MlflowClient

    from conftest import all_runs

    outputs, filler = small_disk / "outputs", small_disk / "filler"

    def fill():
        with filler.open("wb") as file, contextlib.suppress(OSError):
            while True:
                file.write(bytes(1 << 16))
                file.flush()

    code, output = stop_mid_run(outputs, fill)
    assert code == 1 and "Traceback" not in output, output[-3000:]
    (line,) = [line for line in output.splitlines() if line.startswith("dlkit: ")]
    assert line.startswith(f"dlkit: the disk that holds the tracking store {outputs}/mlflow.db is full; run ")
    assert "stays RUNNING there; once there is space, continue it with: dlkit resume " in line
    filler.unlink()
    resumed = dlkit_cli("resume", line.split("dlkit resume ")[1].split()[0], f"paths.output_dir={outputs}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (run,) = all_runs(MlflowClient(f"sqlite:///{outputs}/mlflow.db"))
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
