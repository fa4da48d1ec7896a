"""Divergence, interrupts and resume, relaunched sweeps, parallel writers: real processes, real signals, a real
store."""

from __future__ import annotations

import signal

import pytest
import torch

from conftest import RESUMABLE, all_runs, dlkit_cli, final_metrics, start_dlkit


def _signal_after(command: list[str], marker: str, signum: int) -> tuple[int, str]:
    """Start dlkit, wait for `marker` in its output, send the signal; its exit code and output."""
    job = start_dlkit(*command)
    seen = []
    try:
        for line in job.stdout:
            seen.append(line)
            if marker in line:
                break
        job.send_signal(signum)
        rest, _ = job.communicate(timeout=120)
    finally:
        job.kill()
    return job.returncode, "".join(seen) + rest


def test_a_diverging_run_stops_failed_with_the_reason_and_keeps_its_metrics(outputs, store):
    # lr 0.01 for the first epoch, then ×1e8 each epoch: fine at first, NaN soon after.
    done = dlkit_cli(
        "optimizer=minibatch",
        "optimizer.lr=0.01",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=1e8",
        "trainer.max_epochs=20",
        "data.limit=96",
        f"paths.output_dir={outputs}",
    )
    assert done.returncode == 1
    # dlkit's one line (Lightning may add its own warnings, e.g. when srun is on the PATH)
    (line,) = [text for text in done.stderr.strip().splitlines() if text.startswith("dlkit: ")]
    assert line.startswith("dlkit: run ") and " FAILED: " in line and "loss became nan in epoch " in line
    assert "Traceback" not in done.stderr
    assert "srun" not in done.stderr  # on a SLURM login node (srun on the PATH) Lightning's hint is not dlkit's way
    (run,) = all_runs(store())
    assert run.info.status == "FAILED" and run.data.tags["dlkit.failure"] == "diverged"
    assert run.info.run_id in line and run.data.tags["dlkit.failure_reason"] in line
    history = store().get_metric_history(run.info.run_id, "train/loss")
    # The epochs before it, kept.
    assert len(history) >= 1 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    stopped = int(line.split("in epoch ")[1].split(",")[0])
    # It stopped at once, not at max_epochs.
    assert stopped < 20 and len(history) in (stopped - 1, stopped)


def test_on_the_cpu_divergence_is_caught_at_the_step_not_at_the_end_of_the_epoch():
    # 320 samples in batches of 32: 10 steps an epoch; at lr 1e9 the loss is NaN within the first few
    done = dlkit_cli(
        "optimizer=minibatch", "optimizer.lr=1e9", "data.limit=320", "trainer.max_epochs=1", "tracking=none"
    )
    assert done.returncode == 1
    (line,) = [text for text in done.stderr.strip().splitlines() if text.startswith("dlkit: ")]
    steps = int(line.split("after ")[1].split(" optimizer steps")[0])
    assert "train/loss became nan in epoch 1" in line and steps < 9, line  # the epoch-end check would say 10


