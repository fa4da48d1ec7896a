"""A multirun is one MLflow parent run with a tagged child per job, with every launcher."""

import signal

import pytest

import slurm_cluster
from conftest import all_runs, dlkit_cli, signal_after_first_epoch, start_dlkit

TINY = ["trainer.max_epochs=1", "data.limit=48"]


def parent_and_children(client):
    runs = all_runs(client)
    parents = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    (parent,) = parents
    children = [r for r in runs if r is not parent]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.data.tags["dlkit.sweep_id"] == parent.info.run_id for c in children)
    return parent, children


@pytest.mark.parametrize(
    "launcher, activations",
    [
        pytest.param([], "relu,tanh", id="basic"),
        pytest.param(
            ["hydra/launcher=submitit_local"],
            "tanh",
            id="submitit_local",
            marks=pytest.mark.skipif(  # the same plugin; tests/test_slurm.py runs it on a real cluster
                slurm_cluster.missing() is None, reason="test_slurm.py runs submitit on a real SLURM cluster"
            ),
        ),
    ],
)
def test_a_sweep_is_one_parent_with_a_tagged_child_per_job(launcher, activations, outputs, store):
    """2×2 on the basic launcher; 1×2 on submitit's, which starts a process per job (each imports torch anew). The
    parallel launcher's sweep: tests/test_robustness.py, four jobs on two workers in one store."""
    done = dlkit_cli(
        "-m", *launcher, f"activation={activations}", "norm=none,batch", *TINY, f"paths.output_dir={outputs}"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parent, children = parent_and_children(store())
    jobs = [f"activation={a},norm={n}" for a in activations.split(",") for n in ("batch", "none")]
    assert parent.info.status == "FINISHED" and parent.data.tags["dlkit.jobs"] == str(len(jobs))
    assert parent.data.tags["dlkit.factors"] == ("activation,norm" if "," in activations else "norm")
    import torch

    assert parent.data.tags["version.torch"] == torch.__version__ and "swish" in parent.data.tags["dlkit.plugins"]
    assert sorted(c.info.run_name for c in children) == (
        jobs if "," in activations else [j.split(",")[1] for j in jobs]
    )
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["factor.norm"] in child.info.run_name
        assert child.data.params["norm.name"] == child.data.tags["factor.norm"]
        assert child.data.params["activation.name"] == child.data.tags.get("factor.activation", activations)
    assert f"Sweep FINISHED: parent run {parent.info.run_id}" in done.stdout


def test_a_failing_job_fails_the_parent_and_the_others_go_on(outputs, store):
    # The first job diverges (its loss becomes NaN at once); the second must still run.
    done = dlkit_cli("-m", "optimizer=minibatch", "optimizer.lr=1e9,0.01", *TINY, f"paths.output_dir={outputs}")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "[job 1/2] dlkit: error: " in done.stdout + done.stderr
    assert "not finished: optimizer.lr=1000000000.0: " in done.stdout
    parent, children = parent_and_children(store())
    assert parent.info.status == "FAILED"
    assert {c.info.run_name: c.info.status for c in children} == {
        "optimizer.lr=0.01": "FINISHED",
        "optimizer.lr=1000000000.0": "FAILED",
    }
    diverged = next(c for c in children if c.info.status == "FAILED")
    assert diverged.data.tags["dlkit.failure"] == "diverged"
    report = dlkit_cli("report", f"paths.output_dir={outputs}")
    assert report.returncode == 0, report.stderr[-2000:]
    assert "– (1/1 diverged)" in report.stdout  # an outcome of its level, the worst; not left out
    assert "left out" not in report.stdout
    # Launched again: the finished job is skipped, the FAILED one runs again (a new attempt; it diverges again)
    again = dlkit_cli("-m", "optimizer=minibatch", "optimizer.lr=1e9,0.01", *TINY, f"paths.output_dir={outputs}")
    assert again.returncode == 1 and f"Resuming sweep {parent.info.run_id}" in again.stdout
    finished = next(c for c in children if c.info.status == "FINISHED")
    assert f"already finished in run {finished.info.run_id}: skipped" in again.stdout
    attempts = [r for r in all_runs(store()) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.status for r in attempts) == ["FAILED", "FAILED", "FINISHED"]  # two attempts of one job
    from dlkit import report

    assert len(report.load(f"sqlite:///{outputs.resolve()}/mlflow.db").runs) == 2  # each job's latest attempt


def test_an_interrupted_sweep_leaves_nothing_running(outputs, store):
    job = start_dlkit("-m", "seed=0,1,2", "trainer.max_epochs=100000", "data.limit=48", f"paths.output_dir={outputs}")
    signal_after_first_epoch(job, signal.SIGINT)
    assert job.returncode == 128 + signal.SIGINT
    parent, children = parent_and_children(store())
    assert parent.info.status == "KILLED"
    assert [c.info.status for c in children] == ["KILLED"]


def test_a_job_only_its_data_rejects_fails_the_sweep_and_the_others_go_on(outputs, store):
    # A stride that does not divide 8×8 digits is a ConfigError at build time, in that job only.
    blocks = "model.blocks=[{channels: 4, kernel: 3, stride: 2}],[{channels: 4, kernel: 3, padding: 1}]"
    done = dlkit_cli("-m", "model=cnn", blocks, *TINY, f"paths.output_dir={outputs}")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "[job 1/2] dlkit: error: cnn conv1: output size" in done.stdout + done.stderr
    assert "not finished: model.blocks=[{channels:4,kernel:3,stride:2}]: cnn conv1: output size" in done.stdout
    parent, children = parent_and_children(store())
    assert parent.info.status == "FAILED"
    assert [c.info.status for c in children] == ["FINISHED"]  # the good job ran; the bad one never made a run
    (noted,) = [v for k, v in parent.data.tags.items() if k.startswith("dlkit.failed_job.")]  # the parent records it
    assert noted.startswith("model.blocks=[{channels:4,kernel:3,stride:2}]: cnn conv1: output size")


@pytest.mark.parametrize("recorder", ["false"])  # "true", the default, is what every other sweep test runs
def test_the_store_is_written_the_same_with_or_without_the_recorder_process(recorder, outputs, store):
    """tracking.recorder=false writes from the training process itself (no recorder process): the same record."""
    done = dlkit_cli("-m", "seed=0,1", *TINY, f"tracking.recorder={recorder}", f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr[-2000:]
    parent, children = parent_and_children(store())
    assert parent.info.status == "FINISHED" and len(children) == 2
    best = min(children, key=lambda c: c.data.metrics["val/loss"])  # minimized: the objective's default
    assert parent.data.tags["dlkit.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best/val/loss"] == best.data.metrics["val/loss"]
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["tracking.recorder"] == recorder.title()
        assert [m.step for m in store().get_metric_history(child.info.run_id, "val/loss")] == [0]
        artifacts = {f.path for f in store().list_artifacts(child.info.run_id)}
        assert {"best.pt", "learning_curves.png", "confusion_matrix.csv", "config.yaml"} <= artifacts
    single = dlkit_cli(*TINY, f"tracking.recorder={recorder}", f"paths.output_dir={outputs}")
    assert single.returncode == 0, single.stderr[-2000:]
    assert len(all_runs(store())) == 4 and all(r.info.status == "FINISHED" for r in all_runs(store()))