# SIGTERM's resume to the same metrics is also test_slurm.py's pre-empted job (scancel --signal=TERM): slow here
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupted_run_resumes_to_the_same_metrics_as_an_uninterrupted_one(outputs, store, signum, uninterrupted):

    code, output = _signal_after(
        [*RESUMABLE, "tracking.run_name=cut", f"paths.output_dir={outputs}"], "epoch 1/", signum
    )
    assert code == 128 + signum, output[-2000:]
    runs = {r.info.run_name: r for r in all_runs(store())}
    cut = runs["cut"]
    assert cut.info.status == "KILLED"
    assert f"dlkit: run {cut.info.run_id} is KILLED; continue it with: dlkit resume {cut.info.run_id}" in output
    checkpoint = torch.load(
        store().download_artifacts(cut.info.run_id, "checkpoints/last.ckpt", str(outputs)), weights_only=True
    )
    # Plain data: loads without unpickling code.
    assert {"state_dict", "optimizer_states", "loops", "callbacks"} <= set(checkpoint)
    epochs_done = len(store().get_metric_history(cut.info.run_id, "train/loss"))
    assert 1 <= epochs_done < 200

    resumed = dlkit_cli("resume", cut.info.run_id, f"paths.output_dir={outputs}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming run {cut.info.run_id} from its checkpoint" in resumed.stdout
    runs = {r.info.run_name: r for r in all_runs(store())}
    assert len(runs) == 1 and runs["cut"].info.status == "FINISHED"
    assert final_metrics(runs["cut"]) == uninterrupted
    losses = {m.step: m.value for m in store().get_metric_history(cut.info.run_id, "train/loss")}
    assert sorted(losses) == list(range(200))  # every epoch's point, one curve


def test_configs_name_registry_entries_never_import_paths(outputs):
    done = dlkit_cli("+data._target_=builtins.exec", f"paths.output_dir={outputs}")
    assert done.returncode == 2 and "data 'digits' has no parameter '_target_'" in done.stderr


def test_resume_refuses_what_it_cannot_resume(outputs, store):
    done = dlkit_cli("trainer.max_epochs=1", "data.limit=48", f"paths.output_dir={outputs}")
    (run,) = all_runs(store())
    again = dlkit_cli("resume", run.info.run_id, f"paths.output_dir={outputs}")
    assert (
        again.returncode == 2
        and again.stderr.strip() == f"dlkit: error: run {run.info.run_id} has FINISHED: there is nothing to resume."
    )
    unknown = dlkit_cli("resume", "0123abc", f"paths.output_dir={outputs}")
    assert unknown.returncode == 2 and "no run '0123abc'" in unknown.stderr and "Traceback" not in unknown.stderr
    assert done.returncode == 0


def test_a_relaunched_sweep_skips_finished_jobs_and_resumes_the_interrupted_one(outputs, store):
    sweep = ["-m", "seed=0,1,2", *RESUMABLE[:-1], "trainer.max_epochs=150", f"paths.output_dir={outputs}"]
    code, output = _signal_after(sweep, "[job 2/3] epoch 1/", signal.SIGINT)
    assert code == 128 + signal.SIGINT, output[-2000:]
    runs = all_runs(store())
    (parent,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    assert parent.info.status == "KILLED"
    assert sorted(r.info.status for r in runs if r is not parent) == ["FINISHED", "KILLED"]
    first = {r.info.run_name: r for r in runs if r is not parent}

    again = dlkit_cli(*sweep)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"Resuming sweep {parent.info.run_id}" in again.stdout
    assert f"[job 1/3] already finished in run {first['seed=0'].info.run_id}: skipped" in again.stdout
    assert f"[job 2/3] resuming run {first['seed=1'].info.run_id} from its checkpoint" in again.stdout
    runs = all_runs(store())
    (parent_after,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    children = {r.info.run_name: r for r in runs if r is not parent_after}
    assert parent_after.info.run_id == parent.info.run_id and parent_after.info.status == "FINISHED"
    assert sorted(children) == ["seed=0", "seed=1", "seed=2"] and all(
        c.info.status == "FINISHED" for c in children.values()
    )
    assert children["seed=0"].info.run_id == first["seed=0"].info.run_id  # reused, not run again
    assert children["seed=1"].info.run_id == first["seed=1"].info.run_id  # the same run, continued

    # tracking.resume=false: a new parent, though every job has finished (stopped once it is open: no need to train)
    code, fresh = _signal_after([*sweep, "tracking.resume=false"], "[job 1/3] epoch 1/", signal.SIGINT)
    assert code == 128 + signal.SIGINT and "Resuming sweep" not in fresh and "already finished" not in fresh
    assert len([r for r in all_runs(store()) if r.data.tags.get("dlkit.sweep") == "parent"]) == 2


def test_parallel_workers_lose_nothing_in_one_sqlite_store(outputs, store):
    """hydra/launcher=parallel (joblib, one worker per core: two here) with four jobs: both workers write to one
    sqlite store at once. Also the parallel launcher's sweep: one parent, a tagged child per job; its data set made
    once, by the launching process, not by each worker at the same time."""
    seeds = "0,1,2,3"
    done = dlkit_cli(
        "-m",
        "hydra/launcher=parallel",
        f"seed={seeds}",
        "trainer.max_epochs=3",
        "data=mnist1d",
        "data.limit=48",
        f"paths.output_dir={outputs}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (outputs / "data" / "mnist1d-seed42.npz").is_file() and "generated" not in done.stdout + done.stderr
    client = store()
    runs = all_runs(client)
    children = [r for r in runs if r.data.tags.get("dlkit.sweep") != "parent"]
    assert len(runs) == 5 and len(children) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(c.data.params["seed"] for c in children) == seeds.split(",")
    (parent,) = [r for r in runs if r not in children]
    assert parent.data.tags["dlkit.jobs"] == "4" and parent.data.tags["dlkit.factors"] == "seed"
    assert parent.data.tags["dlkit.launcher"] == "JoblibLauncher"
    assert all(c.data.tags["factor.seed"] == c.data.params["seed"] == c.info.run_name[5:] for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert f"Sweep FINISHED: parent run {parent.info.run_id}" in done.stdout
    param_counts = {len(c.data.params) for c in children}
    assert len(param_counts) == 1 and param_counts.pop() > 40  # every job logged every param
    for child in children:
        for key in ("train/loss", "val/loss", "val/acc"):
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == [0, 1, 2], (
                child.info.run_name,
                key,
            )
